"""Scores of a recombination's prefix splits in one compiled pass (numba).

Each float is computed with the IEEE operations, in the order, of the numpy code it replaced
(sequential ``cumsum`` and ``bincount``, pairwise ``sum``), so plans do not change; the totals over
the whole union are computed by the caller with numpy and passed in.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from territory_lib.compiled import use_user_cache_folder
from territory_lib.design.tabu_scoring import FOUR_PI, _pairwise_sum, band_terms

use_user_cache_folder()


@njit(cache=True, error_model="numpy")
def score_prefixes(
    order: np.ndarray,
    rank: np.ndarray,
    share: np.ndarray,
    total: np.ndarray,
    target_a: np.ndarray,
    target_b: np.ndarray,
    tol: np.ndarray,
    zone_tol: np.ndarray,
    er: np.ndarray,
    ec: np.ndarray,
    es: np.ndarray,
    area: np.ndarray,
    perim: np.ndarray,
    area_sum: float,
    perim_sum: float,
    w: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    q: np.ndarray,
    totals: np.ndarray,
    violation_weight: float,
    pull_weight: float,
    pp_weight: float,
    inertia_scale: float,
    inertia_ref: float,
    use_pp: bool,
    use_inertia: bool,
) -> np.ndarray:
    """Objective of each split "first ``p + 1`` units of ``order`` go to side a", ``p < n - 1``.

    ``totals`` holds the union's sums of ``w, w x, w y, w q``; ``inertia_scale`` is the inertia
    weight times ``k``.
    """
    nu = len(order)
    m = share.shape[1]
    by_hi = np.zeros(nu)
    by_lo = np.zeros(nu)
    for e in range(len(er)):
        r1, r2 = rank[er[e]], rank[ec[e]]
        by_hi[max(r1, r2)] += es[e]
        by_lo[min(r1, r2)] += es[e]
    lo_total = _pairwise_sum(by_lo)
    scores = np.empty(nu - 1)
    load_a = np.zeros(m)
    load_b = np.empty(m)
    over = np.empty(m)
    pull = np.empty(m)
    inner_a = inner_lo = area_c = perim_c = 0.0
    sw = sx = sy = sq = 0.0
    for p in range(nu - 1):
        v = order[p]
        for c in range(m):
            load_a[c] += share[v, c]
            load_b[c] = total[c] - load_a[c]
        inner_a += by_hi[p]
        inner_lo += by_lo[p]
        inner_b = lo_total - inner_lo
        area_c += area[v]
        perim_c += perim[v]
        wv = w[v]
        sw += wv
        sx += wv * x[v]
        sy += wv * y[v]
        sq += wv * q[v]
        va, pa = band_terms(load_a, target_a, tol, zone_tol, over, pull)
        cost = 0.0 + violation_weight * va
        cost += pull_weight * pa
        vb, pb = band_terms(load_b, target_b, tol, zone_tol, over, pull)
        cost += violation_weight * vb
        cost += pull_weight * pb
        shape = 0.0
        if use_pp:
            perim_a = perim_c - 2 * inner_a
            area_b = area_sum - area_c
            perim_b = perim_sum - perim_c - 2 * inner_b
            pp = FOUR_PI * area_c / (perim_a * perim_a) if perim_a > 0 else 0.0
            pp += FOUR_PI * area_b / (perim_b * perim_b) if perim_b > 0 else 0.0
            shape -= pp_weight * pp
        if use_inertia:
            inertia = 0.0
            inertia += sq - (sx * sx + sy * sy) / sw if sw > 1e-15 else 0.0
            swb = totals[0] - sw
            sxb = totals[1] - sx
            syb = totals[2] - sy
            sqb = totals[3] - sq
            inertia += sqb - (sxb * sxb + syb * syb) / swb if swb > 1e-15 else 0.0
            shape += inertia_scale * inertia / inertia_ref
        scores[p] = cost + shape
    return scores


def warm_up() -> None:
    """Score the splits of three units once, with the argument types of real searches."""
    ints = np.array([0, 1, 2], dtype=np.int64)
    one, ones = np.ones(1), np.ones(3)
    score_prefixes(
        ints, ints, np.full((3, 1), 1 / 3), one, one, one, one, one, ints[:2], ints[1:], ones[:2],
        ones, ones, 3.0, 3.0, ones, ones, ones, ones, np.ones(4), 1.0, 1.0, 1.0, 1.0, 1.0, True, True,
    )  # fmt: skip
