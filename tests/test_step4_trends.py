"""Step 4 on series whose truth is known: no trend from autocorrelated noise or a level shift,
a planted trend found, nothing claimed from a short history, and an honest backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from territory_lib import performance


def simulated(
    rng: np.random.Generator,
    months: int = 36,
    phi: float = 0.6,
    sd: float = 0.05,
    growth: float = 0.0,
    shift_at: int | None = None,
    shift: float = 0.0,
) -> pd.Series:
    """Monthly sales: a seasonal level, a yearly ``growth``, AR(1) noise on the log scale and an
    optional level shift of ``shift`` from month ``shift_at``."""
    noise = np.zeros(months + 50)
    shocks = rng.normal(0.0, sd, months + 50)
    for i in range(1, months + 50):
        noise[i] = phi * noise[i - 1] + shocks[i]
    dates = pd.date_range("2023-01-01", periods=months, freq="MS")
    t = np.arange(months)
    log_sales = np.log(100_000) + 0.1 * np.cos(2 * np.pi * (dates.month - 12) / 12) + noise[50:]
    log_sales += np.log1p(growth) * t / 12
    if shift_at is not None:
        log_sales += np.log1p(shift) * (t >= shift_at)
    return pd.Series(np.exp(log_sales), index=dates)


def test_autocorrelated_noise_rarely_claims_a_trend() -> None:
    """AR(1) noise with phi = 0.6 and no trend: at most 10 % of 200 series are called rising or falling
    (least squares with independent errors called 32 % of them)."""
    rng = np.random.default_rng(2024)
    verdicts = [performance.trend_test(simulated(rng)) for _ in range(200)]
    claimed = np.mean([test.claims_trend for test in verdicts])
    assert claimed <= 0.10
    shifts = np.mean([test.verdict == performance.SHIFT for test in verdicts])
    assert shifts <= 0.10


def test_a_level_shift_is_reported_as_a_shift_not_a_trend() -> None:
    rng = np.random.default_rng(7)
    verdicts = [performance.trend_test(simulated(rng, phi=0.3, shift_at=18, shift=0.3)) for _ in range(200)]
    assert np.mean([test.claims_trend for test in verdicts]) <= 0.10
    found = [test for test in verdicts if test.verdict == performance.SHIFT]
    assert len(found) >= 0.7 * len(verdicts)
    assert np.mean([test.shift_month == pd.Timestamp("2024-07-01") for test in found]) >= 0.8
    one = next(test for test in found if test.shift_month == pd.Timestamp("2024-07-01"))
    words = performance.trend_words(one)
    assert words.startswith("level shift in July 2024 (+") and "%" in words


def test_a_planted_trend_is_found_with_its_growth() -> None:
    rng = np.random.default_rng(11)
    verdicts = [performance.trend_test(simulated(rng, growth=0.15)) for _ in range(100)]
    assert np.mean([test.verdict == performance.RISING for test in verdicts]) >= 0.8
    covered = np.mean([test.slope_low <= 0.15 <= test.slope_high for test in verdicts])
    assert covered >= 0.85
    falling = [performance.trend_test(simulated(rng, growth=-0.15, phi=0.3)) for _ in range(50)]
    assert np.mean([test.verdict == performance.FALLING for test in falling]) >= 0.9


def test_short_history_claims_no_trend_and_no_growth() -> None:
    """A territory whose accounts started buying three months ago is not "+175 % a year"."""
    dates = pd.date_range("2023-01-01", periods=36, freq="MS")
    late = pd.Series([0.0] * 33 + [1000.0, 1800.0, 2700.0], index=dates)
    fit = performance.fit_trend("T9", late, horizon=3)
    assert fit.trend.verdict == performance.SHORT and not fit.trend.claims_trend
    assert np.isnan(fit.annual_growth)
    assert performance.trend_words(fit.trend) == "too little history (3 months)"
    assert fit.model == performance.NO_MODEL and fit.forecast["forecast"].isna().all()
    table = performance.trend_table([fit])
    assert np.isnan(table.loc[0, "annual_growth"]) and table.loc[0, "trend"].startswith("too little")
    # Under 24 months: a trend may be judged, but without seasonality and with no 12-month growth.
    year = performance.fit_trend("T1", simulated(np.random.default_rng(3), months=18, growth=0.5), horizon=3)
    assert not year.trend.seasonal and np.isnan(year.annual_growth)
    assert performance.trend_test(late.iloc[:3]).verdict == performance.SHORT


def test_backtest_picks_a_model_and_reports_figures_in_range() -> None:
    """A trending seasonal series with independent noise: the backtest picks a model that beats the
    seasonal naive forecast, and its 80 % and 95 % intervals cover about that share of months."""
    rng = np.random.default_rng(5)
    coverage_80, coverage_95, beats = [], [], []
    for _ in range(4):
        series = simulated(rng, months=48, phi=0.0, sd=0.06, growth=0.12)
        result = performance.backtest(series, horizon=6, origins=8)
        assert result is not None and result.model in performance.MODELS
        assert set(result.scores["model"]) == set(performance.MODELS)
        assert result.mase == result.scores["mase"].min()
        coverage_80.append(result.coverage_80)
        coverage_95.append(result.coverage_95)
        beats.append(result.mase < result.mase_seasonal_naive)
    assert all(beats)
    assert 0.65 <= np.mean(coverage_80) <= 0.95 and 0.85 <= np.mean(coverage_95) <= 1.0


def test_step_4_metrics_name_the_backtest_figures() -> None:
    rng = np.random.default_rng(8)
    frames = [
        simulated(rng, months=36, phi=0.2, growth=g).rename("sales").rename_axis("month").reset_index()
        for g in (0.05, 0.1)
    ]
    kpis = pd.concat([f.assign(territory_id=t) for f, t in zip(frames, ("T1", "T2"), strict=True)])
    fits = performance.fit_trends(kpis, horizon=6)
    metrics = performance.backtest_metrics(fits)
    figures = metrics["backtest"]
    assert set(figures) >= {"model", "mase", "mase_seasonal_naive", "coverage_80", "coverage_95"}
    assert figures["model"] in performance.MODELS
    assert 0 < figures["mase"] <= figures["mase_seasonal_naive"] < 5
    assert 0 <= figures["coverage_80"] <= figures["coverage_95"] <= 1
    assert metrics["territories"]["count"] == 2 and sum(metrics["territories"]["models"].values()) == 2
    assert fits[0].forecast["low"].lt(fits[0].forecast["low_80"]).all()
    assert fits[0].forecast["forecast"].between(fits[0].forecast["low_80"], fits[0].forecast["high_80"]).all()


def test_no_trend_or_forecast_from_three_months() -> None:
    kpis = pd.DataFrame(
        {
            "territory_id": "T1",
            "month": pd.date_range("2026-01-01", periods=3, freq="MS"),
            "sales": [100.0, 180.0, 275.0],
        }
    )
    assert performance.fit_trends(kpis, horizon=3) == []
    assert performance.backtest_metrics([])["backtest"]["model"] is None


@pytest.mark.parametrize("months", [12, 30])
def test_short_series_still_forecast(months: int) -> None:
    series = simulated(np.random.default_rng(1), months=months, phi=0.2, growth=0.1)
    fit = performance.fit_trend("T1", series, horizon=4)
    assert fit.forecast["forecast"].notna().all() and len(fit.forecast) == 4
    assert (fit.backtest is None) == (months <= performance.BACKTEST_MIN_TRAIN)
