"""Step 1: unit metrics add up, hot spots and the potential model behave as documented."""

from __future__ import annotations

import numpy as np
import pandas as pd

from territory_lib import market


def test_unit_metrics_add_up_to_the_accounts(georgia) -> None:
    metrics = market.unit_metrics(georgia)
    assert len(metrics) == len(georgia.units)
    assert metrics["accounts"].sum() == len(georgia.accounts)
    assert metrics["potential"].sum() == georgia.accounts["potential"].sum()
    assert (metrics["accounts"] == metrics["customers"] + metrics["prospects"]).all()
    assert np.isclose(metrics["sales_12m"].sum(), market.trailing_sales(georgia.sales).sum())
    assert (metrics["area_km2"] > 0).all()
    # Georgia is about 153,900 km² (land and water).
    assert 145_000 < metrics["area_km2"].sum() < 160_000


def test_trailing_sales_cover_exactly_twelve_months(georgia) -> None:
    end = market.data_end(georgia.sales)
    window = georgia.sales[georgia.sales["date"] >= end - pd.DateOffset(months=11)]
    assert window["date"].dt.to_period("M").nunique() == 12
    assert np.isclose(market.trailing_sales(georgia.sales).sum(), window["amount"].sum())


def test_hot_spots_are_deterministic_and_labelled(georgia) -> None:
    metrics = market.unit_metrics(georgia)
    first = market.hot_spots(metrics, seed=3)
    again = market.hot_spots(metrics, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert set(first["hot_spot"]) <= {"hot spot", "cold spot", "not significant"}
    hot = first[first["hot_spot"] == "hot spot"]
    assert (hot["gi_z"] > 0).all() and (hot["p_value"] < 0.05).all()
    # Atlanta's core counties are dense in potential: Fulton (13121) is a hot spot.
    assert first.set_index("unit_id").at["13121", "hot_spot"] == "hot spot"


def test_potential_model_limits_terms_to_the_data(georgia) -> None:
    metrics = market.unit_metrics(georgia)
    model = market.potential_model(metrics, georgia.unit_attributes)
    assert 0 <= model.deviance_explained <= 1
    assert len(model.coefficients) - 1 <= max(1, model.n_units // 10)
    assert model.units["modelled_potential"].gt(0).all()
    small = market.potential_model(metrics.head(20), georgia.unit_attributes)
    assert len(small.coefficients) - 1 <= 2


def test_key_findings_speak_of_the_unit_label(georgia) -> None:
    metrics = market.unit_metrics(georgia)
    notes = market.key_findings(metrics, market.hot_spots(metrics), "county")
    assert any("counties by potential" in note for note in notes)
    headline = market.market_headline(metrics, "county").set_index("Measure")["Value"]
    assert headline["Counties"] == "159" and "Counties without accounts" in headline


def _one_unit_at_a_time(values: np.ndarray, weights, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The conditional-permutation test written plainly: each unit's draws summed one by one."""
    rng = np.random.default_rng(seed)
    neighbours = [np.asarray(weights.neighbors[i], dtype=int) for i in range(len(values))]
    widest = max(len(group) for group in neighbours)
    picks = market._distinct_draws(rng, draws, widest, len(values) - 1)
    tolerance = 1e-9 * float(np.abs(values).max()) * widest
    p_values, high = np.ones(len(values)), np.zeros(len(values), dtype=bool)
    for unit, group in enumerate(neighbours):
        observed = values[group].sum()
        upper = lower = done = 0
        while done < draws:
            size = market.FIRST_DRAWS if done == 0 else max(done, market.FIRST_DRAWS)
            chunk = picks[done : min(draws, done + size), : len(group)]
            simulated = values[chunk + (chunk >= unit)].sum(axis=1)
            upper += int((simulated >= observed - tolerance).sum())
            lower += int((simulated <= observed + tolerance).sum())
            done += len(chunk)
            if min(upper, lower) >= market.STOP_EXTREMES:
                break
        extreme = min(upper, lower)
        one_sided = extreme / done if extreme >= market.STOP_EXTREMES else (extreme + 1) / (done + 1)
        p_values[unit], high[unit] = min(1.0, 2.0 * one_sided), upper < lower
    return p_values, high


def test_hot_spot_p_values_are_those_of_summing_every_draw(monkeypatch) -> None:
    from libpysal.weights import lat2W

    weights = lat2W(12, 12, rook=False)
    rng = np.random.default_rng(5)
    values = rng.lognormal(0.0, 1.0, 144) * (rng.random(144) > 0.3)  # ties: units without potential
    values[[26, 27, 28, 38, 39, 40, 50, 51, 52]] *= 6  # a cluster whose units draw to the end
    values[100] = values[101]  # equal values: sums that tie
    monkeypatch.setattr(market, "UNITS_PER_BATCH", 9)  # first draws: many batches of units
    monkeypatch.setattr(market, "PAIRS_PER_BATCH", 700)  # later ones: each with a part of the units
    p_values, high = market._conditional_p_values(values, weights, 4999, seed=11)
    expected_p, expected_high = _one_unit_at_a_time(values, weights, 4999, seed=11)
    # Below 2 x 20 / 999, a unit drew past the first batch (which stops at 20 extreme draws).
    assert (p_values < 0.04).sum() >= 3
    assert np.array_equal(p_values, expected_p)
    assert np.array_equal(high, expected_high)


def test_white_space_simulation_does_not_depend_on_the_block_size(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    units = 300
    exog = np.column_stack([np.ones(units), rng.normal(size=units)])
    offset = np.log(rng.uniform(1e3, 1e5, units))
    observed = np.exp(offset + 0.4 * exog[:, 1]) * rng.gamma(2.0, 0.5, units)
    observed[:20] = 0.0  # short of the model: they draw past the first batch
    arguments = (observed, exog, offset, np.array([0.0, 0.4]), np.diag([1e-3, 1e-3]), 30.0, 0.05, 4995, 9)
    whole = market._simulated_shortfall(*arguments)
    monkeypatch.setattr(market, "VALUES_PER_BLOCK", 7 * market.FIRST_DRAWS)  # blocks of 7 units
    blocked = market._simulated_shortfall(*arguments)
    for a, b in zip(whole, blocked, strict=True):
        assert np.array_equal(a, b)
    low, high, p_shortfall = whole
    # Below 20 / 999, a unit drew past the first batch (which stops at 20 draws at or below it).
    assert (low <= high).all() and (p_shortfall[:20] < 0.02).all()
