"""Step 1, analyze the market: size and potential per unit, a potential model, hot spots, white space.

Every claim is made at a stated level with its multiple testing accounted for: hot and cold spots
and white space under false-discovery-rate control, the model's attributes under a family-wise
bound and out-of-sample validation.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import geopandas as gpd
import numpy as np
import pandas as pd

from territory_lib.config import counted, plural
from territory_lib.geo import to_equal_area
from territory_lib.io import Market

if TYPE_CHECKING:
    from libpysal.weights import W
    from matplotlib.figure import Figure
    from statsmodels.genmod.families import Family

    from territory_lib.design.graph import UnitGraph


#: Imported inside the functions that use them (statsmodels alone takes 1 s, and steps 3 and 5 only
#: need this module's light helpers); a kernel started ahead for a notebook importing this
#: module imports them too (territory_lib.kernels). The GLM's own modules, not ``statsmodels.api``,
#: which loads all of statsmodels (0.3 s more).
IMPORTED_WHEN_USED = (
    "statsmodels.genmod.generalized_linear_model",
    "statsmodels.tools.tools",
    "esda",
    "libpysal.graph",
    "libpysal.weights",
    "threadpoolctl",
)


def data_end(sales: pd.DataFrame) -> pd.Timestamp:
    """The first day of the last month with sales: the 'as of' month of every trailing figure."""
    return sales["date"].max().to_period("M").to_timestamp()


def trailing_sales(sales: pd.DataFrame, months: int = 12) -> pd.Series:
    """Sales per account over the last ``months`` months up to :func:`data_end`."""
    start = data_end(sales) - pd.DateOffset(months=months - 1)
    recent = sales[sales["date"] >= start]
    return recent.groupby("account_id")["amount"].sum()


def unit_metrics(market: Market) -> gpd.GeoDataFrame:
    """Market size per unit: accounts, customers, prospects, potential, recent sales, penetration.

    Returns the units (their geometry and attributes) with the columns ``accounts``,
    ``customers``, ``prospects``, ``potential`` (sum of the accounts' annual potential),
    ``sales_12m`` (last twelve months), ``penetration`` (``sales_12m / potential``),
    ``area_km2`` and ``potential_per_km2``.
    """
    accounts = market.accounts.assign(
        sales_12m=lambda frame: frame["account_id"].map(trailing_sales(market.sales)).fillna(0.0),
        is_customer=lambda frame: frame["status"] == "customer",
    )
    per_unit = accounts.groupby("unit_id").agg(
        accounts=("account_id", "size"),
        customers=("is_customer", "sum"),
        potential=("potential", "sum"),
        sales_12m=("sales_12m", "sum"),
    )
    metrics = market.units.merge(per_unit, left_on="unit_id", right_index=True, how="left")
    counts = ["accounts", "customers"]
    metrics[counts] = metrics[counts].fillna(0).astype(int)
    metrics[["potential", "sales_12m"]] = metrics[["potential", "sales_12m"]].fillna(0.0)
    metrics["prospects"] = metrics["accounts"] - metrics["customers"]
    metrics["penetration"] = np.where(
        metrics["potential"] > 0, metrics["sales_12m"] / metrics["potential"], 0.0
    )
    metrics["area_km2"] = to_equal_area(metrics).area.to_numpy() / 1e6
    metrics["potential_per_km2"] = metrics["potential"] / metrics["area_km2"]
    return metrics


def market_headline(metrics: pd.DataFrame, unit_label: str = "unit") -> pd.DataFrame:
    """The market in a few numbers, as a two-column table for the report."""
    total_potential = metrics["potential"].sum()
    units = plural(unit_label).capitalize()
    rows = [
        (units, f"{len(metrics):,}"),
        ("Accounts", f"{metrics['accounts'].sum():,}"),
        ("Customers", f"{metrics['customers'].sum():,}"),
        ("Prospects", f"{metrics['prospects'].sum():,}"),
        ("Annual potential", f"{total_potential:,.0f}"),
        ("Sales, last 12 months", f"{metrics['sales_12m'].sum():,.0f}"),
        ("Penetration of potential", f"{metrics['sales_12m'].sum() / max(total_potential, 1e-9):.1%}"),
        (f"{units} without accounts", f"{int((metrics['accounts'] == 0).sum()):,}"),
    ]
    return pd.DataFrame(rows, columns=["Measure", "Value"])


def segment_profile(accounts: pd.DataFrame, sales: pd.DataFrame) -> pd.DataFrame:
    """Accounts, customers, potential and recent sales per segment, with shares of the total."""
    recent = accounts["account_id"].map(trailing_sales(sales)).fillna(0.0)
    frame = accounts.assign(sales_12m=recent, customer=accounts["status"] == "customer")
    table = frame.groupby("segment").agg(
        accounts=("account_id", "size"),
        customers=("customer", "sum"),
        potential=("potential", "sum"),
        sales_12m=("sales_12m", "sum"),
    )
    table["share_of_potential"] = table["potential"] / table["potential"].sum()
    table["penetration"] = table["sales_12m"] / table["potential"].where(table["potential"] > 0)
    return table.sort_values("potential", ascending=False)


#: Tweedie variance power of the potential model: a compound Poisson-gamma, i.e. a Poisson number
#: of accounts each with a gamma-distributed potential, so units without accounts (zero) fit too.
TWEEDIE_POWER = 1.5

#: Map colours of the hot-spot classes: hot red, cold blue, the rest a quiet grey.
HOT_SPOT_COLORS = {"hot spot": "#d7301f", "cold spot": "#2b8cbe", "not significant": "#e5e5e5"}


def permutations_for(tests: int, level: float = 0.05, cap: int = 99_999) -> int:
    """Enough random draws for a two-sided p-value to pass the strictest corrected level.

    The smallest two-sided permutation p-value is ``2 / (draws + 1)``; false-discovery-rate
    control can ask for ``level / tests`` of the strongest result, so ``draws + 1 >= 2 * tests /
    level`` (rounded up to the next thousand minus one, at least 999, at most ``cap``). Fewer draws
    never give false claims, only fewer true ones.
    """
    needed = int(np.ceil(2 * tests / level / 1000.0)) * 1000 - 1
    return int(min(max(999, needed), max(cap, 99)))


def fdr_reject(p_values: np.ndarray, level: float = 0.05) -> np.ndarray:
    """Which p-values the Benjamini-Hochberg procedure rejects at false-discovery rate ``level``.

    The cut-off is :func:`esda.fdr`'s (below which p-values are rejected); with no p-value under
    its ``level / n`` floor nothing is.
    """
    from esda import fdr

    p_values = np.asarray(p_values, dtype=float)
    if len(p_values) == 0:
        return np.zeros(0, dtype=bool)
    return p_values < fdr(p_values, level)


def unit_weights(metrics: pd.DataFrame, graph: UnitGraph | None = None) -> W:
    """The units' adjacency as libpysal weights (binary), in the order of ``metrics``.

    ``graph`` is the run's adjacency (:func:`territory_lib.design.graph.build_unit_graph`: queen
    contiguity on the repaired map, islands joined to their nearest unit); it is built when absent
    or built for other units.
    """
    from libpysal.weights import W

    from territory_lib.design.graph import build_unit_graph

    ids = metrics["unit_id"].astype(str).to_numpy()
    if graph is None or not np.array_equal(np.asarray(graph.ids).astype(str), ids):
        graph = build_unit_graph(to_equal_area(metrics[["unit_id", "geometry"]].reset_index(drop=True)), ids)
    neighbours = {
        i: [int(j) for j in graph.indices[graph.indptr[i] : graph.indptr[i + 1]]] for i in range(graph.n)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libpysal warns of islands, which the run's graph has joined
        return W(neighbours, id_order=list(range(graph.n)))


def _distinct_draws(rng: np.random.Generator, rows: int, size: int, population: int) -> np.ndarray:
    """``rows`` random draws of ``size`` distinct integers from ``range(population)``."""
    if 2 * size > population:
        return rng.random((rows, population)).argsort(axis=1)[:, :size]
    draws = rng.integers(0, population, size=(rows, size))
    while True:
        ordered = np.sort(draws, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not repeated.any():
            return draws
        draws[repeated] = rng.integers(0, population, size=(int(repeated.sum()), size))


#: Draws every unit gets; a unit goes on drawing (in chunks of this size) only while fewer than
#: :data:`STOP_EXTREMES` draws were as extreme as its own value (Besag & Clifford's sequential
#: Monte Carlo p-value), so only units whose p-value may be small pay for the many draws.
FIRST_DRAWS = 999
STOP_EXTREMES = 20


#: Unit-by-draw pairs compared at once: bounds the memory of the vectorised permutation test.
PAIRS_PER_BATCH = 500_000


#: Units at most in a batch of the first draws: the closer in order, the tighter their bounds.
UNITS_PER_BATCH = 64


def _draw_bounds(
    drawn: np.ndarray, here: np.ndarray, after: np.ndarray, first: int, last: int
) -> tuple[np.ndarray, np.ndarray]:
    """The least and the greatest sum each row of draws can give a unit from ``first`` to ``last``.

    A draw of position ``k`` is worth ``here`` (the value of unit ``k``) to the units above
    ``k`` and ``after`` (of unit ``k + 1``, skipping the unit itself) to the others: below
    ``first`` it is ``here`` for all of them, at or above ``last`` ``after`` for all of them.
    Summed like the exact sums (contiguous rows), and floating-point addition being monotone,
    the bounds hold exactly; where they are equal they are the sum.
    """
    below, beyond = drawn < first, drawn >= last
    least = np.where(below, here, np.where(beyond, after, np.minimum(here, after)))
    most = np.where(below, here, np.where(beyond, after, np.maximum(here, after)))
    return least.sum(axis=1), most.sum(axis=1)


def _conditional_p_values(
    values: np.ndarray, weights: W, draws: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided conditional-permutation p-values of each unit's Gi*, and which are in the upper tail.

    Unit i keeps its own value; its neighbours' values are drawn at random, without replacement,
    from the other units (esda's conditional randomisation, the same draws for every unit). With
    binary weights Gi* grows with the neighbours' sum, so that sum is compared. Draws equal to the
    observed sum count as extreme on both sides: esda's ``p_sim`` counts them on neither side of
    a low value, which flags units beside zeros (units without accounts) on pure noise.

    Draws stop early for a unit once :data:`STOP_EXTREMES` of them were as extreme as its value
    (its p-value is then the share of extreme draws, already far above any corrected level), so
    a map of 30,000 units costs about :data:`FIRST_DRAWS` draws per unit, not ``draws``.

    Every unit's simulated sums lie between bounds shared by many units (:func:`_draw_bounds`):
    a draw whose bounds fall on one side of a unit's threshold is counted without summing it;
    only the draws whose bounds straddle it are summed, exactly as one at a time.
    """
    rng = np.random.default_rng(seed)
    n = len(values)
    neighbours = [np.asarray(weights.neighbors[i], dtype=int) for i in range(n)]
    degree = np.array([len(group) for group in neighbours], dtype=int)
    widest = int(degree.max(initial=0))
    picks = _distinct_draws(rng, draws, widest, n - 1) if widest else np.zeros((draws, 0), int)
    observed = np.array([values[group].sum() for group in neighbours])
    # Summing in another order changes the last bits: a draw this close to the observed sum ties.
    tolerance = 1e-9 * float(np.abs(values).max()) * max(widest, 1)
    top, bottom = observed - tolerance, observed + tolerance
    upper, lower, done = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
    active = np.flatnonzero(degree > 0)
    start = 0
    while start < draws and len(active):
        stop = min(draws, start + (FIRST_DRAWS if start == 0 else max(start, FIRST_DRAWS)))
        chunk = picks[start:stop]
        # The first draws go to every unit: bounds per batch of units close in order are tight.
        # Later ones go to few units, scattered: bounds shared by all of them cost less.
        tight = start == 0
        for size in np.unique(degree[active]):
            group = active[degree[active] == size]
            drawn = np.ascontiguousarray(chunk[:, :size])
            here, after = values[drawn], values[drawn + 1]
            if not tight:
                floor, ceiling = _draw_bounds(drawn, here, after, 0, n - 1)
            batches = -(-len(group) * len(chunk) // PAIRS_PER_BATCH)
            if tight:
                batches = max(batches, -(-len(group) // UNITS_PER_BATCH))
            for units in np.array_split(group, min(batches, len(group))):
                if tight:
                    floor, ceiling = _draw_bounds(drawn, here, after, units[0], units[-1])
                sure_up = floor >= top[units, None]
                maybe_up = (ceiling >= top[units, None]) & ~sure_up
                sure_low = ceiling <= bottom[units, None]
                maybe_low = (floor <= bottom[units, None]) & ~sure_low
                upper[units] += sure_up.sum(axis=1)
                lower[units] += sure_low.sum(axis=1)
                which, row = np.nonzero(maybe_up | maybe_low)
                if len(which) == 0:
                    continue
                unit = units[which]
                taken = drawn[row]
                simulated = values[taken + (taken >= unit[:, None])].sum(axis=1)  # skip the unit itself
                hits_up = maybe_up[which, row] & (simulated >= top[unit])
                hits_low = maybe_low[which, row] & (simulated <= bottom[unit])
                upper[units] += np.bincount(which, hits_up, minlength=len(units)).astype(int)
                lower[units] += np.bincount(which, hits_low, minlength=len(units)).astype(int)
        done[active] += len(chunk)
        active = active[np.minimum(upper[active], lower[active]) < STOP_EXTREMES]
        start = stop
    extreme = np.minimum(upper, lower)
    tested = degree > 0
    # Stopped early: the share of extreme draws; else the usual (count + 1) / (draws + 1).
    one_sided = np.where(extreme >= STOP_EXTREMES, extreme / np.maximum(done, 1), (extreme + 1) / (done + 1))
    p_values = np.where(tested, np.minimum(1.0, 2.0 * one_sided), 1.0)
    high = tested & (upper < lower)
    return p_values, high


def hot_spots(
    metrics: gpd.GeoDataFrame,
    column: str = "potential_per_km2",
    *,
    seed: int = 42,
    permutations: int | None = None,
    level: float = 0.05,
    graph: UnitGraph | None = None,
    weights: W | None = None,
) -> pd.DataFrame:
    """Getis-Ord Gi* hot and cold spots of ``column`` beyond chance, at false-discovery rate ``level``.

    Each unit's Gi* (itself and its neighbours on the run's adjacency, see :func:`unit_weights`;
    statistic and z-score from esda) is tested two-sided against conditional permutations; a unit
    is a hot (cold) spot when its p-value passes the Benjamini-Hochberg cut-off at ``level`` over
    all units and its value lies in the upper (lower) tail. On a map without clusters, the chance
    of any spot at all is about ``level``; among the spots found, about ``level`` of them are
    expected to be false.

    Parameters
    ----------
    metrics
        Units with ``unit_id``, ``geometry`` and ``column`` (non-negative).
    column
        The measure whose clusters are sought.
    seed
        Seed of the permutations.
    permutations
        Random draws per unit; None: :func:`permutations_for` the units and ``level``.
    level
        False-discovery rate of the claims (two-sided).
    graph, weights
        The run's adjacency, or its libpysal weights (then ``graph`` is not used).

    Returns
    -------
    pandas.DataFrame
        One row per unit: ``unit_id``, ``gi_z`` (Gi* z-score), ``p_value`` (two-sided permutation
        p-value), ``hot_spot`` ("hot spot", "cold spot" or "not significant"). ``attrs`` holds
        ``level``, ``permutations`` and ``fdr_cutoff``; :func:`hot_spot_summary` reads them.
    """
    from esda import G_Local
    from libpysal.graph import Graph

    values = metrics[column].to_numpy(dtype=float)
    draws = permutations if permutations is not None else permutations_for(len(values), level)
    if weights is None:
        weights = unit_weights(metrics, graph)
    if np.ptp(values) == 0:
        z_scores, p_values, high = np.zeros(len(values)), np.ones(len(values)), np.zeros(len(values), bool)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # As a Graph: esda adds the self-weights of Gi* to it cheaply, to a W unit by unit.
            stat = G_Local(values, Graph.from_W(weights), transform="B", star=True, permutations=0)
        z_scores = stat.Zs
        p_values, high = _conditional_p_values(values, weights, draws, seed)
    found = fdr_reject(p_values, level)
    label = np.where(found & high, "hot spot", np.where(found, "cold spot", "not significant"))
    spots = pd.DataFrame(
        {"unit_id": metrics["unit_id"].to_numpy(), "gi_z": z_scores, "p_value": p_values, "hot_spot": label}
    )
    cutoff = float(p_values[found].max()) if found.any() else 0.0
    spots.attrs.update(level=level, permutations=draws, fdr_cutoff=cutoff)
    return spots


def hot_spot_summary(spots: pd.DataFrame) -> dict[str, float | int]:
    """How many spots :func:`hot_spots` found, and how many chance alone would give.

    ``expected_false_spots`` is the false-discovery rate applied to the spots found (``level x
    spots``): about that many of them are expected to be chance. ``uncorrected_chance_spots`` is
    what testing every unit at ``level`` without correction would flag on a map with no clusters
    at all (``level x units``), the figure the correction guards against.
    """
    level = float(spots.attrs.get("level", 0.05))
    hot = int(spots["hot_spot"].eq("hot spot").sum())
    cold = int(spots["hot_spot"].eq("cold spot").sum())
    return {
        "hot_spots": hot,
        "cold_spots": cold,
        "expected_false_spots": level * (hot + cold),
        "uncorrected_chance_spots": level * len(spots),
        "tests": len(spots),
        "level": level,
        "permutations": int(spots.attrs.get("permutations", 0)),
    }


@dataclass
class PotentialModel:
    """A Tweedie GLM (log link) of each unit's known potential, with the unit's size as offset.

    ``coefficients``: the terms kept, as a multiplier of potential per size unit for one standard
    deviation more of the attribute, its 95 % interval and p-value. ``screening``: every attribute
    tried, with its p-value when it entered or was last tried, adjusted for the number tried.
    ``units``: known and modelled potential per unit, the interval known potential falls in by
    chance, and whether its shortfall is beyond chance (``white_space``).
    """

    formula: str
    exposure: str
    n_units: int
    n_without_accounts: int
    level: float
    deviance_explained: float
    cv_deviance_explained: float
    folds: int
    dispersion: float
    residual_moran_i: float
    residual_moran_p: float
    drivers: list[str]
    coefficients: pd.DataFrame
    screening: pd.DataFrame
    units: pd.DataFrame
    notes: list[str]

    @property
    def size_unit(self) -> str:
        """What one unit of size is: "resident" or "km²"."""
        return _size_unit(self.exposure)

    def fit_table(self) -> pd.DataFrame:
        """The model's fit as a two-column table (measure, value) for the report's method section."""
        rows = [
            ("Deviance explained", f"{self.deviance_explained:.3f}"),
            (
                f"Deviance explained out of sample ({self.folds}-fold cross-validation)",
                f"{self.cv_deviance_explained:.3f}",
            ),
            ("Dispersion (Pearson)", f"{self.dispersion:,.1f}"),
            (
                "Moran's I of the deviance residuals (adjacency, row-standardised)",
                f"{self.residual_moran_i:+.3f}",
            ),
            ("Its two-sided permutation p-value (999 permutations)", f"{self.residual_moran_p:.3f}"),
        ]
        return pd.DataFrame(rows, columns=["Measure", "Value"])

    def summary(self) -> dict[str, object]:
        """Plain figures of the fit for ``metrics.json``."""
        return {
            "deviance_explained": self.deviance_explained,
            "cv_deviance_explained": self.cv_deviance_explained,
            "dispersion": self.dispersion,
            "residual_moran_i": self.residual_moran_i,
            "residual_moran_p": self.residual_moran_p,
            "drivers": list(self.drivers),
            "white_space_units": int(self.units["white_space"].sum()),
            "units": self.n_units,
            "units_without_accounts": self.n_without_accounts,
        }


def _standardised(data: pd.DataFrame, attributes: list[str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Attributes on a comparable scale: z-scores, of log(1 + x) for skewed non-negative counts.

    The log keeps one very large unit (a metropolitan county's population) from deciding a
    log-link model's slope alone.
    """
    columns, names = {}, {}
    for name in attributes:
        values = data[name].astype(float)
        if values.min() >= 0 and values.skew() > 1:
            values, label = np.log1p(values), f"log {name}"
        else:
            label = name
        columns[name] = (values - values.mean()) / values.std()
        names[name] = label
    return pd.DataFrame(columns, index=data.index), names


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _one_blas_thread(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``function`` with BLAS on one thread.

    The model's products are tall and narrow (units x a few terms): split over two threads they
    run three to four times slower than on one (measured on 29,295 ZIP areas); the results are
    the same but for the last bits of a float.
    """

    @functools.wraps(function)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return function(*args, **kwargs)

    return run


def _tweedie() -> Family:
    from statsmodels.genmod import families

    return families.Tweedie(var_power=TWEEDIE_POWER, link=families.links.Log())


def _fit(target: pd.Series, design: pd.DataFrame, offset: np.ndarray):
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.tools import add_constant

    exog = add_constant(design, has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GLM(target, exog, family=_tweedie(), offset=offset).fit(use_t=True)


def _cv_deviance(
    target: pd.Series, design: pd.DataFrame, offset: np.ndarray, folds: int, seed: int
) -> tuple[float, float]:
    """Out-of-sample Tweedie deviance of the model with ``design`` and of the offset-only model."""
    from statsmodels.tools.tools import add_constant

    order = np.random.default_rng(seed).permutation(len(target))
    family = _tweedie()
    model, null = 0.0, 0.0
    # Without columns the model is the offset-only one: its deviance is the null's.
    designs: tuple[tuple[list[str], str], ...] = (
        ((list(design.columns), "model"), ([], "null")) if len(design.columns) else (([], "null"),)
    )
    for fold in np.array_split(order, folds):
        train = np.setdiff1d(np.arange(len(target)), fold)
        for columns, total in designs:
            fit = _fit(target.iloc[train], design.iloc[train][list(columns)], offset[train])
            exog = add_constant(design.iloc[fold][list(columns)], has_constant="add")
            mu = np.exp(exog.to_numpy() @ fit.params.to_numpy() + offset[fold])
            deviance = float(family.deviance(target.iloc[fold].to_numpy(), mu))
            if total == "model":
                model += deviance
            else:
                null += deviance
    return (model if len(design.columns) else null), null


def _tweedie_counts(mu: np.ndarray, dispersion: float, rng: np.random.Generator) -> np.ndarray:
    """The Poisson number of gamma terms of Tweedie(mu, dispersion, TWEEDIE_POWER) values."""
    p = TWEEDIE_POWER
    return rng.poisson(mu ** (2 - p) / (dispersion * (2 - p)))


def _tweedie_amounts(
    mu: np.ndarray, counts: np.ndarray, dispersion: float, rng: np.random.Generator
) -> np.ndarray:
    """The Tweedie values given their :func:`_tweedie_counts`: gamma sums, zero without terms.

    Only values with terms take a gamma draw: in a market of many small units most have none.
    """
    p = TWEEDIE_POWER
    some = counts > 0
    values = np.zeros(np.shape(mu))
    values[some] = rng.gamma(counts[some] * (2 - p) / (p - 1), dispersion * (p - 1) * mu[some] ** (p - 1))
    return values


def _tweedie_draws(mu: np.ndarray, dispersion: float, rng: np.random.Generator) -> np.ndarray:
    """Random values of a Tweedie(mu, dispersion, TWEEDIE_POWER) variable, one per entry of ``mu``.

    A compound Poisson-gamma: N ~ Poisson(mu^(2-p) / (phi (2-p))) terms, each gamma with shape
    (2-p)/(p-1) and scale phi (p-1) mu^(p-1); their sum is gamma with N times the shape.
    """
    return _tweedie_amounts(mu, _tweedie_counts(mu, dispersion, rng), dispersion, rng)


#: Simulated values held at once (units x draws): bounds the white-space simulation's memory.
VALUES_PER_BLOCK = 2_000_000


def _compact(counts: np.ndarray) -> np.ndarray:
    """``counts`` (non-negative) in the smallest integer type that holds them."""
    return counts.astype(np.min_scalar_type(counts.max(initial=0)))


def _simulated_shortfall(
    observed: np.ndarray,
    exog: np.ndarray,
    offset: np.ndarray,
    params: np.ndarray,
    cov: np.ndarray,
    dispersion: float,
    level: float,
    draws: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each unit's chance interval of potential at ``1 - level`` and the p-value of its shortfall.

    Draws come in batches of :data:`FIRST_DRAWS`: model parameters from their estimate's normal
    distribution, then potential from the Tweedie distribution (:func:`_tweedie_draws`). The
    interval comes from the first batch; the shortfall's one-sided p-value from all draws, a unit
    stopping once :data:`STOP_EXTREMES` of them fell at or below its potential (sequential Monte
    Carlo, as for the hot spots), so time stays about linear in the units. A batch is drawn a
    block of units at a time, taking the random numbers in the order one whole batch would, so
    memory stays bounded and the results do not depend on the block size.
    """
    rng = np.random.default_rng(seed)
    below, done = np.zeros(len(observed)), np.zeros(len(observed))
    low = high = np.zeros(len(observed))
    active = np.arange(len(observed))
    for start in range(0, draws, FIRST_DRAWS):
        batch = int(min(FIRST_DRAWS, draws - start))
        drawn = rng.multivariate_normal(params, cov, batch).T
        rows = max(1, VALUES_PER_BLOCK // batch)
        blocks = [active[i : i + rows] for i in range(0, len(active), rows)]
        # Every Poisson count of the batch is drawn before its first gamma value.
        counts = [
            _compact(_tweedie_counts(np.exp(exog[b] @ drawn + offset[b, None]), dispersion, rng))
            for b in blocks
        ]
        bounds = []
        for block, count in zip(blocks, counts, strict=True):
            mu = np.exp(exog[block] @ drawn + offset[block, None])
            simulated = _tweedie_amounts(mu, count, dispersion, rng)
            if start == 0:
                bounds.append(np.quantile(simulated, [level / 2, 1 - level / 2], axis=1))
            below[block] += (simulated <= observed[block, None]).sum(axis=1)
        if start == 0:
            low, high = np.concatenate(bounds, axis=1)
        done[active] += batch
        active = active[below[active] < STOP_EXTREMES]
        if len(active) == 0:
            break
    stopped = below >= STOP_EXTREMES
    return low, high, np.where(stopped, below / np.maximum(done, 1), (below + 1) / (done + 1))


def _moran(values: np.ndarray, weights: W, seed: int, permutations: int = 999) -> tuple[float, float]:
    """Moran's I of ``values`` and its two-sided permutation p-value (esda, row-standardised)."""
    from esda import Moran

    state = np.random.get_state()  # esda draws from numpy's global generator
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stat = Moran(values, weights, transformation="r", permutations=permutations, two_tailed=True)
    finally:
        np.random.set_state(state)
    # p_sim counts draws as extreme as the observed I on its side; both sides double it.
    return float(stat.I), float(min(1.0, 2.0 * stat.p_sim))


def _size_unit(exposure: str) -> str:
    return "resident" if exposure == "population" else "km²"


def size_exposure(metrics: pd.DataFrame, attributes: list[str]) -> tuple[str, np.ndarray]:
    """The size a unit's potential is proportional to: its population when known, else its area."""
    if (
        "population" in attributes
        and metrics["population"].notna().all()
        and (metrics["population"] > 0).all()
    ):
        return "population", metrics["population"].to_numpy(dtype=float)
    return "area (km²)", metrics["area_km2"].to_numpy(dtype=float)


@_one_blas_thread
def potential_model(
    metrics: pd.DataFrame,
    attributes: list[str],
    *,
    level: float = 0.05,
    seed: int = 42,
    folds: int = 5,
    max_terms: int | None = None,
    graph: UnitGraph | None = None,
    weights: W | None = None,
    draws: int | None = None,
) -> PotentialModel:
    """Which attributes potential is associated with, and where known potential falls short.

    The model is a Tweedie GLM (variance power 1.5, log link) of each unit's known potential,
    every unit included (those without accounts have potential 0), with ``log(size)`` as offset
    (:func:`size_exposure`), so terms read as potential per resident (or per km²). Attributes enter
    one at a time, the strongest first, only while the best one's p-value is below ``level``
    divided by the number of attributes still tried (a Bonferroni bound: on a market where no
    attribute matters, the chance of naming one is at most about ``level``), at most ``max_terms``
    (default: one per ten units), none nearly collinear (|r| >= 0.9) with one already in. The
    model is kept only if it predicts held-out units better than size alone (``folds``-fold
    cross-validated deviance, seeded); otherwise no attribute is named.

    White space: for each unit, ``draws`` values of its potential under the model (parameters drawn
    from their estimate's distribution, then potential from the Tweedie distribution) give the
    interval known potential falls in by chance at ``1 - level`` and a one-sided p-value of a
    shortfall; a unit is white space when its known potential lies below the interval and the
    p-value passes false-discovery-rate control at ``level`` over all units.

    Residual spatial autocorrelation: Moran's I of the deviance residuals on the run's adjacency
    (``graph`` or ``weights``, see :func:`unit_weights`) with a two-sided permutation p-value.
    """
    from statsmodels.tools.tools import add_constant

    data = metrics.reset_index(drop=True)
    target = data["potential"].astype(float)
    exposure, size = size_exposure(data, attributes)
    offset = np.log(size)
    candidates = [
        name
        for name in attributes
        if name != "population" or exposure != "population"
        if data[name].notna().all() and data[name].std() > 0
    ]
    scaled, labels = _standardised(data, candidates)
    limit = max_terms if max_terms is not None else max(1, len(data) // 10)
    chosen: list[str] = []
    tried: dict[str, tuple[float, float]] = {}
    notes: list[str] = []
    remaining = list(candidates)
    fits: dict[tuple[str, ...], object] = {}

    def fit_of(columns: list[str]):  # the same terms in the same order give the same fit
        if tuple(columns) not in fits:
            fits[tuple(columns)] = _fit(target, scaled[columns], offset)
        return fits[tuple(columns)]

    while remaining and len(chosen) < limit:
        remaining = [
            name for name in remaining if all(abs(scaled[name].corr(scaled[other])) < 0.9 for other in chosen)
        ]
        if not remaining:
            break
        p_values = {name: float(fit_of([*chosen, name]).pvalues[name]) for name in remaining}
        best = min(p_values, key=lambda name: p_values[name])
        for name, p in p_values.items():
            tried[name] = (p, min(1.0, p * len(remaining)))
        if p_values[best] >= level / len(remaining):
            break
        chosen.append(best)
        remaining.remove(best)
    cv_model, cv_null = _cv_deviance(target, scaled[chosen], offset, folds, seed)
    if chosen and cv_model >= cv_null:
        notes.append(
            "Attributes beyond chance in the whole market ("
            + ", ".join(labels[name] for name in chosen)
            + ") did not predict held-out units better than size alone, so none is named."
        )
        chosen = []
        cv_model = cv_null
    fit = fit_of(chosen)
    null_fit = fit_of([])
    interval = fit.conf_int()
    coefficients = pd.DataFrame(
        {
            "multiplier per +1 sd": np.exp(fit.params),
            "low 95%": np.exp(interval[0]),
            "high 95%": np.exp(interval[1]),
            "p-value": fit.pvalues,
        }
    ).rename(index={"const": f"(baseline per {_size_unit(exposure)})", **labels})
    screening = pd.DataFrame(
        [
            {
                "attribute": labels[name],
                "p-value": tried.get(name, (np.nan, np.nan))[0],
                "adjusted p-value": tried.get(name, (np.nan, np.nan))[1],
                "kept": name in chosen,
            }
            for name in candidates
        ]
    )

    modelled = fit.fittedvalues.to_numpy()
    n_draws = draws if draws is not None else permutations_for(len(data), 2 * level, cap=19_999)
    exog = add_constant(scaled[chosen], has_constant="add").to_numpy()
    low, high, shortfall_p = _simulated_shortfall(
        target.to_numpy(),
        exog,
        offset,
        fit.params.to_numpy(),
        fit.cov_params().to_numpy(),
        float(fit.scale),
        level,
        n_draws,
        seed,
    )
    white = fdr_reject(shortfall_p, level) & (target.to_numpy() < low)
    units = pd.DataFrame(
        {
            "unit_id": data["unit_id"],
            "name": data["name"],
            "accounts": data["accounts"],
            "potential": target,
            "modelled_potential": modelled,
            "low": low,
            "high": high,
            "shortfall": modelled - target,
            "p_shortfall": shortfall_p,
            "white_space": white,
        }
    )
    if weights is None:
        weights = unit_weights(data, graph)
    moran_i, moran_p = _moran(fit.resid_deviance.to_numpy(), weights, seed)
    if moran_p < level and moran_i > 0:
        notes.append(
            f"What the model leaves unexplained clusters on the map (Moran's I {moran_i:+.2f}): "
            "neighbouring units share something the attributes miss, so the model's certainty is "
            "overstated and its white space may be a regional pattern rather than single units."
        )
    terms = " + ".join(f"z({labels[name]})" for name in chosen) or "1"
    return PotentialModel(
        formula=f"log E[potential] = log({exposure}) + {terms}",
        exposure=exposure,
        n_units=int(fit.nobs),
        n_without_accounts=int((data["accounts"] == 0).sum()),
        level=level,
        deviance_explained=float(1 - fit.deviance / null_fit.deviance) if null_fit.deviance > 0 else 0.0,
        cv_deviance_explained=float(1 - cv_model / cv_null) if cv_null > 0 else 0.0,
        folds=folds,
        dispersion=float(fit.scale),
        residual_moran_i=moran_i,
        residual_moran_p=moran_p,
        drivers=[labels[name] for name in chosen],
        coefficients=coefficients,
        screening=screening,
        units=units,
        notes=notes,
    )


def segment_mix_figure(profile: pd.DataFrame) -> Figure:
    """Share of accounts and of potential by segment, as two horizontal stacked bars.

    ``profile`` is :func:`segment_profile`'s table. Shares of 6 % or more are written inside
    their segment; the legend names every segment.
    """
    import matplotlib.pyplot as plt

    from territory_lib.presentation import chart_text

    colors = ["#1f3a5f", "#4f81bd", "#9fbfdf", "#f2a541", "#c8553d", "#7a9e7e", "#8e6c8a", "#b0b0b0"]
    rows = {"Accounts": profile["accounts"], "Potential": profile["potential"]}
    figure, axes = plt.subplots(figsize=(7.5, 1.9))
    for position, values in enumerate(rows.values()):
        shares = values / max(float(values.sum()), 1e-12)
        left = 0.0
        for index, (segment, share) in enumerate(shares.items()):
            color = colors[index % len(colors)]
            axes.barh(
                position, share, left=left, color=color, label=chart_text(segment) if position == 0 else None
            )
            if share >= 0.06:
                text_color = "white" if index < 2 or index == 4 else "#1f2328"
                axes.text(
                    left + share / 2, position, f"{share:.0%}", ha="center", va="center", color=text_color
                )
            left += share
    axes.set_yticks(range(len(rows)), list(rows))
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=min(len(profile), 6), frameon=False)
    plt.close(figure)
    return figure


def segment_mix_caption(profile: pd.DataFrame) -> str:
    """The segment-mix chart in words, for readers who do not see it."""
    accounts = profile["accounts"] / max(float(profile["accounts"].sum()), 1e-12)
    potential = profile["potential"] / max(float(profile["potential"].sum()), 1e-12)
    parts = [
        f"{segment}: {accounts[segment]:.0%} of accounts, {potential[segment]:.0%} of potential"
        for segment in profile.index
    ]
    return "Segment mix. " + "; ".join(parts) + "."


def key_findings(
    metrics: pd.DataFrame,
    spots: pd.DataFrame,
    unit_label: str = "unit",
    model: PotentialModel | None = None,
) -> list[str]:
    """A few sentences a stakeholder can act on, computed from the unit metrics, hot spots and model."""

    ranked = metrics.sort_values("potential", ascending=False)
    total = max(ranked["potential"].sum(), 1e-9)
    top_n = max(1, round(len(ranked) * 0.1))
    top_share = ranked["potential"].head(top_n).sum() / total
    leaders = ", ".join(ranked["name"].head(3).astype(str))
    covered = metrics["sales_12m"].sum() / total
    summary = hot_spot_summary(spots)
    hot, cold, level = summary["hot_spots"], summary["cold_spots"], summary["level"]
    notes = [
        f"The top {counted(top_n, unit_label)} by potential ({leaders}, ...) hold {top_share:.0%} "
        "of the potential.",
        f"Sales of the last twelve months capture {covered:.0%} of the known annual potential.",
    ]
    chance = (
        f"Testing all {counted(len(spots), unit_label)} without correction would flag about "
        f"{summary['uncorrected_chance_spots']:.0f} by chance alone"
    )
    if hot or cold:
        notes.append(
            f"Potential density clusters beyond chance: {counted(int(hot), 'hot spot')} and "
            f"{counted(int(cold), 'cold spot')} among the {plural(unit_label)}; about "
            f"{summary['expected_false_spots']:.1f} of them may be chance (false-discovery rate "
            f"{level:.0%}). {chance}."
        )
    else:
        notes.append(
            f"No {unit_label} stands out as a hot or cold spot of potential density beyond chance "
            f"(false-discovery rate {level:.0%}). {chance}."
        )
    if model is not None:
        per = _size_unit(model.exposure)
        if model.drivers:
            notes.append(
                f"Potential per {per} is associated with {', '.join(model.drivers)}, beyond chance and "
                f"confirmed on held-out {plural(unit_label)}: an association, not proof of cause."
            )
        else:
            notes.append(f"No attribute is associated with potential per {per} beyond chance.")
        white = int(model.units["white_space"].sum())
        if white:
            notes.append(
                f"White space: {counted(white, unit_label)} with known potential below the range the "
                "model expects by chance (listed below)."
            )
        else:
            notes.append(f"White space: no {unit_label} falls short of its expected potential beyond chance.")
    empty = int((metrics["accounts"] == 0).sum())
    if empty:
        notes.append(f"Without known accounts: {counted(empty, unit_label)}.")
    return notes
