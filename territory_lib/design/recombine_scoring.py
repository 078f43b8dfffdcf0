"""A recombination's centre pairs, compiled (numba): distances, prefix splits scored, the best kept.

Each float is computed with the IEEE operations, in the order, of the numpy code it replaced
(sequential ``cumsum`` and ``bincount``, pairwise ``sum``, ``np.round`` as multiply, ``rint``,
divide), ties break as numpy's stable sorts break them, and the random stream is drawn as numpy
draws it, so plans do not change; the totals over the whole union are computed by the caller with
numpy and passed in.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from territory_lib.compiled import use_user_cache_folder
from territory_lib.design.contiguity import multi_source_dijkstra, subset_connected
from territory_lib.design.sweep_scoring import difference_order
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


@njit(cache=True, error_model="numpy")
def recombine_pairs(
    n_pairs: int,
    rng: np.random.Generator,
    base_len: np.ndarray,
    reverse: np.ndarray,
    indptr: np.ndarray,
    cols: np.ndarray,
    members_a: np.ndarray,
    members_b: np.ndarray,
    fixed_a: np.ndarray,
    fixed_b: np.ndarray,
    best_score: float,
    use_disruption: bool,
    changed_if_a: np.ndarray,
    changed_if_b: np.ndarray,
    disruption_weight: float,
    disrupted: float,
    cap: float,
    best_in_a: np.ndarray,
    prefix_arguments: tuple,
) -> tuple[int, bool]:
    """Try ``n_pairs`` centre pairs; the best split that beats ``best_score`` goes to ``best_in_a``.

    Each pair draws noisy edge lengths (made symmetric), one centre per side among ``members_a``
    / ``members_b`` (plus the side's fixed units), ranks the union by distance difference, scores
    every prefix split (:func:`score_prefixes`, then the fixed units' and the disruption cap's
    limits) and takes the best of the four lowest that beats the best so far and leaves both
    sides connected. ``prefix_arguments`` are :func:`score_prefixes`'s after ``order, rank``.

    Returns
    -------
    tuple of (int, bool)
        Splits scored (work units), and whether the union turned out cut in two (an earlier move
        took away the units linking the territories; then no split counts). ``best_in_a`` is
        written only when a split beats ``best_score``, and stays all false otherwise (as given).
    """
    nu = len(indptr) - 1
    scored = 0
    p = np.arange(nu - 1)
    for _ in range(n_pairs):
        lengths = base_len * rng.uniform(0.7, 1.3, len(base_len))
        lengths = (lengths + lengths[reverse]) / 2
        first_a = members_a[rng.integers(0, len(members_a))]
        first_b = members_b[rng.integers(0, len(members_b))]
        c1 = np.unique(np.concatenate((np.array([first_a]), fixed_a)))
        c2 = np.unique(np.concatenate((np.array([first_b]), fixed_b)))
        d1 = multi_source_dijkstra(indptr, cols, lengths, c1)
        d2 = multi_source_dijkstra(indptr, cols, lengths, c2)
        if not np.isfinite(d1).all():
            return scored, True
        order, rank, safe = difference_order(d1, d2)
        if len(c1) > 1 or len(c2) > 1:
            # Several sources (locked units) can each hold a separate piece of a side.
            safe[:] = False
        scores = score_prefixes(order, rank, *prefix_arguments)
        scored += nu - 1
        # Prefix p (first p+1 units go to a) must hold every unit fixed in a and none fixed in b.
        lo = rank[fixed_a].max() if len(fixed_a) else 0
        hi = rank[fixed_b].min() if len(fixed_b) else nu
        scores[(p < lo) | (p >= hi)] = np.inf
        if use_disruption:
            gained_a = np.cumsum(changed_if_a[order])
            along_b = changed_if_b[order]
            gained_b = np.cumsum(along_b)
            extra = gained_a[:-1] + (_pairwise_sum(along_b) - gained_b[:-1])
            scores = scores + disruption_weight * extra
            scores[disrupted + extra > cap + 1e-12] = np.inf
        ranked = np.argsort(scores, kind="mergesort")
        for r in range(min(4, len(ranked))):
            idx = ranked[r]
            if not scores[idx] < best_score:
                break
            in_a = rank <= idx
            if safe[idx] or (subset_connected(indptr, cols, in_a) and subset_connected(indptr, cols, ~in_a)):
                best_score = scores[idx]
                best_in_a[:] = in_a
                break
    return scored, False


def warm_up() -> None:
    """Try the centre pairs of a three-unit union once, with the argument types of real searches."""
    ints = np.array([0, 1, 2], dtype=np.int64)
    one, ones = np.ones(1), np.ones(3)
    none = np.empty(0, dtype=np.int64)
    recombine_pairs(
        2, np.random.default_rng(0), ones[:2].repeat(2), np.array([1, 0, 3, 2]), np.array([0, 1, 3, 4]),
        np.array([1, 0, 2, 1]), ints[:1], ints[1:], none, none, 1.0, True, ones, ones, 1.0, 0.0, 1.0,
        np.zeros(3, dtype=bool), (np.full((3, 1), 1 / 3), one, one, one, one, one, ints[:2], ints[1:],
        ones[:2], ones, ones, 3.0, 3.0, ones, ones, ones, ones, np.ones(4), 1.0, 1.0, 1.0, 1.0, 1.0,
        True, True),
    )  # fmt: skip
