"""Step 2 is bounded by counted work, not the clock: same data, seed and budget give the same plan."""

from __future__ import annotations

import time

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import territory_lib.territories as territories
from territory_lib.config import load_config
from territory_lib.design import design_territories
from territory_lib.design.budget import default_work_budget
from territory_lib.design.diagnose import closest_plan, node_limit
from territory_lib.design.graph import build_unit_graph
from territory_lib.errors import ConfigError

BALANCE = {"BIR79": 0.01}


def fast_clock(factor: float):
    """A ``time.perf_counter`` that runs ``factor`` times faster: a machine that slow, or that busy."""
    real = time.perf_counter
    origin = real()
    return lambda: origin + (real() - origin) * factor


@pytest.mark.slow
def test_plan_does_not_depend_on_time_limit_or_clock_speed(nc_counties, monkeypatch) -> None:
    first = design_territories(nc_counties, 6, BALANCE, id_column="FIPS", seed=3)
    generous = design_territories(nc_counties, 6, BALANCE, id_column="FIPS", seed=3, time_limit=3600)
    # Every second of search now looks like 1,000 s: a clock-bound search would stop at once.
    monkeypatch.setattr(time, "perf_counter", fast_clock(1000.0))
    slowed = design_territories(nc_counties, 6, BALANCE, id_column="FIPS", seed=3)
    pd.testing.assert_series_equal(first.assignment, generous.assignment)
    pd.testing.assert_series_equal(first.assignment, slowed.assignment)
    assert first.work == generous.work == slowed.work
    assert 0 < first.work < first.work_budget == default_work_budget(len(nc_counties))
    assert not any("time limit" in note or "work budget" in note for note in slowed.notes)


def test_a_plan_cut_by_the_safety_time_limit_says_so(nc_counties, monkeypatch) -> None:
    monkeypatch.setattr(time, "perf_counter", fast_clock(1e6))
    result = design_territories(nc_counties, 6, BALANCE, id_column="FIPS", seed=3, time_limit=5)
    assert any("safety time limit (5 s)" in note and "machine" in note for note in result.notes)
    assert result.work < result.work_budget


@pytest.mark.slow
def test_a_small_work_budget_gives_the_same_plan_twice_and_says_it_was_spent(nc_counties) -> None:
    full = design_territories(nc_counties, 6, BALANCE, id_column="FIPS", seed=3)
    budget = full.work // 10
    first = design_territories(nc_counties, 6, BALANCE, id_column="FIPS", seed=3, work_budget=budget)
    second = design_territories(
        nc_counties, 6, BALANCE, id_column="FIPS", seed=3, work_budget=budget, time_limit=3600
    )
    pd.testing.assert_series_equal(first.assignment, second.assignment)
    assert first.work == second.work and budget <= first.work < full.work
    assert first.work_budget == budget
    assert any(f"whole work budget ({budget:,} work units)" in note for note in first.notes)
    assert first.summary["all_contiguous"]


@pytest.mark.parametrize("bad", [0, -5, 2.5, True])
def test_work_budget_must_be_a_positive_whole_number(nc_counties, bad) -> None:
    with pytest.raises(ConfigError, match="work_budget must be a positive whole number"):
        design_territories(nc_counties, 6, BALANCE, id_column="FIPS", work_budget=bad)


def strip_market() -> gpd.GeoDataFrame:
    """Six 10 km cells in a row near Atlanta; the west cell carries half the potential."""
    cells = [shapely.box(-84.4 + 0.1 * i, 33.0, -84.3 + 0.1 * i, 33.1) for i in range(6)]
    return gpd.GeoDataFrame(
        {
            "unit_id": [f"u{i}" for i in range(6)],
            "name": [f"Cell {i}" for i in range(6)],
            "potential": [500.0, 100.0, 100.0, 100.0, 100.0, 100.0],
            "accounts": 1,
        },
        geometry=cells,
        crs=4326,
    )


def reps_in(*cells: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rep_id": [f"R{i}" for i in range(len(cells))],
            "name": [f"Rep {i}" for i in range(len(cells))],
            "home_lat": 33.05,
            "home_lon": [-84.35 + 0.1 * c for c in cells],
            "capacity": 20.0,
        }
    )


def test_params_work_budget_is_shared_by_the_anchored_and_free_attempts(make_market, monkeypatch) -> None:
    config = load_config(
        make_market(
            territories=2,
            design={"balance": [{"measure": "potential", "tolerance": 0.05}], "work_budget": 90_001},
        )
    )
    calls = []

    def recording(*args, **kwargs):
        result = design_territories(*args, **kwargs)
        calls.append((kwargs.get("seeds") is not None, kwargs["work_budget"], result.work))
        return result

    monkeypatch.setattr(territories, "design_territories", recording)
    # Reps in u1 and u4: u0 can only join u1's territory, which then carries 6 of 10; a free plan
    # (u0 alone against the rest) balances.
    plan = territories.design_plan(config, strip_market(), reps_in(1, 4))
    assert not plan.anchored and plan.result.feasible
    (anchored, half, spent), (free_attempt, rest, _) = calls
    assert anchored and not free_attempt
    assert half == 45_000 and 0 < spent <= half
    assert rest == 90_001 - spent
    assert plan.result.work_budget == rest


def test_params_work_budget_reaches_the_engine_and_gives_the_same_plan(make_market, monkeypatch) -> None:
    def market(budget: int | None) -> territories.TerritoryPlan:
        design = {"balance": [{"measure": "potential", "tolerance": 0.05}]}
        if budget is not None:
            design["work_budget"] = budget
        config = load_config(make_market(territories=2, design=design))
        return territories.design_plan(config, strip_market(), reps_in(0, 5))

    default = market(None)
    assert default.result.work_budget == default_work_budget(6) // 2
    small = market(2_000)
    assert small.result.work_budget == 1_000
    monkeypatch.setattr(time, "perf_counter", fast_clock(1000.0))
    again = market(2_000)
    pd.testing.assert_series_equal(small.result.assignment, again.result.assignment)


def test_params_reject_a_work_budget_that_is_not_positive(make_market) -> None:
    path = make_market(design={"work_budget": 0})
    with pytest.raises(ConfigError, match="work_budget"):
        load_config(path)


@pytest.mark.slow
def test_exact_model_stops_by_node_work_not_by_the_clock() -> None:
    # 40 Voronoi cells, four anchored territories, a ±0.1 % band: far more nodes than allowed.
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 1000, size=(40, 2))
    cells = shapely.voronoi_polygons(shapely.multipoints(points), extend_to=shapely.box(0, 0, 1000, 1000))
    cells = shapely.intersection(np.asarray(shapely.get_parts(cells)), shapely.box(0, 0, 1000, 1000))
    order = [next(i for i, c in enumerate(cells) if c.contains(shapely.Point(p))) for p in points]
    units = gpd.GeoDataFrame(
        {"unit_id": [f"U{i}" for i in range(40)], "w": rng.lognormal(0, 0.6, 40)},
        geometry=cells[order],
        crs=3857,
    )
    graph = build_unit_graph(units, units["unit_id"].to_numpy())
    share = units[["w"]].to_numpy() / units["w"].sum()
    start = np.argmin(((points[:, None] - points[None, :4]) ** 2).sum(axis=2), axis=1)
    args = (graph, share, np.full((4, 1), 0.25), np.array([0.001]), [[0], [1], [2], [3]], start)
    first = closest_plan(*args, time_limit=60.0, node_work=2_000)
    second = closest_plan(*args, time_limit=60.0, node_work=2_000)
    assert not first.proved and not first.timed_out
    assert np.array_equal(first.labels, second.labels) and first.excess == second.excess
    cut = closest_plan(*args, time_limit=0.5, node_work=None)
    assert cut.timed_out and not cut.proved


def test_node_limit_shrinks_with_the_model() -> None:
    assert node_limit(150_000, 3_500) == 42
    assert node_limit(150_000, 1_000_000) == 10
    assert node_limit(None, 100) is None
