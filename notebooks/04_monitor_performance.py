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
# How is each territory of the plan doing? Sales history is regrouped under the new territories,
# so every figure below compares like with like: monthly sales, growth, new customers, and the
# share of potential captured, then a trend model per territory that forecasts the coming months.

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
    MONEY,
    PERCENT,
    SIGNED_PERCENT,
    show_figure,
    show_list,
    show_table,
)
from territory_lib.steps import start_step

# %%
ctx = start_step(4, params_path, output_dir, run_date)
assignment = ctx.workspace.read("account_assignment")
kpis = performance.monthly_kpis(ctx.market.sales, assignment, ctx.market.accounts)
fits = performance.fit_trends(kpis, ctx.config.forecast_months)
first, last = kpis["month"].min(), kpis["month"].max()
notes = performance.data_notes(ctx.market.sales, ctx.config.currency)

# %%
show_list(notes, "About the sales data") if notes else None

# %% [markdown]
# ## Scorecard: the last twelve months

# %%
scorecard = performance.kpi_scorecard(kpis)
show_table(
    scorecard,
    {
        "sales_12m": MONEY,
        "sales_prior_12m": MONEY,
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
    caption=f"Sales data from {first:%B %Y} to {last:%B %Y}",
    max_rows=len(scorecard),
)

# %% [markdown]
# ## Trends and forecast
#
# For all territories together and for each territory, an ordinary least squares model of
# monthly sales (log scale) on a linear trend and the month of the year separates growth from
# seasonality. Growth is the trend over twelve months with its 95 % confidence interval; the
# shaded band is the 95 % prediction interval of the forecast. Months the model flags as outliers
# (Bonferroni-corrected) are marked. A trend needs at least twelve months of sales, and
# seasonality twenty-four. The charts show the market total and the territories with the most
# sales in the last twelve months (their number is a setting of the market); the table after
# them lists every territory.

# %%
if fits:
    chart = performance.forecast_chart(fits, ctx.config.currency, ctx.config.monitor.chart_territories)
    display(show_figure(chart))
else:
    display(show_list(["Not enough history for a trend: no trend, growth rate or forecast is shown."]))

# %%
trends = performance.trend_table(fits)
show_table(
    trends,
    {
        "sales_12m": MONEY,
        "annual_growth": SIGNED_PERCENT,
        "growth_low_95": SIGNED_PERCENT,
        "growth_high_95": SIGNED_PERCENT,
        "r_squared": DECIMAL,
        "anomalous_months": COUNT,
        "next_month_forecast": MONEY,
    },
    labels={
        "territory": "Territory",
        "sales_12m": "Sales, last 12 months",
        "annual_growth": "Trend growth a year",
        "growth_low_95": "Low 95%",
        "growth_high_95": "High 95%",
        "r_squared": "R²",
        "anomalous_months": "Outlier months",
        "next_month_forecast": "Forecast, next month",
    },
    max_rows=len(trends),
) if fits else None

# %%
outliers = performance.anomalies(fits)
if len(outliers):
    display(
        show_table(
            outliers,
            {"sales": MONEY, "expected": MONEY, "month": "{:%B %Y}"},
            caption="Months far from the trend: worth a look",
        )
    )
elif fits:
    display(show_list(["No month lies far enough from its trend to flag."]))

# %%
show_table(
    fits[0].forecast,
    {"month": "{:%B %Y}", "forecast": MONEY, "low": MONEY, "high": MONEY},
    caption=f"Forecast for all territories, next {ctx.config.forecast_months} months",
) if fits else None

# %% tags=["remove-cell"]
ctx.workspace.write("kpis", kpis)
ctx.workspace.write("trends", trends)
