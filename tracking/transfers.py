"""Transfers at a node: apply the seal rule, update the box, record the event, raise the alert, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from routing.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from routing.models import Node
from routing.network import customs_territory
from routing.vocab import NodeKind
from tracking import iso6346
from tracking.access import Principal
from tracking.alerts import office_of, raise_alert
from tracking.chain import record_event
from tracking.clock import as_utc
from tracking.models import Alert, Container, Event
from tracking.rules import ObservedSeal, TransferContext, decide_transfer, normalise_seal
from tracking.vocab import HOLDING_STATUSES, Activity, ContainerStatus, EventType, Role, SealCondition

FUTURE_TOLERANCE = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class TransferInput:
    container: str
    node: str
    event_time: datetime
    activity: str
    seals: Sequence[tuple[str, str]]
    from_mode: str | None = None
    to_mode: str | None = None
    vehicle: str | None = None


@dataclass(frozen=True, slots=True)
class TransferResult:
    event: Event
    container: Container
    alert: Alert | None


def lock_container(session: Session, number: str) -> Container | None:
    """The container's current row, locked for this transaction (a row lock on PostgreSQL; on SQLite the
    writer transaction already holds the database lock)."""
    return session.scalar(
        select(Container)
        .where(Container.number == number)
        .order_by(Container.is_open.desc(), Container.id.desc())
        .limit(1)
        .with_for_update(of=Container)
    )


def first_seaport_of_entry(session: Session, itinerary: Sequence[str], territory: str) -> str | None:
    """The first seaport on the itinerary inside the declaration's destination territory."""
    rows = {
        code: (kind, office)
        for code, kind, office in session.execute(
            select(Node.code, Node.kind, Node.customs_office).where(Node.code.in_(list(itinerary)))
        )
    }
    for code in itinerary:
        kind, office = rows.get(code, (None, ""))
        if kind == NodeKind.SEAPORT and customs_territory(office) == territory:
            return code
    return None


def register_transfer(session: Session, principal: Principal, data: TransferInput, now: datetime) -> TransferResult:
    """Decide a transfer as DESIGN.md §1 says and apply it; late events are kept in the timeline by event_time."""
    event_time = as_utc(data.event_time)
    if event_time > now + FUTURE_TOLERANCE:
        raise InvalidError(
            "The event time is more than 10 minutes in the future.", {"event_time": ["more than 10 minutes ahead"]}
        )
    try:
        observed = [ObservedSeal(normalise_seal(n), SealCondition(c)) for n, c in data.seals]
    except ValueError as exc:
        raise InvalidError("A seal reading is not valid.", {"seals": [str(exc)]}) from None
    node = session.scalar(select(Node).where(Node.code == data.node))
    if node is None:
        raise NotFoundError(f"No node has the code {data.node!r}.")
    if principal.role is Role.OPERATOR and node.code not in principal.nodes:
        raise ForbiddenError(f"The node {node.code} is outside this operator's scope.")
    container = lock_container(session, iso6346.normalise(data.container))
    if container is None:
        raise NotFoundError(f"No container {data.container!r} has been declared.")
    status = ContainerStatus(container.status)
    if status.is_final:
        raise ConflictError(f"Container {container.number} is {status}, not in transit.")

    declaration = container.declaration
    entry_port = (
        first_seaport_of_entry(
            session, declaration.itinerary, customs_territory(office_of(session, declaration.destination) or "")
        )
        if container.port_quarantine
        else None
    )
    context = TransferContext(
        activity=Activity(data.activity),
        on_itinerary=node.code in declaration.itinerary,
        at_inspection_node=node.code == declaration.inspection_node,
        held=status in HOLDING_STATUSES,
        port_quarantine=container.port_quarantine,
        first_seaport_of_entry=node.code == entry_port,
        quarantine_cleared=container.quarantine_cleared,
    )
    expected = [s.normalised for s in container.seals if s.expected]
    decision = decide_transfer(expected, observed, context)

    container.status = str(decision.status)
    is_latest = container.last_event_time is None or event_time >= as_utc(container.last_event_time)
    if is_latest:
        if container.location != node.code:
            container.located_since = event_time
        container.location = node.code
        container.last_event_time = event_time
    reasons = [str(r) for r in decision.reasons]
    event = record_event(
        session,
        container,
        type=str(EventType.TRANSFER),
        node=node.code,
        event_time=event_time,
        recorded_at=now,
        decision=str(decision.decision),
        reasons=reasons,
        data={
            "activity": data.activity,
            "from_mode": data.from_mode,
            "to_mode": data.to_mode,
            "vehicle": data.vehicle,
            "seals": [{"number": s.number, "condition": str(s.condition)} for s in observed],
            "status": container.status,
            "recorded_by": principal.name,
        },
    )
    alert = None
    if decision.alert_kind is not None:
        alert = raise_alert(
            session,
            container,
            decision.alert_kind,
            node=node.code,
            now=now,
            reasons=reasons,
            detail={
                "event_id": event.id,
                "activity": data.activity,
                "missing": list(decision.seals.missing),
                "broken": list(decision.seals.broken),
                "unexpected": list(decision.seals.unexpected),
            },
            dedupe_key=f"event:{event.id}",
        )
    return TransferResult(event, container, alert)
