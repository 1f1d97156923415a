"""Shared set-up for the service benchmarks: fresh databases, a real gunicorn server, keys and declarations."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
