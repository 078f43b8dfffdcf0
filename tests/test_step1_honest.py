"""Step 1's claims on data whose truth is known: noise maps, planted clusters, noise attributes.

The truth is made here, independently of the code under test: exchangeable (permuted or i.i.d.)
values on Georgia's 159 counties have no clusters and no attribute that matters; a block of
neighbouring counties with raised values is a cluster; potential drawn from a known model has a
known driver and known shortfalls.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from territory_lib import market, snapshot

LEVEL = 0.05


@pytest.fixture(scope="module")
def county_map(georgia):
    """Georgia's counties (id, name, geometry, size) and the run's adjacency graph."""
    metrics = market.unit_metrics(georgia).reset_index(drop=True)
    return metrics, snapshot.unit_graph(georgia)


def _ring(graph, units: set[int]) -> set[int]:
    """The units and all their neighbours."""
    return units | {int(j) for i in units for j in graph.indices[graph.indptr[i] : graph.indptr[i + 1]]}


def _planted_block(metrics, graph) -> tuple[set[int], set[int], set[int]]:
    """A cluster around Bibb county (Macon): its core (Bibb and its neighbours), the block (the core
    and its neighbours, 20 counties) and the block's surroundings (a spot there is no error)."""
    core = _ring(graph, {int(np.flatnonzero(metrics["unit_id"] == "13021")[0])})
    block = _ring(graph, core)
    return core, block, _ring(graph, block)


def _units(county_map, values: np.ndarray) -> pd.DataFrame:
    metrics, _ = county_map
    return metrics[["unit_id", "name", "geometry"]].assign(value=values)


@pytest.mark.slow
def test_null_maps_claim_almost_no_spots(county_map) -> None:
    metrics, graph = county_map
    real = metrics["potential_per_km2"].to_numpy()
    rng = np.random.default_rng(12)
    claimed = []
    for index in range(100):
        # Exchangeable potential: half the maps permute Georgia's real (very skewed) densities,
        # half draw i.i.d. lognormal values; neither has any spatial cluster.
        values = rng.permutation(real) if index % 2 else rng.lognormal(0.0, 1.0, len(real))
        spots = market.hot_spots(_units(county_map, values), "value", seed=120_000 + index, graph=graph)
        claimed.append(int((spots["hot_spot"] != "not significant").sum()))
    assert np.mean(claimed) <= 0.1, f"{np.mean(claimed)} spots per noise map"


def test_a_planted_hot_cluster_is_found_and_little_else(county_map) -> None:
    metrics, graph = county_map
    core, block, around = _planted_block(metrics, graph)
    rng = np.random.default_rng(0)
    values = rng.lognormal(0.0, 0.5, len(metrics))
    values[list(block)] *= 4
    spots = market.hot_spots(_units(county_map, values), "value", seed=0, graph=graph)
    hot = set(np.flatnonzero(spots["hot_spot"] == "hot spot"))
    flagged = set(np.flatnonzero(spots["hot_spot"] != "not significant"))
    assert len(hot & core) >= len(core) / 2
    assert len(flagged - around) <= 1, "spots far from the planted cluster"


def test_a_planted_cold_cluster_is_found_two_sided(county_map) -> None:
    metrics, graph = county_map
    core, block, around = _planted_block(metrics, graph)
    rng = np.random.default_rng(1)
    values = rng.lognormal(0.0, 0.5, len(metrics)) + 1.0
    values[list(block)] = rng.uniform(0.0, 0.3, len(block))
    spots = market.hot_spots(_units(county_map, values), "value", seed=1, graph=graph)
    cold = set(np.flatnonzero(spots["hot_spot"] == "cold spot"))
    assert len(cold & core) >= len(core) / 2
    assert not set(np.flatnonzero(spots["hot_spot"] == "hot spot")) & block
    assert len(set(np.flatnonzero(spots["hot_spot"] != "not significant")) - around) <= 1
    assert (spots.loc[spots["hot_spot"] == "cold spot", "gi_z"] < 0).all()


def test_spots_report_what_chance_alone_would_give(county_map) -> None:
    metrics, graph = county_map
    spots = market.hot_spots(metrics, graph=graph, level=LEVEL)
    summary = market.hot_spot_summary(spots)
    # Enough permutations that one unit's smallest two-sided p-value can pass the corrected level.
    assert 2 / (summary["permutations"] + 1) <= LEVEL / len(metrics)
    found = summary["hot_spots"] + summary["cold_spots"]
    assert found == int((spots["hot_spot"] != "not significant").sum())
    assert summary["expected_false_spots"] == pytest.approx(LEVEL * found)
    assert summary["uncorrected_chance_spots"] == pytest.approx(LEVEL * len(metrics))
    assert (spots.loc[spots["hot_spot"] != "not significant", "p_value"] <= LEVEL).all()


def _noise_market(county_map, rng, attributes: int = 40) -> tuple[pd.DataFrame, list[str]]:
    metrics, _ = county_map
    names = [f"noise_{i}" for i in range(attributes)]
    noise = rng.normal(size=(len(metrics), attributes))
    noise[:, ::2] = np.exp(noise[:, ::2])  # half of them skewed, as counts and incomes are
    frame = metrics[["unit_id", "name", "geometry", "accounts", "potential", "area_km2", "population"]]
    frame = pd.concat([frame, pd.DataFrame(noise, columns=names)], axis=1)
    # Exchangeable potential: no attribute can matter.
    frame["potential"] = rng.permutation(frame["potential"].to_numpy())
    return frame, ["population", *names]


def test_noise_attributes_rarely_become_drivers(county_map) -> None:
    _, graph = county_map
    weights = market.unit_weights(county_map[0], graph)
    rng = np.random.default_rng(88)
    markets = 30
    with_driver = 0
    for index in range(markets):
        frame, attributes = _noise_market(county_map, rng)
        model = market.potential_model(frame, attributes, seed=index, weights=weights, draws=199)
        with_driver += bool(model.drivers)
    assert with_driver <= 0.1 * markets, f"{with_driver} of {markets} noise markets show a driver"


def _modelled_market(county_map, rng, effect: float = 0.5) -> pd.DataFrame:
    """Potential per resident drawn from a Tweedie model whose only driver is ``signal``."""
    metrics, _ = county_map
    frame = metrics[["unit_id", "name", "geometry", "accounts", "area_km2", "population"]].copy()
    frame["signal"] = rng.normal(size=len(frame))
    frame["noise"] = rng.normal(size=len(frame))
    mu = 20.0 * frame["population"].to_numpy() * np.exp(effect * frame["signal"].to_numpy())
    frame["potential"] = market._tweedie_draws(mu, 30.0, rng)
    return frame


def test_a_real_driver_is_found_and_named_as_an_association(county_map) -> None:
    metrics, graph = county_map
    frame = _modelled_market(county_map, np.random.default_rng(3))
    model = market.potential_model(frame, ["population", "signal", "noise"], graph=graph)
    assert model.drivers == ["signal"]
    assert model.cv_deviance_explained > 0 and 0 < model.deviance_explained <= 1
    per_sd = np.exp(0.5 * frame["signal"].std())  # the true multiplier per standard deviation
    assert model.coefficients.loc["signal", "low 95%"] < per_sd < model.coefficients.loc["signal", "high 95%"]
    assert model.dispersion == pytest.approx(30.0, rel=0.5)
    assert -1 <= model.residual_moran_i <= 1 and 0 < model.residual_moran_p <= 1
    notes = market.key_findings(metrics, market.hot_spots(metrics, graph=graph), "county", model)
    assert any("associated with signal" in note for note in notes)
    assert not any("drive" in note for note in notes)


def test_units_without_accounts_stay_in_the_model(county_map) -> None:
    metrics, graph = county_map
    model = market.potential_model(metrics, ["population", "pct_rural"], graph=graph)
    assert model.n_units == len(metrics)
    empty = metrics.loc[metrics["accounts"] == 0, "unit_id"]
    assert len(empty) > 0 and set(empty) <= set(model.units["unit_id"])
    assert model.n_without_accounts == len(empty)


def test_white_space_lists_only_shortfalls_beyond_chance(county_map) -> None:
    _, graph = county_map
    rng = np.random.default_rng(11)
    frame = _modelled_market(county_map, rng)
    honest = market.potential_model(frame, ["signal", "population"], graph=graph)
    assert honest.units["white_space"].sum() <= 1  # drawn from the model itself: nothing to find
    # Plant white space: the four largest counties' known potential cut to 2 % of what it was.
    planted = frame["population"].nlargest(4).index
    frame.loc[planted, "potential"] *= 0.02
    model = market.potential_model(frame, ["signal", "population"], graph=graph)
    listed = model.units[model.units["white_space"]]
    assert set(frame.loc[planted, "unit_id"]) <= set(listed["unit_id"])
    assert (listed["potential"] < listed["low"]).all()
    assert (listed["shortfall"] > 0).all()
    assert (model.units["low"] <= model.units["high"]).all()


def test_segment_mix_figure_and_caption(georgia) -> None:
    profile = market.segment_profile(georgia.accounts, georgia.sales)
    figure = market.segment_mix_figure(profile)
    bars = figure.axes[0].patches
    assert len(bars) == 2 * len(profile)
    assert sum(bar.get_width() for bar in bars) == pytest.approx(2.0)
    caption = market.segment_mix_caption(profile)
    for segment in profile.index:
        assert segment in caption


def test_analysis_params_default_are_checked_and_rerun_step_1(make_market) -> None:
    from territory_lib.config import load_config
    from territory_lib.errors import ConfigError
    from territory_lib.steps import step_settings

    config = load_config(make_market())
    assert config.analysis.significance == 0.05 and config.analysis.permutations is None
    assert load_config(make_market(analysis={"significance": 0.1})).analysis.significance == 0.1
    with pytest.raises(ConfigError, match=r"analysis\.significance"):
        load_config(make_market(analysis={"significance": 0.5}))
    with pytest.raises(ConfigError, match=r"analysis\.permutations"):
        load_config(make_market(analysis={"permutations": 10}))
    assert step_settings(config, 1)["analysis"]["significance"] == 0.05
    assert "analysis" not in step_settings(config, 2)
