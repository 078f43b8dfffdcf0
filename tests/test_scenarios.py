"""Step 2's scenarios (k-1, k, k+1 and named variants), the sizing curve and the balance bars."""

from __future__ import annotations

import html

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from territory_lib import scenarios
from territory_lib.config import BalanceSpec, MarketConfig, ScenarioSpec
from territory_lib.design import BalanceTarget, design_territories
from territory_lib.errors import ConfigError
from territory_lib.presentation import show_figure
from territory_lib.steps import step_settings

TARGETS = [BalanceTarget("potential", 0.10)]


@pytest.fixture(scope="module")
def grid() -> gpd.GeoDataFrame:
    """A 7 x 7 grid of square units about 10 km wide, with uneven potential and accounts."""
    rng = np.random.default_rng(3)
    cells = [(x, y) for y in range(7) for x in range(7)]
    return gpd.GeoDataFrame(
        {
            "unit_id": [f"U{i:02d}" for i in range(len(cells))],
            "potential": rng.integers(50, 150, len(cells)).astype(float) * 1000,
            "accounts": rng.integers(5, 25, len(cells)).astype(float),
        },
        geometry=[
            shapely.box(-84 + x * 0.1, 33 + y * 0.1, -84 + (x + 1) * 0.1, 33 + (y + 1) * 0.1)
            for x, y in cells
        ],
        crs=4326,
    )


@pytest.fixture(scope="module")
def config(georgia_config: MarketConfig) -> MarketConfig:
    wider = ScenarioSpec(
        name="Potential within ±20%", balance=[BalanceSpec(measure="potential", tolerance=0.2)]
    )
    return georgia_config.model_copy(update={"territories": 5, "scenarios": [wider]})


@pytest.fixture(scope="module")
def planned(config: MarketConfig, grid: gpd.GeoDataFrame) -> tuple[list[scenarios.Scenario], list[str]]:
    plan = design_territories(grid, 5, TARGETS, seed=config.design.seed, work_budget=20_000)
    return scenarios.plan_scenarios(config, grid, plan, TARGETS)


def test_scenarios_table_has_one_fewer_the_plan_one_more_and_the_named_variant(
    planned: tuple[list[scenarios.Scenario], list[str]], grid: gpd.GeoDataFrame
) -> None:
    rows, notes = planned
    table = scenarios.scenario_table(rows, grid, capacity=60.0)
    assert table["territories"].tolist() == [4, 5, 6, 5]
    assert table["scenario"].tolist()[:3] == [
        "4 territories (one fewer)",
        "5 territories (the plan)",
        "6 territories (one more)",
    ]
    assert table["scenario"].iloc[3] == "Potential within ±20%"
    assert table["max_dev_potential"].notna().all() and (table["max_dev_potential"] >= 0).all()
    # Each row's deviation is its own plan's: recomputed from the assignment it reports.
    for row, deviation in zip(rows, table["max_dev_potential"], strict=True):
        totals = scenarios.territory_totals(row.result.assignment, grid, ["potential"])["potential"]
        assert deviation == pytest.approx((totals / totals.mean() - 1).abs().max(), abs=1e-6)
        assert len(totals) == row.k
    assert table["accounts_per_rep"].tolist() == pytest.approx(
        [grid["accounts"].sum() / k for k in (4, 5, 6, 5)]
    )
    assert table["within_bands"].iloc[3].endswith("(potential ±20%)")
    assert "work units" in notes[0]


def test_scenarios_are_deterministic(config: MarketConfig, grid: gpd.GeoDataFrame, planned) -> None:
    plan = design_territories(grid, 5, TARGETS, seed=config.design.seed, work_budget=20_000)
    again, _ = scenarios.plan_scenarios(config, grid, plan, TARGETS)
    for first, second in zip(planned[0], again, strict=True):
        assert first.result.assignment.equals(second.result.assignment)


def _same_rows(first: list[scenarios.Scenario], second: list[scenarios.Scenario]) -> None:
    assert [row.name for row in first] == [row.name for row in second]
    for one, other in zip(first, second, strict=True):
        assert one.result.assignment.equals(other.result.assignment)
        pd.testing.assert_frame_equal(one.result.territories, other.result.territories)
        timeless = [{k: v for k, v in row.result.summary.items() if k != "seconds"} for row in (one, other)]
        assert timeless[0] == timeless[1]


def test_scenarios_designed_in_a_child_process_are_the_ones_designed_here(
    config: MarketConfig, grid: gpd.GeoDataFrame, planned
) -> None:
    ahead = scenarios.ScenariosAhead(config, grid, TARGETS)
    assert ahead._process is not None  # Linux, two cores: the child designs them
    rows, notes = scenarios.plan_scenarios(config, grid, planned[0][1].result, TARGETS, ahead=ahead)
    _same_rows(rows, planned[0])
    assert notes == planned[1]


@pytest.mark.parametrize("how", ["raises", "dies"])
def test_a_child_that_fails_leaves_the_scenarios_to_this_process(
    config: MarketConfig,
    grid: gpd.GeoDataFrame,
    planned,
    how: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import os

    parent, design_rows = os.getpid(), scenarios._design_rows

    def failing_in_the_child(*args, **kwargs):
        if os.getpid() != parent:
            if how == "dies":
                os._exit(1)
            raise MemoryError("no memory left for the scenarios")
        return design_rows(*args, **kwargs)

    monkeypatch.setattr(scenarios, "_design_rows", failing_in_the_child)
    ahead = scenarios.ScenariosAhead(config, grid, TARGETS)
    rows, _ = scenarios.plan_scenarios(config, grid, planned[0][1].result, TARGETS, ahead=ahead)
    _same_rows(rows, planned[0])
    reason = "MemoryError: no memory left" if how == "raises" else "ended without sending them"
    assert "designed again in this process" in caplog.text and reason in caplog.text


def test_large_maps_skip_the_scenarios_and_say_so(
    config: MarketConfig, grid: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scenarios, "SCENARIO_MAX_UNITS", 40)
    plan = design_territories(grid, 5, TARGETS, seed=1, work_budget=20_000)
    rows, notes = scenarios.plan_scenarios(config, grid, plan, TARGETS)
    assert [row.is_plan for row in rows] == [True]
    assert "more than 40 units" in notes[0] and "49" in notes[0]


def test_small_maps_show_the_scenarios_side_by_side_but_not_the_plan_alone(
    config: MarketConfig, grid: gpd.GeoDataFrame, planned, monkeypatch: pytest.MonkeyPatch
) -> None:
    figure = scenarios.scenario_maps(planned[0], grid)
    assert [axis.get_title() for axis in figure.axes] == [row.name for row in planned[0]]
    # A large map draws the plan alone: its one small map would repeat the plan's own map.
    monkeypatch.setattr(scenarios, "SCENARIO_MAX_UNITS", 40)
    plan = design_territories(grid, 5, TARGETS, seed=1, work_budget=20_000)
    alone, _ = scenarios.plan_scenarios(config, grid, plan, TARGETS)
    assert scenarios.scenario_maps(alone, grid) is None


def test_a_variant_balancing_an_unknown_measure_names_the_param(config: MarketConfig, grid) -> None:
    bad = config.model_copy(
        update={
            "scenarios": [ScenarioSpec(name="x", balance=[BalanceSpec(measure="revenue", tolerance=0.1)])]
        }
    )
    plan = design_territories(grid, 5, TARGETS, seed=1, work_budget=20_000)
    with pytest.raises(ConfigError, match=r"scenarios\[0\]\.balance\[0\]\.measure: revenue"):
        scenarios.plan_scenarios(bad, grid, plan, TARGETS)


def test_scenarios_are_a_step_2_setting(config: MarketConfig) -> None:
    assert step_settings(config, 2)["scenarios"][0]["name"] == "Potential within ±20%"
    assert "scenarios" not in step_settings(config, 3)


def test_balance_bars_mark_territories_outside_the_band_and_say_so_in_words() -> None:
    after = pd.DataFrame({"potential": [0.02, -0.04, 0.12]}, index=["T01", "T02", "T03"])
    before = pd.DataFrame({"potential": [1.89, -0.4, -0.3]}, index=["T01", "T02", "T03"])
    figure = scenarios.balance_bars(after, {"potential": 0.05}, before)
    axis = figure.axes[0]
    plan_bars = axis.containers[0]
    # Outside the band: a heavy dark outline and a "!" besides the colour (never colour alone).
    assert [bar.get_edgecolor()[3] > 0 for bar in plan_bars] == [False, False, True]
    assert [text.get_text() for text in axis.texts] == ["!"]
    band = axis.patches[0]
    assert band.get_x() == pytest.approx(-0.05) and band.get_width() == pytest.approx(0.10)
    alt = scenarios.balance_alt_text(after, {"potential": 0.05}, before)
    assert "1 of 3 territories outside the ±5% band in the plan (largest 12%)" in alt
    assert "today largest 189%" in alt


def test_show_figure_carries_escaped_alt_text() -> None:
    figure = scenarios.sizing_curve(1200.0, [300.0, 320.0], 4)
    shown = show_figure(figure, alt='Accounts per rep "<b>" & capacity')
    assert 'alt="Accounts per rep &quot;&lt;b&gt;&quot; &amp; capacity"' in shown.data
    assert html.unescape("&lt;b&gt;") not in shown.data.split("alt=")[1].split('"')[1]
    text = scenarios.sizing_alt_text(1200.0, [300.0, 320.0], 4)
    assert "300 with 4 territories" in text and "at least 4 reps" in text
