"""Step 5, gather feedback and re-optimize: what reps say, what the data say, and realignment inputs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from territory_lib.config import ResourceSettings
from territory_lib.io import SCORE_PREFIX
from territory_lib.resources import visits_per_year

#: A survey score at or below this makes a comment's theme a concern (scores run 1 to 5).
CONCERN_SCORE = 2.5

#: Comment themes and the word stems that signal them (matched case-insensitively at word starts).
THEMES: dict[str, tuple[str, ...]] = {
    "workload": ("workload", "overload", "too many accounts", "capacity", "stretched", "busy", "swamped"),
    "travel": ("travel", "driv", "distance", "mile", "road", "windshield", "hours in the car"),
    "leads": ("lead", "prospect", "pipeline", "opportunit", "white space", "untapped"),
    "pricing": ("pric", "discount", "expensive", "budget"),
    "competition": ("competit", "rival"),
    "support": ("support", "marketing", "training", "manager", "tools", "crm"),
}


def score_summary(
    feedback: pd.DataFrame, reps: pd.DataFrame, score_columns: Sequence[str], recent_quarters: int = 4
) -> pd.DataFrame:
    """Mean scores per rep over the last ``recent_quarters`` quarters, and their change.

    The change compares with the same number of quarters before; scores run from 1 (poor) to 5.
    Reps answer about the territory they work today, so the scores describe today's alignment.
    """
    frame = feedback.assign(quarter=feedback["date"].dt.to_period("Q"))
    last = frame["quarter"].max()
    recent = frame[frame["quarter"] > last - recent_quarters]
    before = frame[
        (frame["quarter"] <= last - recent_quarters) & (frame["quarter"] > last - 2 * recent_quarters)
    ]
    table = recent.groupby("rep_id")[list(score_columns)].mean()
    change = table - before.groupby("rep_id")[list(score_columns)].mean()
    table.columns = [name.removeprefix(SCORE_PREFIX) for name in table.columns]
    change.columns = [f"{name.removeprefix(SCORE_PREFIX)}_change" for name in change.columns]
    summary = table.join(change)
    summary.insert(0, "responses", recent.groupby("rep_id").size())
    summary.insert(0, "rep_name", summary.index.map(reps.set_index("rep_id")["name"]))
    return summary.reset_index()


def theme_pattern(stems: Sequence[str]) -> re.Pattern[str]:
    """A case-insensitive pattern matching any of ``stems`` at the start of a word."""
    return re.compile("|".join(rf"\b{re.escape(stem)}" for stem in stems), re.IGNORECASE)


def concerns(feedback: pd.DataFrame, themes: Mapping[str, Sequence[str]] = THEMES) -> pd.DataFrame:
    """One row per comment and one boolean column per theme: does the comment raise it as a concern?

    A comment raises a theme as a concern when it mentions the theme and the survey it came with
    scores that theme (``score_<theme>``, or else the survey's lowest score) at most
    :data:`CONCERN_SCORE`, so "travel and workload are fine" in a happy survey is not a complaint.
    """
    if "comment" not in feedback:
        return pd.DataFrame(columns=["date", "rep_id", "comment", *themes])
    frame = feedback[feedback["comment"].str.strip() != ""].copy()
    scores = [name for name in frame.columns if name.startswith(SCORE_PREFIX)]
    lowest = frame[scores].min(axis=1)
    for theme, stems in themes.items():
        score = frame.get(f"{SCORE_PREFIX}{theme}", lowest)
        frame[theme] = frame["comment"].str.contains(theme_pattern(stems)) & (score <= CONCERN_SCORE)
    return frame[["date", "rep_id", "comment", *themes]]


def comment_themes(feedback: pd.DataFrame, themes: Mapping[str, Sequence[str]] = THEMES) -> pd.DataFrame:
    """Per rep, the share of their comments that raise each theme as a concern."""
    raised = concerns(feedback, themes)
    table = raised.groupby("rep_id")[list(themes)].mean()
    table.insert(0, "comments", raised.groupby("rep_id").size())
    return table.reset_index()


def theme_examples(
    feedback: pd.DataFrame, theme: str, themes: Mapping[str, Sequence[str]] = THEMES, limit: int = 3
) -> pd.DataFrame:
    """The latest comments that raise ``theme`` as a concern (date, rep, comment)."""
    raised = concerns(feedback, themes)
    hits = raised[raised[theme]]
    return hits.sort_values(["date", "rep_id"], ascending=[False, True]).head(limit)[
        ["date", "rep_id", "comment"]
    ]


def findings(scores: pd.DataFrame, comparison: pd.DataFrame, low_score: float = CONCERN_SCORE) -> list[str]:
    """Plain-language findings: each unhappy rep, what the data say today, and what the plan changes.

    A rep is unhappy about a question whose mean score is ``low_score`` or less (the same bar that
    makes a comment's theme a concern).

    ``comparison`` is :func:`territory_lib.resources.workload_before_after`.
    """
    evidence = {
        "workload": ("utilisation", "{:.0%} of capacity"),
        "travel": ("annual_drive_km", "{:,.0f} km of driving a year"),
    }
    load = comparison.set_index("rep_id")
    notes = []
    for row in scores.itertuples(index=False):
        record = row._asdict()
        low = {
            name: value
            for name, value in record.items()
            if name in _score_names(scores) and value <= low_score
        }
        for name, value in low.items():
            line = f"{record['rep_name']} ({row.rep_id}) rates {name} {value:.1f}/5"
            if name in evidence and row.rep_id in load.index:
                column, pattern = evidence[name]
                today, plan = load.at[row.rep_id, f"{column}_today"], load.at[row.rep_id, f"{column}_plan"]
                if pd.notna(today) and pd.notna(plan):
                    line += f": today {pattern.format(today)}, in the plan {pattern.format(plan)}"
            notes.append(line + ".")
    return notes or [f"No rep scores any question at {low_score:g} out of 5 or below."]


def _score_names(scores: pd.DataFrame) -> set[str]:
    return {
        name
        for name in scores.columns
        if name not in {"rep_id", "rep_name", "responses"} and not name.endswith("_change")
    }


def unit_effort(accounts: pd.DataFrame, units: pd.DataFrame, settings: ResourceSettings) -> pd.Series:
    """Planned visits a year per unit (by the accounts' segments): the field effort a unit asks for."""
    visits = (
        accounts.assign(visits=visits_per_year(accounts["segment"], settings))
        .groupby("unit_id")["visits"]
        .sum()
    )
    return units["unit_id"].map(visits).fillna(0.0).rename("effort")


def capacity_shares(
    territory_ids: Sequence[str], rep_assignment: pd.DataFrame, reps: pd.DataFrame
) -> list[float] | None:
    """Target shares proportional to each territory's rep capacity; ``None`` when one has no rep."""
    capacity = rep_assignment.set_index("territory_id")["rep_id"].map(reps.set_index("rep_id")["capacity"])
    values = [float(capacity.get(territory, float("nan"))) for territory in territory_ids]
    if any(pd.isna(value) or value <= 0 for value in values):
        return None
    total = sum(values)
    return [value / total for value in values]


def target_deviations(
    units: pd.DataFrame,
    assignment: pd.Series,
    columns: Sequence[str],
    shares: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Each territory's relative deviation from its target for each measure (0.1 is 10 % over).

    ``assignment`` maps ``unit_id`` to territory; ``shares`` are the territories' target shares in
    sorted territory order (equal shares when ``None``), as :func:`capacity_shares` gives them.
    """
    labels = units["unit_id"].map(assignment)
    totals = units[list(columns)].groupby(labels.to_numpy()).sum().sort_index()
    share = pd.Series(
        shares if shares is not None else [1.0 / len(totals)] * len(totals), index=totals.index, dtype=float
    )
    expected = pd.DataFrame({c: share * float(units[c].sum()) for c in columns})
    return (totals / expected.where(expected > 0) - 1.0).fillna(0.0)


def moves_table(
    plan_moves: pd.DataFrame,
    alignment: pd.DataFrame,
    workload: pd.DataFrame,
    scores: pd.DataFrame,
    deviations: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The proposed moves with each unit's size and why the two territories trade it.

    ``workload`` is the plan's :func:`territory_lib.resources.rep_workload`; ``scores`` the
    :func:`score_summary` (may be empty); ``deviations`` the territories' deviations from target
    before the moves (:func:`target_deviations`), which name the measure a move balances.
    """
    units = alignment.set_index("unit_id")
    load = workload.set_index("territory_id")
    rated = scores.set_index("rep_id")["workload"] if "workload" in scores else pd.Series(dtype=float)
    table = plan_moves.copy()
    table["name"] = table["unit_id"].map(units["name"])
    table["accounts"] = table["unit_id"].map(units["accounts"])
    table["potential"] = table["unit_id"].map(units["potential"])
    table["reason"] = [
        _reason(source, target, load, rated, deviations)
        for source, target in zip(table["from_territory"], table["to_territory"], strict=True)
    ]
    return table[["unit_id", "name", "from_territory", "to_territory", "accounts", "potential", "reason"]]


def _reason(
    source: str, target: str, load: pd.DataFrame, rated: pd.Series, deviations: pd.DataFrame | None
) -> str:
    """Why ``source`` hands a unit to ``target``: the measure they differ most on, then the reps' side."""
    parts = []
    if deviations is not None and source in deviations.index and target in deviations.index:
        gap = deviations.loc[source] - deviations.loc[target]
        measure = str(gap.idxmax())
        parts.append(
            f"{measure}: {source} {deviations.at[source, measure]:+.0%} against its target, "
            f"{target} {deviations.at[target, measure]:+.0%}"
        )
    if source in load.index and target in load.index:
        busier = load.at[source, "utilisation"] > load.at[target, "utilisation"]
        if busier or not parts:
            parts.append(
                f"{source} runs at {load.at[source, 'utilisation']:.0%} of capacity, {target} at "
                f"{load.at[target, 'utilisation']:.0%}"
            )
        rep = load.at[source, "rep_id"]
        if rep in rated.index and pd.notna(rated[rep]) and rated[rep] <= CONCERN_SCORE:
            parts.append(f"{source}'s rep rates workload {rated[rep]:.1f}/5")
    return "; ".join(parts) or "restores balance"
