"""The network resources: nodes and legs as GeoJSON, with filters; admins add to them."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint
from geoalchemy2.shape import to_shape
from marshmallow import validate
from shapely.geometry import mapping

from api.auth import public, roles
from api.extensions import db
from api.fields import FeatureCollectionSchema, FeatureSchema, Flag, NodeCode, Number, OfficeCode, Text
from api.transaction import transaction
from routing import service
from routing.models import Leg, Node
from routing.vocab import Mode, NodeKind
from tracking.vocab import Role

blp = Blueprint("network", __name__, url_prefix="/api/v1", description="The transport network (GeoJSON)")

DEPARTURE = r"^(mon|tue|wed|thu|fri|sat|sun) ([01]\d|2[0-3]):[0-5]\d$"


def node_feature(node: Node) -> dict[str, Any]:
    return {
        "type": "Feature",
        "id": node.code,
        "geometry": mapping(to_shape(node.geom)),
        "properties": {
            "code": node.code,
            "name": node.name,
            "name_zh": node.name_zh,
            "kind": node.kind,
            "modes": node.modes,
            "customs_office": node.customs_office,
            "seal_preserving_transfer": node.seal_preserving_transfer,
            "handling_h": node.handling_h,
            "handling_cost_per_teu": node.handling_cost_per_teu,
            "dwell_limit_h": node.dwell_limit_h,
        },
    }


def leg_feature(leg: Leg) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": leg.id,
        "origin": leg.origin.code,
        "destination": leg.destination.code,
        "mode": leg.mode,
        "distance_km": leg.distance_km,
        "duration_h": leg.duration_h,
        "cost_per_teu": leg.cost_per_teu,
        "co2_kg_per_teu": leg.co2_kg_per_teu,
    }
    if leg.departures:
        properties["departures"] = leg.departures
    return {"type": "Feature", "id": leg.id, "geometry": mapping(to_shape(leg.geom)), "properties": properties}


def _collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


_NUMBER = r"-?\d+(\.\d+)?"
BBOX = rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$"


class BBox(ma.fields.String):
    """`minLon,minLat,maxLon,maxLat` in degrees."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(metadata={"pattern": BBOX, **kwargs.pop("metadata", {})}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> tuple[float, ...]:  # type: ignore[override]
        text = super()._deserialize(value, attr, data, **kwargs)
        if not re.match(BBOX, text):
            raise ma.ValidationError("must be four numbers: minLon,minLat,maxLon,maxLat")
        try:
            box = tuple(float(part) for part in text.split(","))
        except ValueError:
            raise ma.ValidationError("must be four numbers: minLon,minLat,maxLon,maxLat") from None
        if len(box) != 4:
            raise ma.ValidationError("must be four numbers: minLon,minLat,maxLon,maxLat")
        min_lon, min_lat, max_lon, max_lat = box
        if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
            raise ma.ValidationError("needs -180 ≤ minLon ≤ maxLon ≤ 180 and -90 ≤ minLat ≤ maxLat ≤ 90")
        return box


class NodeQuery(ma.Schema):
    kind = ma.fields.String(validate=validate.OneOf(list(NodeKind)))
    mode = ma.fields.String(validate=validate.OneOf(list(Mode)))
    bbox = BBox(metadata={"description": "minLon,minLat,maxLon,maxLat", "example": "112.5,22.0,114.5,23.5"})


class LegQuery(ma.Schema):
    mode = ma.fields.String(validate=validate.OneOf(list(Mode)))
    node = NodeCode(metadata={"description": "legs that start or end at this node"})


class NodeCreate(ma.Schema):
    code = NodeCode(required=True)
    name = Text(required=True, min_length=1)
    name_zh = Text(load_default=None, allow_none=True)
    kind = ma.fields.String(required=True, validate=validate.OneOf(list(NodeKind)))
    lon = Number(required=True, minimum=-180, maximum=180)
    lat = Number(required=True, minimum=-90, maximum=90)
    modes = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(list(Mode))), required=True, validate=validate.Length(min=1, max=4)
    )
    customs_office = OfficeCode(required=True)
    handling_h = Number(load_default=6.0, maximum=720)
    handling_cost_per_teu = Number(load_default=60.0, maximum=100_000)
    seal_preserving_transfer = Flag(load_default=True)
    dwell_limit_h = Number(load_default=168.0, maximum=8760)
    source = Text(load_default=None, allow_none=True, max_length=1000)


class LegCreate(ma.Schema):
    origin = NodeCode(required=True)
    destination = NodeCode(required=True)
    mode = ma.fields.String(required=True, validate=validate.OneOf(list(Mode)))
    duration_h = Number(required=True, minimum=0.01, maximum=24 * 120)
    cost_per_teu = Number(required=True, maximum=1_000_000)
    co2_kg_per_teu = Number(required=True, maximum=1_000_000)
    distance_km = Number(load_default=None, allow_none=True, maximum=50_000)
    coordinates = ma.fields.List(
        ma.fields.Tuple((Number(minimum=-180, maximum=180), Number(minimum=-90, maximum=90))),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=1000),
        metadata={"description": "[lon, lat] waypoints between origin and destination"},
    )
    departures = ma.fields.List(
        ma.fields.String(validate=validate.Regexp(DEPARTURE, error="like 'mon 22:00' (UTC)")),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "weekly departures in UTC, e.g. ['mon 22:00', 'thu 06:30']"},
    )
    source = Text(load_default=None, allow_none=True, max_length=1000)


@blp.route("/nodes", methods=["GET"])
@public
@blp.arguments(NodeQuery, location="query", as_kwargs=True)
@blp.response(200, FeatureCollectionSchema)
@blp.doc(security=[{}, {"bearerAuth": []}])
def list_nodes(**filters: Any) -> dict[str, Any]:
    """Nodes as a GeoJSON FeatureCollection, filtered by kind, mode and bounding box"""
    return _collection([node_feature(n) for n in service.list_nodes(db.session, **filters)])


@blp.route("/nodes/<code>", methods=["GET"])
@public
@blp.response(200, FeatureSchema)
@blp.alt_response(404, response="NOT_FOUND")
@blp.doc(security=[{}, {"bearerAuth": []}])
def get_node(code: str) -> dict[str, Any]:
    """One node as a GeoJSON Feature"""
    return node_feature(service.get_node(db.session, code))


@blp.route("/nodes", methods=["POST"])
@roles(Role.ADMIN)
@transaction
@blp.arguments(NodeCreate)
@blp.response(201, FeatureSchema)
@blp.alt_response(409, response="CONFLICT")
def create_node(data: dict[str, Any]) -> dict[str, Any]:
    """Add a node (admin)"""
    return node_feature(service.create_node(db.session, service.NodeInput(**data)))


@blp.route("/legs", methods=["GET"])
@public
@blp.arguments(LegQuery, location="query", as_kwargs=True)
@blp.response(200, FeatureCollectionSchema)
@blp.doc(security=[{}, {"bearerAuth": []}])
def list_legs(**filters: Any) -> dict[str, Any]:
    """Legs as a GeoJSON FeatureCollection of LineStrings, filtered by mode and node"""
    return _collection([leg_feature(leg) for leg in service.list_legs(db.session, **filters)])


@blp.route("/legs", methods=["POST"])
@roles(Role.ADMIN)
@transaction
@blp.arguments(LegCreate)
@blp.response(201, FeatureSchema)
def create_leg(data: dict[str, Any]) -> dict[str, Any]:
    """Add a leg (admin); without coordinates it is drawn straight"""
    return leg_feature(service.create_leg(db.session, service.LegInput(**data)))
