"""Step 2 around the engine: balance targets from params, rep anchoring, the CRM tables."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

from territory_lib import territories
from territory_lib.config import load_config
from territory_lib.design import DesignResult
from territory_lib.errors import ConfigError
from territory_lib.territories import balance_targets, design_plan, plan_tables


def grid(size: int = 6) -> gpd.GeoDataFrame:
    """A size×size grid of 10 km squares near Atlanta, each with one account of equal potential."""
    cells = [
        box(x * 0.1 - 84.4, y * 0.1 + 33.0, x * 0.1 - 84.3, y * 0.1 + 33.1)
        for y in range(size)
        for x in range(size)
    ]
    return gpd.GeoDataFrame(
        {
            "unit_id": [f"u{i:02d}" for i in range(len(cells))],
            "name": [f"Cell {i}" for i in range(len(cells))],
            "potential": 100.0,
            "accounts": 1,
        },
        geometry=cells,
        crs=4326,
    )


def reps_at(*homes: tuple[float, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rep_id": [f"R{i}" for i in range(len(homes))],
            "name": [f"Rep {i}" for i in range(len(homes))],
            "home_lat": [lat for lat, _ in homes],
            "home_lon": [lon for _, lon in homes],
            "capacity": 20.0,
        }
    )


@pytest.fixture
def config(make_market):
    return load_config(
        make_market(territories=2, design={"balance": [{"measure": "potential", "tolerance": 0.05}]})
    )


def test_unknown_balance_measure_names_the_params_key(make_market) -> None:
    config = load_config(make_market(design={"balance": [{"measure": "revenue"}]}))
    with pytest.raises(
        ConfigError, match=r"design\.balance\[0\]\.measure: revenue' is not a numeric unit measure"
    ):
        balance_targets(config, grid())


@pytest.mark.slow
def test_territories_grow_from_rep_homes_when_balance_allows(config) -> None:
    plan = design_plan(config, grid(), reps_at((33.05, -84.35), (33.55, -83.85)))
    assert plan.anchored and plan.notes == [] and plan.result.feasible
    assignment = plan.result.assignment
    assert assignment["u00"] != assignment["u35"]


def test_reps_in_one_unit_fall_back_to_a_free_plan_and_say_why(config) -> None:
    plan = design_plan(config, grid(), reps_at((33.05, -84.35), (33.051, -84.349)))
    assert not plan.anchored and plan.result.feasible
    assert len(plan.notes) == 1 and "drawn freely" in plan.notes[0]


@pytest.mark.slow
def test_plan_tables_give_every_account_a_territory_and_a_rep(config) -> None:
    units = grid()
    plan = design_plan(config, units, reps_at((33.05, -84.35), (33.55, -83.85)))
    accounts = pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(len(units))],
            "unit_id": units["unit_id"],
            "lat": units.geometry.representative_point().y,
            "lon": units.geometry.representative_point().x,
            "potential": 100.0,
        }
    )
    alignment, rep_assignment, by_rep = plan_tables(
        plan.result.assignment, units, accounts, reps_at((33.05, -84.35), (33.55, -83.85))
    )
    assert set(alignment["territory_id"]) == set(rep_assignment["territory_id"])
    assert list(by_rep.columns) == ["account_id", "territory_id", "rep_id"]
    assert by_rep["rep_id"].ne("").all() and by_rep["account_id"].is_unique and len(by_rep) == len(units)
    # The rep living in the first cell covers the territory holding it.
    home = rep_assignment.set_index("rep_id").loc["R0", "territory_id"]
    assert home == plan.result.assignment["u00"]


def test_step2_metrics_carry_the_keys_ci_gates_read(config) -> None:
    import json

    from territory_lib.io import load_market
    from territory_lib.market import unit_metrics

    market = load_market(config)
    metrics = unit_metrics(market)
    targets = territories.balance_targets(config, metrics)
    design = territories.design_plan(config, metrics, market.reps)
    recorded = json.loads(
        json.dumps(territories.step2_metrics(design.result, targets, design.anchored, None))
    )
    worst = recorded["max_deviation"]["potential"]
    assert worst == pytest.approx(design.result.territories["potential_dev"].abs().max())
    assert recorded["within_band"] == (worst <= 0.05 + 1e-9)
    assert recorded["contiguous"] is True and 0 < recorded["mean_polsby_popper"] < 1


def _missing_plan(worst: float) -> DesignResult:
    """A two-territory plan whose worst potential deviation is ``worst`` (out of a ±5 % band)."""
    table = pd.DataFrame({"territory_id": ["T01", "T02"], "potential_dev": [worst, -worst]})
    return DesignResult(
        assignment=pd.Series(dtype=object),
        territories=table,
        summary={"max_dev_potential": worst},
        moves=pd.DataFrame(),
        feasible=False,
    )


@pytest.mark.parametrize(
    ("anchored_dev", "free_dev", "kept"), [(0.40, 0.24, "free"), (0.20, 0.24, "anchored")]
)
def test_when_both_attempts_miss_a_band_the_plan_closer_to_the_bands_is_kept(
    config, monkeypatch: pytest.MonkeyPatch, anchored_dev: float, free_dev: float, kept: str
) -> None:
    plans = {"anchored": _missing_plan(anchored_dev), "free": _missing_plan(free_dev)}
    monkeypatch.setattr(
        territories,
        "design_territories",
        lambda *args, seeds=None, **kwargs: plans["anchored" if seeds is not None else "free"],
    )
    plan = design_plan(config, grid(), reps_at((33.05, -84.35), (33.55, -83.85)))
    assert plan.result is plans[kept] and plan.anchored == (kept == "anchored")
