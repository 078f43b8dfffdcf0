"""Tabu search over single-unit moves, every candidate move scored at once by compiled code.

Each iteration scores all moves of a boundary unit to an adjacent territory, takes the best one
that is allowed (not tabu unless it beats the best plan, unit movable, its territory stays
connected and non-empty, disruption cap held) even when it worsens the plan, and forbids moving
that unit again for a while. Worsening moves let the search leave the local optima where coarse
units trap a greedy search; the best plan seen is kept.
"""

from __future__ import annotations

import numpy as np

from territory_lib.design import contiguity, recombine_scoring
from territory_lib.design.budget import WorkBudget
from territory_lib.design.graph import UnitGraph
from territory_lib.design.improve import LocalSearch, Weights, move_unit
from territory_lib.design.tabu_scoring import score_moves


class TabuSearch:
    """Compiled move scoring (:func:`~territory_lib.design.tabu_scoring.score_moves`) on top of a
    :class:`LocalSearch` state (which holds the plan).

    Parameters
    ----------
    ls : LocalSearch
        Plan state; it is updated in place, and left at the best plan found.
    graph : UnitGraph
        The graph ``ls`` was built on.
    """

    def __init__(self, ls: LocalSearch, graph: UnitGraph) -> None:
        self.ls = ls
        # Copies of the graph's arrays (which may be read-only): numba compiles, and caches, one
        # version of the scoring per combination of array types, writable or not.
        self.indptr = np.array(graph.indptr, dtype=np.int64)
        self.indices = np.array(graph.indices, dtype=np.int64)
        self.es = np.array(graph.shared, dtype=float)
        self.share = np.asarray(ls.share, dtype=float)
        self.target = np.asarray(ls.target, dtype=float)
        self.tol = np.asarray(ls.tol, dtype=float)
        self.movable = np.asarray(ls.movable, dtype=bool)
        self.uperim = np.array(graph.perimeter, dtype=float)
        self.uarea = np.array(graph.area, dtype=float)
        self.w = np.asarray(ls.w, dtype=float)
        self.x = np.asarray(ls.x, dtype=float)
        self.y = np.asarray(ls.y, dtype=float)
        self.q = np.asarray(ls.q, dtype=float)
        self.current = np.asarray(ls.current if ls.current is not None else [], dtype=np.int64)
        self.dw = np.asarray(ls.dw, dtype=float)
        self.load_state()

    def load_state(self) -> None:
        """Copy the plan's state from ``ls`` (its Python lists) into the arrays the scoring reads."""
        ls = self.ls
        self.labels = np.asarray(ls.labels, dtype=np.int64)
        self.load = np.asarray(ls.load, dtype=float)
        self.size = np.asarray(ls.size, dtype=np.int64)
        self.area = np.asarray(ls.area, dtype=float)
        self.perim = np.asarray(ls.perim, dtype=float)
        self.sw = np.asarray(ls.sw, dtype=float)
        self.sx = np.asarray(ls.sx, dtype=float)
        self.sy = np.asarray(ls.sy, dtype=float)
        self.sq = np.asarray(ls.sq, dtype=float)

    def _moved(self, unit: int, frm: int, to: int) -> None:
        """Copy the two territories a move changed (values, not arithmetic: the lists stay the truth)."""
        ls = self.ls
        self.labels[unit] = to
        for t in (frm, to):
            self.load[t] = ls.load[t]
            self.size[t] = ls.size[t]
            self.area[t] = ls.area[t]
            self.perim[t] = ls.perim[t]
            self.sw[t] = ls.sw[t]
            self.sx[t] = ls.sx[t]
            self.sy[t] = ls.sy[t]
            self.sq[t] = ls.sq[t]

    def score(
        self, tabu_until: np.ndarray, iteration: int, current: tuple[float, float], best: tuple[float, float]
    ) -> tuple[np.ndarray, ...]:
        """All boundary moves of the plan as it stands, scored with ``ls.weights``.

        ``current`` and ``best`` are (violation, objective) of the current and the best plan (the
        best one's violation rounded to 12 decimals). Returns the arrays of
        :func:`~territory_lib.design.tabu_scoring.score_moves`: unit, source, destination, border
        shared with each, objective, violation and disruption changes, positions of allowed moves.
        """
        ls = self.ls
        wts = ls.weights
        weights = np.array([wts.violation, wts.pull, wts.zone, wts.pp, wts.disruption], dtype=float)
        return score_moves(
            self.indptr,
            self.indices,
            self.es,
            self.labels,
            self.share,
            self.target,
            self.tol,
            self.load,
            self.size,
            self.movable,
            weights,
            bool(wts.hard_band),
            bool(ls.polygons and wts.pp),
            self.uperim,
            self.uarea,
            self.area,
            self.perim,
            bool(wts.inertia),
            float(wts.inertia * ls.k),
            float(ls.inertia_ref),
            self.w,
            self.x,
            self.y,
            self.q,
            self.sw,
            self.sx,
            self.sy,
            self.sq,
            ls.current is not None,
            self.current,
            self.dw,
            float(ls.disrupted),
            float(ls.cap),
            tabu_until,
            iteration,
            float(current[0]),
            float(current[1]),
            float(best[0]),
            float(best[1]),
        )

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
        self.load_state()
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
            j, a, b, sa, sb, delta, dviol, _, idx = self.score(
                tabu_until, it, (current_viol, current_obj), best
            )
            if len(j) == 0:
                break
            budget.spend(len(j))
            if len(idx) == 0:
                break
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
                    self._moved(unit, frm, int(b[pick]))
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


def warm_up() -> None:
    """Score the moves of a three-unit plan, so that numba's start-up (0.4 s) and the loading of
    the compiled scoring happen here, in a kernel started ahead (:mod:`territory_lib.kernels`),
    rather than in the step's first design. The arrays have the types of every real search."""
    graph = UnitGraph(
        ids=np.array(["a", "b", "c"]),
        indptr=np.array([0, 1, 3, 4]),
        indices=np.array([1, 0, 2, 1]),
        shared=np.ones(4),
        perimeter=np.full(3, 4.0),
        area=np.ones(3),
        xy=np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]),
        polygons=True,
    )
    share, target = np.full((3, 1), 1 / 3), np.full((2, 1), 0.5)
    ls = LocalSearch(graph, np.array([0, 0, 1]), share, target, np.array([0.1]), np.ones(3, bool))
    TabuSearch(ls, graph).score(np.zeros(3, dtype=np.int64), 0, (0.0, 0.0), (0.0, 0.0))
    contiguity.warm_up()
    recombine_scoring.warm_up()
