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
# # Step 5 · Gather feedback and re-optimize
#
# What do the reps say about their territories, and does the data bear them out? This report
# summarises the survey scores and comment themes per territory, then proposes a small
# realignment: territories sized to each rep's capacity and balanced on field effort as well as
# potential, changing no more units than the params allow.

# %% tags=["parameters"]
params_path: str = "georgia"  # market name in params/, or the path of a params YAML
output_dir: str = ""  # folder for this run's results; empty: reports/_scratch/<market>
run_date: str = ""  # date printed on the report, YYYY-MM-DD; empty: today

# %% tags=["remove-cell"]
import pandas as pd

from territory_lib import feedback, maps, resources, territories
from territory_lib.config import counted, plural
from territory_lib.design import BalanceTarget, design_territories
from territory_lib.presentation import COUNT, DECIMAL, MONEY, PERCENT, SIGNED_PERCENT, show_list, show_table
from territory_lib.steps import start_step

# %%
ctx = start_step(5, params_path, output_dir, run_date)
unit = ctx.config.unit_label.capitalize()
alignment = ctx.workspace.read("alignment")
rep_assignment = ctx.workspace.read("rep_assignment")
workload = ctx.workspace.read("rep_workload")
metrics = ctx.workspace.read("unit_metrics")
accounts = ctx.workspace.read("accounts")
placed = accounts.merge(alignment[["unit_id", "territory_id"]], on="unit_id")
comparison = resources.workload_before_after(placed, ctx.market.reps, rep_assignment, ctx.config.resources)
survey = ctx.market.feedback
has_feedback = survey is not None and len(survey) > 0
if has_feedback:
    scores = feedback.score_summary(survey, ctx.market.reps, ctx.market.score_columns)
    themes = feedback.comment_themes(survey)
else:
    scores = pd.DataFrame(columns=["rep_id", "rep_name", "responses"])
    themes = pd.DataFrame(columns=["rep_id", "comments"])

# %% [markdown]
# ## What the reps say
#
# Reps answer about the territory they work today. Where a rep scores a question poorly, the
# data on their workload or travel today is set beside what the new plan gives them.

# %%
show_list(
    feedback.findings(scores, comparison)
    if has_feedback
    else [
        "This market has no feedback file (params 'data: feedback:'); the proposals rest on the data alone."
    ]
)

# %%
score_names = [c for c in scores.columns if c not in {"rep_id", "rep_name", "responses"}]
show_table(
    scores,
    {"responses": COUNT} | {c: ("{:+.2f}" if c.endswith("_change") else DECIMAL) for c in score_names},
    labels={"rep_id": "Rep id", "rep_name": "Rep"},
    caption="Mean survey scores (1 poor to 5 good), last four quarters, and the change on the four before",
)

# %%
show_table(
    themes,
    {"comments": COUNT} | {c: PERCENT for c in themes.columns if c not in {"rep_id", "comments"}},
    labels={"rep_id": "Rep id"},
    caption="Share of each rep's comments that raise each theme as a concern (with a score of 2.5 or less)",
)

# %%
concern_share = themes.drop(columns=["rep_id", "comments"]).mean() if len(themes) else pd.Series(dtype=float)
top_theme = concern_share.idxmax() if len(concern_share) and concern_share.max() > 0 else None
(
    show_table(
        feedback.theme_examples(survey, top_theme),
        {"date": "{:%Y-%m-%d}"},
        caption=f"Latest comments about {top_theme}, the concern raised most",
    )
    if top_theme
    else show_list(["No comment raises a concern."])
)

# %% [markdown]
# ## Proposed realignment
#
# The plan of step 2 is re-optimised from where it stands: each territory is sized to its rep's
# capacity (where the params ask for it), and planned visits (field effort, from each account's
# segment) are balanced alongside the step 2 measures. Only the moves the balance needs are
# made, within the disruption cap of the params.

# %%
units = metrics.assign(effort=feedback.unit_effort(accounts, metrics, ctx.config.resources).to_numpy())
current = alignment.set_index("unit_id")["territory_id"]
labels = sorted(current.unique())
shares = (
    feedback.capacity_shares(labels, rep_assignment, ctx.market.reps)
    if ctx.config.design.capacity_targets
    else None
)
targets = [
    *territories.balance_targets(ctx.config, units),
    BalanceTarget("effort", ctx.config.design.effort_tolerance),
]
proposal = design_territories(
    units,
    ctx.config.territories,
    targets,
    current=current,
    max_disruption=ctx.config.design.max_disruption,
    targets=shares,
    seed=ctx.config.design.seed,
    work_budget=ctx.config.design.work_budget,
    snap=ctx.config.geometry.snap,
    graph=ctx.adjacency,
)
before = feedback.target_deviations(units, current, [t.column for t in targets], shares)
moves = feedback.moves_table(proposal.moves, alignment, workload, scores, before)
show_list(territories.plan_findings(proposal, targets, anchored=False, unit_label=ctx.config.unit_label))

# %%
show_table(
    moves,
    {"accounts": COUNT, "potential": MONEY},
    labels={"unit_id": f"{unit} id", "name": unit, "from_territory": "From", "to_territory": "To"},
    caption=f"Proposed moves: {counted(len(moves), ctx.config.unit_label)}",
) if len(moves) else show_list(["No move is needed: the plan already fits the reps' capacity and effort."])

# %%
proposed = alignment.assign(territory_id=alignment["unit_id"].map(proposal.assignment))
maps.category_map(
    proposed,
    "territory_id",
    tooltip_columns={"name": unit, "territory_id": "Proposed territory", "potential": "Potential"},
    legend_title="Proposed territories (outlined: units that move)",
    highlight=set(moves["unit_id"]),
    highlight_label="Proposed move",
    formats={"potential": "{:,.0f}"},
    tiles=ctx.config.maps.tiles,
)

# %%
show_table(
    proposal.territories,
    {"n_units": COUNT, "polsby_popper": DECIMAL, "inertia": "{:,.0f}"}
    | {t.column: MONEY for t in targets}
    | {f"{t.column}_dev": SIGNED_PERCENT for t in targets},
    labels={
        "territory_id": "Territory",
        "n_units": plural(ctx.config.unit_label).capitalize(),
        "polsby_popper": "Polsby-Popper",
    },
    caption="Territories after the proposed moves"
    + (" (deviations from each territory's capacity-based target)" if shares else ""),
)

# %% tags=["remove-cell"]
ctx.workspace.write("feedback_summary", scores)
ctx.workspace.write("proposed_moves", moves)
ctx.workspace.write_csv("proposed_moves.csv", moves)
