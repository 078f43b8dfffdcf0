"""The territory design entry point: validate inputs, build the unit graph, search, report.

:func:`design_territories` partitions units into ``k`` contiguous territories balanced on one or
more measures, compact, honouring seeds, locks, unequal targets and (for realignment) a cap on
disruption, and returns a :class:`DesignResult` with the plan, its metrics and plain-language notes.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse.csgraph import connected_components, dijkstra

from territory_lib.design.budget import WorkBudget, default_work_budget
from territory_lib.design.construct import bisect_plan, edge_lengths, grow_balanced
from territory_lib.design.diagnose import (
    EXACT_MAX_UNITS,
    REACH_MAX_UNITS,
    closest_plan,
    forced_load,
    territory_reach,
)
from territory_lib.design.graph import UnitGraph, build_unit_graph
from territory_lib.design.improve import LocalSearch, Weights, move_unit
from territory_lib.design.metrics import inertia_weights, plan_summary, territory_table
from territory_lib.design.recombine import recombine
from territory_lib.design.tabu import TabuSearch
from territory_lib.errors import ConfigError, DataError, InfeasibleError
from territory_lib.geo import to_equal_area

#: Above this many units the search sweeps units in Python order instead of scoring every move
#: with numpy at each step (whose cost grows with the whole map).
LARGE_INSTANCE = 3000
#: Independent starts on small maps, and recombination-plus-tabu rounds of the shape phase.
STARTS = 3
ANCHORED_STARTS = 6
#: Matchings of a free plan to the seeds tried per anchored start.
ANCHOR_MATCHINGS = 6
SHAPE_ROUNDS = 2
#: Large maps: a territory still out of band after the sweeps is reshaped with the territories up
#: to this many steps away (in the territory adjacency) by the tabu search of small maps, on a
#: region of at most this many units; the region's search stops after this many iterations
#: without a better plan.
REGION_HOPS = 2
REGION_MAX_UNITS = 2500
REGION_PATIENCE = 400
#: The regional search is for a few stuck territories: with more out of band than this share of
#: the territories (at least three), the plan is far from the bands everywhere and it is skipped.
REGION_MAX_SHARE = 0.05
#: Large maps: an anchored plan (a free plan whose territories were extended to the seeds) that
#: the first sweeps leave further from the bands than this many times the free plan's deviation
#: beyond them (and by at least the margin) is not searched further: the recombination rounds
#: recover a fraction of such a gap (US counties, reps in metro areas: 7.8 down to 4.5 against the
#: free plan's 0.24) at the cost of most of the search, which the free attempt after it needs.
GIVE_UP_FACTOR = 4.0
GIVE_UP_MARGIN = 0.5
#: Sweeps after which that test is made (on 29,295 ZIP areas the sweeps to convergence cost two
#: minutes and left the anchored plan at 15.0 against the free plan's 0).
GIVE_UP_SWEEPS = 3
#: Large maps: rounds of recombining the out-of-band pairs stop once a round lowers the total
#: deviation beyond the bands by less than this share (later rounds rarely gain more).
RECOMBINE_GAIN = 0.02
#: Effort of the exact checks that explain an out-of-band plan (per MIP solve, and the total after
#: which no further territory is checked) and of the exact model that looks for a plan closer to
#: the bands on small anchored maps, in node work (branch-and-bound nodes × model columns, see
#: :func:`~territory_lib.design.diagnose.node_limit`): limits that stop HiGHS at the same point on
#: every machine. On a 500-unit map a reach solve gets about 40 nodes (a few seconds).
REACH_NODE_WORK = 150_000
#: Large maps: units of an out-of-band territory (its heaviest) whose reach is checked exactly,
#: each on the region a territory holding it can span (when that has at most REACH_MAX_UNITS).
REACH_CANDIDATES = 5
REACH_TOTAL_NODE_WORK = 300_000
EXACT_NODE_WORK = 2_000_000
#: Wall-clock safety cap per exact solve; the node limits normally stop them long before.
MIP_SAFETY_SECONDS = 60.0


@dataclass(frozen=True)
class BalanceTarget:
    """A measure to balance and its tolerance band.

    Parameters
    ----------
    column : str
        Column of ``units`` holding the measure (non-negative numbers).
    tolerance : float
        Allowed relative deviation of each territory's total from its target, e.g. 0.05 = ±5 %.
    """

    column: str
    tolerance: float = 0.05

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise ConfigError(f"balance column must be a non-empty string, got {self.column!r}.")
        if not (isinstance(self.tolerance, int | float) and 0 < self.tolerance < 1):
            raise ConfigError(
                f"balance tolerance for {self.column!r} must be a number in (0, 1), got {self.tolerance!r}; "
                "e.g. 0.05 for ±5 %."
            )


@dataclass
class DesignResult:
    """A territory plan with its metrics.

    Attributes
    ----------
    assignment : pandas.Series
        Territory label per unit id (index: unit ids, name ``territory_id``).
    territories : pandas.DataFrame
        One row per territory: ``territory_id, n_units``, per measure its total and relative
        deviation (``<measure>_dev``), ``polsby_popper``, ``inertia`` (km²), ``contiguous``.
    summary : dict
        Plan-level metrics (worst deviation per measure, mean Polsby-Popper, total inertia,
        all_contiguous, seconds, and with a current plan: units_moved, share_moved, …).
    moves : pandas.DataFrame
        Units whose territory changed from the current plan: ``unit_id, from_territory, to_territory``.
    notes : list of str
        Plain-language notes: joins made to the graph, diagnostics, what blocks balance.
    feasible : bool
        Whether every balance band, contiguity, every lock and the disruption cap hold.
    work : int
        Work units the search spent (candidate moves scored; see :mod:`territory_lib.design.budget`).
    work_budget : int
        Work units it was allowed.
    """

    assignment: pd.Series
    territories: pd.DataFrame
    summary: dict[str, float | int | bool | str]
    moves: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    feasible: bool = True
    work: int = 0
    work_budget: int = 0

    def to_csv(self, path: str | Path) -> Path:
        """Write ``unit_id,territory_id`` rows to ``path`` and return the path."""
        path = Path(path)
        frame = self.assignment.rename("territory_id").rename_axis("unit_id").reset_index()
        frame.to_csv(path, index=False)
        return path

    def metrics_text(self) -> str:
        """The territory table and plan summary as aligned plain text, for printing."""
        table = self.territories.copy()
        for col in table.columns:
            if col.endswith("_dev"):
                table[col] = (table[col] * 100).map(lambda v: f"{v:+.2f}%")
        for col in ("polsby_popper",):
            table[col] = table[col].map(lambda v: "n/a" if pd.isna(v) else f"{v:.3f}")
        table["inertia"] = table["inertia"].map(lambda v: f"{v:.1f}")
        lines = [table.to_string(index=False), ""]
        for key, value in self.summary.items():
            if isinstance(value, float):
                shown = f"{value * 100:.2f}%" if key.startswith(("max_dev_", "share_")) else f"{value:.4g}"
            else:
                shown = str(value)
            lines.append(f"{key}: {shown}")
        lines.append(f"feasible: {self.feasible}")
        lines.append(f"work: {self.work:,} of {self.work_budget:,} work units (candidate moves scored)")
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _parse_balance(balance: Sequence[BalanceTarget] | Mapping[str, float]) -> list[BalanceTarget]:
    if isinstance(balance, Mapping):
        items = [BalanceTarget(str(col), float(tol)) for col, tol in balance.items()]
    elif isinstance(balance, BalanceTarget):
        items = [balance]
    else:
        items = [b if isinstance(b, BalanceTarget) else BalanceTarget(str(b)) for b in balance]
    if not items:
        raise ConfigError("balance is empty: give at least one measure, e.g. {'potential': 0.05}.")
    names = [b.column for b in items]
    if len(set(names)) != len(names):
        raise ConfigError(f"balance lists a column twice: {names}; give each measure once.")
    return items


def _measure_matrix(units: pd.DataFrame, targets: list[BalanceTarget], ids: np.ndarray) -> np.ndarray:
    cols = []
    for bt in targets:
        if bt.column not in units.columns:
            raise ConfigError(
                f"balance column {bt.column!r} is not in units (columns: {list(units.columns)}); "
                "fix the name or add the column."
            )
        values = pd.to_numeric(units[bt.column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            raise DataError(
                f"balance column {bt.column!r} has missing, non-numeric or negative values for units "
                f"{list(ids[bad][:5])}; fill them with numbers ≥ 0."
            )
        if values.sum() <= 0:
            raise DataError(f"balance column {bt.column!r} sums to 0; nothing to balance.")
        cols.append(values)
    return np.column_stack(cols)


def _territory_names(k: int) -> list[str]:
    width = max(2, len(str(k)))
    return [f"T{i + 1:0{width}d}" for i in range(k)]


def _map_seeds(
    seeds: Sequence[str] | pd.DataFrame, units: gpd.GeoDataFrame, ids: np.ndarray, k: int
) -> list[int]:
    """Unit position of each seed: given as unit ids, or as points mapped to the unit they fall in."""
    if isinstance(seeds, pd.DataFrame):
        if isinstance(seeds, gpd.GeoDataFrame):
            points = seeds
            if points.crs is None:
                raise ConfigError("seeds GeoDataFrame has no CRS; set one, e.g. seeds.set_crs(4326).")
        else:
            lat = next((c for c in ("lat", "latitude", "LAT", "Latitude") if c in seeds.columns), None)
            lon = next(
                (c for c in ("lon", "lng", "longitude", "LON", "Longitude") if c in seeds.columns), None
            )
            if lat is None or lon is None:
                raise ConfigError(
                    f"seeds table needs 'lat' and 'lon' columns (has {list(seeds.columns)}); "
                    "or pass a list of unit ids."
                )
            points = gpd.GeoDataFrame(seeds, geometry=gpd.points_from_xy(seeds[lon], seeds[lat]), crs=4326)
        projected = points.to_crs(units.crs)
        joined = gpd.sjoin_nearest(
            projected[[projected.geometry.name]], units[[units.geometry.name]], how="left"
        )
        joined = joined[~joined.index.duplicated(keep="first")]
        positions = joined["index_right"].to_numpy()
    else:
        lookup = {uid: i for i, uid in enumerate(ids)}
        missing = [str(s) for s in seeds if str(s) not in lookup]
        if missing:
            raise ConfigError(
                f"seeds name units that are not in units: {missing[:5]}; use ids from the id column."
            )
        positions = np.array([lookup[str(s)] for s in seeds])
    if len(positions) != k:
        raise ConfigError(
            f"seeds has {len(positions)} entries but k = {k}; give exactly one seed per territory."
        )
    if len(set(positions.tolist())) != k:
        dup = pd.Series(positions).value_counts()
        unit = ids[int(dup.index[0])]
        raise ConfigError(
            f"two seeds fall in the same unit {unit}; move one seed or merge those territories."
        )
    return [int(p) for p in positions]


def _connect_cores(
    graph: UnitGraph, cores: list[list[int]], names: list[str], ids: np.ndarray
) -> list[list[int]]:
    """Join each territory's required units by shortest paths that avoid other territories' units."""
    owner = np.full(graph.n, -1)
    for t, core in enumerate(cores):
        for u in core:
            if owner[u] >= 0 and owner[u] != t:
                raise InfeasibleError(
                    f"unit {ids[u]} is required in both {names[owner[u]]} and {names[t]} "
                    "(locks/seeds conflict); "
                    "drop one of the two."
                )
            owner[u] = t
    lengths = edge_lengths(graph)
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    result = []
    for t, core in enumerate(cores):
        core = sorted(set(core))
        if len(core) <= 1:
            result.append(core)
            continue
        # Paths may use free units and this territory's own units only.
        allowed = (owner == -1) | (owner == t)
        keep = allowed[rows] & allowed[graph.indices]
        mat = sparse.csr_matrix((lengths[keep], (rows[keep], graph.indices[keep])), shape=(graph.n, graph.n))
        members = {core[0]}
        for u in core[1:]:
            if u in members:
                continue
            dist, pred = dijkstra(mat, indices=sorted(members), min_only=True, return_predecessors=True)[:2]
            if not np.isfinite(dist[u]):
                blockers = sorted({names[o] for o in owner[owner >= 0] if o != t})
                raise InfeasibleError(
                    f"the locked units of {names[t]} ({ids[core[0]]} and {ids[u]}) cannot be joined without "
                    f"crossing units locked to {', '.join(blockers)}; a contiguous plan is impossible — "
                    "unlock some units or allow those territories to share them."
                )
            v = u
            while v >= 0 and v not in members:
                members.add(int(v))
                owner[v] = t
                v = pred[v]
        result.append(sorted(members))
    return result


def _repair_contiguity(
    graph: UnitGraph, labels: np.ndarray, k: int, share: np.ndarray, cores: list[list[int]]
) -> np.ndarray:
    """Make every territory connected: keep its piece holding its locked units (else its heaviest
    piece) and hand other pieces to neighbours.

    Units labelled ``-1`` (no current territory) are handed out the same way; locked units and the
    paths joining them are put in their territory first.
    """
    labels = labels.copy()
    for t, core in enumerate(cores):
        labels[core] = t
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    weight = share.sum(axis=1) + 1e-12
    same = (labels[rows] == labels[graph.indices]) & (labels[rows] >= 0)
    mat = sparse.csr_matrix(
        (np.ones(int(same.sum())), (rows[same], graph.indices[same])), shape=(graph.n,) * 2
    )
    _, comp = connected_components(mat, directed=False)
    for t in range(k):
        members = np.flatnonzero(labels == t)
        if len(members) == 0:
            continue
        pieces = comp[members]
        mass = pd.Series(weight[members]).groupby(pieces).sum()
        if cores[t]:
            mass[comp[cores[t][0]]] = np.inf
        keep = mass.index[np.argmax(mass.to_numpy())]
        labels[members[pieces != keep]] = -1
    nbrs = graph.neighbour_lists()
    while (labels < 0).any():
        progress = False
        for u in np.flatnonzero(labels < 0).tolist():
            counts: dict[int, int] = {}
            for v in nbrs[u]:
                if labels[v] >= 0:
                    counts[int(labels[v])] = counts.get(int(labels[v]), 0) + 1
            if counts:
                labels[u] = max(sorted(counts), key=lambda t: counts[t])
                progress = True
        if not progress:
            labels[labels < 0] = 0
    return labels


def _pairs(ls: LocalSearch) -> list[tuple[int, int]]:
    """Adjacent territory pairs, sorted."""
    labels = np.asarray(ls.labels)
    out: set[tuple[int, int]] = set()
    for j in range(ls.n):
        for v in ls.nbrs[j]:
            a, b = labels[j], labels[v]
            if a != b:
                out.add((int(min(a, b)), int(max(a, b))))
    return sorted(out)


def _violating_pairs(ls: LocalSearch) -> list[tuple[int, int]]:
    bad = {t for t in range(ls.k) if ls._balance_cost(t, ls.load[t])[0] > 0}
    return [p for p in _pairs(ls) if p[0] in bad or p[1] in bad]


@dataclass
class _Search:
    """Everything the optimiser needs, already validated."""

    graph: UnitGraph
    share: np.ndarray
    target: np.ndarray
    tolerance: np.ndarray
    movable: np.ndarray
    cores: list[list[int]]
    inertia_weight: np.ndarray
    current: np.ndarray | None
    disruption_weight: np.ndarray | None
    disruption_cap: float | None
    budget: WorkBudget

    def new_state(self, labels: np.ndarray) -> LocalSearch:
        return LocalSearch(
            self.graph,
            labels,
            self.share,
            self.target,
            self.tolerance,
            self.movable,
            current=self.current,
            disruption_weight=self.disruption_weight,
            disruption_cap=self.disruption_cap,
            inertia_weight=self.inertia_weight,
        )


def _recombine_pairs(
    ls: LocalSearch, pairs: list[tuple[int, int]], rng: np.random.Generator, budget: WorkBudget
) -> None:
    """Recombine each pair of territories in turn, charging the budget with the splits scored."""
    for a, b in pairs:
        if budget.exhausted():
            return
        before = ls.evaluations
        recombine(ls, a, b, rng)
        budget.spend(ls.evaluations - before)


def _phase_weights(polygons: bool, realign: bool, k: int, coarse: bool) -> tuple[Weights, Weights]:
    """Objective weights for the balance phase and the shape phase.

    ``coarse`` says some units are heavy relative to the bands (one move jumps across a band).
    """
    pp = 1.0 if polygons else 0.0
    inertia = 0.1 if polygons else 1.0
    disruption = 4.0 * k if realign else 0.0
    zone = 1.0 if realign else 0.0
    balance = Weights(
        violation=100.0, pull=20.0, zone=zone, pp=0.1 * pp, inertia=0.1 * inertia, disruption=disruption
    )
    # On coarse units a fresh design must cross out-of-band plans to reach rounder ones (it is
    # re-balanced after each shape round); on fine units, and in a realignment whose moves count,
    # the search stays near its bands.
    shape = Weights(
        violation=3.0 if coarse and not realign else 30.0,
        pull=1.0,
        zone=max(zone, 0.5),
        pp=pp,
        inertia=inertia,
        disruption=disruption,
    )
    return balance, shape


def _optimise(
    search: _Search,
    start: np.ndarray,
    rng: np.random.Generator,
    realign: bool,
    give_up_above: float = np.inf,
) -> LocalSearch:
    """Balance, then shape, from ``start``; small maps by tabu search, large ones by sweeps.

    On a large map, a plan whose deviation beyond the bands is still above ``give_up_above`` after
    :data:`GIVE_UP_SWEEPS` sweeps is returned as it stands (see :data:`GIVE_UP_FACTOR`).
    """
    ls = search.new_state(start)
    heaviest = (search.share.max(axis=0) / search.target.min(axis=0)).max()
    coarse = bool(heaviest > 2 * search.tolerance.min())
    balance_w, shape_w = _phase_weights(search.graph.polygons, realign, ls.k, coarse)
    if search.graph.n <= LARGE_INSTANCE:
        tabu = TabuSearch(ls, search.graph)
        tabu.run(balance_w, rng, search.budget, max_iter=4000, patience=1000, feasible_patience=100)
        ls.weights = shape_w
        best = (_plan_key(ls), ls.labels_array())
        for _ in range(SHAPE_ROUNDS):
            if search.budget.exhausted():
                break
            # The shape phase prices band violation low so that it can cross infeasible plans to
            # rounder ones; a short balance phase then lands back in the bands, and the best plan
            # of all rounds (balance first) is kept.
            ls.weights = shape_w
            _recombine_pairs(ls, _pairs(ls), rng, search.budget)
            tabu.run(shape_w, rng, search.budget, max_iter=3000, patience=300)
            if ls.violation() > 0:
                tabu.run(balance_w, rng, search.budget, max_iter=1000, patience=200, feasible_patience=50)
            ls.weights = shape_w
            key = _plan_key(ls)
            if key < best[0]:
                best = (key, ls.labels_array())
        _restore(ls, best[1])
    else:
        if np.isfinite(give_up_above):
            ls.run(balance_w, rng, search.budget, max_sweeps=GIVE_UP_SWEEPS)
            if ls.violation() > give_up_above:
                return ls
        ls.run(balance_w, rng, search.budget)
        for _ in range(10):
            before = ls.violation()
            if before <= 0 or search.budget.exhausted():
                break
            ls.weights = balance_w
            _recombine_pairs(ls, _violating_pairs(ls), rng, search.budget)
            ls.run(balance_w, rng, search.budget)
            if ls.violation() > (1 - RECOMBINE_GAIN) * before:
                break
        _regional_tabu(search, ls, balance_w, rng)
        ls.run(Weights(**{**shape_w.__dict__, "hard_band": True}), rng, search.budget)
    return ls


def _region_graph(graph: UnitGraph, nodes: np.ndarray) -> UnitGraph:
    """The graph of the units ``nodes`` (sorted positions) alone; edges leaving them are dropped.

    Unit perimeters stay whole, so a territory's perimeter in the region is its perimeter on the map.
    """
    local = np.full(graph.n, -1)
    local[nodes] = np.arange(len(nodes))
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    keep = (local[rows] >= 0) & (local[graph.indices] >= 0)
    sub_rows = local[rows[keep]]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(sub_rows, minlength=len(nodes)))])
    return UnitGraph(
        ids=graph.ids[nodes],
        indptr=indptr,
        indices=local[graph.indices[keep]],
        shared=graph.shared[keep],
        perimeter=graph.perimeter[nodes],
        area=graph.area[nodes],
        xy=graph.xy[nodes],
        polygons=graph.polygons,
    )


def _regional_tabu(search: _Search, ls: LocalSearch, weights: Weights, rng: np.random.Generator) -> None:
    """Large maps: rebalance each out-of-band territory with its surroundings by tabu search.

    Greedy sweeps stop where a heavy unit can only leave its territory by pushing another one out
    of band (a load shift along a chain of territories). The tabu search of small maps crosses such
    plans; run on the region of territories up to :data:`REGION_HOPS` steps from the worst one, it
    costs what the region costs, not the map. The region's plan replaces the old one when it is
    closer to the bands; every territory outside the region is untouched.
    """
    graph = search.graph
    tried: set[int] = set()
    out = sum(ls._balance_cost(t, ls.load[t])[0] > 0 for t in range(ls.k))
    if out > max(3, REGION_MAX_SHARE * ls.k):
        return
    while not search.budget.exhausted():
        viol = np.array([ls._balance_cost(t, ls.load[t])[0] for t in range(ls.k)])
        order = [int(t) for t in np.argsort(-viol, kind="stable") if viol[t] > 0 and int(t) not in tried]
        if not order:
            return
        worst = order[0]
        tried.add(worst)
        labels = ls.labels_array()
        size = np.bincount(labels, minlength=ls.k)
        adjacent: dict[int, set[int]] = {t: set() for t in range(ls.k)}
        for a, b in _pairs(ls):
            adjacent[a].add(b)
            adjacent[b].add(a)
        region, frontier, units = {worst}, [worst], int(size[worst])
        for _ in range(REGION_HOPS):
            ring = sorted({b for t in frontier for b in adjacent[t]} - region, key=lambda t: -viol[t])
            frontier = []
            for t in ring:
                if units + size[t] > REGION_MAX_UNITS:
                    continue
                region.add(t)
                frontier.append(t)
                units += int(size[t])
        terr = np.array(sorted(region))
        local_t = np.full(ls.k, -1)
        local_t[terr] = np.arange(len(terr))
        nodes = np.flatnonzero(local_t[labels] >= 0)
        before = float(viol[terr].sum())
        cap = None
        current = disruption = None
        if search.current is not None:
            assert search.disruption_weight is not None
            current = np.where(
                search.current[nodes] >= 0, local_t[np.clip(search.current[nodes], 0, None)], -1
            )
            disruption = search.disruption_weight[nodes]
            if search.disruption_cap is not None:
                outside = ls.disrupted - float(disruption[(search.current[nodes] != labels[nodes])].sum())
                cap = search.disruption_cap - outside
        sub_graph = _region_graph(graph, nodes)
        sub = LocalSearch(
            sub_graph,
            local_t[labels[nodes]],
            search.share[nodes],
            search.target[terr],
            search.tolerance,
            search.movable[nodes],
            current=current,
            disruption_weight=disruption,
            disruption_cap=cap,
            inertia_weight=search.inertia_weight[nodes],
        )
        TabuSearch(sub, sub_graph).run(
            weights, rng, search.budget, max_iter=20 * len(nodes), patience=REGION_PATIENCE
        )
        if sub.violation() < before - 1e-12:
            new = terr[sub.labels_array()]
            for i in np.flatnonzero(new != labels[nodes]).tolist():
                move_unit(ls, int(nodes[i]), int(new[i]))
            tried.clear()


#: The free plan an anchored design on a large map was drawn from, by :func:`_free_key`: step 2
#: asks for a free design when the anchored one misses a band, and that design starts from the
#: very same plan (one entry: labels, work spent, random state after it).
_FREE_PLANS: dict[str, tuple[np.ndarray, int, dict]] = {}


def _free_key(search: _Search, seed: int) -> str:
    """Digest of everything a free plan on a large map depends on."""
    digest = hashlib.sha1(str(seed).encode())
    graph = search.graph
    for array in (graph.indptr, graph.indices, graph.shared, graph.xy, graph.area, graph.perimeter):
        digest.update(np.ascontiguousarray(array).tobytes())
    for array in (search.share, search.target, search.tolerance, search.inertia_weight):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _anchor_free_plan(
    search: _Search, free: np.ndarray, anchors: list[int], rng: np.random.Generator
) -> np.ndarray:
    """Give each territory of a plan drawn without anchors to one anchor unit (seed), then reach it.

    A territory that does not hold its anchor extends along the path to it that takes the least
    load (never through another anchor); the plan is then made contiguous with every territory's
    required units in place. Territories are matched to anchors by least total path load
    (Hungarian assignment) and by a few randomly perturbed matchings; each candidate gets a short
    balance search and the best one is returned. Heavy units that would crowd around two nearby
    anchors keep the territories they had in the free plan, so a territory may end far from its
    anchor rather than out of balance.
    """
    graph = search.graph
    k = len(anchors)
    rows = np.repeat(np.arange(graph.n), np.diff(graph.indptr))
    lengths = edge_lengths(graph)
    # Entering a unit costs its load (plus a trace of distance to break ties between empty units).
    step = search.share.mean(axis=1)[graph.indices] + 1e-6 * lengths / lengths.mean() / graph.n
    is_anchor = np.zeros(graph.n, dtype=bool)
    is_anchor[anchors] = True
    keep = ~is_anchor[graph.indices]
    mat = sparse.csr_matrix((step[keep], (rows[keep], graph.indices[keep])), shape=(graph.n, graph.n))
    dist, pred = dijkstra(mat, indices=anchors, return_predecessors=True)
    # Least path load from each anchor to each territory: the minimum over the territory's units.
    order = np.argsort(free, kind="stable")
    bounds = np.searchsorted(free[order], np.arange(k))
    cost = np.minimum.reduceat(dist[:, order], bounds, axis=1)
    cost = np.where(np.isfinite(cost), cost, 1e6)
    best: tuple[float, np.ndarray] | None = None
    balance_w, _ = _phase_weights(graph.polygons, False, k, coarse=True)
    # Large maps: one matching, balanced afterwards by the sweeps of the anchored search.
    large = graph.n > LARGE_INSTANCE
    for attempt in range(1 if large else ANCHOR_MATCHINGS):
        noisy = cost if attempt == 0 else cost * rng.uniform(0.5, 1.5, cost.shape)
        _, match = linear_sum_assignment(noisy)
        relabel = np.empty(k, dtype=np.int64)
        relabel[match] = np.arange(k)
        labels = relabel[free]
        for s, unit in enumerate(anchors):
            if labels[unit] == s:
                continue
            members = np.flatnonzero(labels == s)
            # Paths to earlier anchors may have taken the whole territory: it restarts at its anchor.
            v = int(members[np.argmin(dist[s, members])]) if len(members) else unit
            while v != unit and v >= 0:
                labels[v] = s
                v = int(pred[s, v])
            labels[unit] = s
        start = _repair_contiguity(graph, labels, k, search.share, search.cores)
        if large:
            return start
        ls = search.new_state(start)
        TabuSearch(ls, graph).run(balance_w, rng, search.budget, max_iter=600, patience=150)
        if best is None or ls.violation() < best[0]:
            best = (ls.violation(), ls.labels_array())
    assert best is not None
    return best[1]


def _closest(
    search: _Search, labels: np.ndarray, notes: list[str], rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """On a small anchored map, let the exact model find (or prove) the plan closest to the bands.

    Returns the plan and whether it is proved the closest possible.
    """
    ls = search.new_state(labels)
    before = ls.violation()
    proved, exact, excess, timed_out = closest_plan(
        search.graph,
        search.share,
        search.target,
        search.tolerance,
        search.cores,
        labels,
        MIP_SAFETY_SECONDS,
        EXACT_NODE_WORK,
    )
    if exact is not None and excess < before - 1e-9:
        # The model only breaks ties by spread: round the shapes without giving up any balance.
        ls = search.new_state(exact)
        _, shape_w = _phase_weights(search.graph.polygons, False, ls.k, coarse=True)
        TabuSearch(ls, search.graph).run(
            Weights(**{**shape_w.__dict__, "hard_band": True}), rng, search.budget, max_iter=2000
        )
        labels = ls.labels_array()
    if proved:
        notes.append(
            "exact check: no contiguous plan that keeps every seed and lock in its territory comes closer "
            "to the bands than this one."
        )
    elif exact is not None and excess < before - 1e-9:
        notes.append(
            "an exact model improved the searched plan within its node limit, without proving it the "
            "closest possible."
        )
    if timed_out:
        notes.append(_mip_timeout_note("the exact model looking for a plan closer to the bands"))
    return labels, proved


def _mip_timeout_note(what: str) -> str:
    return (
        f"{what} stopped at its safety time limit ({MIP_SAFETY_SECONDS:g} s) before its node limit, so "
        "its answer depends on the machine's speed and load."
    )


def _restore(ls: LocalSearch, labels: np.ndarray) -> None:
    """Put ``ls`` back to the plan ``labels``."""
    for unit in np.flatnonzero(ls.labels_array() != labels).tolist():
        move_unit(ls, unit, int(labels[unit]))


def _plan_key(ls: LocalSearch) -> tuple[float, float]:
    return (round(ls.violation(), 12), ls.objective())


def design_territories(
    units: gpd.GeoDataFrame,
    k: int,
    balance: Sequence[BalanceTarget] | Mapping[str, float],
    *,
    id_column: str = "unit_id",
    current: pd.Series | None = None,
    max_disruption: float | None = None,
    disruption_measure: str | None = None,
    locked: Mapping[str, str] | None = None,
    seeds: Sequence[str] | pd.DataFrame | None = None,
    targets: Sequence[float] | None = None,
    seed: int = 0,
    work_budget: int | None = None,
    time_limit: float | None = None,
    snap: float | None = None,
    graph: UnitGraph | None = None,
) -> DesignResult:
    """Partition units into ``k`` contiguous, balanced, compact territories.

    Parameters
    ----------
    units : geopandas.GeoDataFrame
        One row per unit (polygons, or points such as accounts), with a CRS.
    k : int
        Number of territories.
    balance : sequence of BalanceTarget or mapping
        Measures to balance with their tolerance, e.g. ``{"potential": 0.05}``.
    id_column : str
        Column holding unit ids (converted to str).
    current : pandas.Series, optional
        Current territory label per unit id (realignment); may be unbalanced or non-contiguous.
    max_disruption : float, optional
        Largest share of units (or of ``disruption_measure``) allowed to change territory.
    disruption_measure : str, optional
        Column whose share measures disruption instead of the unit count.
    locked : mapping, optional
        Unit id → territory label that must hold.
    seeds : sequence of str or DataFrame, optional
        ``k`` unit ids anchoring territory ``i`` at ``seeds[i]``, or a table of points
        (GeoDataFrame, or DataFrame with lat/lon) mapped to the units they fall in.
    targets : sequence of float, optional
        Target share of each territory (sums to 1), in label order: with ``current``, its labels
        sorted; otherwise T01..Tk. Default equal shares.
    seed : int
        Random seed: the same inputs, seed and work budget give the same plan on any machine.
    work_budget : int, optional
        Work units the search may spend (candidate moves scored, see
        :mod:`territory_lib.design.budget`); default :func:`~territory_lib.design.budget.default_work_budget`
        of the number of units. Every start and phase stops by this count, never by the clock.
    time_limit : float, optional
        Wall-clock safety cap in seconds (default none). A plan it cuts short depends on the
        machine's speed and load, and its notes say so.
    snap : float, optional
        Polygon maps: gaps and overlaps between neighbours up to this many metres are closed
        before adjacency is built (:mod:`territory_lib.geometry`); default derived from the map.
    graph : UnitGraph, optional
        The units' adjacency, already built (a run builds it once for all steps); used when its
        ids are ``units``' ids in the same order, otherwise built afresh.

    Returns
    -------
    DesignResult
        The plan, its metrics, moves against ``current`` and notes.

    Raises
    ------
    ConfigError
        A parameter is malformed or inconsistent (missing column, wrong number of seeds, …).
    InfeasibleError
        No plan can exist: ``k`` larger than the number of units, conflicting locks.

    Notes
    -----
    Balance comes first: among the plans found, the one with the least total deviation beyond the
    bands wins, then the most compact. A seed's unit always stays in its territory, but the
    territory may grow away from it. When a band does not hold, ``notes`` say why where it can be
    shown: load that seeds or locks force on a territory; on maps of up to 600 units, an exact
    check that no connected territory around a seed or heavy unit can meet every band; with
    seeds, how the best plan found without them compares; and on anchored maps of up to 60 units,
    an exact model that finds or proves the plan closest to the bands.

    Examples
    --------
    >>> result = design_territories(counties, 6, {"BIR79": 0.01}, id_column="FIPS")  # doctest: +SKIP
    >>> print(result.metrics_text())  # doctest: +SKIP
    """
    started = time.perf_counter()
    reasons: dict[tuple[int, str], str] = {}
    if not isinstance(units, gpd.GeoDataFrame):
        raise ConfigError("units must be a GeoDataFrame with one row per unit and a CRS.")
    if units.crs is None:
        raise ConfigError("units have no CRS; set it, e.g. units.set_crs(4326) for longitude/latitude.")
    if id_column not in units.columns:
        raise ConfigError(
            f"id column {id_column!r} is not in units (columns: {list(units.columns)}); pass id_column=."
        )
    ids = units[id_column].astype(str).to_numpy()
    if len(set(ids)) != len(ids):
        dup = pd.Series(ids).value_counts()
        raise DataError(
            f"unit ids in {id_column!r} repeat (e.g. {dup.index[0]!r}); each unit needs its own id."
        )
    n = len(units)
    if not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}.")
    k = int(k)
    if k > n:
        raise InfeasibleError(f"k = {k} territories but only {n} units; lower k to at most {n}.")
    bands = _parse_balance(balance)
    values = _measure_matrix(units, bands, ids)
    names_m = [b.column for b in bands]
    tolerance = np.array([b.tolerance for b in bands])
    share = values / values.sum(axis=0)
    if targets is None:
        target_share = np.full(k, 1.0 / k)
    else:
        target_share = np.asarray(list(targets), dtype=float)
        if len(target_share) != k or (target_share <= 0).any() or abs(target_share.sum() - 1) > 1e-6:
            raise ConfigError(f"targets must be {k} positive shares summing to 1, got {list(targets)}.")
    target = np.repeat(target_share[:, None], len(bands), axis=1)
    if max_disruption is not None and not 0 <= max_disruption <= 1:
        raise ConfigError(f"max_disruption must be a share in [0, 1], got {max_disruption!r}.")
    if max_disruption is not None and current is None:
        raise ConfigError("max_disruption needs a current plan; pass current= (or --current).")
    if work_budget is not None and (
        isinstance(work_budget, bool) or not isinstance(work_budget, int | np.integer) or work_budget < 1
    ):
        raise ConfigError(
            f"work_budget must be a positive whole number of work units, got {work_budget!r}; "
            f"e.g. {default_work_budget(n)} (the default for {n} units)."
        )
    if time_limit is not None and not (isinstance(time_limit, int | float) and time_limit > 0):
        raise ConfigError(f"time_limit must be a positive number of seconds, got {time_limit!r}.")

    projected = to_equal_area(units)
    if graph is None or len(graph.ids) != n or not np.array_equal(np.asarray(graph.ids).astype(str), ids):
        graph = build_unit_graph(projected, ids, snap)
    notes = list(graph.notes)
    lookup = {uid: i for i, uid in enumerate(ids)}

    # Territory names: the current plan's labels where there is one, else T01..Tk.
    current_idx: np.ndarray | None = None
    if current is not None:
        cur = pd.Series(current).copy()
        cur.index = cur.index.astype(str)
        unknown = sorted(set(cur.index) - set(ids))
        if unknown:
            raise ConfigError(f"current names units that are not in units: {unknown[:5]}.")
        cur = cur.reindex(ids)
        present = cur.dropna().astype(str)
        load = (
            pd.Series(values[_lookup_positions(present.index, lookup), 0]).groupby(present.to_numpy()).sum()
        )
        kept = sorted(load.sort_values(ascending=False, kind="stable").index[:k].tolist())
        dropped = sorted(set(load.index) - set(kept))
        if dropped:
            notes.append(
                f"the current plan has {len(load)} territories for k = {k}: dissolved {', '.join(dropped)}."
            )
        fresh = [name for name in _territory_names(k + len(kept)) if name not in kept][: k - len(kept)]
        names = kept + fresh
        if fresh:
            notes.append(f"k = {k} adds territories {', '.join(fresh)} to the current plan's {len(kept)}.")
        pos = {name: t for t, name in enumerate(names)}
        current_idx = np.array([pos.get(str(v), -1) if pd.notna(v) else -1 for v in cur.to_numpy()])
    else:
        names = _territory_names(k)
    name_pos = {name: t for t, name in enumerate(names)}

    cores: list[list[int]] = [[] for _ in range(k)]
    movable = np.ones(n, dtype=bool)
    required: dict[int, int] = {}
    if seeds is not None:
        for t, u in enumerate(_map_seeds(seeds, projected, ids, k)):
            cores[t].append(u)
            movable[u] = False
            required[u] = t
    if locked:
        for uid, label in locked.items():
            if str(uid) not in lookup:
                raise ConfigError(f"locked unit {uid!r} is not in units; use ids from {id_column!r}.")
            if str(label) not in name_pos:
                raise ConfigError(
                    f"unit {uid} is locked to {label!r}, which is not a territory ({', '.join(names)}); "
                    "use one of those labels."
                )
            u = lookup[str(uid)]
            if required.get(u, name_pos[str(label)]) != name_pos[str(label)]:
                raise InfeasibleError(
                    f"unit {uid} is locked to {label} but is the seed of {names[required[u]]}; "
                    "move the seed or the lock."
                )
            cores[name_pos[str(label)]].append(u)
            movable[u] = False
            required[u] = name_pos[str(label)]
    if any(len(c) > 1 for c in cores):
        cores = _connect_cores(graph, cores, names, ids)

    # A unit heavier than the upper band of the largest target fits in no territory.
    for a, bt in enumerate(bands):
        largest = target[:, a].max()
        too_big = np.flatnonzero(share[:, a] > largest * (1 + bt.tolerance))
        for u in too_big[:5]:
            notes.append(
                f"unit {ids[u]} alone carries {share[u, a] / largest:.0%} of the largest territory's "
                f"{bt.column} target, more than the ±{bt.tolerance:.0%} band allows; its territory cannot "
                f"balance — split that unit or widen the {bt.column} tolerance."
            )

    inertia_w = inertia_weights(values)
    disruption_weight = None
    cap = None
    if current_idx is not None:
        if disruption_measure is not None:
            if disruption_measure not in units.columns:
                raise ConfigError(f"disruption_measure {disruption_measure!r} is not a column of units.")
            dm = (
                pd.to_numeric(units[disruption_measure], errors="coerce")
                .fillna(0)
                .clip(lower=0)
                .to_numpy(float)
            )
            disruption_weight = dm / dm.sum() if dm.sum() > 0 else np.full(n, 1.0 / n)
        else:
            disruption_weight = np.full(n, 1.0 / n)
        cap = max_disruption
    budget = WorkBudget(
        limit=int(work_budget) if work_budget is not None else default_work_budget(n),
        deadline=None if time_limit is None else started + float(time_limit),
    )
    search = _Search(
        graph=graph,
        share=share,
        target=target,
        tolerance=tolerance * (1 - 1e-9),
        movable=movable,
        cores=cores,
        inertia_weight=inertia_w,
        current=current_idx,
        disruption_weight=disruption_weight,
        disruption_cap=cap,
        budget=budget,
    )

    if k == 1:
        labels = np.zeros(n, dtype=np.int64)
    elif current_idx is not None:
        start = _repair_contiguity(graph, current_idx, k, share, cores)
        start = _add_territories(search, start, current_idx, k, np.random.default_rng([seed, 0]))
        moved_by_repair = int((start != current_idx).sum())
        if moved_by_repair:
            notes.append(
                f"{moved_by_repair} units of the current plan were cut off from their territory's main piece "
                "(or had none, or their territory was dissolved or added); they were re-attached first."
            )
        realigned = _optimise(search, start, np.random.default_rng([seed, 1]), realign=True)
        labels = realigned.labels_array()
        if realigned.violation() > 0:
            reasons, general = _explain_balance(search, labels, ids, names_m, [], None)
            notes += general
    else:
        starts = STARTS if n <= LARGE_INSTANCE else 1
        best: tuple[tuple[float, float], np.ndarray] | None = None
        combined = share.mean(axis=1)
        anchors = [core[0] for core in cores] if seeds is not None else []
        if anchors and n <= LARGE_INSTANCE:
            # Seeds crowded around heavy units can make growth from the seeds unbalanceable;
            # every other start draws the plan freely and reaches the seeds afterwards. Where
            # heavy units end varies much between starts, so anchored maps get more of them.
            starts = ANCHORED_STARTS
        free_best: LocalSearch | None = None
        for attempt in range(starts):
            if best is not None and search.budget.exhausted():
                break
            rng = np.random.default_rng([seed, attempt])
            if not anchors and n > LARGE_INSTANCE and not any(cores):
                drawn_before = _FREE_PLANS.get(_free_key(search, seed))
                if drawn_before is not None and drawn_before[1] < search.budget.limit:
                    # The anchored attempt drew this very plan (same inputs, seed and random draws,
                    # its budget not binding): take it and its cost instead of drawing it again.
                    labels_before, work, state = drawn_before
                    search.budget.spend(work)
                    rng.bit_generator.state = state
                    ls = search.new_state(labels_before)
                    best = (_plan_key(ls), labels_before.copy())
                    continue
            if anchors and (attempt % 2 == 1 or n > LARGE_INSTANCE):
                # Large maps draw every anchored plan this way: growth from seeds crowded in
                # metro areas leaves plans so far from the bands that sweeps cannot repair them.
                free = replace(search, movable=np.ones(n, dtype=bool), cores=[[] for _ in range(k)])
                first = (
                    bisect_plan(graph, share, target, search.tolerance, inertia_w, rng)
                    if n > LARGE_INSTANCE
                    else grow_balanced(graph, combined, target_share, free.cores, rng)
                )
                spent = search.budget.spent
                drawn = _optimise(free, first, rng, False)
                _FREE_PLANS.clear()
                if n > LARGE_INSTANCE and search.budget.deadline is None and not search.budget.used_up:
                    _FREE_PLANS[_free_key(search, seed)] = (
                        drawn.labels_array(),
                        search.budget.spent - spent,
                        dict(rng.bit_generator.state),
                    )
                if free_best is None or _plan_key(drawn) < _plan_key(free_best):
                    free_best = drawn
                start = _anchor_free_plan(search, drawn.labels_array(), anchors, rng)
                if n > LARGE_INSTANCE:
                    limit = max(GIVE_UP_FACTOR * drawn.violation(), drawn.violation() + GIVE_UP_MARGIN)
                    ls = _optimise(search, start, rng, realign=False, give_up_above=limit)
                    key = _plan_key(ls)
                    if best is None or key < best[0]:
                        best = (key, ls.labels_array())
                    continue
            elif (n > LARGE_INSTANCE or len(bands) > 1) and not any(cores):
                # Recursive bisection balances every measure at each split (growth balances their
                # mean only), and on fine units it lands close to every band with compact shapes,
                # which boundary sweeps finish; growth would need long-range load shifts.
                start = bisect_plan(graph, share, target, search.tolerance, inertia_w, rng)
            else:
                start = grow_balanced(graph, combined, target_share, cores, rng)
            ls = _optimise(search, start, rng, realign=False)
            key = _plan_key(ls)
            if best is None or key < best[0]:
                best = (key, ls.labels_array())
        assert best is not None
        labels = best[1]
        proved = False
        if best[0][0] > 0 and n <= EXACT_MAX_UNITS and all(cores):
            labels, proved = _closest(search, labels, notes, np.random.default_rng([seed, starts]))
        if seeds is None and targets is None and not locked:
            labels, names = _geographic_order(graph, labels, names)
        if best[0][0] > 0 and search.new_state(labels).violation() > 0:
            reasons, general = _explain_balance(search, labels, ids, names_m, anchors, free_best)
            notes += general
            if proved:
                proof = (
                    "no plan that keeps the seeds and locks does better (exact check); move a seed or "
                    "widen the tolerance."
                )
                for t, name in itertools.product(range(k), names_m):
                    reasons.setdefault((t, name), proof)

    seconds = time.perf_counter() - started
    return _result(
        graph,
        labels,
        names,
        values,
        names_m,
        target * values.sum(axis=0),
        bands,
        ids,
        current_idx,
        disruption_weight,
        max_disruption,
        required,
        notes,
        seconds,
        time_limit,
        search,
        reasons,
    )


def _explain_balance(
    search: _Search,
    labels: np.ndarray,
    ids: np.ndarray,
    measures: list[str],
    anchors: list[int],
    free_plan: LocalSearch | None,
) -> tuple[dict[tuple[int, str], str], list[str]]:
    """Why territories of a finished plan are out of band: per (territory, measure) and overall.

    Three checks, cheapest first: load that seeds and locks force on a territory (exact); for small
    maps, an exact MIP on each worst territory's seed or heaviest unit alone; and, with seeds, the
    best plan drawn without them (does anchoring cost balance?).
    """
    graph = search.graph
    k = search.target.shape[0]
    share, target, tol = search.share, search.target, search.tolerance
    load = np.zeros((k, share.shape[1]))
    np.add.at(load, labels, share)
    dev = load / target - 1.0
    excess = np.abs(dev) - tol
    reasons: dict[tuple[int, str], str] = {}
    general: list[str] = []
    forced, fload = forced_load(graph, search.cores, share)
    for t, a in zip(*np.nonzero(fload > target * (1 + tol) + 1e-12), strict=True):
        core = search.cores[t]
        extra = [u for u in np.flatnonzero(forced == t) if u not in set(core)]
        listed = ", ".join(str(ids[u]) for u in extra[:8]) + (", …" if len(extra) > 8 else "")
        reasons[(int(t), measures[a])] = (
            f"its seed or locked units ({', '.join(str(ids[u]) for u in core[:5])}) and the {len(extra)} "
            f"units that can reach no other territory except through them ({listed}) carry "
            f"{fload[t, a] / target[t, a]:.0%} of its {measures[a]} target in any contiguous plan; "
            "move that seed or lock, or widen the tolerance."
        )
    checked: set[int] = set()
    timed_out = False
    node_work = 0
    large = graph.n > REACH_MAX_UNITS
    worst = np.argsort(-excess.max(axis=1), kind="stable")
    for t in [int(t) for t in worst if excess[t].max() > 1e-12][:3]:
        if any((t, name) in reasons for name in measures):
            continue
        members = np.flatnonzero(labels == t)
        heaviest = members[np.argsort(-(share[members] / target[t]).max(axis=1), kind="stable")]
        units = [anchors[t]] if anchors else heaviest[: REACH_CANDIDATES if large else 1].tolist()
        forbidden = np.array(
            [u for s, core in enumerate(search.cores) if s != t for u in core], dtype=np.int64
        )
        for unit in units:
            if unit in checked or node_work >= REACH_TOTAL_NODE_WORK:
                continue
            checked.add(unit)
            where, local, local_forbidden = graph, unit, forbidden
            nodes = np.arange(graph.n)
            if large:
                region = _reach_region(graph, unit, share, target[t] * (1 + tol))
                if region is None:
                    continue
                nodes = region
                where = _region_graph(graph, region)
                local = int(np.searchsorted(region, unit))
                local_forbidden = np.flatnonzero(np.isin(region, forbidden))
            reach = territory_reach(
                where,
                local,
                share[nodes],
                target[t],
                tol,
                local_forbidden,
                MIP_SAFETY_SECONDS,
                REACH_NODE_WORK,
            )
            timed_out |= reach.timed_out
            node_work += reach.node_work
            if reach.feasible is not False:
                continue
            ranges = []
            for a, name in enumerate(measures):
                if reach.low[a] > 1 + tol[a]:
                    ranges.append(f"{name} at least {reach.low[a]:.0%} of target")
                elif reach.high[a] < 1 - tol[a]:
                    ranges.append(f"{name} at most {reach.high[a]:.0%} of target")
            if not ranges:
                ranges.append("the bound on each measure was not settled within the node limit")
            role = "its seed" if anchors else ("its unit" if large else "its heaviest unit")
            text = (
                f"no connected territory holding {role} {ids[unit]} meets every band (exact check); with "
                f"the other bands held: {'; '.join(ranges)}"
            )
            if len(local_forbidden):
                nothing = np.empty(0, dtype=np.int64)
                alone = territory_reach(
                    where, local, share[nodes], target[t], tol, nothing, MIP_SAFETY_SECONDS, REACH_NODE_WORK
                )
                timed_out |= alone.timed_out
                node_work += alone.node_work
                if alone.feasible is False:
                    text += ", whatever the seeds and locks of other territories"
                elif alone.feasible:
                    text += "; the seeds or locks of other territories hold the units it would need"
            for a, name in enumerate(measures):
                if excess[t, a] > 1e-12:
                    reasons[(t, name)] = text + "; widen a tolerance or split that unit."
            break
    if timed_out:
        general.append(_mip_timeout_note("an exact check of what a territory can reach"))
    if anchors and free_plan is not None:
        free_load = np.asarray(free_plan.load)
        free_dev = np.abs(free_load / target - 1.0)
        free_out = int((free_dev > tol + 1e-12).any(axis=1).sum())
        here_out = int((excess > 1e-12).any(axis=1).sum())
        shown = ", ".join(
            f"{name} {free_dev[:, a].max():.1%} (here {np.abs(dev[:, a]).max():.1%})"
            for a, name in enumerate(measures)
        )
        if free_plan.violation() < float(np.clip(excess, 0, None).sum()) - 1e-9:
            general.append(
                f"the seeds cost balance: the best plan found without them has {free_out} territories out "
                f"of band (here {here_out}) and deviates at most {shown}; each territory must hold its "
                "seed's unit, and seeds close together or next to heavy units leave no balanced plan."
            )
        else:
            general.append(
                f"the seeds are not what blocks balance: the best plan found without them has {free_out} "
                f"territories out of band (here {here_out}) and deviates at most {shown}."
            )
    return reasons, general


def _reach_region(graph: UnitGraph, unit: int, share: np.ndarray, upper: np.ndarray) -> np.ndarray | None:
    """Units any territory holding ``unit`` within the upper bands ``upper`` can hold (sorted).

    A unit of such a territory is joined to ``unit`` by a path inside it, whose load per measure
    is at least the least load of any path between them; units whose least path load exceeds an
    upper band on some measure are left out, so an exact check on the region alone is exact for
    the whole map. ``None`` when the region has more than :data:`REACH_MAX_UNITS` units.
    """
    inside = np.ones(graph.n, dtype=bool)
    for a in range(share.shape[1]):
        # Entering a unit costs its load (a trace more, so that a unit without load stays an edge).
        weights = share[graph.indices, a] + 1e-15
        matrix = sparse.csr_matrix((weights, graph.indices, graph.indptr), shape=(graph.n, graph.n))
        room = float(upper[a] - share[unit, a])
        if room < 0:
            return np.array([unit])
        inside &= dijkstra(matrix, indices=unit, limit=room + 1e-12) <= room + 1e-12
        if inside.sum() > REACH_MAX_UNITS:
            return None
    return np.flatnonzero(inside)


def _lookup_positions(index: pd.Index, lookup: dict[str, int]) -> np.ndarray:
    """Positions of unit ids ``index`` in the units table."""
    return np.array([lookup[str(u)] for u in index], dtype=np.int64)


def _add_territories(
    search: _Search, labels: np.ndarray, current_idx: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Create territories the current plan lacks by splitting the heaviest territories in two."""
    from territory_lib.design.construct import _split_candidates
    from territory_lib.design.sweep import subgraph

    labels = labels.copy()
    graph = search.graph
    lengths = edge_lengths(graph)
    xy = graph.xy - graph.xy.mean(axis=0)
    for t in range(k):
        if (labels == t).any():
            continue
        load = np.bincount(labels, weights=search.share.mean(axis=1), minlength=k)
        load[t] = -1
        donor = int(np.argmax(load / search.target.mean(axis=1)))
        nodes = np.flatnonzero(labels == donor)
        if len(nodes) < 2:
            continue
        sub = subgraph(
            nodes,
            graph.indptr,
            graph.indices,
            graph.shared,
            lengths,
            graph.n,
            share=search.share,
            area=graph.area,
            perim=graph.perimeter,
            w=search.inertia_weight,
            x=xy[:, 0],
            y=xy[:, 1],
        )
        splits = _split_candidates(
            sub,
            search.target[donor],
            search.target[t],
            1,
            1,
            search.tolerance,
            1.0,
            graph.polygons,
            rng,
            48,
            1,
        )
        if splits:
            labels[nodes[~splits[0]]] = t
    return labels


def _geographic_order(graph: UnitGraph, labels: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Renumber territories north to south, then west to east, by their centroid."""
    k = len(names)
    count = np.bincount(labels, minlength=k)
    cx = np.bincount(labels, weights=graph.xy[:, 0], minlength=k) / np.maximum(count, 1)
    cy = np.bincount(labels, weights=graph.xy[:, 1], minlength=k) / np.maximum(count, 1)
    order = np.lexsort((cx, -cy))
    new_index = np.empty(k, dtype=np.int64)
    new_index[order] = np.arange(k)
    return new_index[labels], names


def _result(
    graph: UnitGraph,
    labels: np.ndarray,
    names: list[str],
    values: np.ndarray,
    measure_names: list[str],
    target_abs: np.ndarray,
    bands: list[BalanceTarget],
    ids: np.ndarray,
    current_idx: np.ndarray | None,
    disruption_weight: np.ndarray | None,
    max_disruption: float | None,
    required: dict[int, int],
    notes: list[str],
    seconds: float,
    time_limit: float | None,
    search: _Search,
    reasons: dict[tuple[int, str], str],
) -> DesignResult:
    """Assemble metrics, moves, diagnostics and feasibility for a finished plan."""
    table = territory_table(graph, labels, names, values, measure_names, target_abs)
    summary: dict[str, float | int | bool | str] = dict(plan_summary(table, measure_names))
    summary["seconds"] = round(seconds, 3)
    feasible = bool(table["contiguous"].all())
    out_of_band = []
    for bt in bands:
        dev = table[f"{bt.column}_dev"].abs()
        if (dev > bt.tolerance + 1e-12).any():
            feasible = False
            out_of_band += [
                (names[t], bt, float(table[f"{bt.column}_dev"].iloc[t]))
                for t in np.flatnonzero(dev > bt.tolerance + 1e-12)
            ]
    for u, t in required.items():
        if labels[u] != t:
            feasible = False
            notes.append(f"unit {ids[u]} is locked to {names[t]} but ended in {names[labels[u]]}.")
    moves = pd.DataFrame(columns=["unit_id", "from_territory", "to_territory"])
    if current_idx is not None:
        changed = labels != current_idx
        named = np.asarray(names, dtype=object)
        from_names = np.where(current_idx >= 0, named[np.clip(current_idx, 0, None)], None)
        moves = pd.DataFrame(
            {
                "unit_id": ids[changed],
                "from_territory": from_names[changed],
                "to_territory": named[labels[changed]],
            }
        )
        summary["units_moved"] = int(changed.sum())
        summary["share_moved"] = float(changed.mean())
        if disruption_weight is not None:
            summary["share_disrupted"] = float(disruption_weight[changed].sum())
        if max_disruption is not None and float(summary["share_disrupted"]) > max_disruption + 1e-9:
            feasible = False
            notes.append(
                f"the plan moves {summary['share_disrupted']:.1%}, above max_disruption "
                f"{max_disruption:.1%}; raise the cap."
            )
    for name, bt, dev in out_of_band[:10]:
        reason = reasons.get((names.index(name), bt.column)) or _blocking_reason(
            search, name, names, bt, max_disruption, summary
        )
        notes.append(f"{name} is {dev:+.1%} off its {bt.column} target (band ±{bt.tolerance:.0%}): {reason}")
    budget = search.budget
    if budget.timed_out:
        notes.append(
            f"the search stopped at its safety time limit ({time_limit:g} s) before spending its work "
            "budget; the plan is the best found by then and depends on the machine's speed and load — "
            "run without the time limit for a plan that is the same on every machine."
        )
    elif budget.used_up:
        notes.append(
            f"the search spent its whole work budget ({budget.limit:,} work units); the plan is the best "
            "found within it — a larger work budget (design.work_budget, --work-budget) may find a "
            "better one."
        )
    return DesignResult(
        assignment=pd.Series(
            np.asarray(names, dtype=object)[labels],
            index=pd.Index(ids, name="unit_id"),
            name="territory_id",
            dtype=object,
        ),
        territories=table,
        summary=summary,
        moves=moves.reset_index(drop=True),
        notes=notes,
        feasible=feasible,
        work=budget.spent,
        work_budget=budget.limit,
    )


def _blocking_reason(
    search: _Search,
    name: str,
    names: list[str],
    bt: BalanceTarget,
    max_disruption: float | None,
    summary: dict,
) -> str:
    t = names.index(name)
    if search.cores[t] and len(search.cores[t]) > 1:
        return "its locked units and the paths joining them pin it; unlock some units or widen the tolerance."
    used = float(summary.get("share_disrupted", 0.0))
    if max_disruption is not None and used >= max_disruption - 1.0 / max(search.graph.n, 1):
        return (
            f"the disruption cap ({max_disruption:.0%}) is used up; raise max_disruption to move more units."
        )
    heavy = search.share.max(axis=1).max() / search.target.min()
    if heavy > bt.tolerance * 2:
        return (
            "units are coarse relative to the band; widen the tolerance, lower k, or raise the work budget."
        )
    return (
        "the search found no balanced plan in its work budget; raise the work budget or widen the tolerance."
    )


__all__ = ["BalanceTarget", "DesignResult", "design_territories"]
