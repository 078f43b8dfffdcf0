"""Construction of a first plan: balanced region growing from territory centres on the unit graph.

Each territory grows from its source units (centre, seed, locked units) by a multi-source
shortest-path search in which territory ``t`` starts ``-offset[t]`` ahead. Shortest-path trees keep
every territory connected; the offsets are tuned until territory sizes match their targets, and the
centres move to their territory's weighted centre (a balanced, graph-constrained k-means).
"""

from __future__ import annotations

from typing import cast

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from territory_lib.design.graph import UnitGraph
from territory_lib.design.sweep import SplitPool, SubGraph, split_scorer, subgraph, sweep_order


def edge_lengths(graph: UnitGraph) -> np.ndarray:
    """Euclidean distance (m) between the centroids of the two units of each CSR entry."""
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    d = np.linalg.norm(graph.xy[rows] - graph.xy[graph.indices], axis=1)
    # Coincident centroids would give zero-length edges and arbitrary ties; keep lengths positive.
    floor = max(float(np.median(d)) * 1e-3, 1e-6) if len(d) else 1.0
    return np.maximum(d, floor)


def initial_centres(
    xy: np.ndarray,
    weight: np.ndarray,
    k: int,
    fixed: list[int | None],
    rng: np.random.Generator,
    reserved: frozenset[int] = frozenset(),
) -> list[int]:
    """Pick a centre unit for every territory without a fixed one: weighted k-means++ then Lloyd steps.

    Parameters
    ----------
    xy : numpy.ndarray
        Unit coordinates.
    weight : numpy.ndarray
        Non-negative unit weights (combined balance share).
    k : int
        Number of territories.
    fixed : list
        Fixed centre unit per territory, or None where the centre is free.
    rng : numpy.random.Generator
        Random source (k-means++ draws).
    reserved : frozenset of int
        Units that belong to a territory already (locked units and the paths joining them); no
        free centre may sit on one.
    """
    n = len(xy)
    w = weight + weight.sum() / max(n, 1) * 0.05 + 1e-12
    taken = {c for c in fixed if c is not None} | set(reserved)
    centres = [xy[c] for c in fixed if c is not None]
    free_slots = [t for t in range(k) if fixed[t] is None]
    points = np.array(centres) if centres else np.empty((0, 2))
    for _ in free_slots:
        if len(points) == 0:
            p = w / w.sum()
        else:
            d2 = cKDTree(points).query(xy)[0] ** 2 * w
            d2[list(taken)] = 0
            p = d2 / d2.sum() if d2.sum() > 0 else w / w.sum()
        pick = int(rng.choice(n, p=p))
        taken.add(pick)
        points = np.vstack([points, xy[pick]])
    # Lloyd iterations move the free centres to their cluster's weighted mean.
    n_fixed = len(centres)
    for _ in range(10):
        owner = cKDTree(points).query(xy)[1]
        sw = np.bincount(owner, weights=w, minlength=len(points))
        sx = np.bincount(owner, weights=w * xy[:, 0], minlength=len(points))
        sy = np.bincount(owner, weights=w * xy[:, 1], minlength=len(points))
        moved = np.column_stack([sx, sy]) / np.maximum(sw, 1e-300)[:, None]
        keep = sw > 0
        keep[:n_fixed] = False
        points[keep] = moved[keep]
    # Snap each free centre to a distinct unit, nearest first.
    tree = cKDTree(xy)
    result = list(fixed)
    used = {c for c in fixed if c is not None} | set(reserved)
    for slot, point in zip(free_slots, points[n_fixed:], strict=True):
        kq = min(n, 32)
        _, cand = tree.query(point, k=kq)
        cand = np.atleast_1d(cand)
        choice = next((int(c) for c in cand if int(c) not in used), None)
        if choice is None:
            choice = next(i for i in range(n) if i not in used)
        used.add(choice)
        result[slot] = choice
    return [int(cast(int, c)) for c in result]  # every slot is filled by now


def grow_balanced(
    graph: UnitGraph,
    share: np.ndarray,
    target: np.ndarray,
    cores: list[list[int]],
    rng: np.random.Generator,
    *,
    iterations: int = 60,
    centre_updates: int = 20,
    heavy_share: float = 0.3,
) -> np.ndarray:
    """Grow ``k`` connected territories whose combined share approaches ``target``.

    Parameters
    ----------
    graph : UnitGraph
        Connected unit graph.
    share : numpy.ndarray
        ``(n,)`` combined balance share of each unit (sums to 1).
    target : numpy.ndarray
        ``(k,)`` target share of each territory (sums to 1).
    cores : list of list of int
        Units that must belong to territory ``t`` (a connected set: seed, locked units and the
        paths joining them); an empty list lets the territory's centre float.
    rng : numpy.random.Generator
        Random source for the initial centres.
    iterations : int
        Offset-tuning rounds.
    centre_updates : int
        Rounds (from the start) in which free centres move to their territory's weighted centre.
    heavy_share : float
        Units carrying at least this share of a territory's target become fixed centres.

    Returns
    -------
    numpy.ndarray
        Territory index of each unit; every territory is connected and non-empty.
    """
    n, k = graph.n, len(target)
    lengths = edge_lengths(graph)
    rows = np.repeat(np.arange(n), np.diff(graph.indptr))
    fixed = [core[0] if core else None for core in cores]
    # Heavy units anchor territories of their own: two in one territory could never balance.
    taken = {u for core in cores for u in core}
    heavy = [int(u) for u in np.argsort(-share, kind="stable") if share[u] >= heavy_share * target.min()]
    free = [t for t in range(k) if fixed[t] is None]
    for t, u in zip(free, [u for u in heavy if u not in taken], strict=False):
        fixed[t] = u
    anchored = [c is not None and not cores[t] for t, c in enumerate(fixed)]
    centres = initial_centres(graph.xy, share, k, fixed, rng, frozenset(taken))
    scale = float(np.mean(lengths)) * np.sqrt(n / (np.pi * k)) if len(lengths) else 1.0
    offsets = np.zeros(k)
    best, best_err = None, np.inf
    step = 0.5
    prev_sign = np.zeros(k)
    for it in range(iterations):
        sources = [list(core) if core else [centres[t]] for t, core in enumerate(cores)]
        labels = _grow_once(n, rows, graph.indices, lengths, sources, offsets)
        load = np.bincount(labels, weights=share, minlength=k)
        dev = load / target - 1.0
        err = float(np.abs(dev).max())
        if err < best_err:
            best, best_err = labels, err
        # Shrink the step where the sign of the deviation flips: the offset overshot.
        sign = np.sign(dev)
        step_t = np.where(sign * prev_sign < 0, 0.5, 1.0)
        prev_sign = sign
        offsets -= step * step_t * np.clip(dev, -1.0, 1.0) * scale
        offsets -= offsets.mean()
        step *= 0.97
        if it < centre_updates:
            centres = _recentre(graph.xy, share, labels, centres, cores, anchored, k)
            if it == centre_updates - 1:
                best, best_err = None, np.inf
    assert best is not None
    return best


def _grow_once(
    n: int,
    rows: np.ndarray,
    cols: np.ndarray,
    lengths: np.ndarray,
    sources: list[list[int]],
    offsets: np.ndarray,
) -> np.ndarray:
    """One multi-source shortest-path growth; territory ``t`` starts ``-offsets[t]`` ahead."""
    k = len(sources)
    is_source = np.zeros(n, dtype=bool)
    for src in sources:
        is_source[src] = True
    # No path may enter another territory's source unit, so sources always keep their territory.
    keep = ~is_source[cols]
    src_nodes = np.concatenate([np.asarray(s, dtype=np.int64) for s in sources])
    src_owner = np.concatenate([np.full(len(s), t) for t, s in enumerate(sources)])
    base = offsets.max() + 1.0
    dummy_rows = n + src_owner
    r = np.concatenate([rows[keep], dummy_rows])
    c = np.concatenate([cols[keep], src_nodes])
    w = np.concatenate([lengths[keep], base - offsets[src_owner]])
    mat = sparse.csr_matrix((w, (r, c)), shape=(n + k, n + k))
    _, _, origin = dijkstra(
        mat, directed=True, indices=np.arange(n, n + k), min_only=True, return_predecessors=True
    )
    return (origin[:n] - n).astype(np.int64)


def _recentre(
    xy: np.ndarray,
    share: np.ndarray,
    labels: np.ndarray,
    centres: list[int],
    cores: list[list[int]],
    anchored: list[bool],
    k: int,
) -> list[int]:
    """Move each free centre to the unit of its territory nearest the territory's weighted centre."""
    w = share + 1e-12
    sw = np.bincount(labels, weights=w, minlength=k)
    cx = np.bincount(labels, weights=w * xy[:, 0], minlength=k) / np.maximum(sw, 1e-300)
    cy = np.bincount(labels, weights=w * xy[:, 1], minlength=k) / np.maximum(sw, 1e-300)
    d2 = (xy[:, 0] - cx[labels]) ** 2 + (xy[:, 1] - cy[labels]) ** 2
    order = np.lexsort((d2, labels))
    first = np.full(k, -1)
    starts = np.searchsorted(labels[order], np.arange(k))
    valid = starts < len(order)
    first[valid] = order[starts[valid]]
    new = list(centres)
    for t in range(k):
        if not cores[t] and not anchored[t] and first[t] >= 0 and labels[first[t]] == t:
            new[t] = int(first[t])
    return new


def bisect_plan(
    graph: UnitGraph,
    share: np.ndarray,
    target: np.ndarray,
    tolerance: np.ndarray,
    weight: np.ndarray,
    rng: np.random.Generator,
    *,
    n_sweeps: int = 24,
    slack: float = 0.5,
    alternatives: int = 3,
    retry_budget: int = 40,
) -> np.ndarray:
    """Recursive bisection by distance-difference sweeps into ``k`` connected, balanced territories.

    Each connected piece holding ``k'`` territories is split into two connected pieces holding
    ``⌊k'/2⌋`` and ``⌈k'/2⌉`` of them; among the splits of many sweeps (random directions and
    load-drawn centres, noisy edge lengths) the most compact ones whose excess, spread over the
    territories of each side, stays within ``slack`` × tolerance are tried in turn until the pieces
    below balance within tolerance (backtracking, bounded by ``retry_budget``).

    Parameters
    ----------
    graph : UnitGraph
        Connected unit graph.
    share : numpy.ndarray
        ``(n, m)`` each unit's share of each measure.
    target : numpy.ndarray
        ``(k, m)`` target share of each territory per measure.
    tolerance : numpy.ndarray
        ``(m,)`` relative tolerance per measure.
    weight : numpy.ndarray
        Unit weights for the moment of inertia (used when units are points).
    rng : numpy.random.Generator
        Random source.
    n_sweeps : int
        Sweeps tried per split (three times as many for the last split into two territories).
    slack : float
        Share of the tolerance an intermediate split may use.
    alternatives : int
        Splits tried per piece when the pieces below cannot balance.
    retry_budget : int
        Total number of such extra tries over the whole recursion.

    Returns
    -------
    numpy.ndarray
        Territory index of each unit.
    """
    n = graph.n
    lengths = edge_lengths(graph)
    xy = graph.xy - graph.xy.mean(axis=0)
    xy = xy / max(float(np.sqrt((xy**2).sum(axis=1).mean())), 1e-12)
    arrays = {
        "share": share,
        "area": graph.area,
        "perim": graph.perimeter,
        "w": weight,
        "x": xy[:, 0],
        "y": xy[:, 1],
    }
    state = {"budget": retry_budget}
    labels = np.zeros(n, dtype=np.int64)

    def solve(nodes: np.ndarray, terr: list[int]) -> tuple[np.ndarray, float]:
        if len(terr) == 1:
            load = share[nodes].sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                dev = np.where(target[terr[0]] > 0, np.abs(load / target[terr[0]] - 1.0), 0.0)
            return np.full(len(nodes), terr[0]), float((dev / tolerance).max())
        sub = subgraph(nodes, graph.indptr, graph.indices, graph.shared, lengths, n, **arrays)
        k1 = len(terr) // 2
        g1, g2 = terr[:k1], terr[k1:]
        splits = _split_candidates(
            sub,
            target[g1].sum(axis=0),
            target[g2].sum(axis=0),
            len(g1),
            len(g2),
            tolerance,
            slack if len(terr) > 2 else 1.0,
            graph.polygons,
            rng,
            n_sweeps * (3 if len(terr) == 2 else 1),
            alternatives,
        )
        best: tuple[np.ndarray, float] | None = None
        for attempt, in_g1 in enumerate(splits):
            if attempt > 0:
                if state["budget"] <= 0:
                    break
                state["budget"] -= 1
            out = np.empty(len(nodes), dtype=np.int64)
            out[in_g1], w1 = solve(nodes[in_g1], g1)
            out[~in_g1], w2 = solve(nodes[~in_g1], g2)
            worst = max(w1, w2)
            if best is None or worst < best[1]:
                best = (out, worst)
            if worst <= 1.0:
                break
        if best is None:
            # No connected split exists (a piece with fewer units than territories): keep it whole.
            return np.full(len(nodes), terr[0]), np.inf
        return best

    labels[:] = solve(np.arange(n), list(range(target.shape[0])))[0]
    return labels


def _split_candidates(
    sub: SubGraph,
    t1: np.ndarray,
    t2: np.ndarray,
    k1: int,
    k2: int,
    tolerance: np.ndarray,
    limit: float,
    polygons: bool,
    rng: np.random.Generator,
    n_sweeps: int,
    keep: int,
) -> list[np.ndarray]:
    """Best distinct connected splits of ``sub`` into sides for ``k1`` and ``k2`` territories.

    Returns boolean masks (True = side of the first group), best first: splits within ``limit``
    × tolerance ordered by compactness, then the least unbalanced ones.
    """
    score_splits = split_scorer(sub, t1, t2, k1, k2, tolerance, limit, polygons)
    sub_xy = np.column_stack([sub.x, sub.y])
    p_load = sub.share.sum(axis=1) + 1e-12
    p_load = p_load / p_load.sum()
    pool = SplitPool(sub, keep, n_sweeps)
    for trial in range(n_sweeps):
        if trial % 2 == 0:
            # Sweep across the piece in a random direction, from one edge to the opposite one.
            angle = rng.uniform(0, np.pi)
            proj = sub_xy @ np.array([np.cos(angle), np.sin(angle)])
            top = max(1, sub.size // 20)
            ranked = np.argsort(proj)
            c1 = rng.choice(ranked[-top:], size=1)
            c2 = rng.choice(ranked[:top], size=1)
        else:
            # Centres drawn by load: a heavy unit anchors a territory grown around it.
            c1, c2 = rng.choice(sub.size, size=2, replace=False, p=p_load)[:, None]
        if c1[0] == c2[0]:
            continue
        order, rank, safe = sweep_order(sub, c1, c2, rng)
        pool.add(score_splits(order, rank), order, rank, safe)
    return pool.best()
