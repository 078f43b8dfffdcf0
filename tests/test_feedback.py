"""Step 5: scores and comment concerns per rep, findings beside the data, realignment inputs."""

from __future__ import annotations

import pandas as pd

from territory_lib import feedback
from territory_lib.config import ResourceSettings

REPS = pd.DataFrame({"rep_id": ["R1", "R2", "R9"], "name": ["Ann", "Bo", "Cy"]})


def survey() -> pd.DataFrame:
    rows = []
    for quarter, date in enumerate(pd.date_range("2024-01-01", periods=8, freq="QS")):
        rows.append((date, "R1", 4 - (quarter >= 4) * 2, 4, "Too many accounts, my workload is huge"))
        rows.append((date, "R2", 4, 2, "Long drives every week; travel eats my time"))
        rows.append((date, "R9", 5, 5, "Travel and workload are fine"))
    return pd.DataFrame(rows, columns=["date", "rep_id", "score_workload", "score_travel", "comment"])


def test_score_summary_averages_recent_quarters_and_their_change() -> None:
    table = feedback.score_summary(survey(), REPS, ["score_workload", "score_travel"]).set_index("rep_id")
    assert table.at["R1", "workload"] == 2 and table.at["R1", "workload_change"] == -2
    assert table.at["R2", "travel"] == 2 and table.at["R2", "travel_change"] == 0
    assert table.at["R1", "responses"] == 4 and table.at["R1", "rep_name"] == "Ann"


def test_a_theme_is_a_concern_only_with_a_low_score() -> None:
    themes = feedback.comment_themes(survey()).set_index("rep_id")
    # R1 complained about workload in the last four quarters only, when it scored 2.
    assert themes.at["R1", "workload"] == 0.5 and themes.at["R1", "travel"] == 0.0
    assert themes.at["R2", "travel"] == 1.0 and themes.at["R2", "workload"] == 0.0
    assert themes.at["R9", "travel"] == 0.0 and themes.at["R9", "workload"] == 0.0
    examples = feedback.theme_examples(survey(), "travel")
    assert set(examples["rep_id"]) == {"R2"} and len(examples) == 3
    pattern = feedback.theme_pattern(["pric"])
    assert pattern.search("Pricing is hard") and not pattern.search("caprice")


def test_findings_set_complaints_beside_today_and_the_plan() -> None:
    scores = feedback.score_summary(survey(), REPS, ["score_workload", "score_travel"])
    comparison = pd.DataFrame(
        {
            "rep_id": ["R1", "R2", "R9"],
            "utilisation_today": [1.3, 0.9, 1.0],
            "utilisation_plan": [1.02, 0.95, 1.0],
            "annual_drive_km_today": [1000.0, 52000.0, 9000.0],
            "annual_drive_km_plan": [1100.0, 31000.0, 9000.0],
        }
    )
    notes = feedback.findings(scores, comparison)
    assert "Ann (R1) rates workload 2.0/5: today 130% of capacity, in the plan 102% of capacity." in notes
    travel = "Bo (R2) rates travel 2.0/5: today 52,000 km of driving a year, in the plan 31,000 km"
    assert f"{travel} of driving a year." in notes
    assert len(notes) == 2
    # The bar is the one that makes a comment a concern: a mean of exactly 2.5 counts.
    borderline = scores.assign(
        travel=scores["travel"].where(scores["rep_id"] != "R9", feedback.CONCERN_SCORE)
    )
    assert any(
        note.startswith("Cy (R9) rates travel 2.5/5") for note in feedback.findings(borderline, comparison)
    )


def test_unit_effort_counts_planned_visits() -> None:
    accounts = pd.DataFrame({"unit_id": ["u1", "u1", "u2"], "segment": ["Enterprise", "SMB", "Other"]})
    units = pd.DataFrame({"unit_id": ["u1", "u2", "u3"]})
    effort = feedback.unit_effort(accounts, units, ResourceSettings())
    assert list(effort) == [15.0, 4.0, 0.0]


def test_moves_table_gives_reasons() -> None:
    moves = pd.DataFrame({"unit_id": ["u1"], "from_territory": ["T1"], "to_territory": ["T2"]})
    alignment = pd.DataFrame({"unit_id": ["u1"], "name": ["Upton"], "accounts": [4], "potential": [1000.0]})
    workload = pd.DataFrame({"territory_id": ["T1", "T2"], "rep_id": ["R1", "R2"], "utilisation": [1.2, 0.8]})
    scores = feedback.score_summary(survey(), REPS, ["score_workload", "score_travel"])
    table = feedback.moves_table(moves, alignment, workload, scores)
    assert table.iloc[0]["name"] == "Upton"
    assert table.iloc[0]["reason"] == "T1 runs at 120% of capacity, T2 at 80%; T1's rep rates workload 2.0/5"


def test_capacity_shares_follow_rep_capacity() -> None:
    assignment = pd.DataFrame({"territory_id": ["T1", "T2"], "rep_id": ["R1", "R2"]})
    reps = pd.DataFrame({"rep_id": ["R1", "R2"], "capacity": [300.0, 100.0]})
    assert feedback.capacity_shares(["T1", "T2"], assignment, reps) == [0.75, 0.25]
    vacant = assignment.assign(rep_id=["R1", ""])
    assert feedback.capacity_shares(["T1", "T2"], vacant, reps) is None


def test_target_deviations_follow_capacity_shares() -> None:
    units = pd.DataFrame({"unit_id": ["a", "b", "c"], "effort": [30.0, 30.0, 40.0]})
    assignment = pd.Series({"a": "T1", "b": "T1", "c": "T2"})
    equal = feedback.target_deviations(units, assignment, ["effort"])
    assert equal["effort"].round(6).to_dict() == {"T1": 0.2, "T2": -0.2}
    sized = feedback.target_deviations(units, assignment, ["effort"], [0.6, 0.4])
    assert sized["effort"].round(6).to_dict() == {"T1": 0.0, "T2": 0.0}


def test_move_reason_names_the_measure_it_balances() -> None:
    moves = pd.DataFrame({"unit_id": ["u1"], "from_territory": ["T1"], "to_territory": ["T2"]})
    alignment = pd.DataFrame({"unit_id": ["u1"], "name": ["Upton"], "accounts": [4], "potential": [1000.0]})
    workload = pd.DataFrame({"territory_id": ["T1", "T2"], "rep_id": ["R1", "R2"], "utilisation": [0.7, 0.9]})
    deviations = pd.DataFrame({"potential": [0.02, -0.01], "effort": [0.15, -0.12]}, index=["T1", "T2"])
    table = feedback.moves_table(moves, alignment, workload, pd.DataFrame(), deviations)
    # T1 is the less busy rep, so utilisation is no reason to give the unit away: effort is.
    assert table.iloc[0]["reason"] == "effort: T1 +15% against its target, T2 -12%"
