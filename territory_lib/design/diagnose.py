"""Why a band cannot hold: load forced on anchored territories, and exact checks around heavy units.

Both explain an out-of-band plan in terms of units the user knows. :func:`forced_load` is exact and
cheap: units that can reach no territory's required units (seeds, locks) except one must join that
territory. :func:`territory_reach` asks a small MIP (HiGHS) whether any connected territory holding
a given unit can meet every band at once, and if not, how close each measure can come.

The MIPs stop after a number of branch-and-bound nodes that shrinks as the model grows (a budget of
node work: nodes × model columns), which gives the same answer on every machine; their wall-clock
limit is only a safety cap, and the results say when it was hit.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import highspy
import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from territory_lib.design.graph import UnitGraph

#: Largest map on which :func:`territory_reach` runs (its model has a flow per directed edge).
REACH_MAX_UNITS = 600
#: Fewest branch-and-bound nodes a node-work budget allows, however large the model.
MIN_NODES = 10


def node_limit(node_work: int | None, columns: int) -> int | None:
    """Branch-and-bound nodes a model of ``columns`` columns gets from ``node_work`` (None: no limit).

    A node costs roughly in proportion to the model's size, so one budget of node work stops small
    and large models after similar effort.
    """
    if node_work is None:
        return None
    return max(MIN_NODES, int(node_work) // max(int(columns), 1))


def quiet_highs(time_limit: float, max_nodes: int | None = None) -> highspy.Highs:
    """A single-threaded HiGHS instance that prints nothing, with a node limit and a time limit.

    Single-threaded and stopped by ``max_nodes`` (branch-and-bound nodes), HiGHS ends at the same
    point on every machine; ``time_limit`` (seconds) is a safety cap whose stop depends on the machine.
    HiGHS prints a banner to the process's standard output (file descriptor 1, under Python's
    own ``sys.stdout``) when its first instance is built; it is silenced while building.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", float(time_limit))
    h.setOptionValue("threads", 1)
    if max_nodes is not None:
        h.setOptionValue("mip_max_nodes", int(max_nodes))
    return h


def hit_time_limit(h: highspy.Highs) -> bool:
    """Whether the last solve of ``h`` stopped at its wall-clock limit (not a deterministic stop)."""
    return h.getModelStatus() == highspy.HighsModelStatus.kTimeLimit


class RowBuffer:
    """Constraint rows gathered one by one, then handed to HiGHS in a single ``addRows`` call."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.index: list[int] = []
        self.value: list[float] = []
        self.lower: list[float] = []
        self.upper: list[float] = []

    def add(
        self,
        cols: Sequence[int] | np.ndarray,
        coefs: Sequence[float] | np.ndarray,
        lower: float,
        upper: float,
    ) -> None:
        """Append the row ``lower <= sum(coefs * x[cols]) <= upper``."""
        self.starts.append(len(self.index))
        self.index.extend(int(c) for c in cols)
        self.value.extend(float(c) for c in coefs)
        self.lower.append(lower)
        self.upper.append(upper)

    def add_to(self, h: highspy.Highs) -> None:
        """Add every gathered row to the model ``h``."""
        h.addRows(
            len(self.lower),
            np.asarray(self.lower),
            np.asarray(self.upper),
            len(self.index),
            np.asarray(self.starts, dtype=np.int32),
            np.asarray(self.index, dtype=np.int32),
            np.asarray(self.value),
        )


def forced_load(graph: UnitGraph, cores: list[list[int]], share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Units every plan must give to each anchored territory, and their load.

    A connected group of free units whose only links to required units (seeds, locked units and
    the paths joining them) lead to one territory's can join no other territory without cutting
    it off, so it belongs to that territory in every contiguous plan.

    Parameters
    ----------
    graph : UnitGraph
        Connected unit graph.
    cores : list of list of int
        Required units of each territory.
    share : numpy.ndarray
        ``(n, m)`` units' shares of each measure.

    Returns
    -------
    tuple
        ``(owner, load)``: per unit the territory it is forced into (-1 if none; required units
        count as forced) and the ``(k, m)`` forced share of each territory.
    """
    k = len(cores)
    owner = np.full(graph.n, -1)
    for t, core in enumerate(cores):
        owner[core] = t
    load = np.zeros((k, share.shape[1]))
    if not any(cores):
        return owner, load
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    free = owner < 0
    keep = free[rows] & free[graph.indices]
    mat = sparse.csr_matrix(
        (np.ones(int(keep.sum())), (rows[keep], graph.indices[keep])), shape=(graph.n, graph.n)
    )
    _, comp = connected_components(mat, directed=False)
    # Territories each free group touches through an edge to a required unit.
    touch = free[rows] & ~free[graph.indices]
    pairs = np.unique(np.column_stack([comp[rows[touch]], owner[graph.indices[touch]]]), axis=0)
    groups, counts = np.unique(pairs[:, 0], return_counts=True)
    single = dict(pairs[np.isin(pairs[:, 0], groups[counts == 1])].tolist())
    forced = owner.copy()
    for u in np.flatnonzero(free):
        forced[u] = single.get(int(comp[u]), -1)
    for t in range(k):
        load[t] = share[forced == t].sum(axis=0)
    return forced, load


@dataclass
class Reach:
    """What a connected territory holding one unit can reach (see :func:`territory_reach`).

    Attributes
    ----------
    feasible : bool or None
        Whether some connected territory holding the unit meets every band (None: not decided
        within the node limit or the time cap).
    low, high : numpy.ndarray
        Per measure, the lowest and highest total (as a share of the target) such a territory can
        have while every other measure stays within its band; NaN where not needed (the lowest is
        above the band: the highest is not computed), not decided, or when the other bands cannot
        hold at all.
    timed_out : bool
        Whether some solve stopped at its wall-clock safety cap (an answer that can differ
        between machines) rather than by its node limit or an answer.
    node_work : int
        Node work the solves used: branch-and-bound nodes × model columns, summed.
    """

    feasible: bool | None
    low: np.ndarray
    high: np.ndarray
    timed_out: bool = False
    node_work: int = 0


def territory_reach(
    graph: UnitGraph,
    unit: int,
    share: np.ndarray,
    target: np.ndarray,
    tolerance: np.ndarray,
    forbidden: np.ndarray,
    time_limit: float = 60.0,
    node_work: int | None = 150_000,
) -> Reach:
    """Whether any connected territory holding ``unit`` (and no ``forbidden`` unit) meets every band.

    The territory is modelled on its own (the other territories are ignored), so an infeasible
    answer proves that no plan can balance this unit's territory; a feasible one proves nothing
    about the whole plan. Contiguity is a single-commodity flow from ``unit``.

    Parameters
    ----------
    graph : UnitGraph
        Connected unit graph.
    unit : int
        Unit the territory must hold.
    share : numpy.ndarray
        ``(n, m)`` units' shares of each measure.
    target : numpy.ndarray
        ``(m,)`` the territory's target share per measure.
    tolerance : numpy.ndarray
        ``(m,)`` relative tolerances.
    forbidden : numpy.ndarray
        Units the territory may not hold (other territories' seeds and locked units).
    time_limit : float
        Wall-clock safety cap in seconds for each MIP solve.
    node_work : int, optional
        Effort of each MIP solve in branch-and-bound nodes × model columns (see
        :func:`node_limit`; None: no limit). This limit, not the clock, decides where a solve stops.

    Returns
    -------
    Reach
        Feasibility, and when infeasible the range each measure can reach.
    """
    m = share.shape[1]
    reach = Reach(None, np.full(m, np.nan), np.full(m, np.nan))

    def solve(optimise: tuple[int, float] | None) -> tuple[bool | None, float | None]:
        status, value, cut, work = _solve(
            graph, unit, share, target, tolerance, forbidden, optimise, time_limit, node_work
        )
        reach.timed_out |= cut
        reach.node_work += work
        return status, value

    reach.feasible = solve(None)[0]
    if reach.feasible is False:
        for a in range(m):
            # Only the side that misses the band explains anything: the least reachable total when
            # it is above the band, else the most when that is below it.
            status, value = solve((a, -1.0))
            if status and value is not None:
                reach.low[a] = value / target[a]
                if reach.low[a] > 1 + tolerance[a]:
                    continue
            status, value = solve((a, 1.0))
            if status and value is not None:
                reach.high[a] = value / target[a]
    return reach


def _solve(
    graph: UnitGraph,
    root: int,
    share: np.ndarray,
    target: np.ndarray,
    tolerance: np.ndarray,
    forbidden: np.ndarray,
    optimise: tuple[int, float] | None,
    time_limit: float,
    node_work: int | None,
) -> tuple[bool | None, float | None, bool, int]:
    """Solve the one-territory model; optionally maximise (sign 1) or minimise (-1) measure ``a``
    with the band of ``a`` dropped. Returns (feasible or None if undecided, optimum of ``a``,
    whether the time cap stopped it, node work used)."""
    n, m = share.shape
    edges = graph.edges()
    arcs = np.vstack([edges, edges[:, ::-1]])
    na = len(arcs)
    nv = n + na
    h = quiet_highs(time_limit, node_limit(node_work, nv))
    upper = np.concatenate([np.ones(n), np.full(na, float(n - 1))])
    lower = np.zeros(nv)
    lower[root] = 1.0
    upper[forbidden] = 0.0
    # No flow enters the root: it is the source of the flow that reaches every unit taken.
    upper[n + np.flatnonzero(arcs[:, 1] == root)] = 0.0
    h.addVars(nv, lower, upper)
    h.changeColsIntegrality(n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger))
    if optimise is not None:
        a, sign = optimise
        cost = np.zeros(nv)
        cost[:n] = -sign * share[:, a]
        h.changeColsCost(nv, np.arange(nv, dtype=np.int32), cost)
    inf = highspy.kHighsInf
    rows = RowBuffer()
    add = rows.add

    for a in range(m):
        if optimise is not None and optimise[0] == a:
            continue
        add(
            list(range(n)),
            share[:, a].tolist(),
            (1 - tolerance[a]) * target[a],
            (1 + tolerance[a]) * target[a],
        )
    into: list[list[int]] = [[] for _ in range(n)]
    out: list[list[int]] = [[] for _ in range(n)]
    for e, (i, j) in enumerate(arcs.tolist()):
        out[i].append(n + e)
        into[j].append(n + e)
    for i in range(n):
        if i != root:
            # Flow conservation: every unit taken consumes one unit of flow.
            add(into[i] + out[i] + [i], [1.0] * len(into[i]) + [-1.0] * len(out[i]) + [-1.0], 0.0, 0.0)
    for e, (i, j) in enumerate(arcs.tolist()):
        add([n + e, i], [1.0, -(n - 1.0)], -inf, 0.0)
        add([n + e, j], [1.0, -(n - 1.0)], -inf, 0.0)
    rows.add_to(h)
    h.run()
    status = h.getModelStatus()
    work = max(int(h.getInfo().mip_node_count), 1) * nv
    if status == highspy.HighsModelStatus.kInfeasible:
        return False, None, False, work
    if status == highspy.HighsModelStatus.kOptimal:
        x = np.asarray(h.getSolution().col_value[:n]) > 0.5
        return True, float(share[x, optimise[0]].sum()) if optimise is not None else None, False, work
    return None, None, hit_time_limit(h), work


#: Largest anchored map on which :func:`closest_plan` runs: one binary per unit and territory.
EXACT_MAX_UNITS = 60


class ClosestPlan(NamedTuple):
    """What :func:`closest_plan` found.

    Attributes
    ----------
    proved : bool
        Whether the plan is proved the closest possible to the bands.
    labels : numpy.ndarray or None
        The best plan found (territory index per unit), None if none.
    excess : float
        Its total relative deviation beyond the bands.
    timed_out : bool
        Whether the wall-clock safety cap, not the node limit, stopped the solve.
    """

    proved: bool
    labels: np.ndarray | None
    excess: float
    timed_out: bool


def closest_plan(
    graph: UnitGraph,
    share: np.ndarray,
    target: np.ndarray,
    tolerance: np.ndarray,
    cores: list[list[int]],
    start: np.ndarray,
    time_limit: float = 60.0,
    node_work: int | None = 2_000_000,
) -> ClosestPlan:
    """The contiguous plan with the least total excess beyond the bands, every territory anchored.

    A MIP (HiGHS): unit ``i`` joins territory ``t`` (binary), each territory is connected by a
    flow from its first required unit, and the objective is the sum over territories and measures
    of the relative deviation beyond the band (the search's own measure of violation), with the
    territories' spread (squared distance to their anchor) as a small tie-break.

    Parameters
    ----------
    graph : UnitGraph
        Connected unit graph.
    share : numpy.ndarray
        ``(n, m)`` units' shares of each measure.
    target : numpy.ndarray
        ``(k, m)`` target share of each territory per measure.
    tolerance : numpy.ndarray
        ``(m,)`` relative tolerances.
    cores : list of list of int
        Required units of each territory; every territory needs at least one.
    start : numpy.ndarray
        A plan to start from (territory index per unit).
    time_limit : float
        Wall-clock safety cap in seconds for HiGHS.
    node_work : int, optional
        Effort in branch-and-bound nodes × model columns (see :func:`node_limit`; None: no
        limit). This limit, not the clock, decides where the solve stops.

    Returns
    -------
    ClosestPlan
        Whether the optimum was proved, the best plan found and its total excess.
    """
    n, m = share.shape
    k = len(cores)
    edges = graph.edges()
    arcs = np.vstack([edges, edges[:, ::-1]])
    na = len(arcs)
    nx, nf, nz = n * k, na * k, k * m
    nv = nx + nf + nz
    h = quiet_highs(time_limit, node_limit(node_work, nv))
    lower = np.zeros(nv)
    upper = np.concatenate([np.ones(nx), np.full(nf, float(n - 1)), np.full(nz, np.inf)])
    roots = [core[0] for core in cores]
    for t, core in enumerate(cores):
        for u in core:
            lower[u * k + t] = 1.0
            upper[[u * k + s for s in range(k) if s != t]] = 0.0
        upper[nx + np.flatnonzero(arcs[:, 1] == roots[t]) * k + t] = 0.0
    h.addVars(nv, lower, upper)
    h.changeColsIntegrality(nx, np.arange(nx, dtype=np.int32), np.full(nx, highspy.HighsVarType.kInteger))
    xy = graph.xy - graph.xy.mean(axis=0)
    xy = xy / max(float(np.sqrt((xy**2).sum(axis=1).mean())), 1e-12)
    spread = ((xy[:, None, :] - xy[roots][None, :, :]) ** 2).sum(axis=2)
    cost = np.zeros(nv)
    cost[:nx] = 1e-4 * (spread * share.mean(axis=1)[:, None]).ravel() / k
    cost[nx + nf :] = 1.0
    h.changeColsCost(nv, np.arange(nv, dtype=np.int32), cost)
    inf = highspy.kHighsInf
    rows = RowBuffer()
    add = rows.add

    for i in range(n):
        add([i * k + t for t in range(k)], [1.0] * k, 1.0, 1.0)
    for t in range(k):
        members = [i * k + t for i in range(n)]
        for a in range(m):
            # Relative load minus one lies within ±(tolerance + excess).
            rel = (share[:, a] / target[t, a]).tolist()
            z = nx + nf + t * m + a
            add([*members, z], [*rel, -1.0], -inf, 1.0 + tolerance[a])
            add([*members, z], [*rel, 1.0], 1.0 - tolerance[a], inf)
    into: list[list[int]] = [[] for _ in range(n)]
    out: list[list[int]] = [[] for _ in range(n)]
    for e, (i, j) in enumerate(arcs.tolist()):
        out[i].append(e)
        into[j].append(e)
    for t in range(k):
        for i in range(n):
            if i == roots[t]:
                continue
            cols = [nx + e * k + t for e in into[i]] + [nx + e * k + t for e in out[i]] + [i * k + t]
            add(cols, [1.0] * len(into[i]) + [-1.0] * len(out[i]) + [-1.0], 0.0, 0.0)
        for e, (i, j) in enumerate(arcs.tolist()):
            add([nx + e * k + t, i * k + t], [1.0, -(n - 1.0)], -inf, 0.0)
            add([nx + e * k + t, j * k + t], [1.0, -(n - 1.0)], -inf, 0.0)
    rows.add_to(h)
    hint = highspy.HighsSolution()
    x0 = np.zeros(nx)
    x0[np.arange(n) * k + start] = 1.0
    hint.col_value = x0.tolist() + [0.0] * nf + [10.0] * nz
    hint.value_valid = True
    h.setSolution(hint)
    h.run()
    proved = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    timed_out = hit_time_limit(h)
    if h.getInfo().primal_solution_status != 2:
        return ClosestPlan(False, None, float("inf"), timed_out)
    labels = np.asarray(h.getSolution().col_value[:nx]).reshape(n, k).argmax(axis=1)
    load = np.zeros((k, m))
    np.add.at(load, labels, share)
    excess = float(np.clip(np.abs(load / target - 1.0) - tolerance, 0, None).sum())
    return ClosestPlan(proved, labels, excess, timed_out)
