"""Unit polygons as real files have them: repair invalid shapes, then make the map a clean coverage.

Published maps are rarely a perfect planar coverage: rings self-intersect (bow-ties, spikes),
neighbours overlap by a few metres, exports leave gaps between them, rows are duplicated.
:func:`repair_units` fixes each unit's own shape (``make_valid``, polygonal parts only, slivers
dropped) and then cleans the coverage with GEOS's coverage cleaner, which gives every overlap to
one neighbour and closes gaps up to the snap tolerance, so that neighbours share their border
exactly. Every change is recorded as a :class:`Repair` naming the unit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

#: Default snap tolerance as a share of the typical unit's size (the median square root of area),
#: and its bounds in metres. 0.2 % closes the gaps and overlaps of a few metres that exports leave
#: between counties (30 km wide: 60 m) or ZIP areas (12 km: 24 m) and never reaches across a
#: unit.
SNAP_SHARE = 0.002
SNAP_MIN_M = 1.0
SNAP_MAX_M = 500.0
#: A part of a multi-part unit is a sliver when it is thinner than the snap tolerance (twice its
#: area over its perimeter) and holds less than this share of the unit's largest part.
SLIVER_SHARE = 0.01
#: A unit that keeps less than this share of its area after cleaning lies on top of others
#: (a duplicated polygon): it is kept as drawn and treated as their neighbour.
STACKED_SHARE = 0.05
#: The repair kind of a unit kept as drawn on top of others.
STACKED = "lies on another unit"
#: Relative area change below which a cleaned unit counts as snapped rather than cut or grown.
AREA_EPSILON = 1e-6


@dataclass(frozen=True)
class Repair:
    """One change made to one unit's geometry."""

    unit_id: str
    kind: str
    detail: str


@dataclass
class Coverage:
    """Unit polygons after cleaning, in the CRS they were cleaned in.

    Attributes
    ----------
    geometry : numpy.ndarray
        One polygon or multipolygon per unit.
    stacked : numpy.ndarray
        True for units that lie (almost) entirely on top of others; kept as drawn.
    snap : float
        The tolerance used, in the CRS's units (metres).
    repairs : list of Repair
        What cleaning changed, per unit.
    """

    geometry: np.ndarray
    stacked: np.ndarray
    snap: float
    repairs: list[Repair] = field(default_factory=list)


def default_snap(projected: np.ndarray) -> float:
    """The snap tolerance in metres derived from the map: 0.2 % of the median unit's size.

    Parameters
    ----------
    projected : numpy.ndarray
        Unit polygons in a projected CRS in metres.
    """
    areas = shapely.area(projected)
    areas = areas[areas > 0]
    if len(areas) == 0:
        return SNAP_MIN_M
    return float(np.clip(SNAP_SHARE * np.sqrt(np.median(areas)), SNAP_MIN_M, SNAP_MAX_M))


def repair_shapes(
    geometry: np.ndarray, ids: np.ndarray, projected: np.ndarray, snap: float
) -> tuple[np.ndarray, list[Repair], list[str]]:
    """Repair each unit's own shape, in its own CRS: valid rings, polygonal parts, no slivers.

    Parameters
    ----------
    geometry : numpy.ndarray
        Unit shapes in the file's CRS; repaired shapes keep its coordinates.
    ids : numpy.ndarray
        Unit ids (str), for the repair records.
    projected : numpy.ndarray
        The same shapes in a metric CRS, to measure slivers.
    snap : float
        Tolerance in metres: parts thinner than this may be slivers.

    Returns
    -------
    geometry, repairs, unusable
        The repaired shapes; what was done; ids of units left with no area at all.
    """
    out = np.array(geometry, dtype=object, copy=True)
    repairs: list[Repair] = []
    unusable: list[str] = []
    for i in np.flatnonzero(~shapely.is_valid(out)):
        reason = _plain_reason(shapely.is_valid_reason(out[i]))
        out[i] = shapely.make_valid(out[i], method="structure", keep_collapsed=False)
        repairs.append(Repair(ids[i], "invalid shape repaired", reason))
    empty = shapely.is_empty(out)
    unusable += [str(ids[i]) for i in np.flatnonzero(empty)]
    types = shapely.get_type_id(out)
    for i in np.flatnonzero(~np.isin(types, [3, 6]) & ~empty):
        parts = shapely.get_parts(out[i])
        polygonal = parts[np.isin(shapely.get_type_id(parts), [3, 6])]
        if len(polygonal) == 0:
            unusable.append(str(ids[i]))
            continue
        dropped = sorted({part.geom_type for part in parts} - {"Polygon", "MultiPolygon"})
        out[i] = shapely.union_all(polygonal)
        repairs.append(Repair(ids[i], "non-polygonal parts dropped", ", ".join(dropped) or "empty parts"))
    if unusable:
        return out, repairs, unusable
    multi = np.flatnonzero(shapely.get_type_id(out) == 6)
    if len(multi):
        source_parts, part_index = shapely.get_parts(out[multi], return_index=True)
        metric_parts, metric_index = shapely.get_parts(projected[multi], return_index=True)
        # Shapes repaired above changed their parts: measure them from the source parts then.
        same = len(metric_parts) == len(source_parts) and np.array_equal(metric_index, part_index)
        area = shapely.area(metric_parts if same else source_parts)
        length = shapely.length(metric_parts if same else source_parts)
        width = np.where(length > 0, 2 * area / np.maximum(length, 1e-300), 0.0)
        largest = np.zeros(len(multi))
        np.maximum.at(largest, part_index, area)
        sliver = (width < snap) & (area < SLIVER_SHARE * largest[part_index])
        for position in np.unique(part_index[sliver]):
            i = multi[position]
            keep = (part_index == position) & ~sliver
            count = int(((part_index == position) & sliver).sum())
            out[i] = shapely.multipolygons(source_parts[keep]) if keep.sum() > 1 else source_parts[keep][0]
            repairs.append(Repair(ids[i], "sliver dropped", f"{count} part(s) thinner than {snap:.0f} m"))
    return out, repairs, unusable


def _share(change: float) -> str:
    """A small signed share of a unit's area, readable: '+0.04 %', '-<0.01 %'."""
    sign = "+" if change > 0 else "-"
    return f"{sign}<0.01 %" if abs(change) < 1e-4 else f"{sign}{abs(change):.2%}".replace("%", " %")


def _plain_reason(reason: str) -> str:
    """GEOS's reason with its location rounded: 'Ring Self-intersection near (375290, -3905)'."""
    text, _, where = reason.partition("[")
    try:
        x, y = (float(v) for v in where.rstrip("]").split()[:2])
    except ValueError:
        return text.strip()
    digits = 0 if max(abs(x), abs(y)) > 1000 else 5
    return f"{text.strip()} near ({x:.{digits}f}, {y:.{digits}f})"


def clean_coverage(projected: np.ndarray, ids: np.ndarray, snap: float) -> Coverage:
    """Make projected unit polygons a planar coverage: overlaps resolved, gaps up to ``snap`` closed.

    A map that already is a valid coverage with no gap narrower than ``snap`` is returned as is.
    Otherwise GEOS's coverage cleaner snaps vertices within ``snap`` of each other, gives each
    overlap to the neighbour with the longest shared border, and fills enclosed gaps narrower than
    ``snap``. A unit that would keep less than 5 % of its area lies on top of others: it keeps its
    own shape, and :attr:`Coverage.stacked` marks it.

    Parameters
    ----------
    projected : numpy.ndarray
        Valid polygons in a metric CRS.
    ids : numpy.ndarray
        Unit ids (str), for the repair records.
    snap : float
        Tolerance in metres; 0 resolves overlaps only.
    """
    stacked = np.zeros(len(projected), dtype=bool)
    if snap == 0 and shapely.coverage_is_valid(projected):
        return Coverage(projected, stacked, snap)
    if snap > 0 and shapely.coverage_is_valid(projected, gap_width=snap):
        return Coverage(projected, stacked, snap)
    cleaned = shapely.coverage_clean(projected, gap_width=snap, snapping_distance=snap if snap > 0 else -1)
    before = shapely.area(projected)
    after = np.where(shapely.is_empty(cleaned) | shapely.is_missing(cleaned), 0.0, shapely.area(cleaned))
    stacked = after < STACKED_SHARE * before
    cleaned = np.where(stacked, projected, cleaned)
    repairs = [Repair(ids[i], *_stacked_detail(projected, int(i), ids)) for i in np.flatnonzero(stacked)]
    change = (after - before) / np.maximum(before, 1e-300)
    moved = ~stacked & _outline_moved(projected, cleaned, max(0.01 * snap, 0.01))
    for i in np.flatnonzero(moved):
        delta = after[i] - before[i]
        if change[i] < -AREA_EPSILON:
            detail = f"{-delta:,.0f} m² ({_share(change[i])}) given to a neighbour"
            repairs.append(Repair(ids[i], "overlap removed", detail))
        elif change[i] > AREA_EPSILON:
            detail = f"{delta:,.0f} m² ({_share(change[i])}) of gap joined"
            repairs.append(Repair(ids[i], "gap closed", detail))
        else:
            repairs.append(Repair(ids[i], "border snapped", f"vertices within {snap:.0f} m of a neighbour's"))
    return Coverage(cleaned, stacked, snap, repairs)


def _outline_moved(before: np.ndarray, after: np.ndarray, tolerance: float) -> np.ndarray:
    """Units one of whose own vertices is gone from their cleaned outline (moved by ``tolerance`` or more).

    The cleaner adds vertices where it nodes borders together and moves those it snaps, so a unit
    changed when one of its vertices is missing afterwards. Coordinates are compared on a grid of
    ``tolerance`` metres (1 % of the snap), so re-noding noise below that does not count. This is
    linear in the vertices, where a Hausdorff distance per unit took seconds on detailed outlines.
    """
    moved = np.zeros(len(before), dtype=bool)
    changed = np.flatnonzero(~shapely.equals_exact(before, after, tolerance=0.0))
    if len(changed) == 0:
        return moved
    was, was_unit = shapely.get_coordinates(before[changed], return_index=True)
    now, now_unit = shapely.get_coordinates(after[changed], return_index=True)
    # Grid cells as whole floats (+ 0.0 turns -0.0 into 0.0), each (x, y) read as one complex
    # number and numbered; then (unit, cell) as one integer, so the lookup hashes plain integers.
    cells = np.ascontiguousarray(np.round(np.concatenate([was, now]) / tolerance) + 0.0)
    cell, distinct = pd.factorize(cells.view(np.complex128).ravel())
    key = np.concatenate([was_unit, now_unit]).astype(np.int64) * len(distinct) + cell
    gone = ~pd.Series(key[: len(was)]).isin(key[len(was) :]).to_numpy()
    moved[changed[np.unique(was_unit[gone])]] = True
    return moved


def _stacked_detail(projected: np.ndarray, i: int, ids: np.ndarray) -> tuple[str, str]:
    """Which units a stacked unit lies on: those that hold a tenth of its area or more."""
    tree = shapely.STRtree(projected)
    others = np.array([j for j in tree.query(projected[i], predicate="intersects") if j != i], dtype=int)
    shared = shapely.area(shapely.intersection(projected[i], projected[others])) if len(others) else []
    under = [str(ids[j]) for j, area in zip(others, shared, strict=True) if area >= 0.1 * projected[i].area]
    names = ", ".join(under[:3]) + (" ..." if len(under) > 3 else "")
    return STACKED, f"lies on {names or 'other units'}; kept as drawn, joined to them"


def stacked_edges(geometry: np.ndarray, stacked: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjacency of stacked units: each is a neighbour of every unit its shape intersects.

    Returns
    -------
    focal, neighbour : numpy.ndarray
        Both directions of every edge.
    """
    if not stacked.any():
        return np.empty(0, np.int64), np.empty(0, np.int64)
    tree = shapely.STRtree(geometry)
    rows = np.flatnonzero(stacked)
    source, target = tree.query(geometry[rows], predicate="intersects")
    focal = rows[source]
    keep = focal != target
    focal, target = focal[keep], target[keep].astype(np.int64)
    return np.concatenate([focal, target]), np.concatenate([target, focal])


@dataclass
class RepairedUnits:
    """Units after :func:`repair_units`: their geometry in the input CRS and what was changed."""

    geometry: gpd.GeoSeries
    repairs: list[Repair]
    snap: float
    stacked: np.ndarray


def repair_units(
    geometry: gpd.GeoSeries, ids: np.ndarray, snap: float | None = None, *, label: str = "unit"
) -> RepairedUnits:
    """Repair unit polygons and clean the coverage, keeping the input CRS.

    Parameters
    ----------
    geometry : geopandas.GeoSeries
        Unit polygons with a CRS.
    ids : numpy.ndarray
        Unit ids in row order.
    snap : float, optional
        Gaps and overlaps up to this many metres are closed; ``None`` derives it from the map
        (:func:`default_snap`); 0 resolves overlaps only.
    label : str
        The unit label used in error messages (``county``).

    Raises
    ------
    territory_lib.errors.DataError
        When a unit's shape has no area at all.
    """
    from territory_lib.errors import DataError
    from territory_lib.geo import equal_area_crs

    ids = np.asarray(ids).astype(str)
    metric = equal_area_crs(gpd.GeoDataFrame(geometry=geometry))
    projected = geometry.to_crs(metric).to_numpy()
    tolerance = default_snap(projected) if snap is None else float(snap)
    shapes, repairs, unusable = repair_shapes(geometry.to_numpy(), ids, projected, tolerance)
    if unusable:
        raise DataError(
            f"the shape of {label} {', '.join(unusable[:5])} has no area (it collapses to lines or "
            "points); redraw it as a polygon or drop it from the units file."
        )
    repaired = gpd.GeoSeries(shapes, index=geometry.index, crs=geometry.crs)
    changed = np.flatnonzero(~shapely.equals_identical(shapes, geometry.to_numpy()))
    if len(changed):
        # Each point projects alone, so only the repaired shapes need projecting again.
        projected = projected.copy()
        projected[changed] = gpd.GeoSeries(shapes[changed], crs=geometry.crs).to_crs(metric).to_numpy()
    coverage = clean_coverage(projected, ids, tolerance)
    if coverage.repairs:
        back = gpd.GeoSeries(coverage.geometry, index=geometry.index, crs=metric).to_crs(geometry.crs)
        # Stacked units keep their own coordinates exactly; the rest share the cleaned borders.
        repaired = back.where(~coverage.stacked, repaired)
    return RepairedUnits(repaired, repairs + coverage.repairs, tolerance, coverage.stacked)


def repair_table(repairs: list[Repair], names: pd.Series | None = None) -> pd.DataFrame:
    """The repairs as a table, one row per unit and repair: ``unit_id, name, repair, detail``.

    ``names`` maps unit ids to their names (e.g. ``units.set_index("unit_id")["name"]``).
    """
    table = pd.DataFrame(
        [(r.unit_id, r.kind, r.detail) for r in repairs], columns=["unit_id", "repair", "detail"]
    )
    if names is not None:
        table.insert(1, "name", table["unit_id"].map(names))
    return table


def stacked_units(repairs: list[Repair], ids: np.ndarray) -> np.ndarray:
    """Which of ``ids`` the repairs left lying on other units (kept as drawn)."""
    on_others = {repair.unit_id for repair in repairs if repair.kind == STACKED}
    return np.isin(np.asarray(ids).astype(str), list(on_others))


def repair_notes(repairs: list[Repair], label: str = "unit", most: int = 8) -> list[str]:
    """One plain-language line per kind of repair, naming the units (at most ``most`` of them)."""
    from territory_lib.config import counted

    by_kind: dict[str, list[Repair]] = defaultdict(list)
    for repair in repairs:
        by_kind[repair.kind].append(repair)
    lines = []
    for kind, items in by_kind.items():
        named = "; ".join(f"{item.unit_id} ({item.detail})" for item in items[:most])
        more = f"; and {len(items) - most} more" if len(items) > most else ""
        lines.append(f"Map repair, {kind}: {counted(len(items), label)}: {named}{more}.")
    return lines
