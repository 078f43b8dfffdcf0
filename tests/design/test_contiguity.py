"""The compiled contiguity checks and Dijkstra give exactly the answers of the scipy code they replaced.

Plans depend on the distances through ties and stable sorts, so they must be equal bit for bit; the
connectivity verdicts are checked against scipy's connected components on random plans of a real map.
"""

from __future__ import annotations

import subprocess
import sys

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse
from scipy.sparse.csgraph import connected_components, dijkstra

from territory_lib.design.contiguity import multi_source_dijkstra, stays_connected, subset_connected
from territory_lib.design.graph import UnitGraph, build_unit_graph
from territory_lib.design.improve import FOUR_PI, LocalSearch, Weights, move_unit
from territory_lib.design.recombine import _Context
from territory_lib.design.recombine_scoring import score_prefixes

SLOW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def georgia(georgia_counties: gpd.GeoDataFrame) -> UnitGraph:
    return build_unit_graph(georgia_counties, georgia_counties["AreaKey"].astype(str).to_numpy())


def components(graph: UnitGraph, member: np.ndarray) -> np.ndarray:
    """Component number of each member unit (-1 elsewhere), by scipy."""
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    keep = member[rows] & member[graph.indices]
    mat = sparse.csr_matrix(
        (np.ones(int(keep.sum())), (rows[keep], graph.indices[keep])), shape=(graph.n, graph.n)
    )
    comp = connected_components(mat, directed=False)[1]
    return np.where(member, comp, -1)


def reference_stays(graph: UnitGraph, labels: np.ndarray, j: int, a: int) -> bool:
    """The neighbours of ``j`` in ``a`` lie in one piece of ``a`` without ``j`` (what the search asks)."""
    member = labels == a
    member[j] = False
    nbrs = graph.indices[graph.indptr[j] : graph.indptr[j + 1]]
    return len(set(components(graph, member)[nbrs[member[nbrs]]].tolist())) <= 1


def grown_plan(graph: UnitGraph, k: int, rng: np.random.Generator) -> np.ndarray:
    """A contiguous random plan: territories grown unit by unit from random seeds."""
    labels = np.full(graph.n, -1)
    labels[rng.choice(graph.n, k, replace=False)] = np.arange(k)
    while (labels < 0).any():
        v = int(rng.choice(np.flatnonzero(labels >= 0)))
        nbrs = graph.indices[graph.indptr[v] : graph.indptr[v + 1]]
        free = nbrs[labels[nbrs] < 0]
        if len(free):
            labels[rng.choice(free)] = labels[v]
    return labels


@SLOW
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 12), contiguous=st.booleans())
def test_every_verdict_equals_the_components_of_the_territory(
    georgia, seed: int, k: int, contiguous: bool
) -> None:
    graph = georgia
    rng = np.random.default_rng(seed)
    labels = grown_plan(graph, k, rng) if contiguous else rng.integers(0, k, graph.n)
    indptr, indices = graph.indptr.astype(np.int64), graph.indices.astype(np.int64)
    owner, nxt = np.full(graph.n, -2, np.int64), np.empty(graph.n, np.int64)
    verdicts = []
    for j in range(graph.n):
        a = int(labels[j])
        got = stays_connected(indptr, indices, labels.astype(np.int64), j, a, owner, nxt)
        assert got == reference_stays(graph, labels, j, a), j
        assert (owner == -2).all()  # the scratch is clean for the next call
        verdicts.append(got)
    if contiguous and k > 1:
        assert not all(verdicts)  # some unit cuts its territory on a grown plan of Georgia


def test_the_search_keeps_its_label_array_with_its_moves(georgia) -> None:
    rng = np.random.default_rng(3)
    labels = grown_plan(georgia, 5, rng)
    share = np.full((georgia.n, 1), 1 / georgia.n)
    ls = LocalSearch(georgia, labels, share, np.full((5, 1), 0.2), np.array([0.1]), np.ones(georgia.n, bool))
    for _ in range(200):
        j = int(rng.integers(georgia.n))
        nbrs = georgia.indices[georgia.indptr[j] : georgia.indptr[j + 1]]
        move_unit(ls, j, int(ls.labels[int(rng.choice(nbrs))]))
        assert ls.label_array.tolist() == ls.labels
        a = ls.labels[j]
        assert ls._stays_connected(j, a) == reference_stays(georgia, np.asarray(ls.labels), j, a)


@SLOW
@given(seed=st.integers(0, 2**32 - 1), density=st.floats(0.0, 1.0))
def test_subset_connectivity_equals_scipy(georgia, seed: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    member = rng.random(georgia.n) < density
    want = member.any() and len(set(components(georgia, member)[member].tolist())) == 1
    got = subset_connected(georgia.indptr.astype(np.int64), georgia.indices.astype(np.int64), member)
    assert got == want


@SLOW
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 6), n_sources=st.integers(1, 4))
def test_distances_equal_scipy_bit_for_bit(georgia, seed: int, k: int, n_sources: int) -> None:
    """On the union of two territories with noisy symmetric edge lengths, as recombination uses it."""
    rng = np.random.default_rng(seed)
    labels = grown_plan(georgia, k, rng) if rng.random() < 0.7 else rng.integers(0, k, georgia.n)
    nodes = np.flatnonzero(labels <= 1)
    local = np.full(georgia.n, -1)
    local[nodes] = np.arange(len(nodes))
    rows = np.repeat(np.arange(georgia.n), np.diff(georgia.indptr))
    keep = (local[rows] >= 0) & (local[georgia.indices] >= 0)
    r, c = local[rows[keep]], local[georgia.indices[keep]]
    xy = georgia.xy[nodes]
    base = np.maximum(np.linalg.norm(xy[r] - xy[c], axis=1), 1e-9)
    lengths = base * rng.uniform(0.7, 1.3, len(base))
    position = {(int(i), int(j)): e for e, (i, j) in enumerate(zip(r, c, strict=True))}
    reverse = np.array([position[int(j), int(i)] for i, j in zip(r, c, strict=True)], dtype=np.int64)
    lengths = (lengths + lengths[reverse]) / 2
    indptr = np.searchsorted(r, np.arange(len(nodes) + 1))
    sources = np.unique(rng.integers(0, len(nodes), n_sources))
    graph = sparse.csr_matrix((lengths, c, indptr), shape=(len(nodes), len(nodes)))
    want = dijkstra(graph, indices=sources, min_only=True)
    got = multi_source_dijkstra(indptr, c, lengths, sources)
    assert np.array_equal(want, got)  # inf where a piece is cut off
    assert got.tobytes() == want.tobytes()


def test_the_warm_up_compiles_the_versions_a_design_uses() -> None:
    """After ``tabu.warm_up()`` a design must not compile another version of any compiled function here."""
    probe = (
        "import geopandas as gpd, libpysal\n"
        "from territory_lib.design import BalanceTarget, design_territories, contiguity as c\n"
        "from territory_lib.design.recombine_scoring import recombine_pairs\n"
        "from territory_lib.design.tabu_scoring import tabu_iterations\n"
        "from territory_lib.design.tabu import warm_up\n"
        "warm_up()\n"
        "fs = (c.stays_connected, c.subset_connected, c.multi_source_dijkstra, recombine_pairs,\n"
        "      tabu_iterations)\n"
        "print([len(f.signatures) for f in fs])\n"
        "units = gpd.read_file(libpysal.examples.get_path('sids2.shp')).set_crs(4326)\n"
        "units['unit_id'], units['potential'] = units['FIPS'], units['BIR74'].astype(float)\n"
        "design_territories(units, 6, [BalanceTarget('potential', 0.05)], seed=1, work_budget=20_000)\n"
        "print([len(f.signatures) for f in fs])\n"
    )
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert printed.strip().splitlines()[-2:] == ["[1, 1, 1, 1, 1]", "[1, 1, 1, 1, 1]"]


def reference_prefix_scores(ctx: _Context, order: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """The numpy scoring of prefix splits that the compiled pass replaced."""
    ls, wts = ctx.ls, ctx.ls.weights
    nu = len(order)
    load_a = np.cumsum(ctx.share[order], axis=0)[:-1]
    hi = np.maximum(rank[ctx.er], rank[ctx.ec])
    lo = np.minimum(rank[ctx.er], rank[ctx.ec])
    inner_a = np.cumsum(np.bincount(hi, weights=ctx.es, minlength=nu))[:-1]
    by_lo = np.bincount(lo, weights=ctx.es, minlength=nu)
    inner_b = (by_lo.sum() - np.cumsum(by_lo))[:-1]
    area_a = np.cumsum(ctx.area[order])[:-1]
    perim_c = np.cumsum(ctx.perim[order])[:-1]
    perim_a = perim_c - 2 * inner_a
    area_b = ctx.area.sum() - area_a
    perim_b = ctx.perim.sum() - perim_c - 2 * inner_b
    w = ctx.w[order]
    sums_a = (np.cumsum(w)[:-1], np.cumsum(w * ctx.x[order])[:-1], np.cumsum(w * ctx.y[order])[:-1],
              np.cumsum(w * ctx.q[order])[:-1])  # fmt: skip
    load_b = ctx.total - load_a
    cost = np.zeros(nu - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for load, tgt in ((load_a, ctx.ta), (load_b, ctx.tb)):
            dev = np.where(tgt > 0, np.abs(load / tgt - 1.0), 0.0)
            cost += wts.violation * np.clip(dev - ctx.tol, 0, None).sum(axis=1)
            cost += wts.pull * (np.clip(dev - wts.zone * ctx.tol, 0, None) ** 2).sum(axis=1)
        shape = np.zeros(nu - 1)
        if ls.polygons and wts.pp:
            pp = np.where(perim_a > 0, FOUR_PI * area_a / perim_a**2, 0.0)
            pp += np.where(perim_b > 0, FOUR_PI * area_b / perim_b**2, 0.0)
            shape -= wts.pp * pp
        if wts.inertia:
            totals = (ctx.w.sum(), (ctx.w * ctx.x).sum(), (ctx.w * ctx.y).sum(), (ctx.w * ctx.q).sum())
            inertia = np.zeros(nu - 1)
            for sw, sx, sy, sq in (sums_a, tuple(t - s for t, s in zip(totals, sums_a, strict=True))):
                inertia += np.where(sw > 1e-15, sq - (sx**2 + sy**2) / sw, 0.0)
            shape += wts.inertia * ls.k * inertia / ls.inertia_ref
    return cost + shape


@SLOW
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 8), m=st.integers(1, 11), terms=st.integers(0, 3))
def test_prefix_scores_equal_numpy_bit_for_bit(georgia, seed: int, k: int, m: int, terms: int) -> None:
    """Random contiguous plans, 1 to 11 measures (numpy sums 8 or more pairwise), every term on or off."""
    rng = np.random.default_rng(seed)
    labels = grown_plan(georgia, k, rng)
    share = rng.gamma(1.0, 1.0, (georgia.n, m)) * 10.0 ** rng.integers(-3, 3, m)
    share /= share.sum(axis=0)
    target = rng.dirichlet(np.ones(k), size=m).T
    target[rng.integers(k), rng.integers(m)] = 0.0
    ls = LocalSearch(georgia, labels, share, target, rng.uniform(0, 0.2, m), np.ones(georgia.n, bool),
                     inertia_weight=rng.gamma(2.0, 1.0, georgia.n))  # fmt: skip
    ls.weights = Weights(zone=float(rng.uniform(0, 1)), pp=1.3 * (terms & 1), inertia=0.3 * (terms >> 1))
    rows = np.repeat(np.arange(georgia.n), np.diff(georgia.indptr))
    cross = labels[rows] != labels[georgia.indices]
    a, b = int(labels[rows[cross][0]]), int(labels[georgia.indices[cross][0]])
    nodes = np.flatnonzero((labels == a) | (labels == b))
    local = np.full(georgia.n, -1)
    local[nodes] = np.arange(len(nodes))
    keep = (local[rows] >= 0) & (local[georgia.indices] >= 0)
    ctx = _Context(ls, a, b, ls.arrays.share[nodes], local[rows[keep]], local[georgia.indices[keep]],
                   georgia.shared[keep], nodes)  # fmt: skip
    for _ in range(5):
        order = rng.permutation(len(nodes))
        rank = np.empty(len(nodes), dtype=np.int64)
        rank[order] = np.arange(len(nodes))
        want = reference_prefix_scores(ctx, order, rank)
        assert score_prefixes(order, rank, *ctx.prefix_arguments()).tobytes() == want.tobytes()
