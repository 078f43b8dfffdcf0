"""The route model: day tours against tours solved independently (OR-Tools, exhaustive search)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from territory_lib.config import ResourceSettings, load_config
from territory_lib.io import load_market, prepare_builtin_data
from territory_lib.resources import rep_workload
from territory_lib.routes import annual_travel, day_reach_km, day_tours, road_km, shortest_tour, visit_rounds

pywrapcp = pytest.importorskip("ortools.constraint_solver.pywrapcp")
routing_enums = pytest.importorskip("ortools.constraint_solver.routing_enums_pb2")

SETTINGS = ResourceSettings()


def solved_km(
    base: tuple[float, float], lat: np.ndarray, lon: np.ndarray, settings: ResourceSettings
) -> float:
    """Total road km of day tours solved by OR-Tools (guided local search) under the same limits."""
    points_lat = np.concatenate([[base[0]], lat])
    points_lon = np.concatenate([[base[1]], lon])
    metres = np.rint(
        1000
        * road_km(
            points_lat[:, None],
            points_lon[:, None],
            points_lat[None, :],
            points_lon[None, :],
            settings.detour_factor,
        )
    ).astype(int)
    count = len(points_lat)
    manager = pywrapcp.RoutingIndexManager(count, count - 1, 0)
    routing = pywrapcp.RoutingModel(manager)

    def distance(i: int, j: int) -> int:
        return int(metres[manager.IndexToNode(i), manager.IndexToNode(j)])

    visit_seconds = int(settings.visit_minutes * 60)
    metres_per_second = settings.road_speed_kmh / 3.6

    def seconds(i: int, j: int) -> int:
        start = manager.IndexToNode(i)
        service = visit_seconds if start else 0
        return service + int(np.ceil(metres[start, manager.IndexToNode(j)] / metres_per_second))

    arc = routing.RegisterTransitCallback(distance)
    routing.SetArcCostEvaluatorOfAllVehicles(arc)
    routing.AddDimension(arc, 0, int(settings.max_daily_drive_km * 1000), True, "km")
    clock = routing.RegisterTransitCallback(seconds)
    routing.AddDimension(clock, 0, int(settings.hours_per_day * 3600), True, "time")
    stops = routing.RegisterUnaryTransitCallback(lambda i: 0 if manager.IndexToNode(i) == 0 else 1)
    routing.AddDimensionWithVehicleCapacity(stops, 0, [settings.visits_per_day] * (count - 1), True, "stops")
    parameters = pywrapcp.DefaultRoutingSearchParameters()
    parameters.first_solution_strategy = routing_enums.FirstSolutionStrategy.SAVINGS
    parameters.local_search_metaheuristic = routing_enums.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    parameters.time_limit.FromSeconds(3)
    solution = routing.SolveWithParameters(parameters)
    assert solution is not None
    return solution.ObjectiveValue() / 1000


def instance(kind: str, count: int, seed: int) -> tuple[tuple[float, float], np.ndarray, np.ndarray]:
    """A rep's home and ``count`` accounts: spread evenly, home at the edge, or in towns."""
    rng = np.random.default_rng(seed)
    if kind == "even":
        return (33.0, -84.0), 33.0 + rng.uniform(-0.7, 0.7, count), -84.0 + rng.uniform(-0.8, 0.8, count)
    if kind == "edge":
        return (32.05, -81.1), 32.05 + rng.uniform(-0.2, 1.0, count), -81.1 - rng.uniform(0, 1.2, count)
    towns = rng.uniform([-0.9, -1.0], [0.9, 1.0], size=(6, 2))
    town = rng.integers(0, 6, count)
    spread = rng.normal(0, 0.06, size=(count, 2))
    return (33.0, -84.0), 33.0 + towns[town, 0] + spread[:, 0], -84.0 + towns[town, 1] + spread[:, 1]


@pytest.mark.parametrize(
    ("kind", "count", "seed"), [("even", 60, 1), ("edge", 60, 2), ("towns", 80, 3), ("even", 40, 4)]
)
def test_day_tours_within_ten_percent_of_solved_tours(kind: str, count: int, seed: int) -> None:
    base, lat, lon = instance(kind, count, seed)
    assert road_km(
        np.array(base[0]), np.array(base[1]), lat, lon, SETTINGS.detour_factor
    ).max() <= day_reach_km(SETTINGS)
    tours = day_tours(base, lat, lon, SETTINGS)
    visited = np.sort(np.concatenate([stops for stops, _ in tours]))
    assert np.array_equal(visited, np.arange(count))
    model = sum(length for _, length in tours)
    solved = solved_km(base, lat, lon, SETTINGS)
    assert abs(model / solved - 1) <= 0.10, (model, solved)


def test_day_orders_are_the_shortest() -> None:
    rng = np.random.default_rng(5)
    for stops in (3, 6, 9):
        points = rng.uniform(0, 100, size=(stops + 1, 2))
        matrix = np.hypot(*(points[:, None, :] - points[None, :, :]).transpose(2, 0, 1))
        best = min(
            matrix[0, order[0]]
            + sum(matrix[a, b] for a, b in itertools.pairwise(order))
            + matrix[order[-1], 0]
            for order in itertools.permutations(range(1, stops + 1))
        )
        order, length = shortest_tour(matrix)
        assert sorted(order.tolist()) == list(range(1, stops + 1))
        # Exact up to 7 stops; 2-opt beyond, within 10 % of the best order.
        assert length == pytest.approx(best) if stops <= 7 else length <= 1.10 * best


def test_visits_are_spread_over_the_rounds() -> None:
    due = visit_rounds(np.array([12.0, 6.0, 3.0, 4.0, 0.0, 2.5]))
    assert due.shape == (12, 6)
    assert due.sum(axis=0).tolist()[:5] == [12, 6, 3, 4, 0]
    assert due.sum(axis=0)[5] in (2, 3)
    # Quarterly accounts are seen once every four rounds, not four rounds running.
    assert np.diff(np.flatnonzero(due[:, 2])).tolist() == [4, 4]


def test_days_keep_within_their_limits() -> None:
    settings = ResourceSettings(visits_per_day=5, hours_per_day=8, max_daily_drive_km=300)
    base, lat, lon = instance("even", 70, 6)
    hours_per_visit = settings.visit_minutes / 60
    for stops, length in day_tours(base, lat, lon, settings):
        assert 1 <= len(stops) <= 5
        assert length <= 300 + 1e-6
        assert length / settings.road_speed_kmh + len(stops) * hours_per_visit <= 8 + 1e-6


def test_far_accounts_are_flagged_for_nights_away_or_flights() -> None:
    home = (33.75, -84.39)  # Atlanta
    near = annual_travel(
        home, np.array([33.95, 34.25]), np.array([-84.55, -84.09]), np.array([6.0, 6.0]), SETTINGS
    )
    assert near.status == "day trips" and near.flights == 0 and near.trip_visits == 0
    # Augusta is about 300 road km from Atlanta: beyond a day trip, within a day's drive.
    augusta = annual_travel(
        home, np.array([33.47, 33.50]), np.array([-81.97, -82.02]), np.array([4.0, 4.0]), SETTINGS
    )
    assert augusta.status == "needs overnights" and augusta.overnight_trips == 4
    # Denver needs a flight; its driving is the local tours only, not 2,800 road km each way.
    denver = annual_travel(
        home, np.array([39.74, 39.70]), np.array([-104.99, -105.05]), np.array([3.0, 3.0]), SETTINGS
    )
    assert denver.status == "needs flights" and denver.flights == 3
    assert denver.drive_km < 3 * 2 * 30


def test_a_plan_past_the_working_year_drives_only_the_year() -> None:
    rng = np.random.default_rng(7)
    lat = 33.0 + rng.uniform(-1.2, 1.2, 400)
    lon = -84.0 + rng.uniform(-1.2, 1.2, 400)
    travel = annual_travel((33.0, -84.0), lat, lon, np.full(400, 12.0), SETTINGS)
    assert travel.days_needed > SETTINGS.working_days
    assert travel.visits_missed > 0
    assert travel.visits_made + travel.visits_missed == pytest.approx(4800)
    assert travel.drive_km <= SETTINGS.working_days * SETTINGS.max_daily_drive_km


@pytest.mark.parametrize("market", ["georgia", "north_carolina", "us_states"])
def test_builtin_markets_drive_is_physically_possible(market: str) -> None:
    """Every rep of every built-in market drives at most the working days times a day's drive."""
    config = load_config(market)
    prepare_builtin_data(config)
    data = load_market(config)
    settings = config.resources
    owners = data.reps.assign(territory_id=data.reps["rep_id"]).rename(columns={"name": "rep_name"})
    owned = data.accounts[data.accounts["rep_id"] != ""].assign(territory_id=lambda frame: frame["rep_id"])
    workload = rep_workload(owned, data.reps, owners[["territory_id", "rep_id", "rep_name"]], settings)
    assert len(workload) == len(data.reps)
    assert (workload["annual_drive_km"] > 0).all()
    assert (workload["annual_drive_km"] <= settings.working_days * settings.max_daily_drive_km).all()
    assert (workload["drive_hours"] <= settings.working_days * settings.hours_per_day).all()


@pytest.mark.parametrize(("kind", "seed"), [("even", 5), ("towns", 6)])
def test_sectors_of_a_large_book_stay_within_ten_percent_of_solved_tours(
    kind: str, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    import territory_lib.routes as routes

    base, lat, lon = instance(kind, 240, seed)
    monkeypatch.setattr(routes, "SWEEP_CHUNK", 80)  # three sectors, as a book of 360 would get
    tours = day_tours(base, lat, lon, SETTINGS)
    visited = np.sort(np.concatenate([stops for stops, _ in tours]))
    assert np.array_equal(visited, np.arange(240))
    model = sum(length for _, length in tours)
    solved = solved_km(base, lat, lon, SETTINGS)
    assert abs(model / solved - 1) <= 0.10, (model, solved)


def test_a_national_book_is_pooled_into_cells_before_clustering(monkeypatch: pytest.MonkeyPatch) -> None:
    import territory_lib.routes as routes

    rng = np.random.default_rng(7)
    lat, lon = rng.uniform(30.0, 45.0, 3_000), rng.uniform(-120.0, -75.0, 3_000)
    visits = rng.choice([3.0, 6.0, 12.0], 3_000)
    pooled = routes.trip_areas(lat, lon, visits, SETTINGS)  # over MAX_AREA_POINTS: by cells
    assert len(pooled) == 3_000 and pooled["area"].notna().all()
    # Every account is within a day trip of its area's base, give or take its cell's size.
    to_base = road_km(
        lat, lon, pooled["base_lat"].to_numpy(), pooled["base_lon"].to_numpy(), SETTINGS.detour_factor
    )
    cell_km = 111.0 * max(routes.AREA_CELL_DEGREES) * 1.5 * SETTINGS.detour_factor
    assert to_base.max() <= 2 * day_reach_km(SETTINGS) + cell_km
    # Pooling barely changes the year's driving against clustering every account.
    monkeypatch.setattr(routes, "MAX_AREA_POINTS", 10_000)
    exact = routes.trip_areas(lat, lon, visits, SETTINGS)
    assert pooled["area"].nunique() == pytest.approx(exact["area"].nunique(), rel=0.25)
