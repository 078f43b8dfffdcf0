"""Step 3's route model: a year of account visits chained into day tours from the rep's home.

Each account is visited ``visits_per_year`` times (params ``resources``). The year is split into
rounds, as many as the most frequent account's visits, and an account's visits are spread evenly
over them. In each round the rep works the accounts due in day tours from home, built by Clarke
and Wright's savings method within the day's stops, hours and driving; each tour then takes its
shortest order (exact up to 7 stops, else 2-opt). Accounts beyond a day trip from home are
grouped into trip areas worked from a base (a hotel), and areas all within a day's drive of each
other into regions worked on one trip a week: reached by car when the region is within a day's drive of
home, else by air. Road distance is the great-circle distance times a detour factor.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import fcluster, linkage

from territory_lib import tours
from territory_lib.config import ResourceSettings
from territory_lib.geo import haversine_km

#: Longest stay away from home: trips to an area needing more days are split into weekly trips.
TRIP_MAX_DAYS = 5
#: Working days a return flight takes (half a day each way, with airport and rental car).
FLIGHT_DAYS_PER_TRIP = 1.0


@dataclass(frozen=True)
class Travel:
    """A rep's year on the road, as the route model plans it.

    When the visits need more days than the working year holds, the rep makes the share of each
    round's visits that fits: ``drive_km``, ``drive_hours`` and ``visits_made`` are for the
    working year, ``visits_missed`` counts the rest and ``days_needed`` is the whole visit plan's.
    """

    visits: float  #: visits a year in the visit plan
    visits_made: float  #: visits the working year has time for
    visits_missed: float  #: visits beyond the working year
    drive_km: float  #: road kilometres in the working year, day tours and trips
    drive_hours: float  #: hours at the wheel in the working year
    visit_hours: float  #: hours at accounts in the working year
    days_needed: float  #: working days the whole visit plan takes, travel to trip areas included
    day_tours: int  #: days of visits in the plan (from home or from a trip base)
    trip_visits: float  #: visits in the plan made away from home overnight (by car or air)
    overnight_trips: int  #: trips by car with nights away, in the plan
    flights: int  #: return flights to trip areas beyond a day's drive, in the plan
    longest_day_km: float  #: the longest day's driving (a day tour or a drive to a trip area)

    @property
    def status(self) -> str:
        """``day trips``, ``needs overnights`` or ``needs flights``."""
        if self.flights:
            return "needs flights"
        return "needs overnights" if self.trip_visits else "day trips"


def road_km(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray, detour: float
) -> np.ndarray:
    """Road distance estimated as great-circle kilometres times the detour factor."""
    return haversine_km(lat1, lon1, lat2, lon2) * detour


def day_reach_km(settings: ResourceSettings) -> float:
    """The farthest an account can be (road km, one way) and still be visited on a day trip."""
    visit_hours = settings.visit_minutes / 60
    by_time = max(settings.hours_per_day - visit_hours, 0.0) * settings.road_speed_kmh / 2
    return min(settings.max_daily_drive_km / 2, by_time)


def visit_rounds(visits: np.ndarray) -> np.ndarray:
    """Which round each account is visited in: a boolean (rounds × accounts) matrix.

    There are as many rounds as the most frequent account's visits (at least 1); an account's
    visits are spread evenly over them, with staggered phases so that rounds carry similar loads.
    An account whose visits are not whole gets, over the year, their number rounded up or down.
    """
    visits = np.asarray(visits, dtype=float)
    rounds = max(1, math.ceil(visits.max(initial=0.0)))
    # Golden-ratio phases spread the accounts' first visits over the rounds, deterministically.
    phase = (np.arange(len(visits)) * 0.6180339887498949) % 1.0
    edges = np.floor(np.arange(rounds + 1)[:, None] * visits[None, :] / rounds + phase[None, :])
    return np.diff(edges, axis=0) > 0


def shortest_tour(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """The shortest tour from the base (index 0) through every other point of ``matrix``.

    Exact for up to :data:`territory_lib.tours.EXACT_STOPS` stops (Held and Karp's dynamic programme); beyond,
    nearest neighbour improved by 2-opt until no exchange shortens it.
    """
    order, length = tours.shortest_order(np.ascontiguousarray(matrix, dtype=float))
    return order, float(length)


#: Most points chained by savings at once; more are first split into sectors around the base.
SWEEP_CHUNK = 120


def _chain_days(
    base_lat: np.ndarray,
    base_lon: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    group_starts: np.ndarray,
    settings: ResourceSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`territory_lib.tours.chain_days` under the route model's settings."""
    return tours.chain_days(
        np.ascontiguousarray(base_lat, dtype=float),
        np.ascontiguousarray(base_lon, dtype=float),
        np.ascontiguousarray(lat, dtype=float),
        np.ascontiguousarray(lon, dtype=float),
        np.ascontiguousarray(group_starts, dtype=np.int64),
        SWEEP_CHUNK,
        settings.visits_per_day,
        settings.max_daily_drive_km,
        settings.road_speed_kmh,
        settings.visit_minutes / 60,
        settings.hours_per_day,
        settings.detour_factor,
    )


def day_tours(
    base: tuple[float, float], lat: np.ndarray, lon: np.ndarray, settings: ResourceSettings
) -> list[tuple[np.ndarray, float]]:
    """Chain visits to the points (``lat``, ``lon``) into day tours from ``base``.

    Clarke and Wright's savings method: every point starts as its own day; the two days whose
    merger saves the most driving are merged while the day keeps within ``visits_per_day``,
    ``max_daily_drive_km`` and ``hours_per_day`` (driving at ``road_speed_kmh`` plus
    ``visit_minutes`` per visit). Each day is then put in its shortest order
    (:func:`shortest_tour`). Every point must be within a day trip of the base
    (:func:`day_reach_km`). More than :data:`SWEEP_CHUNK` points are first split into sectors
    around the base (Gillett and Miller's sweep), each chained on its own: days are petals around
    the base anyway, so this costs little driving and keeps the work linear in the points.

    Returns
    -------
    list of (indices, road km)
        One entry per day: the points visited, in tour order, and the day's driving.
    """
    count = len(lat)
    if count == 0:
        return []
    stops, starts, km, _ = _chain_days(
        np.array([base[0]]), np.array([base[1]]), lat, lon, np.array([0, count]), settings
    )
    return [(stops[starts[day] : starts[day + 1]], float(km[day])) for day in range(len(km))]


def trip_areas(
    lat: np.ndarray, lon: np.ndarray, visits: np.ndarray, settings: ResourceSettings
) -> pd.DataFrame:
    """Group accounts beyond a day trip from home into areas worked from one base each.

    Complete-linkage clusters whose widest pair is within a day trip, so every account of an
    area can be visited on a day tour from its base, the account that minimises the visit-weighted
    distance to the others.

    Areas whose bases are all within ``max_daily_drive_km`` of each other form a region, worked on
    one trip (complete-linkage clusters of the bases).

    Returns
    -------
    DataFrame
        Per account (in the input's order): ``area`` (0, 1, ...), ``base_lat``, ``base_lon``,
        ``region`` (0, 1, ...).
    """
    count = len(lat)
    if count == 1:
        return pd.DataFrame({"area": [0], "base_lat": lat, "base_lon": lon, "region": [0]})
    if count > MAX_AREA_POINTS:
        return _trip_areas_by_cell(lat, lon, visits, settings)
    return _trip_areas_pairwise(lat, lon, visits, settings)


def _trip_areas_pairwise(
    lat: np.ndarray, lon: np.ndarray, visits: np.ndarray, settings: ResourceSettings
) -> pd.DataFrame:
    """:func:`trip_areas` by complete linkage on the accounts' pairwise road distances."""
    count = len(lat)
    if count == 1:
        return pd.DataFrame({"area": [0], "base_lat": lat, "base_lon": lon, "region": [0]})
    distances = tours.road_distances(lat, lon, settings.detour_factor)
    tree = linkage(distances, method="complete")
    area = fcluster(tree, t=day_reach_km(settings), criterion="distance") - 1
    base = tours.medoids(distances, area, np.asarray(visits, dtype=float))
    base_lat, base_lon = lat[base], lon[base]
    table = pd.DataFrame({"area": area, "base_lat": base_lat[area], "base_lon": base_lon[area]})
    if len(base) == 1:
        return table.assign(region=0)
    chain = linkage(tours.road_distances(base_lat, base_lon, settings.detour_factor), method="complete")
    region = fcluster(chain, t=settings.max_daily_drive_km, criterion="distance") - 1
    return table.assign(region=region[area])


#: Most accounts clustered pairwise into trip areas (the distance matrix is count² floats);
#: more are first pooled into grid cells, clustered by their visit-weighted centres.
MAX_AREA_POINTS = 2_500
#: Grid cells tried for pooling, in degrees, finest first.
AREA_CELL_DEGREES = (0.05, 0.1, 0.25, 0.5, 1.0)


def _trip_areas_by_cell(
    lat: np.ndarray, lon: np.ndarray, visits: np.ndarray, settings: ResourceSettings
) -> pd.DataFrame:
    """:func:`trip_areas` of many accounts: pooled into the finest grid cells few enough to cluster.

    A national book beyond a day trip from home (tens of thousands of accounts) would need a
    distance matrix of many gigabytes; accounts of one cell share their cell's area and base.
    """
    for size in AREA_CELL_DEGREES:
        cells = pd.DataFrame({"y": np.floor(lat / size), "x": np.floor(lon / size)})
        cell = cells.groupby(["y", "x"], sort=True).ngroup().to_numpy()
        if cell.max() + 1 <= MAX_AREA_POINTS:
            break
    weight = np.maximum(visits, 1e-9)
    pooled = pd.DataFrame({"cell": cell, "w": weight, "wlat": lat * weight, "wlon": lon * weight})
    sums = pooled.groupby("cell", sort=True)[["w", "wlat", "wlon"]].sum()
    centres = _trip_areas_pairwise(
        (sums["wlat"] / sums["w"]).to_numpy(),
        (sums["wlon"] / sums["w"]).to_numpy(),
        sums["w"].to_numpy(),
        settings,
    )
    return centres.iloc[cell].reset_index(drop=True)


def annual_travel(
    home: tuple[float, float],
    lat: np.ndarray,
    lon: np.ndarray,
    visits: np.ndarray,
    settings: ResourceSettings,
) -> Travel:
    """Plan a rep's year of visits from ``home`` and total its driving, hours and days.

    Parameters
    ----------
    home
        The rep's home (lat, lon).
    lat, lon
        The accounts' coordinates.
    visits
        Visits a year per account.
    settings
        Working days and hours, visits a day, visit length, road speed, detour factor and the
        longest day's drive (params ``resources``).
    """
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    visits = np.asarray(visits, dtype=float)
    due = visit_rounds(visits)
    away = road_km(np.full(len(lat), home[0]), np.full(len(lat), home[1]), lat, lon, settings.detour_factor)
    remote = away > day_reach_km(settings)
    # Each account's trip area and region (-1: worked from home) and the base it is worked from.
    area = np.full(len(lat), -1)
    region = np.full(len(lat), -1)
    base_lat = np.full(len(lat), home[0])
    base_lon = np.full(len(lat), home[1])
    if remote.any():
        areas = trip_areas(lat[remote], lon[remote], visits[remote], settings)
        area[remote], region[remote] = areas["area"].to_numpy(), areas["region"].to_numpy()
        base_lat[remote], base_lon[remote] = areas["base_lat"].to_numpy(), areas["base_lon"].to_numpy()
    # Every visit of the year, grouped by round and area (home first), accounts in their order:
    # one call chains all the year's days, each group from its own base.
    visit_round, account = np.nonzero(due)
    by_group = np.lexsort((account, area[account], visit_round))
    visit_round, account = visit_round[by_group], account[by_group]
    new_group = np.ones(len(account), dtype=bool)
    new_group[1:] = (visit_round[1:] != visit_round[:-1]) | (area[account[1:]] != area[account[:-1]])
    group_starts = np.append(np.flatnonzero(new_group), len(account))
    first = account[group_starts[:-1]]
    _, _, day_km, day_group = _chain_days(
        base_lat[first], base_lon[first], lat[account], lon[account], group_starts, settings
    )
    km = float(day_km.sum())
    longest = float(day_km.max(initial=0.0))
    day_count = len(day_km)
    # A region's areas due in a round are worked on trips from home: one a working week, out to
    # the region, base to base (in the order the areas' first accounts come), and home again.
    away_groups = np.flatnonzero(area[first] >= 0)
    group_round = visit_round[group_starts[:-1]]
    by_trip = away_groups[
        np.lexsort((first[away_groups], region[first[away_groups]], group_round[away_groups]))
    ]
    trip_key = np.stack([group_round[by_trip], region[first[by_trip]]])
    new_trip = np.ones(len(by_trip), dtype=bool)
    new_trip[1:] = (trip_key[:, 1:] != trip_key[:, :-1]).any(axis=0)
    trip_starts = np.append(np.flatnonzero(new_trip), len(by_trip))
    entry, leave, between, longest_between = tours.trip_legs(
        home[0],
        home[1],
        base_lat[first[by_trip]],
        base_lon[first[by_trip]],
        trip_starts.astype(np.int64),
        settings.detour_factor,
    )
    days_by_group = np.bincount(day_group, minlength=len(first))
    days_here = np.add.reduceat(days_by_group[by_trip], trip_starts[:-1]) if len(by_trip) else np.zeros(0)
    trips = np.ceil(days_here / TRIP_MAX_DAYS)
    driving_day_km = min(settings.road_speed_kmh * settings.hours_per_day, settings.max_daily_drive_km)
    by_car = np.maximum(entry, leave) <= settings.max_daily_drive_km
    road = np.where(by_car, trips * (entry + leave) + between, between)
    longest = max(
        longest,
        float(np.minimum(longest_between, driving_day_km).max(initial=0.0)),
        float(np.maximum(entry, leave)[by_car].max(initial=0.0)),
    )
    overnight = int(trips[by_car].sum())
    flights = int(trips[~by_car].sum())
    km += float(road.sum())
    travel_days = FLIGHT_DAYS_PER_TRIP * flights + float(road.sum()) / driving_day_km
    visit_count = float(due.sum())
    days = day_count + travel_days
    # Past the working year the rep drops the same share of every round: a plan that needs twice
    # the year's days makes half its visits and drives half its kilometres.
    share = min(1.0, settings.working_days / days) if days else 1.0
    return Travel(
        visits=visit_count,
        visits_made=visit_count * share,
        visits_missed=visit_count * (1 - share),
        drive_km=km * share,
        drive_hours=km * share / settings.road_speed_kmh,
        visit_hours=visit_count * share * settings.visit_minutes / 60,
        days_needed=days,
        day_tours=day_count,
        trip_visits=float(due[:, remote].sum()),
        overnight_trips=overnight,
        flights=flights,
        longest_day_km=longest,
    )


def travel_by_rep(accounts: pd.DataFrame, reps: pd.DataFrame, settings: ResourceSettings) -> pd.DataFrame:
    """The route model for every rep with accounts.

    Parameters
    ----------
    accounts
        ``rep_id, lat, lon, visits`` (visits a year); rows without a rep are left out.
    reps
        The validated reps table (``rep_id, home_lat, home_lon``).
    settings
        The route model's params (``resources``).

    Returns
    -------
    DataFrame
        One row per rep with accounts: ``rep_id``, the :class:`Travel` fields, ``travel_status``,
        ``time_utilisation`` (days needed / working days) and ``fits_working_year``.
    """
    homes = reps.set_index("rep_id")
    rows = []
    for rep_id, book in accounts[accounts["rep_id"].fillna("") != ""].groupby("rep_id", sort=True):
        travel = annual_travel(
            (float(homes.at[rep_id, "home_lat"]), float(homes.at[rep_id, "home_lon"])),
            book["lat"].to_numpy(),
            book["lon"].to_numpy(),
            book["visits"].to_numpy(),
            settings,
        )
        rows.append({"rep_id": rep_id, **asdict(travel), "travel_status": travel.status})
    columns = ["rep_id", *Travel.__dataclass_fields__, "travel_status"]
    table = pd.DataFrame(rows, columns=columns)
    table["time_utilisation"] = table["days_needed"] / settings.working_days
    table["fits_working_year"] = table["days_needed"] <= settings.working_days
    return table
