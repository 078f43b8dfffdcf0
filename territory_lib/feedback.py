"""Step 5, gather feedback and re-optimize: scores and comment themes per territory, realignment proposals."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from territory_lib.config import ResourceSettings
from territory_lib.resources import visits_per_year

#: Comment themes and the word stems that signal them (matched case-insensitively at word starts).
THEMES: dict[str, tuple[str, ...]] = {
    "workload": ("workload", "overload", "too many accounts", "capacity", "stretched", "busy", "swamped"),
    "travel": ("travel", "driv", "distance", "mile", "road", "windshield", "hours in the car"),
    "leads": ("lead", "prospect", "pipeline", "opportunit", "white space", "untapped"),
    "pricing": ("pric", "discount", "expensive", "budget"),
    "competition": ("competit", "rival"),
    "support": ("support", "marketing", "training", "manager", "tools", "crm"),
}


def quarter_label(dates: pd.Series) -> pd.Series:
    """``2025Q3``-style labels for survey dates."""
    return dates.dt.to_period("Q").astype(str)


def score_summary(
    feedback: pd.DataFrame,
    rep_assignment: pd.DataFrame,
    score_columns: Sequence[str],
    recent_quarters: int = 4,
) -> pd.DataFrame:
    """Mean scores per territory over the last ``recent_quarters`` quarters, and their change.

    The change compares with the same number of quarters before; scores run from 1 (poor) to 5.
    Feedback from reps who cover no territory in the plan is reported under ``(no territory)``.
    """
    frame = feedback.assign(quarter=feedback["date"].dt.to_period("Q"))
    owner = rep_assignment[rep_assignment["rep_id"] != ""].set_index("rep_id")["territory_id"]
    frame["territory_id"] = frame["rep_id"].map(owner).fillna("(no territory)")
    last = frame["quarter"].max()
    recent = frame[frame["quarter"] > last - recent_quarters]
    before = frame[
        (frame["quarter"] <= last - recent_quarters) & (frame["quarter"] > last - 2 * recent_quarters)
    ]
    table = recent.groupby("territory_id")[list(score_columns)].mean()
    change = table - before.groupby("territory_id")[list(score_columns)].mean()
    table.columns = [name.removeprefix("score_") for name in table.columns]
    change.columns = [f"{name.removeprefix('score_')}_change" for name in change.columns]
    summary = table.join(change)
    summary.insert(0, "responses", recent.groupby("territory_id").size())
    return summary.reset_index()


def theme_pattern(stems: Sequence[str]) -> re.Pattern[str]:
    """A case-insensitive pattern matching any of ``stems`` at the start of a word."""
    return re.compile("|".join(rf"\b{re.escape(stem)}" for stem in stems), re.IGNORECASE)


def comment_themes(
    feedback: pd.DataFrame, rep_assignment: pd.DataFrame, themes: Mapping[str, Sequence[str]] = THEMES
) -> pd.DataFrame:
    """Share of each territory's comments that raise each theme (a comment may raise several)."""
    if "comment" not in feedback:
        return pd.DataFrame(columns=["territory_id", "comments", *themes])
    owner = rep_assignment[rep_assignment["rep_id"] != ""].set_index("rep_id")["territory_id"]
    frame = feedback[feedback["comment"].str.strip() != ""].assign(
        territory_id=lambda f: f["rep_id"].map(owner).fillna("(no territory)")
    )
    for theme, stems in themes.items():
        frame[theme] = frame["comment"].str.contains(theme_pattern(stems))
    table = frame.groupby("territory_id")[list(themes)].mean()
    table.insert(0, "comments", frame.groupby("territory_id").size())
    return table.reset_index()


def theme_examples(
    feedback: pd.DataFrame, theme: str, themes: Mapping[str, Sequence[str]] = THEMES, limit: int = 3
) -> pd.DataFrame:
    """The latest comments that raise ``theme`` (date, rep, comment)."""
    if "comment" not in feedback:
        return pd.DataFrame(columns=["date", "rep_id", "comment"])
    hits = feedback[feedback["comment"].str.contains(theme_pattern(themes[theme]))]
    return hits.sort_values(["date", "rep_id"], ascending=[False, True]).head(limit)[
        ["date", "rep_id", "comment"]
    ]


def findings(
    scores: pd.DataFrame, themes: pd.DataFrame, workload: pd.DataFrame, low_score: float = 2.5
) -> list[str]:
    """Plain-language findings that join what reps say with what the workload table shows."""
    notes = []
    load = workload.set_index("territory_id")
    raised = themes.set_index("territory_id") if len(themes) else pd.DataFrame()
    for row in scores.itertuples(index=False):
        territory = row.territory_id
        if territory not in load.index:
            continue
        record = row._asdict()
        low = [name for name, value in record.items() if name in _score_names(scores) and value < low_score]
        if not low:
            continue
        evidence = []
        if "workload" in low:
            evidence.append(f"utilisation {load.at[territory, 'utilisation']:.0%}")
        if "travel" in low:
            evidence.append(f"{load.at[territory, 'annual_drive_km']:,.0f} km of driving a year")
        if territory in raised.index:
            top = raised.loc[territory].drop("comments").astype(float)
            if top.max() > 0:
                evidence.append(f"most comments are about {top.idxmax()} ({top.max():.0%})")
        detail = f" ({'; '.join(evidence)})" if evidence else ""
        notes.append(f"{territory}: low scores for {', '.join(low)}{detail}.")
    return notes or ["No territory scores below the threshold on any question."]


def _score_names(scores: pd.DataFrame) -> set[str]:
    return {
        name
        for name in scores.columns
        if name not in {"territory_id", "responses"} and not name.endswith("_change")
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
    """Target shares proportional to the capacity of each territory's rep, or ``None`` with a vacancy."""
    capacity = rep_assignment.set_index("territory_id")["rep_id"].map(reps.set_index("rep_id")["capacity"])
    values = [float(capacity.get(territory, float("nan"))) for territory in territory_ids]
    if any(pd.isna(value) or value <= 0 for value in values):
        return None
    total = sum(values)
    return [value / total for value in values]


def moves_table(
    plan_moves: pd.DataFrame, alignment: pd.DataFrame, workload: pd.DataFrame, scores: pd.DataFrame
) -> pd.DataFrame:
    """The proposed moves with each unit's size and why the two territories trade it."""
    units = alignment.set_index("unit_id")
    load = workload.set_index("territory_id")
    score_by_territory = scores.set_index("territory_id")
    table = plan_moves.copy()
    table["name"] = table["unit_id"].map(units["name"])
    table["accounts"] = table["unit_id"].map(units["accounts"])
    table["potential"] = table["unit_id"].map(units["potential"])
    table["reason"] = [
        _reason(source, target, load, score_by_territory)
        for source, target in zip(table["from_territory"], table["to_territory"], strict=True)
    ]
    return table[["unit_id", "name", "from_territory", "to_territory", "accounts", "potential", "reason"]]


def _reason(source: str, target: str, load: pd.DataFrame, scores: pd.DataFrame) -> str:
    parts = []
    if source in load.index and target in load.index:
        parts.append(
            f"{source} runs at {load.at[source, 'utilisation']:.0%} of capacity, {target} at "
            f"{load.at[target, 'utilisation']:.0%}"
        )
    if "workload" in scores.columns and source in scores.index:
        parts.append(f"{source}'s rep rates workload {scores.at[source, 'workload']:.1f}/5")
    return "; ".join(parts) or "restores balance"
