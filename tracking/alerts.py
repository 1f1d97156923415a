"""Alerts for customs supervisors: raised once per cause, listed by scope, acknowledged and resolved."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from routing.errors import ConflictError, ForbiddenError, NotFoundError
from routing.models import Node
from tracking import iso6346, notify  # noqa: F401 - notify announces committed alerts to live streams
from tracking.access import Principal
from tracking.models import Alert, Container
from tracking.pagination import MAX_ID, Page, paginate
from tracking.scope import alerts_visible
from tracking.vocab import AlertKind, AlertStatus, Role

# Built once: asked for every alert a transfer raises (building a statement costs more than running it).
_OFFICE = select(Node.customs_office).where(Node.code == bindparam("node"))
_RAISED = select(Alert.id).where(
    Alert.container_id == bindparam("container_id"),
    Alert.kind == bindparam("kind"),
    Alert.dedupe_key == bindparam("key"),
)


def office_of(session: Session, node: str | None) -> str | None:
    if node is None:
        return None
    return session.scalar(_OFFICE, {"node": node})


@dataclass(frozen=True, slots=True)
class AlertSubject:
    """What raising an alert needs of its container (a caller holding the row's columns needs no ORM object)."""

    container_id: int
    number: str
    party_id: int
    location: str | None
    inspection_node: str
    subscribed: bool = True
    """False when the caller knows that no webhook subscription exists (nothing to enqueue, nothing to look up)."""

    @classmethod
    def of(cls, container: Container) -> AlertSubject:
        declaration = container.declaration
        return cls(
            container.id, container.number, declaration.party_id, container.location, declaration.inspection_node
        )


_UNKNOWN = object()


def raise_alert(
    session: Session,
    container: Container | AlertSubject,
    kind: AlertKind,
    *,
    node: str | None,
    now: datetime,
    reasons: Sequence[str] = (),
    detail: dict[str, Any] | None = None,
    dedupe_key: str,
    office: Any = _UNKNOWN,
    new_cause: bool = False,
) -> Alert | None:
    """Raise an alert for the supervisors of the node's office; None when this cause was raised already.

    `office`: the customs office of `node`, when the caller has it; `new_cause`: the caller knows the dedupe key
    is new (it names a row created in this transaction), so there is nothing to look up."""
    subject = container if isinstance(container, AlertSubject) else AlertSubject.of(container)
    if not new_cause:
        existing = session.scalar(_RAISED, {"container_id": subject.container_id, "kind": str(kind), "key": dedupe_key})
        if existing is not None:
            return None
    office_node = node or subject.location or subject.inspection_node
    alert = Alert(
        kind=str(kind),
        severity=str(kind.severity),
        container_id=subject.container_id,
        party_id=subject.party_id,
        node=node,
        office=office_of(session, office_node) if office is _UNKNOWN or office_node != node else office,
        reasons=[str(r) for r in reasons],
        detail=detail or {},
        status=str(AlertStatus.OPEN),
        dedupe_key=dedupe_key,
        created_at=now,
    )
    session.add(alert)
    session.flush()
    if subject.subscribed:
        # Imported here: tracking.webhooks registers its job in tracking.jobs, which imports this module.
        from tracking import webhooks

        webhooks.enqueue_alert(session, subject.number, alert)
    return alert


def list_alerts(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    kind: str | None = None,
    container: str | None = None,
    limit: int,
    cursor: str | None = None,
) -> Page[Alert]:
    query = select(Alert).where(alerts_visible(principal))
    if status:
        query = query.where(Alert.status == status)
    if kind:
        query = query.where(Alert.kind == kind)
    if container:
        query = query.join(Container, Alert.container_id == Container.id).where(
            Container.number == iso6346.normalise(container)
        )
    return paginate(session, query, Alert.id, limit=limit, cursor=cursor)


def _for_update(session: Session, principal: Principal, alert_id: int) -> Alert:
    if not 0 < alert_id <= MAX_ID:
        raise NotFoundError(f"No alert {alert_id}.")
    alert = session.scalar(
        select(Alert).where(Alert.id == alert_id, alerts_visible(principal)).with_for_update(of=Alert)
    )
    if alert is None:
        raise NotFoundError(f"No alert {alert_id}.")
    if principal.role not in (Role.ADMIN, Role.SUPERVISOR):
        raise ForbiddenError("Only customs supervisors acknowledge or resolve alerts.")
    return alert


def acknowledge(session: Session, principal: Principal, alert_id: int, now: datetime) -> Alert:
    alert = _for_update(session, principal, alert_id)
    if alert.status == AlertStatus.RESOLVED:
        raise ConflictError(f"Alert {alert_id} is resolved already.")
    if alert.status == AlertStatus.OPEN:
        alert.status = str(AlertStatus.ACKNOWLEDGED)
        alert.acknowledged_at = now
        alert.acknowledged_by = principal.name
    return alert


def resolve(session: Session, principal: Principal, alert_id: int, note: str, now: datetime) -> Alert:
    alert = _for_update(session, principal, alert_id)
    if alert.status == AlertStatus.RESOLVED:
        raise ConflictError(f"Alert {alert_id} is resolved already.")
    alert.status = str(AlertStatus.RESOLVED)
    alert.resolved_at = now
    alert.resolved_by = principal.name
    alert.resolution_note = note
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by = now, principal.name
    return alert


def resolve_for_container(session: Session, container: Container, note: str, by: str, now: datetime) -> None:
    """An inspection settles the container's open alerts."""
    for alert in session.scalars(
        select(Alert).where(Alert.container_id == container.id, Alert.status != str(AlertStatus.RESOLVED))
    ):
        alert.status = str(AlertStatus.RESOLVED)
        alert.resolved_at, alert.resolved_by, alert.resolution_note = now, by, note
