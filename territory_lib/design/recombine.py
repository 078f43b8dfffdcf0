"""Recombination move: merge two adjacent territories and split the union again, better balanced.

For two centre units ``c1, c2`` of the union, every unit is ranked by ``d1 - d2`` (graph distances
to the centres); every prefix of that ranking is connected, and so is every suffix (a prefix is the
cell of ``c1`` in a shortest-path growth where ``c1`` starts ahead). So each centre pair yields
``|union| - 1`` contiguous, Voronoi-like splits, scored all at once with cumulative sums of load,
perimeter and inertia. Many centre pairs (and perturbed edge lengths) give a rich choice; the best
split replaces the pair when it lowers the objective. This large move reaches plans that single-unit
moves cannot when units are coarse. Each split scored counts as one work unit in ``ls.evaluations``
(see :mod:`territory_lib.design.budget`).
"""

from __future__ import annotations

import numpy as np

from territory_lib.design import recombine_scoring
from territory_lib.design.improve import FOUR_PI, LocalSearch, move_unit


def recombine(ls: LocalSearch, a: int, b: int, rng: np.random.Generator, n_pairs: int = 16) -> bool:
    """Try to re-split territories ``a`` and ``b`` of ``ls``; apply the best split if it is better.

    Parameters
    ----------
    ls : LocalSearch
        Search state, changed in place when a better split is found.
    a, b : int
        Two adjacent territories.
    rng : numpy.random.Generator
        Random source for the centre units and edge-length noise.
    n_pairs : int
        Centre pairs tried.

    Returns
    -------
    bool
        Whether the plan changed.
    """
    labels = np.asarray(ls.labels)
    nodes = np.flatnonzero((labels == a) | (labels == b))
    nu = len(nodes)
    if nu < 3:
        return False
    arrays = ls.arrays
    local = np.full(ls.n, -1)
    local[nodes] = np.arange(nu)
    # The union's edges in the order of the adjacency lists (rows by unit, then neighbours).
    starts = arrays.indptr[nodes]
    counts = arrays.indptr[nodes + 1] - starts
    pos = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    ends = local[arrays.indices[pos]]
    inside = ends >= 0
    rows_a = np.repeat(np.arange(nu), counts)[inside]
    cols_a = ends[inside]
    shared_a = arrays.shared[pos[inside]]
    xy = np.column_stack([arrays.x[nodes], arrays.y[nodes]])
    base_len = np.maximum(np.linalg.norm(xy[rows_a] - xy[cols_a], axis=1), 1e-9)
    share = arrays.share[nodes]
    fixed = ~arrays.movable[nodes]
    old_side = labels[nodes]
    fix_a = fixed & (old_side == a)
    fix_b = fixed & (old_side == b)
    in_a_now = old_side == a
    ctx = _Context(ls, a, b, share, rows_a, cols_a, shared_a, nodes)
    now = ctx.score_sets(in_a_now[None, :])[0]
    cur = None if arrays.current is None else arrays.current[nodes]
    dw = None if arrays.current is None else arrays.dw[nodes]
    members_a = np.flatnonzero(in_a_now)
    members_b = np.flatnonzero(~in_a_now)
    fixed_a, fixed_b = np.flatnonzero(fix_a), np.flatnonzero(fix_b)
    # The edges come grouped by row, so the CSR structure is known; only the lengths change.
    reverse = _reverse_index(rows_a, cols_a, nu)
    indptr_a = np.searchsorted(rows_a, np.arange(nu + 1))
    use_disruption = cur is not None and dw is not None and bool(ls.weights.disruption)
    changed_if_a = changed_if_b = np.zeros(nu)
    if cur is not None and dw is not None and use_disruption:
        changed_if_a = dw * ((cur != a).astype(float) - (cur != old_side))
        changed_if_b = dw * ((cur != b).astype(float) - (cur != old_side))
    best_in_a = np.zeros(nu, dtype=bool)
    scored, cut = recombine_scoring.recombine_pairs(
        n_pairs, rng, base_len, reverse, indptr_a, cols_a, members_a, members_b, fixed_a, fixed_b,
        float(now - 1e-12), use_disruption, changed_if_a, changed_if_b, float(ls.weights.disruption),
        float(ls.disrupted), float(ls.cap), best_in_a, ctx.prefix_arguments(),
    )  # fmt: skip
    ls.evaluations += scored
    if cut or not best_in_a.any() or np.array_equal(best_in_a, in_a_now):
        return False
    for v, inside in zip(nodes.tolist(), best_in_a.tolist(), strict=True):
        target = a if inside else b
        if ls.labels[v] != target:
            move_unit(ls, v, target)
    return True


def _reverse_index(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Position of edge ``(j, i)`` for each edge ``(i, j)`` (the adjacency is symmetric)."""
    key = rows * n + cols
    rkey = cols * n + rows
    order = np.argsort(key)
    return order[np.searchsorted(key[order], rkey)]


class _Context:
    """Vectorised scoring of candidate splits of the union of territories ``a`` and ``b``."""

    def __init__(
        self,
        ls: LocalSearch,
        a: int,
        b: int,
        share: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        shared: np.ndarray,
        nodes: np.ndarray,
    ) -> None:
        self.ls = ls
        self.share = share
        self.total = share.sum(axis=0)
        self.ta = np.asarray(ls.target[a])
        self.tb = np.asarray(ls.target[b])
        self.tol = np.asarray(ls.tol)
        upper = rows < cols
        self.er, self.ec, self.es = rows[upper], cols[upper], shared[upper]
        arrays = ls.arrays
        self.perim = arrays.perim[nodes]
        self.area = arrays.area[nodes]
        self.w = arrays.w[nodes]
        self.x = arrays.x[nodes]
        self.y = arrays.y[nodes]
        self.q = arrays.q[nodes]
        w = self.w
        self.totals = np.array([w.sum(), (w * self.x).sum(), (w * self.y).sum(), (w * self.q).sum()])

    def _balance(self, load_a: np.ndarray) -> np.ndarray:
        wts = self.ls.weights
        load_b = self.total - load_a
        cost = np.zeros(len(load_a))
        for load, tgt in ((load_a, self.ta), (load_b, self.tb)):
            with np.errstate(divide="ignore", invalid="ignore"):
                dev = np.where(tgt > 0, np.abs(load / tgt - 1.0), 0.0)
            cost += wts.violation * np.clip(dev - self.tol, 0, None).sum(axis=1)
            cost += wts.pull * (np.clip(dev - wts.zone * self.tol, 0, None) ** 2).sum(axis=1)
        return cost

    def _shape(
        self,
        area_a: np.ndarray,
        perim_a: np.ndarray,
        area_b: np.ndarray,
        perim_b: np.ndarray,
        sums_a: tuple[np.ndarray, ...],
    ) -> np.ndarray:
        ls = self.ls
        wts = ls.weights
        cost = np.zeros(len(area_a))
        if ls.polygons and wts.pp:
            with np.errstate(divide="ignore", invalid="ignore"):
                pp = np.where(perim_a > 0, FOUR_PI * area_a / perim_a**2, 0.0)
                pp += np.where(perim_b > 0, FOUR_PI * area_b / perim_b**2, 0.0)
            cost -= wts.pp * pp
        if wts.inertia:
            totals = tuple(self.totals)
            inertia = np.zeros(len(area_a))
            for part in (sums_a, tuple(t - s for t, s in zip(totals, sums_a, strict=True))):
                sw, sx, sy, sq = part
                with np.errstate(divide="ignore", invalid="ignore"):
                    inertia += np.where(sw > 1e-15, sq - (sx**2 + sy**2) / sw, 0.0)
            cost += wts.inertia * ls.k * inertia / ls.inertia_ref
        return cost

    def score_sets(self, in_a: np.ndarray) -> np.ndarray:
        """Score explicit splits, one boolean row (unit goes to ``a``) per candidate."""
        load_a = in_a.astype(float) @ self.share
        inner_a = (in_a[:, self.er] & in_a[:, self.ec]).astype(float) @ self.es
        inner_b = (~in_a[:, self.er] & ~in_a[:, self.ec]).astype(float) @ self.es
        fa = in_a.astype(float)
        area_a = fa @ self.area
        perim_a = fa @ self.perim - 2 * inner_a
        area_b = self.area.sum() - area_a
        perim_b = (1 - fa) @ self.perim - 2 * inner_b
        wsum = (fa @ self.w, fa @ (self.w * self.x), fa @ (self.w * self.y), fa @ (self.w * self.q))
        return self._balance(load_a) + self._shape(area_a, perim_a, area_b, perim_b, wsum)

    def prefix_arguments(self) -> tuple:
        """The arguments of :func:`~territory_lib.design.recombine_scoring.score_prefixes` after
        ``order, rank``: this union's data and the search's weights."""
        ls = self.ls
        wts = ls.weights
        return (
            self.share, self.total, self.ta, self.tb, self.tol, wts.zone * self.tol, self.er, self.ec,
            self.es, self.area, self.perim, float(self.area.sum()), float(self.perim.sum()), self.w,
            self.x, self.y, self.q, self.totals, float(wts.violation), float(wts.pull), float(wts.pp),
            float(wts.inertia * ls.k), float(ls.inertia_ref), bool(ls.polygons and wts.pp), bool(wts.inertia),
        )  # fmt: skip
