"""Appends a container's state-changing events to its evidence chain (records + SHA-256 links)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, Update, insert
from sqlalchemy.orm import Session, make_transient_to_detached

from tracking import webhooks
from tracking.clock import rfc3339
from tracking.evidence import entry_hash
from tracking.models import Container, Event


def evidence_record(
    *,
    seq: int,
    number: str,
    declaration_id: int,
    type: str,
    node: str | None,
    event_time: datetime,
    recorded_at: datetime,
    decision: str | None = None,
    reasons: list[str] | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record an event's link hashes: everything that was decided, as plain JSON values."""
    record: dict[str, Any] = {
        "seq": seq,
        "container": number,
        "declaration_id": declaration_id,
        "type": type,
        "node": node,
        "event_time": rfc3339(event_time),
        "recorded_at": rfc3339(recorded_at),
    }
    if decision is not None:
        record["decision"] = decision
        record["reasons"] = list(reasons or [])
    record.update(data or {})
    return record


@dataclass(frozen=True, slots=True)
class ChainHead:
    """What linking a new event needs of its container: the caller read it under the container's row lock."""

    container_id: int
    number: str
    declaration_id: int
    evidence_head: str
    evidence_length: int


def _linked(
    head: ChainHead,
    *,
    type: str,
    node: str | None,
    event_time: datetime,
    recorded_at: datetime,
    decision: str | None,
    reasons: list[str] | None,
    data: dict[str, Any] | None,
) -> dict[str, Any]:
    """The columns of the container's next event: its record, and the hash linking it to the head."""
    seq = head.evidence_length + 1
    record = evidence_record(
        seq=seq,
        number=head.number,
        declaration_id=head.declaration_id,
        type=type,
        node=node,
        event_time=event_time,
        recorded_at=recorded_at,
        decision=decision,
        reasons=reasons,
        data=data,
    )
    return {
        "container_id": head.container_id,
        "seq": seq,
        "type": type,
        "node": node,
        "event_time": event_time,
        "recorded_at": recorded_at,
        "decision": decision,
        "reasons": list(reasons or []),
        "data": dict(data or {}),
        "record": record,
        "prev_hash": head.evidence_head,
        "hash": entry_hash(head.evidence_head, record),
    }


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
    head = ChainHead(
        container.id, container.number, container.declaration_id, container.evidence_head, container.evidence_length
    )
    event = Event(
        **_linked(
            head,
            type=type,
            node=node,
            event_time=event_time,
            recorded_at=recorded_at,
            decision=decision,
            reasons=reasons,
            data=data,
        )
    )
    session.add(event)
    container.evidence_head = event.hash
    container.evidence_length = event.seq
    session.flush()
    webhooks.enqueue_container_event(session, container, event)
    return event


# Its id comes back by RETURNING on PostgreSQL, from the last row id on SQLite.
_INSERT_EVENT = insert(Event)


@functools.cache
def _insert_with(then: Update) -> Executable:
    """`append_event`'s insert with a caller's statement as a CTE, built once per statement (PostgreSQL: one round
    trip for both)."""
    return _INSERT_EVENT.add_cte(then.cte("head_moved")).returning(Event.id)


@dataclass(frozen=True, slots=True)
class Appended:
    """An event stored by `append_event`: its id and columns, without the cost of an ORM object until one is
    needed (`as_event`, for a webhook message)."""

    id: int
    values: dict[str, Any]

    def as_event(self) -> Event:
        """The stored row as an Event, detached from any session."""
        event = Event(id=self.id, **self.values)
        make_transient_to_detached(event)
        return event


def append_event(
    session: Session,
    head: ChainHead,
    *,
    type: str,
    node: str | None,
    event_time: datetime,
    recorded_at: datetime,
    decision: str | None = None,
    reasons: list[str] | None = None,
    data: dict[str, Any] | None = None,
    then: Update,
    then_params: dict[str, Any],
) -> Appended:
    """`record_event` in one INSERT, for a caller that holds the container's row but no ORM object of it.

    `then` is the caller's statement that stores the new head on the container row, run with `then_params` and
    the bind parameters `new_head` and `new_length` (the new event's hash and seq): on PostgreSQL in the same
    statement as the insert (a data-modifying CTE, one round trip), elsewhere right after it. The caller writes the
    event's webhook messages (`webhooks.enqueue_container_event` with `as_event()`)."""
    values = _linked(
        head,
        type=type,
        node=node,
        event_time=event_time,
        recorded_at=recorded_at,
        decision=decision,
        reasons=reasons,
        data=data,
    )
    conn = session.connection()
    then_params = {**then_params, "new_head": values["hash"], "new_length": values["seq"]}
    if conn.dialect.name == "postgresql":
        event_id = conn.execute(_insert_with(then), {**values, **then_params}).scalar_one()
    else:
        inserted = conn.execute(_INSERT_EVENT, values).inserted_primary_key
        assert inserted is not None
        event_id = inserted[0]
        conn.execute(then, then_params)
    return Appended(event_id, values)
