"""Step 3, align reps and resources: who covers which territory, workload against capacity, travel."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.optimize import linear_sum_assignment

from territory_lib.config import ResourceSettings, counted
from territory_lib.geo import haversine_km
from territory_lib.io import split_segments
from territory_lib.presentation import chart_text

#: Road distance is longer than the great circle; 1.3 is the usual detour index for road networks.
ROAD_DETOUR_FACTOR = 1.3


def territory_centres(accounts: pd.DataFrame) -> pd.DataFrame:
    """The potential-weighted centre (lat, lon) of each territory's accounts.

    ``accounts`` needs ``territory_id``, ``lat``, ``lon`` and ``potential``; a territory whose
    accounts have no potential is centred on their plain mean.
    """
    weight = accounts["potential"].where(accounts["potential"] > 0, 0.0) + 1e-9
    frame = accounts.assign(w=weight, wlat=accounts["lat"] * weight, wlon=accounts["lon"] * weight)
    sums = frame.groupby("territory_id")[["w", "wlat", "wlon"]].sum()
    return pd.DataFrame({"lat": sums["wlat"] / sums["w"], "lon": sums["wlon"] / sums["w"]}).reset_index()


def assign_reps(centres: pd.DataFrame, reps: pd.DataFrame) -> pd.DataFrame:
    """Give each territory one rep, minimising the total distance from rep homes to territory centres.

    An optimal assignment (Hungarian method, scipy). With fewer reps than territories the
    territories left over are vacant (``rep_id`` empty); with more reps, some reps have no territory.

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
    rows, cols = linear_sum_assignment(distance)
    result = pd.DataFrame(
        {"territory_id": centres["territory_id"], "rep_id": "", "rep_name": "", "home_distance_km": np.nan}
    )
    result.loc[rows, "rep_id"] = reps["rep_id"].to_numpy()[cols]
    result.loc[rows, "rep_name"] = reps["name"].to_numpy()[cols]
    result.loc[rows, "home_distance_km"] = distance[rows, cols]
    return result


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
        utilisation (accounts / capacity), mean and longest distance from the rep's home, the
        yearly driving it implies, accounts in segments the rep does not sell, and a status.
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
    sells = homes["segments"].map(split_segments) if "segments" in homes else None
    off_segment = pd.Series(False, index=frame.index)
    if sells is not None:
        off_segment[has_rep] = [
            bool(sells[rep]) and segment not in sells[rep]
            for rep, segment in zip(frame.loc[has_rep, "rep_id"], frame.loc[has_rep, "segment"], strict=True)
        ]
    frame = frame.assign(
        customer=frame["status"] == "customer",
        visits=visits,
        distance_km=distance,
        drive_km=visits * 2 * distance * ROAD_DETOUR_FACTOR,
        off_segment=off_segment,
    )
    table = frame.groupby("territory_id").agg(
        accounts=("account_id", "size"),
        customers=("customer", "sum"),
        potential=("potential", "sum"),
        visits_per_year=("visits", "sum"),
        mean_distance_km=("distance_km", "mean"),
        max_distance_km=("distance_km", "max"),
        annual_drive_km=("drive_km", "sum"),
        off_segment_accounts=("off_segment", "sum"),
    )
    table = rep_assignment.set_index("territory_id")[["rep_id", "rep_name"]].join(table, how="left")
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


def rep_homes(reps: pd.DataFrame, rep_assignment: pd.DataFrame) -> gpd.GeoDataFrame:
    """Rep homes as points, with the territory each rep covers in the plan (for maps)."""
    homes = reps.drop(columns=["territory_id"], errors="ignore").merge(
        rep_assignment[["rep_id", "territory_id"]], on="rep_id", how="left"
    )
    return gpd.GeoDataFrame(
        homes, geometry=gpd.points_from_xy(homes["home_lon"], homes["home_lat"]), crs=4326
    )


def workload_before_after(
    accounts: pd.DataFrame, reps: pd.DataFrame, rep_assignment: pd.DataFrame, settings: ResourceSettings
) -> pd.DataFrame:
    """Per rep: workload and travel with the accounts they own today, and in the plan.

    ``accounts`` carries the plan's ``territory_id`` and, when the CRM says who owns each account
    today, its current ``rep_id``. Without current owners the "today" columns are empty.
    """
    plan = rep_workload(accounts, reps, rep_assignment, settings)
    plan = plan[plan["rep_id"] != ""].set_index("rep_id")
    table = reps[["rep_id", "name", "capacity"]].set_index("rep_id")
    table["territory_id"] = plan["territory_id"]
    columns = ["accounts", "utilisation", "mean_distance_km", "annual_drive_km"]
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
