"""Reading a container: its state, timeline (by event time), track, and evidence chain."""

from __future__ import annotations

from typing import Any

from geoalchemy2.shape import to_shape
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from routing.errors import NotFoundError
from routing.models import Node
from tracking import iso6346
from tracking.access import Principal
from tracking.clock import rfc3339
from tracking.evidence import verify_chain
from tracking.models import Alert, Container, Event, Reading
from tracking.pagination import Page, paginate
from tracking.scope import containers_visible
from tracking.vocab import UNRESOLVED_ALERT_STATUSES


def get_container(session: Session, principal: Principal, number: str) -> Container:
    """The container's current row (its open declaration's, else the latest), if the caller may see it."""
    container = session.scalar(
        select(Container)
        .where(Container.number == iso6346.normalise(number), containers_visible(principal))
        .order_by(Container.is_open.desc(), Container.id.desc())
        .limit(1)
    )
    if container is None:
        raise NotFoundError(f"No container {number!r}.")
    return container


def list_containers(
    session: Session, principal: Principal, *, status: str | None, limit: int, cursor: str | None
) -> Page[Container]:
    """Containers in scope, newest first (a number declared again appears once per declaration)."""
    query = select(Container).where(containers_visible(principal))
    if status:
        query = query.where(Container.status == status)
    return paginate(session, query, Container.id, limit=limit, cursor=cursor)


def latest_positions(session: Session, containers: list[Container]) -> dict[int, tuple[float, float]]:
    """Where each container was last seen: its latest e-seal reading, else the node it was last at."""
    ids = [c.id for c in containers]
    positions: dict[int, tuple[float, float]] = {}
    if not ids:
        return positions
    latest = (
        select(Reading.container_id, func.max(Reading.time).label("time"))
        .where(Reading.container_id.in_(ids))
        .group_by(Reading.container_id)
        .subquery()
    )
    for container_id, lon, lat in session.execute(
        select(Reading.container_id, Reading.lon, Reading.lat).join(
            latest, (Reading.container_id == latest.c.container_id) & (Reading.time == latest.c.time)
        )
    ):
        positions[container_id] = (lon, lat)
    codes = {c.location for c in containers if c.location and c.id not in positions}
    if codes:
        points = {
            code: to_shape(geom)
            for code, geom in session.execute(select(Node.code, Node.geom).where(Node.code.in_(codes)))
        }
        for c in containers:
            if c.id not in positions and c.location in points:
                point = points[c.location]
                positions[c.id] = (point.x, point.y)  # type: ignore[attr-defined]
    return positions


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
    readings = session.execute(
        select(Reading.time, Reading.lon, Reading.lat, Reading.sealed, Reading.device)
        .where(Reading.container_id == container.id)
        .order_by(Reading.time)
    ).all()
    features.extend(
        {
            "type": "Feature",
            "id": f"reading:{i}",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"kind": "telemetry", "time": rfc3339(time), "sealed": sealed, "device": device},
        }
        for i, (time, lon, lat, sealed, device) in enumerate(readings)
    )
    return {"type": "FeatureCollection", "features": features}
