"""The route model's inner loops, compiled with numba: days chained by savings, tours put in order.

:mod:`territory_lib.routes` plans a rep's year with these; they work on plain arrays so that one
call covers every day tour of a rep's year (hundreds of thousands of small tours at national scale).
Compiled code is cached (``cache=True``) in the user's cache folder, so a fresh kernel loads it
instead of compiling again.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from territory_lib.compiled import use_user_cache_folder
from territory_lib.geo import EARTH_RADIUS_KM

use_user_cache_folder()

#: Tours up to this many stops are ordered exactly (dynamic programming over the stops visited).
EXACT_STOPS = 7
#: Slack (km, hours) when leaving out pairs that no day could join: far below the model's precision,
#: far above the rounding of summed kilometres.
_SLACK = 1e-6


@njit(cache=True)
def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Points on the unit sphere (x, y, z), so a distance needs no trigonometry but one arcsine."""
    vectors = np.empty((len(lat), 3))
    for point in range(len(lat)):
        phi = math.radians(lat[point])
        lam = math.radians(lon[point])
        vectors[point, 0] = math.cos(phi) * math.cos(lam)
        vectors[point, 1] = math.cos(phi) * math.sin(lam)
        vectors[point, 2] = math.sin(phi)
    return vectors


@njit(cache=True)
def _arc(vectors: np.ndarray, i: int, j: int, scale: float) -> float:
    """``scale`` times the great-circle angle between unit vectors ``i`` and ``j``.

    The haversine formula from the chord: half the chord is the haversine's square root.
    """
    dx = vectors[i, 0] - vectors[j, 0]
    dy = vectors[i, 1] - vectors[j, 1]
    dz = vectors[i, 2] - vectors[j, 2]
    return scale * math.asin(min(math.sqrt(dx * dx + dy * dy + dz * dz) / 2, 1.0))


@njit(cache=True)
def road_matrix(lat: np.ndarray, lon: np.ndarray, detour: float) -> np.ndarray:
    """Road km between every pair of points: great-circle distance times ``detour``."""
    vectors = _unit_vectors(lat, lon)
    count = len(lat)
    scale = 2 * EARTH_RADIUS_KM * detour
    matrix = np.zeros((count, count))
    for i in range(count):
        for j in range(i + 1, count):
            matrix[i, j] = matrix[j, i] = _arc(vectors, i, j, scale)
    return matrix


@njit(cache=True)
def road_distances(lat: np.ndarray, lon: np.ndarray, detour: float) -> np.ndarray:
    """:func:`road_matrix` condensed as scipy's ``pdist`` gives it: pairs ``i < j`` row by row."""
    vectors = _unit_vectors(lat, lon)
    count = len(lat)
    scale = 2 * EARTH_RADIUS_KM * detour
    distances = np.empty(count * (count - 1) // 2)
    pair = 0
    for i in range(count):
        for j in range(i + 1, count):
            distances[pair] = _arc(vectors, i, j, scale)
            pair += 1
    return distances


@njit(cache=True)
def medoids(distances: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per label ``0, 1, ...``: the point of that label with the least weighted distance to the others.

    ``distances`` is condensed (:func:`road_distances`); each point's cost is the sum over the
    points of its label of distance times their weight; ties go to the first point.
    """
    count = len(labels)
    cost = np.zeros(count)
    pair = 0
    for i in range(count):
        for j in range(i + 1, count):
            if labels[i] == labels[j]:
                cost[i] += distances[pair] * weights[j]
                cost[j] += distances[pair] * weights[i]
            pair += 1
    best = np.full(labels.max() + 1, -1, dtype=np.int64)
    for point in range(count):
        label = labels[point]
        if best[label] == -1 or cost[point] < cost[best[label]]:
            best[label] = point
    return best


@njit(cache=True)
def _exact_order(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """Shortest tour from point 0 through the others (Held and Karp's dynamic programme)."""
    stops = len(matrix) - 1
    subsets = 1 << stops
    best = np.full((subsets, stops), np.inf)
    came_from = np.full((subsets, stops), -1, dtype=np.int64)
    for last in range(stops):
        best[1 << last, last] = matrix[0, last + 1]
    for subset in range(1, subsets):
        for last in range(stops):
            here = best[subset, last]
            if not (subset >> last) & 1 or here == np.inf:
                continue
            for following in range(stops):
                if (subset >> following) & 1:
                    continue
                longer = subset | (1 << following)
                length = here + matrix[last + 1, following + 1]
                if length < best[longer, following]:
                    best[longer, following] = length
                    came_from[longer, following] = last
    everyone = subsets - 1
    shortest = np.inf
    last = 0
    for end in range(stops):
        length = best[everyone, end] + matrix[end + 1, 0]
        if length < shortest:
            shortest = length
            last = end
    order = np.empty(stops, dtype=np.int64)
    subset = everyone
    for position in range(stops - 1, -1, -1):
        order[position] = last + 1
        previous = came_from[subset, last]
        subset ^= 1 << last
        last = previous
    return order, shortest


@njit(cache=True)
def _two_opt_order(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """Nearest-neighbour tour from point 0, improved by 2-opt until no exchange shortens it."""
    stops = len(matrix) - 1
    path = np.zeros(stops + 2, dtype=np.int64)
    used = np.zeros(stops + 1, dtype=np.bool_)
    for step in range(1, stops + 1):
        nearest = -1
        closest = np.inf
        for point in range(1, stops + 1):
            if not used[point] and matrix[path[step - 1], point] < closest:
                closest = matrix[path[step - 1], point]
                nearest = point
        path[step] = nearest
        used[nearest] = True
    improved = True
    while improved:
        improved = False
        for i in range(1, stops):
            for j in range(i + 1, stops + 1):
                a, b, c, d = path[i - 1], path[i], path[j], path[j + 1]
                if matrix[a, c] + matrix[b, d] < matrix[a, b] + matrix[c, d] - 1e-9:
                    path[i : j + 1] = path[i : j + 1][::-1].copy()
                    improved = True
    length = 0.0
    for step in range(stops + 1):
        length += matrix[path[step], path[step + 1]]
    return path[1:-1].copy(), length


@njit(cache=True)
def shortest_order(matrix: np.ndarray) -> tuple[np.ndarray, float]:
    """The shortest tour from point 0 through every other point of ``matrix``: order and length.

    Exact up to :data:`EXACT_STOPS` stops; beyond, nearest neighbour improved by 2-opt.
    The order lists the points 1, 2, ... as visited.
    """
    if len(matrix) == 1:
        return np.zeros(0, dtype=np.int64), 0.0
    if len(matrix) - 1 <= EXACT_STOPS:
        return _exact_order(matrix)
    return _two_opt_order(matrix)


#: Bits sorted per pass of :func:`_decreasing` (six passes over 64-bit keys).
_DIGIT_BITS = 11
_RADIX = 1 << _DIGIT_BITS


@njit(cache=True)
def _decreasing(values: np.ndarray) -> np.ndarray:
    """Positions of the positive ``values`` from the largest down, equal values in position order.

    A stable least-significant-digit radix sort of the values' bits (for positive floats their
    order as integers): a few passes over the values, where numba's stable mergesort is several
    times slower on the thousands of pairs of a sector.
    """
    count = len(values)
    # Positive doubles order as their bit patterns; subtracting from the largest int64 reverses it.
    keys = np.iinfo(np.int64).max - values.view(np.int64)
    order = np.arange(count)
    spare_keys = np.empty(count, dtype=np.int64)
    spare_order = np.empty(count, dtype=np.int64)
    slots = np.empty(_RADIX + 1, dtype=np.int64)
    for shift in range(0, 64, _DIGIT_BITS):
        slots[:] = 0
        for position in range(count):
            slots[((keys[position] >> shift) & (_RADIX - 1)) + 1] += 1
        if slots.max() == count:
            continue  # every key has this digit: the pass would change nothing
        for digit in range(1, _RADIX + 1):
            slots[digit] += slots[digit - 1]
        for position in range(count):
            digit = (keys[position] >> shift) & (_RADIX - 1)
            spare_keys[slots[digit]] = keys[position]
            spare_order[slots[digit]] = order[position]
            slots[digit] += 1
        keys, spare_keys = spare_keys, keys
        order, spare_order = spare_order, order
    return order


@njit(cache=True)
def _savings(
    matrix: np.ndarray,
    visits_per_day: int,
    max_km: float,
    road_speed: float,
    hours_per_visit: float,
    hours_per_day: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Days merged by Clarke and Wright's savings over ``matrix`` (point 0 is the base).

    Every point starts as its own day; pairs of day ends are joined in order of decreasing saving
    (ties in pair order) while the day keeps within its stops, kilometres and hours.

    Returns
    -------
    points, starts
        The days' points (1-based) one day after the other, each day in its chained order, days
        in the order of their first point; day ``k`` is ``points[starts[k]:starts[k + 1]]``.
    """
    count = len(matrix) - 1
    pairs = count * (count - 1) // 2
    first = np.empty(pairs, dtype=np.int64)
    second = np.empty(pairs, dtype=np.int64)
    gain = np.empty(pairs)
    kept = 0
    if visits_per_day >= 2:
        for i in range(1, count + 1):
            for j in range(i + 1, count + 1):
                saving = matrix[0, i] + matrix[0, j] - matrix[i, j]
                # A day joining i and j drives at least base-i-j-base: pairs beyond a day's
                # kilometres or hours could never be joined, whatever was joined before.
                least = matrix[0, i] + matrix[i, j] + matrix[j, 0]
                if (
                    saving > 0
                    and least <= max_km + _SLACK
                    and least / road_speed + 2 * hours_per_visit <= hours_per_day + _SLACK
                ):
                    first[kept], second[kept], gain[kept] = i, j, saving
                    kept += 1
    route_of = np.arange(count + 1)
    head = np.arange(count + 1)
    tail = np.arange(count + 1)
    stops = np.ones(count + 1, dtype=np.int64)
    length = 2 * matrix[0].copy()
    # Each point's neighbours within its day (-1: none); a day is reversed by swapping its ends.
    neighbour = np.full((count + 1, 2), -1, dtype=np.int64)
    for pair in _decreasing(gain[:kept]):
        i, j = first[pair], second[pair]
        a, b = route_of[i], route_of[j]
        if a == b:
            continue
        if (i != head[a] and i != tail[a]) or (j != head[b] and j != tail[b]):
            continue
        joined = length[a] + length[b] - gain[pair]
        together = stops[a] + stops[b]
        if (
            together > visits_per_day
            or joined > max_km
            or joined / road_speed + together * hours_per_visit > hours_per_day
        ):
            continue
        if tail[a] != i:
            head[a], tail[a] = tail[a], head[a]
        if head[b] != j:
            head[b], tail[b] = tail[b], head[b]
        point, previous = head[b], -1
        while point != -1:
            route_of[point] = a
            following = neighbour[point, 0] if neighbour[point, 0] != previous else neighbour[point, 1]
            previous, point = point, following
        neighbour[i, 0 if neighbour[i, 0] == -1 else 1] = j
        neighbour[j, 0 if neighbour[j, 0] == -1 else 1] = i
        tail[a] = tail[b]
        stops[a] = together
        length[a] = joined
    points = np.empty(count, dtype=np.int64)
    starts = np.zeros(count + 1, dtype=np.int64)
    days = 0
    filled = 0
    for day in range(1, count + 1):
        if route_of[day] != day:
            continue
        point, previous = head[day], -1
        while point != -1:
            points[filled] = point
            filled += 1
            following = neighbour[point, 0] if neighbour[point, 0] != previous else neighbour[point, 1]
            previous, point = point, following
        days += 1
        starts[days] = filled
    return points, starts[: days + 1].copy()


@njit(cache=True)
def chain_days(
    base_lat: np.ndarray,
    base_lon: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    group_starts: np.ndarray,
    sweep_chunk: int,
    visits_per_day: int,
    max_km: float,
    road_speed: float,
    hours_per_visit: float,
    hours_per_day: float,
    detour: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Day tours of groups of points, each group from its own base.

    Group ``g`` is the points ``group_starts[g]:group_starts[g + 1]`` of ``lat``/``lon``, worked
    from (``base_lat[g]``, ``base_lon[g]``). A group of more than ``sweep_chunk`` points is first
    split into that many sectors around its base (Gillett and Miller's sweep, by bearing); each
    sector is chained into days by savings and each day put in its shortest order.

    Returns
    -------
    stops, day_starts, day_km, day_group
        Day ``k`` visits ``stops[day_starts[k]:day_starts[k + 1]]`` (indices into ``lat``, in tour
        order), drives ``day_km[k]`` road km and belongs to group ``day_group[k]``.
    """
    total = len(lat)
    stops = np.empty(total, dtype=np.int64)
    day_starts = np.zeros(total + 1, dtype=np.int64)
    day_km = np.empty(total)
    day_group = np.empty(total, dtype=np.int64)
    days = 0
    filled = 0
    for group in range(len(group_starts) - 1):
        start, end = group_starts[group], group_starts[group + 1]
        count = end - start
        if count == 0:
            continue
        members = np.arange(start, end)
        sectors = math.ceil(count / sweep_chunk)
        if sectors > 1:
            stretch = math.cos(math.radians(base_lat[group]))
            bearing = np.empty(count)
            for k in range(count):
                bearing[k] = math.atan2(
                    lat[start + k] - base_lat[group], (lon[start + k] - base_lon[group]) * stretch
                )
            members = members[np.argsort(bearing, kind="mergesort")]
        # Sectors as numpy.array_split cuts them: the first count % sectors one point longer.
        size, longer = count // sectors, count % sectors
        cut = 0
        for sector in range(sectors):
            width = size + (1 if sector < longer else 0)
            points = members[cut : cut + width]
            cut += width
            sector_lat = np.empty(width + 1)
            sector_lon = np.empty(width + 1)
            sector_lat[0], sector_lon[0] = base_lat[group], base_lon[group]
            sector_lat[1:] = lat[points]
            sector_lon[1:] = lon[points]
            matrix = road_matrix(sector_lat, sector_lon, detour)
            chained, starts = _savings(
                matrix, visits_per_day, max_km, road_speed, hours_per_visit, hours_per_day
            )
            for day in range(len(starts) - 1):
                day_points = chained[starts[day] : starts[day + 1]]
                here = np.empty(len(day_points) + 1, dtype=np.int64)
                here[0] = 0
                here[1:] = day_points
                sub = np.empty((len(here), len(here)))
                for r in range(len(here)):
                    for c in range(len(here)):
                        sub[r, c] = matrix[here[r], here[c]]
                order, km = shortest_order(sub)
                for position in range(len(order)):
                    stops[filled] = points[here[order[position]] - 1]
                    filled += 1
                day_km[days] = km
                day_group[days] = group
                days += 1
                day_starts[days] = filled
    return stops, day_starts[: days + 1].copy(), day_km[:days].copy(), day_group[:days].copy()


@njit(cache=True)
def trip_legs(
    home_lat: float,
    home_lon: float,
    base_lat: np.ndarray,
    base_lon: np.ndarray,
    trip_starts: np.ndarray,
    detour: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The drives of trips from home through bases: trip ``t`` visits the bases ``trip_starts[t]:
    trip_starts[t + 1]`` in their shortest order.

    Returns
    -------
    entry, leave, between, longest_between
        Road km per trip: home to the first base, the last base home, base to base in all, and the
        longest drive from one base to the next (0 for a single base).
    """
    trips = len(trip_starts) - 1
    entry = np.empty(trips)
    leave = np.empty(trips)
    between = np.empty(trips)
    longest_between = np.empty(trips)
    for trip in range(trips):
        start, end = trip_starts[trip], trip_starts[trip + 1]
        stops_lat = np.empty(end - start + 1)
        stops_lon = np.empty(end - start + 1)
        stops_lat[0], stops_lon[0] = home_lat, home_lon
        stops_lat[1:] = base_lat[start:end]
        stops_lon[1:] = base_lon[start:end]
        legs = road_matrix(stops_lat, stops_lon, detour)
        order, _ = shortest_order(legs)
        entry[trip] = legs[0, order[0]]
        leave[trip] = legs[order[-1], 0]
        between[trip] = 0.0
        longest_between[trip] = 0.0
        for step in range(len(order) - 1):
            leg = legs[order[step], order[step + 1]]
            between[trip] += leg
            longest_between[trip] = max(longest_between[trip], leg)
    return entry, leave, between, longest_between
