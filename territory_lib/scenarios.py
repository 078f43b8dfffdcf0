"""Step 2's "how many territories do we need": the plan beside one territory fewer and one more
(and the named variants of params ``scenarios``), the sales-force sizing curve, and balance bars.

Scenario plans are drawn freely (no rep anchoring) on a small, fixed work budget, so they cost a
few seconds and stay deterministic; on maps above :data:`SCENARIO_MAX_UNITS` units they are
skipped with a note, keeping large runs within their time goal.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection

import geopandas as gpd
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from territory_lib.config import MarketConfig, ScenarioSpec
from territory_lib.design import BalanceTarget, DesignResult, design_territories
from territory_lib.design.graph import UnitGraph
from territory_lib.errors import ConfigError, InfeasibleError
from territory_lib.geo import to_equal_area
from territory_lib.presentation import chart_text

__all__ = [
    "SCENARIO_MAX_UNITS",
    "SCENARIO_WORK_BUDGET",
    "Scenario",
    "ScenariosAhead",
    "balance_bars",
    "plan_scenarios",
    "scenario_maps",
    "scenario_table",
    "sizing_curve",
    "territory_deviations",
]

logger = logging.getLogger(__name__)

#: Work units each scenario plan may spend: a tenth or less of a full design, a few seconds.
SCENARIO_WORK_BUDGET = 150_000
#: Maps with more units than this get no scenario plans (each would take too long to draw well).
SCENARIO_MAX_UNITS = 1_000


@dataclass
class Scenario:
    """One plan compared in the scenarios table.

    Attributes
    ----------
    name
        What the row is called, e.g. ``"7 territories (one fewer)"``.
    k
        Number of territories.
    targets
        The balance measures and tolerances the plan was drawn for.
    result
        The plan (``None`` when it could not be drawn; ``note`` says why).
    is_plan
        Whether this is step 2's plan itself (drawn on its full budget).
    note
        Why the plan is missing, if it is.
    """

    name: str
    k: int
    targets: list[BalanceTarget]
    result: DesignResult | None
    is_plan: bool = False
    note: str = ""


def plan_scenarios(
    config: MarketConfig,
    metrics: gpd.GeoDataFrame,
    plan: DesignResult,
    targets: Sequence[BalanceTarget],
    graph: UnitGraph | None = None,
    ahead: ScenariosAhead | None = None,
) -> tuple[list[Scenario], list[str]]:
    """The plan at k−1, k and k+1 territories and the params' named variants.

    Parameters
    ----------
    config
        The market's params (``territories``, ``design.seed``, ``scenarios``).
    metrics
        The unit metrics with the balance measures.
    plan
        Step 2's plan (the k row; not drawn again).
    targets
        The plan's balance targets.
    graph
        The unit adjacency, shared with step 2.
    ahead
        The scenarios' plans started before the plan's own design (:class:`ScenariosAhead`), for
        the same params, measures and targets; without it they are designed here.

    Returns
    -------
    scenarios, notes
        The rows in order (k−1, k, k+1, then the variants) and what the reader should know
        (skipped scenarios, the reduced budget).
    """
    k = config.territories
    plan_row = Scenario(f"{k} territories (the plan)", k, list(targets), plan, is_plan=True)
    specs = _scenario_specs(config, metrics, targets)
    if len(metrics) > SCENARIO_MAX_UNITS:
        note = (
            f"Other scenarios are not drawn for maps of more than {SCENARIO_MAX_UNITS:,} units "
            f"(this one has {len(metrics):,}): each would take minutes. Run step 2 with other "
            "params (territories, design.balance) to compare them."
        )
        return [plan_row], [note]
    if ahead is not None and ahead.specs == specs:
        rows = ahead.rows()
    else:
        rows = _design_rows(specs, metrics, config, graph)
    # The row of one territory fewer, when there is one, comes before the plan.
    fewer = 1 if k > 1 else 0
    ordered = [*rows[:fewer], plan_row, *rows[fewer:]]
    notes = [
        f"The other scenarios are drawn quickly ({SCENARIO_WORK_BUDGET:,} work units each, "
        "without anchoring at rep homes): a full run of step 2 with their params may balance them better."
    ]
    return ordered, notes


class ScenariosAhead:
    """The other scenarios' plans, designed by a child process while this one designs the plan.

    A scenario's plan does not depend on step 2's plan (each is drawn freely from the same units),
    so where a core is free both are designed at once: on Georgia the k−1 and k+1 plans take 2 s
    of the step. The child is forked (it shares the units without copying them) and sends its
    rows back through a pipe. The rows are the same functions' results on the same inputs, so
    they are identical to the ones designed in this process, which is what happens when no core
    is spare, on systems without ``fork``, and if the child fails.

    Parameters
    ----------
    config, metrics, targets, graph
        As for :func:`plan_scenarios`.
    """

    def __init__(
        self,
        config: MarketConfig,
        metrics: gpd.GeoDataFrame,
        targets: Sequence[BalanceTarget],
        graph: UnitGraph | None = None,
    ) -> None:
        self.specs = _scenario_specs(config, metrics, targets)
        self._inputs = (metrics, config, graph)
        self._rows: list[Scenario] | None = None
        self._receive: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        if self.specs and len(metrics) <= SCENARIO_MAX_UNITS and _core_to_spare():
            context = multiprocessing.get_context("fork")
            self._receive, send = context.Pipe(duplex=False)
            self._process = context.Process(
                target=_design_and_send, args=(send, self.specs, *self._inputs), name="scenarios", daemon=True
            )
            self._process.start()
            send.close()

    def rows(self) -> list[Scenario]:
        """The scenario rows (k−1, k+1, variants): the child's, or designed here if it failed."""
        if self._rows is None:
            self._rows = self._received()
            if self._rows is None:
                self._rows = _design_rows(self.specs, *self._inputs)
        return self._rows

    def _received(self) -> list[Scenario] | None:
        if self._process is None or self._receive is None:
            return None
        try:
            status, payload, caught = self._receive.recv()
        except (EOFError, OSError):
            status, payload, caught = "failed", "it ended without sending them", []
        finally:
            self._receive.close()
            self._process.join()
            self._process = self._receive = None
        for message, category in caught:
            warnings.warn(message, category, stacklevel=2)
        if status == "ok":
            return payload
        logger.warning("the scenario plans are designed again in this process: %s", payload)
        return None


def _core_to_spare() -> bool:
    """Whether this process may run on more than one core and can fork (Linux)."""
    return sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) > 1


def _design_and_send(
    send: Connection,
    specs: list[tuple[str, int, list[BalanceTarget]]],
    metrics: gpd.GeoDataFrame,
    config: MarketConfig,
    graph: UnitGraph | None,
) -> None:
    """In the child: design the rows and send them, with the warnings raised on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome: tuple[str, object] = ("ok", _design_rows(specs, metrics, config, graph))
        except BaseException as exc:  # sent to the parent, which designs the rows itself
            outcome = ("failed", f"{type(exc).__name__}: {exc}".splitlines()[0])
    try:
        send.send((*outcome, [(str(w.message), w.category) for w in caught]))
    except OSError:  # nobody reads them any more (the notebook moved on): nothing to do
        pass
    finally:
        send.close()


def _scenario_specs(
    config: MarketConfig, metrics: gpd.GeoDataFrame, targets: Sequence[BalanceTarget]
) -> list[tuple[str, int, list[BalanceTarget]]]:
    """Name, territories and balance targets of each scenario other than the plan, in order."""
    k = config.territories
    specs: list[tuple[str, int, list[BalanceTarget]]] = []
    if k > 1:
        specs.append((f"{k - 1} territories (one fewer)", k - 1, list(targets)))
    if k < len(metrics):
        specs.append((f"{k + 1} territories (one more)", k + 1, list(targets)))
    numeric = sorted(
        name
        for name in metrics.columns
        if name != "geometry" and pd.api.types.is_numeric_dtype(metrics[name])
    )
    specs += [_variant(config, spec, targets, numeric, index) for index, spec in enumerate(config.scenarios)]
    return specs


def _design_rows(
    specs: list[tuple[str, int, list[BalanceTarget]]],
    metrics: gpd.GeoDataFrame,
    config: MarketConfig,
    graph: UnitGraph | None,
) -> list[Scenario]:
    """Design each scenario's plan on the scenarios' small work budget."""
    rows = []
    for name, count, wanted in specs:
        try:
            result = design_territories(
                metrics,
                count,
                wanted,
                seed=config.design.seed,
                work_budget=SCENARIO_WORK_BUDGET,
                snap=config.geometry.snap,
                graph=graph,
            )
        except (ConfigError, InfeasibleError) as exc:
            rows.append(Scenario(name, count, wanted, None, note=str(exc).splitlines()[0]))
        else:
            rows.append(Scenario(name, count, wanted, result))
    return rows


def _variant(
    config: MarketConfig, spec: ScenarioSpec, targets: Sequence[BalanceTarget], numeric: list[str], index: int
) -> tuple[str, int, list[BalanceTarget]]:
    """A named variant's name, territories and balance targets, checked against the unit measures."""
    if spec.balance is None:
        return spec.name, spec.territories or config.territories, list(targets)
    for position, balance in enumerate(spec.balance):
        if balance.measure not in numeric:
            raise ConfigError(
                f"{config.source}: 'scenarios[{index}].balance[{position}].measure: {balance.measure}' is "
                f"not a numeric unit measure; choose one of {', '.join(numeric)}."
            )
    wanted = [BalanceTarget(balance.measure, balance.tolerance) for balance in spec.balance]
    return spec.name, spec.territories or config.territories, wanted


def scenario_table(
    scenarios: Sequence[Scenario], metrics: pd.DataFrame, capacity: float | None
) -> pd.DataFrame:
    """One row per scenario: balance, compactness and workload per rep.

    Columns: ``scenario``, ``territories``, ``max_dev_<measure>`` for every measure any scenario
    balances (NaN where it does not), ``within_bands`` ("yes"/"no"), ``mean_polsby_popper``,
    ``accounts_per_rep`` (mean) and ``largest_territory_accounts``; with ``capacity`` (the reps'
    mean), ``largest_vs_capacity``.
    """
    measures = list(dict.fromkeys(target.column for row in scenarios for target in row.targets))
    records = []
    for row in scenarios:
        record: dict[str, object] = {"scenario": row.name, "territories": row.k}
        for measure in measures:
            record[f"max_dev_{measure}"] = np.nan
        if row.result is None:
            record |= {"within_bands": f"not drawn: {row.note}"}
            records.append(record)
            continue
        summary = row.result.summary
        for target in row.targets:
            record[f"max_dev_{target.column}"] = summary.get(f"max_dev_{target.column}", np.nan)
        held = all(
            float(summary.get(f"max_dev_{t.column}", np.inf)) <= t.tolerance + 1e-9 for t in row.targets
        )
        bands = ", ".join(f"{t.column} ±{t.tolerance:.0%}" for t in row.targets)
        record["within_bands"] = f"{'yes' if held else 'no'} ({bands})"
        record["mean_polsby_popper"] = summary.get("mean_polsby_popper", np.nan)
        per_territory = territory_totals(row.result.assignment, metrics, ["accounts"])["accounts"]
        record["accounts_per_rep"] = float(per_territory.mean())
        record["largest_territory_accounts"] = float(per_territory.max())
        if capacity:
            record["largest_vs_capacity"] = float(per_territory.max()) / capacity
        records.append(record)
    return pd.DataFrame(records)


def territory_totals(assignment: pd.Series, metrics: pd.DataFrame, measures: Sequence[str]) -> pd.DataFrame:
    """Each territory's totals of ``measures``, from a unit → territory assignment."""
    labels = metrics["unit_id"].astype(str).map(assignment.rename(index=str))
    return metrics.groupby(labels.to_numpy())[list(measures)].sum()


def territory_deviations(
    assignment: pd.Series, metrics: pd.DataFrame, measures: Sequence[str]
) -> pd.DataFrame:
    """Each territory's deviation from the mean territory, per measure (``0.1`` = 10 % above)."""
    totals = territory_totals(assignment, metrics, measures)
    return totals / totals.mean() - 1


def balance_bars(
    after: pd.DataFrame,
    tolerances: Mapping[str, float],
    before: pd.DataFrame | None = None,
    labels: tuple[str, str] = ("Today", "Plan"),
) -> Figure:
    """Per territory and measure, the deviation from target as a bar, with the tolerance band shaded.

    Parameters
    ----------
    after
        Deviations by territory (index) and measure (columns), e.g. from :func:`territory_deviations`.
    tolerances
        The band per measure (``0.05`` = ±5 %).
    before
        The same for the alignment being replaced (drawn as hatched grey bars beside), optional.
    labels
        Names of ``before`` and ``after`` in the legend.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per measure. Bars outside the band carry a heavy outline and a "!" as well
        as their colour, so they read without colour.
    """
    measures = [measure for measure in after.columns if measure in tolerances]
    territories = sorted(set(after.index) | set(before.index if before is not None else []))
    height = max(2.6, 0.32 * len(territories) + 1.2)
    figure = Figure(figsize=(4.2 * len(measures) + 0.8, height), layout="constrained")
    axes = figure.subplots(1, len(measures), sharey=True, squeeze=False)[0]
    positions = np.arange(len(territories))
    width = 0.38 if before is not None else 0.7
    for axis, measure in zip(axes, measures, strict=True):
        tolerance = tolerances[measure]
        axis.axvspan(-tolerance, tolerance, color="#dbe9f6", zorder=0)
        axis.axvline(0, color="#555555", linewidth=0.8)
        values = after[measure].reindex(territories)
        outside = values.abs() > tolerance + 1e-9
        axis.barh(
            positions - (width / 2 if before is not None else 0),
            values.fillna(0),
            height=width,
            color=np.where(outside, "#e07b00", "#1f5f9f"),
            edgecolor=np.where(outside, "#111111", "none"),
            linewidth=1.4,
            label=labels[1],
        )
        for position, value, out in zip(positions, values, outside, strict=True):
            if out and pd.notna(value):
                axis.annotate(
                    "!",
                    (value, position - (width / 2 if before is not None else 0)),
                    xytext=(4 if value >= 0 else -8, -4),
                    textcoords="offset points",
                    fontweight="bold",
                )
        if before is not None:
            axis.barh(
                positions + width / 2,
                before[measure].reindex(territories).fillna(0),
                height=width,
                color="#b8b8b8",
                hatch="///",
                edgecolor="#666666",
                linewidth=0.6,
                label=labels[0],
            )
        axis.set_title(
            f"{chart_text(measure.replace('_', ' ')).capitalize()} (band ±{tolerance:.0%})", fontsize=10
        )
        axis.xaxis.set_major_formatter(lambda x, _: f"{x:+.0%}")
        axis.grid(axis="x", color="#e5e5e5", linewidth=0.6)
        axis.set_axisbelow(True)
        axis.invert_yaxis()
    axes[0].set_yticks(positions, [chart_text(t) for t in territories])
    handles = [
        Patch(color="#dbe9f6", label="Tolerance band"),
        Patch(color="#1f5f9f", label=f"{labels[1]}, in band"),
    ]
    handles.append(Patch(facecolor="#e07b00", edgecolor="#111111", label=f"{labels[1]}, outside (!)"))
    if before is not None:
        handles.append(Patch(facecolor="#b8b8b8", hatch="///", edgecolor="#666666", label=labels[0]))
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return figure


def balance_alt_text(
    after: pd.DataFrame,
    tolerances: Mapping[str, float],
    before: pd.DataFrame | None = None,
    labels: tuple[str, str] = ("Today", "Plan"),
) -> str:
    """What :func:`balance_bars` shows, in words, for the image's alt text."""
    parts = []
    for measure in (m for m in after.columns if m in tolerances):
        band = tolerances[measure]
        outside = int((after[measure].abs() > band + 1e-9).sum())
        text = (
            f"{measure.replace('_', ' ')}: {outside} of {len(after)} territories outside the "
            f"±{band:.0%} band in the {labels[1].lower()} (largest {after[measure].abs().max():.0%})"
        )
        if before is not None and measure in before:
            text += f"; {labels[0].lower()} largest {before[measure].abs().max():.0%}"
        parts.append(text)
    return (
        f"Bar chart of each territory's deviation from target, {labels[0].lower()} vs {labels[1].lower()}. "
        + (". ".join(parts) + ".")
    )


def sizing_curve(
    total_accounts: float,
    capacities: Sequence[float],
    k: int,
    scenarios: Sequence[Scenario] = (),
    metrics: pd.DataFrame | None = None,
    over_capacity: float = 1.10,
) -> Figure:
    """The sales-force sizing curve: accounts per rep against the number of territories.

    The curve is the market's accounts shared evenly (``total / k``); the points are the largest
    territory of each scenario drawn; the lines are the reps' mean capacity and the over-capacity
    threshold. Where the curve crosses the capacity line is the fewest reps who can cover the
    market evenly.
    """
    low, high = max(1, k - 3), k + 3
    ks = np.arange(low, high + 1)
    figure = Figure(figsize=(6.4, 3.4), layout="constrained")
    axis = figure.subplots()
    axis.plot(ks, total_accounts / ks, marker="o", color="#1f5f9f", label="Accounts per rep, shared evenly")
    if metrics is not None:
        drawn = [row for row in scenarios if row.result is not None and row.targets == scenarios[0].targets]
        if drawn:
            largest = [
                territory_totals(row.result.assignment, metrics, ["accounts"])["accounts"].max()
                for row in drawn
                if row.result is not None
            ]
            axis.scatter(
                [row.k for row in drawn], largest, marker="^", s=60, color="#e07b00", zorder=3,
                label="Largest territory in the scenario drawn",
            )  # fmt: skip
    if len(capacities):
        mean = float(np.mean(capacities))
        axis.axhline(
            mean, color="#333333", linestyle="--", linewidth=1, label=f"Mean rep capacity ({mean:,.0f})"
        )
        axis.axhline(
            mean * over_capacity, color="#333333", linestyle=":", linewidth=1,
            label=f"Over capacity (above {over_capacity:.0%})",
        )  # fmt: skip
    axis.axvline(k, color="#999999", linewidth=0.8)
    axis.annotate(
        "the plan", (k, axis.get_ylim()[1]), xytext=(3, -12), textcoords="offset points", fontsize=8
    )
    axis.set_xlabel("Territories (one rep each)")
    axis.set_ylabel("Accounts per rep")
    axis.set_xticks(ks)
    axis.grid(color="#e5e5e5", linewidth=0.6)
    axis.legend(fontsize=8, frameon=False, loc="upper right")
    return figure


def sizing_alt_text(total_accounts: float, capacities: Sequence[float], k: int) -> str:
    """What :func:`sizing_curve` shows, in words."""
    text = (
        f"Line chart of accounts per rep against the number of territories: {total_accounts / k:,.0f} "
        f"with {k} territories"
    )
    if len(capacities):
        mean = float(np.mean(capacities))
        needed = int(np.ceil(total_accounts / mean)) if mean > 0 else None
        text += f", against a mean rep capacity of {mean:,.0f}"
        if needed:
            text += f"; at least {needed} reps cover every account within that capacity"
    return text + "."


def scenario_maps(scenarios: Sequence[Scenario], metrics: gpd.GeoDataFrame) -> Figure | None:
    """Small maps of the scenarios drawn, side by side; neighbouring territories never share a colour.

    ``None`` when fewer than two scenarios were drawn (large maps draw the plan alone): one small
    map would repeat the plan's own map, and on 30,000 units it takes seconds to draw.
    """
    from territory_lib.maps import territory_colors

    drawn = [row for row in scenarios if row.result is not None]
    if len(drawn) < 2:
        return None
    figure = Figure(figsize=(3.0 * max(len(drawn), 1), 3.2), layout="constrained")
    axes = figure.subplots(1, max(len(drawn), 1), squeeze=False)[0]
    # The equal-area projection the design used: its transformation is made once per kernel.
    shapes = to_equal_area(metrics[["unit_id", "geometry"]])
    for axis, row in zip(axes, drawn, strict=False):
        assert row.result is not None  # only drawn scenarios are mapped
        labels = shapes["unit_id"].astype(str).map(row.result.assignment.rename(index=str))
        colours = territory_colors(metrics.assign(scenario_territory=labels.to_numpy()), "scenario_territory")
        shapes.plot(
            ax=axis, color=labels.map(colours).fillna("#d9d9d9").to_list(), edgecolor="white", linewidth=0.2
        )
        territories = shapes.assign(t=labels.to_numpy()).dissolve("t")
        territories.boundary.plot(ax=axis, color="#222222", linewidth=0.7)
        axis.set_title(chart_text(row.name), fontsize=9)
        axis.set_axis_off()
    return figure
