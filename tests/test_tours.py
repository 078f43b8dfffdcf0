"""The route model's compiled kernels against numpy and scipy doing the same job."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import squareform

from territory_lib import tours
from territory_lib.geo import haversine_km


def test_savings_are_ranked_as_a_stable_sort_would() -> None:
    rng = np.random.default_rng(1)
    # Many ties (rounded values) and magnitudes from metres to thousands of kilometres.
    values = np.concatenate([np.round(rng.uniform(0, 50, 3000)), rng.lognormal(0, 4, 3000), [1e-300, 7.0]])
    assert np.array_equal(tours._decreasing(values), np.argsort(-values, kind="stable"))


def test_road_distances_are_haversine_times_detour_in_scipy_order() -> None:
    rng = np.random.default_rng(2)
    lat, lon = rng.uniform(25, 49, 60), rng.uniform(-124, -67, 60)
    expected = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :]) * 1.3
    np.fill_diagonal(expected, 0.0)
    distances = tours.road_distances(lat, lon, 1.3)
    np.testing.assert_allclose(squareform(distances), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tours.road_matrix(lat, lon, 1.3), expected, rtol=1e-9, atol=1e-9)


def test_medoids_minimise_the_weighted_distance_within_their_label() -> None:
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(30, 35, 80), rng.uniform(-90, -80, 80)
    labels = rng.integers(0, 6, 80)
    weights = rng.choice([3.0, 6.0, 12.0], 80)
    matrix = squareform(tours.road_distances(lat, lon, 1.0))
    found = tours.medoids(tours.road_distances(lat, lon, 1.0), labels, weights)
    for label in range(6):
        members = np.flatnonzero(labels == label)
        cost = matrix[np.ix_(members, members)] @ weights[members]
        assert found[label] == members[np.argmin(cost)]
