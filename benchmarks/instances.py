"""Benchmark instances for territory design, built offline from data shipped in PyPI packages.

- ``nc``: North Carolina's 100 counties (libpysal ``sids2``), births 1979, k = 6, ±1 %.
- ``georgia``: Georgia's 159 counties (libpysal ``georgia``), 1990 population, k = 8, ±1 %.
- ``ctdp500``: 500 Voronoi cells of seeded uniform points in a 1000 × 1000 square with three activity
  measures drawn as in Ríos-Mercado & Fernández (2009) — customers U[4, 20], demand U[15, 400],
  workload U[15, 100] — k = 10, ±5 % on each.
- ``zips``: Voronoi cells of the standard (not PO box or unique) ZIP centroids of the ``zipcodes``
  package in the contiguous US,
  clipped to the union of libpysal ``us_income`` ``us48.shp`` states (EPSG:4269), k = 200, ±1 %.
  Measure ``potential``: a seeded lognormal (μ = 3, σ = 0.5, seed 42) per ZIP, so that the measure
  is heavier where ZIPs are dense, like a real market potential, with no single ZIP dominant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from libpysal import examples

CACHE = Path(__file__).resolve().parent / ".cache"
LOWER48_EXCLUDED = {"AK", "HI", "PR", "VI", "GU", "AS", "MP", "FM", "MH", "PW", "AA", "AE", "AP"}


@dataclass
class Instance:
    """A benchmark instance: units, id column, measures with tolerances, number of territories."""

    name: str
    units: gpd.GeoDataFrame
    id_column: str
    measures: list[str]
    tolerance: list[float]
    k: int

    @property
    def balance(self) -> dict[str, float]:
        """Mapping measure → tolerance, as ``design_territories`` takes it."""
        return dict(zip(self.measures, self.tolerance, strict=True))


def nc() -> Instance:
    """North Carolina counties, BIR79, k = 6, ±1 %."""
    units = gpd.read_file(examples.get_path("sids2.shp")).set_crs(4267)
    units["FIPS"] = units["FIPS"].astype(str)
    return Instance("nc", units, "FIPS", ["BIR79"], [0.01], 6)


def georgia() -> Instance:
    """Georgia counties, TotPop90, k = 8, ±1 %."""
    units = gpd.read_file(examples.get_path("G_utm.shp")).set_crs(26917)
    units["AreaKey"] = units["AreaKey"].astype(str)
    return Instance("georgia", units, "AreaKey", ["TotPop90"], [0.01], 8)


def _voronoi(points: np.ndarray, clip: shapely.Geometry) -> np.ndarray:
    """Voronoi cell of each point (in input order), clipped to ``clip``."""
    cells = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=clip, ordered=True)
    cells = np.asarray(shapely.get_parts(cells))
    return shapely.intersection(cells, clip)


def ctdp500(seed: int = 0) -> Instance:
    """500 Voronoi units with three activity measures (CTDP style), k = 10, ±5 % each."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1000, size=(500, 2))
    cells = _voronoi(pts, shapely.box(0, 0, 1000, 1000))
    units = gpd.GeoDataFrame(
        {
            "unit_id": [f"U{i:03d}" for i in range(500)],
            "customers": rng.integers(4, 21, 500).astype(float),
            "demand": rng.uniform(15, 400, 500).round(1),
            "workload": rng.uniform(15, 100, 500).round(1),
        },
        geometry=cells,
        crs=3857,
    )
    return Instance("ctdp500", units, "unit_id", ["customers", "demand", "workload"], [0.05] * 3, 10)


def zips(seed: int = 42) -> Instance:
    """~30,000 US ZIP Voronoi cells (contiguous US), seeded lognormal potential, k = 200, ±1 %."""
    path = CACHE / f"zips_{seed}.parquet"
    if path.exists():
        units = gpd.read_parquet(path)
    else:
        import zipcodes

        rows = [
            (z["zip_code"], float(z["long"]), float(z["lat"]))
            for z in zipcodes.list_all()
            if z["zip_code_type"] == "STANDARD"
            and z["state"] not in LOWER48_EXCLUDED
            and z["lat"]
            and z["long"]
        ]
        frame = pd.DataFrame(rows, columns=["zip", "lon", "lat"]).drop_duplicates(["lon", "lat"])
        states = gpd.read_file(examples.get_path("us48.shp")).set_crs(4269)
        land = shapely.union_all(shapely.make_valid(states.geometry.to_numpy()))
        inside = shapely.contains_xy(land, frame["lon"].to_numpy(), frame["lat"].to_numpy())
        frame = frame[inside].sort_values("zip").reset_index(drop=True)
        cells = _voronoi(frame[["lon", "lat"]].to_numpy(), land)
        keep = ~shapely.is_empty(cells)
        frame, cells = frame[keep].reset_index(drop=True), cells[keep]
        # Clipping can leave slivers as collections; keep the polygonal part of each cell.
        cells = np.array([_polygonal(c) for c in cells], dtype=object)
        rng = np.random.default_rng(seed)
        frame["potential"] = rng.lognormal(3.0, 0.5, len(frame)).round(2)
        units = gpd.GeoDataFrame(frame, geometry=cells, crs=4269)
        CACHE.mkdir(exist_ok=True)
        units.to_parquet(path)
    return Instance("zips", units, "zip", ["potential"], [0.01], 200)


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts)


INSTANCES = {"nc": nc, "georgia": georgia, "ctdp500": ctdp500, "zips": zips}
