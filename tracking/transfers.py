"""Transfers at a node: apply the seal rule, update the box, record the event, raise the alert, in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.orm import Session, aliased

from routing.errors import ConflictError, ForbiddenError, InvalidError, NotFoundError
from routing.models import Node
from routing.network import customs_territory
from routing.vocab import NodeKind
from tracking import iso6346, webhooks
from tracking.access import Principal
from tracking.alerts import AlertSubject, office_of, raise_alert
from tracking.chain import ChainHead, append_event
from tracking.clock import as_utc
from tracking.models import Alert, Container, Declaration, Seal, Subscription
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
    event_id: int
    number: str
    """The container's number."""
    node: str
    decision: str
    reasons: list[str]
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


# The container's row, locked for the transaction (a row lock on PostgreSQL; on SQLite the writer transaction holds
# the database lock already), with what the rule needs of its declaration, whether the node exists and whether any
# webhook subscription exists. Statements are built once: building one costs more than running it.
_CURRENT = (
    select(Container.id)
    .where(Container.number == bindparam("number"))
    .order_by(Container.is_open.desc(), Container.id.desc())
    .limit(1)
    .scalar_subquery()
)
_STATE = (
    select(
        Container.id,
        Container.number,
        Container.declaration_id,
        Container.status,
        Container.port_quarantine,
        Container.quarantine_cleared,
        Container.location,
        Container.located_since,
        Container.last_event_time,
        Container.evidence_head,
        Container.evidence_length,
        Declaration.itinerary,
        Declaration.inspection_node,
        Declaration.destination,
        Declaration.party_id,
        select(Node.code).where(Node.code == bindparam("node")).scalar_subquery().label("node_code"),
        select(Node.customs_office).where(Node.code == bindparam("node")).scalar_subquery().label("node_office"),
        exists().where(Subscription.deleted_at.is_(None)).label("subscribed"),
    )
    .join(Declaration, Declaration.id == Container.declaration_id)
    .where(Container.id == _CURRENT)
    .with_for_update(of=Container)
)
# The expected seals. A SQLite transaction reads one snapshot throughout, and its writer holds the database: there
# the seals come in the same statement, one row per seal. Under PostgreSQL's READ COMMITTED, a statement that waited
# for the row lock gets the row as the other transaction left it but still reads everything else as it was when the
# statement started, so a seal change committed meanwhile (an inspection) would be missed. Every change to a box
# appends to its evidence chain, so the statement also reads the chain's length as of its start: when that differs
# from the locked row's, the box changed while we waited, and the seals are read again (rare: only under contention).
_EXPECTED_SEALS = (
    select(Seal.normalised).where(Seal.container_id == bindparam("container_id"), Seal.expected).order_by(Seal.id)
)
_SEEN = aliased(Container, name="seen")
_STATE_LOCKED = _STATE.add_columns(
    select(func.array_agg(Seal.normalised))  # a set to the seal rule: no order needed
    .where(Seal.container_id == Container.id, Seal.expected)
    .scalar_subquery()
    .label("seals"),
    select(_SEEN.evidence_length).where(_SEEN.id == Container.id).scalar_subquery().label("seen_length"),
)
_STATE_AND_SEALS = (
    _STATE.add_columns(Seal.normalised.label("seal"))
    .outerjoin(Seal, (Seal.container_id == Container.id) & Seal.expected)
    .order_by(Seal.id)
)
_NODE = select(Node.code).where(Node.code == bindparam("node"))
_UPDATE = (
    update(Container)
    .where(Container.id == bindparam("box_id"))
    .values(
        status=bindparam("new_status"),
        location=bindparam("new_location"),
        last_event_time=bindparam("new_last_event_time"),
        evidence_head=bindparam("new_head"),
        evidence_length=bindparam("new_length"),
    )
)
_UPDATE_MOVED = _UPDATE.values(located_since=bindparam("new_located_since"))


def register_transfer(session: Session, principal: Principal, data: TransferInput, now: datetime) -> TransferResult:
    """Decide a transfer as DESIGN.md §1 says and apply it; late events are kept in the timeline by event_time.

    Plain statements on the hot path (ORM objects only for an alert or a webhook message); the session's pending
    changes are flushed first and its copy of the container, if any, is expired after the update."""
    event_time = as_utc(data.event_time)
    if event_time > now + FUTURE_TOLERANCE:
        raise InvalidError(
            "The event time is more than 10 minutes in the future.", {"event_time": ["more than 10 minutes ahead"]}
        )
    try:
        observed = [ObservedSeal(normalise_seal(n), SealCondition(c)) for n, c in data.seals]
    except ValueError as exc:
        raise InvalidError("A seal reading is not valid.", {"seals": [str(exc)]}) from None
    session.flush()
    conn = session.connection()
    params = {"number": iso6346.normalise(data.container), "node": data.node}
    one_snapshot = conn.dialect.name == "sqlite"
    rows = conn.execute(_STATE_AND_SEALS if one_snapshot else _STATE_LOCKED, params).all()
    state = rows[0] if rows else None
    known_node = state.node_code if state is not None else conn.execute(_NODE, {"node": data.node}).scalar()
    if known_node is None:
        raise NotFoundError(f"No node has the code {data.node!r}.")
    if principal.role is Role.OPERATOR and known_node not in principal.nodes:
        raise ForbiddenError(f"The node {known_node} is outside this operator's scope.")
    if state is None:
        raise NotFoundError(f"No container {data.container!r} has been declared.")
    status = ContainerStatus(state.status)
    if status.is_final:
        raise ConflictError(f"Container {state.number} is {status}, not in transit.")
    node_code: str = known_node

    entry_port = (
        first_seaport_of_entry(session, state.itinerary, customs_territory(office_of(session, state.destination) or ""))
        if state.port_quarantine
        else None
    )
    context = TransferContext(
        activity=Activity(data.activity),
        on_itinerary=node_code in state.itinerary,
        at_inspection_node=node_code == state.inspection_node,
        held=status in HOLDING_STATUSES,
        port_quarantine=state.port_quarantine,
        first_seaport_of_entry=node_code == entry_port,
        quarantine_cleared=state.quarantine_cleared,
    )
    if one_snapshot:
        expected = [row.seal for row in rows if row.seal is not None]
    elif state.seen_length == state.evidence_length:
        expected = list(state.seals or ())
    else:  # changed while this statement waited for the lock
        expected = list(conn.execute(_EXPECTED_SEALS, {"container_id": state.id}).scalars())
    decision = decide_transfer(expected, observed, context)

    new_status = str(decision.status)
    location, last_event_time = state.location, state.last_event_time
    late = last_event_time is not None and event_time < as_utc(last_event_time)
    # The stay at a node (for the dwell job) starts with the first event there and ends when the box departs.
    stay: dict[str, datetime | None] = {}
    if not late:
        location, last_event_time = node_code, event_time
        if data.activity == Activity.DEPART:
            if state.located_since is not None:
                stay["new_located_since"] = None
        elif state.location != node_code or state.located_since is None:
            stay["new_located_since"] = event_time
    reasons = [str(r) for r in decision.reasons]
    moved: dict[str, Any] = {
        "box_id": state.id,
        "new_status": new_status,
        "new_location": location,
        "new_last_event_time": last_event_time,
        **stay,
    }
    event = append_event(
        session,
        ChainHead(state.id, state.number, state.declaration_id, state.evidence_head, state.evidence_length),
        type=str(EventType.TRANSFER),
        node=node_code,
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
            "status": new_status,
            "recorded_by": principal.name,
        },
        then=_UPDATE_MOVED if stay else _UPDATE,
        then_params=moved,
    )

    if state.subscribed:
        container = session.get_one(Container, state.id, populate_existing=True)
        webhooks.enqueue_container_event(session, container, event.as_event())
    else:
        stale = session.identity_map.get(Session.identity_key(Container, state.id))
        if stale is not None:
            session.expire(stale)
    alert = None
    if decision.alert_kind is not None:
        subject = AlertSubject(
            state.id, state.number, state.party_id, location, state.inspection_node, subscribed=state.subscribed
        )
        alert = raise_alert(
            session,
            subject,
            decision.alert_kind,
            node=node_code,
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
            office=state.node_office,
            new_cause=True,
        )
    return TransferResult(event.id, state.number, node_code, str(decision.decision), reasons, alert)
