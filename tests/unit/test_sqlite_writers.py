"""SpatiaLite writers: handed over by the writer gate, checkpointed off the request path (routing/db.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from routing.db import WalCheckpointer, gate_of, make_engine, writer


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


def test_a_writer_of_another_process_holds_the_gate_until_it_lets_go(engine: Engine, tmp_path: Path) -> None:
    database = str(engine.url.database)
    script = (
        "import fcntl, os, time\n"
        f"fd = os.open({database + '-writer'!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(1.0)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        gate = gate_of(database)
        with pytest.raises(TimeoutError):
            gate.acquire(timeout_s=0.2)
        started = time.monotonic()
        gate.acquire(timeout_s=5)  # as soon as the other process lets go
        gate.release()
        assert time.monotonic() - started < 2.0


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
