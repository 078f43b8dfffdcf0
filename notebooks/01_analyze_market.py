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
# what in the demographics the potential is associated with, where it clusters, and where it falls
# short of what the demographics lead us to expect. Every statistical claim says how many results
# chance alone would give.

# %% tags=["parameters"]
params_path: str = "georgia"  # market name in params/, or the path of a params YAML
output_dir: str = ""  # folder for this run's results; empty: reports/_scratch/<market>
run_date: str = ""  # date printed on the report, YYYY-MM-DD; empty: today

# %% tags=["remove-cell"]
import html

from IPython.display import HTML, display

from territory_lib import maps, market
from territory_lib.config import counted, plural
from territory_lib.geometry import repair_table
from territory_lib.presentation import (
    COUNT,
    DECIMAL,
    PERCENT,
    money,
    percent,
    show_figure,
    show_list,
    show_table,
)
from territory_lib.steps import start_step

# %%
ctx = start_step(1, params_path, output_dir, run_date)
unit = ctx.config.unit_label.capitalize()
units = plural(ctx.config.unit_label)
currency = ctx.config.currency
analysis = ctx.config.analysis
metrics = market.unit_metrics(ctx.market)
weights = market.unit_weights(metrics, ctx.adjacency)
draws = analysis.permutations or market.permutations_for(
    len(metrics), analysis.significance, analysis.max_permutations
)
spots = market.hot_spots(
    metrics, seed=analysis.seed, permutations=draws, level=analysis.significance, weights=weights
)
metrics = metrics.merge(spots[["unit_id", "hot_spot", "gi_z"]], on="unit_id")
model = market.potential_model(
    metrics, ctx.market.unit_attributes, level=analysis.significance, seed=analysis.seed, weights=weights
)
spot_summary = market.hot_spot_summary(spots)
ctx.workspace.record_metrics("step1", spot_summary | model.summary())

# %% [markdown]
# ## The market at a glance

# %%
show_table(market.market_headline(metrics, ctx.config.unit_label))

# %%
show_list(market.key_findings(metrics, spots, ctx.config.unit_label, model), "What stands out")

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
        "potential": f"Potential ({currency})",
        "sales_12m": f"Sales, last 12 months ({currency})",
        "penetration": "Penetration",
    },
    title=f"Annual potential by {ctx.config.unit_label}",
    legend_title=f"Annual potential ({currency})",
    formats={"penetration": "{:.1%}", "sales_12m": "{:,.0f}"},
    tiles=ctx.config.maps.tiles,
)

# %%
top_units = metrics.sort_values("potential", ascending=False)
show_table(
    top_units[["name", "accounts", "customers", "potential", "sales_12m", "penetration"]],
    {
        "accounts": COUNT,
        "customers": COUNT,
        "potential": lambda v: money(v, currency),
        "sales_12m": lambda v: money(v, currency),
        "penetration": PERCENT,
    },
    labels={"name": unit, "sales_12m": "Sales, last 12 months"},
    caption=f"{units.capitalize()} by potential",
    max_rows=15,
)

# %% [markdown]
# ## Segments
#
# How accounts and potential split between customer segments: a segment with a small share of
# accounts but a large share of potential holds the larger accounts. Penetration is the last twelve
# months of sales over the segment's annual potential.

# %%
segments = market.segment_profile(ctx.market.accounts, ctx.market.sales)
display(show_figure(market.segment_mix_figure(segments), alt=market.segment_mix_caption(segments)))
HTML(f"<p><em>{html.escape(market.segment_mix_caption(segments))}</em></p>")

# %%
show_table(
    segments,
    {
        "accounts": COUNT,
        "customers": COUNT,
        "potential": lambda v: money(v, currency),
        "sales_12m": lambda v: money(v, currency),
        "share_of_potential": PERCENT,
        "penetration": PERCENT,
    },
    labels={"sales_12m": "Sales, last 12 months", "share_of_potential": "Share of potential"},
    index=True,
)

# %% [markdown]
# ## Hot spots
#
# Where potential per km² clusters: groups of neighbouring units that are all rich (hot) or all
# poor (cold) in potential, beyond what chance would give. Every unit is tested, so some would
# look clustered by luck alone; the map shows only clusters that survive a correction for that
# (a false-discovery rate of 5 % unless the params say otherwise).

# %%
show_list(
    [
        f"Hot spots: {spot_summary['hot_spots']}; cold spots: {spot_summary['cold_spots']} "
        f"(of {len(metrics):,} {units}).",
        f"Of the spots shown, about {spot_summary['expected_false_spots']:.1f} may be chance "
        f"(false-discovery rate {percent(spot_summary['level'])}).",
        f"Had every {ctx.config.unit_label} been tested without that correction, chance alone would "
        f"have flagged about {spot_summary['uncorrected_chance_spots']:.0f} of them on a map with no "
        "clusters at all.",
    ]
)

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
    title="Where potential clusters: hot and cold spots",
    legend_title="Potential density clusters",
    formats={"potential_per_km2": "{:,.0f}", "gi_z": "{:+.2f}"},
    colors=market.HOT_SPOT_COLORS,
    tiles=ctx.config.maps.tiles,
)

# %% tags=["method"]
show_table(
    spots.merge(metrics[["unit_id", "name"]], on="unit_id")
    .query("hot_spot != 'not significant'")
    .sort_values("p_value")[["name", "hot_spot", "gi_z", "p_value"]],
    {"gi_z": "{:+.2f}", "p_value": "{:.5f}"},
    labels={"name": unit, "hot_spot": "Cluster", "gi_z": "Gi* z", "p_value": "Two-sided p-value"},
    caption=(
        f"Getis-Ord Gi* (esda) on the run's adjacency, binary weights with the unit itself; "
        f"{spot_summary['permutations']:,} conditional permutations per unit, two-sided; "
        f"Benjamini-Hochberg false-discovery rate {spot_summary['level']:.2f} over "
        f"{spot_summary['tests']:,} tests (cut-off p = {spots.attrs['fdr_cutoff']:.5f})"
    ),
)

# %% [markdown]
# ## What potential is associated with
#
# A model of each unit's known potential from its size and demographics, every unit included
# (those without accounts too). An attribute is named only if its association is beyond chance
# after allowing for every attribute tried, and if the model then predicts units it was not fitted
# on better than size alone. These are associations, not causes.

# %%
show_list(
    [
        f"Potential is compared per {model.size_unit}: a {ctx.config.unit_label} with twice the "
        f"{model.exposure} is expected to have twice the potential, all else equal.",
        (
            f"Associated with higher or lower potential per {model.size_unit}: {', '.join(model.drivers)}. "
            f"{percent(model.cv_deviance_explained)} of the differences between {units} that size "
            f"leaves unexplained are predicted on {units} held out of the fit."
            if model.drivers
            else f"No attribute is associated with potential per {model.size_unit} beyond chance."
        ),
        *model.notes,
    ]
)

# %% tags=["method"]
show_table(
    model.coefficients.reset_index(names="term"),
    {"multiplier per +1 sd": DECIMAL, "low 95%": DECIMAL, "high 95%": DECIMAL, "p-value": "{:.2g}"},
    caption=(
        f"Tweedie GLM (variance power {market.TWEEDIE_POWER}, log link): {model.formula}; "
        f"{model.n_units} units ({model.n_without_accounts} without accounts)"
    ),
)

# %% tags=["method"]
show_table(
    model.fit_table(),
    caption="Fit of the potential model",
)

# %% tags=["method"]
show_table(
    model.screening,
    {"p-value": "{:.2g}", "adjusted p-value": "{:.2g}"},
    caption=(
        "Every attribute tried (z-scores; log of skewed counts): Wald p-value when it entered or was "
        f"last tried, and that p-value times the attributes then tried (Bonferroni); entry needs the "
        f"adjusted p-value below {model.level:g}"
    ),
)

# %% [markdown]
# ## White space
#
# Units whose known potential falls short of what their size and demographics lead us to expect:
# markets we have not yet prospected. The model gives, for each unit, the range its known
# potential would fall in by chance; a unit is listed only when its known potential lies below
# that range and the shortfall stays beyond chance after allowing for every unit tested.

# %%
white = model.units[model.units["white_space"]].sort_values("shortfall", ascending=False)
if white.empty:
    display(
        HTML(
            f"<p>No {ctx.config.unit_label} falls short of its expected potential beyond chance: "
            "the gaps between known and expected potential are within what chance gives.</p>"
        )
    )
else:
    display(
        show_table(
            white[["name", "accounts", "potential", "modelled_potential", "low", "high", "shortfall"]],
            {
                "accounts": COUNT,
                **dict.fromkeys(
                    ["potential", "modelled_potential", "low", "high", "shortfall"],
                    lambda v: money(v, currency),
                ),
            },
            labels={
                "name": unit,
                "potential": "Known potential",
                "modelled_potential": "Expected from size and demographics",
                "low": f"Chance range, low ({percent(1 - model.level)})",
                "high": "Chance range, high",
                "shortfall": "Shortfall",
            },
            caption=f"White space: {counted(len(white), ctx.config.unit_label)}",
        )
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
show_list(ctx.market.warnings + ([] if ctx.market.repairs else [f"The {unit.lower()} map needed no repair."]))

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
