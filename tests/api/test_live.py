"""Live supervision through the API: e-seal telemetry, periodic jobs raising each alert once, the alert stream."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from api import create_app, stream
from api.extensions import db
from tests.api.helpers import Actors, actors, box, container_number, declare, iso, now, transfer
from tests.conftest import ADMIN_TOKEN, TestDatabase
from tracking import jobs, notify
from tracking.access import ADMIN
from tracking.models import Alert, Reading
from tracking.transfers import TransferInput, register_transfer

NANSHA = (113.67, 22.65)
XIAMEN = (118.07, 24.45)


@pytest.fixture(autouse=True)
def quick_streams(app: Flask) -> None:
    # Keep-alives every half second let a test's reader stop on time.
    app.config.update(SSE_KEEPALIVE_S=0.5, SSE_POLL_S=0.5)


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


@pytest.fixture
def number(client: FlaskClient, people: Actors) -> str:
    box = container_number(1)
    assert declare(client, people.forwarder).status_code == 201
    return box


def reading(
    number: str, *, at: tuple[float, float] = NANSHA, sealed: bool = True, minutes_ago: int = 5, **extra: Any
) -> dict[str, Any]:
    lon, lat = at
    return {
        "device": "ESEAL-1",
        "container": number,
        "time": iso(now() - timedelta(minutes=minutes_ago)),
        "lat": lat,
        "lon": lon,
        "sealed": sealed,
        "battery_pct": 88,
        **extra,
    }


def post_readings(client: FlaskClient, token: dict[str, str], batch: list[Any]) -> dict[str, Any]:
    response = client.post("/api/v1/telemetry", json={"readings": batch}, headers=token)
    assert response.status_code == 202, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def alerts_of(client: FlaskClient, token: dict[str, str], **query: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/alerts", query_string=query, headers=token)
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.get_json()["items"]
    return items


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_a_batch_with_one_bad_reading_stores_the_others(
    app: Flask, client: FlaskClient, people: Actors, number: str
) -> None:
    batch = [reading(number, minutes_ago=m) for m in (9, 8, 7)]
    batch.insert(1, reading(number, lat=123.0))
    batch.append({"device": "ESEAL-1", "container": "NOTABOX", "time": "yesterday"})
    body = post_readings(client, people.operator, batch)
    assert body["accepted"] == 3
    assert [r["index"] for r in body["rejected"]] == [1, 4]
    assert "lat" in body["rejected"][0]["errors"]
    assert {"container", "time", "lat", "lon", "sealed"} <= set(body["rejected"][1]["errors"])
    assert count(app, Reading) == 3
    track = client.get(f"/api/v1/containers/{number}/track", headers=people.forwarder).get_json()
    assert sum(f["properties"]["kind"] == "telemetry" for f in track["features"]) == 3
    assert alerts_of(client, people.supervisor) == []


def test_a_tamper_reading_holds_the_box_and_alerts_once(client: FlaskClient, people: Actors, number: str) -> None:
    post_readings(client, people.operator, [reading(number, sealed=False, minutes_ago=3)])
    post_readings(client, people.operator, [reading(number, sealed=False, minutes_ago=2)])
    state = client.get(f"/api/v1/containers/{number}", headers=people.forwarder).get_json()
    assert state["status"] == "held"
    assert state["held"] is True
    tamper = alerts_of(client, people.supervisor, kind="eseal_tamper")
    assert len(tamper) == 1
    assert tamper[0]["container"] == number
    assert tamper[0]["severity"] == "critical"
    # A held box that moves is a further alert, and the evidence chain records the tamper.
    assert transfer(client, people.operator, container=number, node="HKHKG").get_json()["decision"] == "hold"
    evidence = client.get(f"/api/v1/containers/{number}/evidence", headers=people.forwarder).get_json()
    assert evidence["valid"] is True
    assert "eseal_tamper" in [e["record"]["type"] for e in evidence["entries"]]


def test_a_position_off_the_corridor_alerts(client: FlaskClient, people: Actors, number: str) -> None:
    post_readings(client, people.operator, [reading(number, at=NANSHA)])
    assert alerts_of(client, people.supervisor, kind="corridor_deviation") == []
    post_readings(client, people.operator, [reading(number, at=XIAMEN, minutes_ago=1)])
    (alert,) = alerts_of(client, people.supervisor, kind="corridor_deviation")
    assert alert["detail"]["distance_km"] > 25
    assert client.get(f"/api/v1/containers/{number}", headers=people.forwarder).get_json()["status"] == "declared"


def test_telemetry_needs_an_operator_in_scope(client: FlaskClient, people: Actors, number: str) -> None:
    assert (
        client.post("/api/v1/telemetry", json={"readings": [reading(number)]}, headers=people.forwarder).status_code
        == 403
    )
    too_many = {"readings": [reading(number)] * 1001}
    assert client.post("/api/v1/telemetry", json=too_many, headers=people.operator).status_code == 422


@pytest.mark.parametrize("job", ["overdue", "dwell", "telemetry_silent"])
def test_jobs_raise_each_alert_once(
    app: Flask, client: FlaskClient, admin: dict, people: Actors, number: str, job: str
) -> None:
    post_readings(client, people.operator, [reading(number, minutes_ago=10)])
    transfer(client, people.operator, container=number, node="HKHKG")
    later = now() + timedelta(days=30)
    with app.app_context():
        runs = []
        for _ in range(3):
            session = db.new_session()
            runs.append(jobs.run(session, job, later))
            session.commit()
            session.close()
    kind = {"overdue": "overdue", "dwell": "dwell_exceeded", "telemetry_silent": "telemetry_silent"}[job]
    assert runs == [1, 0, 0]
    assert len(alerts_of(client, people.supervisor, kind=kind)) == 1
    response = client.post(f"/api/v1/jobs/{job}/run", headers=admin)
    assert response.get_json() == {"name": job, "alerts_raised": 0}


def test_a_box_that_departed_is_not_dwelling(app: Flask, client: FlaskClient, people: Actors, number: str) -> None:
    """The stay at a node ends when the box departs: a box travelling for days is not `dwell_exceeded` there."""
    transfer(client, people.operator, container=number, node="HKHKG", event_time=iso(now() - timedelta(hours=2)))
    transfer(client, people.operator, container=number, node="HKHKG", activity="depart")
    later = now() + timedelta(days=30)

    def dwell() -> int | None:
        with app.app_context():
            session = db.new_session()
            raised = jobs.run(session, "dwell", later)
            session.commit()
            session.close()
        return raised

    assert dwell() == 0
    transfer(client, people.operator, container=number, node="CNNSA")
    assert dwell() == 1
    [alert] = alerts_of(client, people.supervisor, kind="dwell_exceeded")
    assert alert["node"] == "CNNSA"


def test_before_its_deadline_nothing_is_overdue(client: FlaskClient, admin: dict, people: Actors, number: str) -> None:
    assert client.post("/api/v1/jobs/overdue/run", headers=admin).get_json()["alerts_raised"] == 0
    assert client.post("/api/v1/jobs/nope/run", headers=admin).status_code == 404
    assert client.post("/api/v1/jobs/overdue/run", headers=people.supervisor).status_code == 403


class LiveStream:
    """An open alert stream, read in a thread of its own: its alert events arrive on `events` as they are sent.

    The thread also opens and closes the response: the stream's request context lives in the thread that opened it,
    and the test's own requests must not run inside it."""

    def __init__(self, client: FlaskClient, headers: dict[str, str]) -> None:
        self.events: queue.Queue[dict] = queue.Queue()
        self._opened: queue.Queue[TestResponse] = queue.Queue()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, args=(client, headers), daemon=True)
        self._reader.start()
        response = self._opened.get(timeout=10)
        assert response.status_code == 200
        assert response.mimetype == "text/event-stream"

    def _read(self, client: FlaskClient, headers: dict[str, str]) -> None:
        response = client.get("/api/v1/alerts/stream", headers=headers, buffered=False)
        self._opened.put(response)
        buffer = ""
        try:
            # Keep-alives come every half second, so the reader notices `close` in time.
            for chunk in response.response:
                if self._stop.is_set():
                    return
                buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
                    if fields.get("event") == "alert":
                        self.events.put({"id": int(fields["id"]), **json.loads(fields["data"])})
        finally:
            response.close()

    def next(self, timeout: float = 8.0) -> dict:
        """The next alert event; fails when none comes in time."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no alert event within {timeout} s") from None

    def close(self) -> None:
        self._stop.set()
        self._reader.join(5)
        assert not self._reader.is_alive(), "the stream stopped sending keep-alives"

    def __enter__(self) -> LiveStream:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def read_events(client: FlaskClient, headers: dict[str, str], wanted: int, timeout: float = 8.0) -> list[dict]:
    """Open the stream and collect `wanted` alert events (bounded in time)."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    with LiveStream(client, headers) as live:
        while len(events) < wanted and time.monotonic() < deadline:
            try:
                events.append(live.events.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
    return events


def test_the_stream_replays_after_last_event_id_within_scope(client: FlaskClient, people: Actors) -> None:
    numbers = [container_number(n) for n in (1, 2, 3)]
    assert (
        declare(
            client, people.forwarder, containers=[{"number": n, "seals": [{"number": f"S-{n}"}]} for n in numbers]
        ).status_code
        == 201
    )
    for n in numbers:
        assert transfer(client, people.operator, container=n, node="CNNSA", seals=["WRONG"]).status_code == 201
    everything = read_events(client, people.guangzhou, 3)
    assert [e["container"] for e in everything] == numbers
    after_first = read_events(client, {**people.guangzhou, "Last-Event-ID": str(everything[0]["id"])}, 2)
    assert [e["id"] for e in after_first] == [e["id"] for e in everything[1:]]
    assert read_events(client, people.shenzhen, 1, timeout=2.0) == []
    assert len(read_events(client, people.forwarder, 3)) == 3
    assert read_events(client, people.other_forwarder, 1, timeout=2.0) == []


def test_a_replay_longer_than_one_batch_is_sent_whole_without_waiting_for_a_poll(
    app: Flask, client: FlaskClient, people: Actors, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers = [container_number(n) for n in (1, 2, 3, 4, 5)]
    containers = [{"number": n, "seals": [{"number": f"S-{n}"}]} for n in numbers]
    assert declare(client, people.forwarder, containers=containers).status_code == 201
    for n in numbers:
        assert transfer(client, people.operator, container=n, node="CNNSA", seals=["WRONG"]).status_code == 201
    # Batches of two, and no database look for a minute: the backlog must drain batch after batch at once.
    monkeypatch.setattr(stream, "REPLAY_BATCH", 2)
    app.config.update(SSE_POLL_S=60)
    assert [e["container"] for e in read_events(client, people.guangzhou, 5)] == numbers


def test_a_new_alert_reaches_an_open_stream(app: Flask, client: FlaskClient, people: Actors, number: str) -> None:
    received: list[list[dict]] = []
    listener = threading.Thread(target=lambda: received.append(read_events(client, people.guangzhou, 1)))
    listener.start()
    assert transfer(client, people.operator, container=number, node="CNNSA", seals=["WRONG"]).status_code == 201
    listener.join(10)
    assert received
    assert [e["container"] for e in received[0]] == [number]
    assert count(app, Alert) == 1


def seal_break_in(session: Session, number: str) -> int:
    """A seal break at Nansha registered in `session`'s transaction, not committed: the id of the alert it raises."""
    seals = [("NOT-OURS", "intact")]
    data = TransferInput(container=number, node="CNNSA", event_time=now(), activity="arrive", seals=seals)
    alert = register_transfer(session, ADMIN, data, now()).alert
    assert alert is not None
    return alert.id


def seal_break(client: FlaskClient, people: Actors, number: str) -> int:
    """A seal break at Nansha through the API (committed): the id of the alert it raises."""
    response = transfer(client, people.operator, container=number, node="CNNSA", seals=["NOT-OURS"])
    assert response.status_code == 201, response.get_json()
    alert_id: int = response.get_json()["alert_id"]
    return alert_id


def test_an_alert_committed_after_a_later_one_is_streamed_and_replayed(
    app: Flask, client: FlaskClient, people: Actors, database: TestDatabase
) -> None:
    """On PostgreSQL an alert's id is taken when it is written, but it is seen when its transaction commits: an alert
    with a lower id can appear after one with a higher id that the stream has already sent."""
    held_box, other_box = container_number(1), container_number(2)
    assert declare(client, people.forwarder, containers=[box(held_box), box(other_box)]).status_code == 201
    held = db.new_session(app=app)
    try:
        if database.backend == "postgis":
            # The held transaction takes the lower id, and the request below commits a higher one before it.
            held_id = seal_break_in(held, held_box)
        first_id = seal_break(client, people, other_box)
        if database.backend == "postgis":
            assert held_id < first_id  # ids out of commit order: the stream used to move past the held one
        with LiveStream(client, people.guangzhou) as live:
            assert live.next()["id"] == first_id
            if database.backend == "spatialite":
                # One writer at a time on SQLite: the held transaction can only write now, after the other commit.
                held_id = seal_break_in(held, held_box)
            held.commit()
            assert live.next()["id"] == held_id
    finally:
        held.close()
    # A client that reconnects after the first alert it got is sent the one committed later, and nothing twice.
    assert [e["id"] for e in read_events(client, {**people.guangzhou, "Last-Event-ID": str(first_id)}, 2, 2.0)] == [
        held_id
    ]
    assert read_events(client, {**people.guangzhou, "Last-Event-ID": str(held_id)}, 1, timeout=2.0) == []


def test_a_last_event_id_the_caller_cannot_see_resumes_after_it_by_id(client: FlaskClient, people: Actors) -> None:
    numbers = [container_number(n) for n in (1, 2, 3, 4)]
    assert declare(client, people.forwarder, containers=[box(n) for n in numbers]).status_code == 201
    guangzhou_first = seal_break(client, people, numbers[0])
    # Off the itinerary at Yantian: an alert for Shenzhen customs, which Guangzhou's supervisor does not see.
    shenzhen = transfer(client, people.operator, container=numbers[1], node="CNYTN").get_json()["alert_id"]
    guangzhou_second = seal_break(client, people, numbers[2])
    resumed = read_events(client, {**people.guangzhou, "Last-Event-ID": str(shenzhen)}, 2, timeout=2.0)
    assert [e["id"] for e in resumed] == [guangzhou_second]
    # Not a number: from the start, as without the header.
    replayed = read_events(client, {**people.guangzhou, "Last-Event-ID": "²"}, 2)
    assert [e["id"] for e in replayed] == [guangzhou_first, guangzhou_second]
    # An id beyond every alert: nothing to replay, and the next alert raised is sent.
    with LiveStream(client, {**people.guangzhou, "Last-Event-ID": str(2**40)}) as live:
        time.sleep(0.3)
        assert live.events.empty()
        raised = seal_break(client, people, numbers[3])
        assert live.next()["id"] == raised


def test_a_worker_that_serves_no_stream_still_announces_its_alerts_on_redis(app: Flask, database: TestDatabase) -> None:
    """Streams on other workers, instances, or fed by the scheduler's alerts hear of them through Redis at once."""
    import redis

    url = os.environ.get("RAILSEA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    listener = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(stream.CHANNEL)
    assert listener.get_message(timeout=5) is None  # the subscription is in place
    writer = create_app({"TESTING": True, "DATABASE_URL": database.url, "ADMIN_TOKEN": ADMIN_TOKEN, "REDIS_URL": url})
    try:
        client = writer.test_client()
        people = actors(client)
        box = container_number(1)
        assert declare(client, people.forwarder).status_code == 201
        seal_break = transfer(client, people.operator, container=box, node="CNNSA", seals=["NOT-OURS"])
        alert_id = seal_break.get_json()["alert_id"]
        assert alert_id is not None
        heard: list[list[int]] = []
        deadline = time.monotonic() + 10
        while [alert_id] not in heard and time.monotonic() < deadline:
            message = listener.get_message(timeout=1)
            if message is not None:
                heard.append(json.loads(message["data"]))
        assert [alert_id] in heard, heard
    finally:
        notify.unsubscribe(stream._publishers.pop(url))
        writer.extensions["railsea_db"].dispose()
        listener.close()
