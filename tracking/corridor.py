"""How far a position is from a declared itinerary's path, in kilometres, the same way on both databases (Shapely)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import LineString, Point

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320


def distance_km(path: Sequence[tuple[float, float]], lon: float, lat: float) -> float:
    """Distance from `(lon, lat)` to the polyline `path`, in a local equirectangular frame centred on the point
    (exact enough within a corridor's width, which is all the check needs)."""
    if len(path) == 1:
        path = [path[0], path[0]]
    scale = np.array([KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(lat)), KM_PER_DEG_LAT])
    line = shapely.transform(LineString(path), lambda xy: (xy - np.array([lon, lat])) * scale)
    return float(line.distance(Point(0.0, 0.0)))
