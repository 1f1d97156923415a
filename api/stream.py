"""Live alerts as Server-Sent Events in commit order: replayed from the database after `Last-Event-ID`, woken by new
alerts (through Redis pub/sub across workers when `REDIS_URL` is set, in-process otherwise)."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, request, stream_with_context
from flask_smorest import Blueprint
from sqlalchemy import func, select

from api import serialise
from api.auth import principal, roles
from api.extensions import db
from tracking import notify
from tracking.access import Principal
from tracking.models import Alert
from tracking.pagination import MAX_ID
from tracking.scope import alerts_visible

log = logging.getLogger(__name__)
blp = Blueprint("stream", __name__, url_prefix="/api/v1", description="Live alerts")
CHANNEL = "railsea:alerts"
# Alerts read per database look; a reconnect after a long gap replays its backlog in such batches.
REPLAY_BATCH = 500


class Publisher:
    """Announces committed alerts on Redis from whichever process commits them: every API worker, whether or not it
    serves a stream, and the scheduler. The client is made in the process that publishes, never across a fork."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()

    def __call__(self, alert_ids: list[int]) -> None:
        try:
            self._connection().publish(CHANNEL, json.dumps(alert_ids))
        except Exception:
            log.exception("publishing to Redis failed; streams find the alerts at their next database look")

    def _connection(self) -> Any:
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                import redis

                self._client = redis.Redis.from_url(self.url)
                self._pid = os.getpid()
            return self._client


_publishers: dict[str, Publisher] = {}


def announce_alerts(app: Flask) -> None:
    """With `REDIS_URL`, publish every committed alert (one publisher per URL and process, however many apps)."""
    url = app.config.get("REDIS_URL")
    if url:
        notify.subscribe(_publishers.setdefault(url, Publisher(url)))


class Broker:
    """Wakes this process's streams when alerts are committed here, and with Redis when any process commits some."""

    def __init__(self, redis_url: str | None) -> None:
        self._changed = threading.Condition()
        self._generation = 0
        self._redis: Any = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url)
            threading.Thread(target=self._listen, name="railsea-alerts-redis", daemon=True).start()
        notify.subscribe(self.committed)

    @property
    def generation(self) -> int:
        return self._generation

    def committed(self, alert_ids: list[int]) -> None:
        self.wake()

    def wake(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def wait(self, generation: int, timeout: float) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self._generation != generation, timeout)
            return self._generation

    def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        self.wake()
            except Exception:
                log.exception("Redis subscription lost; retrying")
                time.sleep(1.0)


def broker(app: Flask) -> Broker:
    found: Broker | None = app.extensions.get("railsea_broker")
    if found is None:
        with _lock:
            found = app.extensions.get("railsea_broker")
            if found is None:
                found = Broker(app.config.get("REDIS_URL"))
                app.extensions["railsea_broker"] = found
    return found


_lock = threading.Lock()


def _after(app: Flask, who: Principal, last_seq: int) -> list[tuple[int, dict[str, Any]]]:
    """Alerts in scope after stream position `last_seq`, in commit order, with their positions, from a short read
    transaction (a stream never holds one open)."""
    with db.new_session(write=False, app=app) as session:
        rows = session.scalars(
            select(Alert)
            .where(Alert.stream_seq > last_seq, alerts_visible(who))
            .order_by(Alert.stream_seq)
            .limit(REPLAY_BATCH)
        ).all()
        return [(a.stream_seq, serialise.alert(a)) for a in rows if a.stream_seq is not None]


def _position(app: Flask, who: Principal, last_id: int) -> int:
    """The stream position to resume after, for a client whose last event was alert `last_id` (0: from the start).

    Alerts are streamed in commit order, which on PostgreSQL is not id order: resuming after the id itself would skip
    an alert with a lower id committed later."""
    if last_id <= 0:
        return 0
    with db.new_session(write=False, app=app) as session:
        if last_id <= MAX_ID:
            seen = session.scalar(select(Alert.stream_seq).where(Alert.id == last_id, alerts_visible(who)))
            if seen is not None:
                return seen
            # An id the caller cannot see resumes, as it always has, with the alerts whose ids follow it: from the
            # first of them to commit.
            first = session.scalar(select(func.min(Alert.stream_seq)).where(Alert.id > last_id))
            if first is not None:
                return first - 1
        # No alert follows it yet: the stream starts with the next alert to commit.
        return session.scalar(select(func.max(Alert.stream_seq))) or 0


def _events(app: Flask, who: Principal, last_seq: int) -> Iterator[str]:
    hub = broker(app)
    keepalive_s = float(app.config["SSE_KEEPALIVE_S"])
    poll_s = float(app.config["SSE_POLL_S"])
    # The worker's pid in a comment helps tell which process holds a stream (clients ignore comments).
    yield f"retry: 2000\n: worker {os.getpid()}\n\n"
    generation = hub.generation
    clock = time.monotonic
    next_look = clock()
    next_beat = clock() + keepalive_s
    while True:
        if clock() >= next_look:
            batch = _after(app, who, last_seq)
            for seq, alert in batch:
                last_seq = seq
                yield f"event: alert\nid: {alert['id']}\ndata: {json.dumps(alert)}\n\n"
            # A full batch means more are waiting (a replay after a long gap): look again at once, not at the poll.
            next_look = clock() if len(batch) >= REPLAY_BATCH else clock() + poll_s
        if clock() >= next_beat:
            yield ": keep-alive\n\n"
            next_beat = clock() + keepalive_s
        woken = hub.wait(generation, max(0.0, min(next_look, next_beat) - clock()))
        if woken != generation:
            # New alerts were committed somewhere: look now rather than at the next poll.
            generation, next_look = woken, clock()


@blp.route("/alerts/stream", methods=["GET"])
@roles()
@blp.doc(
    responses={"200": {"description": "text/event-stream of `alert` events", "content": {"text/event-stream": {}}}}
)
def stream() -> Response:
    """Alerts in the caller's scope as they are raised (Server-Sent Events; resume with Last-Event-ID)"""
    who = principal()
    assert who is not None
    # The stream outlives the request's session: give its connection back now.
    db.session.close()
    raw = request.headers.get("Last-Event-ID") or request.args.get("last_event_id") or "0"
    last_id = int(raw) if raw.isascii() and raw.isdigit() else 0
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    last_seq = _position(app, who, last_id)
    response = Response(stream_with_context(_events(app, who, last_seq)), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response
