"""E-seal rules that a supervisor notices: simultaneous batches, which office is alerted, late readings after a
clearing inspection, and silent e-seals of every open container."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from tests.api.helpers import (
    Actors,
    actors,
    alerts,
    container_number,
    container_state,
    declare,
    inspect,
    iso,
    now,
    ok,
    seals_for,
    timeline,
    transfer,
)
from tests.conftest import TestDatabase, bearer, make_key
from tracking.models import Reading

KWAI_TSING = (114.12, 22.34)  # Hong Kong, the itinerary's origin
NANSHA = (113.67, 22.65)
XIAMEN = (118.07, 24.45)  # far off the Hong Kong → Changsha corridor


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


@pytest.fixture
def hong_kong(client: FlaskClient) -> dict[str, str]:
    """A supervisor of Hong Kong customs only (the office of the itinerary's origin)."""
    return bearer(make_key(client, name="Hong Kong customs", role="supervisor", offices=["HK-CED"]))


def declare_boxes(client: FlaskClient, people: Actors, *serials: int) -> list[str]:
    numbers = [container_number(s) for s in serials]
    body = [{"number": n, "seals": [{"number": s} for s in seals_for(n)]} for n in numbers]
    ok(declare(client, people.forwarder, containers=body))
    return numbers


def reading(
    number: str,
    *,
    device: str = "ELOCK-1",
    sealed: bool = True,
    at: tuple[float, float] = NANSHA,
    minutes_ago: float = 5,
) -> dict[str, Any]:
    lon, lat = at
    return {
        "device": device,
        "container": number,
        "time": iso(now() - timedelta(minutes=minutes_ago)),
        "lat": lat,
        "lon": lon,
        "sealed": sealed,
    }


def post(client: FlaskClient, token: dict[str, str], *batch: dict[str, Any]) -> dict[str, Any]:
    return ok(client.post("/api/v1/telemetry", json={"readings": list(batch)}, headers=token), 202)


def kinds_of(client: FlaskClient, token: dict[str, str], number: str, kind: str) -> list[dict[str, Any]]:
    return [a for a in alerts(client, token, f"kind={kind}") if a["container"] == number]


def stored_readings(app: Flask) -> int:
    with app.extensions["railsea_db"].engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(Reading)) or 0


# --- simultaneous batches -----------------------------------------------------------------------------------------

_ROW_LOCK = re.compile(r"\bFOR (NO KEY )?UPDATE OF containers\b")


@pytest.fixture
def meet_at_the_row_lock(app: Flask) -> Iterator[list[bool]]:
    """On PostgreSQL, holds each request at its first container row lock until both requests are there: the worst
    moment for two batches to meet (before the fix, both had written their readings by then). Lists each meeting.
    SQLite takes no row locks (its writer gate runs one transaction at a time), so there nothing is held."""
    engine = app.extensions["railsea_db"].engine
    barrier = threading.Barrier(2, timeout=10)
    held: set[int] = set()
    met: list[bool] = []

    def hold(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if threading.get_ident() in held or not _ROW_LOCK.search(statement):
            return
        held.add(threading.get_ident())
        try:
            barrier.wait()
            met.append(True)
        except threading.BrokenBarrierError:
            pass

    event.listen(engine, "before_cursor_execute", hold)
    yield met
    event.remove(engine, "before_cursor_execute", hold)


def simultaneously(app: Flask, token: dict[str, str], *batches: list[dict[str, Any]]) -> list[tuple[int, Any]]:
    """POST the batches at the same moment, each from its own client (own request, own connection)."""
    start = threading.Barrier(len(batches), timeout=10)
    answers: list[tuple[int, Any]] = [(0, None)] * len(batches)

    def send(i: int, batch: list[dict[str, Any]]) -> None:
        client = app.test_client()
        start.wait()
        response = client.post("/api/v1/telemetry", json={"readings": batch}, headers=token)
        answers[i] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=send, args=(i, b)) for i, b in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a batch never finished"
    return answers


@pytest.mark.parametrize("scenario", ["same box", "crossed boxes", "tamper and corridor crossed"])
def test_simultaneous_batches_about_the_same_boxes_are_all_accepted(
    app: Flask,
    client: FlaskClient,
    database: TestDatabase,
    people: Actors,
    meet_at_the_row_lock: list[bool],
    scenario: str,
) -> None:
    """Two gateways relay readings of the same boxes at the same moment, each batch with a box to hold: no batch is
    lost to a deadlock, and each box is held once with one alert of each kind."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a deadlock is a 500 answer, as a gateway would see it
    x, y = declare_boxes(client, people, 1, 2)
    tampered: list[str]
    off_corridor: list[str]
    if scenario == "same box":
        first = [reading(x, device="ELOCK-A", sealed=False, minutes_ago=10)]
        second = [reading(x, device="ELOCK-B", sealed=False, minutes_ago=9)]
        tampered, off_corridor = [x], []
    elif scenario == "crossed boxes":
        first = [reading(x, device="GW1-X", sealed=False, minutes_ago=10), reading(y, device="GW1-Y", minutes_ago=10)]
        second = [reading(y, device="GW2-Y", sealed=False, minutes_ago=9), reading(x, device="GW2-X", minutes_ago=9)]
        tampered, off_corridor = [x, y], []
    else:
        first = [
            reading(x, device="GW1-X", sealed=False, minutes_ago=10),
            reading(y, device="GW1-Y", at=XIAMEN, minutes_ago=10),
        ]
        second = [
            reading(y, device="GW2-Y", sealed=False, minutes_ago=9),
            reading(x, device="GW2-X", at=XIAMEN, minutes_ago=9),
        ]
        tampered, off_corridor = [x, y], [x, y]

    answers = simultaneously(app, people.operator, first, second)

    assert answers == [
        (202, {"accepted": len(first), "rejected": []}),
        (202, {"accepted": len(second), "rejected": []}),
    ]
    assert stored_readings(app) == len(first) + len(second)
    if database.backend == "postgis":
        assert meet_at_the_row_lock == [True, True], "the two batches did not meet at the row lock"
    for number in tampered:
        assert container_state(client, people.forwarder, number)["status"] == "held"
        assert len(kinds_of(client, people.supervisor, number, "eseal_tamper")) == 1
        assert [e["type"] for e in timeline(client, people.forwarder, number)].count("eseal_tamper") == 1
    for number in off_corridor:
        assert len(kinds_of(client, people.supervisor, number, "corridor_deviation")) == 1


# --- which office is alerted --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sealed", "at", "kind"),
    [(False, KWAI_TSING, "eseal_tamper"), (True, XIAMEN, "corridor_deviation")],
    ids=["tamper", "corridor"],
)
def test_an_alert_before_the_first_transfer_goes_to_the_origins_office(
    client: FlaskClient,
    people: Actors,
    hong_kong: dict[str, str],
    sealed: bool,
    at: tuple[float, float],
    kind: str,
) -> None:
    """A declared box still at Hong Kong, its origin: Hong Kong customs is alerted, not the destination's office."""
    (number,) = declare_boxes(client, people, 1)
    post(client, people.operator, reading(number, sealed=sealed, at=at))
    (alert,) = kinds_of(client, hong_kong, number, kind)
    assert alert["node"] == "HKHKG"
    assert kinds_of(client, people.changsha, number, kind) == []


def test_a_tamper_after_a_transfer_goes_to_the_office_where_the_box_is(
    client: FlaskClient, people: Actors, hong_kong: dict[str, str]
) -> None:
    (number,) = declare_boxes(client, people, 1)
    assert ok(transfer(client, people.operator, container=number, node="CNNSA"))["decision"] == "release"
    post(client, people.operator, reading(number, sealed=False, minutes_ago=1))
    (alert,) = kinds_of(client, people.guangzhou, number, "eseal_tamper")
    assert alert["node"] == "CNNSA"
    assert kinds_of(client, hong_kong, number, "eseal_tamper") == []


# --- a late reading after the clearing inspection -----------------------------------------------------------------


@pytest.fixture
def cleared_box(client: FlaskClient, people: Actors) -> str:
    """A box whose e-lock reported open two hours ago at Nansha, then inspected there, cleared and re-sealed."""
    (number,) = declare_boxes(client, people, 1)
    arrival = iso(now() - timedelta(hours=3))
    assert ok(transfer(client, people.operator, container=number, node="CNNSA", event_time=arrival))["decision"] == (
        "release"
    )
    post(client, people.operator, reading(number, sealed=False, minutes_ago=120))
    assert container_state(client, people.forwarder, number)["status"] == "held"
    ok(inspect(client, people.guangzhou, container=number, node="CNNSA", seals_applied=["EL-NEW-1"]))
    assert container_state(client, people.forwarder, number)["status"] == "in_transit"
    return number


def test_a_late_tamper_reading_from_before_the_clearing_inspection_holds_nothing(
    app: Flask, client: FlaskClient, people: Actors, cleared_box: str
) -> None:
    """The inspection that cleared the box came after the reading (监管互认): stored as evidence, acted on no more."""
    before = stored_readings(app)
    assert post(client, people.operator, reading(cleared_box, sealed=False, minutes_ago=90)) == {
        "accepted": 1,
        "rejected": [],
    }
    assert stored_readings(app) == before + 1
    state = container_state(client, people.forwarder, cleared_box)
    assert (state["status"], state["held"], state["open_alerts"]) == ("in_transit", False, 0)
    assert [a["status"] for a in kinds_of(client, people.supervisor, cleared_box, "eseal_tamper")] == ["resolved"]
    assert [e["type"] for e in timeline(client, people.forwarder, cleared_box)].count("eseal_tamper") == 1


def test_a_tamper_reading_after_the_clearing_inspection_holds_the_box_again(
    client: FlaskClient, people: Actors, cleared_box: str
) -> None:
    post(
        client,
        people.operator,
        reading(cleared_box, sealed=False, minutes_ago=90),
        reading(cleared_box, device="EL-NEW-1", sealed=False, minutes_ago=0),
    )
    assert container_state(client, people.forwarder, cleared_box)["status"] == "held"
    tamper = kinds_of(client, people.supervisor, cleared_box, "eseal_tamper")
    assert sorted(a["status"] for a in tamper) == ["open", "resolved"]
    (reopened,) = [a for a in tamper if a["status"] == "open"]
    assert reopened["detail"]["device"] == "EL-NEW-1"
    assert reopened["node"] == "CNNSA"


# --- silent e-seals -----------------------------------------------------------------------------------------------


def test_a_silent_eseal_is_alerted_for_every_open_box_once(
    client: FlaskClient, admin: dict[str, str], people: Actors, hong_kong: dict[str, str]
) -> None:
    """Declared at its origin, awaiting its inspection, in transit, held: all alerted; released: not."""
    declared, waiting, moving, held, released = declare_boxes(client, people, 1, 2, 3, 4, 5)
    for number in (waiting, released):
        assert ok(transfer(client, people.operator, container=number, node="CNCSH"))["decision"] == "inspect"
    ok(inspect(client, people.changsha, container=released, node="CNCSH"))
    assert ok(transfer(client, people.operator, container=moving, node="CNNSA"))["decision"] == "release"
    assert ok(transfer(client, people.operator, container=held, node="CNNSA", seals=["WRONG"]))["decision"] == (
        "reinspect"
    )
    boxes = (declared, waiting, moving, held, released)
    post(client, people.operator, *(reading(n, device=f"ELOCK-{n}", minutes_ago=120) for n in boxes))
    statuses = [container_state(client, people.forwarder, n)["status"] for n in boxes]
    assert statuses == ["declared", "awaiting_inspection", "in_transit", "held", "released"]

    runs = [ok(client.post("/api/v1/jobs/telemetry_silent/run", headers=admin), 200) for _ in range(2)]

    assert [r["alerts_raised"] for r in runs] == [4, 0]
    silent = {a["container"]: a for a in alerts(client, people.supervisor, "kind=telemetry_silent")}
    assert set(silent) == {declared, waiting, moving, held}
    assert {n: silent[n]["node"] for n in silent} == {
        declared: "HKHKG",
        waiting: "CNCSH",
        moving: "CNNSA",
        held: "CNNSA",
    }
    assert [a["container"] for a in kinds_of(client, hong_kong, declared, "telemetry_silent")] == [declared]
