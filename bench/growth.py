"""Growth: does the service keep its speed once the database holds two years of history? (issue 7, target 4)

The same measurements on an empty PostGIS database and on one filled with 1 M containers, 20 M events and 20 M
e-seal readings (`bench/growth_fill.py`), in the same run and interleaved round by round, so that the noise of a
shared machine falls on both alike:
- transfer throughput: `POST /api/v1/transfers` from a few concurrent clients, each request a distinct, valid
  transfer with an Idempotency-Key (declared boxes depart, arrive and transship along their itinerary);
- timeline latency: `GET /api/v1/containers/{number}/events` and the container view `GET /api/v1/containers/{number}`
  of boxes with 21 events, one request at a time, as their forwarder;
- clearance analytics (no target): `GET /api/v1/analytics/clearance` for the 30 days before today at Nansha (the
  busiest node of the fill) and at every node, as the admin.
The boxes measured are declared and moved through the API in both databases, so their evidence chains are real.

Run: .venv/bin/python -m bench.growth [--containers 1000000 --events 20000000 --readings 20000000] [--reuse]
Targets: transfer throughput filled ≥ 0.80 × empty; timeline p50 filled ≤ 1.5 × empty.
The filled database (`railsea_growth`) is kept: `--reuse` skips the fill when it holds a complete fill of the sizes
asked for. `--explain` profiles one request of each kind in-process on both databases: every SQL statement with its
time, and EXPLAIN (ANALYZE, BUFFERS) on the filled one.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import make_url

from bench import common
from bench.common import Server, percentile_ms, serve_process, workdir
from bench.growth_fill import BENCH_PARTY, Sizes, fill
from tracking.iso6346 import check_digit

FILLED, EMPTY = "railsea_growth", "railsea_growth_empty"
TARGET_THROUGHPUT = 0.80
TARGET_TIMELINE = 1.5
# A fastest route from Hong Kong to Changsha that the planner gives (road to Nansha's rail station, then rail); the
# boxes are imported, so the one inspection is at Changsha: 19 releases and an `inspect` on arrival.
ITINERARY = ("HKHKG", "CNSZX-SZB", "CNSHK", "CNHMN", "CNNSA", "CNNSA-RLS", "CNGGZ-DLG", "CNCSH")
MODES = ("road", "road", "road", "road", "road", "rail", "rail")
OWNER = "GRWU"  # the measured boxes' owner code; the filler uses others
COUNTED = ("parties", "declarations", "containers", "seals", "events", "inspections", "alerts", "devices", "readings")


def database_url(name: str) -> str:
    """The benchmark's PostgreSQL (RAILSEA_BENCH_POSTGRES_URL's server) with database `name`, for SQLAlchemy."""
    base = make_url(common.POSTGRES_URL).set(drivername="postgresql+psycopg", database=name)
    return base.render_as_string(hide_password=False)


def plain(url: str) -> str:
    """The same URL for psycopg itself."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def fresh(name: str) -> str:
    """`name` dropped and created again, migrated, with the reference network."""
    common.POSTGRES_URL = database_url(name)  # where `fresh_database` puts its database
    return common.fresh_database("postgis", Path())


# --- the filled database ----------------------------------------------------------------------------------------


def fill_record(name: str) -> dict[str, Any] | None:
    """What the comment on database `name` says about a completed fill (None: no database, or no completed fill)."""
    with psycopg.connect(plain(database_url("postgres"))) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        record: dict[str, Any] = json.loads(row[0])
    except ValueError:
        return None
    return record if record.get("complete") else None


def ensure_filled(sizes: Sizes, reuse: bool) -> tuple[str, dict[str, Any]]:
    record = fill_record(FILLED)
    wanted = {"containers": sizes.containers, "events": sizes.events, "readings": sizes.readings}
    if reuse and record is not None and record.get("sizes") == wanted:
        print(f"{FILLED}: reusing the fill of {record['finished']} ({record['fill_s']:.0f} s)")
        return database_url(FILLED), record
    if reuse:
        print(f"{FILLED}: no complete fill of these sizes to reuse, filling it")
    started = time.monotonic()
    url = fresh(FILLED)
    print(
        f"{FILLED}: filling with {sizes.containers:,} containers, about {sizes.events:,} events and "
        f"{sizes.readings:,} readings"
    )
    rows, phases = fill(plain(url), sizes, progress=lambda line: print(line, flush=True))
    record = {
        "complete": True,
        "sizes": wanted,
        "rows": rows,
        "phases": {name: round(seconds) for name, seconds in phases.items()},
        "fill_s": time.monotonic() - started,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with psycopg.connect(plain(url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(FILLED), sql.Literal(json.dumps(record)))
        )
    print(f"{FILLED}: filled in {record['fill_s']:.0f} s")
    return url, record


def census(url: str) -> tuple[dict[str, int], int]:
    """Exact row counts of the main tables, and the database's size in bytes."""
    with psycopg.connect(plain(url)) as conn:
        counts = {
            table: int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0])  # type: ignore[index]
            for table in COUNTED
        }
        size = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
    return counts, size


# --- the measured boxes -----------------------------------------------------------------------------------------


def moves() -> list[tuple[str, str, str | None, str | None]]:
    """(node, activity, from mode, to mode) of one trip along ITINERARY: 20 transfers."""
    out: list[tuple[str, str, str | None, str | None]] = [(ITINERARY[0], "depart", None, MODES[0])]
    for k in range(1, len(ITINERARY) - 1):
        node, arriving, leaving = ITINERARY[k], MODES[k - 1], MODES[k]
        out += [
            (node, "arrive", arriving, None),
            (node, "transship", arriving, leaving),
            (node, "depart", None, leaving),
        ]
    out.append((ITINERARY[-1], "arrive", MODES[-1], None))
    return out


MOVES = moves()


@dataclass
class Subject:
    """One database under test, its server and what was measured on it."""

    label: str
    url: str
    server: Server = field(default_factory=lambda: Server(""))
    tokens: dict[str, str] = field(default_factory=dict)
    rounds: list[list[str]] = field(default_factory=list)  # the boxes each throughput round moves
    moved: list[str] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    transfer_s: list[float] = field(default_factory=list)
    timeline_s: list[float] = field(default_factory=list)
    view_s: list[float] = field(default_factory=list)
    older_s: list[float] = field(default_factory=list)
    older_events: list[int] = field(default_factory=list)
    clearance: dict[str, tuple[list[float], int]] = field(default_factory=dict)  # query: (seconds, transfers)


def prepare(subject: Subject, rounds: int, clients: int, boxes: int) -> None:
    """Keys, and the boxes of every round declared through the API (numbers no open declaration holds yet)."""
    srv = subject.server
    for role, extra in (("forwarder", {"party": BENCH_PARTY}), ("operator", {"nodes": list(ITINERARY)})):
        status, body = srv.call("POST", "/api/v1/keys", {"name": f"growth {role}", "role": role, **extra})
        assert status == 201, body
        subject.tokens[role] = body["token"]
    with psycopg.connect(plain(subject.url)) as conn:
        row = conn.execute("SELECT count(*) FROM containers WHERE number LIKE %s", (OWNER + "%",)).fetchone()
    first = int(row[0]) + 1 if row else 1
    count = rounds * clients * boxes
    numbers = [f"{OWNER}{serial:06d}{check_digit(f'{OWNER}{serial:06d}')}" for serial in range(first, first + count)]
    deadline = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    stamp = int(time.time())
    for start in range(0, count, 200):
        chunk = numbers[start : start + 200]
        status, body = srv.call(
            "POST",
            "/api/v1/declarations",
            {
                "reference": f"GROWTH-{stamp}-{first + start}",
                "direction": "import",
                "origin": ITINERARY[0],
                "destination": ITINERARY[-1],
                "itinerary": list(ITINERARY),
                "deadline": deadline,
                "containers": [
                    {"number": n, "seals": [{"number": f"GR-{n}", "type": "bolt", "source": "customs"}]} for n in chunk
                ],
            },
            token=subject.tokens["forwarder"],
        )
        assert status == 201, body
    per_round = clients * boxes
    subject.rounds = [numbers[r * per_round : (r + 1) * per_round] for r in range(rounds)]


def transfer_round(subject: Subject, numbers: list[str], clients: int) -> None:
    """Every box of the round makes its whole trip; each client moves its own boxes, step by step."""
    srv, token = subject.server, subject.tokens["operator"]
    start = datetime.now(UTC) - timedelta(days=3)
    lanes = [numbers[i::clients] for i in range(clients)]
    barrier = threading.Barrier(clients + 1)
    errors: list[str] = []
    latencies: list[list[float]] = [[] for _ in lanes]

    def client(lane: list[str], spent: list[float]) -> None:
        barrier.wait()
        for step, (node, activity, from_mode, to_mode) in enumerate(MOVES):
            at = (start + timedelta(hours=2 * step)).isoformat()
            for number in lane:
                body = {
                    "container": number,
                    "node": node,
                    "event_time": at,
                    "activity": activity,
                    "from_mode": from_mode,
                    "to_mode": to_mode,
                    "vehicle": "X8012" if (to_mode or from_mode) == "rail" else "YUE-B30541",
                    "seals": [{"number": f"GR-{number}", "condition": "intact"}],
                }
                began = time.perf_counter()
                status, answer = srv.call(
                    "POST", "/api/v1/transfers", body, token=token, headers={"Idempotency-Key": f"{number}-{step}"}
                )
                spent.append(time.perf_counter() - began)
                expected = "inspect" if step == len(MOVES) - 1 else "release"
                if status != 201 or answer.get("decision") != expected:
                    errors.append(f"{number} step {step}: {status} {answer}")
                    return

    threads = [
        threading.Thread(target=client, args=(lane, spent)) for lane, spent in zip(lanes, latencies, strict=True)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{subject.label}: {len(errors)} transfers failed, first: {errors[0]}")
    subject.rates.append(len(numbers) * len(MOVES) / elapsed)
    subject.transfer_s.extend(s for spent in latencies for s in spent)
    subject.moved.extend(numbers)


def older_boxes(subject: Subject, count: int) -> list[str]:
    """Numbers of the forwarder's boxes from the fill, from any time in the two years: their events are spread over
    the table's pages (ids follow the time rows were recorded), mostly outside PostgreSQL's buffers."""
    with psycopg.connect(plain(subject.url)) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT c.number FROM containers c JOIN declarations d ON d.id = c.declaration_id "
                "JOIN parties p ON p.id = d.party_id WHERE p.code = %s AND c.number NOT LIKE %s "
                "ORDER BY random() LIMIT %s",
                (BENCH_PARTY, OWNER + "%", count),
            )
        ]


def read_latency(subjects: list[Subject], warm_up: int, older: list[str]) -> None:
    """Timeline and container view of every moved box, one request at a time, alternating the databases; and, in
    between, the timelines of `older` boxes of the filled database."""
    filled = subjects[-1]
    for i in range(max(len(s.moved) for s in subjects)):
        for subject in subjects if i % 2 == 0 else subjects[::-1]:
            if i >= len(subject.moved):
                continue
            number, token = subject.moved[i], subject.tokens["forwarder"]
            for path, samples in (("/events", subject.timeline_s), ("", subject.view_s)):
                began = time.perf_counter()
                status, body = subject.server.call("GET", f"/api/v1/containers/{number}{path}", token=token)
                spent = time.perf_counter() - began
                assert status == 200, body
                if path:
                    assert len(body["items"]) == len(MOVES) + 1, body
                if i >= warm_up:
                    samples.append(spent)
        if warm_up <= i < warm_up + len(older):
            began = time.perf_counter()
            status, body = filled.server.call(
                "GET", f"/api/v1/containers/{older[i - warm_up]}/events", token=filled.tokens["forwarder"]
            )
            filled.older_s.append(time.perf_counter() - began)
            assert status == 200, body
            filled.older_events.append(len(body["items"]))


CLEARANCE_NODE = "CNNSA"
CLEARANCE_REPEATS = 3


def clearance_latency(subjects: list[Subject]) -> None:
    """The clearance figures of the last 30 days, at Nansha and at every node: a first request (caches, pool), then
    `CLEARANCE_REPEATS` timed ones, alternating the databases."""
    to = datetime.now(UTC).date() - timedelta(days=1)
    period = f"from={(to - timedelta(days=29)).isoformat()}&to={to.isoformat()}"
    queries = {f"{CLEARANCE_NODE} 30 d": f"node={CLEARANCE_NODE}&{period}", "all nodes 30 d": period}
    for label, query in queries.items():
        for attempt in range(CLEARANCE_REPEATS + 1):
            for subject in subjects if attempt % 2 == 0 else subjects[::-1]:
                began = time.perf_counter()
                status, body = subject.server.call("GET", f"/api/v1/analytics/clearance?{query}")
                spent = time.perf_counter() - began
                assert status == 200, body
                transfers = sum(total["transfers"] for total in body["totals"])
                samples, _ = subject.clearance.setdefault(label, ([], transfers))
                if attempt:
                    samples.append(spent)


# --- an in-process profile of the statements each request issues -------------------------------------------------


@contextmanager
def statements() -> Iterator[list[tuple[str, Any, float]]]:
    """Every statement SQLAlchemy sends in the block: (SQL, parameters, seconds)."""
    from sqlalchemy import Engine, event

    seen: list[tuple[str, Any, float]] = []
    started: list[float] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        started.append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters, time.perf_counter() - started.pop()))

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        event.remove(Engine, "after_cursor_execute", after)


def profile(subject: Subject) -> None:
    """One timeline, one container view and one transfer, in-process: each statement and its time; on the filled
    database EXPLAIN (ANALYZE, BUFFERS) of the reads as well."""
    from api import create_app
    from api.extensions import db

    app = create_app({"DATABASE_URL": subject.url, "ADMIN_TOKEN": common.ADMIN_TOKEN})
    client = app.test_client()
    number, spare = subject.moved[-1], subject.moved[-2]
    reader = {"Authorization": f"Bearer {subject.tokens['forwarder']}"}
    operator = {"Authorization": f"Bearer {subject.tokens['operator']}"}
    requests: list[tuple[str, str, str, dict[str, Any] | None, dict[str, str]]] = [
        ("GET events", "GET", f"/api/v1/containers/{number}/events", None, reader),
        ("GET container", "GET", f"/api/v1/containers/{number}", None, reader),
    ]
    # The spare box is awaiting its inspection: moving it again is decided `hold`, with an alert.
    transfer = {
        "container": spare,
        "node": ITINERARY[-1],
        "event_time": datetime.now(UTC).isoformat(),
        "activity": "transship",
        "seals": [{"number": f"GR-{spare}", "condition": "intact"}],
    }
    requests.append(("POST transfer", "POST", "/api/v1/transfers", transfer, operator))
    print(f"\n{subject.label}: statements per request (ms)")
    for name, method, path, body, headers in requests:
        for attempt in ("warm-up", "measured"):  # the first warms the caches and the pool
            with statements() as seen:
                response = client.open(
                    path, method=method, json=body, headers={**headers, "Idempotency-Key": f"{attempt}-{time.time()}"}
                )
            assert response.status_code in (200, 201), response.get_data(as_text=True)
        print(f"  {name}: {sum(s for _, _, s in seen) * 1000:.2f} ms in {len(seen)} statements")
        for statement, parameters, spent in seen:
            print(f"    {spent * 1000:7.2f}  {' '.join(statement.split())[:150]}")
            if subject.label == "filled" and statement.lstrip().upper().startswith("SELECT"):
                explain(subject.url, statement, parameters)
    with app.app_context():
        db.engine.dispose()


def explain(url: str, statement: str, parameters: Any) -> None:
    with psycopg.connect(plain(url)) as conn:
        # SQLAlchemy's psycopg dialect writes %(name)s placeholders: psycopg takes them as they are.
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).fetchall()
        conn.rollback()
    for (line,) in rows:
        print(f"              {line}")


# --- the run ----------------------------------------------------------------------------------------------------


def summary(samples: list[float]) -> tuple[float, float]:
    return statistics.median(samples) * 1000, percentile_ms(samples, 0.99)


def report(
    empty: Subject, filled: Subject, record: dict[str, Any], counts: dict[str, int], sizes: dict[str, int]
) -> None:
    print()
    print(f"{FILLED}: {sizes[FILLED] / 2**30:.1f} GiB (empty {EMPTY}: {sizes[EMPTY] / 2**20:.0f} MiB)")
    phases = ", ".join(f"{name} {seconds} s" for name, seconds in record.get("phases", {}).items())
    print(f"  fill: {record['fill_s']:.0f} s, finished {record['finished']} ({phases})")
    print("  rows: " + ", ".join(f"{table} {count:,}" for table, count in counts.items()))
    print()
    # Each round of one database ran next to the same round of the other (in alternating order): the median of
    # those pairs' ratios is what the target is checked on, as the machine's load drifts between pairs.
    e_rate, f_rate = statistics.median(empty.rates), statistics.median(filled.rates)
    ratio = statistics.median(f / e for e, f in zip(empty.rates, filled.rates, strict=True))
    met = "met" if ratio >= TARGET_THROUGHPUT else "NOT met"
    print(f"{'':34}{'empty':>12}{'filled':>12}{'ratio':>8}   target")
    print(f"{'transfers/s (median of rounds)':34}{e_rate:12.1f}{f_rate:12.1f}{f_rate / e_rate:8.2f}")
    label = "  median of paired rounds' ratios"
    print(f"{label:34}{'':24}{ratio:8.2f}   ≥ {TARGET_THROUGHPUT:.2f} {met}")
    for label, e, f, target in (
        ("POST transfer", empty.transfer_s, filled.transfer_s, None),
        ("GET events (timeline)", empty.timeline_s, filled.timeline_s, TARGET_TIMELINE),
        ("GET container", empty.view_s, filled.view_s, None),
    ):
        (e50, e99), (f50, f99) = summary(e), summary(f)
        verdict = f"≤ {target:.2f} {'met' if f50 / e50 <= target else 'NOT met'}" if target else ""
        print(f"{label + ' p50 ms':34}{e50:12.2f}{f50:12.2f}{f50 / e50:8.2f}   {verdict}")
        print(f"{label + ' p99 ms':34}{e99:12.2f}{f99:12.2f}{f99 / e99:8.2f}")
    if filled.older_s:
        f50, f99 = summary(filled.older_s)
        print(f"{'GET events, boxes of the fill p50':34}{'':12}{f50:12.2f}{f50 / summary(empty.timeline_s)[0]:8.2f}")
        print(f"{'GET events, boxes of the fill p99':34}{'':12}{f99:12.2f}")
    for label, (samples, transfers) in filled.clearance.items():
        e_samples, e_transfers = empty.clearance[label]
        e50, f50 = statistics.median(e_samples) * 1000, statistics.median(samples) * 1000
        print(
            f"{'GET clearance ' + label + ' p50 ms':34}{e50:12.1f}{f50:12.1f}{f50 / e50:8.1f}   no target "
            f"({e_transfers:,} and {transfers:,} transfers in the period)"
        )
    print(
        f"  (transfer latency with the clients running concurrently; reads one at a time: {len(empty.timeline_s)} "
        f"and {len(filled.timeline_s)} boxes of {len(MOVES) + 1} events; {len(filled.older_s)} of the forwarder's "
        f"boxes of the fill, {statistics.mean(filled.older_events or [0]):.1f} events on average, no target)"
    )


def main() -> None:
    # A terminated run still stops its servers (the `finally` of serve_process) and rolls back an unfinished fill.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=20_000_000)
    parser.add_argument("--readings", type=int, default=20_000_000)
    parser.add_argument("--reuse", action="store_true", help=f"keep {FILLED} when it holds a fill of these sizes")
    parser.add_argument("--rounds", type=int, default=10, help="throughput rounds per database")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients")
    parser.add_argument("--boxes", type=int, default=12, help="boxes per client per round (20 transfers each)")
    parser.add_argument("--explain", action="store_true", help="profile each request's statements in-process")
    args = parser.parse_args()
    sizes = Sizes(args.containers, args.events, args.readings)
    print(
        f"growth: {args.clients} clients × {args.boxes} boxes × {len(MOVES)} transfers per round, {args.rounds} rounds "
        "per database, interleaved; gunicorn 2 workers × 4 threads per database; PostgreSQL at "
        f"{make_url(common.POSTGRES_URL).render_as_string(hide_password=True).rsplit('/', 1)[0]}"
    )
    filled_url, record = ensure_filled(sizes, args.reuse)
    counts, filled_size = census(filled_url)
    empty_url = fresh(EMPTY)
    subjects = [Subject("empty", empty_url), Subject("filled", filled_url)]
    with workdir() as tmp, ExitStack() as stack:
        for subject in subjects:
            url = stack.enter_context(
                serve_process(subject.url, workers=2, threads=4, log=tmp / f"{subject.label}.log", timeout_s=60)
            )
            subject.server = Server(url)
            prepare(subject, args.rounds, args.clients, args.boxes)
        for r in range(args.rounds):
            for subject in subjects if r % 2 == 0 else subjects[::-1]:
                transfer_round(subject, subject.rounds[r], args.clients)
                print(f"  round {r + 1:2} {subject.label:6}: {subject.rates[-1]:7.1f} transfers/s", flush=True)
        read_latency(subjects, warm_up=10, older=older_boxes(subjects[1], 200))
        clearance_latency(subjects)
    if args.explain:
        for subject in subjects:
            profile(subject)
    _, empty_size = census(empty_url)
    report(subjects[0], subjects[1], record, counts, {FILLED: filled_size, EMPTY: empty_size})


if __name__ == "__main__":
    main()
