"""Diagnostics of out-of-band plans: load forced by seeds, exact reach checks, notes that say why."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from territory_lib.design import design_territories
from territory_lib.design.diagnose import closest_plan, forced_load, territory_reach
from territory_lib.design.graph import build_unit_graph


def strip(weights: list[float], accounts: list[float] | None = None) -> gpd.GeoDataFrame:
    """Unit squares in a row, ``u0`` at the west end."""
    n = len(weights)
    frame = {"unit_id": [f"u{i}" for i in range(n)], "w": weights}
    if accounts is not None:
        frame["acc"] = accounts
    cells = [shapely.box(i * 1000, 0, (i + 1) * 1000, 1000) for i in range(n)]
    return gpd.GeoDataFrame(frame, geometry=cells, crs=3857)


def test_units_behind_a_seed_are_forced_into_its_territory() -> None:
    units = strip([5.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    graph = build_unit_graph(units, units["unit_id"].to_numpy())
    share = units[["w"]].to_numpy() / units["w"].sum()
    # Seeds at u1 and u4: u0 can only join u1's territory, u5 only u4's; u2 and u3 could go either way.
    owner, load = forced_load(graph, [[1], [4]], share)
    assert owner.tolist() == [0, 0, -1, -1, 1, 1]
    assert np.allclose(load[:, 0], [6 / 10, 2 / 10])


def test_seed_with_a_heavy_hinterland_is_explained() -> None:
    units = strip([5.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    result = design_territories(units, 2, {"w": 0.05}, seeds=["u1", "u4"])
    assert not result.feasible
    text = " ".join(result.notes)
    assert "u0" in text and "can reach no other territory" in text
    assert "120%" in text  # u0 + u1 carry 6 of the 5 a territory should hold


def test_reach_proves_two_measures_cannot_meet() -> None:
    # u0 carries the whole w target but almost no accounts; every neighbour adds w too.
    units = strip([10.0, 2.0, 2.0, 2.0, 2.0, 2.0], [0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    graph = build_unit_graph(units, units["unit_id"].to_numpy())
    values = units[["w", "acc"]].to_numpy()
    share = values / values.sum(axis=0)
    target = np.full(2, 0.5)
    tolerance = np.array([0.05, 0.1])
    reach = territory_reach(graph, 0, share, target, tolerance, np.empty(0, dtype=np.int64))
    assert reach.feasible is False
    # With w held within 5 % the territory is u0 alone: its accounts reach at most 0.5/5.5 / 0.5.
    assert np.isclose(reach.high[1], (0.5 / 5.5) / 0.5)
    assert territory_reach(graph, 5, share, target, np.array([0.5, 0.5]), np.array([0])).feasible


def test_heavy_unit_note_names_the_unit_and_the_bound() -> None:
    units = strip([10.0, 2.0, 2.0, 2.0, 2.0, 2.0], [0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    result = design_territories(units, 2, {"w": 0.05, "acc": 0.1})
    assert not result.feasible
    text = " ".join(result.notes)
    assert "heaviest unit u0" in text and "exact check" in text


def test_closest_plan_is_exact_on_a_small_anchored_map() -> None:
    units = strip([1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    graph = build_unit_graph(units, units["unit_id"].to_numpy())
    share = units[["w"]].to_numpy() / 6.0
    start = np.array([0, 0, 0, 0, 0, 1])
    proved, labels, excess, timed_out = closest_plan(
        graph, share, np.full((2, 1), 0.5), np.array([0.05]), [[0], [5]], start, time_limit=10
    )
    assert proved and excess == 0.0 and not timed_out
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_seeded_plan_says_when_it_is_proved_closest() -> None:
    units = strip([5.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    result = design_territories(units, 2, {"w": 0.05}, seeds=["u1", "u4"])
    assert any(note.startswith("exact check: no contiguous plan") for note in result.notes)
    # The closest plan gives u2 and u3 to the other territory: 6 of 10 against 4 of 10.
    assert result.summary["max_dev_w"] == pytest.approx(0.2)
