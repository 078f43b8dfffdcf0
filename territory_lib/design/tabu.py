"""Tabu search over single-unit moves, every candidate move scored at once with numpy.

Each iteration scores all moves of a boundary unit to an adjacent territory, takes the best one
that is allowed (not tabu unless it beats the best plan, unit movable, its territory stays
connected and non-empty, disruption cap held) even when it worsens the plan, and forbids moving
that unit again for a while. Worsening moves let the search leave the local optima where coarse
units trap a greedy search; the best plan seen is kept.
"""

from __future__ import annotations

import math

import numpy as np

from territory_lib.design.budget import WorkBudget
from territory_lib.design.graph import UnitGraph
from territory_lib.design.improve import LocalSearch, Weights, move_unit


class TabuSearch:
    """Vectorised move scoring on top of a :class:`LocalSearch` state (which holds the plan).

    Parameters
    ----------
    ls : LocalSearch
        Plan state; it is updated in place, and left at the best plan found.
    graph : UnitGraph
        The graph ``ls`` was built on.
    """

    def __init__(self, ls: LocalSearch, graph: UnitGraph) -> None:
        self.ls = ls
        self.rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
        self.cols = graph.indices
        self.es = graph.shared
        self.share = np.asarray(ls.share, dtype=float)
        self.target = np.asarray(ls.target, dtype=float)
        self.tol = np.asarray(ls.tol, dtype=float)
        self.movable = np.asarray(ls.movable, dtype=bool)
        self.uperim = graph.perimeter
        self.uarea = graph.area
        self.w = np.asarray(ls.w)
        self.x = np.asarray(ls.x)
        self.y = np.asarray(ls.y)
        self.q = np.asarray(ls.q)
        self.current = None if ls.current is None else np.asarray(ls.current)
        self.dw = np.asarray(ls.dw)

    def _balance(self, load: np.ndarray, tgt: np.ndarray, wts: Weights) -> tuple[np.ndarray, np.ndarray]:
        # Callers run under np.errstate(all="ignore"): zero targets are masked by the where.
        dev = np.where(tgt > 0, np.abs(load / tgt - 1.0), 0.0)
        viol = np.clip(dev - self.tol, 0, None).sum(axis=1)
        pull = (np.clip(dev - wts.zone * self.tol, 0, None) ** 2).sum(axis=1)
        return viol, wts.violation * viol + wts.pull * pull

    def _moves(self) -> tuple[np.ndarray, ...]:
        """All (unit, from, to, shared with from, shared with to) boundary moves."""
        ls = self.ls
        labels = np.asarray(ls.labels)
        k = ls.k
        lr, lc = labels[self.rows], labels[self.cols]
        same = lr == lc
        shared_in = np.bincount(self.rows[same], weights=self.es[same], minlength=ls.n)
        cross = ~same
        key = self.rows[cross] * k + lc[cross]
        uniq, inverse = np.unique(key, return_inverse=True)
        shared_out = np.bincount(inverse, weights=self.es[cross], minlength=len(uniq))
        j = uniq // k
        b = uniq % k
        a = labels[j]
        return j, a, b, shared_in[j], shared_out

    def _deltas(self, j: np.ndarray, a: np.ndarray, b: np.ndarray, sa: np.ndarray, sb: np.ndarray) -> tuple:
        # Every term is computed elementwise for the k territories as they stand, the moves' source
        # territories and their destinations, stacked in one array so each numpy call runs once.
        ls = self.ls
        wts = ls.weights
        k, nj = ls.k, len(j)
        load = np.asarray(ls.load)
        sj = self.share[j]
        both = np.concatenate([a, b])
        viol, cost = self._balance(
            np.concatenate([load, load[a] - sj, load[b] + sj]),
            np.concatenate([self.target, self.target[both]]),
            wts,
        )
        viol0, cost0 = viol[:k], cost[:k]
        delta = cost[k : k + nj] + cost[k + nj :] - cost0[a] - cost0[b]
        dviol = viol[k : k + nj] + viol[k + nj :] - viol0[a] - viol0[b]
        if ls.polygons and wts.pp:
            area = np.asarray(ls.area)
            perim = np.asarray(ls.perim)
            lj, aj = self.uperim[j], self.uarea[j]
            ar = np.concatenate([area, area[a] - aj, area[b] + aj])
            pe = np.concatenate([perim, perim[a] - lj + 2 * sa, perim[b] + lj - 2 * sb])
            pp = np.where(pe > 0, 4 * math.pi * ar / pe**2, 0.0)
            delta -= wts.pp * (pp[k : k + nj] + pp[k + nj :] - pp[:k][a] - pp[:k][b])
        if wts.inertia:
            sw, sx, sy, sq = (np.asarray(v) for v in (ls.sw, ls.sx, ls.sy, ls.sq))
            w = self.w[j]
            dx, dy, dq = w * self.x[j], w * self.y[j], w * self.q[j]
            i0 = np.where(sw > 1e-15, sq - (sx**2 + sy**2) / sw, 0.0)
            # The unit leaves its territory (sign -1) and joins the destination (sign +1).
            sign = np.repeat([-1.0, 1.0], nj)
            w2, dx2, dy2, dq2 = (np.concatenate([v, v]) for v in (w, dx, dy, dq))
            s = sw[both] + sign * w2
            moved_x = sx[both] + sign * dx2
            moved_y = sy[both] + sign * dy2
            moved = np.where(s > 1e-15, sq[both] + sign * dq2 - (moved_x**2 + moved_y**2) / s, 0.0)
            di = moved[:nj] + moved[nj:] - i0[a] - i0[b]
            delta += wts.inertia * ls.k * di / ls.inertia_ref
        ddis = np.zeros(len(j))
        if self.current is not None:
            cur = self.current[j]
            ddis = self.dw[j] * ((cur != b).astype(float) - (cur != a))
            delta += wts.disruption * ddis
        return delta, dviol, ddis

    def run(
        self,
        weights: Weights,
        rng: np.random.Generator,
        budget: WorkBudget,
        max_iter: int = 2000,
        patience: int = 300,
        tenure: tuple[int, int] = (5, 15),
        feasible_patience: int | None = None,
    ) -> None:
        """Tabu search until ``patience`` iterations pass without a better plan, or the budget is spent.

        Parameters
        ----------
        weights : Weights
            Objective weights of this phase.
        rng : numpy.random.Generator
            Random source (tie-breaking noise and tabu tenures).
        budget : WorkBudget
            Work budget, charged with every candidate move scored (all boundary moves, each
            iteration).
        max_iter : int
            Iteration cap.
        patience : int
            Iterations without a new best plan before stopping.
        tenure : tuple of int
            Range of iterations a moved unit stays tabu.
        feasible_patience : int, optional
            Patience once the best plan is within every band (default ``patience``): a balance
            phase need not polish a plan the shape phase reworks anyway.
        """
        ls = self.ls
        ls.weights = weights
        n = ls.n
        tabu_until = np.zeros(n, dtype=np.int64)
        size = np.asarray(ls.size)
        current_obj = ls.objective()
        current_viol = ls.violation()
        # Plans are ranked by band violation first, then objective: the best plan kept is the
        # best balanced one even when this phase trades balance for shape along the way.
        best = (round(current_viol, 12), current_obj)
        best_labels = list(ls.labels)
        since_best = 0
        # Whether a territory stays connected without a unit depends on that territory's units
        # alone: verdicts are kept per territory until a move changes it (the best candidates
        # are often the same cut units iteration after iteration).
        verdicts: dict[int, dict[int, bool]] = {}
        for it in range(max_iter):
            limit = patience if feasible_patience is None or best[0] > 0 else feasible_patience
            if since_best >= limit or budget.exhausted():
                break
            j, a, b, sa, sb = self._moves()
            if len(j) == 0:
                break
            budget.spend(len(j))
            with np.errstate(all="ignore"):
                delta, dviol, ddis = self._deltas(j, a, b, sa, sb)
            size = np.asarray(ls.size)
            allowed = self.movable[j] & (size[a] > 1)
            if weights.hard_band:
                allowed &= dviol <= 1e-12
            if self.current is not None and math.isfinite(ls.cap):
                allowed &= (ddis <= 0) | (ls.disrupted + ddis <= ls.cap + 1e-12)
            new_viol = np.round(current_viol + dviol, 12)
            aspire = (new_viol < best[0]) | ((new_viol == best[0]) & (current_obj + delta < best[1] - 1e-12))
            allowed &= (tabu_until[j] <= it) | aspire
            if not allowed.any():
                break
            idx = np.flatnonzero(allowed)
            noisy = delta[idx] + rng.uniform(0, 1e-9, len(idx))
            moved = False
            for pick in idx[np.argsort(noisy, kind="stable")][:50].tolist():
                unit, frm = int(j[pick]), int(a[pick])
                known = verdicts.setdefault(frm, {})
                stays = known.get(unit)
                if stays is None:
                    stays = known[unit] = ls._stays_connected(unit, frm)
                if stays:
                    verdicts.pop(frm, None)
                    verdicts.pop(int(b[pick]), None)
                    ls._apply(unit, frm, int(b[pick]), float(sa[pick]), float(sb[pick]))
                    current_obj += float(delta[pick])
                    current_viol = max(current_viol + float(dviol[pick]), 0.0)
                    tabu_until[unit] = it + int(rng.integers(tenure[0], tenure[1] + 1))
                    moved = True
                    break
            if not moved:
                break
            key = (round(current_viol, 12), current_obj)
            if key[0] < best[0] or (key[0] == best[0] and key[1] < best[1] - 1e-12):
                best = key
                best_labels = list(ls.labels)
                since_best = 0
            else:
                since_best += 1
        if ls.labels != best_labels:
            for unit, lab in enumerate(best_labels):
                if ls.labels[unit] != lab:
                    move_unit(ls, unit, lab)
