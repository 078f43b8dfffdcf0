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
# # Step 2 · Define territories
#
# The units are grouped into territories that are **balanced** (each carries a fair share of
# every measure the params name, within its tolerance), **contiguous** (each is one connected
# piece) and **compact** (as round as the geography allows, to keep travel short). Where the
# params ask for it, each territory is anchored at one rep's home.

# %% tags=["parameters"]
params_path: str = "georgia"  # market name in params/, or the path of a params YAML
output_dir: str = ""  # folder for this run's results; empty: reports/_scratch/<market>
run_date: str = ""  # date printed on the report, YYYY-MM-DD; empty: today

# %% tags=["remove-cell"]
from territory_lib import maps, resources, scenarios, territories
from territory_lib.config import plural
from territory_lib.presentation import (
    COUNT,
    DECIMAL,
    PERCENT,
    SIGNED_PERCENT,
    measure_formats,
    percent,
    show_figure,
    show_list,
    show_table,
)
from territory_lib.steps import start_step

# %% tags=["next-kernel-after"]
ctx = start_step(2, params_path, output_dir, run_date)
unit = ctx.config.unit_label.capitalize()
metrics = ctx.workspace.read("unit_metrics")
accounts = ctx.workspace.read("accounts")
targets = territories.balance_targets(ctx.config, metrics)
# The plans with one territory fewer and one more (compared below) are drawn on another core meanwhile.
other_scenarios = scenarios.ScenariosAhead(ctx.config, metrics, targets, ctx.adjacency)
design = territories.design_plan(ctx.config, metrics, ctx.market.reps, graph=ctx.adjacency)
plan = design.result
alignment, rep_assignment, account_assignment = territories.plan_tables(
    plan.assignment, metrics, accounts, ctx.market.reps, ctx.config.resources.capacity_weight
)

# %% tags=["remove-cell"]
ctx.workspace.record_metrics(
    "step2",
    territories.step2_metrics(plan, targets, design.anchored, territories.current_balance(metrics, targets)),
)

# %% [markdown]
# ## The plan in brief

# %% keep_output=true tags=["nbval-check-output"]
show_list(
    design.notes
    + territories.plan_findings(
        plan, targets, design.anchored, territories.current_balance(metrics, targets), ctx.config.unit_label
    )
)

# %% [markdown]
# ## Territory map
#
# Each colour is a territory; the circles are the homes of the reps assigned to them (the
# matching that minimises the reps' total distance). Hover a unit for its figures.

# %%
homes = resources.rep_homes(ctx.market.reps, rep_assignment)
maps.territory_map(
    alignment,
    "territory_id",
    tooltip_columns={
        "name": unit,
        "territory_id": "Territory",
        "accounts": "Accounts",
        "potential": "Potential",
    },
    title="The plan: territories and their reps",
    legend_title="Territory · rep",
    rep_names=dict(zip(homes["territory_id"], homes["name"], strict=True)),
    points=homes,
    point_tooltip_columns={"name": "Rep", "territory_id": "Territory"},
    formats={"potential": "{:,.0f}", "accounts": "{:,.0f}"},
    tiles=ctx.config.maps.tiles,
)

# %% [markdown]
# ## Balance
#
# One row per territory: its total of every balance measure and its deviation from the target
# share. A deviation inside the tolerance band is balanced.

# %%
table = plan.territories.merge(rep_assignment[["territory_id", "rep_name"]], on="territory_id", how="left")
formats = measure_formats([c for t in targets for c in (t.column, f"{t.column}_dev")], ctx.config.currency)
show_table(
    table,
    {"n_units": COUNT, "polsby_popper": DECIMAL, "inertia": "{:,.0f}", **formats},
    labels={
        "territory_id": "Territory",
        "rep_name": "Rep",
        "n_units": plural(ctx.config.unit_label).capitalize(),
        "polsby_popper": "Polsby-Popper",
    },
)

# %% [markdown]
# ## Balance, today and in the plan
#
# Each bar is a territory's deviation from its fair share; the shaded band is the tolerance the
# params allow. Grey hatched bars are today's territories (from the data's current alignment),
# where the data carry one.

# %%
measures = [t.column for t in targets]
tolerances = {t.column: t.tolerance for t in targets}
plan_deviation = scenarios.territory_deviations(plan.assignment, metrics, measures)
today_deviation = (
    scenarios.territory_deviations(metrics.set_index("unit_id")["territory_id"], metrics, measures)
    if territories.current_balance(metrics, targets) is not None
    else None
)
show_figure(
    scenarios.balance_bars(plan_deviation, tolerances, today_deviation),
    alt=scenarios.balance_alt_text(plan_deviation, tolerances, today_deviation),
)

# %% [markdown]
# ## How many territories do we need?
#
# The same market divided into one territory fewer and one more than the plan (and any variants
# the params name under `scenarios`), compared with the plan. Fewer territories mean more
# accounts per rep; the chart below shows where that crosses the reps' capacity.

# %%
scenario_rows, scenario_notes = scenarios.plan_scenarios(
    ctx.config, metrics, plan, targets, ctx.adjacency, ahead=other_scenarios
)
capacities = ctx.market.reps["capacity"].to_numpy(dtype=float)
scenario_table = scenarios.scenario_table(
    scenario_rows, metrics, float(capacities.mean()) if len(capacities) else None
)
show_table(
    scenario_table,
    {
        **{column: percent for column in scenario_table.columns if column.startswith("max_dev_")},
        "mean_polsby_popper": DECIMAL,
        "accounts_per_rep": COUNT,
        "largest_territory_accounts": COUNT,
        "largest_vs_capacity": percent,
    },
    labels={
        **{
            column: f"Largest deviation, {column.removeprefix('max_dev_').replace('_', ' ')}"
            for column in scenario_table.columns
            if column.startswith("max_dev_")
        },
        "within_bands": "Every territory within its bands",
        "mean_polsby_popper": "Compactness (1 = circle)",
        "accounts_per_rep": "Accounts per rep",
        "largest_territory_accounts": "Accounts in the largest territory",
        "largest_vs_capacity": "Largest territory against mean rep capacity",
    },
)

# %%
show_list(scenario_notes)

# %%
# None with the plan alone (large maps draw no other scenario): it would repeat the map above.
scenario_figure = scenarios.scenario_maps(scenario_rows, metrics)
show_figure(
    scenario_figure,
    dpi=80,
    alt="Small maps of the market divided as in each scenario of the table, one colour per territory.",
) if scenario_figure is not None else None

# %%
show_figure(
    scenarios.sizing_curve(
        float(metrics["accounts"].sum()),
        capacities,
        ctx.config.territories,
        scenario_rows,
        metrics,
        ctx.config.resources.over_capacity,
    ),
    alt=scenarios.sizing_alt_text(float(metrics["accounts"].sum()), capacities, ctx.config.territories),
)

# %% [markdown] tags=["method"]
# ## Plan quality
#
# Polsby-Popper compares each territory's area with a circle of the same perimeter (1 is a
# circle); the moment of inertia sums, over units, their measure times the squared distance to
# the territory's centre (lower is more compact).

# %% tags=["method"]
show_table(territories.summary_table(plan))

# %% tags=["remove-cell"]
ctx.workspace.write(
    "alignment", alignment[["unit_id", "name", "territory_id", "accounts", "potential", "geometry"]]
)
ctx.workspace.write("territories", table)
ctx.workspace.write("rep_assignment", rep_assignment)
ctx.workspace.write("account_assignment", account_assignment)
ctx.workspace.write_csv("alignment.csv", alignment[["unit_id", "territory_id"]])
ctx.workspace.write_csv("account_assignment.csv", account_assignment)
