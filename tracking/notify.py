"""Tells listeners which alerts a transaction created, once it has committed (live streams wake on it)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, UOWTransaction

from tracking.models import Alert

log = logging.getLogger(__name__)
Listener = Callable[[list[int]], None]
_listeners: list[Listener] = []
_KEY = "railsea_new_alerts"


def subscribe(listener: Listener) -> None:
    """Call `listener(alert_ids)` after every commit that created alerts (in this process)."""
    if listener not in _listeners:
        _listeners.append(listener)


def unsubscribe(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _flush: UOWTransaction) -> None:
    new = [obj.id for obj in session.new if isinstance(obj, Alert)]
    if new:
        session.info.setdefault(_KEY, []).extend(new)


@event.listens_for(Session, "after_commit")
def _announce(session: Session) -> None:
    ids: list[int] = session.info.pop(_KEY, [])
    if not ids:
        return
    for listener in list(_listeners):
        try:
            listener(ids)
        except Exception:
            log.exception("alert listener failed")


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_KEY, None)
