"""Queen contiguity and shared border lengths on arrays, against libpysal's rule and shapely's
intersections (the way they were computed before), on real shipped maps."""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pytest
import shapely
from libpysal.examples import get_path
from libpysal.graph import Graph

from territory_lib.design.graph import _outlines, _shared_lengths, _shared_vertex_pairs

SHIPPED = [
    "G_utm.shp",  # Georgia's counties
    "mexicojoin.shp",  # Mexican states: multipolygons (islands)
    "us48.shp",  # US states: multipolygons, lakes, points touching at Four Corners
    "sids2.shp",  # North Carolina counties
]


@pytest.mark.parametrize("shipped", SHIPPED)
def test_shared_vertex_pairs_are_libpysal_queen_neighbours(shipped: str) -> None:
    units = gpd.read_file(get_path(shipped))
    geoms = units.geometry.to_numpy()
    adjacency = Graph.build_contiguity(units.geometry, rook=False).adjacency.reset_index()
    joined = adjacency[adjacency["focal"] != adjacency["neighbor"]]
    expected = sorted(zip(joined["focal"].astype(int), joined["neighbor"].astype(int), strict=True))
    heads, tails = _shared_vertex_pairs(_outlines(geoms))
    assert sorted(zip(heads.tolist(), tails.tolist(), strict=True)) == expected
    assert len(expected) > 0


def test_negative_zero_and_zero_are_the_same_vertex() -> None:
    left = shapely.Polygon([(-1, 0), (0.0, 0), (0.0, 1), (-1, 1)])
    right = shapely.Polygon([(-0.0, 0), (1, 0), (1, 1), (-0.0, 1)])
    far = shapely.Polygon([(5, 5), (6, 5), (6, 6)])
    heads, tails = _shared_vertex_pairs(_outlines(np.array([left, right, far])))
    assert sorted(zip(heads.tolist(), tails.tolist(), strict=True)) == [(0, 1), (1, 0)]


def _intersected(geoms: np.ndarray, heads: np.ndarray, tails: np.ndarray) -> np.ndarray:
    """libpysal's perimeter weights: the length of each ordered pair's intersection."""
    return shapely.length(shapely.intersection(geoms[heads], geoms[tails]))


@pytest.mark.parametrize("shipped", [*SHIPPED, "columbus.shp"])
def test_shared_lengths_are_the_intersections_lengths_on_a_coverage(shipped: str) -> None:
    geoms = gpd.read_file(get_path(shipped)).geometry.to_numpy()
    assert shapely.coverage_is_valid(geoms)  # the premise: the segments are summed, not intersected
    outlines = _outlines(geoms)
    heads, tails = _shared_vertex_pairs(outlines)
    expected = _intersected(geoms, heads, tails)
    lengths = _shared_lengths(geoms, outlines, heads, tails)
    # The same segments added in another order: equal up to round-off.
    np.testing.assert_allclose(lengths, expected, rtol=1e-12, atol=0)
    assert np.array_equal(lengths == 0, expected == 0)
    assert (expected > 0).sum() > len(geoms)


def test_shared_lengths_intersect_when_borders_do_not_match_vertex_for_vertex() -> None:
    geoms = gpd.read_file(get_path("us48.shp")).geometry.to_numpy().copy()
    # A vertex added in the middle of a straight border (along a meridian) between two states,
    # on one side only: a T-junction, so that border segment is no longer drawn by both.
    position, ring, k = _meridian_border(geoms)
    rings = [np.asarray(r.coords) for r in shapely.get_rings(shapely.get_parts(geoms[position])[0])]
    middle = (rings[ring][k] + rings[ring][k + 1]) / 2
    assert middle[0] == rings[ring][k][0]  # exactly on the border
    rings[ring] = np.insert(rings[ring], k + 1, middle, axis=0)
    parts = shapely.get_parts(geoms[position])
    parts[0] = shapely.Polygon(rings[0], rings[1:])
    geoms[position] = shapely.multipolygons(parts) if len(parts) > 1 else parts[0]
    assert not shapely.coverage_is_valid(geoms)
    outlines = _outlines(geoms)
    heads, tails = _shared_vertex_pairs(outlines)
    lengths = _shared_lengths(geoms, outlines, heads, tails)
    assert np.array_equal(lengths, _intersected(geoms, heads, tails))


def _meridian_border(geoms: np.ndarray) -> tuple[int, int, int]:
    """A state, ring and segment of its first part lying on a meridian and shared with a neighbour."""
    segments = {}
    for position, shape in enumerate(geoms):
        for part in shapely.get_parts(shape):
            for coords in (np.asarray(r.coords) for r in shapely.get_rings(part)):
                for a, b in itertools.pairwise(coords):
                    key = tuple(sorted([tuple(a), tuple(b)]))
                    segments.setdefault(key, set()).add(position)
    for position, shape in enumerate(geoms):
        for ring, r in enumerate(shapely.get_rings(shapely.get_parts(shape)[0])):
            coords = np.asarray(r.coords)
            for k in range(len(coords) - 1):
                key = tuple(sorted([tuple(coords[k]), tuple(coords[k + 1])]))
                if (
                    coords[k][0] == coords[k + 1][0]
                    and coords[k][1] != coords[k + 1][1]
                    and len(segments[key]) == 2
                ):
                    return position, ring, k
    raise AssertionError("no straight border along a meridian")


def test_shared_lengths_refuse_overlapping_polygons() -> None:
    geoms = gpd.read_file(get_path("G_utm.shp")).geometry.to_numpy().copy()
    heads, tails = _shared_vertex_pairs(_outlines(geoms))
    first, second = heads[0], tails[0]
    # The first county takes a 2 km square of its neighbour around a vertex of their border.
    corner = shapely.intersection(shapely.boundary(geoms[first]), shapely.boundary(geoms[second]))
    x, y = shapely.get_coordinates(corner)[0]
    geoms[first] = shapely.union(
        geoms[first], shapely.intersection(geoms[second], shapely.box(x - 1e3, y - 1e3, x + 1e3, y + 1e3))
    )
    outlines = _outlines(geoms)
    heads, tails = _shared_vertex_pairs(outlines)
    assert second in tails[heads == first]
    with pytest.raises(ValueError, match="overlap"):
        _shared_lengths(geoms, outlines, heads, tails)
