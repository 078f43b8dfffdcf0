"""Step 3, align reps and resources: who covers which territory, workload against capacity, travel."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from scipy.optimize import linear_sum_assignment

from territory_lib.config import MarketConfig, ResourceSettings, counted, distance_unit
from territory_lib.geo import haversine_km
from territory_lib.io import split_segments
from territory_lib.market import data_end, trailing_sales
from territory_lib.presentation import chart_text, money, month
from territory_lib.presentation import distance as show_distance

#: Rep matching's default weight of capacity against distance (params ``resources.capacity_weight``).
CAPACITY_WEIGHT = ResourceSettings.model_fields["capacity_weight"].default
#: Stand-in for a capacity mismatch when the rep's capacity is 0: worse than any real mismatch.
NO_CAPACITY_MISMATCH = 10.0
#: The route model, imported where travel is estimated (it loads numba), and networkx, which
#: colours the territory maps (``maps.territory_colors``) every notebook using this module draws;
#: a kernel started ahead for a notebook importing this module imports them too (territory_lib.kernels).
IMPORTED_WHEN_USED = ("territory_lib.routes", "networkx")


def territory_centres(accounts: pd.DataFrame) -> pd.DataFrame:
    """The potential-weighted centre (lat, lon) of each territory's accounts, and their number.

    ``accounts`` needs ``territory_id``, ``lat``, ``lon`` and ``potential``; a territory whose
    accounts have no potential is centred on their plain mean.
    """
    weight = accounts["potential"].where(accounts["potential"] > 0, 0.0) + 1e-9
    frame = accounts.assign(w=weight, wlat=accounts["lat"] * weight, wlon=accounts["lon"] * weight, n=1)
    sums = frame.groupby("territory_id")[["w", "wlat", "wlon", "n"]].sum()
    return pd.DataFrame(
        {"lat": sums["wlat"] / sums["w"], "lon": sums["wlon"] / sums["w"], "accounts": sums["n"]}
    ).reset_index()


def assign_reps(
    centres: pd.DataFrame, reps: pd.DataFrame, capacity_weight: float = CAPACITY_WEIGHT
) -> pd.DataFrame:
    """Give each territory one rep, weighing the rep's distance from home and their capacity.

    An optimal assignment (Hungarian method, scipy) of the cost

        distance(home, centre) / mean distance + capacity_weight * |accounts / capacity - 1|

    so with ``capacity_weight`` 1 a territory of twice the rep's capacity weighs as much as the
    mean home-to-territory distance. Without an ``accounts`` column in ``centres`` (or with weight
    0) distance alone decides. With fewer reps than territories the territories left over are
    vacant (``rep_id`` empty); with more reps, some reps have no territory.

    Returns
    -------
    DataFrame
        ``territory_id, rep_id, rep_name, home_distance_km``, one row per territory.
    """
    distance = haversine_km(
        reps["home_lat"].to_numpy()[None, :],
        reps["home_lon"].to_numpy()[None, :],
        centres["lat"].to_numpy()[:, None],
        centres["lon"].to_numpy()[:, None],
    )
    cost = distance / max(float(distance.mean()), 1e-9)
    if capacity_weight > 0 and "accounts" in centres:
        cost = cost + capacity_weight * capacity_mismatch(centres["accounts"], reps["capacity"])
    rows, cols = linear_sum_assignment(cost)
    result = pd.DataFrame(
        {"territory_id": centres["territory_id"], "rep_id": "", "rep_name": "", "home_distance_km": np.nan}
    )
    result.loc[rows, "rep_id"] = reps["rep_id"].to_numpy()[cols]
    result.loc[rows, "rep_name"] = reps["name"].to_numpy()[cols]
    result.loc[rows, "home_distance_km"] = distance[rows, cols]
    return result


def capacity_mismatch(accounts: pd.Series, capacity: pd.Series) -> np.ndarray:
    """``|accounts / capacity - 1|`` for every territory (rows) and rep (columns)."""
    load = accounts.fillna(0).to_numpy(dtype=float)[:, None]
    room = capacity.to_numpy(dtype=float)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        mismatch = np.abs(load / room - 1)
    return np.where(room > 0, mismatch, NO_CAPACITY_MISMATCH)


def matching_tradeoff(
    centres: pd.DataFrame,
    reps: pd.DataFrame,
    settings: ResourceSettings,
    weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
) -> pd.DataFrame:
    """What rep matching gives as capacity weighs more against distance.

    ``centres`` is :func:`territory_centres` (with ``accounts``). Per weight: the mean distance
    from a rep's home to their territory's centre, the reps over capacity (above the params'
    ``over_capacity``) and the largest utilisation; ``chosen`` marks the params' weight.
    """
    rows = []
    capacity = reps.set_index("rep_id")["capacity"]
    load = centres.set_index("territory_id")["accounts"]
    for weight in sorted({*weights, settings.capacity_weight}):
        matched = assign_reps(centres, reps, weight)
        matched = matched[matched["rep_id"] != ""]
        room = matched["rep_id"].map(capacity).to_numpy(dtype=float)
        utilisation = matched["territory_id"].map(load).to_numpy(dtype=float) / np.where(
            room > 0, room, np.nan
        )
        rows.append(
            {
                "capacity_weight": weight,
                "mean_home_distance_km": float(matched["home_distance_km"].mean()),
                "reps_over_capacity": int(np.sum(~(utilisation <= settings.over_capacity))),
                "max_utilisation": float(np.nanmax(utilisation))
                if np.isfinite(utilisation).any()
                else np.nan,
                "chosen": weight == settings.capacity_weight,
            }
        )
    return pd.DataFrame(rows)


def tradeoff_findings(tradeoff: pd.DataFrame, unit: str = "km") -> list[str]:
    """Say where matching on distance and matching on capacity conflict, and what each choice costs."""
    nearest = tradeoff.loc[tradeoff["capacity_weight"] == 0].iloc[0]
    chosen = tradeoff.loc[tradeoff["chosen"]].iloc[0]
    fewest = tradeoff.loc[tradeoff["reps_over_capacity"] == tradeoff["reps_over_capacity"].min()].iloc[0]

    def outcome(row: pd.Series) -> str:
        return (
            f"reps {show_distance(row['mean_home_distance_km'], unit)} from their territory's centre on "
            f"average and {counted(int(row['reps_over_capacity']), 'rep')} over capacity (largest "
            f"utilisation {row['max_utilisation']:.0%})"
        )

    same = (
        nearest["reps_over_capacity"] == chosen["reps_over_capacity"]
        and abs(nearest["mean_home_distance_km"] - chosen["mean_home_distance_km"]) < 0.5
    )
    lines = [
        f"Matching on distance alone gives {outcome(nearest)}"
        + (
            f"; the plan's weight of capacity ({chosen['capacity_weight']:g}) changes nothing."
            if same
            else f"; weighing capacity too (weight {chosen['capacity_weight']:g}) gives {outcome(chosen)}."
        )
    ]
    if fewest["reps_over_capacity"] < chosen["reps_over_capacity"]:
        lines.append(
            f"Distance and capacity conflict: a weight of {fewest['capacity_weight']:g} (params "
            f"resources.capacity_weight) would give {outcome(fewest)}."
        )
    elif same:
        lines.append("No weight of capacity would put fewer reps over capacity: distance and capacity agree.")
    return lines


def account_assignment(accounts: pd.DataFrame, alignment: pd.DataFrame, reps: pd.DataFrame) -> pd.DataFrame:
    """Each account's territory (through its unit) and rep: ``account_id, territory_id, rep_id``."""
    territory = accounts["unit_id"].map(alignment.set_index("unit_id")["territory_id"])
    rep = territory.map(reps.set_index("territory_id")["rep_id"])
    return pd.DataFrame(
        {"account_id": accounts["account_id"], "territory_id": territory, "rep_id": rep.fillna("")}
    ).sort_values("account_id", ignore_index=True)


def visits_per_year(segments: pd.Series, settings: ResourceSettings) -> pd.Series:
    """Planned visits a year per account, from its segment (params ``resources.visits_per_year``)."""
    return segments.map(settings.visits_per_year).fillna(settings.default_visits_per_year).astype(float)


def rep_workload(
    accounts: pd.DataFrame, reps: pd.DataFrame, rep_assignment: pd.DataFrame, settings: ResourceSettings
) -> pd.DataFrame:
    """Workload, capacity and travel per territory and its rep.

    Parameters
    ----------
    accounts
        Accounts with ``territory_id`` (and ``lat``, ``lon``, ``segment``, ``status``, ``potential``).
    reps
        The validated reps table (``capacity`` counts the accounts a rep can cover).
    rep_assignment
        ``territory_id, rep_id`` as from :func:`assign_reps`.
    settings
        Visit frequencies and the utilisation band.

    Returns
    -------
    DataFrame
        Per territory: accounts, customers, potential, planned visits, the rep's capacity and
        utilisation (accounts / capacity), mean and longest distance from the rep's home, accounts
        in segments the rep does not sell, a status, and the route model's year
        (:func:`territory_lib.routes.travel_by_rep`): ``annual_drive_km``, ``drive_hours``,
        ``days_needed``, ``time_utilisation``, ``visits_missed``, ``travel_status``.
    """
    # The plan's rep replaces any current owner the accounts file names.
    frame = accounts.drop(columns=["rep_id"], errors="ignore").merge(
        rep_assignment[["territory_id", "rep_id"]], on="territory_id", how="left"
    )
    homes = reps.set_index("rep_id")
    has_rep = frame["rep_id"].fillna("") != ""
    distance = pd.Series(np.nan, index=frame.index)
    distance[has_rep] = haversine_km(
        frame.loc[has_rep, "lat"],
        frame.loc[has_rep, "lon"],
        frame.loc[has_rep, "rep_id"].map(homes["home_lat"]),
        frame.loc[has_rep, "rep_id"].map(homes["home_lon"]),
    )
    visits = visits_per_year(frame["segment"], settings)
    off_segment = pd.Series(False, index=frame.index)
    sells = homes["segments"].map(split_segments) if "segments" in homes else pd.Series()
    listed = [(rep, segment) for rep, segments in sells.items() for segment in segments]
    if listed:
        # A rep with no segments listed sells to every segment.
        restricted = frame["rep_id"].isin(sells.index[sells.map(bool)])
        pairs = pd.MultiIndex.from_arrays([frame["rep_id"], frame["segment"]])
        off_segment = has_rep & restricted & ~pairs.isin(pd.MultiIndex.from_tuples(listed))
    frame = frame.assign(
        customer=frame["status"] == "customer",
        visits=visits,
        distance_km=distance,
        off_segment=off_segment,
    )
    table = frame.groupby("territory_id").agg(
        accounts=("account_id", "size"),
        customers=("customer", "sum"),
        potential=("potential", "sum"),
        visits_per_year=("visits", "sum"),
        mean_distance_km=("distance_km", "mean"),
        max_distance_km=("distance_km", "max"),
        off_segment_accounts=("off_segment", "sum"),
    )
    # Imported here: the route model loads numba (0.2 s), which the steps that only match reps skip.
    from territory_lib.routes import travel_by_rep

    travel = travel_by_rep(frame.assign(rep_id=frame["rep_id"].fillna("")), reps, settings).set_index(
        "rep_id"
    )
    table = rep_assignment.set_index("territory_id")[["rep_id", "rep_name"]].join(table, how="left")
    for column, source in TRAVEL_COLUMNS.items():
        table[column] = table["rep_id"].map(travel[source])
    table[["accounts", "customers", "off_segment_accounts"]] = (
        table[["accounts", "customers", "off_segment_accounts"]].fillna(0).astype(int)
    )
    table["capacity"] = table["rep_id"].map(homes["capacity"])
    table["utilisation"] = table["accounts"] / table["capacity"].where(table["capacity"] > 0)
    table["status"] = [
        _status(rep, capacity, utilisation, settings)
        for rep, capacity, utilisation in zip(
            table["rep_id"], table["capacity"], table["utilisation"], strict=True
        )
    ]
    return table.reset_index()


#: The route model's figures kept in the workload table, by their name there.
TRAVEL_COLUMNS = {
    "annual_drive_km": "drive_km",
    "drive_hours": "drive_hours",
    "days_needed": "days_needed",
    "time_utilisation": "time_utilisation",
    "visits_missed": "visits_missed",
    "flights": "flights",
    "travel_status": "travel_status",
}


def _status(rep_id: str, capacity: float, utilisation: float, settings: ResourceSettings) -> str:
    if not rep_id:
        return "vacant"
    # Utilisation is undefined without capacity: never call such a rep balanced.
    if not capacity > 0:
        return "no capacity"
    if utilisation > settings.over_capacity:
        return "over capacity"
    if utilisation < settings.under_capacity:
        return "under-used"
    return "balanced"


def unassigned_reps(reps: pd.DataFrame, rep_assignment: pd.DataFrame) -> pd.DataFrame:
    """Reps who cover no territory in the plan."""
    return reps[~reps["rep_id"].isin(rep_assignment["rep_id"])][["rep_id", "name", "capacity"]]


def resource_recommendations(workload: pd.DataFrame, spare_reps: pd.DataFrame) -> list[str]:
    """Plain-language actions for the reader, derived from the workload table."""
    advice = []
    for row in workload.itertuples():
        if row.status == "vacant":
            advice.append(
                f"Territory {row.territory_id} has no rep: hire, or assign it to a neighbour's rep."
            )
        elif row.status == "no capacity":
            advice.append(
                f"{row.rep_name} ({row.rep_id}, {row.territory_id}) has no capacity (0 in the reps file) "
                f"but {counted(row.accounts, 'account')}: set the rep's capacity, or give the territory to "
                "another rep."
            )
        elif row.status == "over capacity":
            advice.append(
                f"{row.rep_name} ({row.territory_id}) covers {row.accounts:,} accounts against a capacity of "
                f"{row.capacity:,.0f} ({row.utilisation:.0%}): move accounts to a neighbour or add support."
            )
        elif row.status == "under-used":
            advice.append(
                f"{row.rep_name} ({row.territory_id}) uses {row.utilisation:.0%} of capacity: room to take "
                "accounts from a busier neighbour or to prospect more."
            )
        if row.off_segment_accounts:
            advice.append(
                f"{counted(row.off_segment_accounts, 'account')} in {row.territory_id} are in segments "
                f"{row.rep_name} does not sell to: route them to a specialist or widen the rep's segments."
            )
    advice.extend(
        f"{rep.name} ({rep.rep_id}) has no territory in this plan." for rep in spare_reps.itertuples()
    )
    return advice or ["Every territory has a rep working within capacity."]


def utilisation_chart(workload: pd.DataFrame, settings: ResourceSettings) -> Figure:
    """Bars of each territory's utilisation (accounts / rep capacity) against the healthy band."""
    order = workload.sort_values("territory_id")
    figure = Figure(figsize=(8, 3.2))
    axis = figure.subplots()
    colours = {
        "over capacity": "#bf616a",
        "under-used": "#ebcb8b",
        "balanced": "#a3be8c",
        "vacant": "#b0b0b0",
        "no capacity": "#5e81ac",
    }
    positions = np.arange(len(order))
    axis.bar(
        positions,
        order["utilisation"].fillna(0),
        color=[colours[status] for status in order["status"]],
    )
    axis.set_xticks(positions, [chart_text(territory) for territory in order["territory_id"]])
    # Bars without a utilisation (vacant, no capacity) have no height: say why on the axis.
    for position, status in zip(positions, order["status"], strict=True):
        if status in {"vacant", "no capacity"}:
            axis.text(
                float(position),
                0.02,
                status,
                rotation=90,
                ha="center",
                va="bottom",
                fontsize=8,
                transform=axis.get_xaxis_transform(),
            )
    axis.axhspan(
        settings.under_capacity, settings.over_capacity, color="#a3be8c", alpha=0.15, label="healthy band"
    )
    axis.axhline(1.0, color="#4c566a", lw=0.8, ls="--")
    axis.set_ylabel("accounts / capacity")
    axis.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    axis.set_title("Rep utilisation by territory", fontsize=11)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


#: Bar hatching per status, so status reads without colour (issue 9): over capacity is crossed.
STATUS_HATCH = {"over capacity": "xx", "under-used": "..", "balanced": "", "no capacity": "//", "vacant": ""}


def utilisation_alt_text(comparison: pd.DataFrame, settings: ResourceSettings) -> str:
    """What :func:`utilisation_today_vs_plan_chart` shows, in words (the image's alt text)."""
    parts = []
    for when, name in (("today", "today"), ("plan", "in the plan")):
        statuses = comparison[f"status_{when}"].fillna("")
        if statuses.eq("").all():
            continue
        over = comparison.loc[statuses == "over capacity", "name"].astype(str).tolist()
        under = comparison.loc[statuses == "under-used", "name"].astype(str).tolist()
        parts.append(
            f"{name}: {len(over)} over capacity ({', '.join(over) or 'none'}), "
            f"{len(under)} under-used ({', '.join(under) or 'none'})"
        )
    return (
        f"Bar chart of each of {len(comparison)} reps' accounts against capacity, today and in the plan, "
        f"with the healthy band {settings.under_capacity:.0%} to {settings.over_capacity:.0%}. "
        + "; ".join(parts)
        + "."
    )


def utilisation_today_vs_plan_chart(comparison: pd.DataFrame, settings: ResourceSettings) -> Figure:
    """Paired bars per rep: utilisation today and in the plan, against the healthy capacity band.

    ``comparison`` is :func:`workload_before_after`. Status shows three ways: colour, hatching
    (crossed: over capacity, dotted: under-used) and a word above each bar.
    """
    order = comparison.sort_values("rep_id")
    figure = Figure(figsize=(9, 3.6))
    axis = figure.subplots()
    positions = np.arange(len(order))
    width = 0.38
    shades = {"today": "#d8dee9", "plan": "#5e81ac"}
    words = {"over capacity": "over", "under-used": "under", "balanced": "ok", "no capacity": "no cap."}
    for offset, when in ((-width / 2, "today"), (width / 2, "plan")):
        heights = order[f"utilisation_{when}"].astype(float).fillna(0).to_numpy()
        statuses = order[f"status_{when}"].fillna("").to_numpy()
        bars = axis.bar(
            positions + offset,
            heights,
            width,
            color=shades[when],
            edgecolor="#2e3440",
            linewidth=0.6,
        )
        for bar, height, status in zip(bars, heights, statuses, strict=True):
            bar.set_hatch(STATUS_HATCH.get(status, ""))
            if status:
                axis.text(
                    bar.get_x() + bar.get_width() / 2,
                    height + 0.02,
                    words.get(status, status),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90,
                )
    axis.axhspan(settings.under_capacity, settings.over_capacity, color="#a3be8c", alpha=0.3, zorder=0)
    axis.axhline(1.0, color="#4c566a", lw=0.8, ls="--")
    # A key of its own: the bars' handles would carry the first rep's hatching.
    key = [
        Patch(facecolor=shades["today"], edgecolor="#2e3440", label="today"),
        Patch(facecolor=shades["plan"], edgecolor="#2e3440", label="in the plan"),
        Patch(
            facecolor="white", edgecolor="#2e3440", hatch=STATUS_HATCH["over capacity"], label="over capacity"
        ),
        Patch(facecolor="white", edgecolor="#2e3440", hatch=STATUS_HATCH["under-used"], label="under-used"),
        Patch(facecolor="#a3be8c", alpha=0.3, label="healthy band"),
    ]
    axis.set_xticks(
        positions,
        [chart_text(f"{rep}\n{name}") for rep, name in zip(order["rep_id"], order["name"], strict=True)],
    )
    axis.tick_params(axis="x", labelsize=7)
    axis.set_ylabel("accounts / capacity")
    axis.set_ylim(
        0,
        max(
            1.3,
            float(
                np.nanmax(order[["utilisation_today", "utilisation_plan"]].to_numpy(dtype=float), initial=0)
            )
            * 1.25,
        ),
    )
    axis.yaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    axis.set_title("Rep utilisation today and in the plan", fontsize=11)
    axis.legend(handles=key, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


def rep_homes(reps: pd.DataFrame, rep_assignment: pd.DataFrame) -> gpd.GeoDataFrame:
    """Rep homes as points, with the territory each rep covers in the plan (for maps)."""
    homes = reps.drop(columns=["territory_id"], errors="ignore").merge(
        rep_assignment[["rep_id", "territory_id"]], on="rep_id", how="left"
    )
    return gpd.GeoDataFrame(
        homes, geometry=gpd.points_from_xy(homes["home_lon"], homes["home_lat"]), crs=4326
    )


#: The workload figures :func:`workload_before_after` sets side by side, today and in the plan.
COMPARED_COLUMNS = [
    "accounts",
    "utilisation",
    "status",
    "off_segment_accounts",
    "mean_distance_km",
    "annual_drive_km",
    "days_needed",
    "time_utilisation",
    "visits_missed",
    "travel_status",
]


def workload_before_after(
    accounts: pd.DataFrame,
    reps: pd.DataFrame,
    rep_assignment: pd.DataFrame,
    settings: ResourceSettings,
    plan: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per rep: workload and travel with the accounts they own today, and in the plan.

    ``accounts`` carries the plan's ``territory_id`` and, when the CRM says who owns each account
    today, its current ``rep_id``. Without current owners the "today" columns are empty. ``plan``
    is the plan's :func:`rep_workload` when already computed (the route model takes seconds).
    """
    if plan is None:
        plan = rep_workload(accounts, reps, rep_assignment, settings)
    plan = plan[plan["rep_id"] != ""].set_index("rep_id")
    table = reps[["rep_id", "name", "capacity"]].set_index("rep_id")
    table["territory_id"] = plan["territory_id"]
    columns = COMPARED_COLUMNS
    if "rep_id" in accounts and (accounts["rep_id"] != "").any():
        owners = pd.DataFrame(
            {"territory_id": reps["rep_id"], "rep_id": reps["rep_id"], "rep_name": reps["name"]}
        )
        owned = accounts[accounts["rep_id"] != ""].assign(territory_id=lambda frame: frame["rep_id"])
        today = rep_workload(owned, reps, owners, settings).set_index("rep_id")
        for column in columns:
            table[f"{column}_today"] = today[column]
    else:
        for column in columns:
            table[f"{column}_today"] = np.nan
    for column in columns:
        table[f"{column}_plan"] = plan[column]
    return table.reset_index()


def totals_today_vs_plan(comparison: pd.DataFrame) -> pd.DataFrame:
    """The whole team's figures today and in the plan, from :func:`workload_before_after`.

    Rows: yearly driving (km), reps over capacity, accounts in segments their rep does not sell,
    visits beyond the working year, and reps whose territory needs nights away or flights.
    Columns ``measure, today, plan, change``; ``today`` is empty without current owners.
    """
    has_today = comparison["accounts_today"].notna().any()
    rows = []
    for measure, column, summarise in (
        ("Driving a year, all reps", "annual_drive_km", lambda values: values.sum()),
        ("Reps over capacity", "status", lambda values: int((values == "over capacity").sum())),
        ("Accounts outside their rep's segments", "off_segment_accounts", lambda values: values.sum()),
        ("Visits beyond the working year", "visits_missed", lambda values: values.sum()),
        (
            "Reps needing nights away or flights",
            "travel_status",
            lambda values: int(values.isin(["needs overnights", "needs flights"]).sum()),
        ),
    ):
        plan = float(summarise(comparison[f"{column}_plan"]))
        today = float(summarise(comparison[f"{column}_today"])) if has_today else np.nan
        rows.append({"measure": measure, "today": today, "plan": plan, "change": plan - today})
    return pd.DataFrame(rows)


def step3_metrics(comparison: pd.DataFrame) -> dict[str, object]:
    """The ``step3`` section of ``metrics.json`` from :func:`workload_before_after`."""
    totals = totals_today_vs_plan(comparison).set_index("measure")
    drive = comparison[["annual_drive_km_today", "annual_drive_km_plan"]]
    sections = {
        "reps_over_capacity": "Reps over capacity",
        "off_segment_accounts": "Accounts outside their rep's segments",
        "visits_beyond_working_year": "Visits beyond the working year",
        "reps_needing_overnights_or_flights": "Reps needing nights away or flights",
    }
    both = {
        key: {when: totals.at[measure, when] for when in ("today", "plan")}
        for key, measure in sections.items()
    }
    driving = totals.loc["Driving a year, all reps"]
    return {
        "annual_drive_km": {
            "max_rep": float(np.nanmax(drive.to_numpy(dtype=float))),
            "total_today": driving["today"],
            "total_plan": driving["plan"],
        },
        **both,
    }


def proposal_costs(
    accounts: pd.DataFrame,
    sales: pd.DataFrame,
    current: pd.Series,
    proposed: pd.Series,
    reps: pd.DataFrame,
    rep_assignment: pd.DataFrame,
    settings: ResourceSettings,
    plan_workload: pd.DataFrame | None = None,
    proposal_workload: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """What a realignment proposal costs against the plan it changes (step 5).

    Parameters
    ----------
    accounts
        The accounts (``account_id, unit_id, lat, lon, segment, status, potential``).
    sales
        The sales table (``date, account_id, amount``).
    current, proposed
        ``territory_id`` by ``unit_id``: the plan, and the plan after the proposed moves.
    reps, rep_assignment
        The reps, and the rep of each territory (kept by the proposal).
    settings
        The route model's and capacity params.
    plan_workload, proposal_workload
        The plan's :func:`rep_workload` (step 3's) and the proposal's, when already computed
        (the route model takes seconds per pass on a national market).

    Returns
    -------
    DataFrame
        ``measure, plan, proposal, change`` for: yearly driving of all reps (route model, km),
        reps over capacity, visits beyond the working year, accounts changing rep and their
        last-12-month sales (the proposal against the plan).
    """
    figures = {}
    owner = rep_assignment.set_index("territory_id")["rep_id"]
    for name, alignment in (("plan", current), ("proposal", proposed)):
        placed = accounts.drop(columns=["territory_id"], errors="ignore").assign(
            territory_id=accounts["unit_id"].map(alignment)
        )
        given = plan_workload if name == "plan" else proposal_workload
        workload = given if given is not None else rep_workload(placed, reps, rep_assignment, settings)
        figures[name] = {
            "drive": float(workload["annual_drive_km"].sum()),
            "over": int((workload["status"] == "over capacity").sum()),
            "missed": float(workload["visits_missed"].sum()),
            "rep": placed["territory_id"].map(owner).fillna(""),
        }
    moved = figures["plan"]["rep"] != figures["proposal"]["rep"]
    recent = accounts["account_id"].map(trailing_sales(sales, 12)).fillna(0.0)
    rows = [
        ("Driving a year, all reps", figures["plan"]["drive"], figures["proposal"]["drive"]),
        ("Reps over capacity", figures["plan"]["over"], figures["proposal"]["over"]),
        ("Visits beyond the working year", figures["plan"]["missed"], figures["proposal"]["missed"]),
        ("Accounts changing rep", 0.0, float(moved.sum())),
        ("Last-12-month sales changing rep", 0.0, float(recent[moved].sum())),
    ]
    table = pd.DataFrame(rows, columns=["measure", "plan", "proposal"])
    table["change"] = table["proposal"] - table["plan"]
    return table


def route_assumptions(settings: ResourceSettings, unit: str = "km") -> str:
    """One sentence stating the route model's assumptions, for the reports."""
    return (
        f"Visits are chained into day tours from the rep's home: at most {settings.visits_per_day} visits "
        f"of {settings.visit_minutes:g} minutes and {settings.hours_per_day:g} hours a day, "
        f"{settings.working_days} working days a year, road distance {settings.detour_factor:g} × the "
        f"straight line at {show_distance(settings.road_speed_kmh, unit)} an hour, at most "
        f"{show_distance(settings.max_daily_drive_km, unit)} of driving a day; accounts beyond a day trip "
        "are worked from a base reached by car (nights away) or, beyond a day's drive, by air."
    )


#: Total rows measured in kilometres (shown in the report's distance unit).
DISTANCE_MEASURES = {"Driving a year, all reps"}


def format_totals(totals: pd.DataFrame, unit: str = "km", currency: str = "USD") -> pd.DataFrame:
    """:func:`totals_today_vs_plan` or :func:`proposal_costs` as text: distances in ``unit``, sales
    in ``currency``, counts."""

    def show(measure: str, value: float, signed: bool = False) -> str:
        if pd.isna(value):
            return "–"
        sign = "+" if signed and value > 0 else ("-" if signed and value < 0 else "")
        if measure in DISTANCE_MEASURES:
            return sign + show_distance(abs(value), unit)
        if measure.startswith("Last-12-month sales"):
            return sign + money(abs(value), currency)
        return sign + f"{abs(value):,.0f}"

    shown = totals.copy()
    for column in shown.columns.drop("measure"):
        shown[column] = [
            show(measure, value, signed=column == "change")
            for measure, value in zip(totals["measure"], totals[column], strict=True)
        ]
    return shown


def travel_findings(workload: pd.DataFrame, settings: ResourceSettings, unit: str = "km") -> list[str]:
    """Territories the route model flags: nights away or flights, and more days than the year holds."""
    notes = []
    for row in workload[workload["rep_id"] != ""].itertuples():
        if row.travel_status in {"needs overnights", "needs flights"}:
            how = "flights" if row.travel_status == "needs flights" else "nights away"
            notes.append(
                f"{row.rep_name} ({row.territory_id}) cannot work the territory by day trips from home: "
                f"some accounts need {how}."
            )
        if row.days_needed > settings.working_days:
            notes.append(
                f"{row.rep_name} ({row.territory_id}) needs {row.days_needed:,.0f} days for the planned "
                f"visits against {settings.working_days} working days: {row.visits_missed:,.0f} visits a "
                "year do not fit; lower visit frequencies, add support or shrink the territory."
            )
    longest = workload["annual_drive_km"].max()
    if pd.notna(longest):
        notes.append(f"The most any rep drives in a year: {show_distance(longest, unit)}.")
    return notes


def route_settings_table(settings: ResourceSettings, unit: str = "km") -> pd.DataFrame:
    """The route model's settings as a two-column table for the method section."""
    rows = [
        ("working_days", f"{settings.working_days} days a year"),
        ("hours_per_day", f"{settings.hours_per_day:g} hours"),
        ("visits_per_day", f"{settings.visits_per_day}"),
        ("visit_minutes", f"{settings.visit_minutes:g} minutes"),
        ("road_speed_kmh", f"{show_distance(settings.road_speed_kmh, unit)} an hour"),
        ("detour_factor", f"{settings.detour_factor:g} × the straight line"),
        ("max_daily_drive_km", show_distance(settings.max_daily_drive_km, unit)),
        ("capacity_weight", f"{settings.capacity_weight:g}"),
    ]
    return pd.DataFrame(rows, columns=["setting", "value"])


def proposal_summary(
    costs: pd.DataFrame, config: MarketConfig, sales: pd.DataFrame, units_moved: int
) -> tuple[pd.DataFrame, str]:
    """The proposal's costs for the report: the table as text, and one sentence with its assumptions.

    ``costs`` is :func:`proposal_costs`; distances in the market's unit, sales in its currency.
    """
    unit = distance_unit(config)
    table = format_totals(costs, unit, config.currency)
    figures = costs.set_index("measure")
    drive = figures.loc["Driving a year, all reps"]
    as_of = month(data_end(sales)) if len(sales) else "the latest sales"
    moved_accounts = counted(int(figures.at["Accounts changing rep", "proposal"]), "account")
    moved_sales = money(figures.at["Last-12-month sales changing rep", "proposal"], config.currency)
    over = figures.loc["Reps over capacity"]
    sentence = (
        f"The proposal moves {counted(units_moved, config.unit_label)}: {moved_accounts} and {moved_sales} "
        f"of sales in the twelve months to {as_of} change rep (each territory keeps its rep); the reps' "
        f"driving goes from {show_distance(drive['plan'], unit)} to {show_distance(drive['proposal'], unit)} "
        f"a year and reps over capacity from {over['plan']:.0f} to {over['proposal']:.0f}. "
        f"Assumptions: {route_assumptions(config.resources, unit)}"
    )
    return table, sentence


def proposal_metrics(costs: pd.DataFrame, units_moved: int) -> dict[str, object]:
    """``step5.proposal`` of ``metrics.json``: moves, yearly driving and reps over capacity, and more."""
    figures = costs.set_index("measure")["proposal"]
    return {
        "moves": units_moved,
        "annual_drive_km_total": figures["Driving a year, all reps"],
        "reps_over_capacity": figures["Reps over capacity"],
        "visits_beyond_working_year": figures["Visits beyond the working year"],
        "accounts_changing_rep": figures["Accounts changing rep"],
        "sales_12m_changing_rep": figures["Last-12-month sales changing rep"],
    }
