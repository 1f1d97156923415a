"""HTTP throughput and latency of RailSea under gunicorn against minimal Flask baselines (issue 7, targets 1 and 2).

On each database, RailSea (`railsea serve`) and the baselines of `bench.baseline` run side by side under the same
gunicorn configuration (gthread, the same workers and threads) on loopback, and one client measures them in short
slices that alternate A B B A ..., so that drift on a shared machine falls on target and baseline alike:

- `POST /api/v1/transfers` with the full rules (seal check, decision, alert on a seal change, evidence chain, an
  Idempotency-Key on every request): each request is a distinct valid transfer, declared containers leaving Hong Kong
  and arriving at Changsha node by node; one container in ten reads a changed seal at one of its steps, so that it is
  re-inspected with an alert and held (each later move a `hold` with an alert). Baseline: one primary-key select and
  one insert in one transaction on the same database, through the same engine set-up (BEGIN IMMEDIATE on SQLite).
- `POST /api/v1/routes` on the reference network (objectives in turn, some timetable-aware) against a bare Flask
  JSON endpoint.

A closed loop (N connections, each sending its next request when its last one is answered) gives the maximum
requests/s; then an open loop at half of that rate (constant rate; latency counted from the intended send time, so a
stalled server is charged for the requests it delays) gives p50 and p99. Every phase is bounded in time and in count
(transfers also by the prepared requests). The client is asyncio on raw sockets with `Connection: close` (gthread
keep-alive gives unrepeatable throughput), the same for targets and baselines. Every transfer's answer is checked
against the decision the scenario implies. The servers' CPU per request (gunicorn workers, and on PostGIS the
database backends serving them) is printed too: on a shared machine it is steadier than requests/s.

Run: .venv/bin/python -m bench.http [--backend spatialite|postgis] [--seconds N]
Targets (issue 7): transfers ≥ 0.70 × select+insert req/s on each database, with p99 ≤ 3 × p50 at half the maximum
load; routes ≥ 0.40 × the bare endpoint's req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, make_url, text

from bench import baseline
from bench.common import (
    ITINERARY,
    STEPS,
    Server,
    declare,
    free_port,
    fresh_database,
    healthy,
    serve_process,
    workdir,
)

TRANSFER_TARGET = 0.70
ROUTES_TARGET = 0.40
TAIL_TARGET = 3.0
# One container in ten reads a changed seal (broken, or another number) at one of its steps, which step varying
# from box to box: that transfer is `reinspect` with an alert, the box's later ones `hold` with an alert each.
CHANGED_EVERY = 10
ROUTE_PAIRS = [
    ("HKHKG", "CNCSH"),
    ("CNSJQ", "CNNSA"),
    ("CNCSH", "DEDUI"),
    ("CNNSA", "CNGGZ-DLG"),
    ("HKHKG", "CNNSA-RLS"),
    ("CNGGZ-DLG", "HKHKG"),
    ("CNFOS", "CNCSH"),
    ("CNNSA", "DEDUI"),
]
OBJECTIVES = ["time", "cost", "co2", "inspections"]
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


# --- the client ---------------------------------------------------------------------------------------------------


def http_request(port: int, method: str, path: str, body: Any, headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one HTTP/1.1 request with a JSON body and `Connection: close`."""
    data = json.dumps(body, separators=(",", ":")).encode()
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(data)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


@dataclass
class Result:
    """What one or more phases of one endpoint measured."""

    label: str
    sent: int = 0
    elapsed_s: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    unexpected: int = 0  # answered 2xx, but not with the decision the scenario implies
    alerts: int = 0
    exhausted: bool = False  # stopped by its count bound or because the prepared requests ran out
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def server_ms(self) -> float:
        return self.server_cpu_s / len(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300) + self.unexpected

    def merge(self, other: Result) -> Result:
        merged = Result(self.label, self.sent + other.sent, self.elapsed_s + other.elapsed_s)
        merged.latencies = self.latencies + other.latencies
        merged.statuses = self.statuses + other.statuses
        merged.decisions = self.decisions + other.decisions
        merged.unexpected = self.unexpected + other.unexpected
        merged.alerts = self.alerts + other.alerts
        merged.exhausted = self.exhausted or other.exhausted
        merged.client_cpu_s = self.client_cpu_s + other.client_cpu_s
        merged.server_cpu_s = self.server_cpu_s + other.server_cpu_s
        return merged


class Source:
    """The requests of one endpoint: cycled (`cycle=True`) or each sent once, with the decision each must get."""

    def __init__(self, requests: Sequence[bytes], expected: Sequence[str] | None = None, cycle: bool = False):
        self.requests = requests
        self.expected = expected
        self.cycle = cycle
        self.next = 0

    def take(self) -> int | None:
        if not self.cycle and self.next >= len(self.requests):
            return None
        self.next += 1
        return self.next - 1

    def get(self, index: int) -> tuple[bytes, str | None]:
        i = index % len(self.requests)
        return self.requests[i], (self.expected[i] if self.expected else None)


async def exchange(port: int, data: bytes) -> bytes:
    """Send one request on a new connection; the server closes it after the response."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, data)
        chunks = []
        while chunk := await loop.sock_recv(sock, 262144):
            chunks.append(chunk)
    finally:
        sock.close()
    return b"".join(chunks)


def check(result: Result, response: bytes, expected: str | None) -> None:
    try:
        status = int(response[9:12])
    except ValueError:
        status = 0
    result.statuses[status] += 1
    if expected is None or not 200 <= status < 300:
        return
    body = json.loads(response[response.index(b"\r\n\r\n") + 4 :])
    result.decisions[body["decision"]] += 1
    result.alerts += body["alert_id"] is not None
    result.unexpected += body["decision"] != expected


async def _closed(port: int, source: Source, result: Result, connections: int, seconds: float, count: int) -> None:
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        while time.perf_counter() < deadline and result.sent < count:
            index = source.take()
            if index is None:
                result.exhausted = True
                return
            result.sent += 1
            data, expected = source.get(index)
            sent = time.perf_counter()
            try:
                response = await exchange(port, data)
            except OSError:
                result.statuses[0] += 1
                continue
            result.latencies.append(time.perf_counter() - sent)
            check(result, response, expected)
        result.exhausted = result.exhausted or result.sent >= count

    await asyncio.gather(*(connection() for _ in range(connections)))


async def _open(port: int, source: Source, result: Result, rate: float, seconds: float, count: int) -> None:
    """Constant-rate arrivals; at most 512 sockets open at once, later arrivals wait (and are charged for it)."""
    total = min(count, max(1, int(rate * seconds)))
    slots = asyncio.Semaphore(512)
    started = time.perf_counter() + 0.002
    tasks: list[asyncio.Task[None]] = []

    async def one(index: int, intended: float) -> None:
        data, expected = source.get(index)
        async with slots:
            try:
                response = await exchange(port, data)
            except OSError:
                result.statuses[0] += 1
                return
        result.latencies.append(time.perf_counter() - intended)
        check(result, response, expected)

    i = 0
    while i < total:
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.perf_counter()
        while i < total and started + i / rate <= now:
            index = source.take()
            if index is None:
                result.exhausted = True
                total = i
                break
            tasks.append(asyncio.create_task(one(index, started + i / rate)))
            result.sent += 1
            i += 1
    await asyncio.gather(*tasks)


@dataclass
class Endpoint:
    """Something to measure: where it listens, what to send it, and how much CPU its server has used so far."""

    label: str
    port: int
    source: Source
    server_cpu: Callable[[], float]

    def run(self, closed: int | None, rate: float | None, seconds: float, count: int) -> Result:
        """One phase: a closed loop with `closed` connections, or an open loop at `rate` requests/s."""
        result = Result(self.label)
        client_cpu, server_cpu, started = time.process_time(), self.server_cpu(), time.perf_counter()
        if closed is not None:
            asyncio.run(_closed(self.port, self.source, result, closed, seconds, count))
        else:
            assert rate is not None
            asyncio.run(_open(self.port, self.source, result, rate, seconds, count))
        result.elapsed_s = time.perf_counter() - started
        result.client_cpu_s = time.process_time() - client_cpu
        result.server_cpu_s = self.server_cpu() - server_cpu
        return result


# --- the servers' CPU ---------------------------------------------------------------------------------------------


def _cpu_of(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes (those that are gone count nothing)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total * TICK_S


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _listener(port: int) -> int:
    """The process whose command line binds `port` (the gunicorn master of `railsea serve`)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    args = cmdline.read().split(b"\0")
            except OSError:
                continue
            if b"--port" in args and args[args.index(b"--port") + 1 : args.index(b"--port") + 2] == [
                str(port).encode()
            ]:
                return int(entry)
    raise RuntimeError(f"no process serves port {port}")


_BACKENDS = text(
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = :application"
)


class CpuMeter:
    """CPU seconds used so far by a gunicorn master's workers and, on PostgreSQL, by the backends serving them
    (connections named by `application_name`)."""

    def __init__(self, master: int, admin: Engine | None = None, application: str | None = None) -> None:
        self.workers = _children(master)
        self.admin, self.application = admin, application

    def __call__(self) -> float:
        pids = list(self.workers)
        if self.admin is not None:
            with self.admin.connect() as conn:
                pids += conn.scalars(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = :a"
                    ),
                    {"a": self.application},
                ).all()
        return _cpu_of(pids)


# --- the scenario -------------------------------------------------------------------------------------------------


def transfers(port: int, token: str, numbers: list[str], run: str) -> Source:
    """Every container's steps, interleaved (step 1 of every box, then step 2, ...), so that two transfers of one
    box are never in flight together; each with its own Idempotency-Key and the decision the rules must give."""
    base = datetime.now(UTC) - timedelta(hours=3)
    requests, expected = [], []
    for step, (node, activity) in enumerate(STEPS):
        for c, number in enumerate(numbers):
            changed_at = (c // CHANGED_EVERY) % len(STEPS) if c % CHANGED_EVERY == CHANGED_EVERY - 1 else len(STEPS)
            seal = {"number": f"S{number}", "condition": "intact"}
            if step == changed_at:
                seal = {"number": f"S{number}", "condition": "broken"} if c % 20 == 19 else {"number": f"X{number}"}
                seal.setdefault("condition", "intact")
            body = {
                "container": number,
                "node": node,
                "event_time": (base + timedelta(minutes=15 * step, seconds=c % 600)).isoformat(),
                "activity": activity,
                "seals": [seal],
            }
            if step % 2:
                body["vehicle"] = f"TRUCK-{c % 97}"
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"{run}-{number}-{step}"}
            requests.append(http_request(port, "POST", "/api/v1/transfers", body, headers))
            if step > changed_at:
                expected.append("hold")
            elif step == changed_at:
                expected.append("reinspect")
            elif node == ITINERARY[-1]:
                expected.append("inspect")
            else:
                expected.append("release")
    return Source(requests, expected)


def route_bodies(srv: Server, token: str) -> list[dict[str, Any]]:
    """Route queries on the reference network that the planner answers (objectives rotate; some timetable-aware)."""
    depart_at = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0).isoformat()
    bodies: list[dict[str, Any]] = []
    for i, (origin, destination) in enumerate(ROUTE_PAIRS):
        for j, objective in enumerate(OBJECTIVES):
            body: dict[str, Any] = {"origin": origin, "destination": destination, "optimize": objective}
            if (i + j) % 4 == 3:
                body["depart_at"] = depart_at
            status, _ = srv.call("POST", "/api/v1/routes", body, token=token)
            if status == 200:
                bodies.append(body)
    assert len(bodies) >= len(ROUTE_PAIRS), f"only {len(bodies)} route queries answered"
    return bodies


@contextmanager
def serve_baseline(database_url: str, workers: int, threads: int, log: Path) -> Iterator[tuple[int, int]]:
    """bench.baseline under gunicorn on a free loopback port; yields the port and the master's pid once it answers."""
    port = free_port()
    command = [sys.executable, "-m", "bench.baseline", "--database-url", database_url, "--port", str(port)]
    command += ["--workers", str(workers), "--threads", str(threads)]
    with healthy(command, port, log=log) as process:
        yield port, process.pid


def named(url: str, application: str) -> str:
    """The URL with the connections named, so that their PostgreSQL backends can be told apart."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return url
    return parsed.update_query_dict({"application_name": application}).render_as_string(hide_password=False)


# --- measuring ----------------------------------------------------------------------------------------------------


@dataclass
class Pair:
    """An endpoint and its baseline on one database: closed loops (maximum) and open loops (half of it)."""

    target: Result
    base: Result
    target_open: Result
    base_open: Result

    @property
    def ratio(self) -> float:
        return self.target.rate / self.base.rate if self.base.rate else float("nan")

    @property
    def cpu_ratio(self) -> float:
        return self.base.server_ms / self.target.server_ms

    @property
    def tail(self) -> float:
        return self.target_open.percentile_ms(0.99) / self.target_open.percentile_ms(0.5)


def alternate(
    target: Endpoint, base: Endpoint, seconds: float, slice_s: float, phase: Callable[[Endpoint], Result]
) -> tuple[Result, Result]:
    """`phase` on target and baseline in slices, A B B A A B ..., `seconds` for each in all."""
    results: dict[str, Result] = {}
    for i in range(max(1, round(seconds / slice_s))):
        for endpoint in (target, base) if i % 2 == 0 else (base, target):
            out = phase(endpoint)
            results[endpoint.label] = results[endpoint.label].merge(out) if endpoint.label in results else out
    return results[target.label], results[base.label]


def measure(target: Endpoint, base: Endpoint, args: argparse.Namespace) -> Pair:
    slices = max(1, round(args.seconds / args.slice))
    count = args.max_requests // slices

    def closed(endpoint: Endpoint) -> Result:
        return endpoint.run(args.connections, None, args.seconds / slices, count)

    t, b = alternate(target, base, args.seconds, args.slice, closed)
    rates = {target.label: t.rate / 2, base.label: b.rate / 2}

    def opened(endpoint: Endpoint) -> Result:
        return endpoint.run(None, rates[endpoint.label], args.seconds / slices, count)

    t_open, b_open = alternate(target, base, args.seconds, args.slice, opened)
    return Pair(t, b, t_open, b_open)


def line(result: Result, opened: Result) -> str:
    notes = []
    if result.errors or opened.errors:
        statuses = dict(result.statuses + opened.statuses)
        notes.append(f"errors: {result.errors + opened.errors} {statuses}, {result.unexpected} other decisions")
    if result.exhausted or opened.exhausted:
        notes.append("count-bounded")
    return (
        f"  {result.label:34}{result.rate:7,.0f} {result.percentile_ms(0.5):7.1f} {result.percentile_ms(0.99):7.1f}"
        f" {result.server_ms:8.2f}  |{opened.rate:7,.0f} {opened.percentile_ms(0.5):7.1f}"
        f" {opened.percentile_ms(0.99):7.1f}  {'; '.join(notes)}"
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def run(backend: str, args: argparse.Namespace) -> dict[str, bool]:
    with workdir() as tmp:
        setup = time.perf_counter()
        url = fresh_database(backend, tmp)
        admin = create_engine(url, isolation_level="AUTOCOMMIT") if backend == "postgis" else None
        target_url, base_url = named(url, "railsea-bench-target"), named(url, "railsea-bench-baseline")
        with serve_process(target_url, workers=args.workers, threads=args.threads, log=tmp / "railsea.log") as root:
            srv = Server(root)
            port = int(root.rsplit(":", 1)[1])
            tokens, numbers = declare(srv, args.containers, reference="HTTP", itinerary=ITINERARY)
            railsea_cpu = CpuMeter(_listener(port), admin, "railsea-bench-target")
            transfer = Endpoint(
                "POST /api/v1/transfers (RailSea)",
                port,
                transfers(port, tokens["operator"], numbers, f"b{os.getpid()}"),
                railsea_cpu,
            )
            auth = {"Authorization": f"Bearer {tokens['forwarder']}"}
            routes = route_bodies(srv, tokens["forwarder"])
            route_requests = [http_request(port, "POST", "/api/v1/routes", b, auth) for b in routes]
            route = Endpoint("POST /api/v1/routes (RailSea)", port, Source(route_requests, cycle=True), railsea_cpu)
            baseline.prepare(url)
            with serve_baseline(base_url, args.workers, args.threads, tmp / "baseline.log") as (base_port, pid):
                base_cpu = CpuMeter(pid, admin, "railsea-bench-baseline")
                # The baseline gets the same bodies and headers (it ignores the headers, and the Host's port).
                first = [transfer.source.get(i)[0] for i in range(len(numbers))]
                select_insert = Endpoint(
                    "select + insert (baseline)",
                    base_port,
                    Source([r.replace(b"/api/v1/transfers", b"/select-insert", 1) for r in first], cycle=True),
                    base_cpu,
                )
                bare_requests = [r.replace(b"/api/v1/routes", b"/bare", 1) for r in route_requests]
                bare = Endpoint("bare Flask JSON (baseline)", base_port, Source(bare_requests, cycle=True), base_cpu)
                print(
                    f"{backend}: set up in {time.perf_counter() - setup:.0f} s ({len(numbers):,} containers declared, "
                    f"{len(transfer.source.requests):,} transfers prepared, {len(routes)} route queries)",
                    flush=True,
                )
                for endpoint in (transfer, select_insert, route, bare):  # warm-up: pools, planners, caches
                    endpoint.run(args.connections, None, 1.0, 200)
                tr = measure(transfer, select_insert, args)
                ro = measure(route, bare, args)
        if admin is not None:
            admin.dispose()
    print(
        f"  {'':34}{'closed loop (maximum)':^32}  |{'open loop, half of it':^23}\n"
        f"  {'endpoint':34}{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms':>8}  |"
        f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for pair in (tr, ro):
        print(line(pair.target, pair.target_open))
        print(line(pair.base, pair.base_open))
    decisions = tr.target.decisions + tr.target_open.decisions
    decided = sum(decisions.values()) or 1
    shares = ", ".join(f"{k} {v / decided:.1%}" for k, v in decisions.most_common())
    unexpected = tr.target.unexpected + tr.target_open.unexpected
    print(
        f"  transfers: {decided:,} decided ({shares}), {tr.target.alerts + tr.target_open.alerts:,} alerts raised, "
        f"{unexpected} other than the scenario's"
    )
    clean = tr.target.errors + tr.target_open.errors + ro.target.errors + ro.target_open.errors == 0
    base_tail = tr.base_open.percentile_ms(0.99) / tr.base_open.percentile_ms(0.5)
    met = {
        "transfers": tr.ratio >= TRANSFER_TARGET and clean,
        "transfers tail": tr.tail <= TAIL_TARGET,
        "routes": ro.ratio >= ROUTES_TARGET and clean,
    }
    print(
        f"  transfers / select+insert = {tr.ratio:.2f} (target ≥ {TRANSFER_TARGET:.2f}: {verdict(met['transfers'])}); "
        f"server CPU per request: baseline's / RailSea's = {tr.cpu_ratio:.2f}\n"
        f"  transfers p99 / p50 at half load = {tr.tail:.1f} (target ≤ {TAIL_TARGET:.0f}: "
        f"{verdict(met['transfers tail'])}; the baseline's {base_tail:.1f})\n"
        f"  routes / bare = {ro.ratio:.2f} (target ≥ {ROUTES_TARGET:.2f}: {verdict(met['routes'])}); "
        f"server CPU per request: bare's / RailSea's = {ro.cpu_ratio:.2f}"
    )
    phases = [tr.target, tr.base, tr.target_open, tr.base_open, ro.target, ro.base, ro.target_open, ro.base_open]
    busy = sum(r.client_cpu_s for r in phases) / sum(r.elapsed_s for r in phases)
    print(
        f"  client CPU {busy:.0%} of one core; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        flush=True,
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["spatialite", "postgis"], action="append")
    parser.add_argument("--seconds", type=float, default=8.0, help="per endpoint and loop (closed, open)")
    parser.add_argument("--slice", type=float, default=2.0, help="seconds per alternating slice")
    parser.add_argument("--connections", type=int, default=16, help="of the closed loop")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--containers", type=int, default=2000, help="declared; 8 transfers each")
    parser.add_argument("--max-requests", type=int, default=100_000, help="count bound of each loop")
    args = parser.parse_args()
    print(
        f"HTTP benchmark: gunicorn gthread, {args.workers} workers × {args.threads} threads on loopback for RailSea "
        f"and the baselines alike; one asyncio client, Connection: close; closed loop with {args.connections} "
        f"connections, then open loop at half of each maximum; {args.seconds:g} s each, in {args.slice:g} s slices "
        "alternating target and baseline. CPU ms = server CPU per request (workers, and PostgreSQL backends).",
        flush=True,
    )
    met: dict[str, bool] = {}
    for backend in args.backend or ["spatialite", "postgis"]:
        for name, ok in run(backend, args).items():
            met[name] = met.get(name, True) and ok
    missed = [name for name, ok in met.items() if not ok]
    print(f"targets not met: {', '.join(missed)}" if missed else "all targets met")


if __name__ == "__main__":
    main()
