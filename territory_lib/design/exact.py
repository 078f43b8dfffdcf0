"""Exact reference for small instances: a p-median MIP (HiGHS) bounding compactness under balance.

Compactness is the p-median form of the moment of inertia: ``Σ_j w_j d(j, c_t(j))²`` with each
territory's centre ``c_t`` one of its units. The MIP keeps every balance band but drops contiguity,
so its optimum (and HiGHS's dual bound) is a valid lower bound for every contiguous plan; the gap
of a heuristic plan to it is an upper bound on how far that plan is from the optimum.
"""

from __future__ import annotations

import highspy
import numpy as np

from territory_lib.design.diagnose import RowBuffer, quiet_highs

#: Above this many units the n² assignment variables make the MIP impractical.
MAX_UNITS = 150


def pmedian_value(xy_km: np.ndarray, weight: np.ndarray, labels: np.ndarray) -> float:
    """P-median compactness of a plan: per territory, the best centre unit's ``Σ w d²``."""
    total = 0.0
    for t in np.unique(labels):
        members = np.flatnonzero(labels == t)
        d2 = ((xy_km[members, None, :] - xy_km[None, members, :]) ** 2).sum(axis=2)
        total += float((d2 * weight[members][None, :]).sum(axis=1).min())
    return total


def pmedian_bound(
    xy_km: np.ndarray,
    weight: np.ndarray,
    share: np.ndarray,
    target: np.ndarray,
    tolerance: np.ndarray,
    k: int,
    time_limit: float = 60.0,
    node_limit: int | None = 100_000,
) -> tuple[float, float | None, str]:
    """Lower bound on p-median compactness of any plan within the balance bands.

    Parameters
    ----------
    xy_km : numpy.ndarray
        ``(n, 2)`` unit coordinates in km.
    weight : numpy.ndarray
        ``(n,)`` unit weights of the compactness term.
    share : numpy.ndarray
        ``(n, m)`` units' shares of each measure.
    target : numpy.ndarray
        ``(m,)`` target share of every territory per measure (equal targets).
    tolerance : numpy.ndarray
        ``(m,)`` relative tolerances.
    k : int
        Number of territories.
    time_limit : float
        Wall-clock safety cap in seconds for HiGHS (a bound it cuts short depends on the machine;
        the status then says "Time limit reached").
    node_limit : int, optional
        Branch-and-bound nodes for HiGHS, the limit that stops it the same way on every machine
        (None: no limit).

    Returns
    -------
    tuple
        ``(bound, incumbent or None, status)``: HiGHS's dual bound, its best plan's value and the
        model status as text.
    """
    n, m = share.shape
    if n > MAX_UNITS:
        raise ValueError(f"the exact model handles at most {MAX_UNITS} units, got {n}.")
    d2 = ((xy_km[:, None, :] - xy_km[None, :, :]) ** 2).sum(axis=2)
    # Variable x[i, j] = unit j assigned to centre i, at column i * n + j; x[i, i] opens centre i.
    cost = (d2 * weight[None, :]).ravel()
    h = quiet_highs(time_limit, node_limit)
    nv = n * n
    h.addVars(nv, np.zeros(nv), np.ones(nv))
    h.changeColsCost(nv, np.arange(nv, dtype=np.int32), cost)
    h.changeColsIntegrality(nv, np.arange(nv, dtype=np.int32), np.full(nv, highspy.HighsVarType.kInteger))
    rows = RowBuffer()
    add = rows.add

    idx = np.arange(n)
    for j in range(n):  # each unit to exactly one centre
        add(idx * n + j, np.ones(n), 1.0, 1.0)
    add(idx * n + idx, np.ones(n), float(k), float(k))  # k centres
    for i in range(n):
        for j in range(n):  # assign only to open centres
            if i != j:
                add(np.array([i * n + j, i * n + i]), np.array([1.0, -1.0]), -highspy.kHighsInf, 0.0)
        for a in range(m):  # balance band of the territory centred at i, when open
            cols = i * n + idx
            lo = (1 - tolerance[a]) * target[a]
            hi = (1 + tolerance[a]) * target[a]
            centre = cols == i * n + i
            add(cols, np.where(centre, share[:, a] - lo, share[:, a]), 0.0, highspy.kHighsInf)
            add(cols, np.where(centre, share[:, a] - hi, share[:, a]), -highspy.kHighsInf, 0.0)
    rows.add_to(h)
    h.run()
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus())
    incumbent = float(info.objective_function_value) if info.primal_solution_status == 2 else None
    return float(info.mip_dual_bound), incumbent, status
