"""Idempotency-Key: a scanner or script that retries gets the first answer again and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from api.extensions import db
from tests.api.helpers import (
    DESTINATION,
    Actors,
    actors,
    box,
    container_number,
    container_state,
    counts,
    declaration_body,
    declare,
    inspect,
    iso,
    now,
    ok,
    seals_for,
    timeline,
    transfer,
)
from tests.conftest import bearer, make_key
from tracking.models import IdempotencyRecord

BOX = container_number(1)
KEY = {"Idempotency-Key": "scanner-7f3a-0001"}


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


@pytest.fixture
def declared(client: FlaskClient, people: Actors) -> dict:
    return ok(declare(client, people.forwarder, containers=[box(BOX)]))


def replayed(response: TestResponse) -> bool:
    return response.headers.get("Idempotent-Replayed") == "true"


def assert_replay(first: TestResponse, again: TestResponse) -> None:
    assert not replayed(first)
    assert again.status_code == first.status_code
    assert again.get_json() == first.get_json()
    assert replayed(again), dict(again.headers)
    assert again.content_type.startswith("application/json")


def test_a_retried_declaration_is_stored_once(app: Flask, client: FlaskClient, people: Actors) -> None:
    body = declaration_body(containers=[box(BOX)])
    first = client.post("/api/v1/declarations", json=body, headers={**people.forwarder, **KEY})
    assert first.status_code == 201, first.get_json()
    stored = counts(app)
    again = client.post("/api/v1/declarations", json=body, headers={**people.forwarder, **KEY})
    assert_replay(first, again)
    assert counts(app) == stored
    listed = ok(client.get("/api/v1/declarations", headers=people.forwarder), 200)["items"]
    assert [d["id"] for d in listed] == [first.get_json()["id"]]


def test_the_same_body_in_another_key_order_or_spacing_is_the_same_request(
    app: Flask, client: FlaskClient, people: Actors, declared: dict
) -> None:
    body = {
        "container": BOX,
        "node": "HKHKG",
        "event_time": iso(now()),
        "activity": "arrive",
        "seals": [{"number": s, "condition": "intact"} for s in seals_for(BOX)],
    }
    headers = {**people.operator, **KEY, "Content-Type": "application/json"}
    first = client.post("/api/v1/transfers", data=json.dumps(body), headers=headers)
    assert first.status_code == 201, first.get_json()
    stored = counts(app)
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2)
    assert_replay(first, client.post("/api/v1/transfers", data=reordered, headers=headers))
    assert counts(app) == stored


def test_a_retried_transfer_is_decided_once(app: Flask, client: FlaskClient, people: Actors, declared: dict) -> None:
    moment = iso(now())
    wrong = [seals_for(BOX)[0], "GZ-0666"]
    first = transfer(client, people.operator, container=BOX, node="CNNSA", seals=wrong, event_time=moment, headers=KEY)
    assert first.get_json()["decision"] == "reinspect"
    stored = counts(app)
    events = timeline(client, people.forwarder, BOX)
    for _ in range(3):
        again = transfer(
            client, people.operator, container=BOX, node="CNNSA", seals=wrong, event_time=moment, headers=KEY
        )
        assert_replay(first, again)
    assert counts(app) == stored
    assert timeline(client, people.forwarder, BOX) == events
    # Not a second, `hold` decision with a moved_while_held alert: the retry is the same transfer.
    assert container_state(client, people.forwarder, BOX)["open_alerts"] == 1


def test_a_retry_after_the_box_moved_on_still_gets_the_first_answer(
    app: Flask, client: FlaskClient, people: Actors, declared: dict
) -> None:
    moment = iso(now())
    first = transfer(client, people.operator, container=BOX, node=DESTINATION, event_time=moment, headers=KEY)
    assert first.get_json()["decision"] == "inspect"
    ok(inspect(client, people.changsha, container=BOX, node=DESTINATION))
    stored = counts(app)
    again = transfer(client, people.operator, container=BOX, node=DESTINATION, event_time=moment, headers=KEY)
    assert_replay(first, again)
    assert counts(app) == stored


def test_a_retried_inspection_is_recorded_once(app: Flask, client: FlaskClient, people: Actors, declared: dict) -> None:
    ok(transfer(client, people.operator, container=BOX, node="CNNSA", seals=["GZ-0666"]))
    first = inspect(client, people.guangzhou, container=BOX, node="CNNSA", seals_applied=["GZ-5001"], headers=KEY)
    assert first.status_code == 201, first.get_json()
    stored = counts(app)
    again = inspect(client, people.guangzhou, container=BOX, node="CNNSA", seals_applied=["GZ-5001"], headers=KEY)
    assert_replay(first, again)
    assert counts(app) == stored
    assert [e["type"] for e in timeline(client, people.forwarder, BOX)].count("inspection") == 1


Send = Callable[[FlaskClient, Actors, dict[str, str], dict[str, Any]], TestResponse]


def _declare(client: FlaskClient, people: Actors, headers: dict[str, str], changes: dict[str, Any]) -> TestResponse:
    return declare(client, people.forwarder, headers=headers, **{"containers": [box(container_number(2))], **changes})


def _transfer(client: FlaskClient, people: Actors, headers: dict[str, str], changes: dict[str, Any]) -> TestResponse:
    return transfer(client, people.operator, headers=headers, **{"container": BOX, "node": "HKHKG", **changes})


def _inspect(client: FlaskClient, people: Actors, headers: dict[str, str], changes: dict[str, Any]) -> TestResponse:
    return inspect(client, people.supervisor, headers=headers, **{"container": BOX, "node": "HKHKG", **changes})


@pytest.mark.parametrize(
    ("send", "first", "second"),
    [
        pytest.param(_declare, {"reference": "R-1"}, {"reference": "R-2"}, id="declaration"),
        pytest.param(_transfer, {"node": "HKHKG"}, {"node": "CNNSA"}, id="transfer"),
        pytest.param(_inspect, {"remarks": "ok"}, {"remarks": "fine"}, id="inspection"),
    ],
)
def test_the_same_key_with_another_body_is_422(
    app: Flask, client: FlaskClient, people: Actors, declared: dict, send: Send, first: dict, second: dict
) -> None:
    assert send(client, people, KEY, first).status_code == 201
    stored = counts(app)
    response = send(client, people, KEY, second)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert not replayed(response)
    assert counts(app) == stored


def test_the_same_key_on_another_endpoint_is_another_request(
    app: Flask, client: FlaskClient, admin: dict, declared: dict
) -> None:
    ok(transfer(client, admin, container=BOX, node="CNNSA", seals=["GZ-0666"], headers=KEY))
    stored = counts(app)
    response = inspect(client, admin, container=BOX, node="CNNSA", headers=KEY)
    assert response.status_code == 422, response.get_json()
    assert counts(app) == stored


def test_keys_of_different_callers_are_independent(
    app: Flask, client: FlaskClient, people: Actors, declared: dict
) -> None:
    moment = iso(now())
    night_shift = bearer(make_key(client, name="Night shift", role="operator", nodes=["HKHKG"]))
    day = transfer(client, people.operator, container=BOX, node="HKHKG", event_time=moment, headers=KEY)
    night = transfer(client, night_shift, container=BOX, node="HKHKG", event_time=moment, headers=KEY)
    assert day.status_code == night.status_code == 201
    assert not replayed(night)
    assert night.get_json()["id"] != day.get_json()["id"]
    assert len(timeline(client, people.forwarder, BOX)) == 3

    # Two forwarders whose systems number their requests alike each get their own declaration.
    body = declaration_body(reference="SHARED-REF", containers=[box(container_number(5))])
    mine = client.post("/api/v1/declarations", json=body, headers={**people.forwarder, **KEY})
    body["containers"] = [box(container_number(6))]
    theirs = client.post("/api/v1/declarations", json=body, headers={**people.other_forwarder, **KEY})
    assert mine.status_code == theirs.status_code == 201, theirs.get_json()
    assert (mine.get_json()["party"], theirs.get_json()["party"]) == ("PEARLFWD", "DELTALOG")


def test_a_failed_request_is_not_remembered(app: Flask, client: FlaskClient, people: Actors, declared: dict) -> None:
    refused = transfer(client, people.operator, container=BOX, node="CNZZZ", headers=KEY)
    assert refused.status_code == 404
    corrected = transfer(client, people.operator, container=BOX, node="HKHKG", headers=KEY)
    assert corrected.status_code == 201, corrected.get_json()
    assert not replayed(corrected)


@pytest.mark.parametrize("key", [pytest.param("", id="empty"), pytest.param("k" * 256, id="too-long")])
def test_a_malformed_key_is_422(app: Flask, client: FlaskClient, people: Actors, declared: dict, key: str) -> None:
    stored = counts(app)
    response = transfer(client, people.operator, container=BOX, node="HKHKG", headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert counts(app) == stored


def test_a_key_does_not_bypass_authentication(app: Flask, client: FlaskClient, declared: dict) -> None:
    stored = counts(app)
    assert transfer(client, {}, container=BOX, node="HKHKG", headers=KEY).status_code == 401
    assert counts(app) == stored


def test_keys_are_remembered_for_a_week_then_forgotten_by_the_idempotency_job(
    app: Flask, client: FlaskClient, people: Actors, declared: dict
) -> None:
    moment = iso(now())
    first = transfer(client, people.operator, container=BOX, node="CNNSA", event_time=moment, headers=KEY)
    assert first.status_code == 201, first.get_json()
    admin = bearer(app.config["ADMIN_TOKEN"])
    ran = client.post("/api/v1/jobs/idempotency/run", headers=admin)
    assert ran.get_json() == {"name": "idempotency", "alerts_raised": 0}
    assert replayed(transfer(client, people.operator, container=BOX, node="CNNSA", event_time=moment, headers=KEY))

    # Eight days later the record is gone: the same key is a new request again.
    with app.app_context():
        session = db.new_session()
        session.execute(update(IdempotencyRecord).values(created_at=now() - timedelta(days=8)))
        session.commit()
        session.close()
    client.post("/api/v1/jobs/idempotency/run", headers=admin)
    with app.app_context():
        session = db.new_session(write=False)
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
        session.close()
