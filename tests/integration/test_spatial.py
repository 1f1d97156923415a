"""The dialect module gives the same metre distances on SpatiaLite and PostGIS."""

from __future__ import annotations

import pytest
from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session, aliased

from routing.models import Node
from routing.network import haversine_km
from routing.service import point_of
from routing.spatial import as_geometry, distance_m, dwithin_m
from tests.conftest import TestDatabase


def _distance(session: Session, a: str, b: str) -> float:
    n1, n2 = aliased(Node), aliased(Node)
    value = session.scalar(
        select(distance_m(n1.geom, n2.geom)).select_from(n1).join(n2, literal(True)).where(n1.code == a, n2.code == b)
    )
    assert value is not None
    return float(value)


def test_distance_in_metres(database: TestDatabase) -> None:
    with Session(database.engine) as session:
        # Nansha ↔ Kwai Tsing: 57.6 km on the ellipsoid; the sphere (haversine) agrees within 0.5 %.
        a, b = (point_of(session.scalars(select(Node).where(Node.code == c)).one()) for c in ("CNNSA", "HKHKG"))
        expected = 1000 * haversine_km((a.x, a.y), (b.x, b.y))
        assert _distance(session, "CNNSA", "HKHKG") == pytest.approx(expected, rel=0.005)
        assert _distance(session, "CNNSA", "HKHKG") == pytest.approx(57_642, abs=50)


def test_within_distance(database: TestDatabase) -> None:
    with Session(database.engine) as session:
        point = as_geometry(func.ST_GeomFromText("POINT(113.67 22.75)", 4326), "POINT")
        near = set(session.scalars(select(Node.code).where(dwithin_m(Node.geom, point, 25_000)).order_by(Node.code)))
        assert "CNNSA" in near
        assert "HKHKG" not in near
