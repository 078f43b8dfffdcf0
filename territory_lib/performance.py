"""Step 4, monitor performance: monthly KPIs per territory, trend models, forecasts and anomalies."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from territory_lib.checks import MIN_SEASONAL_MONTHS, MIN_TREND_MONTHS, history_months, returns_summary
from territory_lib.config import counted
from territory_lib.presentation import chart_text

TOTAL = "All territories"
#: Territories charted by default besides the market total (params: ``monitor.chart_territories``).
CHART_TERRITORIES = 12


def monthly_kpis(sales: pd.DataFrame, assignment: pd.DataFrame, accounts: pd.DataFrame) -> pd.DataFrame:
    """Monthly KPIs per territory under the territory plan.

    Parameters
    ----------
    sales
        ``date, account_id, amount``.
    assignment
        ``account_id, territory_id`` (the plan of step 2).
    accounts
        ``account_id, potential``.

    Returns
    -------
    DataFrame
        One row per territory and month: ``sales``, ``active_customers``, ``new_customers`` (first
        purchase that month; the first month of data counts nobody as new), ``growth_mom``,
        ``growth_yoy`` and ``penetration_12m`` (trailing twelve months of sales over potential).
    """
    frame = sales.assign(month=sales["date"].dt.to_period("M").dt.to_timestamp())
    frame = frame.merge(assignment[["account_id", "territory_id"]], on="account_id", how="left")
    frame["territory_id"] = frame["territory_id"].fillna("unassigned")
    months = pd.date_range(frame["month"].min(), frame["month"].max(), freq="MS")
    territories = sorted(frame["territory_id"].unique())
    grid = pd.MultiIndex.from_product([territories, months], names=["territory_id", "month"])

    buying = frame[frame["amount"] > 0]
    first = buying.groupby("account_id")["month"].min()
    new = buying.drop_duplicates("account_id").assign(month=lambda f: f["account_id"].map(first))
    new = new[new["month"] > months[0]]
    table = pd.DataFrame(
        {
            "sales": frame.groupby(["territory_id", "month"])["amount"].sum(),
            "active_customers": buying.groupby(["territory_id", "month"])["account_id"].nunique(),
            "new_customers": new.groupby(["territory_id", "month"])["account_id"].nunique(),
        }
    ).reindex(grid, fill_value=0)
    table = table.fillna(0).reset_index()
    potential = (
        assignment.merge(accounts[["account_id", "potential"]], on="account_id")
        .groupby("territory_id")["potential"]
        .sum()
    )
    grouped = table.groupby("territory_id")["sales"]
    table["growth_mom"] = grouped.pct_change(fill_method=None)
    table["growth_yoy"] = grouped.pct_change(periods=12, fill_method=None)
    trailing = grouped.transform(lambda s: s.rolling(12, min_periods=12).sum())
    table["penetration_12m"] = trailing / table["territory_id"].map(potential)
    return table.replace([np.inf, -np.inf], np.nan)


def kpi_scorecard(kpis: pd.DataFrame) -> pd.DataFrame:
    """Per territory: last twelve months against the twelve before, new customers, penetration."""
    last = kpis["month"].max()
    recent = kpis[kpis["month"] > last - pd.DateOffset(months=12)]
    prior = kpis[
        (kpis["month"] <= last - pd.DateOffset(months=12)) & (kpis["month"] > last - pd.DateOffset(months=24))
    ]
    card = pd.DataFrame(
        {
            "sales_12m": recent.groupby("territory_id")["sales"].sum(),
            "sales_prior_12m": prior.groupby("territory_id")["sales"].sum(),
            "new_customers_12m": recent.groupby("territory_id")["new_customers"].sum(),
            "active_customers": recent[recent["month"] == last].set_index("territory_id")["active_customers"],
            "penetration_12m": recent[recent["month"] == last].set_index("territory_id")["penetration_12m"],
        }
    )
    card["growth_12m"] = card["sales_12m"] / card["sales_prior_12m"].where(card["sales_prior_12m"] > 0) - 1
    return card.reset_index()


@dataclass
class TrendFit:
    """A log-linear trend with monthly seasonality, fitted by OLS (statsmodels).

    ``annual_growth`` (and its 95 % interval) is the trend's growth over twelve months;
    ``history`` has actual and fitted sales per month and an ``anomaly`` flag (Bonferroni outlier
    test, p < 0.05); ``forecast`` the next months with a 95 % prediction interval.
    """

    name: str
    annual_growth: float
    growth_low: float
    growth_high: float
    r_squared: float
    history: pd.DataFrame
    forecast: pd.DataFrame


def fit_trend(name: str, monthly: pd.Series, horizon: int) -> TrendFit:
    """Fit ``log(1 + sales) ~ t + C(month of year)`` and forecast ``horizon`` months ahead.

    ``monthly`` is indexed by month start dates. With fewer than 24 months the seasonal terms
    are left out (they would leave too few degrees of freedom); :func:`fit_trends` fits nothing
    below 12 months.
    """
    months = pd.DatetimeIndex(monthly.index)
    # Returns can leave a month's net sales below zero, where the log is undefined: model those as 0.
    data = pd.DataFrame(
        {
            "y": np.log1p(monthly.to_numpy(dtype=float).clip(min=0)),
            "t": np.arange(len(months)),
            "moy": months.month,
        }
    )
    seasonal = len(months) >= MIN_SEASONAL_MONTHS
    fit = smf.ols("y ~ t + C(moy)" if seasonal else "y ~ t", data=data).fit()
    slope_low, slope_high = fit.conf_int().loc["t"]
    future_months = pd.date_range(months[-1] + pd.DateOffset(months=1), periods=horizon, freq="MS")
    future = pd.DataFrame({"t": np.arange(len(months), len(months) + horizon), "moy": future_months.month})
    prediction = fit.get_prediction(future).summary_frame(alpha=0.05)
    outliers = fit.outlier_test()
    history = pd.DataFrame(
        {
            "month": months,
            "sales": monthly.to_numpy(dtype=float),
            "fitted": np.expm1(fit.fittedvalues.to_numpy()),
            "anomaly": (outliers["bonf(p)"] < 0.05).to_numpy(),
        }
    )
    forecast = pd.DataFrame(
        {
            "month": future_months,
            "forecast": np.expm1(prediction["mean"].to_numpy()),
            "low": np.expm1(prediction["obs_ci_lower"].to_numpy()),
            "high": np.expm1(prediction["obs_ci_upper"].to_numpy()),
        }
    )
    return TrendFit(
        name=name,
        annual_growth=math.expm1(12 * fit.params["t"]),
        growth_low=math.expm1(12 * slope_low),
        growth_high=math.expm1(12 * slope_high),
        r_squared=float(fit.rsquared),
        history=history,
        forecast=forecast,
    )


def fit_trends(kpis: pd.DataFrame, horizon: int) -> list[TrendFit]:
    """A :class:`TrendFit` for all territories together, then one per territory.

    Empty when the history is shorter than ``MIN_TREND_MONTHS``: a line through a few months
    extrapolates their noise into an annual growth rate that means nothing.
    """
    if kpis["month"].nunique() < MIN_TREND_MONTHS:
        return []
    total = kpis.groupby("month")["sales"].sum()
    fits = [fit_trend(TOTAL, total, horizon)]
    for territory, part in kpis.groupby("territory_id"):
        fits.append(fit_trend(str(territory), part.set_index("month")["sales"], horizon))
    return fits


def recent_sales(fit: TrendFit) -> float:
    """Sales of the last twelve months of a fit's history (all of it when shorter)."""
    return float(fit.history["sales"].iloc[-12:].sum())


def trend_table(fits: list[TrendFit]) -> pd.DataFrame:
    """One row per fit, in order: sales of the last twelve months, growth with its interval, fit
    quality, anomalies, next-month forecast. Every territory has its row, charted or not."""
    return pd.DataFrame(
        {
            "territory": [fit.name for fit in fits],
            "sales_12m": [recent_sales(fit) for fit in fits],
            "annual_growth": [fit.annual_growth for fit in fits],
            "growth_low_95": [fit.growth_low for fit in fits],
            "growth_high_95": [fit.growth_high for fit in fits],
            "r_squared": [fit.r_squared for fit in fits],
            "anomalous_months": [int(fit.history["anomaly"].sum()) for fit in fits],
            "next_month_forecast": [fit.forecast["forecast"].iloc[0] for fit in fits],
        }
    )


def anomalies(fits: list[TrendFit]) -> pd.DataFrame:
    """The months whose sales the trend model flags as outliers, with actual and expected sales."""
    rows = [
        fit.history.loc[fit.history["anomaly"], ["month", "sales", "fitted"]].assign(territory=fit.name)
        for fit in fits
    ]
    columns = ["territory", "month", "sales", "fitted"]
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    return table[columns].rename(columns={"fitted": "expected"})


def data_notes(sales: pd.DataFrame, currency: str = "USD") -> list[str]:
    """What the reader of step 4 should know about the sales history: its length, and returns.

    Says when the history is too short for a trend (no trend or forecast is shown) or for
    seasonality, and how many returns and credit notes (negative amounts) the sales are net of.
    """
    notes = []
    months = history_months(sales)
    if months < MIN_TREND_MONTHS:
        notes.append(
            f"Only {counted(months, 'month')} of sales: not enough history for a trend "
            f"({MIN_TREND_MONTHS} months needed), so this report shows no trend, growth rate or forecast."
        )
    elif months < MIN_SEASONAL_MONTHS:
        notes.append(
            f"{counted(months, 'month')} of sales: the trends leave out seasonality "
            f"({MIN_SEASONAL_MONTHS} months needed to tell it from growth)."
        )
    count, total = returns_summary(sales)
    if count:
        notes.append(
            f"Sales are net of {count:,} returns/credit notes (negative amounts) totalling "
            f"{total:,.0f} {currency}."
        )
    return notes


def largest_fits(fits: list[TrendFit], territories: int = CHART_TERRITORIES) -> list[TrendFit]:
    """The market total and the ``territories`` territories with the most recent sales, in order.

    Territories are ranked by :func:`recent_sales` (ties by name, so the choice is deterministic);
    the chosen fits keep their order in ``fits``, the order of the report's tables.
    """
    ranked = sorted(
        (fit for fit in fits if fit.name != TOTAL), key=lambda fit: (-recent_sales(fit), fit.name)
    )
    chosen = {id(fit) for fit in ranked[:territories]}
    return [fit for fit in fits if fit.name == TOTAL or id(fit) in chosen]


def forecast_chart(
    fits: list[TrendFit], currency: str = "USD", territories: int = CHART_TERRITORIES, columns: int = 3
) -> Figure:
    """Small multiples: actual sales, the fitted trend, and the forecast with its 95 % band.

    Only the market total and the ``territories`` largest territories (:func:`largest_fits`) get
    a panel, so the figure's size is bounded however many territories the market has; the title
    says when some are left out (:func:`trend_table` lists them all).
    """
    territory_count = sum(fit.name != TOTAL for fit in fits)
    fits = largest_fits(fits, territories)
    charted = sum(fit.name != TOTAL for fit in fits)
    rows = math.ceil(len(fits) / columns)
    figure = Figure(figsize=(4.2 * columns, 2.8 * rows))
    axes = figure.subplots(rows, columns, squeeze=False, sharex=True)
    for axis, fit in zip(axes.flat, fits, strict=False):
        axis.plot(fit.history["month"], fit.history["sales"], color="#4c566a", lw=1.2, label="actual")
        axis.plot(fit.history["month"], fit.history["fitted"], color="#5e81ac", lw=1, ls="--", label="trend")
        axis.fill_between(
            fit.forecast["month"], fit.forecast["low"], fit.forecast["high"], color="#88c0d0", alpha=0.4
        )
        axis.plot(fit.forecast["month"], fit.forecast["forecast"], color="#bf616a", lw=1.6, label="forecast")
        flagged = fit.history[fit.history["anomaly"]]
        axis.scatter(flagged["month"], flagged["sales"], color="#d08770", zorder=3, s=18, label="anomaly")
        axis.set_title(f"{chart_text(fit.name)}: {fit.annual_growth:+.1%} a year", fontsize=9)
        axis.tick_params(labelsize=7)
        axis.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
    for axis in list(axes.flat)[len(fits) :]:
        axis.set_visible(False)
    axes.flat[0].legend(fontsize=7, loc="upper left")
    title = f"Monthly sales ({chart_text(currency)}), trend and forecast"
    if charted < territory_count:
        title += (
            f"\nall territories, then the {counted(charted, 'territory')} of {territory_count:,} "
            "with the most sales in the last 12 months"
        )
    figure.suptitle(title, fontsize=11)
    figure.autofmt_xdate()
    figure.tight_layout()
    return figure
