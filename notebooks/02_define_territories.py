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
from territory_lib import maps, resources, territories
from territory_lib.config import plural
from territory_lib.presentation import COUNT, DECIMAL, MONEY, PERCENT, SIGNED_PERCENT, show_list, show_table
from territory_lib.steps import start_step

# %%
ctx = start_step(2, params_path, output_dir, run_date)
unit = ctx.config.unit_label.capitalize()
metrics = ctx.workspace.read("unit_metrics")
accounts = ctx.workspace.read("accounts")
targets = territories.balance_targets(ctx.config, metrics)
design = territories.design_plan(ctx.config, metrics, ctx.market.reps, graph=ctx.adjacency)
plan = design.result
alignment, rep_assignment, account_assignment = territories.plan_tables(
    plan.assignment, metrics, accounts, ctx.market.reps
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
maps.category_map(
    alignment,
    "territory_id",
    tooltip_columns={
        "name": unit,
        "territory_id": "Territory",
        "accounts": "Accounts",
        "potential": "Potential",
    },
    legend_title="Territories",
    points=homes,
    point_category_column="territory_id",
    point_tooltip_columns={"name": "Rep", "territory_id": "Territory"},
    points_label="Rep home",
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
measure_formats = {t.column: MONEY for t in targets} | {f"{t.column}_dev": SIGNED_PERCENT for t in targets}
show_table(
    table,
    {"n_units": COUNT, "polsby_popper": DECIMAL, "inertia": "{:,.0f}", **measure_formats},
    labels={
        "territory_id": "Territory",
        "rep_name": "Rep",
        "n_units": plural(ctx.config.unit_label).capitalize(),
        "polsby_popper": "Polsby-Popper",
    },
)

# %% [markdown]
# ## Plan quality
#
# Polsby-Popper compares each territory's area with a circle of the same perimeter (1 is a
# circle); the moment of inertia sums, over units, their measure times the squared distance to
# the territory's centre (lower is more compact).

# %%
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
