"""Benchmark instances for territory design, built offline from data shipped in PyPI packages.

- ``nc``: North Carolina's 100 counties (libpysal ``sids2``), births 1979, k = 6, ±1 %.
- ``georgia``: Georgia's 159 counties (libpysal ``georgia``), 1990 population, k = 8, ±1 %.
- ``ctdp500``: 500 Voronoi cells of seeded uniform points in a 1000 × 1000 square with three activity
  measures drawn as in Ríos-Mercado & Fernández (2009) — customers U[4, 20], demand U[15, 400],
  workload U[15, 100] — k = 10, ±5 % on each.
- ``us48``: the 48 contiguous states (libpysal ``us_income``), measure ``zips`` = number of standard
  ZIP codes per state (``zipcodes`` package), k = 6, ±5 % (a second instance for the MIP bound).
- ``nc_realign`` and ``georgia_realign``: realignment. The current plan is the engine's own plan
  for ``nc``/``georgia`` (seed 0) with 6 % of the units, drawn at random (seed 3) among boundary
  units, handed one by one to a random neighbouring territory; the plan must come back within the
  band while moving at most 10 % of the units.
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
    current: pd.Series | None = None
    max_disruption: float | None = None

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


def us48() -> Instance:
    """The 48 contiguous states, standard ZIP codes per state, k = 6, ±5 %."""
    import zipcodes

    units = gpd.read_file(examples.get_path("us48.shp")).set_crs(4269)
    counts = pd.Series(
        [z["state"] for z in zipcodes.list_all() if z["zip_code_type"] == "STANDARD"]
    ).value_counts()
    units["zips"] = units["STATE_ABBR"].map(counts).fillna(0).astype(float)
    return Instance("us48", units, "STATE_ABBR", ["zips"], [0.05], 6)


def _perturbed(base: Instance, share: float = 0.06, cap: float = 0.10, seed: int = 3) -> Instance:
    """``base`` with a current plan: the engine's plan with ``share`` of the units moved at random."""
    from territory_lib.design import design_territories
    from territory_lib.design.graph import build_unit_graph
    from territory_lib.geo import to_equal_area

    plan = design_territories(base.units, base.k, base.balance, id_column=base.id_column, seed=0)
    labels = plan.assignment.to_numpy().copy()
    ids = base.units[base.id_column].astype(str).to_numpy()
    graph = build_unit_graph(to_equal_area(base.units), ids)
    nbrs = graph.neighbour_lists()
    rng = np.random.default_rng(seed)
    moved: set[int] = set()
    while len(moved) < round(share * len(ids)):
        unit = int(rng.integers(len(ids)))
        others = sorted({labels[v] for v in nbrs[unit]} - {labels[unit]})
        if unit in moved or not others:
            continue
        labels[unit] = others[int(rng.integers(len(others)))]
        moved.add(unit)
    current = pd.Series(labels, index=pd.Index(ids, name=base.id_column), name="current")
    name = f"{base.name}_realign"
    return Instance(name, base.units, base.id_column, base.measures, base.tolerance, base.k, current, cap)


def nc_realign() -> Instance:
    """NC births, k = 6, ±1 %, from a perturbed current plan, at most 10 % of units moved."""
    return _perturbed(nc())


def georgia_realign() -> Instance:
    """Georgia population, k = 8, ±1 %, from a perturbed current plan, at most 10 % moved."""
    return _perturbed(georgia())


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


INSTANCES = {
    "nc": nc,
    "georgia": georgia,
    "ctdp500": ctdp500,
    "us48": us48,
    "nc_realign": nc_realign,
    "georgia_realign": georgia_realign,
    "zips": zips,
}
