"""Persistence base: declarative `Base`, the engine factory (SpatiaLite or PostGIS from one URL), sessions."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Connections opened through an engine with this execution option start their transactions as writers.
WRITE_OPTION = "railsea_write"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# PostgreSQL URL query parameter read by `make_engine` (e.g. `?prepare_threshold=none` behind pgbouncer).
PREPARE_THRESHOLD = "prepare_threshold"


class Base(DeclarativeBase):
    """Base of every RailSea model; constraint names follow one convention on both databases."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def normalise_url(url: str | URL) -> URL:
    """`postgresql://` → psycopg 3 driver; `sqlite://` stays (the engine swaps in pysqlite3)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(engine_or_url: Engine | URL | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # The stdlib sqlite3 here cannot load extensions; pysqlite3 can, and geoalchemy2 reads this variable.
    os.environ.setdefault("SPATIALITE_LIBRARY_PATH", "mod_spatialite")
    # SQLAlchemy issues BEGIN itself (see _sqlite_begin), so the driver must not.
    dbapi_conn.isolation_level = None
    dbapi_conn.enable_load_extension(True)
    dbapi_conn.load_extension(os.environ["SPATIALITE_LIBRARY_PATH"])
    dbapi_conn.enable_load_extension(False)
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA synchronous = NORMAL")
    if getattr(dbapi_conn, "gate", False) is None:
        # A gated file's writers leave checkpoints to the process's checkpointer (`WalCheckpointer`).
        cur.execute("PRAGMA wal_autocheckpoint = 0")
    cur.execute("PRAGMA foreign_keys = ON")
    if cur.execute("SELECT CheckSpatialMetaData()").fetchone()[0] < 1:
        # WGS84 only: a new database stays small (332 KB instead of 6.5 MB) and is created fast.
        cur.execute("SELECT InitSpatialMetaData(1, 'WGS84')")
    cur.close()


class _FileLock:
    """An exclusive `flock` on a file among processes, waited for without polling and given up at a timeout.

    Uncontended, it is taken at once in the caller's thread. Otherwise a thread of its own blocks in `flock` (the
    kernel wakes it the moment the holder lets go) while the caller waits for it with a timeout; if the caller has
    given up by the time the lock comes, the thread lets it go again. The lock belongs to the open file, not to a
    thread, so the caller holds it once the thread has it. One caller at a time (the gate's owner)."""

    def __init__(self, fd: int, name: str) -> None:
        self._fd, self._name = fd, name
        self._changed = threading.Condition()
        self._wanted = False  # a caller is waiting for the lock
        self._granted = False  # the thread took it for that caller
        self._blocked = False  # the thread is inside a blocking flock (perhaps for a caller who gave up)
        self._thread: threading.Thread | None = None

    def acquire(self, timeout_s: float) -> bool:
        with self._changed:
            if not self._blocked:  # nothing in flight: a first try needs no other thread
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    pass
            if self._thread is None:
                self._thread = threading.Thread(target=self._wait, name=f"flock {self._name}", daemon=True)
                self._thread.start()
            self._wanted, self._granted = True, False
            self._changed.notify_all()
            granted = self._changed.wait_for(lambda: self._granted, max(0.0, timeout_s))
            self._wanted = self._granted = False
            return granted

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _wait(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._wanted)
                self._blocked = True
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError:  # cannot happen on an open file; if it does, the next caller starts a new thread
                with self._changed:
                    self._blocked, self._thread = False, None
                raise
            with self._changed:
                self._blocked = False
                if self._wanted:
                    self._wanted, self._granted = False, True
                    self._changed.notify_all()
                else:  # the caller gave up meanwhile
                    fcntl.flock(self._fd, fcntl.LOCK_UN)


class WriterGate:
    """One writer transaction at a time on a SQLite file, handed from one to the next without delay.

    SQLite makes a writer that finds the database locked poll for it, sleeping 1, 2, 5, ... up to 100 ms between
    tries: under load the database then stands idle between transactions while every waiter sleeps. Writers that
    pass this gate wait in a queue instead: among the threads of a process, first come first served (the holder
    hands the gate to the first waiter, whom no later arrival overtakes), then an advisory lock (`flock`) on
    `<database>-writer` among processes, which the kernel gives a waiter the moment it is let go (`_FileLock`). It
    is taken just before `BEGIN IMMEDIATE` and let go once the COMMIT or ROLLBACK is done (`gated_connection`).
    One gate per file and process (`gate_of`), re-entrant within a thread, so that a thread nesting two writers
    meets SQLite's busy timeout as before rather than waiting on itself. Anything else writing the file (the sqlite3
    shell) still meets SQLite's own lock and busy timeout."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}-writer"
        self._mutex = threading.Lock()
        self._owner: int | None = None  # the thread holding the gate
        self._depth = 0
        self._queue: deque[tuple[int, threading.Lock]] = deque()  # who waits, first come first served
        self._file: _FileLock | None = None
        self._pid = 0

    def acquire(self, timeout_s: float = SQLITE_BUSY_TIMEOUT_MS / 1000) -> None:
        deadline = time.monotonic() + timeout_s
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return
            if self._owner is None:
                self._owner, self._depth = me, 1
                turn = None
            else:
                turn = threading.Lock()
                turn.acquire()
                self._queue.append((me, turn))
        if turn is not None and not turn.acquire(timeout=timeout_s):
            with self._mutex:
                if (me, turn) in self._queue:  # not handed over meanwhile
                    self._queue.remove((me, turn))
                    raise TimeoutError(f"no write access to {self.path.removesuffix('-writer')} within {timeout_s:g} s")
        try:
            self._lock_file(deadline)
        except BaseException:
            self._let_in_next()
            raise

    def _lock_file(self, deadline: float) -> None:
        if self._file is None or self._pid != os.getpid():  # a forked worker opens its own file description
            self._file = _FileLock(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644), self.path)
            self._pid = os.getpid()
        if not self._file.acquire(deadline - time.monotonic()):
            raise TimeoutError(f"no write access to {self.path.removesuffix('-writer')} in time")

    def release(self) -> None:
        """Let go (from any thread: a connection may be rolled back where it is collected)."""
        with self._mutex:
            self._depth -= 1
            if self._depth > 0:
                return
        try:
            if self._file is not None:
                self._file.release()
        finally:
            self._let_in_next()

    def _let_in_next(self) -> None:
        """Hand the gate to the first in the queue (it owns it from now, so nobody arriving meanwhile overtakes it)."""
        with self._mutex:
            if self._queue:
                self._owner, turn = self._queue.popleft()
                self._depth = 1
                turn.release()
            else:
                self._owner, self._depth = None, 0


class WalCheckpointer:
    """Copies a SQLite file's write-ahead log back into the database from a thread of its own, once a second.

    SQLite otherwise does it in the transaction whose commit takes the log past 1,000 pages: every seventieth
    transfer or so then waited for a checkpoint, the tail latency of every write. This thread's checkpoints are
    PASSIVE: they neither wait for nor hold up a writer or a reader. But the log starts over only when a writer
    finds all of it copied back, and under a steady stream of writes some are always committed during the pass: the
    log then grew without end (28,000 pages, 110 MB, in 30 s of transfers). So when a pass leaves a log of 1,000
    pages or more, a second one copies what was committed meanwhile (a few ms of work) with writers held at the
    gate, and the next writer starts the log over. Started by the first write of a process on a gated file
    (`gated_connection`); a daemon, gone with its process."""

    INTERVAL_S = 1.0
    RESTART_PAGES = 1000
    GATE_WAIT_S = 1.0

    def __init__(self, path: str, module: Any) -> None:
        self.path, self._module = path, module
        self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint {Path(path).name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn, inode = None, None
        while True:
            time.sleep(self.INTERVAL_S)
            try:
                current = os.stat(self.path).st_ino
            except OSError:
                continue  # not there (now): nothing to checkpoint
            if conn is None or current != inode:  # first time, or the file was replaced
                if conn is not None:
                    conn.close()
                conn, inode = self._module.connect(self.path, timeout=0, check_same_thread=False), current
                conn.isolation_level = None
            try:
                self.checkpoint(conn)
            except (self._module.Error, TimeoutError):
                continue  # busy or locked now: next time

    def checkpoint(self, conn: Any) -> None:
        """One pass on `conn` (a connection of its own, in autocommit); finished at the gate if the log is long."""
        _, pages, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if pages >= self.RESTART_PAGES:
            gate = gate_of(self.path)
            gate.acquire(timeout_s=self.GATE_WAIT_S)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                gate.release()


_GATES: dict[str, WriterGate] = {}
_CHECKPOINTERS: dict[tuple[str, int], WalCheckpointer] = {}
_GATES_LOCK = threading.Lock()


def gate_of(database: str) -> WriterGate:
    """The process's gate of a SQLite file (one per file, whatever the number of engines on it)."""
    path = str(Path(database).resolve())
    with _GATES_LOCK:
        gate = _GATES.get(path)
        if gate is None:
            gate = _GATES[path] = WriterGate(path)
        return gate


def checkpointer_of(path: str, module: Any) -> WalCheckpointer:
    """The process's checkpointer of a SQLite file, started on first use."""
    key = (path, os.getpid())
    found = _CHECKPOINTERS.get(key)
    if found is None:
        with _GATES_LOCK:
            found = _CHECKPOINTERS.get(key)
            if found is None:
                found = _CHECKPOINTERS[key] = WalCheckpointer(path, module)
    return found


def gated_connection(module: Any) -> type:
    """A DBAPI connection class of `module` (pysqlite3) that lets its gate go after COMMIT, ROLLBACK or close, and
    whose writes are checkpointed by the process's `WalCheckpointer`."""

    class GatedConnection(module.Connection):
        gate: WriterGate | None = None

        def _let_go(self) -> None:
            gate, self.gate = self.gate, None
            if gate is not None:
                gate.release()
                checkpointer_of(gate.path.removesuffix("-writer"), module)

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self._let_go()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self._let_go()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self._let_go()

    return GatedConnection


def _sqlite_begin(conn: Any) -> None:
    # Writers take the lock up front: a deferred transaction that upgrades to a writer cannot wait for the lock.
    if not conn.get_execution_options().get(WRITE_OPTION):
        conn.exec_driver_sql("BEGIN")
        return
    dbapi = conn.connection.dbapi_connection
    gate: WriterGate | None = getattr(conn.engine.dialect, "railsea_gate", None)
    if gate is not None and getattr(dbapi, "gate", None) is None:
        gate.acquire()
        dbapi.gate = gate
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if gate is not None:
            dbapi._let_go()
        raise


def _prepare_threshold(url: URL) -> tuple[URL, int | None] | None:
    """The `prepare_threshold` query parameter taken out of a PostgreSQL URL (it is not a libpq parameter), as
    psycopg wants it: `none` → None (never prepare), a number → an int; None when the URL does not have it."""
    raw = url.query.get(PREPARE_THRESHOLD)
    if raw is None:
        return None
    value = (raw[-1] if isinstance(raw, tuple) else raw).strip().lower()
    if value == "none":
        threshold: int | None = None
    elif value.lstrip("-").isdigit():
        threshold = int(value)
    else:
        raise ValueError(f"{PREPARE_THRESHOLD} must be 'none' or a number, not {value!r}")
    return url.difference_update_query([PREPARE_THRESHOLD]), threshold


def _in_memory(url: URL) -> bool:
    """A SQLite database in memory: its pool (one connection per thread) takes no size."""
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and (database in ("", ":memory:") or "mode=memory" in database)


def make_engine(url: str | URL, *, pool_size: int | None = None, **kwargs: Any) -> Engine:
    """An engine for a SpatiaLite file (WAL, busy timeout, mod_spatialite) or for PostgreSQL + PostGIS.

    Behind pgbouncer in transaction pooling mode, add `?prepare_threshold=none` to the PostgreSQL URL: psycopg 3
    otherwise prepares a statement on the server after its fifth execution, and the next transaction may run on a
    server connection that lacks it, or already has another one of that name (`prepared statement "_pg3_0" does not
    exist` / `already exists`). A number sets psycopg's threshold instead; note that `0` means "prepare every
    statement at once", not "never". SQLite URLs are not affected."""
    parsed = normalise_url(url)
    if pool_size is not None and not _in_memory(parsed):
        # As many kept connections as threads that may use one at once; a few more for bursts (background jobs,
        # the live stream), which are closed again when they come back.
        kwargs.setdefault("pool_size", pool_size)
        kwargs.setdefault("max_overflow", max(4, pool_size // 2))
    if parsed.get_backend_name() == "sqlite":
        import pysqlite3.dbapi2 as sqlite

        connect_args: dict[str, Any] = {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        gate = None
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith("file:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            gate = gate_of(parsed.database)
            connect_args["factory"] = gated_connection(sqlite)
        engine = create_engine(parsed, module=sqlite, connect_args=connect_args, **kwargs)
        engine.dialect.railsea_gate = gate  # type: ignore[attr-defined]
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    prepare = _prepare_threshold(parsed)
    if prepare is not None:
        parsed, threshold = prepare
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "prepare_threshold": threshold}
    return create_engine(parsed, **kwargs)


def writer(engine: Engine) -> Engine:
    """The same engine (and pool) whose transactions start as writers (BEGIN IMMEDIATE on SQLite)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def for_reading_through(session: Session) -> None:
    """Ready the rest of the session's transaction for a statement that is read to its last row, in batches (a
    report over a period): on PostgreSQL, no JIT compilation, and the plan chosen for all rows, not for a cursor's
    first ones. The planner switches JIT on for a statement estimated expensive, where compiling took 1.3 of 2.3 s
    (a month of clearance figures at Nansha on the growth database); and it plans a cursor for its first tenth
    (`cursor_tuple_fraction`), which made that month read every event in container order (4.4 s instead of 2.0).
    `SET LOCAL` lasts until the transaction ends, so it is safe behind pgbouncer; SQLite has nothing to set."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL cursor_tuple_fraction = 1"))
