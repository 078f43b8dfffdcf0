"""Distance-difference sweeps and the scores of their splits, compiled with numba.

Each float is computed with the IEEE operations, in the order, of the numpy and scipy code these
functions replaced (scipy's Dijkstra, ``np.round``'s multiply-rint-divide, sequential ``cumsum`` and
``bincount``, pairwise ``sum``), and sorts are stable with numpy's order (NaN last), so construction
gives the same plans. Compiled code is cached in the user's cache folder (:mod:`territory_lib.compiled`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from territory_lib.compiled import use_user_cache_folder
from territory_lib.design.contiguity import multi_source_dijkstra, subset_connected
from territory_lib.design.tabu_scoring import FOUR_PI, _pairwise_sum

use_user_cache_folder()

#: ``np.round(x, 9)`` multiplies by this power of ten, rounds half to even, and divides.
_ROUND_SCALE = 1e9


@njit(cache=True)
def _before(a: float, b: float) -> bool:
    """numpy's sort order of floats: NaN after everything, NaNs equal."""
    return a < b or (b != b and a == a)


@njit(cache=True)
def stable_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, kind="stable")`` by a bottom-up merge sort."""
    n = len(values)
    idx = np.arange(n)
    buf = np.empty(n, np.int64)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                # Equal values keep their order: the right one goes first only when strictly smaller.
                if _before(values[idx[j]], values[idx[i]]):
                    buf[k] = idx[j]
                    j += 1
                else:
                    buf[k] = idx[i]
                    i += 1
                k += 1
            while i < mid:
                buf[k] = idx[i]
                i += 1
                k += 1
            while j < hi:
                buf[k] = idx[j]
                j += 1
                k += 1
        idx, buf = buf, idx
        width *= 2
    return idx


@njit(cache=True, error_model="numpy")
def difference_order(d1: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order units by ``d1 - d2`` (ties by ``d1``); return ``(order, rank, safe)``.

    ``d1`` and ``d2`` are shortest-path distances from one source unit each. ``safe[p]`` says
    split ``p`` (first ``p + 1`` units of ``order`` on side A) has both sides connected without
    checking: a unit on a shortest path from ``c1`` to a side-A unit has a key no larger and a
    smaller ``d1``, so it comes first; a unit on a shortest path from ``c2`` to a side-B unit has a
    key no smaller, so only equal keys across the cut can break side B. Keys are rounded (as
    ``np.round(x, 9)``) so that ties lost to floating point count as ties; a set that is not
    connected (some distance infinite) has no safe split. The order is ``np.lexsort((d1, key))``'s.
    """
    n = len(d1)
    finite = True
    scale = 0.0
    for i in range(n):
        if np.isfinite(d1[i]):
            scale = max(scale, abs(d1[i]))
        else:
            finite = False
        if not np.isfinite(d2[i]):
            finite = False
    scale = 1e-300 if scale < 1e-300 else scale
    key = np.empty(n)
    for i in range(n):
        key[i] = np.rint((d1[i] - d2[i]) / scale * _ROUND_SCALE) / _ROUND_SCALE
    # np.lexsort((d1, key)): a stable sort by d1, then a stable sort of that by key.
    by_d1 = stable_argsort(d1)
    order = by_d1[stable_argsort(key[by_d1])]
    rank = np.empty(n, np.int64)
    for i in range(n):
        rank[order[i]] = i
    safe = np.zeros(max(n - 1, 0), np.bool_)
    if finite:
        for p in range(n - 1):
            safe[p] = key[order[p + 1]] != key[order[p]]
    return order, rank, safe


@njit(cache=True, error_model="numpy")
def sweep_order(
    indptr: np.ndarray,
    cols: np.ndarray,
    length: np.ndarray,
    reverse: np.ndarray,
    factor: np.ndarray,
    c1: np.ndarray,
    c2: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Order units by distance difference to sources ``c1`` and ``c2`` over lengths ``length * factor``.

    An undirected search takes the shorter of an edge's two entries (``reverse``: position of the
    entry ``(j, i)``), so both entries get that length.
    """
    m = len(length)
    noisy = np.empty(m)
    for e in range(m):
        noisy[e] = length[e] * factor[e]
    lengths = np.empty(m)
    for e in range(m):
        lengths[e] = min(noisy[e], noisy[reverse[e]])
    d1 = multi_source_dijkstra(indptr, cols, lengths, c1)
    d2 = multi_source_dijkstra(indptr, cols, lengths, c2)
    return difference_order(d1, d2)


@njit(cache=True, error_model="numpy")
def split_scores(
    order: np.ndarray,
    rank: np.ndarray,
    share: np.ndarray,
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
    polygons: bool,
    t1: np.ndarray,
    t2: np.ndarray,
    k1: int,
    k2: int,
    per: np.ndarray,
    tolerance: np.ndarray,
    limit: float,
) -> np.ndarray:
    """``(2, n - 1)`` scores of the splits "first ``p + 1`` units of ``order`` on side a" (lower is better).

    Row 0 puts the first group (targets ``t1``, ``k1`` territories) on side a, row 1 the second.
    A split within ``limit`` × tolerance scores its shape (minus both sides' Polsby-Popper for
    ``polygons``, else the moment of inertia over its largest value), others ``1e6`` plus their
    worst relative excess, and a side with fewer units than territories ``inf``.
    """
    nu = len(order)
    m = share.shape[1]
    # Shape terms of all splits (as numpy's cumsum/bincount/sum would compute them).
    shape = np.empty(nu - 1)
    if polygons:
        by_hi = np.zeros(nu)
        by_lo = np.zeros(nu)
        for e in range(len(er)):
            r1, r2 = rank[er[e]], rank[ec[e]]
            by_hi[max(r1, r2)] += es[e]
            by_lo[min(r1, r2)] += es[e]
        lo_total = _pairwise_sum(by_lo)
        inner_a = inner_lo = area_c = perim_c = 0.0
        for p in range(nu - 1):
            v = order[p]
            inner_a += by_hi[p]
            inner_lo += by_lo[p]
            area_c += area[v]
            perim_c += perim[v]
            perim_a = perim_c - 2 * inner_a
            area_b = area_sum - area_c
            perim_b = perim_sum - perim_c - 2 * (lo_total - inner_lo)
            pa = FOUR_PI * area_c / (perim_a * perim_a) if perim_a > 0 else 0.0
            pb = FOUR_PI * area_b / (perim_b * perim_b) if perim_b > 0 else 0.0
            shape[p] = -(pa + pb)
    else:
        wo = np.empty(nu)
        wx = np.empty(nu)
        wy = np.empty(nu)
        wq = np.empty(nu)
        for i in range(nu):
            v = order[i]
            wo[i] = w[v]
            wx[i] = w[v] * x[v]
            wy[i] = w[v] * y[v]
            wq[i] = w[v] * (x[v] * x[v] + y[v] * y[v])
        tw, tx, ty, tq = _pairwise_sum(wo), _pairwise_sum(wx), _pairwise_sum(wy), _pairwise_sum(wq)
        sw = sx = sy = sq = 0.0
        top = 0.0
        for p in range(nu - 1):
            sw += wo[p]
            sx += wx[p]
            sy += wy[p]
            sq += wq[p]
            inertia = 0.0
            inertia += sq - (sx * sx + sy * sy) / sw if sw > 1e-15 else 0.0
            bw, bx, by, bq = tw - sw, tx - sx, ty - sy, tq - sq
            inertia += bq - (bx * bx + by * by) / bw if bw > 1e-15 else 0.0
            inertia = 0.0 if inertia < 0 else inertia
            # np.max propagates NaN.
            if p == 0 or inertia != inertia or (top == top and inertia > top):
                top = inertia
            shape[p] = inertia
        top = 1e-12 if top < 1e-12 else top
        for p in range(nu - 1):
            shape[p] = shape[p] / top
    scores = np.empty((2, nu - 1))
    load = np.zeros(m)
    kmin = float(min(k1, k2))
    for p in range(nu - 1):
        v = order[p]
        for c in range(m):
            load[c] += share[v, c]
        for side in range(2):
            ta = t1 if side == 0 else t2
            ka, kb = (k1, k2) if side == 0 else (k2, k1)
            worst = 0.0
            for c in range(m):
                excess = (load[c] - ta[c]) / per[c] if per[c] > 0 else 0.0
                value = abs(excess) / kmin / tolerance[c]
                if c == 0 or value != value or (worst == worst and value > worst):
                    worst = value
            score = shape[p] if worst <= limit else 1e6 + worst
            if p + 1 < ka or nu - p - 1 < kb:
                score = np.inf
            scores[side, p] = score
    return scores


@njit(cache=True)
def sides_connected(indptr: np.ndarray, cols: np.ndarray, rank: np.ndarray, p: int) -> bool:
    """Whether both sides of split ``p`` (ranks up to ``p``, and above) are connected."""
    return subset_connected(indptr, cols, rank <= p) and subset_connected(indptr, cols, rank > p)


@njit(cache=True)
def smallest(values: np.ndarray, k: int) -> np.ndarray:
    """``np.argsort(values, kind="stable")[:k]`` without sorting the rest."""
    k = max(min(k, len(values)), 0)
    best = np.empty(k, np.int64)
    count = 0
    for i in range(len(values) if k > 0 else 0):
        v = values[i]
        if count < k:
            pos = count
            count += 1
        elif _before(v, values[best[k - 1]]):
            pos = k - 1
        else:
            continue
        # A later index goes after the equal values already kept.
        while pos > 0 and _before(v, values[best[pos - 1]]):
            best[pos] = best[pos - 1]
            pos -= 1
        best[pos] = i
    return best


@njit(cache=True)
def add_best_splits(
    scores: np.ndarray,
    order: np.ndarray,
    rank: np.ndarray,
    safe: np.ndarray,
    indptr: np.ndarray,
    cols: np.ndarray,
    keep: int,
    unit_hash: np.ndarray,
    masks: np.ndarray,
    hashes: np.ndarray,
    found: np.ndarray,
    n_found: int,
) -> int:
    """Add the ``keep`` best new connected splits of a sweep on each side to the pool; return its size.

    For each row of ``scores`` (0: first group on the side of ``order[:p + 1]``, 1: on the other),
    the ``3 * keep`` best splits are taken in order of score (stable) until a score is not finite
    or ``keep`` were added; a split already in the pool (rows ``masks[:n_found]``: True where the
    first group lies, with ``found`` scores and ``hashes``, the xor of ``unit_hash`` over the first
    group) is passed over, and one not ``safe`` is added only if both sides are connected.
    """
    nu = len(order)
    prefix = np.empty(nu, np.int64)
    h = np.int64(0)
    for i in range(nu):
        h ^= unit_hash[order[i]]
        prefix[i] = h
    for side in range(2):
        row = scores[side]
        first = side == 0
        taken = 0
        for idx in smallest(row, 3 * keep):
            if not np.isfinite(row[idx]) or taken >= keep:
                break
            key = prefix[idx] if first else h ^ prefix[idx]
            seen = False
            for f in range(n_found):
                if hashes[f] == key:
                    seen = True
                    for v in range(nu):
                        if masks[f, v] != ((rank[v] <= idx) == first):
                            seen = False
                            break
                    if seen:
                        break
            if seen:
                continue
            if safe[idx] or sides_connected(indptr, cols, rank, idx):
                for v in range(nu):
                    masks[n_found, v] = (rank[v] <= idx) == first
                hashes[n_found] = key
                found[n_found] = row[idx]
                n_found += 1
                taken += 1
    return n_found


def warm_up() -> None:
    """Sweep and score a path of three units once, with the argument types of real designs."""
    indptr = np.array([0, 1, 3, 4], dtype=np.int64)
    cols = np.array([1, 0, 2, 1], dtype=np.int64)
    ones, one = np.ones(3), np.ones(1)
    order, rank, _ = sweep_order(
        indptr, cols, np.ones(4), np.array([1, 0, 3, 2], dtype=np.int64), np.ones(4),
        np.array([0], dtype=np.int64), np.array([2], dtype=np.int64),
    )  # fmt: skip
    edges = np.array([0, 1], dtype=np.int64), np.array([1, 2], dtype=np.int64), np.ones(2)
    for polygons in (True, False):
        split_scores(
            order, rank, np.full((3, 1), 1 / 3), *edges, ones, ones, 3.0, 3.0, ones, ones, ones,
            polygons, one, one, 1, 1, one, one, 1.0,
        )  # fmt: skip
    pool = np.empty((4, 3), np.bool_), np.empty(4, np.int64), np.empty(4)
    add_best_splits(
        np.zeros((2, 2)), order, rank, np.zeros(2, np.bool_), indptr, cols, 1, np.arange(3), *pool, 0
    )
