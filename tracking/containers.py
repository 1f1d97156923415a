"""Reading a container: its state, timeline (by event time), track, and evidence chain."""

from __future__ import annotations

from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from routing.errors import NotFoundError
from routing.models import Node
from tracking.access import Principal
from tracking.evidence import verify_chain
from tracking.models import Alert, Container, Event
from tracking.scope import containers_visible
from tracking.vocab import UNRESOLVED_ALERT_STATUSES


def get_container(session: Session, principal: Principal, number: str) -> Container:
    """The container's current row (its open declaration's, else the latest), if the caller may see it."""
    container = session.scalar(
        select(Container)
        .where(Container.number == number.strip().upper(), containers_visible(principal))
        .order_by(Container.is_open.desc(), Container.id.desc())
        .limit(1)
    )
    if container is None:
        raise NotFoundError(f"No container {number!r}.")
    return container


def open_alert_count(session: Session, container: Container) -> int:
    return (
        session.scalar(
            select(func.count(Alert.id)).where(
                Alert.container_id == container.id, Alert.status.in_([str(s) for s in UNRESOLVED_ALERT_STATUSES])
            )
        )
        or 0
    )


def timeline(session: Session, container: Container) -> list[Event]:
    """Events ordered by when they happened (a scanner's late upload lands in its place), then as recorded."""
    return list(
        session.scalars(select(Event).where(Event.container_id == container.id).order_by(Event.event_time, Event.seq))
    )


def evidence(session: Session, container: Container) -> dict[str, Any]:
    entries = [
        {"record": e.record, "prev_hash": e.prev_hash, "hash": e.hash}
        for e in session.scalars(select(Event).where(Event.container_id == container.id).order_by(Event.seq))
    ]
    result = verify_chain(entries)
    return {"valid": result.valid and result.head == container.evidence_head, "head": result.head, "entries": entries}


def track(session: Session, container: Container) -> dict[str, Any]:
    """GeoJSON: the visited nodes in order of event time, as points and as one line."""
    visited: list[str] = []
    for event in timeline(session, container):
        if event.node and (not visited or visited[-1] != event.node):
            visited.append(event.node)
    points = {
        code: to_shape(geom)
        for code, geom in session.execute(select(Node.code, Node.geom).where(Node.code.in_(visited)))
    }
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "id": f"{i}:{code}",
            "geometry": {"type": "Point", "coordinates": [points[code].x, points[code].y]},  # type: ignore[attr-defined]
            "properties": {"kind": "visit", "node": code, "order": i},
        }
        for i, code in enumerate(visited)
        if code in points
    ]
    if len(visited) > 1:
        features.append(
            {
                "type": "Feature",
                "id": "path",
                "geometry": {
                    "type": "LineString",
                    "coordinates": [[points[c].x, points[c].y] for c in visited if c in points],  # type: ignore[attr-defined]
                },
                "properties": {"kind": "path"},
            }
        )
    return {"type": "FeatureCollection", "features": features}
