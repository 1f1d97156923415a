"""What happens at nodes: operators register transfers, supervisors inspect."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint

from api import serialise
from api.auth import principal, roles
from api.extensions import db
from api.schemas import InspectionIn, InspectionOut, TransferIn, TransferOut
from api.transaction import transaction
from tracking.clock import utcnow
from tracking.inspections import InspectionInput, inspect
from tracking.models import Container
from tracking.transfers import TransferInput, register_transfer
from tracking.vocab import Role

blp = Blueprint("operations", __name__, url_prefix="/api/v1", description="Transfers and inspections")


@blp.route("/transfers", methods=["POST"])
@roles(Role.OPERATOR, Role.ADMIN)
@transaction
@blp.arguments(TransferIn())
@blp.response(201, TransferOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def transfer(data: dict[str, Any]) -> tuple[Response, int]:
    """Register a transfer at a node with the seals read (operator of that node, admin)"""
    who = principal()
    assert who is not None
    data["seals"] = [(s["number"], s["condition"]) for s in data["seals"]]
    result = register_transfer(db.session, who, TransferInput(**data), utcnow())
    # TransferOut's fields, in its order, as JSON values already: no second pass through the schema.
    body = {
        "id": result.event_id,
        "container": result.number,
        "node": result.node,
        "decision": result.decision,
        "reasons": result.reasons,
        "alert_id": result.alert.id if result.alert else None,
    }
    return jsonify(body), 201


@blp.route("/inspections", methods=["POST"])
@roles(Role.SUPERVISOR, Role.ADMIN)
@transaction
@blp.arguments(InspectionIn)
@blp.response(201, InspectionOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def inspection(data: dict[str, Any]) -> dict[str, Any]:
    """Record the one inspection: cleared or refused (supervisor of the node's office, admin)"""
    who = principal()
    assert who is not None
    data["seals_applied"] = [(s["number"], s["type"]) for s in data["seals_applied"]]
    session = db.session
    result = inspect(session, who, InspectionInput(**data), utcnow())
    return serialise.inspection(result, session.get_one(Container, result.container_id))
