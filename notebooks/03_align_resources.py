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
# Each territory of the plan gets a rep, matched on two things at once: how far the rep lives from
# the territory and how well its workload fits the rep's capacity. This report checks whether each
# rep can carry the territory: accounts against capacity, and the driving, hours and days their
# visits take when they are chained into day tours from home.

# %% tags=["parameters"]
params_path: str = "georgia"  # market name in params/, or the path of a params YAML
output_dir: str = ""  # folder for this run's results; empty: reports/_scratch/<market>
run_date: str = ""  # date printed on the report, YYYY-MM-DD; empty: today

# %% tags=["remove-cell"]
from territory_lib import maps, resources
from territory_lib.config import distance_unit
from territory_lib.presentation import COUNT, PERCENT, distance, money, show_figure, show_list, show_table
from territory_lib.steps import start_step

# %%
ctx = start_step(3, params_path, output_dir, run_date)
unit = ctx.config.unit_label.capitalize()
km_unit = distance_unit(ctx.config)
settings = ctx.config.resources
alignment = ctx.workspace.read("alignment")
rep_assignment = ctx.workspace.read("rep_assignment")
accounts = ctx.workspace.read("accounts").merge(alignment[["unit_id", "territory_id"]], on="unit_id")
workload = resources.rep_workload(accounts, ctx.market.reps, rep_assignment, settings)
comparison = resources.workload_before_after(accounts, ctx.market.reps, rep_assignment, settings, workload)
totals = resources.totals_today_vs_plan(comparison)
spare = resources.unassigned_reps(ctx.market.reps, rep_assignment)
tradeoff = resources.matching_tradeoff(resources.territory_centres(accounts), ctx.market.reps, settings)


def km(value: object) -> str:
    """A distance in the report's unit."""
    return distance(value, km_unit)


# %% [markdown]
# ## What to act on

# %%
show_list(
    resources.resource_recommendations(workload, spare)
    + resources.travel_findings(workload, settings, km_unit)
)

# %% [markdown]
# ## Today and in the plan
#
# The whole team's figures with the accounts each rep owns today (from the CRM) and with the
# territories of the plan. Driving comes from the route model described under "Method and data".

# %%
show_table(
    resources.format_totals(totals, km_unit),
    labels={"measure": "", "today": "Today", "plan": "In the plan", "change": "Change"},
)

# %%
show_list([resources.route_assumptions(settings, km_unit)])

# %% [markdown]
# ## Workload against capacity
#
# Capacity is the number of accounts a rep can cover well. Utilisation between the params' under-
# and over-capacity thresholds (the green band) is healthy. Each rep's bars: today (light) and in
# the plan (dark); a crossed bar is over capacity, a dotted bar under-used, and the word above each
# bar says the same. A rep whose capacity is 0 in the reps file shows as "no cap.".

# %%
show_figure(
    resources.utilisation_today_vs_plan_chart(comparison, settings),
    alt=resources.utilisation_alt_text(comparison, settings),
)

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
    {
        "accounts": COUNT,
        "customers": COUNT,
        "capacity": COUNT,
        "utilisation": PERCENT,
        "potential": lambda v: money(v, ctx.config.currency),
    },
    labels={"territory_id": "Territory", "rep_name": "Rep"},
)

# %% [markdown]
# ## Matching reps to territories
#
# Matching on distance alone can hand a large territory to a rep of small capacity. The plan
# weighs both; the table shows what each weight of capacity against distance would give.

# %%
show_list(resources.tradeoff_findings(tradeoff, km_unit))

# %%
show_table(
    tradeoff,
    {
        "capacity_weight": "{:g}",
        "mean_home_distance_km": km,
        "reps_over_capacity": COUNT,
        "max_utilisation": PERCENT,
        "chosen": lambda chosen: "this plan" if chosen else "",
    },
    labels={
        "capacity_weight": "Weight of capacity",
        "mean_home_distance_km": "Mean distance, home to territory centre",
        "reps_over_capacity": "Reps over capacity",
        "max_utilisation": "Largest utilisation",
        "chosen": "",
    },
)

# %% [markdown]
# ## Before and after
#
# Each rep's book today (the accounts the CRM says they own) against their territory in the
# plan.

# %%
show_table(
    comparison[
        [
            "rep_id",
            "name",
            "territory_id",
            "capacity",
            "accounts_today",
            "accounts_plan",
            "utilisation_today",
            "utilisation_plan",
            "annual_drive_km_today",
            "annual_drive_km_plan",
            "time_utilisation_today",
            "time_utilisation_plan",
        ]
    ],
    {
        "capacity": COUNT,
        "accounts_today": COUNT,
        "accounts_plan": COUNT,
        "utilisation_today": PERCENT,
        "utilisation_plan": PERCENT,
        "annual_drive_km_today": km,
        "annual_drive_km_plan": km,
        "time_utilisation_today": PERCENT,
        "time_utilisation_plan": PERCENT,
    },
    labels={
        "rep_id": "Rep id",
        "name": "Rep",
        "territory_id": "Territory in the plan",
        "accounts_today": "Accounts today",
        "accounts_plan": "Accounts in the plan",
        "utilisation_today": "Utilisation today",
        "utilisation_plan": "Utilisation in the plan",
        "annual_drive_km_today": "Driving a year today",
        "annual_drive_km_plan": "Driving a year in the plan",
        "time_utilisation_today": "Days needed / working days, today",
        "time_utilisation_plan": "Days needed / working days, plan",
    },
)

# %% [markdown]
# ## Travel
#
# A rep's year of visits, chained into day tours from home. "Days needed" counts the working days
# the visits and the travel to far areas take; past the working year the rep cannot make every
# planned visit, and the driving shown is what the working year allows.

# %%
show_table(
    workload[
        [
            "territory_id",
            "rep_name",
            "visits_per_year",
            "mean_distance_km",
            "annual_drive_km",
            "drive_hours",
            "days_needed",
            "visits_missed",
            "travel_status",
        ]
    ],
    {
        "visits_per_year": COUNT,
        "mean_distance_km": km,
        "annual_drive_km": km,
        "drive_hours": COUNT,
        "days_needed": COUNT,
        "visits_missed": COUNT,
    },
    labels={
        "territory_id": "Territory",
        "rep_name": "Rep",
        "visits_per_year": "Planned visits a year",
        "mean_distance_km": "Mean distance, home to account (straight line)",
        "annual_drive_km": "Driving a year",
        "drive_hours": "Hours at the wheel a year",
        "days_needed": f"Days needed (of {settings.working_days})",
        "visits_missed": "Visits beyond the working year",
        "travel_status": "How the territory is worked",
    },
)

# %%
territory_units = alignment.merge(
    workload[["territory_id", "rep_name", "utilisation"]], on="territory_id", how="left"
)
homes = resources.rep_homes(ctx.market.reps, rep_assignment)
maps.territory_map(
    territory_units,
    "territory_id",
    tooltip_columns={
        "name": unit,
        "territory_id": "Territory",
        "rep_name": "Rep",
        "utilisation": "Rep utilisation",
    },
    title="Territories and the homes of their reps",
    legend_title="Territory · rep",
    rep_names=dict(zip(workload["territory_id"], workload["rep_name"], strict=True)),
    points=homes,
    point_tooltip_columns={"name": "Rep", "territory_id": "Territory", "capacity": "Capacity"},
    formats={"utilisation": "{:.0%}"},
    tiles=ctx.config.maps.tiles,
)

# %% [markdown] tags=["method"]
# ### Route model
#
# Each account is visited as often a year as its segment asks (params `resources.visits_per_year`).
# The year is split into rounds, as many as the most frequent account's visits; an account's visits
# are spread evenly over them. In each round the accounts due are chained into day tours from the
# rep's home by Clarke and Wright's savings method, within the day's limits on visits, hours
# (driving plus time at each account) and kilometres, and each day is put in its shortest order
# (exactly up to 7 stops, else 2-opt). Accounts beyond a day trip from home are grouped
# into areas no wider than a day trip (complete-linkage clusters) and worked from a base in the
# area, reached by car with nights away when the base is within a day's drive, otherwise by air
# (one working day per return flight; trips last at most a working week). Road distance is the
# great-circle distance times the detour factor. When the visits need more days than the working
# year holds, the rep makes the same share of every round's visits that fits; the rest are counted
# as visits beyond the working year, and driving is the working year's. On test instances the day
# tours come within 10 % of tours solved by OR-Tools (guided local search) under the same limits.

# %% tags=["method"]
show_table(
    resources.route_settings_table(settings, km_unit),
    labels={"setting": "Setting (params resources.*)", "value": "Value"},
)

# %% tags=["remove-cell"]
ctx.workspace.write("rep_workload", workload)
ctx.workspace.write("rep_comparison", comparison)
ctx.workspace.write_csv("rep_workload.csv", workload)
ctx.workspace.record_metrics("step3", resources.step3_metrics(comparison))
