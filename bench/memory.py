"""Memory of one gunicorn worker (VmRSS from /proc): RailSea after start-up, after a first route request has
built its planner, and after one route query of every other kind (objectives, timetable, alternatives: each keeps
more planner tables), with the reference network and with the 10,000-node generated network (SpatiaLite); as a
same-run baseline, a worker of a bare Flask app under the same gunicorn settings.

Run: .venv/bin/python -m bench.memory
Targets (issue 7): ≤ 150 MB with the reference network, ≤ 300 MB with the 10k network, checked after the first
route and after every kind of query.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

# Only the standard library at module level: gunicorn imports this module for the bare baseline app.
if TYPE_CHECKING:
    from flask import Flask

    from bench.common import Server

REFERENCE_TARGET_MB = 150.0
LARGE_TARGET_MB = 300.0
THREADS = 8


def bare_app() -> Flask:
    """The baseline: Flask and one JSON route, nothing of RailSea."""
    from flask import Flask

    app = Flask(__name__)

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The parent pid is the second field after the parenthesised command name.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS, and its anonymous and file-backed parts, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            values[name] = int(rest.split()[0]) / 1024
    return values


def the_worker(master: int) -> int:
    """The one worker of a gunicorn master (waits briefly for it to appear)."""
    deadline = time.monotonic() + 10
    while True:
        workers = children(master)
        if len(workers) == 1:
            return workers[0]
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn master {master} has workers {workers}, expected one")
        time.sleep(0.1)


def settle() -> None:
    # Let the worker finish its start-up (gunicorn's own bookkeeping, the first request's lazy imports).
    time.sleep(1.0)


@contextmanager
def railsea(database_url: str, log: Path) -> Iterator[tuple[Server, int]]:
    """`railsea serve` with one worker; yields a client and the worker's pid."""
    from bench.common import Server, serve_process

    before = set(children(os.getpid()))
    with serve_process(database_url, workers=1, threads=THREADS, log=log, timeout_s=60) as url:
        (master,) = set(children(os.getpid())) - before
        yield Server(url), the_worker(master)


def bare_worker_mb(log: Path) -> float:
    """VmRSS of the worker of the bare app, under the settings `railsea serve` gives gunicorn."""
    from bench.common import free_port, healthy

    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", str(THREADS)]
    command += ["--worker-class", "gthread", "--timeout", "60", "--graceful-timeout", "10", "--access-logfile", "-"]
    command += ["bench.memory:bare_app()"]
    with healthy(command, port, log=log, timeout_s=60, cwd=Path(__file__).parent.parent) as process:
        settle()
        return memory_mb(the_worker(process.pid))["VmRSS"]


def api_code(code: str) -> str:
    """A generated code (`XX01234`) in the API's node-code form (`XX012-34`), so routes can be asked for."""
    return f"{code[:5]}-{code[5:]}"


def large_database(tmp: Path) -> tuple[str, list[tuple[str, str]]]:
    """A fresh SpatiaLite database holding only the 10,000-node generated network; a few far-apart pairs."""
    from dataclasses import replace

    from sqlalchemy.orm import Session

    import migrations
    from bench.graphs import synthetic_network
    from routing.db import make_engine
    from routing.network import Network
    from routing.service import load_network

    generated = synthetic_network()
    network = Network(
        version=generated.version,
        nodes={api_code(c): replace(n, code=api_code(c)) for c, n in generated.nodes.items()},
        legs=tuple(replace(x, origin=api_code(x.origin), destination=api_code(x.destination)) for x in generated.legs),
    )
    url = f"sqlite:///{tmp / 'large.db'}"
    engine = make_engine(url)
    migrations.upgrade(engine)
    with Session(engine) as session:
        load_network(session, network)
        session.commit()
    engine.dispose()
    codes = sorted(network.nodes)
    return url, [(codes[i], codes[-1 - i]) for i in range(0, 50, 5)]


# After the first route, one query of each other kind: every objective, timetable-aware, alternatives. Each builds
# and keeps more of the planner (weighted arcs per objective, landmark tables), as a busy worker's would.
OTHER_QUERIES: list[dict[str, object]] = [
    {"optimize": "cost"},
    {"optimize": "co2"},
    {"optimize": "inspections"},
    {"depart_at": "2026-12-07T00:00:00Z"},
    {"alternatives": 5},
]


def route(srv: Server, pairs: Sequence[tuple[str, str]], **query: object) -> tuple[str, str]:
    """A route request; tries pairs until one has a route and returns that pair."""
    for origin, destination in pairs:
        status, body = srv.call("POST", "/api/v1/routes", {"origin": origin, "destination": destination, **query})
        if status == 200:
            return origin, destination
        assert status == 422, body
    raise RuntimeError("no pair had a route")


def measure(label: str, url: str, pairs: Sequence[tuple[str, str]], log: Path) -> tuple[float, float, float]:
    """VmRSS after start-up, after the first route, after one query of every other kind."""
    with railsea(url, log) as (srv, worker):
        settle()
        started = memory_mb(worker)
        clock = time.perf_counter()
        pair = route(srv, pairs)
        took = time.perf_counter() - clock
        settle()
        warmed = memory_mb(worker)
        for query in OTHER_QUERIES:
            route(srv, [pair], **query)
        settle()
        busy = memory_mb(worker)
    print(
        f"{label:<22} start-up {started['VmRSS']:6.1f} MB   after a first route {warmed['VmRSS']:6.1f} MB "
        f"(anon {warmed['RssAnon']:.1f}, file {warmed['RssFile']:.1f}; it took {took * 1000:,.0f} ms)   "
        f"after every kind of query {busy['VmRSS']:6.1f} MB"
    )
    return started["VmRSS"], warmed["VmRSS"], busy["VmRSS"]


def verdict(value: float, target: float) -> str:
    return f"{value:6.1f} MB ≤ {target:.0f} MB: {'met' if value <= target else 'NOT met'}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    from bench.common import fresh_database, workdir

    print(f"memory of one gunicorn worker (gthread, {THREADS} threads), VmRSS from /proc/<worker>/status")
    with workdir() as tmp:
        bare = bare_worker_mb(tmp / "bare.log")
        print(f"{'bare Flask (baseline)':<22} start-up {bare:6.1f} MB")
        url = fresh_database("spatialite", tmp)
        _, reference, reference_busy = measure(
            "reference network", url, [("CNCSH", "DEDUI"), ("HKHKG", "CNCSH")], tmp / "ref.log"
        )
        started = time.perf_counter()
        url, pairs = large_database(tmp)
        print(f"  (10k network generated and loaded in {time.perf_counter() - started:.0f} s)")
        _, large, large_busy = measure("10,000-node network", url, pairs, tmp / "large.log")
    rows = [
        ("reference network, after a first route", reference, REFERENCE_TARGET_MB),
        ("reference network, after every kind of query", reference_busy, REFERENCE_TARGET_MB),
        ("10,000-node network, after a first route", large, LARGE_TARGET_MB),
        ("10,000-node network, after every kind of query", large_busy, LARGE_TARGET_MB),
    ]
    for label, value, target in rows:
        print(f"{label:<48} {verdict(value, target)}   ({value / bare:.1f}× bare Flask)")
    return 0 if all(value <= target for _, value, target in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
