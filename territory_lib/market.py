"""Step 1, analyze the market: size and potential per unit, a demographic potential model, hot spots."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from territory_lib.config import counted, plural
from territory_lib.geo import to_equal_area
from territory_lib.io import Market

if TYPE_CHECKING:
    from territory_lib.design.graph import UnitGraph


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


@dataclass
class PotentialModel:
    """An OLS model of log potential per unit on the units' standardized attributes.

    ``coefficients`` holds estimate, 95 % interval and p-value per attribute; ``units`` the
    actual and modelled potential per unit and their ratio (below 1: less known potential than
    the demographics predict, i.e. white space to prospect).
    """

    formula: str
    r_squared: float
    n_units: int
    coefficients: pd.DataFrame
    units: pd.DataFrame


def potential_model(
    metrics: pd.DataFrame, attributes: list[str], max_terms: int | None = None
) -> PotentialModel:
    """Explain known potential by demographics (statsmodels OLS on ``log1p(potential)``).

    Attributes that are constant or nearly collinear with a stronger one are left out, and at most
    ``max_terms`` (default: one per eight units) enter, ranked by their correlation with potential,
    so that small markets are not over-fitted.
    """
    data = metrics[metrics["accounts"] > 0].copy()
    target = np.log1p(data["potential"])
    usable = [name for name in attributes if data[name].notna().all() and data[name].std() > 0]
    ranked = sorted(usable, key=lambda name: -abs(np.corrcoef(data[name], target)[0, 1]))
    limit = max_terms if max_terms is not None else max(1, len(data) // 8)
    chosen: list[str] = []
    for name in ranked:
        if len(chosen) == limit:
            break
        if all(abs(np.corrcoef(data[name], data[other])[0, 1]) < 0.9 for other in chosen):
            chosen.append(name)
    design = pd.DataFrame({"log_potential": target})
    terms = {}
    for index, name in enumerate(chosen):
        term = f"x{index}"
        terms[term] = name
        design[term] = (data[name] - data[name].mean()) / data[name].std()
    formula = "log_potential ~ " + (" + ".join(terms) if terms else "1")
    fit = smf.ols(formula, data=design).fit()
    interval = fit.conf_int()
    coefficients = pd.DataFrame(
        {
            "effect of +1 sd": fit.params,
            "low 95%": interval[0],
            "high 95%": interval[1],
            "p-value": fit.pvalues,
        }
    ).rename(index={"Intercept": "(baseline)", **terms})
    modelled = np.expm1(fit.fittedvalues)
    units = pd.DataFrame(
        {
            "unit_id": data["unit_id"],
            "name": data["name"],
            "potential": data["potential"],
            "modelled_potential": modelled,
            "ratio": data["potential"] / modelled.where(modelled > 0),
        }
    )
    return PotentialModel(
        formula="log(1 + potential) ~ " + (" + ".join(f"z({name})" for name in chosen) or "1"),
        r_squared=float(fit.rsquared),
        n_units=int(fit.nobs),
        coefficients=coefficients,
        units=units,
    )


def hot_spots(
    metrics: gpd.GeoDataFrame,
    column: str = "potential_per_km2",
    *,
    seed: int = 42,
    permutations: int = 999,
    graph: UnitGraph | None = None,
) -> pd.DataFrame:
    """Getis-Ord Gi* hot and cold spots of ``column`` on the units' adjacency (esda, libpysal).

    The adjacency is step 2's (:func:`territory_lib.design.graph.build_unit_graph`: queen
    contiguity on the repaired map, islands joined to their nearest unit); pass ``graph`` when it
    is already built for these units in this order. A unit is a hot (cold) spot when its Gi*
    z-score is positive (negative) with a permutation p-value < 0.05.
    """
    from esda import G_Local
    from libpysal.weights import W

    from territory_lib.design.graph import build_unit_graph

    ids = metrics["unit_id"].astype(str).to_numpy()
    if graph is None or not np.array_equal(np.asarray(graph.ids).astype(str), ids):
        graph = build_unit_graph(to_equal_area(metrics[["unit_id", "geometry"]].reset_index(drop=True)), ids)
    neighbours = {
        i: [int(j) for j in graph.indices[graph.indptr[i] : graph.indptr[i + 1]]] for i in range(graph.n)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weights = W(neighbours, id_order=list(range(graph.n)))
        stat = G_Local(
            metrics[column].to_numpy(dtype=float),
            weights,
            transform="B",
            star=True,
            permutations=permutations,
            seed=seed,
            n_jobs=1,
        )
    significant = stat.p_sim < 0.05
    label = np.where(
        significant & (stat.Zs > 0), "hot spot", np.where(significant, "cold spot", "not significant")
    )
    return pd.DataFrame(
        {"unit_id": metrics["unit_id"].to_numpy(), "gi_z": stat.Zs, "p_value": stat.p_sim, "hot_spot": label}
    )


#: Map colours of the hot-spot classes: hot red, cold blue, the rest a quiet grey.
HOT_SPOT_COLORS = {"hot spot": "#d7301f", "cold spot": "#2b8cbe", "not significant": "#e5e5e5"}


def key_findings(metrics: pd.DataFrame, spots: pd.DataFrame, unit_label: str = "unit") -> list[str]:
    """A few sentences a stakeholder can act on, computed from the unit metrics and hot spots."""

    ranked = metrics.sort_values("potential", ascending=False)
    total = max(ranked["potential"].sum(), 1e-9)
    top_n = max(1, round(len(ranked) * 0.1))
    top_share = ranked["potential"].head(top_n).sum() / total
    leaders = ", ".join(ranked["name"].head(3).astype(str))
    covered = metrics["sales_12m"].sum() / total
    hot = int(spots["hot_spot"].eq("hot spot").sum())
    cold = int(spots["hot_spot"].eq("cold spot").sum())
    notes = [
        f"The top {counted(top_n, unit_label)} by potential ({leaders}, ...) hold {top_share:.0%} "
        "of the potential.",
        f"Sales of the last twelve months capture {covered:.0%} of the known annual potential.",
        f"Hot spots of potential density: {counted(hot, unit_label)}; cold spots: "
        f"{counted(cold, unit_label)} (Getis-Ord Gi*, p < 0.05).",
    ]
    empty = int((metrics["accounts"] == 0).sum())
    if empty:
        notes.append(f"Without known accounts: {counted(empty, unit_label)}, candidates for prospecting.")
    return notes
