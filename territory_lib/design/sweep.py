"""Distance-difference sweeps: many contiguous two-way splits of a connected set of units at once.

For two centres ``c1, c2`` of a connected set, rank every unit by ``d1 - d2`` (graph distances).
A prefix of the ranking is the cell of ``c1`` in a shortest-path growth where ``c1`` starts ahead,
so prefixes and suffixes are connected (up to ties, which callers check). Cumulative sums give
load, area, perimeter and inertia of all ``n - 1`` splits in O(n + edges). The sweeps, scores
and connectivity checks run compiled (:mod:`territory_lib.design.sweep_scoring`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from territory_lib.design import sweep_scoring


@dataclass
class SubGraph:
    """A connected set of units with local indices and the attributes sweeps need."""

    nodes: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    shared: np.ndarray
    length: np.ndarray
    share: np.ndarray
    area: np.ndarray
    perim: np.ndarray
    w: np.ndarray
    x: np.ndarray
    y: np.ndarray
    _indptr: np.ndarray | None = field(default=None, repr=False)
    _reverse: np.ndarray | None = field(default=None, repr=False)
    _upper: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """Number of units."""
        return len(self.nodes)

    def indptr(self) -> np.ndarray:
        """CSR row pointers of ``rows`` (sorted by row)."""
        if self._indptr is None:
            self._indptr = np.searchsorted(self.rows, np.arange(self.size + 1))
        return self._indptr

    def reverse(self) -> np.ndarray:
        """Position of entry ``(j, i)`` for each entry ``(i, j)`` (the adjacency is symmetric)."""
        if self._reverse is None:
            key = self.rows * self.size + self.cols
            order = np.argsort(key, kind="stable")
            self._reverse = order[np.searchsorted(key[order], self.cols * self.size + self.rows)]
        return self._reverse

    def upper(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each undirected edge once: rows, cols, shared length."""
        if self._upper is None:
            keep = self.rows < self.cols
            self._upper = (self.rows[keep], self.cols[keep], self.shared[keep])
        return self._upper


def subgraph(
    nodes: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    shared: np.ndarray,
    length: np.ndarray,
    n: int,
    **unit_arrays: np.ndarray,
) -> SubGraph:
    """Extract the subgraph induced by ``nodes`` from a CSR graph with per-entry attributes."""
    local = np.full(n, -1)
    local[nodes] = np.arange(len(nodes))
    starts, ends = indptr[nodes], indptr[nodes + 1]
    counts = ends - starts
    pos = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    rows = np.repeat(np.arange(len(nodes)), counts)
    cols = local[indices[pos]]
    keep = cols >= 0
    return SubGraph(
        nodes=nodes,
        rows=rows[keep],
        cols=cols[keep],
        shared=shared[pos][keep],
        length=length[pos][keep],
        **{name: arr[nodes] for name, arr in unit_arrays.items()},
    )


def sweep_order(
    sub: SubGraph, c1: np.ndarray, c2: np.ndarray, rng: np.random.Generator, noise: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rank units by distance difference to source sets ``c1`` and ``c2`` (noisy edge lengths).

    Returns ``(order, rank, safe)`` as
    :func:`~territory_lib.design.sweep_scoring.difference_order`; ``order[:p + 1]`` is the side of
    ``c1`` for split ``p``.
    """
    factor = rng.uniform(1 - noise, 1 + noise, len(sub.length)) if noise else np.ones(len(sub.length))
    return sweep_scoring.sweep_order(
        sub.indptr(), sub.cols, sub.length, sub.reverse(), factor, _sources(c1), _sources(c2)
    )


def _sources(units: np.ndarray) -> np.ndarray:
    """Source units as the compiled sweep takes them (one version whatever the caller passes)."""
    return np.ascontiguousarray(units, dtype=np.int64).reshape(-1)


def split_scorer(
    sub: SubGraph,
    t1: np.ndarray,
    t2: np.ndarray,
    k1: int,
    k2: int,
    tolerance: np.ndarray,
    limit: float,
    polygons: bool,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Scores of every split of a sweep of ``sub`` into sides for groups of ``k1`` and ``k2`` territories.

    The returned function maps a sweep's ``(order, rank)`` to ``(2, n - 1)`` scores, lower is better
    (see :func:`territory_lib.design.sweep_scoring.split_scores`): row 0 puts the first group (total
    targets ``t1``) on the side of ``order[:p + 1]``, row 1 the second.
    """
    er, ec, es = sub.upper()
    per = (t1 + t2) / (k1 + k2)
    share, es, area, perim, w, x, y = (  # one compiled version for any layout
        np.ascontiguousarray(v, dtype=float)
        for v in (sub.share, es, sub.area, sub.perim, sub.w, sub.x, sub.y)
    )
    sums = float(sub.area.sum()), float(sub.perim.sum())
    args: tuple[Any, ...] = (
        *(share, er, ec, es, area, perim, *sums, w, x, y, bool(polygons)),
        *(np.ascontiguousarray(t, dtype=float) for t in (t1, t2)),
        *(int(k1), int(k2)),
        *(np.ascontiguousarray(a, dtype=float) for a in (per, tolerance)),
        float(limit),
    )

    def score(order: np.ndarray, rank: np.ndarray) -> np.ndarray:
        return sweep_scoring.split_scores(order, rank, *args)

    return score


class SplitPool:
    """The distinct connected splits of ``sub`` found by up to ``sweeps`` sweeps, with their scores.

    Parameters
    ----------
    sub
        The set of units being split.
    keep
        Splits taken per side of each sweep, and returned by :meth:`best`.
    sweeps
        Most sweeps that will be added.
    """

    def __init__(self, sub: SubGraph, keep: int, sweeps: int) -> None:
        self.sub = sub
        self.keep = int(keep)
        self.sweeps = sweeps
        capacity = 2 * self.keep * sweeps
        self.masks = np.empty((capacity, sub.size), dtype=bool)
        self.scores = np.empty(capacity)
        self.hashes = np.empty(capacity, dtype=np.int64)
        # Fixed random keys (not the design's generator): a split's hash is the xor over its units.
        self.unit_hash = np.random.default_rng(0).integers(0, 2**63 - 1, sub.size, dtype=np.int64)
        self.count = 0

    def add(self, scores: np.ndarray, order: np.ndarray, rank: np.ndarray, safe: np.ndarray) -> None:
        """Add up to ``keep`` new connected splits per side of one sweep, best first
        (:func:`territory_lib.design.sweep_scoring.add_best_splits`)."""
        if self.count + 2 * self.keep > len(self.scores):
            # The compiled code writes rows without bounds checks.
            raise ValueError(
                f"SplitPool holds the splits of {len(self.scores) // (2 * self.keep)} sweeps only."
            )
        self.count = sweep_scoring.add_best_splits(
            scores, order, rank, safe, self.sub.indptr(), self.sub.cols, self.keep, self.unit_hash,
            self.masks, self.hashes, self.scores, self.count,
        )  # fmt: skip

    def best(self) -> list[np.ndarray]:
        """Masks (True = side of the first group) of the ``keep`` best splits, in order of score
        (equal scores in the order found)."""
        top = np.argsort(self.scores[: self.count], kind="stable")[: self.keep]
        return [self.masks[i].copy() for i in top.tolist()]
