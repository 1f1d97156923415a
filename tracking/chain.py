"""Appends a container's state-changing events to its evidence chain (records + SHA-256 links)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from tracking import webhooks
from tracking.clock import rfc3339
from tracking.evidence import entry_hash
from tracking.models import Container, Event


def record_event(
    session: Session,
    container: Container,
    *,
    type: str,
    node: str | None,
    event_time: datetime,
    recorded_at: datetime,
    decision: str | None = None,
    reasons: list[str] | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    """Store an event and chain it: the record holds everything that was decided, as plain JSON values."""
    seq = container.evidence_length + 1
    record: dict[str, Any] = {
        "seq": seq,
        "container": container.number,
        "declaration_id": container.declaration_id,
        "type": type,
        "node": node,
        "event_time": rfc3339(event_time),
        "recorded_at": rfc3339(recorded_at),
    }
    if decision is not None:
        record["decision"] = decision
        record["reasons"] = list(reasons or [])
    record.update(data or {})
    prev_hash = container.evidence_head
    digest = entry_hash(prev_hash, record)
    event = Event(
        container_id=container.id,
        seq=seq,
        type=type,
        node=node,
        event_time=event_time,
        recorded_at=recorded_at,
        decision=decision,
        reasons=list(reasons or []),
        data=dict(data or {}),
        record=record,
        prev_hash=prev_hash,
        hash=digest,
    )
    session.add(event)
    container.evidence_head = digest
    container.evidence_length = seq
    session.flush()
    webhooks.enqueue_container_event(session, container, event)
    return event
