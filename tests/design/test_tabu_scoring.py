"""The compiled tabu move scoring gives exactly the floats of the numpy computation it replaced.

Plans depend on these numbers through ties and a stable sort, so equality is exact (``==``), on
random plans of a real map with every objective term on.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_lib.design.graph import UnitGraph, build_unit_graph
from territory_lib.design.improve import LocalSearch, Weights, move_unit
from territory_lib.design.tabu import TabuSearch
from territory_lib.design.tabu_scoring import _pairwise_sum


def reference_moves(ls: LocalSearch, graph: UnitGraph) -> tuple[np.ndarray, ...]:
    """All (unit, from, to, shared with from, shared with to) boundary moves, as numpy found them."""
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    labels = np.asarray(ls.labels)
    k = ls.k
    lr, lc = labels[rows], labels[graph.indices]
    same = lr == lc
    shared_in = np.bincount(rows[same], weights=graph.shared[same], minlength=ls.n)
    cross = ~same
    key = rows[cross] * k + lc[cross]
    uniq, inverse = np.unique(key, return_inverse=True)
    shared_out = np.bincount(inverse, weights=graph.shared[cross], minlength=len(uniq))
    j = uniq // k
    b = uniq % k
    return j, labels[j], b, shared_in[j], shared_out


def reference_balance(load: np.ndarray, tgt: np.ndarray, tol: np.ndarray, wts: Weights) -> tuple:
    dev = np.where(tgt > 0, np.abs(load / tgt - 1.0), 0.0)
    viol = np.clip(dev - tol, 0, None).sum(axis=1)
    pull = (np.clip(dev - wts.zone * tol, 0, None) ** 2).sum(axis=1)
    return viol, wts.violation * viol + wts.pull * pull


def reference_scores(
    ls: LocalSearch, graph: UnitGraph, tabu_until: np.ndarray, it: int, current, best
) -> tuple:
    """The numpy scoring of one tabu iteration: moves, deltas and the allowed mask."""
    j, a, b, sa, sb = reference_moves(ls, graph)
    wts = ls.weights
    k, nj = ls.k, len(j)
    share, target, tol = np.asarray(ls.share), np.asarray(ls.target), np.asarray(ls.tol)
    load = np.asarray(ls.load)
    sj = share[j]
    both = np.concatenate([a, b])
    with np.errstate(all="ignore"):
        viol, cost = reference_balance(
            np.concatenate([load, load[a] - sj, load[b] + sj]),
            np.concatenate([target, target[both]]),
            tol,
            wts,
        )
        viol0, cost0 = viol[:k], cost[:k]
        delta = cost[k : k + nj] + cost[k + nj :] - cost0[a] - cost0[b]
        dviol = viol[k : k + nj] + viol[k + nj :] - viol0[a] - viol0[b]
        if ls.polygons and wts.pp:
            area, perim = np.asarray(ls.area), np.asarray(ls.perim)
            lj, aj = graph.perimeter[j], graph.area[j]
            ar = np.concatenate([area, area[a] - aj, area[b] + aj])
            pe = np.concatenate([perim, perim[a] - lj + 2 * sa, perim[b] + lj - 2 * sb])
            pp = np.where(pe > 0, 4 * math.pi * ar / pe**2, 0.0)
            delta -= wts.pp * (pp[k : k + nj] + pp[k + nj :] - pp[:k][a] - pp[:k][b])
        if wts.inertia:
            sw, sx, sy, sq = (np.asarray(v) for v in (ls.sw, ls.sx, ls.sy, ls.sq))
            w = np.asarray(ls.w)[j]
            dx, dy, dq = w * np.asarray(ls.x)[j], w * np.asarray(ls.y)[j], w * np.asarray(ls.q)[j]
            i0 = np.where(sw > 1e-15, sq - (sx**2 + sy**2) / sw, 0.0)
            sign = np.repeat([-1.0, 1.0], nj)
            w2, dx2, dy2, dq2 = (np.concatenate([v, v]) for v in (w, dx, dy, dq))
            s = sw[both] + sign * w2
            moved_x = sx[both] + sign * dx2
            moved_y = sy[both] + sign * dy2
            moved = np.where(s > 1e-15, sq[both] + sign * dq2 - (moved_x**2 + moved_y**2) / s, 0.0)
            di = moved[:nj] + moved[nj:] - i0[a] - i0[b]
            delta += wts.inertia * ls.k * di / ls.inertia_ref
        ddis = np.zeros(len(j))
        if ls.current is not None:
            cur = np.asarray(ls.current)[j]
            ddis = np.asarray(ls.dw)[j] * ((cur != b).astype(float) - (cur != a))
            delta += wts.disruption * ddis
    allowed = np.asarray(ls.movable)[j] & (np.asarray(ls.size)[a] > 1)
    if wts.hard_band:
        allowed &= dviol <= 1e-12
    if ls.current is not None and math.isfinite(ls.cap):
        allowed &= (ddis <= 0) | (ls.disrupted + ddis <= ls.cap + 1e-12)
    new_viol = np.round(current[0] + dviol, 12)
    aspire = (new_viol < best[0]) | ((new_viol == best[0]) & (current[1] + delta < best[1] - 1e-12))
    allowed &= (tabu_until[j] <= it) | aspire
    return j, a, b, sa, sb, delta, dviol, ddis, np.flatnonzero(allowed)


@pytest.fixture(scope="module")
def georgia(georgia_counties: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, UnitGraph]:
    return georgia_counties, build_unit_graph(
        georgia_counties, georgia_counties["AreaKey"].astype(str).to_numpy()
    )


def random_search(
    units: gpd.GeoDataFrame, graph: UnitGraph, seed: int, k: int, hard_band: bool
) -> LocalSearch:
    """A random (not contiguous) plan with unequal targets, locks, current labels and a disruption cap."""
    rng = np.random.default_rng(seed)
    share = units[["TotPop90", "PctRural", "PctBach"]].to_numpy(float)
    share = share / share.sum(axis=0)
    target = rng.dirichlet(np.ones(k), size=3).T
    target[rng.integers(k), rng.integers(3)] = 0.0  # a zero target: that measure is not balanced there
    labels = rng.integers(0, k, graph.n)
    # One territory of a single unit, which may not give it away.
    labels[labels == k - 1] = 0
    labels[rng.integers(graph.n)] = k - 1
    ls = LocalSearch(
        graph,
        labels,
        share,
        target,
        np.array([0.05, 0.25, 0.0]),
        rng.random(graph.n) > 0.1,
        current=rng.integers(-1, k, graph.n),
        disruption_weight=rng.dirichlet(np.ones(graph.n)),
        disruption_cap=float(rng.uniform(0.4, 0.9)),
        inertia_weight=rng.gamma(2.0, 1.0, graph.n),
    )
    ls.disrupted = float(rng.uniform(0.3, 0.5))  # near the cap, so that the cap binds for some moves
    ls.weights = Weights(
        violation=100.0, pull=20.0, zone=float(rng.uniform(0, 1)), pp=1.3, inertia=0.3, disruption=2.0,
        hard_band=hard_band,
    )  # fmt: skip
    return ls


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 12), hard_band=st.booleans())
def test_compiled_scores_equal_numpy_exactly(georgia, seed: int, k: int, hard_band: bool) -> None:
    units, graph = georgia
    ls = random_search(units, graph, seed, k, hard_band)
    rng = np.random.default_rng(seed + 1)
    tabu_until = rng.integers(0, 20, graph.n)
    current = (ls.violation(), ls.objective())
    # A best plan as good as one move's result, but for less than the 1e-12 a tabu move must gain
    # to be allowed: other moves reach its violation with higher or lower objectives.
    ref = reference_scores(ls, graph, tabu_until, 10, current, (0.0, 0.0))
    middle = len(ref[0]) // 2
    best = (float(np.round(current[0] + ref[6][middle], 12)), current[1] + float(ref[5][middle]) + 5e-13)
    ref = reference_scores(ls, graph, tabu_until, 10, current, best)
    got = TabuSearch(ls, graph).score(tabu_until, 10, current, best)
    names = ("unit", "source", "destination", "shared_a", "shared_b", "delta", "dviol", "ddis", "allowed")
    for name, want, have in zip(names, ref, got, strict=True):
        assert want.shape == have.shape, name
        assert (want == have).all(), name


def test_state_follows_the_moves_of_a_search(georgia) -> None:
    """After moves (and after recombination-style moves outside the search), scores stay exact."""
    units, graph = georgia
    ls = random_search(units, graph, 5, 6, False)
    search = TabuSearch(ls, graph)
    tabu_until = np.zeros(graph.n, dtype=np.int64)
    for step in range(30):
        current = (ls.violation(), ls.objective())
        got = search.score(tabu_until, step, current, (0.0, 0.0))
        ref = reference_scores(ls, graph, tabu_until, step, current, (0.0, 0.0))
        for want, have in zip(ref, got, strict=True):
            assert (want == have).all()
        pick = int(got[-1][step % len(got[-1])])
        unit, frm, to = int(got[0][pick]), int(got[1][pick]), int(got[2][pick])
        ls._apply(unit, frm, to, float(got[3][pick]), float(got[4][pick]))
        search._moved(unit, frm, to)
        if step % 10 == 9:
            # A move made outside the search (recombination does this between runs).
            move_unit(ls, unit, frm)
            search.load_state()


@pytest.mark.parametrize("length", [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 64, 127, 128, 129, 300, 1031])
def test_sums_add_up_as_numpy_does(length: int) -> None:
    rng = np.random.default_rng(length)
    values = rng.random(length) * 10.0 ** rng.integers(-8, 8, length)
    assert _pairwise_sum(values) == values.sum()
    rows = rng.random((50, length)) * 10.0 ** rng.integers(-8, 8, (50, length))
    assert [_pairwise_sum(row) for row in rows] == rows.sum(axis=1).tolist()


def test_the_warm_up_loads_the_compiled_version_every_search_uses() -> None:
    """A kernel started ahead runs ``warm_up()``; had its arrays other types (read-only, another
    dtype) than a real search's, numba would compile a second version in the step instead."""
    import subprocess
    import sys

    probe = (
        "import geopandas as gpd, libpysal\n"
        "from territory_lib.design import BalanceTarget, design_territories\n"
        "from territory_lib.design.tabu import warm_up\n"
        "from territory_lib.design.tabu_scoring import score_moves\n"
        "warm_up()\n"
        "units = gpd.read_file(libpysal.examples.get_path('sids2.shp')).set_crs(4326)\n"
        "units['unit_id'], units['potential'] = units['FIPS'], units['BIR74'].astype(float)\n"
        "design_territories(units, 6, [BalanceTarget('potential', 0.05)], seed=1, work_budget=20_000)\n"
        "print(len(score_moves.signatures))\n"
    )
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert printed.split()[-1] == "1"
