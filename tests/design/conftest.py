"""Shared fixtures for the design engine tests: real county maps shipped with libpysal."""

from __future__ import annotations

import geopandas as gpd
import pytest
from libpysal import examples


@pytest.fixture(scope="session")
def nc_counties() -> gpd.GeoDataFrame:
    """North Carolina's 100 counties (libpysal ``sids2``), lon/lat NAD27."""
    return gpd.read_file(examples.get_path("sids2.shp")).set_crs(4267)


@pytest.fixture(scope="session")
def georgia_counties() -> gpd.GeoDataFrame:
    """Georgia's 159 counties (libpysal ``georgia``), UTM zone 17N."""
    return gpd.read_file(examples.get_path("G_utm.shp")).set_crs(26917)
