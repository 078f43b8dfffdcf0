"""The compiled tabu search gives exactly the floats and moves of the numpy/Python code it replaced.

Plans depend on these numbers through ties and a stable sort, so equality is exact (``==``), on
random plans of a real map with every objective term on; the whole compiled search is checked
against the Python loop it replaced, kept here as the reference.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from territory_lib.design.budget import WorkBudget
from territory_lib.design.graph import UnitGraph, build_unit_graph
from territory_lib.design.improve import LocalSearch, Weights, move_unit
from territory_lib.design.tabu import CLOCK_CHECK_EVERY, TabuSearch
from territory_lib.design.tabu_scoring import _pairwise_sum, round12


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
        "from territory_lib.design.tabu_scoring import tabu_iterations\n"
        "warm_up()\n"
        "units = gpd.read_file(libpysal.examples.get_path('sids2.shp')).set_crs(4326)\n"
        "units['unit_id'], units['potential'] = units['FIPS'], units['BIR74'].astype(float)\n"
        "design_territories(units, 6, [BalanceTarget('potential', 0.05)], seed=1, work_budget=20_000)\n"
        "print(len(tabu_iterations.signatures))\n"
    )
    printed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert printed.split()[-1] == "1"


def reference_run(
    ls: LocalSearch,
    graph: UnitGraph,
    weights: Weights,
    rng: np.random.Generator,
    budget: WorkBudget,
    max_iter: int,
    patience: int,
    tenure: tuple[int, int],
    feasible_patience: int | None,
) -> None:
    """The tabu loop as it ran in Python before it was compiled (scoring compiled already)."""
    search = TabuSearch(ls, graph)
    ls.weights = weights
    tabu_until = np.zeros(ls.n, dtype=np.int64)
    search.load_state()
    current_obj, current_viol = ls.objective(), ls.violation()
    best = (round(current_viol, 12), current_obj)
    best_labels = list(ls.labels)
    since_best = 0
    for it in range(max_iter):
        limit = patience if feasible_patience is None or best[0] > 0 else feasible_patience
        if since_best >= limit or budget.exhausted():
            break
        j, a, b, sa, sb, delta, dviol, _, idx = search.score(
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
            if ls._stays_connected(unit, frm):
                ls._apply(unit, frm, int(b[pick]), float(sa[pick]), float(sb[pick]))
                search.load_state()
                current_obj += float(delta[pick])
                current_viol = max(current_viol + float(dviol[pick]), 0.0)
                tabu_until[unit] = it + int(rng.integers(tenure[0], tenure[1] + 1))
                moved = True
                break
        if not moved:
            break
        key = (round(current_viol, 12), current_obj)
        if key[0] < best[0] or (key[0] == best[0] and key[1] < best[1] - 1e-12):
            best, best_labels, since_best = key, list(ls.labels), 0
        else:
            since_best += 1
    for unit, lab in enumerate(best_labels):
        if ls.labels[unit] != lab:
            move_unit(ls, unit, lab)


def search_state(ls: LocalSearch) -> tuple:
    return (ls.labels, list(ls.label_array), ls.load, ls.size, ls.area, ls.perim, ls.sw, ls.sx, ls.sy,
            ls.sq, ls.disrupted, ls.moves)  # fmt: skip


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(2, 10),
    hard_band=st.booleans(),
    max_iter=st.integers(1, 600),
    patience=st.integers(1, 120),
    feasible_patience=st.none() | st.integers(1, 60),
    tenure=st.tuples(st.integers(1, 8), st.integers(0, 12)).map(lambda t: (t[0], t[0] + t[1])),
    work=st.integers(1, 200_000),
)
def test_the_compiled_search_takes_the_moves_the_python_loop_took(
    georgia, seed, k, hard_band, max_iter, patience, feasible_patience, tenure, work
) -> None:
    units, graph = georgia
    mine, theirs = (
        random_search(units, graph, seed, k, hard_band),
        random_search(units, graph, seed, k, hard_band),
    )
    rng_mine, rng_theirs = np.random.default_rng(seed), np.random.default_rng(seed)
    budget_mine, budget_theirs = WorkBudget(limit=work, spent=7), WorkBudget(limit=work, spent=7)
    TabuSearch(mine, graph).run(
        mine.weights, rng_mine, budget_mine, max_iter, patience, tenure, feasible_patience
    )
    reference_run(
        theirs,
        graph,
        theirs.weights,
        rng_theirs,
        budget_theirs,
        max_iter,
        patience,
        tenure,
        feasible_patience,
    )
    assert search_state(mine) == search_state(theirs)
    assert budget_mine.spent == budget_theirs.spent
    assert rng_mine.bit_generator.state == rng_theirs.bit_generator.state
    assert mine.objective() == theirs.objective()


def test_a_search_with_a_clock_cap_reads_the_clock_between_slices(georgia) -> None:
    """A deadline already passed stops the search after one slice, and says the clock stopped it."""
    units, graph = georgia
    ls = random_search(units, graph, 11, 6, False)
    budget = WorkBudget(limit=10**12, deadline=0.0)
    TabuSearch(ls, graph).run(ls.weights, np.random.default_rng(0), budget, max_iter=5000, patience=5000)
    assert budget.timed_out
    assert 0 < ls.moves <= CLOCK_CHECK_EVERY + len(ls.labels)  # one slice, then the best plan restored
    unlimited = random_search(units, graph, 11, 6, False)
    TabuSearch(unlimited, graph).run(
        unlimited.weights, np.random.default_rng(0), WorkBudget(limit=10**12), max_iter=5000, patience=5000
    )
    assert unlimited.moves > ls.moves


@settings(max_examples=3000, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False) | st.floats(-20_000, 20_000))
def test_round12_is_pythons_round(x: float) -> None:
    got = round12(x)
    assert got == round(x, 12) and math.copysign(1, got) == math.copysign(1, round(x, 12))


@pytest.mark.parametrize(
    "base", [1 / 8192, 3 / 8192, 5e-13, 2.5e-12, 4503.599627370497, 6004.5, 9007.199254740991]
)
def test_round12_breaks_ties_as_python_does(base: float) -> None:
    """Exact ties in binary (odd multiples of 2**-13 have 13 decimals) and values near 2**52 / 1e12."""
    for x in (base, math.nextafter(base, 0), math.nextafter(base, 1), *(base * i for i in range(1, 400, 3))):
        assert round12(x) == round(x, 12) and round12(-x) == round(-x, 12)
