"""Geometry helpers shared by every step: projections for areas and distances on the sphere."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from numpy.typing import ArrayLike

EARTH_RADIUS_KM = 6371.0088


def equal_area_crs(gdf: gpd.GeoDataFrame) -> str:
    """Return a projected CRS fit for areas and perimeters of ``gdf``'s extent.

    A Lambert azimuthal equal-area projection centred on the data keeps area exact and shape
    distortion small for a market of any size, from one county to the contiguous US.
    """
    lon_min, lat_min, lon_max, lat_max = gdf.to_crs(4326).total_bounds
    lat0, lon0 = (lat_min + lat_max) / 2, (lon_min + lon_max) / 2
    return f"+proj=laea +lat_0={lat0:.4f} +lon_0={lon0:.4f} +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"


def to_equal_area(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Reproject ``gdf`` to :func:`equal_area_crs` (metres)."""
    return gdf.to_crs(equal_area_crs(gdf))


def haversine_km(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike) -> np.ndarray:
    """Great-circle distance in kilometres between WGS84 points (broadcasts like numpy)."""
    phi1, lam1, phi2, lam2 = (np.radians(np.asarray(v, dtype=float)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((phi2 - phi1) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin((lam2 - lam1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
