"""The scheduler process: APScheduler 3 runs each periodic job on its own interval, one transaction per run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from apscheduler.schedulers.blocking import BlockingScheduler
from sqlalchemy.orm import Session

from tracking import jobs
from tracking.clock import utcnow

log = logging.getLogger(__name__)

DEFAULT_INTERVALS_S: dict[str, int] = {
    "overdue": 60,
    "telemetry_silent": 60,
    "dwell": 300,
    "webhooks": 10,
    "idempotency": 3600,
}


def run_once(sessions: Callable[[], Session], name: str) -> int | None:
    with sessions() as session:
        raised = jobs.run(session, name, utcnow())
        session.commit()
    if raised:
        log.info("job %s raised %d alerts", name, raised)
    return raised


def build(sessions: Callable[[], Session], intervals: Mapping[str, int] | None = None) -> BlockingScheduler:
    """A scheduler with every registered job; never start one inside web workers (each would run every job)."""
    scheduler = BlockingScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    chosen = {**DEFAULT_INTERVALS_S, **(intervals or {})}
    for name in jobs.JOBS:
        scheduler.add_job(
            run_once,
            "interval",
            seconds=chosen.get(name, 60),
            args=[sessions, name],
            id=name,
            name=name,
            next_run_time=utcnow(),
        )
    return scheduler
