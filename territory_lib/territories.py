"""Step 2 around the design engine: balance targets from params, rep-home seeds, the CRM files."""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import pandas as pd

from territory_lib.config import MarketConfig, counted, plural
from territory_lib.design import BalanceTarget, DesignResult, design_territories
from territory_lib.design.budget import default_work_budget
from territory_lib.design.graph import UnitGraph
from territory_lib.errors import ConfigError, InfeasibleError
from territory_lib.geo import equal_area_crs
from territory_lib.resources import CAPACITY_WEIGHT, account_assignment, assign_reps, territory_centres


def balance_targets(config: MarketConfig, metrics: pd.DataFrame) -> list[BalanceTarget]:
    """The params' ``design.balance`` as engine targets, each measure checked against the unit metrics."""
    numeric = sorted(
        name
        for name in metrics.columns
        if name != "geometry" and pd.api.types.is_numeric_dtype(metrics[name])
    )
    targets = []
    for index, spec in enumerate(config.design.balance):
        if spec.measure not in numeric:
            raise ConfigError(
                f"{config.source}: 'design.balance[{index}].measure: {spec.measure}' is not a numeric unit "
                f"measure; choose one of {', '.join(numeric)}."
            )
        targets.append(BalanceTarget(spec.measure, spec.tolerance))
    return targets


def rep_home_seeds(config: MarketConfig, reps: pd.DataFrame) -> pd.DataFrame | None:
    """Rep homes (``lat``, ``lon``) to anchor one territory each, when the params ask for it.

    Anchoring needs exactly one rep per territory; otherwise the engine places the territories
    itself and step 3 matches reps to them.
    """
    if not config.design.anchor_at_reps or len(reps) != config.territories:
        return None
    return pd.DataFrame({"lat": reps["home_lat"].to_numpy(), "lon": reps["home_lon"].to_numpy()})


@dataclass
class TerritoryPlan:
    """Step 2's plan: the engine's result, and whether its territories grow from rep homes."""

    result: DesignResult
    anchored: bool
    notes: list[str]


def design_plan(
    config: MarketConfig, metrics: gpd.GeoDataFrame, reps: pd.DataFrame, graph: UnitGraph | None = None
) -> TerritoryPlan:
    """Draw the territories of the params: anchored at rep homes when that keeps every band.

    Anchoring costs balance when reps live close together (two reps in one metro area), and is
    impossible when two live in the same unit: then, if a free plan holds every band, the free plan
    is taken, step 3 matches the reps to it by distance, and a note says why.

    Both attempts share one work budget (``design.work_budget``, default by the map's size): the
    anchored attempt may spend half of it, the free attempt gets the rest. No clock is involved, so
    the same data and params give the same plan on any machine.
    """
    targets = balance_targets(config, metrics)
    seeds = rep_home_seeds(config, reps)
    budget = config.design.work_budget or default_work_budget(len(metrics))
    spent = 0
    anchored: DesignResult | None = None
    if seeds is not None:
        try:
            anchored = design_territories(
                metrics,
                config.territories,
                targets,
                seeds=seeds,
                seed=config.design.seed,
                work_budget=max(budget // 2, 1),
                snap=config.geometry.snap,
                graph=graph,
            )
        except (ConfigError, InfeasibleError) as exc:  # e.g. two reps living in the same unit
            why = f"anchoring each territory at a rep's home is impossible ({exc})"
        else:
            if anchored.feasible:
                return TerritoryPlan(anchored, anchored=True, notes=[])
            spent = anchored.work
            worst = ", ".join(f"{t.column} {anchored.summary[f'max_dev_{t.column}']:.1%}" for t in targets)
            why = f"territories anchored at the reps' homes would miss a balance band ({worst})"
    free = design_territories(
        metrics,
        config.territories,
        targets,
        seed=config.design.seed,
        work_budget=max(budget - spent, 1),
        snap=config.geometry.snap,
        graph=graph,
    )
    if anchored is not None and not free.feasible and _excess(anchored, targets) <= _excess(free, targets):
        return TerritoryPlan(anchored, anchored=True, notes=[])
    notes = (
        []
        if seeds is None
        else [f"{why[0].upper()}{why[1:]}, so they were drawn freely; step 3 matches reps to them."]
    )
    return TerritoryPlan(free, anchored=False, notes=notes)


def _excess(result: DesignResult, targets: list[BalanceTarget]) -> float:
    """Total deviation of a plan's territories beyond their bands (0 when every band holds)."""
    table = result.territories
    return sum(
        float((table[f"{target.column}_dev"].abs() - target.tolerance).clip(lower=0).sum())
        for target in targets
    )


def plan_tables(
    assignment: pd.Series,
    metrics: gpd.GeoDataFrame,
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    capacity_weight: float = CAPACITY_WEIGHT,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame, pd.DataFrame]:
    """The plan as the next steps and the CRM need it.

    Returns
    -------
    alignment
        The units with their ``territory_id`` (GeoDataFrame, for maps and later steps).
    rep_assignment
        ``territory_id, rep_id, rep_name, home_distance_km``: the closest reps overall.
    accounts_by_rep
        ``account_id, territory_id, rep_id``: the file for the CRM upload.
    """
    alignment = metrics.assign(territory_id=metrics["unit_id"].map(assignment))
    placed = accounts.assign(territory_id=accounts["unit_id"].map(assignment))
    centres = territory_centres(placed)
    empty = sorted(set(alignment["territory_id"]) - set(centres["territory_id"]))
    if empty:
        # A territory without accounts is centred on its units' geometric centre.
        shapes = alignment[alignment["territory_id"].isin(empty)].dissolve("territory_id")
        middle = shapes.to_crs(equal_area_crs(shapes)).centroid.to_crs(4326)
        centres = pd.concat(
            [
                centres,
                pd.DataFrame(
                    {"territory_id": shapes.index, "lat": middle.y.to_numpy(), "lon": middle.x.to_numpy()}
                ),
            ],
            ignore_index=True,
        )
    reps_for_territories = assign_reps(
        centres.sort_values("territory_id", ignore_index=True), reps, capacity_weight
    )
    owners = reps_for_territories[["territory_id", "rep_id"]]
    return alignment, reps_for_territories, account_assignment(accounts, alignment, owners)


def current_balance(metrics: pd.DataFrame, targets: list[BalanceTarget]) -> dict[str, float] | None:
    """The worst deviation from the mean, per measure, of the units' current ``territory_id``.

    ``None`` when the units carry no current alignment.
    """
    if "territory_id" not in metrics or (metrics["territory_id"] == "").all():
        return None
    totals = metrics.groupby("territory_id")[[target.column for target in targets]].sum()
    return {
        target.column: float((totals[target.column] / totals[target.column].mean() - 1).abs().max())
        for target in targets
    }


def plan_findings(
    plan: DesignResult,
    targets: list[BalanceTarget],
    anchored: bool,
    current: dict[str, float] | None = None,
    unit_label: str = "unit",
) -> list[str]:
    """What a stakeholder needs to know about a plan, in sentences."""
    summary = plan.summary
    notes = [
        f"{summary['k']} territories; every one is a single connected area."
        if summary["all_contiguous"]
        else f"{summary['k']} territories; some are not connected (see the notes below)."
    ]
    for target in targets:
        worst = float(summary[f"max_dev_{target.column}"])
        verdict = "within" if worst <= target.tolerance + 1e-9 else "outside"
        line = (
            f"{target.column}: the largest deviation from target is {worst:.1%}, {verdict} the "
            f"±{target.tolerance:.0%} band"
        )
        if current is not None and target.column in current:
            line += f" (the current alignment deviates by up to {current[target.column]:.0%})"
        notes.append(line + ".")
    notes.append(f"Mean Polsby-Popper compactness {summary['mean_polsby_popper']:.2f} (1 is a circle).")
    if "units_moved" in summary:
        notes.append(
            f"{counted(int(summary['units_moved']), unit_label)} change territory "
            f"({summary['share_moved']:.0%} of all {plural(unit_label)})."
        )
    if anchored:
        notes.append("Each territory grows from one rep's home.")
    notes.extend(plan.notes)
    return notes


def step2_metrics(
    plan: DesignResult, targets: list[BalanceTarget], anchored: bool, current: dict[str, float] | None
) -> dict[str, object]:
    """Step 2's section of ``metrics.json``: the plan's balance, compactness and contiguity.

    ``max_deviation.<measure>`` is the largest deviation from the target share (a fraction), with
    each measure's ``tolerance`` and whether every territory is ``within_band``;
    ``current_max_deviation`` is today's alignment's, when the data carry one.
    """
    summary = plan.summary
    worst = {target.column: float(summary[f"max_dev_{target.column}"]) for target in targets}
    return {
        "territories": int(summary["k"]),
        "max_deviation": worst,
        "tolerance": {target.column: target.tolerance for target in targets},
        "within_band": all(worst[t.column] <= t.tolerance + 1e-9 for t in targets),
        "mean_polsby_popper": float(summary["mean_polsby_popper"]),
        "contiguous": bool(summary["all_contiguous"]),
        "anchored_at_rep_homes": anchored,
        "current_max_deviation": current,
    }


def summary_table(plan: DesignResult) -> pd.DataFrame:
    """The plan-level metrics as a two-column table for the report."""
    labels = {
        "k": "Territories",
        "mean_polsby_popper": "Mean Polsby-Popper",
        "total_inertia": "Moment of inertia (km², weighted)",
        "all_contiguous": "All territories contiguous",
        "units_moved": "Units moved",
        "share_moved": "Share of units moved",
        "seconds": "Seconds to compute",
    }
    rows = []
    for key, value in plan.summary.items():
        if key.startswith("max_dev_"):
            rows.append((f"Largest deviation, {key.removeprefix('max_dev_')}", f"{value:.2%}"))
        elif key.startswith("share_"):
            rows.append((labels.get(key, key.replace("_", " ")), f"{value:.1%}"))
        elif isinstance(value, bool):
            rows.append((labels.get(key, key), "yes" if value else "no"))
        elif isinstance(value, float):
            rows.append((labels.get(key, key), f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"))
        else:
            rows.append((labels.get(key, key.replace("_", " ")), f"{value}"))
    rows.append(("Plan meets every constraint", "yes" if plan.feasible else "no"))
    return pd.DataFrame(rows, columns=["Measure", "Value"])
