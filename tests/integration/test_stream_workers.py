"""With two gunicorn workers and Redis, every SSE client receives every alert in its scope."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from urllib.parse import urlparse

from flask import Flask

from tests.api.helpers import box, container_number, declaration_body, iso, now
from tests.conftest import TestDatabase
from tests.live_server import LiveServer, live_server

CLIENTS = 6
ALERTS = 6


class Listener(threading.Thread):
    """One SSE client: notes which worker serves it, then reads alert ids until it has `wanted` or time is up."""

    def __init__(self, server: LiveServer, token: str, wanted: int, deadline: float) -> None:
        super().__init__(daemon=True)
        self.server, self.token, self.wanted, self.deadline = server, token, wanted, deadline
        self.ready = threading.Event()
        self.worker = ""
        self.ids: list[int] = []

    def run(self) -> None:
        parsed = urlparse(self.server.url)
        conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=30)
        try:
            conn.request("GET", "/api/v1/alerts/stream", headers={"Authorization": f"Bearer {self.token}"})
            response = conn.getresponse()
            assert response.status == 200
            while len(self.ids) < self.wanted and time.monotonic() < self.deadline:
                line = response.fp.readline().decode()
                if line.startswith(": worker "):
                    self.worker = line.split()[-1]
                    self.ready.set()
                elif line.startswith("id: "):
                    self.ids.append(int(line[4:]))
        finally:
            self.ready.set()
            conn.close()


def test_every_client_gets_every_alert_across_two_workers(app: Flask, database: TestDatabase) -> None:
    redis_url = os.environ.get("RAILSEA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    # Streams poll the database only once a minute here, so alerts can arrive in time only through Redis.
    env = {"RAILSEA_REDIS_URL": redis_url, "RAILSEA_SSE_POLL_S": "60", "RAILSEA_SSE_KEEPALIVE_S": "1"}
    with live_server(database.url, workers=2, threads=8, env=env) as server:
        _, supervisor = server.call(
            "POST", "/api/v1/keys", {"name": "Guangzhou customs", "role": "supervisor", "offices": ["CN-GUANGZHOU"]}
        )
        _, operator = server.call("POST", "/api/v1/keys", {"name": "Nansha", "role": "operator", "nodes": ["CNNSA"]})
        _, forwarder = server.call("POST", "/api/v1/keys", {"name": "Pearl", "role": "forwarder", "party": "PEARL"})
        numbers = [container_number(n) for n in range(1, ALERTS + 1)]
        status, _ = server.call(
            "POST",
            "/api/v1/declarations",
            declaration_body(containers=[box(n) for n in numbers]),
            token=forwarder["token"],
        )
        assert status == 201

        deadline = time.monotonic() + 40
        listeners: list[Listener] = []
        # Connect until both workers hold streams (bounded): then whichever worker takes a transfer, some
        # client sits on the other one and hears of it only through Redis.
        while len(listeners) < CLIENTS or len({x.worker for x in listeners}) < 2:
            assert len(listeners) < 24, "all streams landed on one worker"
            listener = Listener(server, supervisor["token"], ALERTS, deadline)
            listener.start()
            assert listener.ready.wait(10)
            listeners.append(listener)
        alert_ids = []
        for number in numbers:
            status, body = server.call(
                "POST",
                "/api/v1/transfers",
                {
                    "container": number,
                    "node": "CNNSA",
                    "event_time": iso(now()),
                    "activity": "arrive",
                    "seals": [{"number": "NOT-OURS", "condition": "intact"}],
                },
                token=operator["token"],
            )
            assert status == 201, body
            alert_ids.append(body["alert_id"])
        for listener in listeners:
            listener.join(45)
        assert all(not x.is_alive() for x in listeners)
        assert all(x.ids == alert_ids for x in listeners), json.dumps([[x.worker, x.ids] for x in listeners])
