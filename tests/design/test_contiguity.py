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
from territory_lib.design.improve import LocalSearch, move_unit

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
    """After ``tabu.warm_up()`` a design must not compile another version of any contiguity function."""
    probe = (
        "import geopandas as gpd, libpysal\n"
        "from territory_lib.design import BalanceTarget, design_territories, contiguity as c\n"
        "from territory_lib.design.tabu import warm_up\n"
        "warm_up()\n"
        "fs = (c.stays_connected, c.subset_connected, c.multi_source_dijkstra)\n"
        "print([len(f.signatures) for f in fs])\n"
        "units = gpd.read_file(libpysal.examples.get_path('sids2.shp')).set_crs(4326)\n"
        "units['unit_id'], units['potential'] = units['FIPS'], units['BIR74'].astype(float)\n"
        "design_territories(units, 6, [BalanceTarget('potential', 0.05)], seed=1, work_budget=20_000)\n"
        "print([len(f.signatures) for f in fs])\n"
    )
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert printed.strip().splitlines()[-2:] == ["[1, 1, 1]", "[1, 1, 1]"]
