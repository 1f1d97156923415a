"""Scale-out, shown working on one machine (issue 7): a primary, a streaming replica, pgbouncer and two API instances.

Sets up in a temporary directory, and tears everything down at the end (also on failure, Ctrl-C or SIGTERM):
- a PostgreSQL cluster of its own (initdb, a free port, wal_level=replica, replication allowed from 127.0.0.1) with
  PostGIS, migrated and loaded with the reference network;
- a streaming replica of it (pg_basebackup -R, hot standby) on another free port;
- pgbouncer in transaction pooling mode in front of the primary, with its own ini and userlist;
- two `railsea serve` instances (A and B, 2 workers each): RAILSEA_DATABASE_URL → pgbouncer (with
  `?prepare_threshold=none`, see `routing.db.make_engine`), RAILSEA_DATABASE_REPLICA_URL → the replica,
  RAILSEA_REDIS_URL → Redis (live-alert fan-out), RAILSEA_SSE_POLL_S=60 (so that only a Redis wake-up can deliver
  an alert to a stream within seconds);
then prints PASS or FAIL for each point:
1. the replica streams from the primary (pg_stat_replication);
2. keys and declarations created through A go through pgbouncer to the primary;
3. B reads from the replica: a declaration written through A is served by B once replayed (lag measured); with
   replay paused on the replica, B answers 404 for a declaration the primary has, and 200 after replay resumes;
4. a supervisor's alert stream on B receives the alert of a seal-break transfer posted to A (Redis fan-out);
5. a short concurrent load of transfers split across A and B completes without errors (requests/s per instance),
   bounded in time (--seconds) and in count (8 transfers per declared container);
6. pgbouncer multiplexed the client connections of both instances onto a few server connections during that load
   (SHOW CLIENTS, SHOW POOLS, SHOW STATS through psql on its admin console).

Run: .venv/bin/python -m bench.scaleout [--seconds N] [--threads N] [--containers N] [--redis-url URL] [--keep]
Needs PostgreSQL 15 + PostGIS (binaries in /usr/lib/postgresql/15/bin, or RAILSEA_PG_BIN), Debian's pgbouncer
(`apt-get install -y pgbouncer`) and Redis. As root, the clusters and pgbouncer run as the `postgres` user.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import migrations
from bench.common import ITINERARY, STEPS, AlertStream, Server, container_number, declare, free_port, serve_process
from fixtures import REFERENCE_DIR
from routing.db import make_engine
from routing.models import Leg, Node
from routing.reference import read_reference
from routing.service import load_network

PG_BIN = Path(os.environ.get("RAILSEA_PG_BIN", "/usr/lib/postgresql/15/bin"))
PGBOUNCER = Path("/usr/sbin/pgbouncer")
PSQL = shutil.which("psql") or str(PG_BIN / "psql")
REDIS_URL = os.environ.get("RAILSEA_SCALEOUT_REDIS_URL", "redis://127.0.0.1:6379/11")
DATABASE = "railsea"
POOL_SIZE = 5  # pgbouncer server connections per (database, user) pool
CHANNEL = "railsea:alerts"  # api.stream.CHANNEL
SEAL_BREAK_NODE = "CNNSA"  # under CN-GUANGZHOU, one of the supervisor's offices
RUN_AS = "postgres" if os.geteuid() == 0 else None  # PostgreSQL and pgbouncer refuse to run as root


# --- processes ------------------------------------------------------------------------------------------------------


def tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def run(command: Sequence[str | Path | int], *, as_postgres: bool = False, timeout: float = 120) -> str:
    """Run a command to completion; its output, or a RuntimeError with it."""
    done = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        user=RUN_AS if as_postgres else None,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def background(
    command: Sequence[str | Path | int], log: Path, stop: signal.Signals, ready: Callable[[], bool], what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process (as `postgres` when root) with its output in `log`; yields once `ready()` holds, and
    stops it by pid at the end (`stop`, then SIGKILL after 20 s)."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(c) for c in command], stdout=output, stderr=subprocess.STDOUT, user=RUN_AS, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while not ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{what} did not start:\n{tail(log)}")
                time.sleep(0.2)
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(stop)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


def pg(port: int, dbname: str = DATABASE, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        dbname=dbname,
        autocommit=True,
        connect_timeout=5,
        application_name="railsea-scaleout",
        **kwargs,
    )


def accepts(port: int, dbname: str = "postgres") -> Callable[[], bool]:
    def check() -> bool:
        try:
            with pg(port, dbname):
                return True
        except psycopg.Error:
            return False

    return check


def one(port: int, query: str, *params: Any) -> Any:
    with pg(port) as conn:
        row = conn.execute(query, params or None).fetchone()
    return row[0] if row and len(row) == 1 else row


def admin(port: int, command: str) -> list[dict[str, str]]:
    """A pgbouncer admin console command through psql, as rows."""
    out = run(
        [PSQL, "-X", "--csv", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "pgbouncer", "-c", command]
    )
    return list(csv.DictReader(io.StringIO(out)))


# --- the set-up -----------------------------------------------------------------------------------------------------


@dataclass
class Stack:
    tmp: Path
    primary: int = 0
    replica: int = 0
    bouncer: int = 0
    a: Server = field(default_factory=lambda: Server(""))
    b: Server = field(default_factory=lambda: Server(""))


PRIMARY_CONF = """
# bench.scaleout: a throwaway primary on loopback
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = '256MB'
hot_standby = on
max_connections = 60
shared_buffers = '64MB'
"""
PG_HBA = """# bench.scaleout: trust on loopback only, replication included
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
"""


def pgbouncer_ini(tmp: Path, port: int, primary: int) -> str:
    return f"""[databases]
{DATABASE} = host=127.0.0.1 port={primary} dbname={DATABASE} user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {tmp / "userlist.txt"}
admin_users = postgres
stats_users = postgres
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 400
stats_period = 1
pidfile = {tmp / "pgbouncer.pid"}
"""


def set_up(stack: Stack, stack_exit: contextlib.ExitStack, args: argparse.Namespace) -> None:
    tmp = stack.tmp
    started = time.perf_counter()

    # 1. The primary: its own cluster, PostGIS, migrations, the reference network.
    primary_dir = tmp / "primary"
    initdb: list[str | Path | int] = [
        PG_BIN / "initdb",
        "-D",
        primary_dir,
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
        "--locale=C",
    ]
    run([*initdb, "--no-sync"], as_postgres=True)
    with (primary_dir / "postgresql.conf").open("a") as conf:
        conf.write(PRIMARY_CONF)
    (primary_dir / "pg_hba.conf").write_text(PG_HBA)
    stack.primary = free_port()
    stack_exit.enter_context(
        background(
            [PG_BIN / "postgres", "-D", primary_dir, "-p", stack.primary, "-c", "cluster_name=railsea-primary"],
            tmp / "primary.log",
            signal.SIGINT,  # fast shutdown
            accepts(stack.primary),
            "the primary",
        )
    )
    with pg(stack.primary, "postgres") as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with pg(stack.primary) as conn:
        conn.execute("CREATE EXTENSION postgis")
        postgis = conn.execute("SELECT postgis_lib_version()").fetchone()
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{stack.primary}/{DATABASE}")
    migrations.upgrade(engine)
    reference = read_reference(REFERENCE_DIR)
    with Session(engine) as session:
        load_network(session, reference.network, reference.node_extras, reference.leg_sources)
        session.commit()
        nodes = session.scalar(select(func.count()).select_from(Node))
        legs = session.scalar(select(func.count()).select_from(Leg))
    engine.dispose()
    version = one(stack.primary, "SHOW server_version")
    print(
        f"  primary     PostgreSQL {version} + PostGIS {postgis[0] if postgis else '?'} on 127.0.0.1:{stack.primary} "
        f"(wal_level=replica), migrated, reference network loaded ({nodes} nodes, {legs} legs)"
    )

    # 2. The replica: a base backup that follows the primary (-R writes standby.signal and primary_conninfo).
    replica_dir = tmp / "replica"
    basebackup: list[str | Path | int] = [
        PG_BIN / "pg_basebackup",
        "-h",
        "127.0.0.1",
        "-p",
        stack.primary,
        "-U",
        "postgres",
    ]
    run([*basebackup, "-D", replica_dir, "-R", "-X", "stream", "-c", "fast", "--no-sync"], as_postgres=True)
    stack.replica = free_port()
    stack_exit.enter_context(
        background(
            [
                PG_BIN / "postgres",
                "-D",
                replica_dir,
                "-p",
                stack.replica,
                "-c",
                "cluster_name=railsea-replica",
                "-c",
                "hot_standby=on",
                # Every statement, with the client's application_name: shows which instance reads here.
                "-c",
                "log_statement=all",
                "-c",
                "log_line_prefix=%m [%p] %a: ",
            ],
            tmp / "replica.log",
            signal.SIGINT,
            accepts(stack.replica),
            "the replica",
        )
    )
    print(f"  replica     pg_basebackup -R of the primary, hot standby on 127.0.0.1:{stack.replica}")

    # 3. pgbouncer, transaction pooling, in front of the primary.
    stack.bouncer = free_port()
    (tmp / "userlist.txt").write_text('"postgres" ""\n')
    ini = tmp / "pgbouncer.ini"
    ini.write_text(pgbouncer_ini(tmp, stack.bouncer, stack.primary))
    stack_exit.enter_context(
        background(
            [PGBOUNCER, ini], tmp / "pgbouncer.log", signal.SIGTERM, accepts(stack.bouncer, DATABASE), "pgbouncer"
        )
    )
    bouncer_version = admin(stack.bouncer, "SHOW VERSION;")[0].get("version", "?")
    print(
        f"  pgbouncer   {bouncer_version} on 127.0.0.1:{stack.bouncer}: pool_mode=transaction, "
        f"default_pool_size={POOL_SIZE}, → primary"
    )

    # 4. Two API instances: writes through pgbouncer, reads from the replica, alerts fanned out through Redis.
    for name in ("a", "b"):
        tag = f"railsea-{name}"
        url = (
            f"postgresql://postgres@127.0.0.1:{stack.bouncer}/{DATABASE}?prepare_threshold=none&application_name={tag}"
        )
        env = {
            "RAILSEA_DATABASE_REPLICA_URL": f"postgresql://postgres@127.0.0.1:{stack.replica}/{DATABASE}"
            f"?application_name={tag}",
            "RAILSEA_REDIS_URL": args.redis_url,
            "RAILSEA_SSE_POLL_S": "60",
        }
        base = stack_exit.enter_context(serve_process(url, workers=2, threads=8, env=env, log=tmp / f"{tag}.log"))
        setattr(stack, name, Server(base))
        print(f"  instance {name.upper()}  {base} (2 workers × 8 threads), application_name={tag}")
    print(
        f"  both        DATABASE_URL → pgbouncer (?prepare_threshold=none), DATABASE_REPLICA_URL → replica, "
        f"REDIS_URL → {args.redis_url}, SSE_POLL_S=60   [set-up {time.perf_counter() - started:.1f} s]"
    )


# --- the checks -----------------------------------------------------------------------------------------------------


class Report:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool]] = []

    def check(self, title: str, body: Callable[[], tuple[bool, list[str]]]) -> bool:
        started = time.perf_counter()
        try:
            ok, lines = body()
        except Exception as error:  # a failed check is reported and the next one still runs
            ok, lines = False, [f"error: {type(error).__name__}: {error}"]
        print(
            f"[{'PASS' if ok else 'FAIL'}] {len(self.results) + 1}. {title}   ({time.perf_counter() - started:.1f} s)"
        )
        for line in lines:
            print(f"       {line}")
        self.results.append((title, ok))
        return ok


def replication(stack: Stack) -> tuple[bool, list[str]]:
    deadline = time.monotonic() + 30
    row = None
    while time.monotonic() < deadline:
        row = one(
            stack.primary,
            "SELECT application_name, client_addr::text, state, sync_state, sent_lsn::text, replay_lsn::text, "
            "coalesce(replay_lag::text, '-') FROM pg_stat_replication",
        )
        if row and row[2] == "streaming":
            break
        time.sleep(0.3)
    if not row:
        return False, ["pg_stat_replication on the primary is empty"]
    recovering = one(stack.replica, "SELECT pg_is_in_recovery()")
    return row[2] == "streaming" and recovering is True, [
        f"primary pg_stat_replication: application_name={row[0]} client_addr={row[1]} state={row[2]} "
        f"sync_state={row[3]} sent_lsn={row[4]} replay_lsn={row[5]} replay_lag={row[6]}",
        f"replica pg_is_in_recovery() = {recovering}",
    ]


def xacts(stack: Stack) -> int:
    """Transactions pgbouncer has passed to the primary for the railsea database (SHOW STATS, 1 s period)."""
    for row in admin(stack.bouncer, "SHOW STATS;"):
        if row["database"] == DATABASE:
            return int(row["total_xact_count"])
    return 0


def writes_through_a(stack: Stack, containers: int, state: dict[str, Any]) -> tuple[bool, list[str]]:
    lsn_before = one(stack.primary, "SELECT pg_current_wal_lsn()::text")
    xact_before = xacts(stack)
    started = time.perf_counter()
    tokens, numbers = declare(stack.a, containers, reference="SCALEOUT")
    elapsed = time.perf_counter() - started
    state["tokens"], state["numbers"] = tokens, numbers
    time.sleep(1.2)  # pgbouncer's stats period
    xact_after = xacts(stack)
    lsn_after = one(stack.primary, "SELECT pg_current_wal_lsn()::text")
    keys = one(stack.primary, "SELECT count(*) FROM api_keys")
    declared = one(stack.primary, "SELECT count(*) FROM declarations")
    boxes = one(stack.primary, "SELECT count(*) FROM containers")
    ok = keys == 3 and boxes == containers and xact_after > xact_before
    return ok, [
        f"through A: 3 keys (forwarder, operator, supervisor) and {declared} declarations of {containers} containers "
        f"in {elapsed:.1f} s",
        f"pgbouncer SHOW STATS total_xact_count {xact_before} → {xact_after}; primary WAL {lsn_before} → {lsn_after}; "
        f"primary holds {keys} keys, {declared} declarations, {boxes} containers",
    ]


def declaration_body(reference: str, number: str) -> dict[str, Any]:
    return {
        "reference": reference,
        "direction": "import",
        "origin": ITINERARY[0],
        "destination": ITINERARY[-1],
        "itinerary": ITINERARY,
        "deadline": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "containers": [{"number": number, "seals": [{"number": f"S{number}"}]}],
    }


def poll(srv: Server, path: str, token: str, timeout_s: float) -> tuple[int, float, int]:
    """GET until 200 (bounded): the last status, seconds waited, attempts."""
    started = time.perf_counter()
    attempts = 0
    while True:
        status, _ = srv.call("GET", path, token=token)
        attempts += 1
        waited = time.perf_counter() - started
        if status == 200 or waited > timeout_s:
            return status, waited, attempts
        time.sleep(0.01)


def replica_log(stack: Stack, tag: str, needle: str) -> list[str]:
    """Statements the replica logged for clients named `tag` that mention `needle` (it runs with log_statement=all)."""
    entries: list[str] = []
    for line in tail(stack.tmp / "replica.log", 2_000_000).splitlines():
        if line[:2].isdigit() or not entries:  # an entry starts with its timestamp; a statement may span lines
            entries.append(line)
        else:
            entries[-1] += " " + line
    found = [" ".join(entry.split()) for entry in entries if f"] {tag}: " in entry and needle in entry]
    # Shorter to print: no timestamp, no column list.
    return [re.sub(r"SELECT .*? FROM", "SELECT … FROM", entry.split(" UTC ", 1)[-1], count=1) for entry in found]


def wait_replayed(stack: Stack, lsn: str, timeout_s: float) -> float | None:
    """Seconds until the replica has replayed `lsn` (polled every 2 ms), or None."""
    started = time.perf_counter()
    with pg(stack.replica) as conn:
        while time.perf_counter() - started < timeout_s:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
            if row and row[0]:
                return time.perf_counter() - started
            time.sleep(0.002)
    return None


def reads_on_b(stack: Stack, state: dict[str, Any]) -> tuple[bool, list[str]]:
    forwarder = state["tokens"]["forwarder"]
    lines = []

    # a. Replay lag: write through A, see when the replica has replayed the commit, then read it on B.
    replay_before = one(stack.replica, "SELECT pg_last_wal_replay_lsn()::text")
    first = declaration_body("LAG-1", container_number(900_001))
    status, body = stack.a.call("POST", "/api/v1/declarations", first, token=forwarder)
    assert status == 201, body
    written_at = one(stack.primary, "SELECT pg_current_wal_lsn()::text")
    replayed = wait_replayed(stack, written_at, 10.0)
    got, waited, attempts = poll(stack.b, f"/api/v1/declarations/{body['id']}", forwarder, 10.0)
    replay_after = one(stack.replica, "SELECT pg_last_wal_replay_lsn()::text")
    lag_ok = got == 200 and replayed is not None
    lines.append(
        f"declaration {body['id']} written through A (primary WAL at {written_at}); the replica replayed it "
        + (f"{replayed * 1000:.0f} ms after A's 201" if replayed is not None else "NOT within 10 s")
        + f" (replay LSN {replay_before} → {replay_after}); GET on B → {got} "
        f"({attempts} attempt{'s' if attempts > 1 else ''}, {waited * 1000:.0f} ms)"
    )

    # b. Proof that B reads the replica: with replay paused there, the primary has a declaration and B does not.
    with pg(stack.replica) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone() != ("paused",):
            if time.monotonic() > deadline:
                raise RuntimeError("replay did not pause")
            time.sleep(0.05)
    try:
        frozen = one(stack.replica, "SELECT pg_last_wal_replay_lsn()::text")
        second = declaration_body("LAG-2", container_number(900_002))
        status, body = stack.a.call("POST", "/api/v1/declarations", second, token=forwarder)
        assert status == 201, body
        on_primary = one(stack.primary, "SELECT count(*) FROM declarations WHERE id = %s", body["id"])
        primary_lsn = one(stack.primary, "SELECT pg_current_wal_lsn()::text")
        time.sleep(0.5)
        paused_status, _ = stack.b.call("GET", f"/api/v1/declarations/{body['id']}", token=forwarder)
        still = one(stack.replica, "SELECT pg_last_wal_replay_lsn()::text")
        route_status, _ = stack.b.call(
            "POST",
            "/api/v1/routes",
            {"origin": "HKHKG", "destination": "CNCSH", "optimize": "time"},
            token=forwarder,
        )
    finally:
        one(stack.replica, "SELECT pg_wal_replay_resume()")
    resumed, waited, _ = poll(stack.b, f"/api/v1/declarations/{body['id']}", forwarder, 10.0)
    lines.append(
        f"replay paused on the replica (LSN {frozen}); declaration {body['id']} written through A: the primary has it "
        f"({on_primary} row, WAL at {primary_lsn}), GET on B → {paused_status} (replica still at {still}); "
        f"route planning on B → {route_status}"
    )
    lines.append(f"replay resumed: GET on B → {resumed} after {waited * 1000:.0f} ms")
    logged = replica_log(stack, "railsea-b", "FROM declarations")
    lines.append(
        f"replica's statement log: {len(logged)} statements on declarations from application_name=railsea-b, e.g. "
        + (logged[-1][:160] if logged else "none")
    )
    proof_ok = on_primary == 1 and paused_status == 404 and frozen == still and resumed == 200 and bool(logged)
    return lag_ok and proof_ok and route_status == 200, lines


class RedisWatch(threading.Thread):
    """Listens on the live-alert channel, as the instances do: which alert ids were published, and when."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(CHANNEL)
        self.published: dict[int, float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(Exception):
                message = self.pubsub.get_message(timeout=0.2)
                if message and message.get("type") == "message":
                    for alert_id in json.loads(message["data"]):
                        self.published.setdefault(int(alert_id), time.perf_counter())

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=2)
        self.pubsub.close()
        self.client.close()


def arrival(stream: AlertStream, alert_id: int, timeout_s: float) -> float | None:
    """When the alert reached `stream` (time.perf_counter), or None if not within `timeout_s`."""
    got = stream.wait_for(lambda alert: alert["id"] == alert_id, time.perf_counter() + timeout_s)
    return None if got is None else got[1]


def open_stream(url: str, token: str) -> AlertStream:
    stream = AlertStream(url, token, timeout_s=120)
    stream.start()
    if not stream.ready.wait(15) or not stream.worker:
        raise RuntimeError(f"the alert stream on {url} did not start: {stream.error}")
    return stream


def seal_break(srv: Server, token: str, number: str) -> tuple[int, float]:
    body = {
        "container": number,
        "node": SEAL_BREAK_NODE,
        "event_time": datetime.now(UTC).isoformat(),
        "activity": "arrive",
        "seals": [{"number": f"S{number}", "condition": "broken"}],
    }
    sent = time.perf_counter()
    status, answer = srv.call("POST", "/api/v1/transfers", body, token=token)
    if status != 201 or answer.get("decision") != "reinspect" or not answer.get("alert_id"):
        raise RuntimeError(f"seal-break transfer answered {status}: {answer}")
    return int(answer["alert_id"]), sent


def fan_out(stack: Stack, state: dict[str, Any], redis_url: str) -> tuple[bool, list[str]]:
    supervisor, operator = state["tokens"]["supervisor"], state["tokens"]["operator"]
    numbers: list[str] = state["numbers"]
    watch = RedisWatch(redis_url)
    watch.start()
    streams: list[AlertStream] = []
    lines = []
    try:
        on_b = open_stream(stack.b.url, supervisor)
        streams.append(on_b)
        time.sleep(1.0)  # the stream's first look in the database is over: from now on only a wake-up delivers
        subscribers = watch.client.pubsub_numsub(CHANNEL)[0][1]
        alert_id, sent = seal_break(stack.a, operator, numbers[0])
        arrived = arrival(on_b, alert_id, 8.0)
        published = alert_id in watch.published
        lines.append(
            f"supervisor stream on B (worker {on_b.worker}); seal break at {SEAL_BREAK_NODE} posted to A → alert "
            f"{alert_id}; published on Redis: {'yes' if published else 'no'}; on B's stream: "
            + (f"after {(arrived - sent) * 1000:.0f} ms" if arrived else "not within 8 s (SSE poll is 60 s)")
        )
        ok = arrived is not None and published
        if not ok:
            # Diagnose: does a worker of A publish once it serves a stream itself?
            lines.append(
                f"Redis subscribers on {CHANNEL} before the POST: {subscribers} (this watcher, the workers that have "
                "opened a stream, and any other RailSea on this Redis: pub/sub ignores the database number)"
            )
            workers: set[str] = set()
            deadline = time.monotonic() + 30
            while len(workers) < 2 and len(streams) < 17 and time.monotonic() < deadline:
                streams.append(open_stream(stack.a.url, supervisor))
                workers.add(streams[-1].worker)
            time.sleep(1.0)
            alert_id, sent = seal_break(stack.a, operator, numbers[1])
            arrived = arrival(on_b, alert_id, 8.0)
            lines.append(
                f"with a stream opened on each of A's workers ({', '.join(sorted(workers))}) first: alert {alert_id} "
                f"published: {'yes' if alert_id in watch.published else 'no'}; on B's stream: "
                + (f"after {(arrived - sent) * 1000:.0f} ms" if arrived else "not within 8 s")
            )
    finally:
        for stream in streams:
            stream.close()
        watch.stop()
    return ok, lines


@dataclass
class Load:
    ok: int = 0
    errors: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def load_worker(srv: Server, token: str, numbers: list[str], until: float, result: Load) -> None:
    base = datetime.now(UTC) - timedelta(hours=3)
    for step, (node, activity) in enumerate(STEPS):
        for number in numbers:
            if time.monotonic() > until:
                return
            body = {
                "container": number,
                "node": node,
                "event_time": (base + timedelta(minutes=15 * step)).isoformat(),
                "activity": activity,
                "seals": [{"number": f"S{number}", "condition": "intact"}],
            }
            expected = "inspect" if node == ITINERARY[-1] else "release"
            started = time.perf_counter()
            try:
                status, answer = srv.call("POST", "/api/v1/transfers", body, token=token)
                error = "" if status == 201 and answer.get("decision") == expected else f"{status} {answer}"
            except OSError as exc:
                error = repr(exc)
            with result.lock:
                if error:
                    result.errors += 1
                    if len(result.samples) < 3:
                        result.samples.append(error[:200])
                else:
                    result.ok += 1
                    result.decisions[expected] += 1
                    result.latencies.append(time.perf_counter() - started)


def pools_snapshot(stack: Stack) -> dict[str, Any]:
    pools = next(r for r in admin(stack.bouncer, "SHOW POOLS;") if r["database"] == DATABASE)
    clients = [r for r in admin(stack.bouncer, "SHOW CLIENTS;") if r["database"] == DATABASE]
    by_app = Counter(r.get("application_name") or "?" for r in clients)
    on_primary = one(
        stack.primary,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend' "
        "AND application_name <> 'railsea-scaleout'",
        DATABASE,
    )
    return {"pools": pools, "clients": len(clients), "by_app": by_app, "on_primary": on_primary}


def describe_pools(snapshot: dict[str, Any]) -> str:
    p = snapshot["pools"]
    servers = sum(int(p[k]) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
    apps = ", ".join(f"{k} {v}" for k, v in sorted(snapshot["by_app"].items()))
    return (
        f"SHOW CLIENTS: {snapshot['clients']} client connections ({apps}); SHOW POOLS: cl_active={p['cl_active']} "
        f"cl_waiting={p['cl_waiting']} sv_active={p['sv_active']} sv_idle={p['sv_idle']} sv_used={p['sv_used']} "
        f"→ {servers} server connections, maxwait={p['maxwait']} s; primary pg_stat_activity: "
        f"{snapshot['on_primary']} backends on {DATABASE}"
    )


def load(stack: Stack, state: dict[str, Any], seconds: float, threads: int) -> tuple[bool, list[str]]:
    operator = state["tokens"]["operator"]
    numbers: list[str] = state["numbers"][2:]  # the first two had seal breaks (held)
    results = {"A": Load(), "B": Load()}
    workers = []
    until = time.monotonic() + seconds
    for i in range(2 * threads):
        name, srv = ("A", stack.a) if i % 2 == 0 else ("B", stack.b)
        mine = numbers[i :: 2 * threads]
        workers.append(
            threading.Thread(target=load_worker, args=(srv, operator, mine, until, results[name]), daemon=True)
        )
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    time.sleep(min(seconds / 2, 10))
    state["mid_load"] = pools_snapshot(stack)
    for worker in workers:
        worker.join(timeout=seconds + 130)
    elapsed = time.perf_counter() - started
    hung = sum(w.is_alive() for w in workers)
    lines = []
    for name, result in results.items():
        lat = sorted(result.latencies) or [0.0]
        lines.append(
            f"instance {name}: {result.ok} transfers in {elapsed:.1f} s = {result.ok / elapsed:.1f} req/s "
            f"({threads} client threads; p50 {lat[len(lat) // 2] * 1000:.0f} ms, "
            f"p99 {lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000:.0f} ms); "
            f"decisions {dict(result.decisions)}; errors {result.errors}"
        )
        lines.extend(f"  error: {sample}" for sample in result.samples)
    total = sum(r.ok for r in results.values())
    capacity = len(numbers) * len(STEPS)
    lines.append(
        f"total {total} transfers ({total / elapsed:.1f} req/s), bounded by {seconds:g} s and {capacity} transfers"
        + (f"; {hung} client threads still running" if hung else "")
    )
    primary_lsn = one(stack.primary, "SELECT pg_current_wal_lsn()::text")
    replayed = wait_replayed(stack, primary_lsn, 10.0)
    lines.append(
        f"after the load the replica had replayed the primary's WAL ({primary_lsn}) "
        + (f"within {replayed * 1000:.0f} ms" if replayed is not None else "NOT within 10 s")
    )
    ok = not hung and all(r.errors == 0 and r.ok > 0 for r in results.values())
    return ok, lines


def pooling(stack: Stack, state: dict[str, Any]) -> tuple[bool, list[str]]:
    mid = state.get("mid_load") or pools_snapshot(stack)
    after = pools_snapshot(stack)
    time.sleep(1.2)
    stats = next(r for r in admin(stack.bouncer, "SHOW STATS;") if r["database"] == DATABASE)
    p = mid["pools"]
    servers = sum(int(p[k]) for k in ("sv_active", "sv_idle", "sv_used", "sv_tested", "sv_login"))
    apps = {k for k, v in mid["by_app"].items() if v}
    both = {"railsea-a", "railsea-b"} <= apps
    ok = both and mid["clients"] > servers and servers <= POOL_SIZE and int(stats["total_xact_count"]) > 0
    return ok, [
        f"during the load: {describe_pools(mid)}",
        f"after the load:  {describe_pools(after)}",
        f"SHOW STATS: total_xact_count={stats['total_xact_count']} total_query_count={stats['total_query_count']} "
        f"mean xact time {int(stats['total_xact_time']) / max(1, int(stats['total_xact_count'])) / 1000:.1f} ms, "
        f"total_wait_time={int(stats['total_wait_time']) / 1e6:.1f} s (clients waiting for a server connection)",
    ]


# --- main -----------------------------------------------------------------------------------------------------------


def preflight(redis_url: str) -> list[str]:
    problems = []
    if not (PG_BIN / "postgres").exists():
        problems.append(f"no PostgreSQL binaries in {PG_BIN} (set RAILSEA_PG_BIN)")
    if not PGBOUNCER.exists():
        problems.append(f"no {PGBOUNCER}: install it with `apt-get install -y pgbouncer` (Debian)")
    if RUN_AS is not None:
        try:
            pwd.getpwnam(RUN_AS)
        except KeyError:
            problems.append(f"running as root needs a `{RUN_AS}` user to run PostgreSQL and pgbouncer")
    try:
        redis.Redis.from_url(redis_url, socket_timeout=3).ping()
    except redis.RedisError as error:
        problems.append(f"Redis at {redis_url} does not answer: {error}")
    return problems


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the concurrent load")
    parser.add_argument("--threads", type=int, default=3, help="client threads per instance during the load")
    parser.add_argument("--containers", type=int, default=300, help="declared through A (8 transfers each)")
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--keep", action="store_true", help="leave the temporary directory (logs) in place")
    args = parser.parse_args(argv)
    problems = preflight(args.redis_url)
    if problems:
        for problem in problems:
            print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    started = time.perf_counter()
    print(
        "RailSea scale-out (issue 7): primary + streaming replica + pgbouncer (transaction pooling) + 2 API instances"
    )
    tmp = Path(tempfile.mkdtemp(prefix="railsea-scaleout-"))
    if RUN_AS is not None:
        account = pwd.getpwnam(RUN_AS)
        os.chown(tmp, account.pw_uid, account.pw_gid)
    report = Report()
    state: dict[str, Any] = {}
    try:
        with contextlib.ExitStack() as stack_exit:
            stack = Stack(tmp)
            print(f"set-up in {tmp}")
            set_up(stack, stack_exit, args)
            print("checks")
            report.check("streaming replication", lambda: replication(stack))
            wrote = report.check(
                "writes through A → pgbouncer → primary", lambda: writes_through_a(stack, args.containers, state)
            )
            if wrote:
                report.check("reads on B come from the replica", lambda: reads_on_b(stack, state))
                report.check("live alert fan-out A → Redis → B", lambda: fan_out(stack, state, args.redis_url))
                report.check(
                    f"concurrent load, {args.seconds:g} s of transfers on A and B",
                    lambda: load(stack, state, args.seconds, args.threads),
                )
                report.check("pgbouncer multiplexing", lambda: pooling(stack, state))
            print("tear-down")
    except KeyboardInterrupt:
        print("interrupted: everything it started is stopped", file=sys.stderr)
        return 130
    except SystemExit:
        print("terminated: everything it started is stopped", file=sys.stderr)
        raise
    except Exception as error:
        print(f"set-up failed: {error}", file=sys.stderr)
        if args.keep:
            print(f"logs kept in {tmp}", file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    passed = sum(ok for _, ok in report.results)
    print(f"result: {passed}/{len(report.results)} PASS in {time.perf_counter() - started:.0f} s")
    return 0 if report.results and passed == len(report.results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
