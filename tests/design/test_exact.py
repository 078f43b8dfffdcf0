"""The exact p-median reference: its bound never exceeds a feasible plan and is tight when solved."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from territory_lib.design.exact import MAX_UNITS, pmedian_bound, pmedian_value


def brute_force_optimum(xy: np.ndarray, weight: np.ndarray, share: np.ndarray, k: int, tol: float) -> float:
    """Best p-median value over every labelling whose territories are within the band."""
    best = np.inf
    for labels in itertools.product(range(k), repeat=len(xy)):
        labels = np.asarray(labels)
        if len(np.unique(labels)) < k:
            continue
        loads = np.array([share[labels == t].sum(axis=0) for t in range(k)])
        if np.all(np.abs(loads * k - 1.0) <= tol + 1e-9):
            best = min(best, pmedian_value(xy, weight, labels))
    return best


def test_bound_matches_brute_force_on_a_tiny_map() -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, size=(7, 2))
    values = rng.uniform(1, 3, size=(7, 1))
    share = values / values.sum()
    weight = share[:, 0]
    k, tol = 2, 0.15
    optimum = brute_force_optimum(xy, weight, share, k, tol)
    bound, incumbent, status = pmedian_bound(xy, weight, share, np.full(1, 1 / k), np.full(1, tol), k, 30.0)
    assert status == "Optimal"
    assert bound == pytest.approx(optimum, rel=1e-6)
    assert incumbent == pytest.approx(optimum, rel=1e-6)


def test_bound_refuses_maps_too_large_for_the_model() -> None:
    n = MAX_UNITS + 1
    with pytest.raises(ValueError, match="at most"):
        pmedian_bound(np.zeros((n, 2)), np.ones(n), np.ones((n, 1)) / n, np.full(1, 0.5), np.full(1, 0.1), 2)
