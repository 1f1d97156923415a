"""Turn tracking models into the JSON shapes of the contract (API.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tracking.clock import rfc3339
from tracking.containers import open_alert_count
from tracking.models import Alert, Container, Declaration, Event, Inspection
from tracking.vocab import HOLDING_STATUSES, ContainerStatus


def seals_of(container: Container) -> list[dict[str, Any]]:
    return [{"number": s.number, "type": s.type, "source": s.source} for s in container.seals if s.expected]


def declaration(decl: Declaration) -> dict[str, Any]:
    return {
        "id": decl.id,
        "reference": decl.reference,
        "party": decl.party.code,
        "direction": decl.direction,
        "status": "open" if any(c.is_open for c in decl.containers) else "closed",
        "origin": decl.origin,
        "destination": decl.destination,
        "itinerary": list(decl.itinerary),
        "inspection_node": decl.inspection_node,
        "deadline": rfc3339(decl.deadline),
        "created_at": rfc3339(decl.created_at),
        "containers": [{"number": c.number, "status": c.status, "seals": seals_of(c)} for c in decl.containers],
    }


def container(session: Session, box: Container) -> dict[str, Any]:
    return {
        "number": box.number,
        "status": box.status,
        "declaration_id": box.declaration_id,
        "expected_seals": [s.number for s in box.seals if s.expected],
        "location": box.location,
        "held": ContainerStatus(box.status) in HOLDING_STATUSES,
        "open_alerts": open_alert_count(session, box),
    }


def event(item: Event) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": item.id,
        "type": item.type,
        "node": item.node,
        "event_time": rfc3339(item.event_time),
        "recorded_at": rfc3339(item.recorded_at),
    }
    if item.decision is not None:
        out["decision"] = item.decision
        out["reasons"] = list(item.reasons or [])
    data = dict(item.data or {})
    if "seals" in data and isinstance(data["seals"], list):
        out["seals"] = data.pop("seals")
    out["data"] = data
    return out


def alert(item: Alert) -> dict[str, Any]:
    return {
        "id": item.id,
        "kind": item.kind,
        "severity": item.severity,
        "container": item.container.number,
        "node": item.node,
        "office": item.office,
        "reasons": list(item.reasons or []),
        "status": item.status,
        "created_at": rfc3339(item.created_at),
        "detail": dict(item.detail or {}),
        "acknowledged_at": rfc3339(item.acknowledged_at),
        "resolved_at": rfc3339(item.resolved_at),
        "resolution_note": item.resolution_note,
    }


def inspection(item: Inspection, box: Container) -> dict[str, Any]:
    return {
        "id": item.id,
        "container": box.number,
        "node": item.node,
        "result": item.result,
        "status": box.status,
        "seals_applied": list(item.seals_applied),
        "agencies": list(item.agencies),
        "remarks": item.remarks,
        "created_at": rfc3339(item.created_at),
    }
