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


def outside(
    path: Sequence[tuple[float, float]], points: Sequence[tuple[float, float]], corridor_km: float
) -> list[float | None]:
    """For each `(lon, lat)`, its distance in km when it lies outside the corridor, else None.

    One vectorised distance in degrees bounds the answer (a local frame never stretches a degree beyond
    KM_PER_DEG_LON_EQUATOR km), so only points that may be outside get the exact per-point distance.
    """
    if not points:
        return []
    line = LineString(path if len(path) > 1 else [path[0], path[0]])
    degrees: list[float] = np.atleast_1d(
        shapely.distance(line, shapely.points(np.asarray(points, dtype=float)))
    ).tolist()
    return [
        None
        if d * KM_PER_DEG_LON_EQUATOR <= corridor_km
        else (km if (km := distance_km(path, lon, lat)) > corridor_km else None)
        for d, (lon, lat) in zip(degrees, points, strict=True)
    ]
