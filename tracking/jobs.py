"""Periodic jobs as plain functions `job(session, now) -> alerts raised`; each cause is alerted once."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from routing.models import Node
from tracking.alerts import raise_alert
from tracking.clock import as_utc, rfc3339
from tracking.idempotency import RETENTION, purge
from tracking.models import Container, Declaration, Device
from tracking.vocab import AlertKind

Job = Callable[[Session, datetime], int]
log = logging.getLogger(__name__)


def overdue(session: Session, now: datetime) -> int:
    """Past its declaration's deadline and not released → `overdue`, once per deadline."""
    raised = 0
    boxes = session.scalars(
        select(Container)
        .join(Declaration, Container.declaration_id == Declaration.id)
        .where(Container.is_open, Declaration.deadline < now)
    )
    for box in boxes:
        deadline = as_utc(box.declaration.deadline)
        alert = raise_alert(
            session,
            box,
            AlertKind.OVERDUE,
            node=box.location,
            now=now,
            detail={"deadline": rfc3339(deadline), "late_h": round((now - deadline).total_seconds() / 3600, 1)},
            dedupe_key=f"deadline:{rfc3339(deadline)}",
        )
        raised += alert is not None
    return raised


def telemetry_silent(session: Session, now: datetime) -> int:
    """An e-seal of an open container (declared, moving, held or awaiting its inspection) silent past its threshold →
    `telemetry_silent`, once per silence."""
    raised = 0
    rows = session.execute(
        select(Device, Container).join(Container, Device.container_id == Container.id).where(Container.is_open)
    ).all()
    for device, box in rows:
        last_seen = as_utc(device.last_seen_at)
        if now - last_seen <= timedelta(seconds=device.silent_after_s):
            continue
        alert = raise_alert(
            session,
            box,
            AlertKind.TELEMETRY_SILENT,
            node=box.here,
            now=now,
            detail={"device": device.id, "last_seen_at": rfc3339(last_seen), "silent_after_s": device.silent_after_s},
            dedupe_key=f"silent:{device.id}:{rfc3339(last_seen)}",
        )
        raised += alert is not None
    return raised


def dwell(session: Session, now: datetime) -> int:
    """At one node longer than the node's dwell limit → `dwell_exceeded`, once per stay."""
    raised = 0
    rows = session.execute(
        select(Container, Node.dwell_limit_h)
        .join(Node, Node.code == Container.location)
        .where(Container.is_open, Container.located_since.is_not(None))
    ).all()
    for box, limit_h in rows:
        since = as_utc(box.located_since)  # type: ignore[arg-type]
        if now - since <= timedelta(hours=limit_h):
            continue
        alert = raise_alert(
            session,
            box,
            AlertKind.DWELL_EXCEEDED,
            node=box.location,
            now=now,
            detail={
                "since": rfc3339(since),
                "dwell_limit_h": limit_h,
                "dwell_h": round((now - since).total_seconds() / 3600, 1),
            },
            dedupe_key=f"dwell:{box.location}:{rfc3339(since)}",
        )
        raised += alert is not None
    return raised


def idempotency(session: Session, now: datetime) -> int:
    """Forget Idempotency-Key records past their retention (raises no alert)."""
    removed = purge(session, now)
    if removed:
        log.info("forgot %d idempotency records older than %s", removed, RETENTION)
    return 0


JOBS: dict[str, Job] = {
    "overdue": overdue,
    "telemetry_silent": telemetry_silent,
    "dwell": dwell,
    "idempotency": idempotency,
}


def register(name: str, job: Job) -> None:
    """Add a job (the webhook delivery job registers itself here)."""
    JOBS[name] = job


def run(session: Session, name: str, now: datetime) -> int | None:
    """Run one job in the caller's transaction; None when another scheduler holds the job's lock (PostgreSQL)."""
    job = JOBS[name]
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"railsea-job:{name}".encode())
        if not session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key}):
            return None
    return job(session, now)
