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
