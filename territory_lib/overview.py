"""The market overview a sales leader reads in two minutes: ``reports/<market>/overview.html``.

Built by the runner after a successful run, from the run's artifacts and ``metrics.json``: headline
figures, alerts, today's alignment beside step 2's plan and step 5's proposal (maps in the same
colours per territory, one comparison table), the recommendation in one sentence, and links to the
step reports. Every figure a step did not produce shows as "–".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import jinja2
import numpy as np
import pandas as pd
import shapely

from territory_lib.config import MarketConfig, counted, distance_unit
from territory_lib.presentation import distance, human_time, money, percent
from territory_lib.steps import STEPS, Workspace, provenance

__all__ = [
    "OVERVIEW_FILE",
    "Alignment",
    "OverviewPage",
    "build_overview",
    "compare_alignments",
    "overview_alerts",
    "recommendation",
    "territory_shapes",
    "try_build_overview",
]

OVERVIEW_FILE = "overview.html"
#: The data note under the overview is one line; the full provenance is in each step report.
DATA_NOTE_LENGTH = 160
#: Above this many units the overview's maps draw one outline per territory, not every unit, so
#: three maps of a 30,000-unit market stay light.
OVERVIEW_UNIT_LIMIT = 2_000


@dataclass
class Alignment:
    """One way of dividing the market: units to territories and territories to reps.

    Attributes
    ----------
    name
        ``"Today"``, ``"Plan"`` or ``"Proposal"``.
    territory
        Territory id per ``unit_id``.
    owners
        ``territory_id, rep_id, rep_name``: who works each territory.
    account_rep
        Rep per ``account_id`` (today's from the CRM; otherwise through the territory).
    drive_km_total
        Annual driving of all reps when a step recorded it in ``metrics.json``.
    """

    name: str
    territory: pd.Series
    owners: pd.DataFrame
    account_rep: pd.Series
    drive_km_total: float | None = None
    workload: pd.DataFrame = field(default_factory=pd.DataFrame)


def _get(mapping: Any, *keys: str) -> Any:
    """``mapping[k1][k2]...`` or ``None`` where a step has not recorded it."""
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _alignments(config: MarketConfig, workspace: Workspace, market: Any) -> list[Alignment]:
    """Today (when the data carry one), step 2's plan and step 5's proposal (when it ran)."""
    from territory_lib.resources import rep_workload

    metrics = workspace.read("unit_metrics")
    accounts = workspace.read("accounts")
    reps = market.reps
    recorded = workspace.read_metrics()
    found: list[Alignment] = []

    current = metrics.set_index("unit_id")["territory_id"].astype(str) if "territory_id" in metrics else None
    if current is not None and (current != "").any():
        owners = pd.DataFrame(
            {"territory_id": reps["rep_id"], "rep_id": reps["rep_id"], "rep_name": reps["name"]}
        )
        if "territory_id" in reps and (reps["territory_id"].astype(str) != "").any():
            owners = owners.assign(territory_id=reps["territory_id"].astype(str).to_numpy())
        account_rep = accounts.set_index("account_id")["rep_id"].astype(str) if "rep_id" in accounts else None
        if account_rep is None or (account_rep == "").all():
            account_rep = (
                accounts.set_index("account_id")["unit_id"]
                .map(current)
                .map(owners.set_index("territory_id")["rep_id"])
            )
        # Step 3's "today": each rep with the accounts the CRM gives them.
        by_rep = pd.DataFrame(
            {"territory_id": reps["rep_id"], "rep_id": reps["rep_id"], "rep_name": reps["name"]}
        )
        if workspace.artifact_path("rep_comparison").is_file():
            # Step 3's route model already worked out each rep's year today.
            compared = workspace.read("rep_comparison")
            workload = pd.DataFrame(
                {column: compared[f"{column}_today"] for column in ("status", "annual_drive_km")}
            )
        else:
            owned = accounts.assign(territory_id=accounts["account_id"].map(account_rep).fillna(""))
            workload = rep_workload(owned[owned["territory_id"] != ""], reps, by_rep, config.resources)
        found.append(
            Alignment(
                "Today",
                current,
                owners,
                account_rep,
                _get(recorded, "step3", "annual_drive_km", "total_today"),
                workload,
            )
        )

    if workspace.artifact_path("alignment").is_file() and workspace.artifact_path("rep_assignment").is_file():
        plan = workspace.read("alignment").set_index("unit_id")["territory_id"].astype(str)
        owners = workspace.read("rep_assignment")[["territory_id", "rep_id", "rep_name"]]
        found.append(
            _derived(
                "Plan",
                plan,
                owners,
                accounts,
                reps,
                config,
                _get(recorded, "step3", "annual_drive_km", "total_plan"),
                _artifact(workspace, "rep_workload"),
            )
        )
        if workspace.artifact_path("proposed_moves").is_file():
            moves = workspace.read("proposed_moves")
            proposal = plan.copy()
            if len(moves):
                proposal.loc[moves["unit_id"].astype(str)] = moves["to_territory"].astype(str).to_numpy()
            found.append(
                _derived(
                    "Proposal",
                    proposal,
                    owners,
                    accounts,
                    reps,
                    config,
                    _get(recorded, "step5", "proposal", "annual_drive_km_total"),
                    _artifact(workspace, "proposal_workload"),
                )
            )
    return found


def _artifact(workspace: Workspace, name: str) -> pd.DataFrame | None:
    """A step's saved table, or ``None`` when that step has not written it."""
    return workspace.read(name) if workspace.artifact_path(name).is_file() else None


def _derived(
    name: str,
    territory: pd.Series,
    owners: pd.DataFrame,
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    config: MarketConfig,
    drive_km_total: float | None,
    workload: pd.DataFrame | None = None,
) -> Alignment:
    """An alignment of the run with its owners; its workload is the step's own (``workload``) when
    the step saved it, else worked out here with the route model."""
    from territory_lib.resources import rep_workload

    placed = accounts.assign(territory_id=accounts["unit_id"].astype(str).map(territory))
    account_rep = placed.set_index("account_id")["territory_id"].map(
        owners.set_index("territory_id")["rep_id"]
    )
    if workload is None:
        workload = rep_workload(placed, reps, owners, config.resources)
    return Alignment(name, territory, owners, account_rep, drive_km_total, workload)


def compare_alignments(
    alignments: Sequence[Alignment],
    metrics: pd.DataFrame,
    measures: Sequence[str],
    account_sales: pd.Series,
    *,
    graph: Any = None,
    currency: str = "USD",
    unit: str = "km",
) -> pd.DataFrame:
    """One row per measure, one column per alignment: the figures the overview compares.

    Parameters
    ----------
    alignments
        Today, plan, proposal (any of them); the first named ``"Today"`` is the reference for
        accounts and sales changing rep.
    metrics
        Unit metrics (``unit_id`` and the balance measures).
    measures
        The balance measures (params ``design.balance``).
    account_sales
        Last-12-month sales per ``account_id``.
    graph
        The unit adjacency (:class:`territory_lib.design.graph.UnitGraph`) for Polsby-Popper.
    currency, unit
        How money and distances are shown.

    Returns
    -------
    DataFrame
        Index: the measure in words; columns: the alignments' names; values are display text.
    """
    from territory_lib.design.metrics import polsby_popper

    today = next((a for a in alignments if a.name == "Today"), None)
    units = metrics.set_index(metrics["unit_id"].astype(str))
    columns: dict[str, dict[str, str]] = {}
    for alignment in alignments:
        column: dict[str, str] = {}
        labels = units.index.map(alignment.territory)
        totals = units.groupby(labels)[list(measures)].sum()
        column["Territories"] = f"{totals.shape[0]:,}"
        for measure in measures:
            deviation = (totals[measure] / totals[measure].mean() - 1).abs().max() if len(totals) else np.nan
            column[f"Largest deviation from an equal share, {measure.replace('_', ' ')}"] = percent(deviation)
        status = alignment.workload["status"] if "status" in alignment.workload else pd.Series(dtype=str)
        column["Reps over capacity"] = f"{int((status == 'over capacity').sum())}"
        column["Reps under-used"] = f"{int((status == 'under-used').sum())}"
        drive = alignment.drive_km_total
        if drive is None and "annual_drive_km" in alignment.workload:
            drive = float(alignment.workload["annual_drive_km"].sum())
        column["Annual driving, all reps"] = distance(drive, unit)
        if today is not None:
            before = today.account_rep.reindex(alignment.account_rep.index).astype(str)
            moved = alignment.account_rep.astype(str) != before
            column["Accounts changing rep"] = f"{int(moved.sum()):,}"
            column["Sales changing rep (12 months)"] = money(
                account_sales.reindex(moved[moved].index).fillna(0).sum(), currency
            )
        else:
            column["Accounts changing rep"] = column["Sales changing rep (12 months)"] = "–"
        column["Mean compactness (Polsby-Popper, 1 = circle)"] = "–"
        if graph is not None and graph.polygons:
            names = pd.Index(sorted(set(alignment.territory.reindex(graph.ids.astype(str)).dropna())))
            positions = names.get_indexer(alignment.territory.reindex(graph.ids.astype(str)))
            if (positions >= 0).all():
                score = np.nanmean(polsby_popper(graph, positions, len(names)))
                column["Mean compactness (Polsby-Popper, 1 = circle)"] = f"{score:.2f}"
        columns[alignment.name] = column
    return pd.DataFrame(columns).fillna("–")


def overview_alerts(
    workload: pd.DataFrame, recorded: Mapping[str, Any], notes: Sequence[str], unit: str = "km"
) -> list[str]:
    """What needs a leader's attention in the plan, in sentences.

    Reps over capacity, accounts in segments their rep does not sell, territories that cannot be
    worked by day trips from home, visits beyond the working year, and the notes on the data.
    """
    alerts = []
    if "status" in workload:
        over = workload[workload["status"] == "over capacity"]
        if len(over):
            names = ", ".join(f"{row.rep_name} ({row.utilisation:.0%})" for row in over.itertuples())
            alerts.append(
                f"{len(over)} rep{'s' if len(over) != 1 else ''} over capacity in the plan: {names}."
            )
    off = int(workload["off_segment_accounts"].sum()) if "off_segment_accounts" in workload else 0
    if off:
        alerts.append(f"{off:,} accounts would be served by a rep who does not sell their segment.")
    if "travel_status" in workload:
        # The route model (step 3) chains visits into day tours within the working year; a territory
        # beyond day trips from home needs nights away or flights, and visits it cannot fit are missed.
        away = workload[workload["travel_status"].isin(["needs overnights", "needs flights"])]
        if len(away):
            names = ", ".join(f"{row.territory_id} ({row.travel_status})" for row in away.itertuples())
            alerts.append(f"Not workable by day trips from the rep's home: {names}.")
    if "visits_missed" in workload:
        short = workload[workload["visits_missed"].fillna(0) > 0]
        if len(short):
            names = ", ".join(f"{row.territory_id} ({row.visits_missed:,.0f})" for row in short.itertuples())
            alerts.append(f"Visits that do not fit in the rep's working year: {names}.")
    expected = _get(recorded, "step1", "expected_false_spots")
    if expected is not None:
        alerts.append(f"Hot and cold spots: chance alone would give about {float(expected):.1f} on this map.")
    alerts.extend(notes)
    return alerts


def recommendation(comparison: pd.DataFrame, measures: Sequence[str]) -> str:
    """The overview's advice in one sentence, from the comparison table.

    Of the plan and the proposal, the one with fewer reps over capacity, then the smaller largest
    deviation of the first balance measure, then fewer accounts changing rep (the plan on a tie).
    """
    candidates = [name for name in ("Plan", "Proposal") if name in comparison]
    if not candidates:
        return "Run step 2 to draw a plan; there is nothing to compare yet."
    measure = measures[0].replace("_", " ")
    deviation = comparison.loc[f"Largest deviation from an equal share, {measure}"]

    def number(text: str) -> float:
        try:
            return float(str(text).replace(",", "").replace("%", "").replace("$", ""))
        except ValueError:
            return float("inf")

    def cost(name: str) -> tuple[float, float, float]:
        return (
            number(comparison.loc["Reps over capacity", name]),
            number(deviation[name]),
            number(comparison.loc["Accounts changing rep", name]),
        )

    chosen = min(candidates, key=cost)
    what = "step 5's proposal (the plan with its proposed moves)" if chosen == "Proposal" else "step 2's plan"
    sentence = f"Adopt {what}: the largest {measure} deviation is {deviation[chosen]}"
    if "Today" in comparison and deviation["Today"] != "–":
        sentence += f" against {deviation['Today']} today"
    over = comparison.loc["Reps over capacity", chosen]
    sentence += f", with {over} rep{'' if over == '1' else 's'} over capacity"
    if "Today" in comparison:
        sentence += f" ({comparison.loc['Reps over capacity', 'Today']} today)"
    moved = comparison.loc["Accounts changing rep", chosen]
    if moved != "–":
        sentence += f" and {moved} accounts changing rep"
    return sentence + "."


def territory_shapes(units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """One outline per ``territory_id``: the union of its units (a coverage union, fast on clean maps)."""
    groups = units.dropna(subset=["territory_id"]).groupby("territory_id", sort=True)
    outlines = [shapely.coverage_union_all(group.geometry.to_numpy()) for _, group in groups]
    shapes = gpd.GeoDataFrame({"territory_id": list(groups.groups)}, geometry=outlines, crs=units.crs)
    # A coverage union of units that overlap a little can be invalid; make_valid keeps it drawable.
    return shapes.assign(geometry=shapely.make_valid(shapes.geometry.to_numpy()))


def _step_links(folder: Path) -> list[dict[str, str | None]]:
    return [
        {
            "title": f"{step.number}. {step.title}",
            "href": f"{step.notebook}.html" if (folder / f"{step.notebook}.html").is_file() else None,
        }
        for step in STEPS
    ]


@dataclass
class OverviewPage:
    """The overview written, and its alerts (the index page shows them on the market's card)."""

    path: Path
    alerts: list[str]


def build_overview(config: MarketConfig, folder: str | Path, run_date: str | None = None) -> OverviewPage:
    """Write ``folder/overview.html`` from the run in ``folder``.

    Parameters
    ----------
    config
        The market's params.
    folder
        The run folder (artifacts, ``metrics.json``, the input snapshot, the step reports).
    run_date
        The date the reports carry, shown in the header.
    """
    from territory_lib import maps
    from territory_lib.market import trailing_sales
    from territory_lib.paths import write_text_atomically
    from territory_lib.snapshot import read_snapshot

    folder = Path(folder)
    workspace = Workspace(folder)
    market, graph = read_snapshot(config, folder)
    metrics = workspace.read("unit_metrics")
    recorded = workspace.read_metrics()
    unit = distance_unit(config)
    measures = [spec.measure for spec in config.design.balance if spec.measure in metrics]
    alignments = _alignments(config, workspace, market)
    account_sales = trailing_sales(market.sales) if len(market.sales) else pd.Series(dtype=float)
    comparison = compare_alignments(
        alignments, metrics, measures, account_sales, graph=graph, currency=config.currency, unit=unit
    )

    trend = "–"
    if workspace.artifact_path("trends").is_file():
        trends = workspace.read("trends")
        growth = float(trends["annual_growth"].iloc[0]) if len(trends) and "annual_growth" in trends else None
        if growth is not None and np.isfinite(growth):
            # Step 4's one definition of growth: the last 12 months against the 12 before.
            trend = f"{percent(growth, signed=True)} vs prior 12 months"
        else:
            trend = "too little history"
    plan = next((a for a in alignments if a.name == "Plan"), None)
    tiles = [
        ("Annual potential", money(metrics["potential"].sum(), config.currency)),
        (
            "Sales, last 12 months",
            money(metrics["sales_12m"].sum(), config.currency) if "sales_12m" in metrics else "–",
        ),
        ("Sales trend", trend),
        ("Territories", f"{config.territories:,}"),
        ("Reps", f"{len(market.reps):,}"),
    ]
    notes = list(market.warnings[:3])
    if not (next((a for a in alignments if a.name == "Today"), None)):
        notes.append("The data carry no current alignment, so today cannot be compared.")
    alerts = overview_alerts(plan.workload if plan is not None else pd.DataFrame(), recorded, notes, unit)

    units = metrics[["unit_id", "name", "geometry"]].copy()
    for alignment in alignments:
        units[alignment.name] = units["unit_id"].astype(str).map(alignment.territory)
    # One colour per territory across today, plan and proposal; neighbours never share one.
    colours = maps.territory_colors(units, [alignment.name for alignment in alignments])
    large = len(units) > OVERVIEW_UNIT_LIMIT
    if large:
        # Territories dissolved from the outlines already simplified for display, not the full ones.
        units = units.set_geometry(maps.display_outlines(units)).to_crs(units.crs)
    frames = []
    for alignment in alignments:
        shown = units[["unit_id", "name", "geometry"]].assign(territory_id=units[alignment.name])
        if large:
            shown = territory_shapes(shown)
        frames.append(
            maps.territory_map(
                shown,
                "territory_id",
                tooltip_columns=(
                    {"territory_id": "Territory"}
                    if large
                    else {"name": config.unit_label.capitalize(), "territory_id": "Territory"}
                ),
                legend_title="Territories",
                title=f"{alignment.name}: {counted(shown['territory_id'].nunique(), 'territory')}",
                colors=colours,
                height=380,
            )
        )
    head = maps.leaflet_tags()
    bodies = maps.without_repeated_outlines(maps.map_fragment(frame) for frame in frames)
    panels = [{"title": a.name, "map": body} for a, body in zip(alignments, bodies, strict=True)]
    table_rows = [{"label": label, "values": list(row)} for label, row in comparison.iterrows()]
    page = (
        _jinja()
        .get_template("overview.html.j2")
        .render(
            title=config.title,
            description=config.description,
            run_date=human_time(run_date) if run_date else "",
            tiles=tiles,
            alerts=alerts,
            recommendation=recommendation(comparison, measures) if measures else "",
            panels=panels,
            columns=list(comparison.columns),
            rows=table_rows,
            steps=_step_links(folder),
            data_note=_first_sentence(provenance(config)),
            unit_label=config.unit_label,
            map_head=head,
        )
    )
    target = folder / OVERVIEW_FILE
    write_text_atomically(target, page)
    return OverviewPage(target, alerts)


def _jinja() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?])(\s|$)", text.strip())
    sentence = match.group(1) if match else text.strip()
    return sentence if len(sentence) <= DATA_NOTE_LENGTH else sentence[: DATA_NOTE_LENGTH - 1].rstrip() + "…"


def try_build_overview(
    config: MarketConfig, folder: Path, run_date: str | None = None
) -> tuple[OverviewPage | None, str | None]:
    """Build the overview, or say in one line why it could not be (the runner then publishes the
    step reports without it rather than losing them)."""
    try:
        return build_overview(config, folder, run_date), None
    except Exception as exc:  # a summary page must never cost the run its step reports
        return None, f"{type(exc).__name__}: {exc}".splitlines()[0]
