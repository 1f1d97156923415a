"""SpatiaLite writers: handed over by the writer gate, checkpointed off the request path (routing/db.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pysqlite3.dbapi2
import pytest
from sqlalchemy import Engine, text

from routing.db import WalCheckpointer, checkpointer_of, gate_of, make_engine, writer


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'writers.db'}", pool_size=8)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield engine
    engine.dispose()


def test_threads_writing_at_once_each_get_their_turn(engine: Engine) -> None:
    writes, threads, failures = 50, 8, []

    def work() -> None:
        try:
            for _ in range(writes):
                with writer(engine).begin() as conn:
                    n = conn.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
                    conn.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert failures == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == writes * threads  # no lost update


@contextmanager
def another_process_holding_the_gate(database: str, seconds: float) -> Iterator[None]:
    """A process that takes the gate's file lock, holds it for `seconds`, then ends (the block starts once it holds
    the lock)."""
    script = (
        "import fcntl, os, time\n"
        f"fd = os.open({database + '-writer'!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        yield


def test_a_writer_of_another_process_holds_the_gate_until_it_lets_go(engine: Engine, tmp_path: Path) -> None:
    database = str(engine.url.database)
    with another_process_holding_the_gate(database, 1.0):
        gate = gate_of(database)
        with pytest.raises(TimeoutError):
            gate.acquire(timeout_s=0.2)
        started = time.monotonic()
        gate.acquire(timeout_s=5)  # as soon as the other process lets go
        gate.release()
        assert time.monotonic() - started < 2.0


def test_a_writer_that_gave_up_does_not_keep_the_lock_when_it_comes(engine: Engine) -> None:
    database = str(engine.url.database)
    taker_script = (  # another process that wants the lock once the holder has let go
        "import fcntl, os, time\n"
        f"fd = os.open({database + '-writer'!r}, os.O_RDWR | os.O_CREAT)\n"
        "deadline = time.monotonic() + 3\n"
        "while True:\n"
        "    try:\n"
        "        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "        print('taken', flush=True)\n"
        "        break\n"
        "    except BlockingIOError:\n"
        "        if time.monotonic() > deadline:\n"
        "            print('never', flush=True)\n"
        "            break\n"
        "        time.sleep(0.01)\n"
    )
    with another_process_holding_the_gate(database, 0.5):
        gate = gate_of(database)
        with pytest.raises(TimeoutError):
            gate.acquire(timeout_s=0.1)  # gives up; its wait in the kernel goes on until the holder lets go
        taker = subprocess.run([sys.executable, "-c", taker_script], capture_output=True, timeout=10)
        assert taker.stdout.strip() == b"taken"  # the lock that came too late was let go at once
    gate.acquire(timeout_s=5)  # and the gate still works for this process
    gate.release()


def test_writers_of_two_processes_lose_no_update(engine: Engine) -> None:
    database = str(engine.url.database)
    script = (
        "import sys, threading\n"
        "from sqlalchemy import text\n"
        "from routing.db import make_engine, writer\n"
        f"engine = make_engine({'sqlite:///' + database!r}, pool_size=4)\n"
        "def work():\n"
        "    for _ in range(100):\n"
        "        with writer(engine).begin() as conn:\n"
        "            n = conn.execute(text('SELECT n FROM counter WHERE id = 1')).scalar_one()\n"
        "            conn.execute(text('UPDATE counter SET n = :n WHERE id = 1'), {'n': n + 1})\n"
        "threads = [threading.Thread(target=work) for _ in range(4)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", script]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 2 * 4 * 100


def test_the_write_ahead_log_is_checkpointed_by_its_own_thread(engine: Engine) -> None:
    wal = Path(f"{engine.url.database}-wal")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA wal_autocheckpoint")).scalar_one() == 0  # not in the writers' commits

    def write(times: int) -> None:
        for i in range(times):
            with writer(engine).begin() as conn:
                conn.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": i})

    write(300)
    grown = wal.stat().st_size
    time.sleep(WalCheckpointer.INTERVAL_S * 2.5)  # a checkpoint of everything written so far
    write(300)
    # After a complete checkpoint the next writer starts the log from its beginning again: it does not grow.
    assert wal.stat().st_size <= grown * 1.2


def _log_restarts(wal: Path) -> int:
    """The write-ahead log's checkpoint sequence number: one more each time the log starts over (SQLite's WAL
    header, bytes 12 to 15)."""
    with wal.open("rb") as f:
        return int.from_bytes(f.read(16)[12:16], "big")


def test_under_a_steady_stream_of_writes_the_log_still_starts_over(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = Path(f"{engine.url.database}-wal")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"))
    stop, failures = threading.Event(), []

    def write() -> None:
        try:
            while not stop.is_set():
                with writer(engine).begin() as conn:
                    conn.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": "x" * 3000})
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(exc)

    writers = [threading.Thread(target=write) for _ in range(4)]
    for t in writers:
        t.start()
    monkeypatch.setattr(WalCheckpointer, "RESTART_PAGES", 50)
    checkpointer = checkpointer_of(str(Path(str(engine.url.database)).resolve()), pysqlite3.dbapi2)
    conn = pysqlite3.dbapi2.connect(str(engine.url.database), timeout=0, check_same_thread=False)
    conn.isolation_level = None
    try:
        time.sleep(0.2)
        first = _log_restarts(wal)
        for _ in range(30):  # passes every 50 ms while the writers go on
            checkpointer.checkpoint(conn)
            time.sleep(0.05)
        restarts = _log_restarts(wal) - first
    finally:
        stop.set()
        for t in writers:
            t.join()
        conn.close()
    assert failures == []
    assert restarts >= 5
