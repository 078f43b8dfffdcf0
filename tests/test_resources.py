"""Step 3: reps are matched optimally; workload and travel follow the accounts."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from territory_lib.config import ResourceSettings
from territory_lib.geo import haversine_km
from territory_lib.resources import (
    assign_reps,
    matching_tradeoff,
    proposal_costs,
    rep_workload,
    resource_recommendations,
    step3_metrics,
    totals_today_vs_plan,
    tradeoff_findings,
    workload_before_after,
)

coordinates = st.tuples(st.floats(30, 35), st.floats(-86, -80))


def frames(
    centres: list[tuple[float, float]], homes: list[tuple[float, float]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    centre_frame = pd.DataFrame(
        {
            "territory_id": [f"T{i}" for i in range(len(centres))],
            "lat": [c[0] for c in centres],
            "lon": [c[1] for c in centres],
        }
    )
    reps = pd.DataFrame(
        {
            "rep_id": [f"R{i}" for i in range(len(homes))],
            "name": [f"Rep {i}" for i in range(len(homes))],
            "home_lat": [h[0] for h in homes],
            "home_lon": [h[1] for h in homes],
            "capacity": 100.0,
        }
    )
    return centre_frame, reps


@settings(max_examples=40, deadline=None)
@given(st.lists(coordinates, min_size=1, max_size=5), st.lists(coordinates, min_size=1, max_size=5))
def test_assignment_minimises_total_distance(centres, homes) -> None:
    centre_frame, reps = frames(centres, homes)
    result = assign_reps(centre_frame, reps)
    assert len(result) == len(centres)
    assigned = result[result["rep_id"] != ""]
    assert len(assigned) == min(len(centres), len(homes))
    assert assigned["rep_id"].is_unique
    distance = haversine_km(
        np.array([h[0] for h in homes])[None, :],
        np.array([h[1] for h in homes])[None, :],
        np.array([c[0] for c in centres])[:, None],
        np.array([c[1] for c in centres])[:, None],
    )
    n_territories, n_reps = distance.shape
    if n_territories <= n_reps:
        options = (
            distance[range(n_territories), list(p)].sum()
            for p in itertools.permutations(range(n_reps), n_territories)
        )
    else:
        options = (
            distance[list(p), range(n_reps)].sum()
            for p in itertools.permutations(range(n_territories), n_reps)
        )
    best = min(options)
    assert np.isclose(assigned["home_distance_km"].sum(), best)


def test_workload_statuses_and_travel() -> None:
    centres, reps = frames([(33.0, -84.0), (32.0, -83.0), (31.0, -82.0)], [(33.0, -84.0), (32.0, -83.0)])
    reps["capacity"] = [2.0, 10.0]
    reps["segments"] = ["SMB", ""]
    assignment = assign_reps(centres, reps)
    accounts = pd.DataFrame(
        {
            "account_id": ["a", "b", "c", "d", "e"],
            "territory_id": ["T0", "T0", "T0", "T1", "T2"],
            "lat": [33.0, 33.1, 33.2, 32.0, 31.0],
            "lon": [-84.0, -84.0, -84.0, -83.0, -82.0],
            "segment": ["SMB", "SMB", "Enterprise", "SMB", "SMB"],
            "status": ["customer", "prospect", "customer", "customer", "customer"],
            "potential": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    table = rep_workload(accounts, reps, assignment, ResourceSettings()).set_index("territory_id")
    assert table.at["T0", "status"] == "over capacity"
    assert table.at["T1", "status"] == "under-used"
    assert table.at["T2", "status"] == "vacant"
    assert table.at["T0", "off_segment_accounts"] == 1
    assert table.at["T0", "accounts"] == 3 and table.at["T0", "customers"] == 2
    # Enterprise accounts are visited 12 times a year, SMB accounts 3 times.
    assert table.at["T0", "visits_per_year"] == 18
    assert np.isclose(table.at["T1", "mean_distance_km"], 0.0)
    advice = resource_recommendations(table.reset_index(), reps.iloc[0:0])
    assert any("no rep" in line for line in advice)
    assert any("capacity of 2" in line for line in advice)


def test_matching_weighs_capacity_against_distance() -> None:
    # Rep 0 lives at the big territory's centre but has a small capacity; rep 1 has room, 60 km off.
    centres, reps = frames([(33.0, -84.0), (33.0, -83.0)], [(33.0, -84.0), (33.0, -83.4)])
    centres["accounts"] = [300, 100]
    reps["capacity"] = [100.0, 300.0]
    nearest = assign_reps(centres, reps, capacity_weight=0.0).set_index("territory_id")["rep_id"]
    weighed = assign_reps(centres, reps, capacity_weight=1.0).set_index("territory_id")["rep_id"]
    assert nearest.to_dict() == {"T0": "R0", "T1": "R1"}
    assert weighed.to_dict() == {"T0": "R1", "T1": "R0"}
    tradeoff = matching_tradeoff(centres, reps, ResourceSettings()).set_index("capacity_weight")
    assert tradeoff.at[0.0, "reps_over_capacity"] == 1 and tradeoff.at[1.0, "reps_over_capacity"] == 0
    assert tradeoff.at[1.0, "mean_home_distance_km"] > tradeoff.at[0.0, "mean_home_distance_km"]
    assert tradeoff["chosen"].sum() == 1 and tradeoff.at[1.0, "chosen"]
    findings = tradeoff_findings(tradeoff.reset_index())
    assert "1 rep over capacity" in findings[0] and "(weight 1) gives" in findings[0]
    assert "0 reps over capacity" in findings[0]


def test_totals_today_and_plan_and_their_metrics() -> None:
    centres, reps = frames([(33.0, -84.0), (32.0, -83.0)], [(33.0, -84.0), (32.0, -83.0)])
    reps["capacity"] = [2.0, 3.0]
    reps["segments"] = ["SMB", "SMB;Enterprise"]
    assignment = assign_reps(centres, reps)
    accounts = pd.DataFrame(
        {
            "account_id": list("abcde"),
            "territory_id": ["T0", "T0", "T1", "T1", "T1"],
            "lat": [33.1, 33.2, 32.1, 32.2, 32.3],
            "lon": [-84.0, -84.1, -83.0, -83.1, -83.2],
            "segment": ["SMB", "SMB", "Enterprise", "SMB", "SMB"],
            "status": "customer",
            "potential": 1.0,
            # Today rep R0 owns four accounts (two over its capacity of 2), one of them Enterprise.
            "rep_id": ["R0", "R0", "R0", "R0", "R1"],
        }
    )
    comparison = workload_before_after(accounts, reps, assignment, ResourceSettings())
    totals = totals_today_vs_plan(comparison).set_index("measure")
    assert totals.at["Reps over capacity", "today"] == 1 and totals.at["Reps over capacity", "plan"] == 0
    assert totals.at["Accounts outside their rep's segments", "today"] == 1
    assert totals.at["Accounts outside their rep's segments", "plan"] == 0
    assert totals.at["Driving a year, all reps", "plan"] > 0
    metrics = step3_metrics(comparison)
    assert set(metrics["annual_drive_km"]) == {"max_rep", "total_today", "total_plan"}
    assert metrics["reps_over_capacity"] == {"today": 1, "plan": 0}
    assert metrics["annual_drive_km"]["total_plan"] == pytest.approx(comparison["annual_drive_km_plan"].sum())
    from territory_lib.resources import utilisation_alt_text

    alt = utilisation_alt_text(comparison, ResourceSettings())
    over_today = comparison.loc[comparison["status_today"] == "over capacity", "name"].iloc[0]
    assert f"today: 1 over capacity ({over_today})" in alt and "in the plan: 0 over capacity" in alt


def test_proposal_costs_count_accounts_and_sales_changing_rep() -> None:
    centres, reps = frames([(33.0, -84.0), (32.0, -83.0)], [(33.0, -84.0), (32.0, -83.0)])
    assignment = assign_reps(centres, reps)
    accounts = pd.DataFrame(
        {
            "account_id": list("abcd"),
            "unit_id": ["u1", "u1", "u2", "u3"],
            "lat": [33.1, 33.2, 32.1, 32.2],
            "lon": [-84.0, -84.1, -83.0, -83.1],
            "segment": "SMB",
            "status": "customer",
            "potential": 1.0,
        }
    )
    sales = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-15", "2025-06-15", "2025-06-15", "2025-12-01", "2025-06-15"]),
            "account_id": ["a", "a", "b", "b", "c"],
            "amount": [1000.0, 10.0, 20.0, 40.0, 80.0],
        }
    )
    current = pd.Series({"u1": "T0", "u2": "T1", "u3": "T1"})
    proposed = pd.Series({"u1": "T1", "u2": "T1", "u3": "T1"})
    costs = proposal_costs(accounts, sales, current, proposed, reps, assignment, ResourceSettings())
    costs = costs.set_index("measure")
    assert costs.at["Accounts changing rep", "proposal"] == 2
    # a's sale of January 2024 is older than the twelve months to December 2025.
    assert costs.at["Last-12-month sales changing rep", "proposal"] == 70.0
    assert costs.at["Driving a year, all reps", "change"] == pytest.approx(
        costs.at["Driving a year, all reps", "proposal"] - costs.at["Driving a year, all reps", "plan"]
    )
