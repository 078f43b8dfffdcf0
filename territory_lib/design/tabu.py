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
from territory_lib.design.tabu_scoring import SEARCH_OVER, score_moves, tabu_iterations

#: Iterations between two readings of the clock when the budget has a wall-clock cap.
CLOCK_CHECK_EVERY = 100


class TabuSearch:
    """The compiled tabu search (:func:`~territory_lib.design.tabu_scoring.tabu_iterations`) on
    top of a :class:`LocalSearch` state (which holds the plan in Python lists).

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

    def score(
        self, tabu_until: np.ndarray, iteration: int, current: tuple[float, float], best: tuple[float, float]
    ) -> tuple[np.ndarray, ...]:
        """All boundary moves of the plan as it stands, scored with ``ls.weights``, as one iteration
        of :meth:`run` scores them (to inspect a search, and to test the scoring).

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

        The iterations run compiled (:func:`~territory_lib.design.tabu_scoring.tabu_iterations`);
        with a wall-clock cap on the budget, they run in slices of :data:`CLOCK_CHECK_EVERY`
        iterations with the clock read in between.

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
        self.load_state()
        current_obj = ls.objective()
        current_viol = ls.violation()
        # Plans are ranked by band violation first, then objective: the best plan kept is the
        # best balanced one even when this phase trades balance for shape along the way.
        values = np.array([current_viol, current_obj, round(current_viol, 12), current_obj, ls.disrupted])
        counters = np.array([0, 0, budget.spent, 0], dtype=np.int64)
        best_labels = self.labels.copy()
        tabu_until = np.zeros(ls.n, dtype=np.int64)
        wts = ls.weights
        scoring = (
            np.array([wts.violation, wts.pull, wts.zone, wts.pp, wts.disruption], dtype=float),
            np.array([wts.hard_band, ls.polygons and wts.pp, wts.inertia, ls.current is not None], bool),
            np.array([wts.inertia * ls.k, ls.inertia_ref, ls.cap], dtype=float),
        )
        step = max_iter if budget.deadline is None else CLOCK_CHECK_EVERY
        patient = -1 if feasible_patience is None else feasible_patience
        settings = np.array([0, max_iter, patience, patient, budget.limit, *tenure], dtype=np.int64)
        while True:
            settings[0] = counters[0] + step
            over = tabu_iterations(
                self.indptr, self.indices, self.es, self.share, self.target, self.tol, self.movable,
                scoring[0], scoring[1], self.uperim, self.uarea, scoring[2], self.w, self.x, self.y,
                self.q, self.current, self.dw, self.labels, self.load, self.size, self.area, self.perim,
                self.sw, self.sx, self.sy, self.sq, ls._owner, ls._next, tabu_until, best_labels,
                values, counters, settings, rng,
            )  # fmt: skip
            budget.spent = int(counters[2])
            if over == SEARCH_OVER or budget.exhausted():
                break
        self._store(float(values[4]), int(counters[3]))
        for unit in np.flatnonzero(best_labels != self.labels).tolist():
            move_unit(ls, unit, int(best_labels[unit]))

    def _store(self, disrupted: float, moves: int) -> None:
        """Hand the plan the compiled iterations left in the arrays back to ``ls`` (its lists)."""
        ls = self.ls
        ls.labels = self.labels.tolist()
        ls.label_array[:] = self.labels
        ls.load = self.load.tolist()
        ls.size = self.size.tolist()
        ls.area = self.area.tolist()
        ls.perim = self.perim.tolist()
        ls.sw = self.sw.tolist()
        ls.sx = self.sx.tolist()
        ls.sy = self.sy.tolist()
        ls.sq = self.sq.tolist()
        ls.disrupted = disrupted
        ls.moves += moves


def warm_up() -> None:
    """Run a tabu search on a three-unit plan, so that numba's start-up (0.4 s) and the loading of
    the compiled search happen here, in a kernel started ahead (:mod:`territory_lib.kernels`),
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
    TabuSearch(ls, graph).run(Weights(), np.random.default_rng(0), WorkBudget(limit=10), max_iter=2)
    contiguity.warm_up()
    recombine_scoring.warm_up()
