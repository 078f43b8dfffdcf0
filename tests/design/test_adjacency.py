"""Queen contiguity on arrays against libpysal's own vertex-set construction, on real shipped maps."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from libpysal.examples import get_path
from libpysal.graph import Graph

from territory_lib.design.graph import _shared_vertex_pairs


@pytest.mark.parametrize(
    "shipped",
    [
        "G_utm.shp",  # Georgia's counties
        "mexicojoin.shp",  # Mexican states: multipolygons (islands)
        "us48.shp",  # US states: multipolygons, lakes, points touching at Four Corners
        "sids2.shp",  # North Carolina counties
    ],
)
def test_shared_vertex_pairs_are_libpysal_queen_neighbours(shipped: str) -> None:
    units = gpd.read_file(get_path(shipped))
    geoms = units.geometry.to_numpy()
    adjacency = Graph.build_contiguity(units.geometry, rook=False).adjacency.reset_index()
    joined = adjacency[adjacency["focal"] != adjacency["neighbor"]]
    expected = sorted(zip(joined["focal"].astype(int), joined["neighbor"].astype(int), strict=True))
    heads, tails = _shared_vertex_pairs(geoms)
    assert sorted(zip(heads.tolist(), tails.tolist(), strict=True)) == expected
    assert len(expected) > 0


def test_negative_zero_and_zero_are_the_same_vertex() -> None:
    left = shapely.Polygon([(-1, 0), (0.0, 0), (0.0, 1), (-1, 1)])
    right = shapely.Polygon([(-0.0, 0), (1, 0), (1, 1), (-0.0, 1)])
    far = shapely.Polygon([(5, 5), (6, 5), (6, 6)])
    heads, tails = _shared_vertex_pairs(np.array([left, right, far]))
    assert sorted(zip(heads.tolist(), tails.tolist(), strict=True)) == [(0, 1), (1, 0)]
