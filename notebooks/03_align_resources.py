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
# # Step 3 · Align reps and resources
#
# Each territory of the plan gets the rep who lives closest to it (the assignment that minimises
# the reps' total distance from home). This report checks whether each rep can carry the
# territory: accounts against capacity, planned visits, and the driving they imply.

# %% tags=["parameters"]
params_path: str = "georgia"  # market name in params/, or the path of a params YAML
output_dir: str = ""  # folder for this run's results; empty: reports/_scratch/<market>
run_date: str = ""  # date printed on the report, YYYY-MM-DD; empty: today

# %% tags=["remove-cell"]
from territory_lib import maps, resources
from territory_lib.presentation import COUNT, MONEY, PERCENT, show_figure, show_list, show_table
from territory_lib.steps import start_step

# %%
ctx = start_step(3, params_path, output_dir, run_date)
unit = ctx.config.unit_label.capitalize()
alignment = ctx.workspace.read("alignment")
rep_assignment = ctx.workspace.read("rep_assignment")
accounts = ctx.workspace.read("accounts").merge(alignment[["unit_id", "territory_id"]], on="unit_id")
workload = resources.rep_workload(accounts, ctx.market.reps, rep_assignment, ctx.config.resources)
spare = resources.unassigned_reps(ctx.market.reps, rep_assignment)

# %% [markdown]
# ## What to act on

# %%
show_list(resources.resource_recommendations(workload, spare))

# %% [markdown]
# ## Workload against capacity
#
# Capacity is the number of accounts a rep can cover well. Utilisation between
# the params' under- and over-capacity thresholds is healthy. A rep whose capacity is 0 in the
# reps file shows as "no capacity": their utilisation cannot be measured.

# %%
show_figure(resources.utilisation_chart(workload, ctx.config.resources))

# %%
show_table(
    workload[
        [
            "territory_id",
            "rep_name",
            "accounts",
            "customers",
            "capacity",
            "utilisation",
            "potential",
            "status",
        ]
    ],
    {"accounts": COUNT, "customers": COUNT, "capacity": COUNT, "utilisation": PERCENT, "potential": MONEY},
    labels={"territory_id": "Territory", "rep_name": "Rep"},
)

# %% [markdown]
# ## Before and after
#
# Each rep's book today (the accounts the CRM says they own) against their territory in the
# plan.

# %%
show_table(
    resources.workload_before_after(accounts, ctx.market.reps, rep_assignment, ctx.config.resources),
    {
        "capacity": COUNT,
        "accounts_today": COUNT,
        "accounts_plan": COUNT,
        "utilisation_today": PERCENT,
        "utilisation_plan": PERCENT,
        "mean_distance_km_today": "{:,.0f}",
        "mean_distance_km_plan": "{:,.0f}",
        "annual_drive_km_today": COUNT,
        "annual_drive_km_plan": COUNT,
    },
    labels={
        "rep_id": "Rep id",
        "name": "Rep",
        "territory_id": "Territory in the plan",
        "accounts_today": "Accounts today",
        "accounts_plan": "Accounts in the plan",
        "utilisation_today": "Utilisation today",
        "utilisation_plan": "Utilisation in the plan",
        "mean_distance_km_today": "Mean km to accounts today",
        "mean_distance_km_plan": "Mean km in the plan",
        "annual_drive_km_today": "Driving a year today (km)",
        "annual_drive_km_plan": "Driving a year in the plan (km)",
    },
)

# %% [markdown]
# ## Travel
#
# Distances are great-circle kilometres from the rep's home to each account; yearly driving
# multiplies each account's planned visits (by segment) by the round trip and a road detour
# factor of 1.3.

# %%
show_table(
    workload[
        [
            "territory_id",
            "rep_name",
            "visits_per_year",
            "mean_distance_km",
            "max_distance_km",
            "annual_drive_km",
        ]
    ],
    {
        "visits_per_year": COUNT,
        "mean_distance_km": "{:,.0f}",
        "max_distance_km": "{:,.0f}",
        "annual_drive_km": COUNT,
    },
    labels={"territory_id": "Territory", "rep_name": "Rep", "annual_drive_km": "Driving per year (km)"},
)

# %%
territory_units = alignment.merge(
    workload[["territory_id", "rep_name", "utilisation"]], on="territory_id", how="left"
)
homes = resources.rep_homes(ctx.market.reps, rep_assignment)
maps.category_map(
    territory_units,
    "territory_id",
    tooltip_columns={
        "name": unit,
        "territory_id": "Territory",
        "rep_name": "Rep",
        "utilisation": "Rep utilisation",
    },
    legend_title="Territories and rep homes",
    points=homes,
    point_category_column="territory_id",
    point_tooltip_columns={"name": "Rep", "territory_id": "Territory", "capacity": "Capacity"},
    points_label="Rep home",
    formats={"utilisation": "{:.0%}"},
    tiles=ctx.config.maps.tiles,
)

# %% tags=["remove-cell"]
ctx.workspace.write("rep_workload", workload)
ctx.workspace.write_csv("rep_workload.csv", workload)
