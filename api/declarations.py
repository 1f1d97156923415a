"""Declare once: forwarders declare a consignment; everyone in scope reads it, and its containers."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api import serialise
from api.auth import principal, roles
from api.extensions import db
from api.fields import FeatureCollectionSchema
from api.schemas import (
    ContainerOut,
    ContainerPage,
    ContainerQuery,
    DeclarationIn,
    DeclarationOut,
    DeclarationPage,
    EventList,
    EvidenceOut,
    Paging,
)
from api.transaction import transaction
from tracking import containers as boxes
from tracking.access import Principal
from tracking.clock import utcnow
from tracking.declarations import (
    ContainerInput,
    DeclarationInput,
    SealInput,
    declare,
    get_declaration,
    list_declarations,
)
from tracking.vocab import Role

blp = Blueprint("declarations", __name__, url_prefix="/api/v1", description="Declarations and containers")


def caller() -> Principal:
    who = principal()
    assert who is not None
    return who


@blp.route("/declarations", methods=["POST"])
@roles(Role.FORWARDER, Role.ADMIN)
@transaction
@blp.arguments(DeclarationIn)
@blp.response(201, DeclarationOut)
@blp.alt_response(409, response="CONFLICT")
def create(data: dict[str, Any]) -> dict[str, Any]:
    """Declare a consignment once (forwarder, admin); all or nothing"""
    containers = [
        ContainerInput(
            number=c["number"],
            seals=[SealInput(s["number"], s["type"], s["source"]) for s in c["seals"]],
            goods={k: v for k, v in (c["goods"] or {}).items() if v is not None},
            port_quarantine=c["port_quarantine"],
        )
        for c in data.pop("containers")
    ]
    declaration = declare(db.session, caller(), DeclarationInput(containers=containers, **data), utcnow())
    return serialise.declaration(declaration)


@blp.route("/declarations", methods=["GET"])
@roles()
@blp.arguments(Paging, location="query", as_kwargs=True)
@blp.response(200, DeclarationPage)
def index(limit: int, cursor: str | None) -> dict[str, Any]:
    """Declarations in the caller's scope, newest first"""
    page = list_declarations(db.session, caller(), limit=limit, cursor=cursor)
    return {"items": [serialise.declaration(d) for d in page.items], "next_cursor": page.next_cursor}


@blp.route("/declarations/<int:declaration_id>", methods=["GET"])
@roles()
@blp.response(200, DeclarationOut)
@blp.alt_response(404, response="NOT_FOUND")
def show(declaration_id: int) -> dict[str, Any]:
    """One declaration"""
    return serialise.declaration(get_declaration(db.session, caller(), declaration_id))


@blp.route("/containers", methods=["GET"])
@roles()
@blp.arguments(ContainerQuery, location="query", as_kwargs=True)
@blp.response(200, ContainerPage)
def containers(status: str | None, limit: int, cursor: str | None) -> dict[str, Any]:
    """Containers in the caller's scope with their latest known position, newest first (the dashboard's map)"""
    session = db.session
    page = boxes.list_containers(session, caller(), status=status, limit=limit, cursor=cursor)
    positions = boxes.latest_positions(session, list(page.items))
    items = []
    for box in page.items:
        item = serialise.container(session, box)
        position = positions.get(box.id)
        item["position"] = {"type": "Point", "coordinates": list(position)} if position else None
        items.append(item)
    return {"items": items, "next_cursor": page.next_cursor}


@blp.route("/containers/<number>", methods=["GET"])
@roles()
@blp.response(200, ContainerOut)
@blp.alt_response(404, response="NOT_FOUND")
def container(number: str) -> dict[str, Any]:
    """A container's state: status, expected seals, location, hold and open alerts"""
    session = db.session
    return serialise.container(session, boxes.get_container(session, caller(), number))


@blp.route("/containers/<number>/events", methods=["GET"])
@roles()
@blp.response(200, EventList)
@blp.alt_response(404, response="NOT_FOUND")
def events(number: str) -> dict[str, Any]:
    """A container's timeline, ordered by event time"""
    session = db.session
    box = boxes.get_container(session, caller(), number)
    return {"items": [serialise.event(e) for e in boxes.timeline(session, box)]}


@blp.route("/containers/<number>/track", methods=["GET"])
@roles()
@blp.response(200, FeatureCollectionSchema)
@blp.alt_response(404, response="NOT_FOUND")
def track(number: str) -> dict[str, Any]:
    """Where a container has been, as GeoJSON"""
    session = db.session
    return boxes.track(session, boxes.get_container(session, caller(), number))


@blp.route("/containers/<number>/evidence", methods=["GET"])
@roles()
@blp.response(200, EvidenceOut)
@blp.alt_response(404, response="NOT_FOUND")
def evidence(number: str) -> dict[str, Any]:
    """The container's evidence chain: records, SHA-256 links and whether they verify"""
    session = db.session
    return boxes.evidence(session, boxes.get_container(session, caller(), number))
