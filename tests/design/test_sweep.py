"""The compiled sweeps of the construction give exactly the numbers of the numpy/scipy code they replaced.

Plans depend on the sweeps through ties, stable sorts and the random stream, so orders, scores and
the splits kept must be equal bit for bit, and the generator must end in the same state. The
reference implementations (the code before compilation) live here only.
"""

from __future__ import annotations

import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.sparse.csgraph import dijkstra

from territory_lib.design import sweep_scoring
from territory_lib.design.construct import _split_candidates, edge_lengths
from territory_lib.design.graph import UnitGraph, build_unit_graph
from territory_lib.design.sweep import (
    SubGraph,
    split_scorer,
    subgraph,
    sweep_order,
)
from tests.design.test_contiguity import grown_plan

SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def georgia(georgia_counties: gpd.GeoDataFrame) -> UnitGraph:
    return build_unit_graph(georgia_counties, georgia_counties["AreaKey"].astype(str).to_numpy())


def piece(graph: UnitGraph, rng: np.random.Generator, m: int, hops: bool) -> SubGraph:
    """A territory of a random contiguous plan with ``m`` random measures (``hops``: unit lengths,
    so distance differences tie often)."""
    labels = grown_plan(graph, int(rng.integers(1, 5)), rng)
    nodes = np.flatnonzero(labels == labels[rng.integers(graph.n)])
    lengths = np.ones(len(graph.indices)) if hops else edge_lengths(graph)
    xy = graph.xy - graph.xy.mean(axis=0)
    xy = xy / np.sqrt((xy**2).sum(axis=1).mean())
    share = rng.random((graph.n, m)) * 10.0 ** rng.integers(-3, 3, m)
    share = share / share.sum(axis=0)
    weight = rng.random(graph.n) if rng.random() < 0.8 else np.ones(graph.n)
    arrays = {"share": share, "area": graph.area, "perim": graph.perimeter, "w": weight}
    arrays |= {"x": xy[:, 0], "y": xy[:, 1]}
    return subgraph(nodes, graph.indptr, graph.indices, graph.shared, lengths, graph.n, **arrays)


def reference_order(d1: np.ndarray, d2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    finite = bool(np.isfinite(d1).all() and np.isfinite(d2).all())
    scale = max(float(np.abs(d1[np.isfinite(d1)]).max(initial=0.0)), 1e-300)
    with np.errstate(invalid="ignore", over="ignore"):
        key = np.round((d1 - d2) / scale, 9)
    order = np.lexsort((d1, key))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    ordered = key[order]
    return order, rank, (ordered[1:] != ordered[:-1]) & finite


def reference_sweep(
    sub: SubGraph, c1: np.ndarray, c2: np.ndarray, rng: np.random.Generator, noise: float = 0.3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lengths = sub.length * rng.uniform(1 - noise, 1 + noise, len(sub.length)) if noise else sub.length
    lengths = np.minimum(lengths, lengths[sub.reverse()])
    graph = sparse.csr_matrix((lengths, sub.cols, sub.indptr()), shape=(sub.size, sub.size))
    if len(c1) == 1 and len(c2) == 1:
        d1, d2 = dijkstra(graph, indices=[int(c1[0]), int(c2[0])])
    else:
        d1 = dijkstra(graph, indices=c1, min_only=True)
        d2 = dijkstra(graph, indices=c2, min_only=True)
    return reference_order(d1, d2)


def reference_shape(sub: SubGraph, order: np.ndarray, rank: np.ndarray, polygons: bool) -> tuple:
    """(load of side a, shape term) of each split, as the numpy prefix statistics computed them."""
    nu = sub.size
    keep = sub.rows < sub.cols
    er, ec, es = sub.rows[keep], sub.cols[keep], sub.shared[keep]
    load_c = np.cumsum(sub.share[order], axis=0)[:-1]
    hi = np.maximum(rank[er], rank[ec])
    lo = np.minimum(rank[er], rank[ec])
    inner_a = np.cumsum(np.bincount(hi, weights=es, minlength=nu))[:-1]
    by_lo = np.bincount(lo, weights=es, minlength=nu)
    inner_b = (by_lo.sum() - np.cumsum(by_lo))[:-1]
    area_c = np.cumsum(sub.area[order])[:-1]
    perim_c = np.cumsum(sub.perim[order])[:-1]
    area_a, area_b = area_c, sub.area.sum() - area_c
    perim_a, perim_b = perim_c - 2 * inner_a, sub.perim.sum() - perim_c - 2 * inner_b
    w, x, y = sub.w[order], sub.x[order], sub.y[order]
    sums = [np.cumsum(v)[:-1] for v in (w, w * x, w * y, w * (x * x + y * y))]
    totals = [float(v.sum()) for v in (w, w * x, w * y, w * (x * x + y * y))]
    inertia = np.zeros(nu - 1)
    for part in (sums, [t - s for t, s in zip(totals, sums, strict=True)]):
        sw, sx, sy, sq = part
        with np.errstate(divide="ignore", invalid="ignore"):
            inertia += np.where(sw > 1e-15, sq - (sx**2 + sy**2) / sw, 0.0)
    inertia = np.clip(inertia, 0, None)
    with np.errstate(divide="ignore", invalid="ignore"):
        pa = np.where(perim_a > 0, 4 * np.pi * area_a / perim_a**2, 0.0)
        pb = np.where(perim_b > 0, 4 * np.pi * area_b / perim_b**2, 0.0)
    shape = -(pa + pb) if polygons else inertia / max(float(inertia.max()), 1e-12)
    return load_c, shape


def reference_scores(sub, order, rank, t1, t2, k1, k2, tolerance, limit, polygons) -> list[np.ndarray]:
    per = (t1 + t2) / (k1 + k2)
    load_a, shape = reference_shape(sub, order, rank, polygons)
    p = np.arange(sub.size - 1)
    out = []
    for first_is_g1 in (True, False):
        ka, kb = (k1, k2) if first_is_g1 else (k2, k1)
        ta = t1 if first_is_g1 else t2
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.where(per > 0, (load_a - ta) / per, 0.0)
        worst = (np.abs(excess) / min(ka, kb) / tolerance).max(axis=1)
        score = np.where(worst <= limit, shape, 1e6 + worst)
        score[(p + 1 < ka) | (sub.size - p - 1 < kb)] = np.inf
        out.append(score)
    return out


def reference_connected(sub: SubGraph, member: np.ndarray) -> bool:
    idx = np.flatnonzero(member)
    if len(idx) <= 1:
        return len(idx) == 1
    ptr = np.searchsorted(sub.rows, np.arange(sub.size + 1)).tolist()
    cols = sub.cols.tolist()
    nbrs = [cols[ptr[i] : ptr[i + 1]] for i in range(sub.size)]
    inside = member.tolist()
    seen, stack = {int(idx[0])}, [int(idx[0])]
    while stack:
        for u in nbrs[stack.pop()]:
            if inside[u] and u not in seen:
                seen.add(u)
                stack.append(u)
    return len(seen) == len(idx)


def reference_split_candidates(sub, t1, t2, k1, k2, tolerance, limit, polygons, rng, n_sweeps, keep):
    """``construct._split_candidates`` before compilation."""
    sub_xy = np.column_stack([sub.x, sub.y])
    p_load = sub.share.sum(axis=1) + 1e-12
    p_load = p_load / p_load.sum()
    found: list[tuple[float, np.ndarray]] = []
    seen: set[bytes] = set()
    for trial in range(n_sweeps):
        if trial % 2 == 0:
            angle = rng.uniform(0, np.pi)
            proj = sub_xy @ np.array([np.cos(angle), np.sin(angle)])
            top = max(1, sub.size // 20)
            ranked = np.argsort(proj)
            c1 = rng.choice(ranked[-top:], size=1)
            c2 = rng.choice(ranked[:top], size=1)
        else:
            c1, c2 = rng.choice(sub.size, size=2, replace=False, p=p_load)[:, None]
        if c1[0] == c2[0]:
            continue
        order, rank, safe = reference_sweep(sub, c1, c2, rng)
        scores = reference_scores(sub, order, rank, t1, t2, k1, k2, tolerance, limit, polygons)
        for first_is_g1, score in zip((True, False), scores, strict=True):
            taken = 0
            for idx in np.argsort(score, kind="stable")[: 3 * keep].tolist():
                if not np.isfinite(score[idx]) or taken >= keep:
                    break
                side_a = rank <= idx
                in_g1 = side_a if first_is_g1 else ~side_a
                key = np.packbits(in_g1).tobytes()
                if key in seen:
                    continue
                if safe[idx] or (reference_connected(sub, side_a) and reference_connected(sub, ~side_a)):
                    seen.add(key)
                    found.append((float(score[idx]), in_g1))
                    taken += 1
    found.sort(key=lambda item: item[0])
    return [mask for _, mask in found[:keep]]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and bytes (so -0.0, inf and NaN count too)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@SLOW
@given(
    seed=st.integers(0, 2**32 - 1),
    hops=st.booleans(),
    sources=st.integers(1, 3),
    noise=st.sampled_from([0.3, 0]),
)
def test_sweeps_equal_scipy_bit_for_bit(georgia, seed: int, hops: bool, sources: int, noise: float) -> None:
    """Orders, ranks and safe flags, and the random draws taken (same generator state after)."""
    rng = np.random.default_rng(seed)
    sub = piece(georgia, rng, 1, hops)
    if sub.size < 2:
        return
    c1, c2 = (rng.choice(sub.size, size=int(rng.integers(1, sources + 1)), replace=False) for _ in range(2))
    want_rng, got_rng = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)
    want = reference_sweep(sub, c1, c2, want_rng, noise)
    got = sweep_order(sub, c1, c2, got_rng, noise)
    assert all(same(w, g) for w, g in zip(want, got, strict=True))
    assert want_rng.bit_generator.state == got_rng.bit_generator.state


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), cut=st.integers(0, 3))
@settings(max_examples=200, deadline=None)
def test_orders_of_cut_off_sets_equal_numpy(seed: int, n: int, cut: int) -> None:
    """Infinite distances (units out of reach of one or both sources), whose keys are +-inf or NaN,
    and ties: numpy sorts NaN last and keeps equal keys in order."""
    rng = np.random.default_rng(seed)
    d1, d2 = (rng.integers(0, 4, n) * rng.choice([1.0, 0.1, 1e-12], n) for _ in range(2))
    for d in (d1, d2)[: cut % 3]:
        d[rng.random(n) < 0.3] = np.inf
    if cut == 3:
        d1[:] = np.inf
    want = reference_order(d1, d2)
    got = sweep_scoring.difference_order(d1, d2)
    assert all(same(w, g) for w, g in zip(want, got, strict=True))


@given(
    values=st.lists(st.sampled_from([0.0, -0.0, 1.0, 2.5, -3.0, np.inf, -np.inf, np.nan]), max_size=60),
    k=st.integers(0, 12),
)
@settings(max_examples=300, deadline=None)
def test_the_smallest_come_in_the_order_of_a_stable_argsort(values: list[float], k: int) -> None:
    """Ties keep their order, NaN comes last (as in numpy), and only the first ``k`` are found."""
    array = np.array(values, dtype=float)
    assert sweep_scoring.smallest(array, k).tolist() == np.argsort(array, kind="stable")[:k].tolist()


@SLOW
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 11),
    hops=st.booleans(),
    polygons=st.booleans(),
    k1=st.integers(1, 5),
    k2=st.integers(1, 5),
    limit=st.sampled_from([0.5, 1.0, 30.0, np.inf]),  # inf: every split scores its shape
)
def test_split_scores_equal_numpy_bit_for_bit(
    georgia, seed: int, m: int, hops: bool, polygons: bool, k1: int, k2: int, limit: float
) -> None:
    rng = np.random.default_rng(seed)
    sub = piece(georgia, rng, m, hops)
    if sub.size < 2:
        return
    t1, t2 = rng.random(m) * 0.4, rng.random(m) * 0.4
    t2[rng.random(m) < 0.2] = 0.0
    t1[t2 == 0] = 0.0  # a measure without any target: its excess counts as zero
    tolerance = rng.choice([0.02, 0.05, 0.1, 1e-7], m)  # tiny: 1e6 + worst keeps the bits of worst
    c1, c2 = rng.choice(sub.size, size=2, replace=False)[:, None]
    order, rank, _ = sweep_order(sub, c1, c2, rng)
    want = reference_scores(sub, order, rank, t1, t2, k1, k2, tolerance, limit, polygons)
    got = split_scorer(sub, t1, t2, k1, k2, tolerance, limit, polygons)(order, rank)
    assert same(np.array(want), got)


@SLOW
@given(seed=st.integers(0, 2**32 - 1), hops=st.booleans())
def test_side_connectivity_equals_a_plain_search(georgia, seed: int, hops: bool) -> None:
    rng = np.random.default_rng(seed)
    sub = piece(georgia, rng, 1, hops)
    rank = rng.permutation(sub.size)
    for p in range(sub.size):
        side_a = rank <= p
        want = reference_connected(sub, side_a) and reference_connected(sub, ~side_a)
        assert sweep_scoring.sides_connected(sub.indptr(), sub.cols, rank, p) == want


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 3),
    polygons=st.booleans(),
    k=st.integers(2, 6),
    keep=st.integers(1, 3),
)
@example(seed=172, m=2, polygons=False, k=5, keep=2)  # a split found past the first 2 * keep candidates
def test_split_candidates_keep_the_splits_and_draws_of_numpy(
    georgia, seed: int, m: int, polygons: bool, k: int, keep: int
) -> None:
    """The whole search for splits: same masks in the same order, same random draws."""
    rng = np.random.default_rng(seed)
    sub = piece(georgia, rng, m, False)
    if sub.size < 2:
        return
    target = rng.random((k, m))
    target /= target.sum(axis=0)
    k1 = k // 2
    t1, t2 = target[:k1].sum(axis=0), target[k1:].sum(axis=0)
    tolerance = np.full(m, 0.05)
    args = (sub, t1, t2, k1, k - k1, tolerance, rng.choice([0.5, 1.0, np.inf]), polygons)
    want_rng, got_rng = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)
    want = reference_split_candidates(*args, want_rng, 24, keep)
    got = _split_candidates(*args, got_rng, 24, keep)
    assert len(got) == len(want) and all(same(w, g) for w, g in zip(want, got, strict=True))
    assert want_rng.bit_generator.state == got_rng.bit_generator.state


def test_the_warm_up_compiles_the_versions_a_construction_uses() -> None:
    """After ``warm_up()`` a design that builds its first plan by sweeps (two measures: recursive
    bisection) must not compile another version of any compiled sweep function."""
    probe = (
        "import geopandas as gpd, libpysal\n"
        "from territory_lib.design import BalanceTarget, design_territories, sweep_scoring as s\n"
        "import territory_lib.design.construct as c\n"
        "s.warm_up()\n"
        "calls, split = [], c._split_candidates\n"
        "c._split_candidates = lambda *a: calls.append(1) or split(*a)\n"
        "fs = (s.sweep_order, s.split_scores, s.add_best_splits)\n"
        "print([len(f.signatures) for f in fs])\n"
        "units = gpd.read_file(libpysal.examples.get_path('sids2.shp')).set_crs(4326)\n"
        "units['unit_id'], units['potential'] = units['FIPS'], units['BIR74'].astype(float)\n"
        "units['births'] = units['BIR79'].astype(float)\n"
        "targets = [BalanceTarget('potential', 0.05), BalanceTarget('births', 0.1)]\n"
        "design_territories(units, 6, targets, seed=1, work_budget=20_000)\n"
        "print([len(f.signatures) for f in fs])\n"
        "print(len(calls) > 0)\n"
    )
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert printed.strip().splitlines()[-3:] == ["[1, 1, 1]", "[1, 1, 1]", "True"]
