"""Unit adjacency graph for territory design: queen contiguity for polygons, Delaunay for points.

Polygons are first made a clean coverage (:func:`territory_lib.geometry.clean_coverage`), so maps
with overlapping neighbours or small gaps between them give the adjacency a reader sees on the map.
Disconnected pieces (islands, exclaves, isolated points) are joined to their nearest unit so that
every plan can be contiguous; each join is recorded as a human-readable note.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import Delaunay, QhullError, cKDTree

from territory_lib.errors import DataError
from territory_lib.geometry import (
    clean_coverage,
    default_snap,
    repair_notes,
    repair_shapes,
    stacked_edges,
)


@dataclass
class UnitGraph:
    """Adjacency of the units in CSR form with the geometry the optimiser needs.

    Attributes
    ----------
    ids : numpy.ndarray
        Unit ids (str), position ``i`` is unit ``i``.
    indptr, indices : numpy.ndarray
        CSR adjacency (symmetric, no self loops), neighbours of ``i`` are
        ``indices[indptr[i]:indptr[i + 1]]``.
    shared : numpy.ndarray
        Length in metres of the boundary shared along each CSR entry (0 for point units and joins).
    perimeter, area : numpy.ndarray
        Perimeter (m) and area (m²) of each unit; zeros for point units.
    xy : numpy.ndarray
        ``(n, 2)`` unit centroids in an equal-area projection (metres).
    polygons : bool
        Whether units are polygons (so Polsby-Popper is defined).
    joins : list of tuple
        ``(i, j, metres)`` edges added to connect components.
    notes : list of str
        What was done to make the graph connected.
    """

    ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    shared: np.ndarray
    perimeter: np.ndarray
    area: np.ndarray
    xy: np.ndarray
    polygons: bool
    joins: list[tuple[int, int, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Number of units."""
        return len(self.ids)

    def matrix(self) -> sparse.csr_matrix:
        """Adjacency as a scipy CSR matrix of ones."""
        data = np.ones(len(self.indices), dtype=np.int8)
        return sparse.csr_matrix((data, self.indices, self.indptr), shape=(self.n, self.n))

    def edges(self) -> np.ndarray:
        """Undirected edges ``(i, j)`` with ``i < j`` as an ``(e, 2)`` array."""
        rows = np.repeat(np.arange(self.n), np.diff(self.indptr))
        keep = rows < self.indices
        return np.column_stack([rows[keep], self.indices[keep]])

    def neighbour_lists(self) -> list[list[int]]:
        """Neighbours of each unit as Python lists (fast to iterate in the local search)."""
        ind = self.indices.tolist()
        ptr = self.indptr.tolist()
        return [ind[ptr[i] : ptr[i + 1]] for i in range(self.n)]


def _polygon_edges(geoms: np.ndarray, stacked: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queen contiguity with shared boundary lengths (libpysal) on a clean coverage.

    Stacked units (lying on others) are left out of libpysal's planar computation and joined to
    every unit they intersect, with no shared length. Self-loops of isolates are dropped.
    """
    planar = np.flatnonzero(~stacked)
    outlines = _outlines(geoms[planar])
    heads, tails = _shared_vertex_pairs(outlines)
    weight = _shared_lengths(geoms[planar], outlines, heads, tails)
    extra_focal, extra_neigh = stacked_edges(geoms, stacked)
    return (
        np.concatenate([planar[heads], extra_focal]),
        np.concatenate([planar[tails], extra_neigh]),
        np.concatenate([weight, np.zeros(len(extra_focal))]),
    )


@dataclass(frozen=True)
class _Outlines:
    """The vertices of some shapes, path by path (polygon rings, lines, points), in drawing order.

    Attributes
    ----------
    xy : numpy.ndarray
        ``(m, 2)`` coordinates; a ring's last vertex repeats its first.
    path, owner : numpy.ndarray
        The path and the shape (position in the input) of each vertex.
    vertex : numpy.ndarray
        A number per coordinate: equal coordinates (``0.0`` and ``-0.0`` too) have equal numbers.
    count : int
        How many distinct coordinates there are.
    """

    xy: np.ndarray
    path: np.ndarray
    owner: np.ndarray
    vertex: np.ndarray
    count: int


def _outlines(geoms: np.ndarray) -> _Outlines:
    """The vertices of ``geoms`` path by path, each coordinate numbered."""
    parts, owner = geoms, np.arange(len(geoms))
    # Multi-part shapes and collections (possibly nested) down to single polygons, lines, points.
    while np.isin(shapely.get_type_id(parts), [4, 5, 6, 7]).any():
        parts, index = shapely.get_parts(parts, return_index=True)
        owner = owner[index]
    polygon = shapely.get_type_id(parts) == 3
    rings, ring_part = shapely.get_rings(parts[polygon], return_index=True)
    paths = np.concatenate([rings, parts[~polygon]])
    path_owner = np.concatenate([owner[polygon][ring_part], owner[~polygon]])
    xy, path = shapely.get_coordinates(paths, return_index=True)
    # + 0.0 turns -0.0 into 0.0; each (x, y) row is read as one complex number and hashed whole.
    vertex, distinct = pd.factorize(np.ascontiguousarray(xy + 0.0).view(np.complex128).ravel())
    return _Outlines(xy, path, path_owner[path].astype(np.int64), vertex.astype(np.int64), len(distinct))


def _shared_vertex_pairs(outlines: _Outlines) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair of shapes sharing at least one vertex (queen contiguity), sorted.

    The rule of libpysal's ``Graph.build_contiguity(rook=False)`` (vertex set intersection), on
    arrays: its per-vertex Python loop took seconds on detailed maps such as the Census counties.
    """
    n = int(outlines.owner.max()) + 1 if len(outlines.owner) else 1
    # One entry per (vertex, shape), sorted by vertex, then shape.
    vertex, owner = np.divmod(_distinct(outlines.vertex * n + outlines.owner), n)
    start = np.flatnonzero(np.r_[True, vertex[1:] != vertex[:-1]])
    sizes = np.diff(np.r_[start, len(vertex)])
    heads, tails = [], []
    # Vertices shared by k shapes give k(k-1) ordered pairs; k is small (2-4) on real maps.
    for k in np.unique(sizes[sizes > 1]):
        members = owner[start[sizes == k][:, None] + np.arange(k)]
        a, b = np.nonzero(~np.eye(k, dtype=bool))
        heads.append(members[:, a].ravel())
        tails.append(members[:, b].ravel())
    if not heads:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.divmod(_distinct(np.concatenate(heads) * n + np.concatenate(tails)), n)


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct integers of ``values``, sorted (``numpy.unique`` took ten times longer)."""
    values = np.sort(values, kind="stable")
    first = np.ones(len(values), dtype=bool)
    first[1:] = values[1:] != values[:-1]
    return values[first]


def _shared_lengths(
    geoms: np.ndarray, outlines: _Outlines, heads: np.ndarray, tails: np.ndarray
) -> np.ndarray:
    """Length of the border each ordered pair of polygons shares: libpysal's perimeter weight.

    libpysal measures the intersection of the two polygons. On a valid coverage (valid polygons
    whose neighbours share their border vertex for vertex, :func:`shapely.coverage_is_valid`) that
    intersection is the segments both outlines have, so their lengths are summed from the vertex
    arrays; an intersection per pair took seconds on detailed maps. The sums equal the
    intersections' lengths but for the order of addition (round-off: at most 2.4e-15 relative on
    the Census counties). Other maps are intersected.

    Parameters
    ----------
    heads, tails : numpy.ndarray
        The pairs, sorted (as :func:`_shared_vertex_pairs` gives them).

    Raises
    ------
    ValueError
        When two polygons overlap (libpysal's message).
    """
    if len(heads) == 0:
        return np.zeros(0)
    coverage = (
        np.isin(shapely.get_type_id(geoms), [3, 6]).all()
        and shapely.is_valid(geoms).all()
        and shapely.coverage_is_valid(geoms)
    )
    if not coverage:
        touching = shapely.intersection(geoms[heads], geoms[tails])
        if np.isin(shapely.get_type_id(shapely.get_parts(touching)), [3, 6]).any():
            raise ValueError("Some geometries overlap. Perimeter weights require planar coverage.")
        return shapely.length(touching)
    along = outlines.path[1:] == outlines.path[:-1]
    step = outlines.xy[1:][along] - outlines.xy[:-1][along]
    # A segment's length as GEOS computes it, to the bit; repeated vertices draw no segment.
    length = np.sqrt(step[:, 0] * step[:, 0] + step[:, 1] * step[:, 1])
    drawn = length > 0
    start, end = outlines.vertex[:-1][along][drawn], outlines.vertex[1:][along][drawn]
    owner, length = outlines.owner[:-1][along][drawn], length[drawn]
    segment = np.minimum(start, end) * outlines.count + np.maximum(start, end)
    order = np.argsort(segment, kind="stable")
    # In a valid coverage a segment is drawn by at most two polygons, once by each.
    twin = np.flatnonzero(segment[order][1:] == segment[order][:-1])
    first, second, length = owner[order[twin]], owner[order[twin + 1]], length[order[twin]]
    n = len(geoms)
    pair = np.searchsorted(heads * n + tails, np.r_[first * n + second, second * n + first])
    return np.bincount(pair, weights=np.r_[length, length], minlength=len(heads))


def _point_edges(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Delaunay edges between points; a nearest-neighbour chain when the points are degenerate."""
    n = len(xy)
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    try:
        if n < 4:
            raise QhullError("too few points for a triangulation")
        tri = Delaunay(xy)
        indptr, indices = tri.vertex_neighbor_vertices
        focal = np.repeat(np.arange(n), np.diff(indptr))
        return focal, indices.astype(np.int64)
    except QhullError:
        # Collinear or very few points: link each point to its nearest predecessor along the line.
        order = np.lexsort((xy[:, 1], xy[:, 0]))
        a, b = order[:-1], order[1:]
        return np.concatenate([a, b]), np.concatenate([b, a])


def _join_components(
    n: int, rows: np.ndarray, cols: np.ndarray, xy: np.ndarray, ids: np.ndarray
) -> tuple[list[tuple[int, int, float]], list[str]]:
    """Join every component to its nearest unit outside it until the graph is connected."""
    joins: list[tuple[int, int, float]] = []
    notes: list[str] = []
    r, c = rows, cols
    while True:
        mat = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
        n_comp, comp = connected_components(mat, directed=False)
        if n_comp <= 1:
            return joins, notes
        sizes = np.bincount(comp)
        main = int(np.argmax(sizes))
        new_r, new_c = [], []
        for label in sorted(range(n_comp), key=lambda lab: (-sizes[lab], lab)):
            if label == main:
                continue
            inside = np.flatnonzero(comp == label)
            outside = np.flatnonzero(comp != label)
            dist, nearest = cKDTree(xy[outside]).query(xy[inside])
            best = int(np.argmin(dist))
            i, j = int(inside[best]), int(outside[nearest[best]])
            metres = float(dist[best])
            joins.append((i, j, metres))
            new_r += [i, j]
            new_c += [j, i]
            what = f"unit {ids[i]}" if len(inside) == 1 else f"{len(inside)} units around {ids[i]}"
            notes.append(
                f"{what} had no neighbour in the rest of the map; joined to unit {ids[j]} "
                f"({metres / 1000:.1f} km away) so territories stay contiguous."
            )
        r = np.concatenate([r, np.asarray(new_r, dtype=np.int64)])
        c = np.concatenate([c, np.asarray(new_c, dtype=np.int64)])


def _repaired(
    shapes: np.ndarray, names: np.ndarray, snap: float | None
) -> tuple[np.ndarray, np.ndarray, list]:
    """Shapes repaired and cleaned into a coverage (see :mod:`territory_lib.geometry`)."""
    tolerance = default_snap(shapes) if snap is None else snap
    shapes, repairs, unusable = repair_shapes(shapes, names, shapes, tolerance)
    if unusable:
        raise DataError(
            f"units {unusable[:5]} have no area (their shapes collapse to lines or points); "
            "redraw them as polygons or drop them."
        )
    coverage = clean_coverage(shapes, names, tolerance)
    return coverage.geometry, coverage.stacked, repairs + coverage.repairs


def build_unit_graph(
    units: gpd.GeoDataFrame, ids: np.ndarray, snap: float | None = None, stacked: np.ndarray | None = None
) -> UnitGraph:
    """Build the adjacency graph of ``units`` (already in an equal-area projection).

    Parameters
    ----------
    units : geopandas.GeoDataFrame
        One row per unit, polygons or points, projected in metres.
    ids : numpy.ndarray
        Unit ids in row order (used in notes).
    snap : float, optional
        Polygons: gaps and overlaps up to this many metres count as a shared border; ``None``
        derives it from the map (:func:`territory_lib.geometry.default_snap`).
    stacked : numpy.ndarray, optional
        For polygons already repaired by :func:`territory_lib.geometry.repair_units` (a clean
        coverage but for these units, which lie on others): the repair is not done again.

    Returns
    -------
    UnitGraph
        Connected adjacency with shared boundary lengths, centroids, areas and perimeters.
    """
    geoms = units.geometry
    if geoms.isna().any() or geoms.is_empty.any():
        bad = ids[(geoms.isna() | geoms.is_empty).to_numpy()][:5]
        raise DataError(
            f"units {list(bad)} have an empty or missing geometry; drop them or fix their shapes."
        )
    kinds = set(shapely.get_type_id(geoms.to_numpy()).tolist())
    # Collections (3 = polygon, 6 = multipolygon, 7 = collection) come from repaired shapes.
    polygons = bool(kinds & {3, 6}) and kinds <= {3, 6, 7}
    if not polygons and not kinds <= {0}:
        raise DataError(
            "units mix geometry types; give either all polygons (areas) or all points "
            "(e.g. account locations)."
        )
    n = len(units)
    notes: list[str] = []
    if polygons:
        shapes = geoms.to_numpy()
        if stacked is None:
            shapes, stacked, repairs = _repaired(shapes, np.asarray(ids).astype(str), snap)
            notes += repair_notes(repairs)
        xy = shapely.get_coordinates(shapely.centroid(shapes))
        focal, neigh, shared = _polygon_edges(shapes, np.asarray(stacked, dtype=bool))
        perimeter = shapely.length(shapes).astype(float)
        area = shapely.area(shapes).astype(float)
    else:
        xy = shapely.get_coordinates(geoms.to_numpy())
        focal, neigh = _point_edges(xy)
        shared = np.zeros(len(focal))
        perimeter = np.zeros(n)
        area = np.zeros(n)
    joins, join_notes = _join_components(n, focal, neigh, xy, ids)
    notes += join_notes
    if joins:
        jr = np.array([[i, j] for i, j, _ in joins] + [[j, i] for i, j, _ in joins], dtype=np.int64)
        focal = np.concatenate([focal, jr[:, 0]])
        neigh = np.concatenate([neigh, jr[:, 1]])
        shared = np.concatenate([shared, np.zeros(len(jr))])
    # Deduplicate and sort into CSR; duplicates can come from Delaunay or repeated joins.
    frame = pd.DataFrame({"i": focal, "j": neigh, "s": shared}).groupby(["i", "j"], sort=True)["s"].max()
    rows = frame.index.get_level_values(0).to_numpy()
    indices = frame.index.get_level_values(1).to_numpy().astype(np.int64)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)
    return UnitGraph(
        ids=np.asarray(ids),
        indptr=indptr,
        indices=indices,
        shared=frame.to_numpy(dtype=float),
        perimeter=perimeter,
        area=area,
        xy=np.asarray(xy, dtype=float),
        polygons=polygons,
        joins=joins,
        notes=notes,
    )
