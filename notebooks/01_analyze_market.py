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
# # Step 1 · Analyze the market
#
# Where is the business today, and where is the rest of it? This report sizes the market unit by
# unit: how many accounts, how much annual potential, how much of it our sales already capture,
# what in the demographics explains the potential, and where it clusters.

# %% tags=["parameters"]
params_path: str = "georgia"  # market name in params/, or the path of a params YAML
output_dir: str = ""  # folder for this run's results; empty: reports/_scratch/<market>
run_date: str = ""  # date printed on the report, YYYY-MM-DD; empty: today

# %% tags=["remove-cell"]
from IPython.display import display

from territory_lib import maps, market
from territory_lib.config import plural
from territory_lib.geometry import repair_table
from territory_lib.presentation import COUNT, DECIMAL, MONEY, PERCENT, show_list, show_table
from territory_lib.steps import start_step

# %%
ctx = start_step(1, params_path, output_dir, run_date)
unit = ctx.config.unit_label.capitalize()
metrics = market.unit_metrics(ctx.market)
spots = market.hot_spots(metrics, seed=ctx.config.design.seed, graph=ctx.adjacency)
metrics = metrics.merge(spots[["unit_id", "hot_spot", "gi_z"]], on="unit_id")

# %% [markdown]
# ## The market at a glance

# %%
show_table(market.market_headline(metrics, ctx.config.unit_label))

# %%
show_list(market.key_findings(metrics, spots, ctx.config.unit_label), "What stands out")

# %% [markdown]
# ## Where the potential is
#
# Each unit is shaded by the annual potential of its known accounts (customers and prospects).
# Hover a unit for its figures.

# %%
maps.choropleth_map(
    metrics,
    "potential",
    tooltip_columns={
        "name": unit,
        "accounts": "Accounts",
        "customers": "Customers",
        "potential": f"Potential ({ctx.config.currency})",
        "sales_12m": f"Sales, last 12 months ({ctx.config.currency})",
        "penetration": "Penetration",
    },
    legend_title=f"Annual potential ({ctx.config.currency})",
    formats={"penetration": "{:.1%}", "sales_12m": "{:,.0f}"},
    tiles=ctx.config.maps.tiles,
)

# %%
top_units = metrics.sort_values("potential", ascending=False)
show_table(
    top_units[["name", "accounts", "customers", "potential", "sales_12m", "penetration"]],
    {"accounts": COUNT, "customers": COUNT, "potential": MONEY, "sales_12m": MONEY, "penetration": PERCENT},
    labels={"name": unit, "sales_12m": "Sales, last 12 months"},
    caption=f"{plural(ctx.config.unit_label).capitalize()} by potential",
    max_rows=15,
)

# %% [markdown]
# ## Segments
#
# Potential and sales by customer segment. Penetration is the last twelve months of sales over
# the segment's annual potential.

# %%
show_table(
    market.segment_profile(ctx.market.accounts, ctx.market.sales),
    {
        "accounts": COUNT,
        "customers": COUNT,
        "potential": MONEY,
        "sales_12m": MONEY,
        "share_of_potential": PERCENT,
        "penetration": PERCENT,
    },
    labels={"sales_12m": "Sales, last 12 months", "share_of_potential": "Share of potential"},
    index=True,
)

# %% [markdown]
# ## What drives potential
#
# A regression of each unit's potential (log scale) on its demographic attributes, each
# standardised, so an effect reads as "the change in log potential for one standard deviation
# more of this attribute". Units whose known potential falls well below what their demographics
# predict are white space: markets we have not yet prospected.

# %%
model = market.potential_model(metrics, ctx.market.unit_attributes)
show_table(
    model.coefficients.reset_index(names="term"),
    {"effect of +1 sd": DECIMAL, "low 95%": DECIMAL, "high 95%": DECIMAL, "p-value": "{:.3f}"},
    caption=f"{model.formula}: R² = {model.r_squared:.2f} over {model.n_units} units",
)

# %%
show_table(
    model.units.sort_values("ratio").head(10),
    {"potential": MONEY, "modelled_potential": MONEY, "ratio": DECIMAL},
    labels={
        "unit_id": f"{unit} id",
        "name": unit,
        "modelled_potential": "Expected from demographics",
        "ratio": "Known / expected",
    },
    caption=f"White space: the {plural(ctx.config.unit_label)} furthest below their expected potential",
)

# %% [markdown]
# ## Hot spots
#
# Getis-Ord Gi* statistics on potential per km² find clusters of units that are all rich (hot)
# or all poor (cold) in potential, beyond what chance would give (999 permutations, p < 0.05).

# %%
maps.category_map(
    metrics,
    "hot_spot",
    tooltip_columns={
        "name": unit,
        "hot_spot": "Cluster",
        "potential_per_km2": "Potential per km²",
        "gi_z": "Gi* z",
    },
    legend_title="Potential density clusters",
    formats={"potential_per_km2": "{:,.0f}", "gi_z": "{:+.2f}"},
    colors=market.HOT_SPOT_COLORS,
    tiles=ctx.config.maps.tiles,
)

# %% [markdown]
# ## Demographic profile
#
# The attributes that came with the units, summarised across the market.

# %%
profile = metrics[ctx.market.unit_attributes].describe().T[["mean", "std", "min", "50%", "max"]]
profile = profile.rename(columns={"50%": "median"})
show_table(profile, dict.fromkeys(profile.columns, "{:,.2f}"), index=True)

# %% [markdown]
# ## Data notes
#
# What was noticed in the data files and repaired before they were used: the same notes
# `territory check` prints. Unit shapes are repaired as published maps need it: invalid outlines
# are fixed, slivers dropped, and overlaps or small gaps between neighbours resolved so that
# neighbours share their border exactly (the tolerance is set by `geometry: snap:` in the params).

# %%
show_list(ctx.market.warnings or ["The data files needed no repair and raised no note."])

# %%
if ctx.market.repairs:
    display(
        show_table(
            repair_table(ctx.market.repairs, metrics.set_index("unit_id")["name"]),
            labels={"unit_id": f"{unit} id", "name": unit, "repair": "Repair", "detail": "Detail"},
            caption=f"Every repair, {unit.lower()} by {unit.lower()}",
            max_rows=40,
        )
    )

# %% tags=["remove-cell"]
ctx.workspace.write("unit_metrics", metrics)
ctx.workspace.write("accounts", ctx.market.accounts)
