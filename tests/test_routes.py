"""The route model: day tours against tours solved independently (OR-Tools, exhaustive search)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from territory_lib.config import ResourceSettings
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
