"""Webhooks: subscriptions in the caller's scope, an outbox written with the event, signed deliveries, retries."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.test import TestResponse

from api.extensions import db
from tests.conftest import bearer, make_key
from tracking import jobs, webhooks
from tracking.access import ADMIN
from tracking.models import ApiKey, OutboxMessage
from tracking.transfers import TransferInput, register_transfer

BOX, OTHER_BOX = "CSQU3054383", "MSKU1234565"
SEAL = "CN-0001"
ITINERARY = ["CNSJQ", "CNNSA"]  # Foshan Sanshui river port → Nansha, both CN-GUANGZHOU
OFF_ROUTE = "CNSHK"  # Shekou, CN-SHENZHEN


# --- a receiver on loopback ---------------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str = ""
    status: int = 200
    requests: list[Received] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode("utf-8")
            with lock:
                state.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/railsea"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def allow_loopback(app: Flask) -> None:
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    app.config["WEBHOOK_TIMEOUT_S"] = 2


# --- people and actions -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class People:
    forwarder: dict[str, str]
    other_forwarder: dict[str, str]
    operator: dict[str, str]
    guangzhou: dict[str, str]
    shenzhen: dict[str, str]


@pytest.fixture
def people(client: FlaskClient) -> People:
    def key(**body: Any) -> dict[str, str]:
        return bearer(make_key(client, **body))

    return People(
        forwarder=key(name="Pearl Forwarding", role="forwarder", party="PEARLFWD"),
        other_forwarder=key(name="Delta Logistics", role="forwarder", party="DELTALOG"),
        operator=key(name="Terminals", role="operator", nodes=[*ITINERARY, OFF_ROUTE]),
        guangzhou=key(name="Guangzhou customs", role="supervisor", offices=["CN-GUANGZHOU"]),
        shenzhen=key(name="Shenzhen customs", role="supervisor", offices=["CN-SHENZHEN"]),
    )


def ok(response: TestResponse, status: int = 201) -> Any:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def subscribe(client: FlaskClient, token: dict[str, str], url: str, events: list[str]) -> TestResponse:
    return client.post("/api/v1/subscriptions", json={"url": url, "events": events}, headers=token)


def declare(client: FlaskClient, token: dict[str, str], number: str = BOX, reference: str = "WH-1") -> Any:
    body = {
        "reference": reference,
        "direction": "import",
        "origin": ITINERARY[0],
        "destination": ITINERARY[-1],
        "itinerary": ITINERARY,
        "deadline": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
        "containers": [{"number": number, "seals": [{"number": SEAL, "type": "bolt", "source": "customs"}]}],
    }
    return ok(client.post("/api/v1/declarations", json=body, headers=token))


def transfer(
    client: FlaskClient, token: dict[str, str], *, node: str, condition: str = "intact", number: str = BOX
) -> TestResponse:
    body = {
        "container": number,
        "node": node,
        "event_time": datetime.now(UTC).isoformat(),
        "activity": "arrive",
        "seals": [{"number": SEAL, "condition": condition}],
    }
    return client.post("/api/v1/transfers", json=body, headers=token)


def run_job(client: FlaskClient) -> int:
    body = ok(client.post("/api/v1/jobs/webhooks/run", headers=bearer("test-admin-token")), 200)
    assert body["name"] == "webhooks"
    delivered: int = body["alerts_raised"]
    return delivered


def run_at(app: Flask, moment: datetime) -> int | None:
    """The job as the scheduler runs it, at a chosen time."""
    with db.new_session(app=app) as session:
        delivered = jobs.run(session, "webhooks", moment)
        session.commit()
    return delivered


def outbox_count(app: Flask) -> int:
    with db.new_session(app=app, write=False) as session:
        return session.scalar(select(func.count()).select_from(OutboxMessage)) or 0


def verify(secret: str, received: Received) -> bool:
    """Standard Webhooks verification, written out as a receiver would."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.{received.body}"
    expected = base64.b64encode(hmac.new(key, signed.encode(), hashlib.sha256).digest()).decode()
    versions = received.headers["webhook-signature"].split(" ")
    return any(hmac.compare_digest(f"v1,{expected}", sig) for sig in versions)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- tests --------------------------------------------------------------------------------------------------------


def test_signatures_follow_the_standard_webhooks_test_vector() -> None:
    assert (
        webhooks.sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_forwarder_receives_a_signed_alert_for_a_broken_seal(
    client: FlaskClient, people: People, receiver: Receiver
) -> None:
    created = ok(subscribe(client, people.forwarder, receiver.url, ["alert.*"]))
    assert set(created) == {"id", "url", "events", "secret", "created_at"}
    assert created["url"] == receiver.url
    assert created["events"] == ["alert.*"]
    secret = created["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24

    declare(client, people.forwarder)
    assert ok(transfer(client, people.operator, node="CNSJQ"))["decision"] == "release"
    broken = ok(transfer(client, people.operator, node="CNNSA", condition="broken"))
    assert broken["decision"] == "reinspect"
    assert broken["alert_id"] is not None

    [pending] = ok(client.get(f"/api/v1/subscriptions/{created['id']}", headers=people.forwarder), 200)["deliveries"]
    assert (pending["type"], pending["status"], pending["attempts"]) == ("alert.seal_broken", "pending", 0)
    assert receiver.requests == [], "nothing is sent before the job runs"

    assert run_job(client) == 1
    [received] = receiver.requests
    assert received.path == "/hooks/railsea"
    assert received.headers["content-type"] == "application/json"
    assert received.headers["webhook-id"] == pending["id"]
    assert received.headers["webhook-id"].startswith("msg_")
    assert abs(int(received.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 60
    assert received.headers["webhook-signature"].startswith("v1,")
    assert verify(secret, received)
    assert not verify(webhooks.new_secret(), received)

    body = received.json
    assert body["type"] == "alert.seal_broken"
    parse_time(body["timestamp"])
    alert = body["data"]
    assert (alert["id"], alert["kind"], alert["container"], alert["node"]) == (
        broken["alert_id"],
        "seal_broken",
        BOX,
        "CNNSA",
    )
    assert alert["severity"] == "critical"
    assert alert["office"] == "CN-GUANGZHOU"
    assert alert["reasons"] == ["seal_broken"]
    listed = ok(client.get(f"/api/v1/alerts?container={BOX}", headers=people.forwarder), 200)["items"]
    assert [alert] == listed, "the payload is the alert as the API shows it"

    detail = ok(client.get(f"/api/v1/subscriptions/{created['id']}", headers=people.forwarder), 200)
    assert "secret" not in detail
    [delivery] = detail["deliveries"]
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == ("delivered", 1, None)
    assert delivery["delivered_at"] is not None

    assert run_job(client) == 0, "a delivered message is not sent again"
    assert len(receiver.requests) == 1

    listing = ok(client.get("/api/v1/subscriptions", headers=people.forwarder), 200)
    assert listing == {
        "items": [{k: v for k, v in created.items() if k != "secret"}],
        "next_cursor": None,
    }


def test_container_events_carry_the_evidence_record(client: FlaskClient, people: People, receiver: Receiver) -> None:
    created = ok(subscribe(client, people.forwarder, receiver.url, ["container.declared", "container.transfer"]))
    declare(client, people.forwarder)
    ok(transfer(client, people.operator, node="CNSJQ"))
    assert run_job(client) == 2

    bodies = sorted((r.json for r in receiver.requests), key=lambda b: b["data"]["event"]["seq"])
    assert [b["type"] for b in bodies] == ["container.declared", "container.transfer"]
    assert all(verify(created["secret"], r) for r in receiver.requests)
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 2
    evidence = ok(client.get(f"/api/v1/containers/{BOX}/evidence", headers=people.forwarder), 200)
    assert [b["data"]["event"] for b in bodies] == [e["record"] for e in evidence["entries"]]
    assert [(b["data"]["container"], b["data"]["node"]) for b in bodies] == [(BOX, "CNSJQ"), (BOX, "CNSJQ")]


def test_events_filter_what_is_sent(client: FlaskClient, people: People, receiver: Receiver) -> None:
    ok(subscribe(client, people.forwarder, receiver.url, ["alert.route_deviation", "container.inspection"]))
    declare(client, people.forwarder)
    ok(transfer(client, people.operator, node="CNNSA", condition="broken"))  # seal_broken: not wanted
    ok(transfer(client, people.operator, node=OFF_ROUTE))  # held already: moved_while_held, not wanted
    assert run_job(client) == 0
    assert receiver.requests == []


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(
    app: Flask, client: FlaskClient, people: People, receiver: Receiver
) -> None:
    receiver.status = 500
    created = ok(subscribe(client, people.forwarder, receiver.url, ["alert.*"]))
    declare(client, people.forwarder)
    ok(transfer(client, people.operator, node="CNNSA", condition="broken"))

    started = datetime.now(UTC)
    assert run_job(client) == 0
    [delivery] = ok(client.get(f"/api/v1/subscriptions/{created['id']}", headers=people.forwarder), 200)["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
    assert delivery["last_error"].startswith("HTTP 500")
    wait = parse_time(delivery["next_attempt_at"]) - started
    assert timedelta(seconds=29) <= wait <= timedelta(seconds=35)

    assert run_job(client) == 0, "not due yet"
    assert len(receiver.requests) == 1

    moment = started
    waits = []
    for attempt in range(2, 7):
        moment += timedelta(hours=2)
        assert run_at(app, moment) == 0
        [delivery] = ok(client.get(f"/api/v1/subscriptions/{created['id']}", headers=people.forwarder), 200)[
            "deliveries"
        ]
        assert delivery["attempts"] == attempt
        if attempt < 6:
            assert delivery["status"] == "pending"
            waits.append((parse_time(delivery["next_attempt_at"]) - moment).total_seconds())
    assert waits == [60, 120, 240, 480]
    assert delivery["status"] == "failed"
    assert delivery["next_attempt_at"] is None
    assert delivery["last_error"].startswith("HTTP 500")

    assert run_at(app, moment + timedelta(days=1)) == 0
    assert len(receiver.requests) == 6
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1, "every retry is the same message"
    assert all(verify(created["secret"], r) for r in receiver.requests)


def test_a_receiver_that_recovers_gets_the_message(
    app: Flask, client: FlaskClient, people: People, receiver: Receiver
) -> None:
    receiver.status = 503
    created = ok(subscribe(client, people.forwarder, receiver.url, ["alert.seal_broken"]))
    declare(client, people.forwarder)
    ok(transfer(client, people.operator, node="CNNSA", condition="broken"))
    assert run_job(client) == 0
    receiver.status = 204
    assert run_at(app, datetime.now(UTC) + timedelta(minutes=5)) == 1
    [delivery] = ok(client.get(f"/api/v1/subscriptions/{created['id']}", headers=people.forwarder), 200)["deliveries"]
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == ("delivered", 2, None)


def test_an_unreachable_receiver_is_an_error_not_a_crash(app: Flask, client: FlaskClient, people: People) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]
    created = ok(subscribe(client, people.forwarder, f"http://127.0.0.1:{port}/gone", ["alert.*"]))
    declare(client, people.forwarder)
    ok(transfer(client, people.operator, node="CNNSA", condition="broken"))
    assert run_job(client) == 0
    [delivery] = ok(client.get(f"/api/v1/subscriptions/{created['id']}", headers=people.forwarder), 200)["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
    assert "refused" in delivery["last_error"].lower()


PRIVATE_TARGETS = {
    "loopback": "http://127.0.0.1:8080/hook",
    "localhost": "http://localhost/hook",
    "private-10": "http://10.1.2.3/hook",
    "private-192": "https://192.168.0.10/hook",
    "link-local": "http://169.254.169.254/latest/meta-data",
    "loopback-v6": "http://[::1]/hook",
    "mapped-v6": "http://[::ffff:127.0.0.1]/hook",
    "unspecified": "http://0.0.0.0/hook",
    "shared": "http://100.64.0.1/hook",
    "reserved": "http://240.0.0.1/hook",
}


@pytest.mark.parametrize("url", list(PRIVATE_TARGETS.values()), ids=list(PRIVATE_TARGETS))
def test_private_targets_are_refused_without_the_setting(
    app: Flask, client: FlaskClient, people: People, url: str
) -> None:
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    response = subscribe(client, people.forwarder, url, ["alert.*"])
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert "url" in response.get_json()["errors"]
    assert ok(client.get("/api/v1/subscriptions", headers=people.forwarder), 200)["items"] == []


@pytest.mark.parametrize(
    ("body", "field_name"),
    [
        ({"url": "ftp://example.org/hook", "events": ["alert.*"]}, "url"),
        ({"url": "http:///no-host", "events": ["alert.*"]}, "url"),
        ({"url": "not a url", "events": ["alert.*"]}, "url"),
        ({"url": "http://user:pw@127.0.0.1/hook", "events": ["alert.*"]}, "url"),
        ({"url": "http://127.0.0.1:99999/hook", "events": ["alert.*"]}, "url"),
        ({"url": "http://127.0.0.1/hook", "events": ["alert.kaboom"]}, "events"),
        ({"url": "http://127.0.0.1/hook", "events": ["alert.*", "container.moved"]}, "events"),
        ({"url": "http://127.0.0.1/hook", "events": ["*"]}, "events"),
        ({"url": "http://127.0.0.1/hook", "events": []}, "events"),
        ({"url": "http://127.0.0.1/hook"}, "events"),
        ({"events": ["alert.*"]}, "url"),
    ],
)
def test_invalid_subscriptions_are_422_with_the_field(
    app: Flask, client: FlaskClient, people: People, body: dict[str, Any], field_name: str
) -> None:
    response = client.post("/api/v1/subscriptions", json=body, headers=people.forwarder)
    assert response.status_code == 422, response.get_json()
    assert field_name in response.get_json()["errors"]


def test_every_known_event_name_is_accepted(client: FlaskClient, people: People, receiver: Receiver) -> None:
    names = [*webhooks.WILDCARDS, *webhooks.ALERT_EVENTS, *webhooks.CONTAINER_EVENTS]
    assert {"alert.seal_broken", "container.transfer", "container.eseal_tamper"} <= set(names)
    created = ok(subscribe(client, people.guangzhou, receiver.url, [*names, "alert.*"]))
    assert created["events"] == names, "duplicates are dropped, order kept"


def test_a_target_that_turns_private_is_not_called(
    app: Flask, client: FlaskClient, people: People, receiver: Receiver
) -> None:
    created = ok(subscribe(client, people.forwarder, receiver.url, ["alert.*"]))
    declare(client, people.forwarder)
    ok(transfer(client, people.operator, node="CNNSA", condition="broken"))
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    assert run_job(client) == 0
    assert receiver.requests == []
    [delivery] = ok(client.get(f"/api/v1/subscriptions/{created['id']}", headers=people.forwarder), 200)["deliveries"]
    assert (delivery["status"], delivery["attempts"]) == ("pending", 1)
    assert "127.0.0.1" in delivery["last_error"]


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_address_connected_to_is_checked_too(
    monkeypatch: pytest.MonkeyPatch, receiver: Receiver, scheme: str
) -> None:
    # DNS may answer differently at delivery than when it was checked: the connected peer is checked before any
    # byte (or TLS handshake) goes out.
    monkeypatch.setattr(webhooks, "target_problem", lambda url, allow_private: None)
    outgoing = webhooks._Outgoing(1, "msg_test", {"type": "alert.overdue"}, receiver.url, webhooks.new_secret())
    outgoing = dataclasses.replace(outgoing, url=outgoing.url.replace("http:", f"{scheme}:", 1))
    error = webhooks._post(outgoing, webhooks.Settings(allow_private=False, timeout_s=2))
    assert error is not None
    assert "connected to 127.0.0.1" in error
    assert receiver.requests == []


def test_subscriptions_belong_to_their_caller(
    client: FlaskClient, admin: dict[str, str], people: People, receiver: Receiver
) -> None:
    mine = ok(subscribe(client, people.forwarder, receiver.url, ["alert.*"]))
    path = f"/api/v1/subscriptions/{mine['id']}"
    for stranger in (people.other_forwarder, people.guangzhou):
        assert client.get(path, headers=stranger).status_code == 404
        assert client.delete(path, headers=stranger).status_code == 404
        assert ok(client.get("/api/v1/subscriptions", headers=stranger), 200)["items"] == []
    for unknown in (99999, 2**31, 2**63, 2**70):
        assert client.get(f"/api/v1/subscriptions/{unknown}", headers=admin).status_code == 404
        assert client.delete(f"/api/v1/subscriptions/{unknown}", headers=admin).status_code == 404
    assert subscribe(client, people.operator, receiver.url, ["alert.*"]).status_code == 403
    assert client.get("/api/v1/subscriptions", headers=people.operator).status_code == 403
    assert client.get("/api/v1/subscriptions").status_code == 401
    # Admins see and manage every subscription.
    assert ok(client.get(path, headers=admin), 200)["id"] == mine["id"]
    assert [s["id"] for s in ok(client.get("/api/v1/subscriptions", headers=admin), 200)["items"]] == [mine["id"]]


def test_each_subscription_gets_the_events_of_its_scope(
    client: FlaskClient, admin: dict[str, str], people: People, receiver: Receiver
) -> None:
    def hook(token: dict[str, str], name: str) -> str:
        ok(subscribe(client, token, f"{receiver.url}/{name}", ["alert.*"]))
        return f"/hooks/railsea/{name}"

    paths = {
        name: hook(token, name)
        for name, token in {
            "forwarder": people.forwarder,
            "other_forwarder": people.other_forwarder,
            "guangzhou": people.guangzhou,
            "shenzhen": people.shenzhen,
            "admin": admin,
        }.items()
    }
    declare(client, people.forwarder)
    declare(client, people.other_forwarder, number=OTHER_BOX, reference="WH-2")
    # Pearl's box: a broken seal at Nansha (Guangzhou's office), then moved while held to Shekou (Shenzhen's).
    ok(transfer(client, people.operator, node="CNNSA", condition="broken"))
    ok(transfer(client, people.operator, node=OFF_ROUTE))
    # Delta's box: off its route at Shekou (Shenzhen's office).
    ok(transfer(client, people.operator, node=OFF_ROUTE, number=OTHER_BOX))
    assert run_job(client) == 9

    def got(name: str) -> list[tuple[str, str]]:
        bodies = [r.json for r in receiver.requests if r.path == paths[name]]
        return sorted((b["data"]["container"], b["data"]["kind"]) for b in bodies)

    assert got("forwarder") == [(BOX, "moved_while_held"), (BOX, "seal_broken")]
    assert got("other_forwarder") == [(OTHER_BOX, "route_deviation")]
    assert got("guangzhou") == [(BOX, "seal_broken")]
    assert got("shenzhen") == [(BOX, "moved_while_held"), (OTHER_BOX, "route_deviation")]
    assert got("admin") == [(BOX, "moved_while_held"), (BOX, "seal_broken"), (OTHER_BOX, "route_deviation")]


def test_a_supervisor_gets_container_events_at_nodes_of_its_offices(
    client: FlaskClient, people: People, receiver: Receiver
) -> None:
    ok(subscribe(client, people.shenzhen, receiver.url, ["container.*"]))
    declare(client, people.forwarder)  # at CNSJQ: Guangzhou's
    ok(transfer(client, people.operator, node="CNNSA"))  # Guangzhou's
    ok(transfer(client, people.operator, node=OFF_ROUTE))  # Shenzhen's
    assert run_job(client) == 1
    [received] = receiver.requests
    assert received.json["type"] == "container.transfer"
    assert received.json["data"]["node"] == OFF_ROUTE
    assert received.json["data"]["event"]["reasons"] == ["route_deviation"]


def test_deleting_a_subscription_stops_its_deliveries(
    app: Flask, client: FlaskClient, people: People, receiver: Receiver
) -> None:
    created = ok(subscribe(client, people.forwarder, receiver.url, ["alert.*", "container.*"]))
    path = f"/api/v1/subscriptions/{created['id']}"
    declare(client, people.forwarder)
    ok(transfer(client, people.operator, node="CNNSA", condition="broken"))
    assert outbox_count(app) == 3

    response = client.delete(path, headers=people.forwarder)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert client.get(path, headers=people.forwarder).status_code == 404
    assert client.delete(path, headers=people.forwarder).status_code == 404
    assert ok(client.get("/api/v1/subscriptions", headers=people.forwarder), 200)["items"] == []

    assert run_job(client) == 0
    assert run_at(app, datetime.now(UTC) + timedelta(days=1)) == 0
    assert receiver.requests == []
    ok(transfer(client, people.operator, node=OFF_ROUTE))
    assert outbox_count(app) == 3, "a deleted subscription gets no new messages"


def test_a_revoked_keys_subscriptions_get_nothing_new(
    app: Flask, client: FlaskClient, people: People, receiver: Receiver
) -> None:
    ok(subscribe(client, people.forwarder, receiver.url, ["alert.*"]))
    declare(client, people.forwarder)
    token = people.forwarder["Authorization"].removeprefix("Bearer ")
    with db.new_session(app=app) as session:
        key = session.scalars(select(ApiKey).where(ApiKey.name == "Pearl Forwarding")).one()
        key.revoked_at = datetime.now(UTC)
        session.commit()
    time.sleep(app.config["AUTH_CACHE_S"])  # how long a worker trusts a key it looked up
    assert client.get("/api/v1/subscriptions", headers=bearer(token)).status_code == 401
    ok(transfer(client, people.operator, node="CNNSA", condition="broken"))
    assert outbox_count(app) == 0


def test_messages_are_written_in_the_transaction_of_their_event(
    app: Flask, client: FlaskClient, people: People, receiver: Receiver
) -> None:
    ok(subscribe(client, people.forwarder, receiver.url, ["alert.*", "container.*"]))
    declare(client, people.forwarder)
    assert outbox_count(app) == 1  # container.declared, committed with the declaration

    # Failed requests store nothing, messages included.
    assert transfer(client, people.operator, node="CNNSA", number=OTHER_BOX).status_code == 404
    assert transfer(client, people.operator, node="CNZZZ", condition="broken").status_code == 404
    assert transfer(client, people.forwarder, node="CNNSA", condition="broken").status_code == 403
    assert outbox_count(app) == 1

    # A transfer rolled back after its event and alert were written takes its messages with it.
    reading = TransferInput(BOX, "CNNSA", datetime.now(UTC), "arrive", [(SEAL, "broken")])
    with db.new_session(app=app) as session:
        result = register_transfer(session, ADMIN, reading, datetime.now(UTC))
        assert result.alert is not None
        pending = session.scalars(select(OutboxMessage.event_type).order_by(OutboxMessage.id)).all()
        assert pending == ["container.declared", "container.transfer", "alert.seal_broken"]
        session.rollback()
    assert outbox_count(app) == 1

    with db.new_session(app=app) as session:
        register_transfer(session, ADMIN, reading, datetime.now(UTC))
        session.commit()
    assert outbox_count(app) == 3
    assert run_job(client) == 3
    assert sorted(r.json["type"] for r in receiver.requests) == [
        "alert.seal_broken",
        "container.declared",
        "container.transfer",
    ]
