"""Local search over boundary units: restore balance, then improve compactness, keeping contiguity.

A move hands one boundary unit to an adjacent territory. It is allowed only when the unit is not
locked, its territory stays non-empty and connected (checked around the unit, then by a bounded
search), and the disruption cap holds. Moves are scored by an objective of band violation, a
quadratic pull toward the targets, Polsby-Popper and moment of inertia, each updated in O(degree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from territory_lib.design.budget import WorkBudget
from territory_lib.design.contiguity import stays_connected
from territory_lib.design.graph import UnitGraph

FOUR_PI = 4.0 * math.pi


@dataclass
class Weights:
    """Weights of the objective terms for one phase of the search.

    Attributes
    ----------
    violation : float
        Cost per unit of relative deviation beyond a measure's band.
    pull : float
        Cost of the squared relative deviation beyond ``zone`` × tolerance (spreads excess load).
    zone : float
        Share of the tolerance inside which no pull applies.
    pp : float
        Reward per unit of Polsby-Popper summed over territories.
    inertia : float
        Cost of the moment of inertia, scaled so the whole plan's initial inertia costs ``k``.
    disruption : float
        Cost per unit of disruption share (realignment).
    hard_band : bool
        Reject moves that increase the band violation.
    """

    violation: float = 100.0
    pull: float = 20.0
    zone: float = 0.0
    pp: float = 1.0
    inertia: float = 0.3
    disruption: float = 0.0
    hard_band: bool = False


@dataclass(frozen=True)
class UnitArrays:
    """A search's fixed per-unit data as numpy arrays (the search itself keeps Python lists).

    ``indptr, indices, shared``: the adjacency in CSR form with shared border lengths, and
    ``rows`` the unit of each entry; ``share`` ``(n, m)``; ``perim, area``; inertia weight ``w``
    and scaled coordinates ``x, y, q``; ``movable``; ``current`` (or None) and disruption
    weight ``dw``.
    """

    indptr: np.ndarray
    rows: np.ndarray
    indices: np.ndarray
    shared: np.ndarray
    share: np.ndarray
    perim: np.ndarray
    area: np.ndarray
    w: np.ndarray
    x: np.ndarray
    y: np.ndarray
    q: np.ndarray
    movable: np.ndarray
    current: np.ndarray | None
    dw: np.ndarray


class LocalSearch:
    """Boundary-unit local search on a plan; state is updated in place move by move.

    Parameters
    ----------
    graph : UnitGraph
        Connected unit graph.
    labels : numpy.ndarray
        Starting plan, territory index per unit; every territory connected and non-empty.
    share : numpy.ndarray
        ``(n, m)`` each unit's share of each measure's total.
    target : numpy.ndarray
        ``(k, m)`` target share of each territory per measure.
    tolerance : numpy.ndarray
        ``(m,)`` relative tolerance per measure.
    movable : numpy.ndarray
        Boolean per unit; locked units and anchors are not movable.
    current : numpy.ndarray, optional
        Current territory index per unit (-1 where the unit had none), for disruption.
    disruption_weight : numpy.ndarray, optional
        Each unit's share of the disruption measure (sums to 1).
    disruption_cap : float, optional
        Largest allowed disruption share.
    inertia_weight : numpy.ndarray, optional
        Unit weights of the moment of inertia.
    """

    def __init__(
        self,
        graph: UnitGraph,
        labels: np.ndarray,
        share: np.ndarray,
        target: np.ndarray,
        tolerance: np.ndarray,
        movable: np.ndarray,
        *,
        current: np.ndarray | None = None,
        disruption_weight: np.ndarray | None = None,
        disruption_cap: float | None = None,
        inertia_weight: np.ndarray | None = None,
    ) -> None:
        self.n = graph.n
        self.k = target.shape[0]
        self.m = share.shape[1]
        self.nbrs = graph.neighbour_lists()
        sh = graph.shared.tolist()
        ptr = graph.indptr.tolist()
        self.shared = [sh[ptr[i] : ptr[i + 1]] for i in range(self.n)]
        self.polygons = graph.polygons
        self.unit_perim = graph.perimeter.tolist()
        self.unit_area = graph.area.tolist()
        self.share = share.tolist()
        self.target = target.tolist()
        self.tol = [float(t) for t in tolerance]
        self.movable = movable.tolist()
        self.labels = [int(x) for x in labels]
        # The same labels as an array, and scratch space, for the compiled contiguity check.
        self.label_array = np.asarray(self.labels, dtype=np.int64)
        self._indptr = np.ascontiguousarray(graph.indptr, dtype=np.int64)
        self._indices = np.ascontiguousarray(graph.indices, dtype=np.int64)
        self._owner = np.full(self.n, -2, dtype=np.int64)
        self._next = np.empty(self.n, dtype=np.int64)
        k = self.k
        self.size = np.bincount(labels, minlength=k).tolist()
        self.load = [[float(v) for v in row] for row in _sum_rows(share, labels, k)]
        area = np.bincount(labels, weights=graph.area, minlength=k)
        rows = np.repeat(np.arange(self.n), np.diff(graph.indptr))
        internal = labels[rows] == labels[graph.indices]
        inner = np.bincount(labels[rows[internal]], weights=graph.shared[internal], minlength=k)
        self.area = area.tolist()
        self.perim = (np.bincount(labels, weights=graph.perimeter, minlength=k) - inner).tolist()
        # Inertia in units of the mean squared distance so the scale does not depend on the CRS.
        w = np.ones(self.n) if inertia_weight is None else np.asarray(inertia_weight, float)
        xy = graph.xy - graph.xy.mean(axis=0)
        spread = float((xy**2).sum(axis=1).mean()) or 1.0
        xy = xy / math.sqrt(spread)
        self.w = w.tolist()
        self.x = xy[:, 0].tolist()
        self.y = xy[:, 1].tolist()
        self.q = (xy**2).sum(axis=1).tolist()
        self.sw = np.bincount(labels, weights=w, minlength=k).tolist()
        self.sx = np.bincount(labels, weights=w * xy[:, 0], minlength=k).tolist()
        self.sy = np.bincount(labels, weights=w * xy[:, 1], minlength=k).tolist()
        self.sq = np.bincount(labels, weights=w * (xy**2).sum(axis=1), minlength=k).tolist()
        self.inertia_ref = max(sum(self._inertia(t) for t in range(k)), 1e-12)
        self.current = None if current is None else [int(c) for c in current]
        dw = np.zeros(self.n) if disruption_weight is None else np.asarray(disruption_weight, float)
        self.dw = dw.tolist()
        self.cap = math.inf if disruption_cap is None else float(disruption_cap)
        self.disrupted = 0.0
        if self.current is not None:
            self.disrupted = float(
                sum(d for d, c, lab in zip(self.dw, self.current, self.labels, strict=True) if c != lab)
            )
        # The same per-unit data as numpy arrays, for the vectorised moves (recombination): a
        # conversion of the lists per move would cost more than the move on a map of 30,000 units.
        self.arrays = UnitArrays(
            indptr=graph.indptr,
            rows=rows,
            indices=graph.indices,
            shared=graph.shared,
            share=np.asarray(self.share, dtype=float),
            perim=np.asarray(self.unit_perim, dtype=float),
            area=np.asarray(self.unit_area, dtype=float),
            w=np.asarray(self.w, dtype=float),
            x=np.asarray(self.x, dtype=float),
            y=np.asarray(self.y, dtype=float),
            q=np.asarray(self.q, dtype=float),
            movable=np.asarray(self.movable, dtype=bool),
            current=None if self.current is None else np.asarray(self.current, dtype=np.int64),
            dw=np.asarray(self.dw, dtype=float),
        )
        self.weights = Weights()
        self.moves = 0
        #: Candidates scored by :meth:`sweep` and by recombination (work units, see
        #: :mod:`territory_lib.design.budget`).
        self.evaluations = 0

    # ----- objective pieces -------------------------------------------------------------------
    def _inertia(self, t: int, dw: float = 0.0, dx: float = 0.0, dy: float = 0.0, dq: float = 0.0) -> float:
        sw = self.sw[t] + dw
        if sw <= 1e-15:
            return 0.0
        sx = self.sx[t] + dx
        sy = self.sy[t] + dy
        return self.sq[t] + dq - (sx * sx + sy * sy) / sw

    def _balance_cost(self, t: int, load: list[float]) -> tuple[float, float]:
        """(violation, weighted cost) of territory ``t`` carrying ``load``."""
        wts = self.weights
        viol = 0.0
        cost = 0.0
        tgt = self.target[t]
        for a in range(self.m):
            ta = tgt[a]
            if ta <= 0:
                continue
            dev = abs(load[a] / ta - 1.0)
            over = dev - self.tol[a]
            if over > 0:
                viol += over
            pull = dev - wts.zone * self.tol[a]
            if pull > 0:
                cost += wts.pull * pull * pull
        return viol, cost + wts.violation * viol

    def _pp(self, area: float, perim: float) -> float:
        return FOUR_PI * area / (perim * perim) if perim > 0 else 0.0

    def violation(self) -> float:
        """Total relative deviation beyond the bands, summed over territories and measures."""
        return sum(self._balance_cost(t, self.load[t])[0] for t in range(self.k))

    def objective(self) -> float:
        """Current value of the weighted objective (lower is better)."""
        wts = self.weights
        total = sum(self._balance_cost(t, self.load[t])[1] for t in range(self.k))
        if self.polygons:
            total -= wts.pp * sum(self._pp(self.area[t], self.perim[t]) for t in range(self.k))
        total += wts.inertia * self.k * sum(self._inertia(t) for t in range(self.k)) / self.inertia_ref
        return total + wts.disruption * self.disrupted

    # ----- contiguity ---------------------------------------------------------------------------
    def _stays_connected(self, j: int, a: int) -> bool:
        """Whether territory ``a`` stays connected without unit ``j`` (compiled search)."""
        return bool(
            stays_connected(self._indptr, self._indices, self.label_array, j, a, self._owner, self._next)
        )

    # ----- moves --------------------------------------------------------------------------------
    def _standing(self, t: int, now: dict[int, tuple[float, float, float, float]]) -> tuple[float, ...]:
        """(violation, balance cost, Polsby-Popper, inertia) of territory ``t`` as it stands.

        Kept in ``now`` by the caller until a move changes ``t`` (the weights must not change).
        """
        terms = now.get(t)
        if terms is None:
            viol, cost = self._balance_cost(t, self.load[t])
            terms = now[t] = (viol, cost, self._pp(self.area[t], self.perim[t]), self._inertia(t))
        return terms

    def _delta(
        self,
        j: int,
        a: int,
        b: int,
        shared_a: float,
        shared_b: float,
        now: dict[int, tuple[float, float, float, float]] | None = None,
    ) -> tuple[float, float]:
        """(objective change, violation change) of moving unit ``j`` from ``a`` to ``b``.

        ``now`` caches the terms of territories as they stand (see :meth:`_standing`).
        """
        wts = self.weights
        sj = self.share[j]
        la, lb = self.load[a], self.load[b]
        new_a = [la[x] - sj[x] for x in range(self.m)]
        new_b = [lb[x] + sj[x] for x in range(self.m)]
        va0, ca0, pp_a, inertia_a = self._standing(a, {} if now is None else now)
        vb0, cb0, pp_b, inertia_b = self._standing(b, {} if now is None else now)
        va1, ca1 = self._balance_cost(a, new_a)
        vb1, cb1 = self._balance_cost(b, new_b)
        delta = ca1 + cb1 - ca0 - cb0
        dviol = va1 + vb1 - va0 - vb0
        if self.polygons and wts.pp:
            lj, aj = self.unit_perim[j], self.unit_area[j]
            pa = self._pp(self.area[a] - aj, self.perim[a] - lj + 2 * shared_a)
            pb = self._pp(self.area[b] + aj, self.perim[b] + lj - 2 * shared_b)
            delta -= wts.pp * (pa + pb - pp_a - pp_b)
        if wts.inertia:
            w = self.w[j]
            dx, dy, dq = w * self.x[j], w * self.y[j], w * self.q[j]
            di = self._inertia(a, -w, -dx, -dy, -dq) + self._inertia(b, w, dx, dy, dq) - inertia_a - inertia_b
            delta += wts.inertia * self.k * di / self.inertia_ref
        if self.current is not None and wts.disruption:
            cur = self.current[j]
            delta += wts.disruption * self.dw[j] * ((cur != b) - (cur != a))
        return delta, dviol

    def _apply(self, j: int, a: int, b: int, shared_a: float, shared_b: float) -> None:
        sj = self.share[j]
        la, lb = self.load[a], self.load[b]
        for x in range(self.m):
            la[x] -= sj[x]
            lb[x] += sj[x]
        lj, aj = self.unit_perim[j], self.unit_area[j]
        self.area[a] -= aj
        self.area[b] += aj
        self.perim[a] += 2 * shared_a - lj
        self.perim[b] += lj - 2 * shared_b
        w = self.w[j]
        for arr, v in (
            (self.sw, w),
            (self.sx, w * self.x[j]),
            (self.sy, w * self.y[j]),
            (self.sq, w * self.q[j]),
        ):
            arr[a] -= v
            arr[b] += v
        self.size[a] -= 1
        self.size[b] += 1
        if self.current is not None:
            cur = self.current[j]
            self.disrupted += self.dw[j] * ((cur != b) - (cur != a))
        self.labels[j] = b
        self.label_array[j] = b
        self.moves += 1

    def sweep(self, order: list[int], eps: float = 1e-12) -> int:
        """Try every unit in ``order`` once; apply its best improving move. Returns moves applied."""
        labels = self.labels
        nbrs = self.nbrs
        shared = self.shared
        movable = self.movable
        hard = self.weights.hard_band
        applied = 0
        # Terms of each territory as it stands, until a move changes it (weights are fixed here).
        now: dict[int, tuple[float, float, float, float]] = {}
        for j in order:
            if not movable[j]:
                continue
            a = labels[j]
            nb = nbrs[j]
            sh = shared[j]
            acc: dict[int, float] = {}
            for v, s in zip(nb, sh, strict=True):
                acc[labels[v]] = acc.get(labels[v], 0.0) + s
            if len(acc) == 1 and a in acc:
                continue
            if self.size[a] <= 1:
                continue
            shared_a = acc.get(a, 0.0)
            self.evaluations += len(acc) - (a in acc)
            best_b, best_d = -1, -eps
            for b, shared_b in acc.items():
                if b == a:
                    continue
                d, dv = self._delta(j, a, b, shared_a, shared_b, now)
                if d < best_d and not (hard and dv > 1e-12):
                    if self.current is not None:
                        cur = self.current[j]
                        dd = self.dw[j] * ((cur != b) - (cur != a))
                        if dd > 0 and self.disrupted + dd > self.cap + 1e-12:
                            continue
                    best_b, best_d = b, d
            if best_b < 0 or not self._stays_connected(j, a):
                continue
            now.pop(a, None)
            now.pop(best_b, None)
            self._apply(j, a, best_b, shared_a, acc[best_b])
            applied += 1
        return applied

    def boundary_units(self) -> list[int]:
        """Units with at least one neighbour in another territory."""
        arrays = self.arrays
        labels = np.asarray(self.labels)
        rows = arrays.rows
        return np.unique(rows[labels[rows] != labels[arrays.indices]]).tolist()

    def run(
        self, weights: Weights, rng: np.random.Generator, budget: WorkBudget, max_sweeps: int = 200
    ) -> None:
        """Sweep boundary units in random order until no move improves or the work budget is spent.

        The budget is checked between sweeps and charged with every candidate move scored.
        """
        self.weights = weights
        for _ in range(max_sweeps):
            if budget.exhausted():
                return
            order = self.boundary_units()
            rng.shuffle(order)
            before = self.evaluations
            applied = self.sweep(order)
            budget.spend(self.evaluations - before)
            if applied == 0:
                return

    def labels_array(self) -> np.ndarray:
        """Current plan as an integer array."""
        return np.asarray(self.labels, dtype=np.int64)


def _sum_rows(values: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Sum the rows of ``values`` per label into a ``(k, m)`` array."""
    out = np.zeros((k, values.shape[1]))
    np.add.at(out, labels, values)
    return out


def move_unit(ls: LocalSearch, j: int, b: int) -> None:
    """Move unit ``j`` to territory ``b`` in ``ls`` without any check (used by recombination)."""
    a = ls.labels[j]
    if a == b:
        return
    shared_a = shared_b = 0.0
    for v, s in zip(ls.nbrs[j], ls.shared[j], strict=True):
        lab = ls.labels[v]
        if lab == a:
            shared_a += s
        elif lab == b:
            shared_b += s
    ls._apply(j, a, b, shared_a, shared_b)
