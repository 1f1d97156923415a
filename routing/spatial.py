"""The one place for dialect differences in spatial SQL: metre distances, within-distance tests, boxes."""

from __future__ import annotations

from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Boolean

from routing.vocab import WGS84


class distance_m(FunctionElement[float]):
    """Geodesic distance in metres between two WGS84 geometries."""

    type = Float()
    inherit_cache = True
    name = "distance_m"


class dwithin_m(FunctionElement[bool]):
    """True when two WGS84 geometries are within a number of metres of each other."""

    type = Boolean()
    inherit_cache = True
    name = "dwithin_m"


class in_bbox(FunctionElement[bool]):
    """True when a geometry's bounding box intersects `(min_lon, min_lat, max_lon, max_lat)`."""

    type = Boolean()
    inherit_cache = True
    name = "in_bbox"


@compiles(distance_m, "postgresql")
def _distance_pg(element: distance_m, compiler: Any, **kw: Any) -> str:
    a, b = element.clauses
    return f"ST_Distance(({compiler.process(a, **kw)})::geography, ({compiler.process(b, **kw)})::geography)"


@compiles(distance_m, "sqlite")
def _distance_sqlite(element: distance_m, compiler: Any, **kw: Any) -> str:
    a, b = element.clauses
    return f"ST_Distance({compiler.process(a, **kw)}, {compiler.process(b, **kw)}, 1)"


@compiles(dwithin_m, "postgresql")
def _dwithin_pg(element: dwithin_m, compiler: Any, **kw: Any) -> str:
    a, b, metres = element.clauses
    return (
        f"ST_DWithin(({compiler.process(a, **kw)})::geography, ({compiler.process(b, **kw)})::geography, "
        f"{compiler.process(metres, **kw)})"
    )


@compiles(dwithin_m, "sqlite")
def _dwithin_sqlite(element: dwithin_m, compiler: Any, **kw: Any) -> str:
    a, b, metres = element.clauses
    # SpatiaLite has no ST_DWithin; PtDistWithin on the ellipsoid gives the same metres as PostGIS geography.
    return (
        f"PtDistWithin({compiler.process(a, **kw)}, {compiler.process(b, **kw)}, {compiler.process(metres, **kw)}, 1)"
    )


@compiles(in_bbox, "postgresql")
def _bbox_pg(element: in_bbox, compiler: Any, **kw: Any) -> str:
    geom, x1, y1, x2, y2 = (compiler.process(c, **kw) for c in element.clauses)
    return f"({geom} && ST_MakeEnvelope({x1}, {y1}, {x2}, {y2}, {WGS84}))"


@compiles(in_bbox, "sqlite")
def _bbox_sqlite(element: in_bbox, compiler: Any, **kw: Any) -> str:
    geom, x1, y1, x2, y2 = (compiler.process(c, **kw) for c in element.clauses)
    return f"MbrIntersects({geom}, BuildMbr({x1}, {y1}, {x2}, {y2}, {WGS84}))"


def as_geometry(value: Any, geometry_type: str = "GEOMETRY") -> ColumnElement[Any]:
    """Bind a WKB/WKT value as a geometry so functions GeoAlchemy2 does not know accept it."""
    from sqlalchemy import type_coerce

    return type_coerce(value, Geometry(geometry_type, srid=WGS84))
