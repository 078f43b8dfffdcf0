# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Territory
#     language: python
#     name: territory
# ---

# %% [markdown]
# # Step 4 · Monitor performance
#
# How is each territory of the plan doing? Monthly sales, growth, new customers and the share of
# potential captured, then for each territory whether sales are rising, falling or flat, and a
# forecast of the coming months with the range they should fall in.
#
# **The history is regrouped under the plan's territories.** Each account's past sales are summed
# under the territory the plan now gives it, as if the accounts had always been aligned that way.
# The figures compare like with like under the new plan; they do not show what the old territories
# sold, and a territory's past says nothing about the rep who will now work it.

# %% tags=["parameters"]
params_path: str = "georgia"  # market name in params/, or the path of a params YAML
output_dir: str = ""  # folder for this run's results; empty: reports/_scratch/<market>
run_date: str = ""  # date printed on the report, YYYY-MM-DD; empty: today

# %% tags=["remove-cell"]
from IPython.display import display

from territory_lib import performance
from territory_lib.presentation import (
    COUNT,
    DECIMAL,
    PERCENT,
    SIGNED_PERCENT,
    money,
    month,
    percent,
    show_figure,
    show_list,
    show_table,
)
from territory_lib.steps import start_step

# %%
ctx = start_step(4, params_path, output_dir, run_date)
settings = ctx.config.monitor
assignment = ctx.workspace.read("account_assignment")
kpis = performance.monthly_kpis(ctx.market.sales, assignment, ctx.market.accounts)
fits = performance.fit_trends(
    kpis, ctx.config.forecast_months, settings.backtest_origins, settings.territory_backtest_origins
)
first, last = kpis["month"].min(), kpis["month"].max()
notes = performance.data_notes(ctx.market.sales, ctx.config.currency)
currency = ctx.config.currency


def in_money(value: object) -> str:
    return money(value, currency)


# %%
show_list(notes, "About the sales data") if notes else None

# %% [markdown]
# ## Scorecard: the last twelve months
#
# Growth, here and everywhere in this report, means **sales of the last 12 months against the 12
# months before**.

# %%
scorecard = performance.kpi_scorecard(kpis)
show_table(
    scorecard,
    {
        "sales_12m": in_money,
        "sales_prior_12m": in_money,
        "growth_12m": SIGNED_PERCENT,
        "new_customers_12m": COUNT,
        "active_customers": COUNT,
        "penetration_12m": PERCENT,
    },
    labels={
        "territory_id": "Territory",
        "sales_12m": "Sales, last 12 months",
        "sales_prior_12m": "Sales, 12 months before",
        "growth_12m": "Growth",
        "new_customers_12m": "New customers",
        "active_customers": "Active customers, last month",
        "penetration_12m": "Penetration of potential",
    },
    caption=f"Sales data from {month(first)} to {month(last)}",
    max_rows=len(scorecard),
)

# %% [markdown]
# ## Trends and forecast
#
# A territory is called **rising** or **falling** only when its sales trend is clear of the
# month-to-month ups and downs, including runs of good or bad months; otherwise it shows **no
# clear trend**. When sales moved to a new level once and stayed there, the report says **level
# shift** and names the month, rather than calling it growth. No trend is judged on less than a
# year of sales, and seasonality needs two years.
#
# The forecast line is the **median**: each month is as likely to come in above it as below it.
# The dark band is where 80 % of months should fall, the light band 95 %. The charts show the
# market total and the territories with the most sales in the last twelve months; the table after
# them lists every territory.

# %%
if fits:
    chart = performance.forecast_chart(fits, currency, settings.chart_territories)
    display(show_figure(chart, alt=performance.forecast_alt_text(fits, settings.chart_territories)))
else:
    display(show_list(["Not enough history for a trend: no trend, growth rate or forecast is shown."]))

# %%
trends = performance.trend_table(fits)
show_table(
    trends.drop(columns="level_shift_month"),
    {
        "sales_12m": in_money,
        "annual_growth": SIGNED_PERCENT,
        "anomalous_months": COUNT,
        "next_month_forecast": in_money,
    },
    labels={
        "territory": "Territory",
        "sales_12m": "Sales, last 12 months",
        "annual_growth": "Growth",
        "trend": "Trend",
        "anomalous_months": "Unusual months",
        "next_month_forecast": "Forecast, next month (median)",
    },
    max_rows=len(trends),
) if fits else None

# %%
if len(fits) > 1:
    territory_fits = fits[1:]
    claimed = sum(fit.trend.claims_trend for fit in territory_fits)
    shifts = sum(fit.trend.verdict == performance.SHIFT for fit in territory_fits)
    chance = performance.TREND_LEVEL * len(territory_fits)
    display(
        show_list(
            [
                f"{claimed} of {len(territory_fits)} territories show a clear rising or falling trend and "
                f"{shifts} a level shift. If no territory had a real trend, chance alone would show a "
                f"clear trend in about {chance:.1f} of them.",
            ],
            "How much to read into the trends",
        )
    )

# %%
outliers = performance.anomalies(fits)
if len(outliers):
    display(
        show_table(
            outliers,
            {"sales": in_money, "expected": in_money, "month": month},
            caption="Months far from what the model expected: worth a look",
        )
    )
elif fits:
    display(show_list(["No month lies far enough from what the model expected to flag."]))

# %%
show_table(
    fits[0].forecast,
    {
        "month": month,
        "forecast": in_money,
        "low_80": in_money,
        "high_80": in_money,
        "low": in_money,
        "high": in_money,
    },
    labels={
        "month": "Month",
        "forecast": "Median forecast",
        "low_80": "Low (80 %)",
        "high_80": "High (80 %)",
        "low": "Low (95 %)",
        "high": "High (95 %)",
    },
    caption=f"Forecast for all territories, next {ctx.config.forecast_months} months ({fits[0].model} model)",
) if fits else None

# %% [markdown]
# ## How good are the forecasts?
#
# Each forecasting method was tried on the past: cut the history at a month, forecast the months
# after it, compare with what was sold, and repeat for many cut-off months. The method with the
# smallest errors makes the forecast.

# %%
backtest = fits[0].backtest if fits else None
if backtest is not None:
    ratio = backtest.mase / backtest.mase_seasonal_naive
    versus = f"{percent(1 - ratio)} smaller" if ratio <= 1 else f"{percent(ratio - 1)} larger"
    display(
        show_list(
            [
                f"Tried on {backtest.forecasts} past months of the market total, the {backtest.model} "
                f"forecast's errors were {versus} than those of repeating the same month of last year.",
                f"Its 80 % range held the actual sales {percent(backtest.coverage_80)} of the time, "
                f"its 95 % range {percent(backtest.coverage_95)}.",
            ],
            "Forecast track record",
        )
    )
elif fits:
    display(show_list(["Too little history to test the forecasts on the past (it needs over two years)."]))

# %% tags=["method"]
# Method: the trend test, model choice and backtest per series.
if fits:
    display(
        show_list(
            [
                "Trend test: log(1 + monthly sales) on a linear trend and month-of-year dummies (from 24 "
                "months of history), with AR(1) errors by feasible GLS (Prais-Winsten; the residual "
                "autocorrelation is bias-corrected by (2 + 4ρ)/(n − p)). A trend is claimed at p < 0.05, "
                "two-sided, and only if it also holds in a model with the likeliest level shift. Simulated "
                "AR(1) noise (φ = 0.6, 36 months): 5-8 % false trend claims (OLS errors: 32 %).",
                "Level shift: the break month that most reduces squared error (15 % trimmed at each end), "
                f"tested by its Wald statistic against {performance.SUP_WALD_CRITICAL} "
                "(Andrews 1993, 5 %).",
                f"Backtest: rolling origin from month {performance.BACKTEST_MIN_TRAIN + 1}; the market "
                f"total at {settings.backtest_origins} origins with ETS (additive error, damped trend, "
                "additive season, on log sales) estimated at each; each territory at "
                f"{settings.territory_backtest_origins} origins with ETS's smoothing parameters fixed at "
                "the market total's. Horizon: the forecast months. MASE scales each error by the mean "
                "absolute seasonal naive error of its training window.",
                "Forecasts and bands are computed on log sales and transformed back, so the central line is "
                "the median, not the mean.",
            ],
            "Method",
        )
    )
    models = performance.model_table(fits)
    display(
        show_table(
            models,
            {
                "trend_slope_a_year": SIGNED_PERCENT,
                "slope_low_95": SIGNED_PERCENT,
                "slope_high_95": SIGNED_PERCENT,
                "p_value": "{:.3f}",
                "ar1_rho": DECIMAL,
                "mase": DECIMAL,
                "mase_seasonal_naive": DECIMAL,
                "coverage_80": PERCENT,
                "coverage_95": PERCENT,
                "origins": COUNT,
            },
            labels={
                "territory": "Series",
                "trend_slope_a_year": "Trend slope a year (model)",
                "slope_low_95": "Low 95%",
                "slope_high_95": "High 95%",
                "p_value": "p (trend)",
                "ar1_rho": "AR(1) ρ",
                "model": "Forecast model",
                "mase": "MASE",
                "mase_seasonal_naive": "MASE, seasonal naive",
                "coverage_80": "80% coverage",
                "coverage_95": "95% coverage",
            },
            caption="Trend model and backtest per series",
            max_rows=len(models),
        )
    )
    if backtest is not None:
        display(
            show_table(
                backtest.scores,
                {"mase": DECIMAL, "coverage_80": PERCENT, "coverage_95": PERCENT, "forecasts": COUNT},
                labels={
                    "model": "Model",
                    "mase": "MASE",
                    "coverage_80": "80% coverage",
                    "coverage_95": "95% coverage",
                },
                caption=f"Backtest of the market total: {backtest.origins} origins, candidates compared",
            )
        )

# %% tags=["remove-cell"]
ctx.workspace.write("kpis", kpis)
ctx.workspace.write("trends", trends)
ctx.workspace.record_metrics("step4", performance.backtest_metrics(fits))
