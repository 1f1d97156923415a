"""Alerts: listed by scope, acknowledged and resolved by customs supervisors."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from api import serialise
from api.auth import principal, roles
from api.extensions import db
from api.schemas import AlertOut, AlertPage, AlertQuery, ResolveIn
from api.transaction import transaction
from tracking import alerts
from tracking.access import Principal
from tracking.clock import utcnow
from tracking.vocab import Role

blp = Blueprint("alerts", __name__, url_prefix="/api/v1", description="Alerts for customs supervisors")


def caller() -> Principal:
    who = principal()
    assert who is not None
    return who


@blp.route("/alerts", methods=["GET"])
@roles()
@blp.arguments(AlertQuery, location="query", as_kwargs=True)
@blp.response(200, AlertPage)
def index(**filters: Any) -> dict[str, Any]:
    """Alerts in the caller's scope, newest first"""
    page = alerts.list_alerts(db.session, caller(), **filters)
    return {"items": [serialise.alert(a) for a in page.items], "next_cursor": page.next_cursor}


@blp.route("/alerts/<int:alert_id>/acknowledge", methods=["POST"])
@roles(Role.SUPERVISOR, Role.ADMIN)
@transaction
@blp.response(200, AlertOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def acknowledge(alert_id: int) -> dict[str, Any]:
    """Acknowledge an alert (supervisor, admin)"""
    return serialise.alert(alerts.acknowledge(db.session, caller(), alert_id, utcnow()))


@blp.route("/alerts/<int:alert_id>/resolve", methods=["POST"])
@roles(Role.SUPERVISOR, Role.ADMIN)
@transaction
@blp.arguments(ResolveIn)
@blp.response(200, AlertOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT")
def resolve(data: dict[str, Any], alert_id: int) -> dict[str, Any]:
    """Resolve an alert with a note (supervisor, admin)"""
    return serialise.alert(alerts.resolve(db.session, caller(), alert_id, data["note"], utcnow()))
