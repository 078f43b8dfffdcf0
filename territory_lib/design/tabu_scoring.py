"""The tabu search's iterations, compiled with numba: candidate moves scored, the best one applied.

:func:`score_moves` lists every move of a boundary unit to an adjacent territory and scores it, with
the same floating-point operations in the same order as numpy's elementwise arithmetic and
reductions would, so a plan does not depend on whether this code is compiled. :func:`tabu_iterations`
runs the search's loop around it with the arithmetic of the Python local search and numpy's random
stream, so the search takes the moves the Python loop took. Compiled code is
cached (``cache=True``) in the user's cache folder, so a fresh kernel loads it instead of compiling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from territory_lib.compiled import use_user_cache_folder
from territory_lib.design.contiguity import stays_connected

use_user_cache_folder()

FOUR_PI = 4 * math.pi
#: ``np.round(x, 12)`` multiplies by this power of ten, rounds half to even, and divides.
_ROUND_SCALE = 1e12


@njit(cache=True)
def _pairwise_sum(values: np.ndarray) -> float:
    """Sum as numpy's ``sum`` does along a contiguous axis (pairwise, eight accumulators per block)."""
    n = len(values)
    if n < 8:
        total = 0.0
        for i in range(n):
            total += values[i]
        return total
    if n <= 128:
        acc = values[:8].copy()
        i = 8
        while i + 8 <= n:
            for lane in range(8):
                acc[lane] += values[i + lane]
            i += 8
        total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        while i < n:
            total += values[i]
            i += 1
        return total
    half = n // 2
    half -= half % 8
    return _pairwise_sum(values[:half]) + _pairwise_sum(values[half:])


@njit(cache=True, error_model="numpy")
def band_terms(
    load: np.ndarray,
    target: np.ndarray,
    tol: np.ndarray,
    zone_tol: np.ndarray,
    over: np.ndarray,
    pull: np.ndarray,
) -> tuple[float, float]:
    """(violation, pull) of a territory carrying ``load``, summed over the measures as numpy sums
    (``over, pull``: scratch); the recombination's scoring uses it too."""
    for x in range(len(load)):
        dev = abs(load[x] / target[x] - 1.0) if target[x] > 0 else 0.0
        o = dev - tol[x]
        over[x] = o if o > 0 else 0.0
        p = dev - zone_tol[x]
        p = p if p > 0 else 0.0
        pull[x] = p * p
    return _pairwise_sum(over), _pairwise_sum(pull)


@njit(cache=True, error_model="numpy")
def _balance(
    load: np.ndarray,
    target: np.ndarray,
    tol: np.ndarray,
    zone_tol: np.ndarray,
    violation_weight: float,
    pull_weight: float,
    over: np.ndarray,
    pull: np.ndarray,
) -> tuple[float, float]:
    """(violation, weighted balance cost) of one territory carrying ``load`` (``over, pull``: scratch)."""
    viol, pulled = band_terms(load, target, tol, zone_tol, over, pull)
    return viol, violation_weight * viol + pull_weight * pulled


@njit(cache=True, error_model="numpy")
def _polsby_popper(area: float, perim: float) -> float:
    return FOUR_PI * area / (perim * perim) if perim > 0 else 0.0


@njit(cache=True, error_model="numpy")
def _inertia(sw: float, sx: float, sy: float, sq: float) -> float:
    return sq - (sx * sx + sy * sy) / sw if sw > 1e-15 else 0.0


@njit(cache=True, error_model="numpy")
def score_moves(
    indptr: np.ndarray,
    indices: np.ndarray,
    shared: np.ndarray,
    labels: np.ndarray,
    unit_share: np.ndarray,
    target: np.ndarray,
    tol: np.ndarray,
    load: np.ndarray,
    size: np.ndarray,
    movable: np.ndarray,
    weights: np.ndarray,
    hard_band: bool,
    use_pp: bool,
    unit_perim: np.ndarray,
    unit_area: np.ndarray,
    area: np.ndarray,
    perim: np.ndarray,
    use_inertia: bool,
    inertia_scale: float,
    inertia_ref: float,
    w: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    q: np.ndarray,
    sw: np.ndarray,
    sx: np.ndarray,
    sy: np.ndarray,
    sq: np.ndarray,
    use_current: bool,
    current: np.ndarray,
    disruption_weight: np.ndarray,
    disrupted: float,
    cap: float,
    tabu_until: np.ndarray,
    iteration: int,
    current_viol: float,
    current_obj: float,
    best_viol: float,
    best_obj: float,
) -> tuple[np.ndarray, ...]:
    """Every boundary move of one tabu iteration, scored, and which of them are allowed.

    Parameters
    ----------
    indptr, indices, shared : numpy.ndarray
        Unit adjacency in CSR form with shared border lengths.
    labels : numpy.ndarray
        Territory of each unit.
    unit_share, target, tol : numpy.ndarray
        ``(n, m)`` unit shares, ``(k, m)`` territory targets, ``(m,)`` tolerances.
    load, size : numpy.ndarray
        ``(k, m)`` territory loads and ``(k,)`` unit counts as they stand.
    movable : numpy.ndarray
        Whether each unit may move.
    weights : numpy.ndarray
        Objective weights ``violation, pull, zone, pp, disruption`` (see ``Weights``).
    hard_band : bool
        Forbid moves that increase the band violation.
    use_pp : bool
        Score Polsby-Popper (polygon map and a non-zero weight); then ``unit_perim, unit_area``
        per unit and ``area, perim`` per territory are used.
    use_inertia : bool
        Score the moment of inertia, as ``inertia_scale * change / inertia_ref``, from the unit
        weights and scaled coordinates ``w, x, y, q`` and the territory sums ``sw, sx, sy, sq``.
    use_current : bool
        Score disruption against ``current`` (territory per unit, -1 for none) with each unit's
        ``disruption_weight``; ``disrupted`` is the plan's disruption and ``cap`` its limit.
    tabu_until, iteration : numpy.ndarray, int
        A unit may move again from iteration ``tabu_until[unit]`` on, unless the move beats the
        best plan (``best_viol, best_obj``) from the current one (``current_viol, current_obj``).

    Returns
    -------
    tuple of numpy.ndarray
        ``unit, source, destination, border shared with the source, border shared with the
        destination, objective change, violation change, disruption change`` per move, sorted by
        unit then destination, and the positions of the allowed moves.
    """
    n = len(labels)
    k, m = load.shape
    violation_weight, pull_weight, zone = weights[0], weights[1], weights[2]
    pp_weight, disruption_w = weights[3], weights[4]
    zone_tol = zone * tol
    over = np.empty(m)
    pull = np.empty(m)
    moved_load = np.empty(m)
    # Every term of the territories as they stand.
    viol0 = np.empty(k)
    cost0 = np.empty(k)
    pp0 = np.empty(k)
    inertia0 = np.empty(k)
    for t in range(k):
        viol, cost = _balance(load[t], target[t], tol, zone_tol, violation_weight, pull_weight, over, pull)
        viol0[t] = viol
        cost0[t] = cost
        pp0[t] = _polsby_popper(area[t], perim[t])
        inertia0[t] = _inertia(sw[t], sx[t], sy[t], sq[t])
    # A move per (unit, other territory) among the adjacency entries: at most one per entry.
    cap_moves = len(indices)
    unit = np.empty(cap_moves, dtype=np.int64)
    source = np.empty(cap_moves, dtype=np.int64)
    dest = np.empty(cap_moves, dtype=np.int64)
    shared_a = np.empty(cap_moves)
    shared_b = np.empty(cap_moves)
    delta = np.empty(cap_moves)
    dviol = np.empty(cap_moves)
    ddis = np.empty(cap_moves)
    allowed = np.empty(cap_moves, dtype=np.int64)
    border = np.zeros(k)
    seen_by = np.full(k, -1)
    touched = np.empty(k, dtype=np.int64)
    count = 0
    n_allowed = 0
    for j in range(n):
        a = labels[j]
        inside = 0.0
        n_touched = 0
        # Border lengths summed in adjacency order, as np.bincount sums them.
        for e in range(indptr[j], indptr[j + 1]):
            lab = labels[indices[e]]
            if lab == a:
                inside += shared[e]
            else:
                if seen_by[lab] != j:
                    seen_by[lab] = j
                    # Insertion keeps the destinations sorted (np.unique order); a unit has few.
                    pos = n_touched
                    while pos > 0 and touched[pos - 1] > lab:
                        touched[pos] = touched[pos - 1]
                        pos -= 1
                    touched[pos] = lab
                    n_touched += 1
                border[lab] += shared[e]
        if n_touched == 0:
            continue
        # The source territory's terms after the unit leaves are the same for every destination.
        for mx in range(m):
            moved_load[mx] = load[a, mx] - unit_share[j, mx]
        va, ca = _balance(moved_load, target[a], tol, zone_tol, violation_weight, pull_weight, over, pull)
        pa = 0.0
        if use_pp:
            pa = _polsby_popper(area[a] - unit_area[j], perim[a] - unit_perim[j] + 2 * inside)
        wj = w[j]
        dx, dy, dq = wj * x[j], wj * y[j], wj * q[j]
        ia = 0.0
        if use_inertia:
            ia = _inertia(sw[a] - wj, sx[a] - dx, sy[a] - dy, sq[a] - dq)
        for i in range(n_touched):
            b = touched[i]
            sb = border[b]
            border[b] = 0.0
            for mx in range(m):
                moved_load[mx] = load[b, mx] + unit_share[j, mx]
            vb, cb = _balance(moved_load, target[b], tol, zone_tol, violation_weight, pull_weight, over, pull)
            d = ca + cb - cost0[a] - cost0[b]
            dv = va + vb - viol0[a] - viol0[b]
            if use_pp:
                pb = _polsby_popper(area[b] + unit_area[j], perim[b] + unit_perim[j] - 2 * sb)
                d -= pp_weight * (pa + pb - pp0[a] - pp0[b])
            if use_inertia:
                ib = _inertia(sw[b] + wj, sx[b] + dx, sy[b] + dy, sq[b] + dq)
                d += inertia_scale * (ia + ib - inertia0[a] - inertia0[b]) / inertia_ref
            dd = 0.0
            if use_current:
                cur = current[j]
                dd = disruption_weight[j] * ((1.0 if cur != b else 0.0) - (1.0 if cur != a else 0.0))
                d += disruption_w * dd
            ok = movable[j] and size[a] > 1
            if hard_band:
                ok = ok and dv <= 1e-12
            if use_current and math.isfinite(cap):
                ok = ok and (dd <= 0 or disrupted + dd <= cap + 1e-12)
            if ok and tabu_until[j] > iteration:
                # Aspiration: a tabu move is allowed when it gives the best plan yet.
                new_viol = np.rint((current_viol + dv) * _ROUND_SCALE) / _ROUND_SCALE
                ok = new_viol < best_viol or (new_viol == best_viol and current_obj + d < best_obj - 1e-12)
            unit[count] = j
            source[count] = a
            dest[count] = b
            shared_a[count] = inside
            shared_b[count] = sb
            delta[count] = d
            dviol[count] = dv
            ddis[count] = dd
            if ok:
                allowed[n_allowed] = count
                n_allowed += 1
            count += 1
    return (
        unit[:count],
        source[:count],
        dest[:count],
        shared_a[:count],
        shared_b[:count],
        delta[:count],
        dviol[:count],
        ddis[:count],
        allowed[:n_allowed],
    )


@njit(cache=True)
def round12(x: float) -> float:
    """Python's ``round(x, 12)``: ``x`` rounded half to even at its exact binary value.

    ``x * 1e12`` is split into its rounded product and the exact rounding error (Dekker's
    product), so ties are decided on the exact value; the integer divided by ``1e12`` is the
    double nearest the rounded decimal, as Python's correctly rounded ``round`` gives.
    """
    hi = x * _ROUND_SCALE
    if not abs(hi) < 9007199254740992.0:  # 2**53, or not finite: x is spaced wider than 1e-12
        return x
    split = 134217729.0  # 2**27 + 1
    t = split * x
    x_hi = t - (t - x)
    x_lo = x - x_hi
    t = split * _ROUND_SCALE
    p_hi = t - (t - _ROUND_SCALE)
    p_lo = _ROUND_SCALE - p_hi
    lo = ((x_hi * p_hi - hi) + x_hi * p_lo + x_lo * p_hi) + x_lo * p_lo
    r = np.rint(hi)
    f = hi - r
    if f == 0.5:
        if lo > 0:
            r += 1.0
    elif f == -0.5:
        if lo < 0:
            r -= 1.0
    elif f == 0.0 and abs(lo) == 0.5:  # hi is an integer (beyond 2**52) and the exact value a tie
        up = r + lo
        r = up if up % 2 == 0 else r - lo
    return r / _ROUND_SCALE


#: :func:`tabu_iterations` stopped because the search is over (not because it reached ``stop_at``).
SEARCH_OVER = 1


@njit(cache=True, error_model="numpy")
def tabu_iterations(
    indptr: np.ndarray,
    indices: np.ndarray,
    shared: np.ndarray,
    unit_share: np.ndarray,
    target: np.ndarray,
    tol: np.ndarray,
    movable: np.ndarray,
    weights: np.ndarray,
    flags: np.ndarray,
    unit_perim: np.ndarray,
    unit_area: np.ndarray,
    scales: np.ndarray,
    w: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    q: np.ndarray,
    current: np.ndarray,
    disruption_weight: np.ndarray,
    labels: np.ndarray,
    load: np.ndarray,
    size: np.ndarray,
    area: np.ndarray,
    perim: np.ndarray,
    sw: np.ndarray,
    sx: np.ndarray,
    sy: np.ndarray,
    sq: np.ndarray,
    owner: np.ndarray,
    nxt: np.ndarray,
    tabu_until: np.ndarray,
    best_labels: np.ndarray,
    values: np.ndarray,
    counters: np.ndarray,
    settings: np.ndarray,
    rng: np.random.Generator,
) -> int:
    """Tabu iterations from ``counters[0]`` up to ``settings[0]`` (exclusive), in place.

    Each iteration scores every boundary move (:func:`score_moves`), adds tie-breaking noise of
    at most 1e-9 to the allowed ones, and applies the first of the 50 best that keeps its
    territory connected; the unit stays tabu for a random number of iterations. Plans are ranked
    by band violation rounded to 12 decimals, then objective; the best one seen is copied to
    ``best_labels``.

    Parameters
    ----------
    flags : numpy.ndarray
        ``hard_band, use_pp, use_inertia, use_current`` (booleans, see :func:`score_moves`).
    scales : numpy.ndarray
        ``inertia_scale, inertia_ref, cap``.
    labels, load, size, area, perim, sw, sx, sy, sq : numpy.ndarray
        The plan and its territory sums, updated move by move with the arithmetic of
        ``LocalSearch._apply``.
    owner, nxt : numpy.ndarray
        Scratch for :func:`~territory_lib.design.contiguity.stays_connected`.
    values : numpy.ndarray
        ``current violation, current objective, best violation, best objective, disruption``.
    counters : numpy.ndarray
        ``iteration, iterations since the best plan, work units spent, moves applied``.
    settings : numpy.ndarray
        ``stop_at, max_iter, patience, feasible patience (-1: patience), work limit, shortest
        tenure, longest tenure``.
    rng : numpy.random.Generator
        Drawn from exactly as numpy would (noise, then tenure, each iteration).

    Returns
    -------
    int
        :data:`SEARCH_OVER` when the search has ended, 0 when it only reached ``stop_at``.
    """
    hard_band, use_pp, use_inertia, use_current = flags[0], flags[1], flags[2], flags[3]
    inertia_scale, inertia_ref, cap = scales[0], scales[1], scales[2]
    stop_at, max_iter, patience, feasible_patience = settings[0], settings[1], settings[2], settings[3]
    limit, tenure_lo, tenure_hi = settings[4], settings[5], settings[6]
    m = load.shape[1]
    current_viol, current_obj, best_viol, best_obj = values[0], values[1], values[2], values[3]
    disrupted = values[4]
    it, since_best, spent, moves = counters[0], counters[1], counters[2], counters[3]
    status = 0
    while True:
        if it >= max_iter:
            status = SEARCH_OVER
            break
        if it >= stop_at:
            break
        wait = patience if feasible_patience < 0 or best_viol > 0 else feasible_patience
        if since_best >= wait or spent >= limit:
            status = SEARCH_OVER
            break
        j, a, b, sa, sb, delta, dviol, _, allowed = score_moves(
            indptr, indices, shared, labels, unit_share, target, tol, load, size, movable, weights,
            hard_band, use_pp, unit_perim, unit_area, area, perim, use_inertia, inertia_scale,
            inertia_ref, w, x, y, q, sw, sx, sy, sq, use_current, current, disruption_weight,
            disrupted, cap, tabu_until, it, current_viol, current_obj, best_viol, best_obj,
        )  # fmt: skip
        if len(j) == 0:
            status = SEARCH_OVER
            break
        spent += len(j)
        if len(allowed) == 0:
            status = SEARCH_OVER
            break
        noisy = delta[allowed] + rng.uniform(0.0, 1e-9, len(allowed))
        ranked = allowed[np.argsort(noisy, kind="mergesort")]
        moved = False
        for r in range(min(50, len(ranked))):
            pick = ranked[r]
            unit, frm, to = j[pick], a[pick], b[pick]
            if not stays_connected(indptr, indices, labels, unit, frm, owner, nxt):
                continue
            # LocalSearch._apply's arithmetic, in its order.
            for mx in range(m):
                load[frm, mx] -= unit_share[unit, mx]
                load[to, mx] += unit_share[unit, mx]
            area[frm] -= unit_area[unit]
            area[to] += unit_area[unit]
            perim[frm] += 2 * sa[pick] - unit_perim[unit]
            perim[to] += unit_perim[unit] - 2 * sb[pick]
            wj = w[unit]
            sw[frm] -= wj
            sw[to] += wj
            v = wj * x[unit]
            sx[frm] -= v
            sx[to] += v
            v = wj * y[unit]
            sy[frm] -= v
            sy[to] += v
            v = wj * q[unit]
            sq[frm] -= v
            sq[to] += v
            size[frm] -= 1
            size[to] += 1
            if use_current:
                cur = current[unit]
                change = (1.0 if cur != to else 0.0) - (1.0 if cur != frm else 0.0)
                disrupted += disruption_weight[unit] * change
            labels[unit] = to
            moves += 1
            current_obj += delta[pick]
            viol = current_viol + dviol[pick]
            current_viol = 0.0 if viol < 0.0 else viol  # Python's max(viol, 0.0)
            tabu_until[unit] = it + rng.integers(tenure_lo, tenure_hi + 1)
            moved = True
            break
        if not moved:
            status = SEARCH_OVER
            break
        key = round12(current_viol)
        if key < best_viol or (key == best_viol and current_obj < best_obj - 1e-12):
            best_viol, best_obj = key, current_obj
            best_labels[:] = labels
            since_best = 0
        else:
            since_best += 1
        it += 1
    values[0], values[1], values[2], values[3] = current_viol, current_obj, best_viol, best_obj
    values[4] = disrupted
    counters[0], counters[1], counters[2], counters[3] = it, since_best, spent, moves
    return status
