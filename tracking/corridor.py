"""How far a position is from a declared itinerary's path, in kilometres, the same way on both databases (NumPy and
Shapely, no database functions)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from shapely.geometry import LineString

KM_PER_DEG_LAT = 110.574
KM_PER_DEG_LON_EQUATOR = 111.320


def distances_km(path: Sequence[tuple[float, float]], points: Sequence[tuple[float, float]]) -> list[float]:
    """Distance from each `(lon, lat)` to the polyline `path`, each in a local equirectangular frame centred on the
    point (exact enough within a corridor's width, which is all the check needs), for all points at once."""
    if not points:
        return []
    vertices = np.asarray(path if len(path) > 1 else [path[0], path[0]], dtype=float)
    at = np.asarray(points, dtype=float)  # (n, 2)
    scale = np.stack([KM_PER_DEG_LON_EQUATOR * np.cos(np.radians(at[:, 1])), np.full(len(at), KM_PER_DEG_LAT)], 1)
    # Segment ends relative to each point, in that point's frame: (n, m, 2).
    start = (vertices[:-1][None, :, :] - at[:, None, :]) * scale[:, None, :]
    end = (vertices[1:][None, :, :] - at[:, None, :]) * scale[:, None, :]
    along = end - start
    length2 = np.einsum("nmk,nmk->nm", along, along)
    t = np.clip(
        np.divide(-np.einsum("nmk,nmk->nm", start, along), length2, out=np.zeros_like(length2), where=length2 > 0),
        0.0,
        1.0,
    )
    nearest = start + t[:, :, None] * along
    result: list[float] = np.sqrt(np.einsum("nmk,nmk->nm", nearest, nearest)).min(axis=1).tolist()
    return result


def distance_km(path: Sequence[tuple[float, float]], lon: float, lat: float) -> float:
    """Distance from `(lon, lat)` to the polyline `path` (see `distances_km`)."""
    return distances_km(path, [(lon, lat)])[0]


def outside(
    path: Sequence[tuple[float, float]], points: Sequence[tuple[float, float]], corridor_km: float
) -> list[float | None]:
    """For each `(lon, lat)`, its distance in km when it lies outside the corridor, else None.

    One vectorised distance in degrees bounds the answer (a local frame never stretches a degree beyond
    KM_PER_DEG_LON_EQUATOR km), so only points that may be outside get the exact distance, computed together.
    """
    if not points:
        return []
    line = LineString(path if len(path) > 1 else [path[0], path[0]])
    degrees = np.atleast_1d(shapely.distance(line, shapely.points(np.asarray(points, dtype=float))))
    result: list[float | None] = [None] * len(points)
    candidates = np.flatnonzero(degrees * KM_PER_DEG_LON_EQUATOR > corridor_km).tolist()
    exact = distances_km(path, [points[i] for i in candidates])
    for i, km in zip(candidates, exact, strict=True):
        if km > corridor_km:
            result[i] = km
    return result
