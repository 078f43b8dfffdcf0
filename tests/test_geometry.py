"""Unit maps as real files have them: repaired shapes, a clean coverage, and the adjacency a reader sees.

The truth here is made independently of the repair code: the real Tokyo map as published (libpysal
``tokyomet262``: invalid rings and about 200 overlaps between neighbours), the shipped clean maps
with flaws applied by ``tests/flawed_maps.py``, and grids whose adjacency is known by arithmetic.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from libpysal import examples
from libpysal.graph import Graph

from territory_lib.cli import main
from territory_lib.config import load_config
from territory_lib.design import design_territories
from territory_lib.design.graph import build_unit_graph
from territory_lib.errors import DataError
from territory_lib.geo import to_equal_area
from territory_lib.geometry import clean_coverage, default_snap, repair_units
from territory_lib.io import load_market
from tests.flawed_maps import FLAWS, flawed_map


def _edges(graph) -> set[tuple[str, str]]:
    return {(graph.ids[i], graph.ids[j]) for i, j in graph.edges()}


def _shared(graph) -> dict[tuple[str, str], float]:
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    return {
        (graph.ids[i], graph.ids[j]): length
        for i, j, length in zip(rows, graph.indices, graph.shared, strict=True)
    }


@pytest.fixture(scope="module")
def tokyo() -> gpd.GeoDataFrame:
    path = examples.get_path("tokyomet262.shp")
    return gpd.read_file(path)


@pytest.fixture(scope="module")
def nc() -> gpd.GeoDataFrame:
    units = gpd.read_file(examples.get_path("sids2.shp")).set_crs(4267)
    return units.rename(columns={"FIPS": "unit_id"}).assign(unit_id=lambda f: f["unit_id"].astype(str))


def test_the_published_tokyo_map_is_flawed_as_found(tokyo: gpd.GeoDataFrame) -> None:
    # The premise: libpysal's perimeter contiguity refuses this map as published.
    assert (~tokyo.is_valid).sum() == 10
    with pytest.raises(ValueError, match="overlap"):
        Graph.build_contiguity(tokyo, rook=False, by_perimeter=True)


def test_tokyo_repaired_is_a_clean_coverage_with_every_repair_named(tokyo: gpd.GeoDataFrame) -> None:
    ids = tokyo["GEOCODE"].to_numpy()
    repaired = repair_units(tokyo.geometry, ids)
    assert len(repaired.geometry) == 262 and not repaired.stacked.any()
    assert repaired.geometry.is_valid.all()
    assert shapely.coverage_is_valid(repaired.geometry.to_numpy())
    invalid = set(ids[~tokyo.is_valid.to_numpy()])
    fixed = {r.unit_id for r in repaired.repairs if r.kind == "invalid shape repaired"}
    assert fixed == invalid
    assert any(r.kind == "overlap removed" for r in repaired.repairs)
    # Area is kept: overlaps are handed to one neighbour, never lost or doubled.
    before = tokyo.geometry.make_valid().union_all().area
    assert repaired.geometry.union_all().area == pytest.approx(before, rel=1e-3)


@pytest.mark.slow
def test_tokyo_designs_contiguous_balanced_territories(tokyo: gpd.GeoDataFrame) -> None:
    units = tokyo.assign(stores=1.0)
    result = design_territories(units, 8, {"stores": 0.05}, id_column="GEOCODE", seed=1)
    assert result.feasible and result.summary["all_contiguous"]
    assert any("invalid shape repaired" in note for note in result.notes)


@pytest.mark.parametrize("flaw", ["shrunk", "grown"])
def test_gaps_and_overlaps_of_5_m_give_the_clean_maps_adjacency(nc: gpd.GeoDataFrame, flaw: str) -> None:
    ids = nc["unit_id"].to_numpy()
    clean = build_unit_graph(to_equal_area(nc), ids)
    flawed = flawed_map(nc, flaw)
    assert not shapely.coverage_is_valid(to_equal_area(flawed).geometry.to_numpy(), gap_width=20)
    graph = build_unit_graph(to_equal_area(flawed), ids)
    assert _edges(graph) == _edges(clean)
    # Shared borders keep their length (a territory's perimeter, so its compactness, depends on it).
    before, after = _shared(clean), _shared(graph)
    errors = [abs(after[pair] - length) / length for pair, length in before.items() if length > 1000]
    assert np.median(errors) < 0.01 and np.quantile(errors, 0.95) < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("flaw", FLAWS)
def test_a_flawed_map_designs_as_well_as_the_clean_one(nc: gpd.GeoDataFrame, flaw: str) -> None:
    units = flawed_map(nc, flaw)
    if flaw == "duplicate_row":  # io drops the copy (tested below); the engine takes unique ids
        units = units.drop_duplicates("unit_id")
    band = {"BIR79": 0.05}
    clean = design_territories(nc, 6, band, seed=1)
    result = design_territories(units, 6, band, seed=1)
    assert result.feasible, result.notes
    assert result.summary["all_contiguous"]
    ratio = result.summary["mean_polsby_popper"] / clean.summary["mean_polsby_popper"]
    assert 0.8 <= ratio <= 1.2


def test_each_single_unit_flaw_is_reported_with_its_unit(nc: gpd.GeoDataFrame) -> None:
    victim = nc["unit_id"].iloc[int(np.argmax(shapely.get_num_coordinates(nc.geometry.to_numpy())))]
    ids_of = {}
    for flaw in ("bowtie", "spike", "stacked"):
        units = flawed_map(nc, flaw)
        repaired = repair_units(units.geometry, units["unit_id"].to_numpy())
        ids_of[flaw] = {(r.kind, r.unit_id) for r in repaired.repairs}
    assert ("invalid shape repaired", victim) in ids_of["bowtie"]
    assert ("invalid shape repaired", victim) in ids_of["spike"]
    assert ("lies on another unit", f"{victim}X") in ids_of["stacked"]


def test_a_stacked_unit_is_joined_to_the_unit_it_lies_on(nc: gpd.GeoDataFrame) -> None:
    units = flawed_map(nc, "stacked")
    ids = units["unit_id"].to_numpy()
    graph = build_unit_graph(to_equal_area(units), ids)
    twin = ids[-1].removesuffix("X")
    assert (twin, ids[-1]) in _edges(graph) or (ids[-1], twin) in _edges(graph)


def test_an_island_is_joined_to_the_nearest_unit(nc: gpd.GeoDataFrame) -> None:
    units = flawed_map(nc, "island")
    graph = build_unit_graph(to_equal_area(units), units["unit_id"].to_numpy())
    assert any("had no neighbour" in note and units["unit_id"].iloc[-1] in note for note in graph.notes)


def test_a_shape_with_no_area_is_an_error_naming_the_unit() -> None:
    line = shapely.Polygon([(0, 0), (1, 1), (2, 2), (0, 0)])  # collapses to a line
    units = gpd.GeoSeries([shapely.box(0, 0, 1, 1), line], crs=3857)
    with pytest.raises(DataError, match=r"county B .*no area"):
        repair_units(units, np.array(["A", "B"]), label="county")


@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(2, 5),
    cols=st.integers(2, 5),
    # GEOS buffers a box by a distance near 1e-17 into an empty polygon: start at 1 cm.
    gaps=st.lists(st.one_of(st.just(0.0), st.floats(0.01, 4.0)), min_size=25, max_size=25),
    grow=st.booleans(),
)
def test_a_jittered_grid_has_the_grids_adjacency(rows: int, cols: int, gaps: list[float], grow: bool) -> None:
    """Squares of 1 km, each shrunk or grown by up to 4 m: adjacency is the grid's (by arithmetic)."""
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    sign = 1.0 if grow else -1.0
    geoms = np.array(
        [
            shapely.box(c * 1000, r * 1000, c * 1000 + 1000, r * 1000 + 1000).buffer(
                sign * gaps[i], join_style="mitre"
            )
            for i, (r, c) in enumerate(cells)
        ]
    )
    expected = {
        (i, j)
        for i, (r1, c1) in enumerate(cells)
        for j, (r2, c2) in enumerate(cells)
        if i < j and max(abs(r1 - r2), abs(c1 - c2)) == 1
    }
    coverage = clean_coverage(geoms, np.array([str(i) for i in range(len(cells))]), snap=20.0)
    graph = Graph.build_contiguity(gpd.GeoSeries(coverage.geometry), rook=False)
    found = {(int(i), int(j)) for i, j in graph.adjacency.index if i < j}
    # Diagonal neighbours meet at one corner; after cleaning they must still touch there.
    assert found == expected


def test_default_snap_scales_with_the_units() -> None:
    small = np.array([shapely.box(0, 0, 1000, 1000)] * 3)
    large = np.array([shapely.box(0, 0, 100_000, 100_000)] * 3)
    assert default_snap(small) == pytest.approx(2.0)
    assert default_snap(large) == pytest.approx(200.0)


def test_units_file_with_flaws_loads_with_notes_naming_units(make_market, tmp_path) -> None:
    def damage(folder):
        units = gpd.read_file(folder / "units.gpkg")
        flawed_map(units, "duplicate_row").to_file(folder / "units.gpkg")

    market = load_market(load_config(make_market(damage)))
    assert len(market.units) == 159 and market.units["unit_id"].is_unique
    assert any("repeat an earlier row exactly" in note for note in market.warnings)


def test_check_prints_each_repair_with_its_unit(make_market, capsys) -> None:
    def damage(folder):
        units = gpd.read_file(folder / "units.gpkg")
        flawed_map(units, "bowtie").to_file(folder / "units.gpkg")

    path = make_market(damage)
    victim = load_market(load_config(path)).repairs
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "invalid shape repaired" in out
    assert any(r.unit_id in out for r in victim if r.kind == "invalid shape repaired")


def test_params_snap_zero_keeps_gaps_open(make_market) -> None:
    def damage(folder):
        units = gpd.read_file(folder / "units.gpkg")
        flawed_map(units, "shrunk").to_file(folder / "units.gpkg")

    closed = load_market(load_config(make_market(damage)))
    assert any(r.kind == "gap closed" for r in closed.repairs)
    kept = load_market(load_config(make_market(damage, geometry={"snap": 0})))
    assert not any(r.kind == "gap closed" for r in kept.repairs)


@pytest.mark.slow
def test_enclaves_neighbour_the_unit_around_them_and_multipolygons_keep_working() -> None:
    """Virginia's independent cities sit inside counties: each must neighbour its host county."""
    virginia = gpd.read_file(examples.get_path("vautm17n.shp"))
    ids = virginia["FIPS"].astype(str).to_numpy()
    filled = shapely.polygons(shapely.get_exterior_ring(shapely.get_parts(virginia.geometry.to_numpy())))
    owner = shapely.get_parts(virginia.geometry.to_numpy(), return_index=True)[1]
    hosts = {}
    for part, unit in zip(filled, owner, strict=True):
        for other in np.flatnonzero(shapely.contains(part, virginia.geometry.to_numpy())):
            if other != unit:
                hosts[ids[other]] = ids[unit]
    assert len(hosts) >= 10
    graph = build_unit_graph(to_equal_area(virginia), ids)
    edges = _edges(graph)
    for enclave, host in hosts.items():
        assert (enclave, host) in edges or (host, enclave) in edges, enclave
    result = design_territories(virginia.assign(w=1.0), 8, {"w": 0.05}, id_column="FIPS", seed=1)
    assert result.feasible and result.summary["all_contiguous"]
