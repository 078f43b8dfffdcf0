"""Step 3: reps are matched optimally; workload and travel follow the accounts."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from territory_lib.config import ResourceSettings
from territory_lib.geo import haversine_km
from territory_lib.resources import assign_reps, rep_workload, resource_recommendations

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
