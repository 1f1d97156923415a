"""Shared set-up for the service benchmarks: fresh databases, a real gunicorn server, keys and declarations."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.orm import Session

import migrations
from fixtures import REFERENCE_DIR
from routing.db import make_engine
from routing.reference import read_reference
from routing.service import load_network
from tracking.iso6346 import check_digit

ADMIN_TOKEN = "bench-admin-token"
POSTGRES_URL = os.environ.get("RAILSEA_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/railsea_bench")
RAILSEA = Path(sys.executable).with_name("railsea")
# Debian's chromium, driven by Playwright (browser tests, scripts/screenshots.py): nothing is downloaded.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
]
# The import itinerary the service benchmarks declare by default: Hong Kong → Nansha → Guangzhou → Changsha.
ITINERARY = ["HKHKG", "CNNSA", "CNNSA-RLS", "CNGGZ-DLG", "CNCSH"]


def steps(itinerary: list[str]) -> list[tuple[str, str]]:
    """What operators register for a box along `itinerary`: it departs the first node, arrives at and departs each
    node between, and arrives at the last (the inspection node of an import: `inspect`)."""
    middle = [(node, activity) for node in itinerary[1:-1] for activity in ("arrive", "depart")]
    return [(itinerary[0], "depart"), *middle, (itinerary[-1], "arrive")]


STEPS = steps(ITINERARY)


def fresh_database(backend: str, workdir: Path) -> str:
    """A migrated database holding the reference network."""
    if backend == "spatialite":
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        target = make_url(POSTGRES_URL).set(drivername="postgresql+psycopg")
        admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
        admin.dispose()
        with create_engine(target, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        url = target.render_as_string(hide_password=False)
    engine = make_engine(url)
    migrations.upgrade(engine)
    reference = read_reference(REFERENCE_DIR)
    with Session(engine) as session:
        load_network(session, reference.network, reference.node_extras, reference.leg_sources)
        session.commit()
    engine.dispose()
    return url


@contextmanager
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="railsea-bench-") as name:
        yield Path(name)


@dataclass(frozen=True)
class Server:
    """A JSON client of a running server; calls go as its admin unless another token is given."""

    url: str
    admin_token: str = ADMIN_TOKEN

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token or self.admin_token}")
        request.add_header("Connection", "close")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def healthy(
    command: list[str],
    port: int,
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = 30.0,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` (a server on the loopback `port`); yield the process once its /api/v1/health answers, and stop
    it (terminate, then kill, bounded) when the block ends. Its output goes to `log`."""
    output = log.open("wb") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=cwd)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-3000:] if log else ""
                    raise RuntimeError(f"{command[0]} did not become healthy:\n{tail}") from None
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if log:
            output.close()  # type: ignore[union-attr]


@contextmanager
def serve_process(
    database_url: str,
    *,
    workers: int = 2,
    threads: int = 8,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    timeout_s: float = 30.0,
    admin_token: str = ADMIN_TOKEN,
) -> Iterator[str]:
    """`railsea serve` on a free loopback port against `database_url`; yields its base URL once /health answers,
    and stops it when the block ends (see `healthy`)."""
    port = free_port()
    environment = {
        **os.environ,
        "RAILSEA_DATABASE_URL": database_url,
        "RAILSEA_ADMIN_TOKEN": admin_token,
        **(env or {}),
    }
    command = [str(RAILSEA), "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--threads", str(threads)]
    with healthy(command, port, env=environment, log=log, timeout_s=timeout_s):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def server(
    database_url: str, *, workers: int = 2, threads: int = 4, env: Mapping[str, str] | None = None
) -> Iterator[Server]:
    with serve_process(database_url, workers=workers, threads=threads, env=env) as url:
        yield Server(url)


def container_number(serial: int, owner: str = "BNCU") -> str:
    body = f"{owner}{serial:06d}"
    return f"{body}{check_digit(body)}"


def declare(
    srv: Server, count: int, *, reference: str = "BENCH", itinerary: list[str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """Keys for a forwarder, an operator and a supervisor, and `count` declared containers on one itinerary."""
    itinerary = itinerary or ITINERARY
    tokens = {}
    for role, extra in (
        ("forwarder", {"party": "BENCH"}),
        ("operator", {"nodes": itinerary}),
        ("supervisor", {"offices": ["CN-GUANGZHOU", "HK-CED", "CN-CHANGSHA"]}),
    ):
        status, body = srv.call("POST", "/api/v1/keys", {"name": f"bench {role}", "role": role, **extra})
        assert status == 201, body
        tokens[role] = body["token"]
    numbers = [container_number(i) for i in range(1, count + 1)]
    deadline = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    for start in range(0, count, 200):
        chunk = numbers[start : start + 200]
        status, body = srv.call(
            "POST",
            "/api/v1/declarations",
            {
                "reference": f"{reference}-{start}",
                "direction": "import",
                "origin": itinerary[0],
                "destination": itinerary[-1],
                "itinerary": itinerary,
                "deadline": deadline,
                "containers": [{"number": n, "seals": [{"number": f"S{n}"}]} for n in chunk],
            },
            token=tokens["forwarder"],
        )
        assert status == 201, body
    return tokens, numbers


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def percentile_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class AlertStream(threading.Thread):
    """A supervisor's `GET /api/v1/alerts/stream` (Server-Sent Events): notes the worker serving it and when each
    alert arrived (by id, in arrival order)."""

    def __init__(self, url: str, token: str, *, last_event_id: int | None = None, timeout_s: float = 60.0) -> None:
        super().__init__(daemon=True)
        self.url, self.timeout_s = url, timeout_s
        self.headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = str(last_event_id)
        self.ready = threading.Event()
        self.changed = threading.Condition()
        self.arrived: dict[int, tuple[dict[str, Any], float]] = {}
        self.worker = ""
        self.error = ""
        self._conn: http.client.HTTPConnection | None = None

    def run(self) -> None:
        parsed = urlparse(self.url)
        self._conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port, timeout=self.timeout_s)
        try:
            self._conn.request("GET", "/api/v1/alerts/stream", headers=self.headers)
            response = self._conn.getresponse()
            if response.status != 200:
                self.error = f"stream answered {response.status}"
                return
            event, data = "", ""
            while line := response.fp.readline():
                text = line.decode().rstrip("\n")
                if text.startswith(": worker "):
                    self.worker = text.split()[-1]
                    self.ready.set()
                elif text.startswith("event: "):
                    event = text[7:]
                elif text.startswith("data: "):
                    data = text[6:]
                elif text == "":
                    if event == "alert":
                        at = time.perf_counter()
                        alert = json.loads(data)
                        with self.changed:
                            self.arrived[alert["id"]] = (alert, at)
                            self.changed.notify_all()
                    event, data = "", ""
        except (OSError, ValueError) as error:  # ValueError: read after close() from another thread
            self.error = self.error or repr(error)
        finally:
            self.ready.set()

    def wait_for(self, match: Callable[[dict[str, Any]], bool], until: float) -> tuple[dict[str, Any], float] | None:
        """The first alert `match` accepts with its arrival time, waiting until `until` (time.perf_counter)."""

        def found() -> tuple[dict[str, Any], float] | None:
            return next((item for item in self.arrived.values() if match(item[0])), None)

        with self.changed:
            self.changed.wait_for(lambda: found() is not None, max(0.0, until - time.perf_counter()))
            return found()

    def close(self) -> None:
        if self._conn is not None and self._conn.sock is not None:
            # shutdown() wakes the reader blocked in recv(); close() alone would not.
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(socket.SHUT_RDWR)
            self._conn.sock.close()
