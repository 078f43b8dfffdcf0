"""A corpus of flawed unit maps made from the shipped clean ones, as real exports damage them.

Each flaw is applied in an equal-area projection (metres) and the map is returned in its own CRS:
every unit shrunk or grown by 5 m (gaps or overlaps along every border), a bow-tie ring, an
out-and-back spike, a row repeated exactly, a unit drawn on top of another under a new id, and an
island off the map. None of them is cleaned up by the code under test's own functions.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely

from territory_lib.geo import equal_area_crs

FLAWS = ("shrunk", "grown", "bowtie", "spike", "duplicate_row", "stacked", "island")


def _victim(metric: gpd.GeoDataFrame) -> int:
    """The unit the single-unit flaws damage: the one with the most vertices (a long border)."""
    return int(np.argmax(shapely.get_num_coordinates(metric.geometry.to_numpy())))


def _bowtie(polygon: shapely.Geometry) -> shapely.Geometry:
    """Swap the two closest consecutive vertices of the outer ring: the ring crosses itself."""
    polygon = max(shapely.get_parts(polygon), key=lambda part: part.area)
    ring = np.asarray(polygon.exterior.coords)[:-1]
    gaps = np.linalg.norm(np.diff(np.vstack([ring, ring[:1]]), axis=0), axis=1)
    i = int(np.argmin(gaps[1:-2])) + 1
    ring[[i, i + 1]] = ring[[i + 1, i]]
    # A figure of eight: the crossing segments now pass through each other.
    return shapely.Polygon(np.vstack([ring, ring[:1]]))


def _spike(polygon: shapely.Geometry, length: float = 2_000.0) -> shapely.Geometry:
    """Add an out-and-back spike of ``length`` metres at the vertex farthest from the centre."""
    polygon = max(shapely.get_parts(polygon), key=lambda part: part.area)
    ring = np.asarray(polygon.exterior.coords)[:-1]
    centre = np.asarray(polygon.centroid.coords[0])
    i = int(np.argmax(np.linalg.norm(ring - centre, axis=1)))
    direction = (ring[i] - centre) / np.linalg.norm(ring[i] - centre)
    tip = ring[i] + direction * length
    spiked = np.vstack([ring[: i + 1], [tip], ring[i:]])
    return shapely.Polygon(np.vstack([spiked, spiked[:1]]))


def flawed_map(units: gpd.GeoDataFrame, flaw: str, id_column: str = "unit_id") -> gpd.GeoDataFrame:
    """Return a copy of ``units`` with ``flaw`` (one of :data:`FLAWS`) applied, in the same CRS."""
    if flaw not in FLAWS:
        raise ValueError(f"unknown flaw {flaw!r}; choose one of {FLAWS}")
    metric = units.to_crs(equal_area_crs(units)).reset_index(drop=True)
    geoms = metric.geometry.to_numpy().copy()
    victim = _victim(metric)
    if flaw in {"shrunk", "grown"}:
        geoms = shapely.buffer(geoms, -5.0 if flaw == "shrunk" else 5.0, join_style="mitre")
    elif flaw == "bowtie":
        geoms[victim] = _bowtie(geoms[victim])
    elif flaw == "spike":
        geoms[victim] = _spike(geoms[victim])
    metric = metric.set_geometry(geoms)
    if flaw == "duplicate_row":
        metric = gpd.GeoDataFrame(
            metric.iloc[np.r_[np.arange(len(metric)), victim]].reset_index(drop=True), crs=metric.crs
        )
    elif flaw in {"stacked", "island"}:
        extra = metric.iloc[[victim]].copy()
        extra[id_column] = f"{extra[id_column].iloc[0]}X"
        if "name" in extra:
            extra["name"] = f"{extra['name'].iloc[0]} ({flaw})"
        if flaw == "island":
            _, miny, maxx, maxy = metric.total_bounds
            size = np.sqrt(np.median(metric.area)) / 3
            x, y = maxx + 20_000.0, (miny + maxy) / 2
            extra = extra.set_geometry([shapely.box(x, y, x + size, y + size)], crs=metric.crs)
        metric = gpd.GeoDataFrame(
            gpd.pd.concat([metric, extra], ignore_index=True), geometry="geometry", crs=metric.crs
        )
    return metric.to_crs(units.crs)
