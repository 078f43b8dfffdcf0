"""Step 4: KPIs count what they say, and the trend model recovers a known growth rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from territory_lib import performance
from territory_lib.presentation import show_figure


def synthetic_sales(growth: float = 0.10, months: int = 36, spike: int | None = None) -> pd.DataFrame:
    """Two territories' accounts with exact annual growth and a seasonal swing."""
    dates = pd.date_range("2023-01-01", periods=months, freq="MS")
    rows = []
    rng = np.random.default_rng(0)
    for t, date in enumerate(dates):
        season = 1 + 0.2 * np.sin(2 * np.pi * date.month / 12)
        for account, scale in (("a1", 1000.0), ("a2", 500.0), ("b1", 800.0)):
            amount = scale * (1 + growth) ** (t / 12) * season * np.exp(rng.normal(0, 0.01))
            if spike is not None and t == spike and account == "a1":
                amount *= 4
            rows.append((date, account, amount))
        if t >= 12:
            rows.append((date, "b2", 100.0))  # a new customer from the second year
    return pd.DataFrame(rows, columns=["date", "account_id", "amount"])


ASSIGNMENT = pd.DataFrame({"account_id": ["a1", "a2", "b1", "b2"], "territory_id": ["T1", "T1", "T2", "T2"]})
ACCOUNTS = pd.DataFrame(
    {"account_id": ["a1", "a2", "b1", "b2"], "potential": [20000.0, 10000.0, 15000.0, 5000.0]}
)


def test_monthly_kpis_count_sales_customers_and_newcomers() -> None:
    sales = synthetic_sales()
    kpis = performance.monthly_kpis(sales, ASSIGNMENT, ACCOUNTS)
    assert len(kpis) == 2 * 36
    assert np.isclose(kpis["sales"].sum(), sales["amount"].sum())
    t2 = kpis[kpis["territory_id"] == "T2"].set_index("month")
    assert t2["new_customers"].sum() == 1
    assert t2.loc["2024-01-01", "new_customers"] == 1
    assert t2.loc["2023-06-01", "active_customers"] == 1 and t2.loc["2024-06-01", "active_customers"] == 2
    # After twelve months, growth against the same month a year before is close to 10 % for T1.
    t1 = kpis[kpis["territory_id"] == "T1"].set_index("month")
    assert t1["growth_yoy"].iloc[:12].isna().all()
    assert t1["growth_yoy"].iloc[12:].between(0.05, 0.15).all()
    last = t1.iloc[-1]
    trailing = t1["sales"].iloc[-12:].sum()
    assert np.isclose(last["penetration_12m"], trailing / 30000.0)


def test_scorecard_compares_the_last_two_years() -> None:
    card = performance.kpi_scorecard(performance.monthly_kpis(synthetic_sales(), ASSIGNMENT, ACCOUNTS))
    t1 = card.set_index("territory_id").loc["T1"]
    assert t1["growth_12m"] == pytest.approx(0.10, abs=0.02)


def test_trend_recovers_growth_and_forecasts_with_an_interval() -> None:
    kpis = performance.monthly_kpis(synthetic_sales(growth=0.10), ASSIGNMENT, ACCOUNTS)
    fits = performance.fit_trends(kpis, horizon=6)
    assert [fit.name for fit in fits] == [performance.TOTAL, "T1", "T2"]
    t1 = fits[1]
    assert t1.annual_growth == pytest.approx(0.10, abs=0.01)  # last 12 months against the 12 before
    assert t1.trend.verdict == performance.RISING
    assert t1.trend.slope_growth == pytest.approx(0.10, abs=0.01)
    assert t1.trend.slope_low < 0.10 < t1.trend.slope_high
    assert len(t1.forecast) == 6 and t1.model in performance.MODELS and t1.backtest is not None
    assert (t1.forecast["low"] < t1.forecast["forecast"]).all() and (
        t1.forecast["forecast"] < t1.forecast["high"]
    ).all()
    assert t1.forecast["month"].iloc[0] == pd.Timestamp("2026-01-01")
    assert not t1.history["anomaly"].any()


def test_a_spike_is_flagged_as_an_anomaly() -> None:
    kpis = performance.monthly_kpis(synthetic_sales(spike=20), ASSIGNMENT, ACCOUNTS)
    flagged = performance.anomalies(performance.fit_trends(kpis, horizon=3))
    t1 = flagged[flagged["territory"] == "T1"]
    assert list(t1["month"]) == [pd.Timestamp("2024-09-01")]
    assert (t1["sales"] > t1["expected"]).all()


def test_short_history_fits_without_seasonality() -> None:
    kpis = performance.monthly_kpis(synthetic_sales(months=15), ASSIGNMENT, ACCOUNTS)
    fits = performance.fit_trends(kpis, horizon=2)
    assert len(fits[0].forecast) == 2
    figure = performance.forecast_chart(fits)
    assert len([axis for axis in figure.axes if axis.get_visible()]) == 3


@pytest.mark.slow
def test_step_4_charts_the_largest_territories_and_its_table_keeps_them_all() -> None:
    """200 territories: at most N + 1 panels and a bounded image; the trend table has every one."""
    rng = np.random.default_rng(1)
    territories = [f"T{i:03d}" for i in range(200)]
    size = dict(zip(territories, rng.lognormal(8.0, 1.0, len(territories)), strict=True))
    months = pd.date_range("2023-01-01", periods=24, freq="MS")
    sales = pd.DataFrame(
        [
            (month, f"{territory}-a", size[territory] * (1.05 ** (t / 12)) * rng.lognormal(0.0, 0.05))
            for territory in territories
            for t, month in enumerate(months)
        ],
        columns=["date", "account_id", "amount"],
    )
    assignment = pd.DataFrame({"account_id": [f"{t}-a" for t in territories], "territory_id": territories})
    accounts = pd.DataFrame({"account_id": assignment["account_id"], "potential": 1e6})
    fits = performance.fit_trends(performance.monthly_kpis(sales, assignment, accounts), horizon=6)

    top = 12
    figure = performance.forecast_chart(fits, territories=top)
    panels = [axis.get_title().split(":")[0] for axis in figure.axes if axis.get_visible()]
    last_year = sales[sales["date"] >= months[-12]].groupby("account_id")["amount"].sum()
    largest = [account.removesuffix("-a") for account in last_year.nlargest(top).index]
    assert panels == [performance.TOTAL, *sorted(largest)]  # in the order of the tables
    assert "12 territories of 200" in figure.texts[0].get_text()
    import base64
    import re

    shown = show_figure(figure, alt=performance.forecast_alt_text(fits, top)).data
    png = base64.b64decode(re.search(r"base64,([^\"]+)", shown).group(1))
    assert int.from_bytes(png[20:24], "big") <= 2000  # PNG height in pixels (IHDR), 110 dpi
    assert "13 panel(s)" in shown and f"{performance.TOTAL}:" in shown
    assert len([axis for axis in performance.forecast_chart(fits).axes if axis.get_visible()]) == 13

    table = performance.trend_table(fits)
    assert len(table) == 201 and set(table["territory"]) == {performance.TOTAL, *territories}
    assert table["next_month_forecast"].notna().all()
    assert table.set_index("territory").loc["T000", "sales_12m"] == pytest.approx(
        sales.loc[sales["account_id"] == "T000-a", "amount"].iloc[-12:].sum()
    )


def test_monthly_kpis_of_a_hand_counted_ledger() -> None:
    """Repeat purchases, a return, a month with no sales and an account no territory holds."""
    sales = pd.DataFrame(
        {
            "date": pd.to_datetime(
                [
                    "2024-01-03",
                    "2024-01-20",
                    "2024-01-05",
                    "2024-03-02",
                    "2024-03-09",
                    "2024-03-15",
                    "2024-03-30",
                ]
            ),
            "account_id": ["a1", "a1", "a2", "a1", "b1", "b1", "zz"],
            "amount": [100.0, 50.0, 10.0, -20.0, 30.0, 5.0, 7.0],
        }
    )
    kpis = performance.monthly_kpis(sales, ASSIGNMENT, ACCOUNTS).set_index(["territory_id", "month"])
    january, february, march = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])
    assert sorted(kpis.index.get_level_values(0).unique()) == ["T1", "T2", "unassigned"]
    assert len(kpis) == 3 * 3  # every territory has every month, February included
    t1, t2, nobody = kpis.loc["T1"], kpis.loc["T2"], kpis.loc["unassigned"]
    assert t1.loc[january, "sales"] == 160.0 and t1.loc[march, "sales"] == -20.0
    assert t1.loc[february, "sales"] == 0.0
    assert t1.loc[january, "active_customers"] == 2  # a1 bought twice: counted once
    assert t1.loc[march, "active_customers"] == 0  # a return is not a purchase
    assert t1["new_customers"].sum() == 0  # the first month of data counts nobody as new
    assert t2.loc[march, "active_customers"] == 1 and t2.loc[march, "new_customers"] == 1
    assert nobody.loc[march, "new_customers"] == 1 and nobody.loc[march, "sales"] == 7.0
    assert np.isnan(t1.loc[february, "growth_yoy"])
    assert t1.loc[february, "growth_mom"] == -1.0
    assert np.isnan(t1.loc[march, "growth_mom"])  # from nothing: no growth rate


def test_outlier_p_values_are_statsmodels_leave_one_out_test() -> None:
    """The closed form gives the p-values of statsmodels' refit-per-month ``outlier_test``."""
    import warnings

    import statsmodels.api as sm

    rng = np.random.default_rng(5)
    for months in (20, 24, 30, 48):
        month_of_year = np.arange(months) % 12 + 1
        design = performance._seasonal_design(month_of_year, np.arange(months), months >= 24)
        design = np.column_stack([design, (np.arange(months) >= months // 2).astype(float)])
        y = rng.normal(size=months) + 10.0 * (np.arange(months) == months // 3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # short series: rank-deficient seasonal design
            fit = sm.OLS(y, design).fit()
            reference = fit.outlier_test()[:, 2]
        ours = performance._outlier_p_values(fit)
        np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-12, equal_nan=True)
        if months >= 30:  # enough months left beside the 14 parameters to single a month out
            assert ours[months // 3] < 0.05
