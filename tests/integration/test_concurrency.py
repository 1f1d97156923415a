"""Against a real multi-worker server on each database: simultaneous transfers of one box are decided one by one."""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bench.common import serve_process
from tests.conftest import ADMIN_TOKEN, TestDatabase
from tracking.iso6346 import check_digit

CLIENTS = 16
STARTUP_SECONDS = 30
ITINERARY = ["HKHKG", "CNNSA", "CNNSA-RLS", "CNGGZ-DLG", "CNCSH"]
BODY = "RSQU000001"
BOX = f"{BODY}{check_digit(BODY)}"
CUSTOMS_SEAL, CARRIER_SEAL = "CN-000001", "HK-000001"


@dataclass(frozen=True)
class Server:
    port: int
    log: Path

    def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
        """One request on its own connection; the status and the decoded JSON body (None when there is none)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=90)
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            connection.close()

    def ok(self, method: str, path: str, token: str | None = None, body: Any = None, status: int = 200) -> Any:
        got, payload = self.call(method, path, token, body)
        assert got == status, (method, path, got, payload)
        return payload


@pytest.fixture
def server(app: Flask, database: TestDatabase, tmp_path: Path) -> Iterator[Server]:
    """`railsea serve` with two threaded workers on the freshly reset test database."""
    log = tmp_path / "server.log"
    with serve_process(
        database.url, workers=2, threads=8, log=log, timeout_s=STARTUP_SECONDS, admin_token=ADMIN_TOKEN
    ) as url:
        yield Server(int(url.rsplit(":", 1)[1]), log)


def test_simultaneous_transfers_of_one_box_are_decided_one_at_a_time(server: Server) -> None:
    def key(**body: Any) -> str:
        token: str = server.ok("POST", "/api/v1/keys", ADMIN_TOKEN, body, 201)["token"]
        return token

    forwarder = key(name="Pearl Forwarding", role="forwarder", party="PEARLFWD")
    operator = key(name="Terminals", role="operator", nodes=ITINERARY)
    guangzhou = key(name="Guangzhou customs", role="supervisor", offices=["CN-GUANGZHOU"])
    now = datetime.now(UTC)
    declaration = {
        "reference": "RACE-1",
        "direction": "import",
        "origin": ITINERARY[0],
        "destination": ITINERARY[-1],
        "itinerary": ITINERARY,
        "deadline": (now + timedelta(days=7)).isoformat(),
        "containers": [{"number": BOX, "seals": [{"number": CUSTOMS_SEAL}, {"number": CARRIER_SEAL}]}],
    }
    server.ok("POST", "/api/v1/declarations", forwarder, declaration, 201)
    first = {
        "container": BOX,
        "node": "HKHKG",
        "event_time": now.isoformat(),
        "activity": "depart",
        "seals": [{"number": s, "condition": "intact"} for s in (CUSTOMS_SEAL, CARRIER_SEAL)],
    }
    assert server.ok("POST", "/api/v1/transfers", operator, first, 201)["decision"] == "release"

    # Sixteen handhelds at Nansha read the same replaced seal at the same moment.
    wrong = {
        **first,
        "node": "CNNSA",
        "activity": "arrive",
        "seals": [{"number": s, "condition": "intact"} for s in (CUSTOMS_SEAL, "GZ-0666")],
    }
    barrier = threading.Barrier(CLIENTS)

    def post(index: int) -> tuple[int, Any]:
        body = {**wrong, "event_time": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(), "vehicle": f"H{index}"}
        barrier.wait(timeout=30)
        return server.call("POST", "/api/v1/transfers", operator, body)

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(post, range(CLIENTS)))

    statuses = Counter(status for status, _ in results)
    assert not [r for r in results if r[0] >= 500], f"server errors: {results}\n{server.log.read_text()[-4000:]}"
    assert statuses == {201: CLIENTS}, results
    decisions = Counter(body["decision"] for _, body in results)
    assert decisions == {"reinspect": 1, "hold": CLIENTS - 1}, results
    assert len({body["id"] for _, body in results}) == CLIENTS, "every transfer is its own event"

    events = server.ok("GET", f"/api/v1/containers/{BOX}/events", forwarder)["items"]
    at_nansha = Counter(e["decision"] for e in events if e["node"] == "CNNSA")
    assert at_nansha == {"reinspect": 1, "hold": CLIENTS - 1}
    assert len(events) == 2 + CLIENTS

    kinds: Counter[str] = Counter()
    cursor = None
    while True:
        page = server.ok("GET", "/api/v1/alerts" + (f"?cursor={cursor}" if cursor else ""), guangzhou)
        kinds.update(a["kind"] for a in page["items"] if a["container"] == BOX)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert kinds == {"seal_missing": 1, "moved_while_held": CLIENTS - 1}

    state = server.ok("GET", f"/api/v1/containers/{BOX}", forwarder)
    assert (state["status"], state["held"], state["open_alerts"]) == ("held", True, CLIENTS)
    evidence = server.ok("GET", f"/api/v1/containers/{BOX}/evidence", forwarder)
    assert evidence["valid"] is True
    assert [e["record"]["seq"] for e in evidence["entries"]] == list(range(1, CLIENTS + 3))


def test_simultaneous_identical_declarations_store_one(server: Server) -> None:
    forwarder: str = server.ok(
        "POST", "/api/v1/keys", ADMIN_TOKEN, {"name": "Pearl", "role": "forwarder", "party": "PEARLFWD"}, 201
    )["token"]
    declaration = {
        "reference": "DOUBLE-CLICK",
        "direction": "import",
        "origin": ITINERARY[0],
        "destination": ITINERARY[-1],
        "itinerary": ITINERARY,
        "deadline": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        "containers": [{"number": BOX, "seals": [{"number": CUSTOMS_SEAL}, {"number": CARRIER_SEAL}]}],
    }
    barrier = threading.Barrier(CLIENTS)

    def post(_: int) -> tuple[int, Any]:
        barrier.wait(timeout=30)
        return server.call("POST", "/api/v1/declarations", forwarder, declaration)

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(post, range(CLIENTS)))

    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 1, 409: CLIENTS - 1}, (
        "BUG tracking/declarations.py declare: the reference and open-container checks are plain SELECTs, so on "
        "PostgreSQL a simultaneous duplicate passes them and hits the unique index (declarations party_id+reference, "
        f"uq_containers_open_number) as an unhandled IntegrityError (500): {statuses}; "
        + next((line for line in server.log.read_text().splitlines() if "IntegrityError" in line), "")
    )
    listed = server.ok("GET", "/api/v1/declarations", forwarder)["items"]
    assert len(listed) == 1


def test_simultaneous_retries_with_one_idempotency_key_act_once(server: Server) -> None:
    def key(**body: Any) -> str:
        token: str = server.ok("POST", "/api/v1/keys", ADMIN_TOKEN, body, 201)["token"]
        return token

    forwarder = key(name="Pearl Forwarding", role="forwarder", party="PEARLFWD")
    operator = key(name="Terminals", role="operator", nodes=ITINERARY)
    declaration = {
        "reference": "RETRY-1",
        "direction": "import",
        "origin": ITINERARY[0],
        "destination": ITINERARY[-1],
        "itinerary": ITINERARY,
        "deadline": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
        "containers": [{"number": BOX, "seals": [{"number": CUSTOMS_SEAL}, {"number": CARRIER_SEAL}]}],
    }
    server.ok("POST", "/api/v1/declarations", forwarder, declaration, 201)
    body = {
        "container": BOX,
        "node": "CNNSA",
        "event_time": datetime.now(UTC).isoformat(),
        "activity": "arrive",
        "seals": [{"number": s, "condition": "intact"} for s in (CUSTOMS_SEAL, "GZ-0666")],
    }
    barrier = threading.Barrier(CLIENTS)

    def post(_: int) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=90)
        try:
            headers = {
                "Authorization": f"Bearer {operator}",
                "Content-Type": "application/json",
                "Idempotency-Key": "handheld-42-000017",
            }
            barrier.wait(timeout=30)
            connection.request("POST", "/api/v1/transfers", body=json.dumps(body).encode(), headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(post, range(CLIENTS)))

    assert Counter(status for status, _ in results) == {201: CLIENTS}, results
    assert len({json.dumps(payload, sort_keys=True) for _, payload in results}) == 1, (
        "every retry gets the first answer"
    )
    assert results[0][1]["decision"] == "reinspect"
    events = server.ok("GET", f"/api/v1/containers/{BOX}/events", forwarder)["items"]
    assert [e["type"] for e in events] == ["declared", "transfer"]
    assert server.ok("GET", f"/api/v1/containers/{BOX}", forwarder)["open_alerts"] == 1
