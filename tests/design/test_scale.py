"""Large-map paths of the engine (run on small maps with the large-map threshold lowered)."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from territory_lib.design import BalanceTarget, design_territories, engine
from territory_lib.design.construct import grow_balanced
from territory_lib.design.graph import build_unit_graph
from territory_lib.design.improve import LocalSearch
from territory_lib.geo import to_equal_area


@pytest.mark.parametrize("k", [2, 7, 25])
def test_contiguity_check_agrees_with_a_full_search(nc_counties: gpd.GeoDataFrame, k: int) -> None:
    projected = to_equal_area(nc_counties)
    graph = build_unit_graph(projected, nc_counties["FIPS"].astype(str).to_numpy())
    share = nc_counties[["BIR79"]].to_numpy(float) / nc_counties["BIR79"].sum()
    labels = grow_balanced(
        graph, share[:, 0], np.full(k, 1 / k), [[] for _ in range(k)], np.random.default_rng(k)
    )
    ls = LocalSearch(graph, labels, share, np.full((k, 1), 1 / k), np.array([0.05]), np.ones(graph.n, bool))
    matrix = graph.matrix().tocsr()
    checked = 0
    for j in ls.boundary_units():
        members = np.flatnonzero(labels == labels[j])
        rest = members[members != j]
        if len(rest) == 0:
            continue
        pieces = connected_components(sparse.csr_matrix(matrix[rest][:, rest]), directed=False)[0]
        assert ls._stays_connected(j, int(labels[j])) == (pieces == 1), j
        checked += 1
    assert checked > 10


def test_free_design_reuses_the_plan_an_anchored_design_was_drawn_from(
    nc_counties: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "LARGE_INSTANCE", 50)
    drawn = []
    bisect = engine.bisect_plan
    monkeypatch.setattr(engine, "bisect_plan", lambda *a, **kw: drawn.append(1) or bisect(*a, **kw))
    units = nc_counties.assign(FIPS=nc_counties["FIPS"].astype(str))
    # Four seeds in neighbouring counties of the north-east.
    seeds = ["37091", "37131", "37083", "37015"]
    bands = [BalanceTarget("BIR79", 0.02)]
    anchored = design_territories(units, 4, bands, id_column="FIPS", seeds=seeds, seed=3, work_budget=400_000)
    free = design_territories(units, 4, bands, id_column="FIPS", seed=3, work_budget=800_000 - anchored.work)
    assert len(drawn) == 1  # the free design took the anchored design's free plan
    engine._FREE_PLANS.clear()
    fresh = design_territories(units, 4, bands, id_column="FIPS", seed=3, work_budget=800_000)
    assert len(drawn) == 2
    assert free.assignment.equals(fresh.assignment) and free.work == fresh.work
