"""The corridor check: vectorised distances agree with Shapely's per-point answer in the same local frame."""

from __future__ import annotations

import math

import numpy as np
import shapely
from hypothesis import given
from hypothesis import strategies as st
from shapely.geometry import LineString, Point

from tracking.corridor import KM_PER_DEG_LAT, KM_PER_DEG_LON_EQUATOR, distances_km, outside

lon = st.floats(100.0, 125.0)
lat = st.floats(15.0, 45.0)
position = st.tuples(lon, lat)


def shapely_km(path: list[tuple[float, float]], at: tuple[float, float]) -> float:
    """One point at a time: the path moved into the point's local equirectangular frame, then Shapely's distance."""
    scale = np.array([KM_PER_DEG_LON_EQUATOR * math.cos(math.radians(at[1])), KM_PER_DEG_LAT])
    line = LineString(path if len(path) > 1 else [path[0], path[0]])
    moved = shapely.transform(line, lambda xy: (xy - np.array(at)) * scale)
    return float(moved.distance(Point(0.0, 0.0)))


@given(st.lists(position, min_size=1, max_size=8), st.lists(position, min_size=1, max_size=20))
def test_vectorised_distances_equal_shapely_point_by_point(path, points):
    assert np.allclose(distances_km(path, points), [shapely_km(path, p) for p in points], rtol=1e-9, atol=1e-6)


@given(st.lists(position, min_size=2, max_size=8), st.lists(position, min_size=1, max_size=20), st.floats(1, 200))
def test_outside_reports_exactly_the_points_beyond_the_corridor(path, points, corridor_km):
    reported = outside(path, points, corridor_km)
    for p, km in zip(points, reported, strict=True):
        exact = shapely_km(path, p)
        if km is None:
            assert exact <= corridor_km + 1e-6
        else:
            assert km > corridor_km
            assert math.isclose(km, exact, rel_tol=1e-9, abs_tol=1e-6)


def test_a_point_on_the_path_is_inside_and_one_a_degree_north_is_about_110_km_off():
    path = [(113.0, 23.0), (114.0, 23.0)]
    assert outside(path, [(113.5, 23.0), (113.5, 24.0)], 25.0) == [None, distances_km(path, [(113.5, 24.0)])[0]]
    assert 110 < distances_km(path, [(113.5, 24.0)])[0] < 111
