"""The compiled recombination takes exactly the splits of the numpy/Python loop it replaced.

Plans depend on its distances, scores and random draws through ties and stable sorts, so the plan,
its sums, the work counted and the random stream must be equal after every recombination, on
random plans of a real map with locked units, a disruption cap and every objective term on. The
Python loop is kept here as the reference.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_lib.design.contiguity import multi_source_dijkstra, subset_connected
from territory_lib.design.graph import UnitGraph, build_unit_graph
from territory_lib.design.improve import LocalSearch, Weights, move_unit
from territory_lib.design.recombine import _Context, _reverse_index, recombine
from territory_lib.design.recombine_scoring import score_prefixes
from tests.design.test_contiguity import grown_plan
from tests.design.test_sweep import reference_order


@pytest.fixture(scope="module")
def georgia(georgia_counties: gpd.GeoDataFrame) -> UnitGraph:
    return build_unit_graph(georgia_counties, georgia_counties["AreaKey"].astype(str).to_numpy())


def reference_recombine(ls: LocalSearch, a: int, b: int, rng: np.random.Generator, n_pairs: int = 16) -> bool:
    """Recombination as it ran in numpy and Python (the prefix scoring and graph searches compiled)."""
    labels = np.asarray(ls.labels)
    nodes = np.flatnonzero((labels == a) | (labels == b))
    nu = len(nodes)
    if nu < 3:
        return False
    arrays = ls.arrays
    local = np.full(ls.n, -1)
    local[nodes] = np.arange(nu)
    starts = arrays.indptr[nodes]
    counts = arrays.indptr[nodes + 1] - starts
    pos = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
    ends = local[arrays.indices[pos]]
    inside = ends >= 0
    rows_a = np.repeat(np.arange(nu), counts)[inside]
    cols_a = ends[inside]
    xy = np.column_stack([arrays.x[nodes], arrays.y[nodes]])
    base_len = np.maximum(np.linalg.norm(xy[rows_a] - xy[cols_a], axis=1), 1e-9)
    fixed = ~arrays.movable[nodes]
    old_side = labels[nodes]
    fix_a, fix_b = fixed & (old_side == a), fixed & (old_side == b)
    in_a_now = old_side == a
    ctx = _Context(ls, a, b, arrays.share[nodes], rows_a, cols_a, arrays.shared[pos[inside]], nodes)
    now = ctx.score_sets(in_a_now[None, :])[0]
    cur = None if arrays.current is None else arrays.current[nodes]
    dw = None if arrays.current is None else arrays.dw[nodes]
    best_score, best_in_a = now - 1e-12, None
    members_a, members_b = np.flatnonzero(in_a_now), np.flatnonzero(~in_a_now)
    fixed_a, fixed_b = np.flatnonzero(fix_a), np.flatnonzero(fix_b)
    reverse = _reverse_index(rows_a, cols_a, nu)
    indptr_a = np.searchsorted(rows_a, np.arange(nu + 1))
    if cur is not None and ls.weights.disruption:
        changed_if_a = dw * ((cur != a).astype(float) - (cur != old_side))
        changed_if_b = dw * ((cur != b).astype(float) - (cur != old_side))
    for _ in range(n_pairs):
        lengths = base_len * rng.uniform(0.7, 1.3, len(base_len))
        lengths = (lengths + lengths[reverse]) / 2
        c1 = np.unique(np.concatenate([[rng.choice(members_a)], fixed_a]))
        c2 = np.unique(np.concatenate([[rng.choice(members_b)], fixed_b]))
        d1 = multi_source_dijkstra(indptr_a, cols_a, lengths, c1)
        d2 = multi_source_dijkstra(indptr_a, cols_a, lengths, c2)
        if not np.isfinite(d1).all():
            return False
        order, rank, safe = reference_order(d1, d2)
        if len(c1) > 1 or len(c2) > 1:
            safe[:] = False
        scores = score_prefixes(order, rank, *ctx.prefix_arguments())
        ls.evaluations += nu - 1
        p = np.arange(nu - 1)
        lo = rank[fix_a].max() if fix_a.any() else 0
        hi = rank[fix_b].min() if fix_b.any() else nu
        scores[(p < lo) | (p >= hi)] = np.inf
        if cur is not None and ls.weights.disruption:
            extra = np.cumsum(changed_if_a[order])[:-1] + (
                changed_if_b[order].sum() - np.cumsum(changed_if_b[order])[:-1]
            )
            scores = scores + ls.weights.disruption * extra
            scores[ls.disrupted + extra > ls.cap + 1e-12] = np.inf
        for idx in np.argsort(scores, kind="stable")[:4].tolist():
            if not scores[idx] < best_score:
                break
            in_a = rank <= idx
            if safe[idx] or (
                subset_connected(indptr_a, cols_a, in_a) and subset_connected(indptr_a, cols_a, ~in_a)
            ):
                best_score, best_in_a = float(scores[idx]), in_a
                break
    if best_in_a is None or np.array_equal(best_in_a, in_a_now):
        return False
    for v, inside_a in zip(nodes.tolist(), best_in_a.tolist(), strict=True):
        target = a if inside_a else b
        if ls.labels[v] != target:
            move_unit(ls, v, target)
    return True


def random_search(graph: UnitGraph, seed: int, k: int, m: int, locked: float, realign: bool) -> LocalSearch:
    rng = np.random.default_rng(seed)
    labels = grown_plan(graph, k, rng)
    share = rng.gamma(1.0, 1.0, (graph.n, m))
    share /= share.sum(axis=0)
    target = rng.dirichlet(np.ones(k), size=m).T
    ls = LocalSearch(
        graph, labels, share, target, rng.uniform(0, 0.2, m), rng.random(graph.n) >= locked,
        current=rng.integers(-1, k, graph.n) if realign else None,
        disruption_weight=rng.dirichlet(np.ones(graph.n)) if realign else None,
        disruption_cap=float(rng.uniform(0.3, 0.9)) if realign else None,
        inertia_weight=rng.gamma(2.0, 1.0, graph.n),
    )  # fmt: skip
    ls.weights = Weights(
        zone=float(rng.uniform(0, 1)), pp=1.3, inertia=0.3, disruption=2.0 if realign else 0.0
    )
    return ls


def state(ls: LocalSearch) -> tuple:
    sums = (ls.load, ls.size, ls.area, ls.perim, ls.sw, ls.sx, ls.sy, ls.sq)
    return (ls.labels, *sums, ls.disrupted, ls.moves, ls.evaluations)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(2, 9),
    m=st.integers(1, 10),
    locked=st.sampled_from([0.0, 0.05, 0.3]),
    realign=st.booleans(),
)
def test_the_compiled_recombination_takes_the_splits_of_the_python_loop(
    georgia, seed: int, k: int, m: int, locked: float, realign: bool
) -> None:
    mine, theirs = (random_search(georgia, seed, k, m, locked, realign) for _ in range(2))
    rng_mine, rng_theirs = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)
    for _ in range(6):  # a round over neighbouring pairs, as the engine runs them
        labels = np.asarray(mine.labels)
        rows = np.repeat(np.arange(georgia.n), np.diff(georgia.indptr))
        cross = labels[rows] != labels[georgia.indices]
        pairs = sorted(
            {
                (int(x), int(y))
                for x, y in zip(labels[rows[cross]], labels[georgia.indices[cross]], strict=True)
            }
        )
        for a, b in pairs[:: max(1, len(pairs) // 5)]:
            got = recombine(mine, a, b, rng_mine)
            assert got == reference_recombine(theirs, a, b, rng_theirs)
            assert state(mine) == state(theirs)
            assert rng_mine.bit_generator.state == rng_theirs.bit_generator.state
