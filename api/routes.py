"""Route planning over the network: fastest, cheapest, greenest or fewest inspections."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, current_app, jsonify
from flask_smorest import Blueprint
from marshmallow import validate

from api.auth import roles
from api.extensions import db, read_only
from api.fields import NodeCode
from routing.cache import planners
from routing.planner import MAX_ALTERNATIVES
from routing.vocab import Mode, Objective

blp = Blueprint("routes", __name__, url_prefix="/api/v1", description="Route planning")


class RouteQuery(ma.Schema):
    origin = NodeCode(required=True)
    destination = NodeCode(required=True)
    optimize = ma.fields.String(load_default=str(Objective.TIME), validate=validate.OneOf([str(o) for o in Objective]))
    modes = ma.fields.List(
        ma.fields.String(validate=validate.OneOf([str(m) for m in Mode])),
        load_default=None,
        validate=validate.Length(min=1, max=4),
    )
    avoid = ma.fields.List(NodeCode(), load_default=list, validate=validate.Length(max=50))
    alternatives = ma.fields.Integer(load_default=1, strict=True, validate=validate.Range(min=1, max=MAX_ALTERNATIVES))
    depart_at = ma.fields.AwareDateTime(load_default=None, allow_none=True, format="iso")


class PlannedLegOut(ma.Schema):
    origin = ma.fields.String(required=True)
    destination = ma.fields.String(required=True)
    mode = ma.fields.String(required=True)
    distance_km = ma.fields.Float(required=True)
    duration_h = ma.fields.Float(required=True)
    cost_per_teu = ma.fields.Float(required=True)
    co2_kg_per_teu = ma.fields.Float(required=True)
    depart_at = ma.fields.String()
    arrive_at = ma.fields.String()


class RouteTransfer(ma.Schema):
    node = ma.fields.String(required=True)
    from_mode = ma.fields.String(required=True)
    to_mode = ma.fields.String(required=True)
    seal_preserving = ma.fields.Boolean(required=True)


class LineString(ma.Schema):
    type = ma.fields.Constant("LineString", required=True)
    coordinates = ma.fields.List(ma.fields.List(ma.fields.Float()), required=True)


class RouteOut(ma.Schema):
    nodes = ma.fields.List(ma.fields.String(), required=True)
    legs = ma.fields.List(ma.fields.Nested(PlannedLegOut), required=True)
    duration_h = ma.fields.Float(required=True)
    cost_per_teu = ma.fields.Float(required=True)
    co2_kg_per_teu = ma.fields.Float(required=True)
    distance_km = ma.fields.Float(required=True)
    transfers = ma.fields.List(ma.fields.Nested(RouteTransfer), required=True)
    inspections = ma.fields.List(ma.fields.String(), required=True)
    geometry = ma.fields.Nested(LineString, required=True)


class RoutesOut(ma.Schema):
    routes = ma.fields.List(ma.fields.Nested(RouteOut), required=True)


@blp.route("/routes", methods=["POST"])
@read_only  # first, so that the session authenticating the caller is already a reader
@roles()
@blp.arguments(RouteQuery())
@blp.response(200, RoutesOut)
@blp.alt_response(404, response="NOT_FOUND")
def plan(query: dict[str, Any]) -> Response:
    """Plan routes, best first by the objective; each lists its transfers and expected inspections"""
    planner = planners.recent(db.read_engine, lambda: db.session, current_app.config["ROUTE_NETWORK_CHECK_S"])
    plans = planner.plan(
        query["origin"],
        query["destination"],
        objective=query["optimize"],
        modes=query["modes"],
        avoid=query["avoid"],
        alternatives=query["alternatives"],
        depart_at=query["depart_at"],
    )
    # `RoutePlan.to_dict` gives RoutesOut's fields, in its order, as JSON values already (rounded floats, strings):
    # dumping the hundreds of coordinates through the schema again cost more than planning the route.
    return jsonify({"routes": [p.to_dict() for p in plans]})
