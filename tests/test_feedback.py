"""Step 5: scores and comment themes per territory, and the inputs of the realignment."""

from __future__ import annotations

import pandas as pd
import pytest

from territory_lib import feedback
from territory_lib.config import ResourceSettings

ASSIGNMENT = pd.DataFrame({"territory_id": ["T1", "T2"], "rep_id": ["R1", "R2"], "rep_name": ["Ann", "Bo"]})


def survey() -> pd.DataFrame:
    rows = []
    for quarter, date in enumerate(pd.date_range("2024-01-01", periods=8, freq="QS")):
        rows.append((date, "R1", 4 - (quarter >= 4) * 2, 4, "Too many accounts, my workload is huge"))
        rows.append((date, "R2", 4, 2, "Long drives every week; travel eats my time"))
        rows.append((date, "R9", 3, 3, ""))
    return pd.DataFrame(rows, columns=["date", "rep_id", "score_workload", "score_travel", "comment"])


def test_score_summary_averages_recent_quarters_and_their_change() -> None:
    table = feedback.score_summary(survey(), ASSIGNMENT, ["score_workload", "score_travel"]).set_index(
        "territory_id"
    )
    assert table.at["T1", "workload"] == 2 and table.at["T1", "workload_change"] == -2
    assert table.at["T2", "travel"] == 2 and table.at["T2", "travel_change"] == 0
    assert table.at["T1", "responses"] == 4
    assert "(no territory)" in table.index


def test_comment_themes_match_word_starts() -> None:
    themes = feedback.comment_themes(survey(), ASSIGNMENT).set_index("territory_id")
    assert themes.at["T1", "workload"] == 1.0 and themes.at["T1", "travel"] == 0.0
    assert themes.at["T2", "travel"] == 1.0 and themes.at["T2", "workload"] == 0.0
    assert "(no territory)" not in themes.index  # its comments are empty
    pattern = feedback.theme_pattern(["pric"])
    assert pattern.search("Pricing is hard") and not pattern.search("caprice")


def test_findings_join_scores_with_workload() -> None:
    scores = feedback.score_summary(survey(), ASSIGNMENT, ["score_workload", "score_travel"])
    themes = feedback.comment_themes(survey(), ASSIGNMENT)
    workload = pd.DataFrame(
        {"territory_id": ["T1", "T2"], "utilisation": [1.3, 0.9], "annual_drive_km": [1000.0, 52000.0]}
    )
    notes = feedback.findings(scores, themes, workload)
    assert any(note.startswith("T1: low scores for workload (utilisation 130%") for note in notes)
    assert any(note.startswith("T2: low scores for travel (52,000 km") for note in notes)


def test_unit_effort_and_capacity_shares() -> None:
    accounts = pd.DataFrame({"unit_id": ["u1", "u1", "u2"], "segment": ["Enterprise", "SMB", "Other"]})
    units = pd.DataFrame({"unit_id": ["u1", "u2", "u3"]})
    effort = feedback.unit_effort(accounts, units, ResourceSettings())
    assert list(effort) == [15.0, 4.0, 0.0]
    reps = pd.DataFrame({"rep_id": ["R1", "R2"], "capacity": [300.0, 100.0]})
    assert feedback.capacity_shares(["T1", "T2"], ASSIGNMENT, reps) == pytest.approx([0.75, 0.25])
    vacant = ASSIGNMENT.assign(rep_id=["R1", ""])
    assert feedback.capacity_shares(["T1", "T2"], vacant, reps) is None
