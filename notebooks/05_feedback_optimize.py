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
from IPython.display import display

from territory_lib import config, feedback, maps, resources, scenarios, territories
from territory_lib.config import counted, plural
from territory_lib.design import BalanceTarget, design_territories
from territory_lib.presentation import (
    COUNT,
    DECIMAL,
    PERCENT,
    SIGNED_PERCENT,
    measure_formats,
    money,
    show_figure,
    show_list,
    show_table,
)
from territory_lib.steps import start_step

# %%
ctx = start_step(5, params_path, output_dir, run_date)
unit = ctx.config.unit_label.capitalize()
alignment = ctx.workspace.read("alignment")
rep_assignment = ctx.workspace.read("rep_assignment")
workload = ctx.workspace.read("rep_workload")
metrics = ctx.workspace.read("unit_metrics")
accounts = ctx.workspace.read("accounts")
comparison = ctx.workspace.read("rep_comparison")  # step 3's workload today and in the plan
survey = ctx.market.feedback
settings = ctx.config.feedback
has_feedback = survey is not None and len(survey) > 0
theme_names = feedback.theme_names(settings.themes)
if has_feedback:
    scores = feedback.score_summary(
        survey, ctx.market.reps, ctx.market.score_columns, settings.survey_quarters, settings.confidence
    )
    comments = feedback.comment_themes(survey, settings.themes)
else:
    scores = pd.DataFrame(columns=["rep_id", "rep_name", "responses"])
    comments = pd.DataFrame(columns=["date", "rep_id", "comment", "theme"])
flags = feedback.survey_flags(scores, settings.min_responses)
# Reps answer about the territory they work today: their own territory_id, else the plan's.
territory_of = dict(zip(rep_assignment["rep_id"], rep_assignment["territory_id"], strict=True))
if "territory_id" in ctx.market.reps:
    today = ctx.market.reps.dropna(subset=["territory_id"])
    territory_of |= dict(zip(today["rep_id"], today["territory_id"].astype(str), strict=True))

# %% [markdown]
# ## What the reps say
#
# Each rep answers a short survey every quarter, scoring their workload, travel and the other
# questions from 1 (poor) to 5 (good). A rep's score is flagged only when there are enough answers
# and even the optimistic end of its likely range stays below 3, the middle of the scale, so one
# bad quarter is not mistaken for a pattern. Beside each flag is what the data show today and what
# the new plan gives that rep.

# %%
show_list(
    feedback.findings(
        scores,
        comparison,
        settings.min_responses,
        settings.confidence,
        distance_unit=config.distance_unit(ctx.config),
    )
    if has_feedback
    else [
        "This market has no feedback file (params 'data: feedback:'); the proposals rest on the data alone."
    ]
)

# %%
if has_feedback and len(scores):
    matrix = feedback.survey_matrix(scores, territory_of)
    marked = {
        (label, flag.question)
        for flag in flags.itertuples(index=False)
        for label in matrix.index
        if label.endswith(f" · {flag.rep_name}")
    }
    display(
        show_figure(feedback.survey_heatmap(matrix, marked), alt=feedback.survey_heatmap_alt(matrix, marked))
    )

# %% [markdown]
# The chart above reads across: one row per territory and its rep, one column per survey question,
# green for good scores and red for poor ones; a black outline marks a flagged score. The table
# gives each mean with its likely range in brackets, and the change on the period before.

# %%
show_table(
    feedback.score_table(scores),
    {"responses": COUNT} | {f"{name}_change": "{:+.2f}" for name in feedback.question_names(scores)},
    labels={"rep_id": "Rep id", "rep_name": "Rep"},
    caption=(
        f"Mean survey scores (1 poor to 5 good) over the last {settings.survey_quarters} quarters, "
        f"with their {settings.confidence:.0%} range, and the change on the quarters before"
    ),
)

# %% [markdown]
# ## What the comments are about
#
# Every comment is read for its main subject: workload, travel, coverage (accounts nobody or two
# people serve), leads, the market, or support from the company; a comment about none of these,
# or saying that all is well, counts as "other". Comments in Japanese are read as well as English.

# %%
summary = feedback.theme_summary(comments, theme_names)
show_table(
    summary,
    {"comments": COUNT, "share": PERCENT},
    labels={"latest": "Latest comment"},
    caption=f"Comments by main subject ({counted(len(comments), 'comment')}, all quarters)",
) if len(comments) else show_list(["No rep left a comment."])

# %% [markdown] tags=["method"]
# **How comments are themed.** Each comment's language is told by its script (any kana or kanji:
# Japanese; otherwise English). Two things shipped inside the package (no download) score each
# theme. A keyword list per language gives each theme's words a weight: 3 for a phrase that names
# the theme on its own, 2 for a word specific to it, 1 for a hint (such as "prospects", common in
# workload comments too); English keywords match the start of words ("driv" matches "driving"),
# Japanese ones, written without spaces, match anywhere in the comment, and where keywords overlap
# the longest counts, once. A naive Bayes model of several hundred hand-labelled example comments
# (English word stems; Japanese characters and their pairs and triples) adds the log probability of
# each theme, so comments worded unlike any keyword still find theirs. The theme with the highest
# total is the comment's one theme; all-clear phrases ("fine", "no issues", 問題ありません) score
# for "other"; a tie goes to the theme mentioned first. Params `feedback: themes:` replace the
# themes and keywords, and then keywords alone decide (a comment with none is "other"). Precision
# and recall per theme are tested on hand-labelled comments (tests/data/labelled_comments.csv),
# including a half kept out of all tuning that measures how well it reads comments it has not seen.
#
# **How scores are flagged.** Each rep's mean score per question over the last quarters carries a
# t interval of the mean; a score is flagged when it has at least the minimum number of answers
# and the interval's upper end is below 3. If every rep's true score were 3, each eligible score
# would be flagged with a chance of half of one minus the confidence level (5 % at 90 %).

# %% tags=["method"]
show_table(
    pd.DataFrame(
        [
            {"setting": "Minimum answers before a flag", "value": f"{settings.min_responses}"},
            {"setting": "Quarters behind each score", "value": f"{settings.survey_quarters}"},
            {"setting": "Confidence of the score ranges", "value": f"{settings.confidence:.0%}"},
            {"setting": "Themes", "value": ", ".join(theme_names)},
            {
                "setting": "Themes from",
                "value": "params (keywords)" if settings.themes else "shipped keywords and examples (en, ja)",
            },
        ]
    ),
    caption="Settings of the feedback analysis",
)

# %% tags=["remove-cell"]
ctx.workspace.write_csv("comment_themes.csv", comments[["date", "rep_id", "comment", "theme"]])
# Merge: the proposal's figures (step5.proposal) share this section of metrics.json.
step5 = ctx.workspace.read_metrics().get("step5", {})
step5["themes"] = feedback.theme_counts(comments, theme_names)
ctx.workspace.record_metrics("step5", step5)

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

# %% [markdown]
# ### Balance before and after
#
# Each bar is a territory's deviation from its target (its rep's share of capacity, where the
# params size territories by capacity); the shaded band is the tolerance. Grey hatched bars are the
# step 2 plan, coloured bars the proposal.

# %%
after = feedback.target_deviations(units, proposal.assignment, [t.column for t in targets], shares)
band = {t.column: t.tolerance for t in targets}
show_figure(
    scenarios.balance_bars(after, band, before, labels=("Plan (step 2)", "Proposal")),
    alt=scenarios.balance_alt_text(after, band, before, labels=("Plan (step 2)", "Proposal")),
)

# %%
show_table(
    moves,
    {"accounts": COUNT, "potential": lambda v: money(v, ctx.config.currency)},
    labels={"unit_id": f"{unit} id", "name": unit, "from_territory": "From", "to_territory": "To"},
    caption=f"Proposed moves: {counted(len(moves), ctx.config.unit_label)}",
) if len(moves) else show_list(["No move is needed: the plan already fits the reps' capacity and effort."])

# %%
proposed = alignment.assign(
    territory_id=alignment["unit_id"].map(proposal.assignment), current_territory=alignment["territory_id"]
)
maps.territory_map(
    proposed,
    "territory_id",
    tooltip_columns={"name": unit, "territory_id": "Proposed territory", "potential": "Potential"},
    title="The proposal: territories after the moves",
    legend_title="Proposed territory · rep",
    rep_names=dict(zip(workload["territory_id"], workload["rep_name"], strict=True)),
    previous_column="current_territory",
    moved_label="Proposed move (dashed outline; stripes of the new territory's colour over the old one's)",
    formats={"potential": "{:,.0f}"},
    tiles=ctx.config.maps.tiles,
)

# %%
show_table(
    proposal.territories,
    {"n_units": COUNT, "polsby_popper": DECIMAL, "inertia": "{:,.0f}"}
    | measure_formats([c for t in targets for c in (t.column, f"{t.column}_dev")], ctx.config.currency),
    labels={
        "territory_id": "Territory",
        "n_units": plural(ctx.config.unit_label).capitalize(),
        "polsby_popper": "Polsby-Popper",
    },
    caption="Territories after the proposed moves"
    + (" (deviations from each territory's capacity-based target)" if shares else ""),
)

# %% [markdown]
# ### What the proposal costs
#
# Set against the plan of steps 2 and 3: the reps' yearly driving (from the route model of step 3),
# reps over capacity, visits that do not fit in the working year, and the accounts and recent
# sales that would change rep.

# %%
proposed_territory = proposed.set_index("unit_id")["territory_id"]
proposal_workload = resources.rep_workload(
    accounts.drop(columns=["territory_id"], errors="ignore").assign(
        territory_id=accounts["unit_id"].map(proposed_territory)
    ),
    ctx.market.reps,
    rep_assignment,
    ctx.config.resources,
)
ctx.workspace.write("proposal_workload", proposal_workload)
proposal_cost = resources.proposal_costs(
    accounts,
    ctx.market.sales,
    current,
    proposed_territory,
    ctx.market.reps,
    rep_assignment,
    ctx.config.resources,
    plan_workload=workload,
    proposal_workload=proposal_workload,
)
cost_table, cost_sentence = resources.proposal_summary(
    proposal_cost, ctx.config, ctx.market.sales, len(moves)
)
show_table(cost_table, labels={"measure": "", "plan": "Plan", "proposal": "Proposal", "change": "Change"})

# %%
show_list([cost_sentence])

# %% tags=["remove-cell"]
# Section step5 is shared with the comment themes: merge the proposal into it, keep the rest.
step5_metrics = ctx.workspace.read_metrics().get("step5", {})
step5_metrics["proposal"] = resources.proposal_metrics(proposal_cost, len(moves))
ctx.workspace.record_metrics("step5", step5_metrics)
# %% tags=["remove-cell"]
ctx.workspace.write("feedback_summary", scores)
ctx.workspace.write("proposed_moves", moves)
ctx.workspace.write_csv("proposed_moves.csv", moves)
