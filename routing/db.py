"""Persistence base: declarative `Base`, the engine factory (SpatiaLite or PostGIS from one URL), sessions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, make_url
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
    cur.execute("PRAGMA foreign_keys = ON")
    if cur.execute("SELECT CheckSpatialMetaData()").fetchone()[0] < 1:
        # WGS84 only: a new database stays small (332 KB instead of 6.5 MB) and is created fast.
        cur.execute("SELECT InitSpatialMetaData(1, 'WGS84')")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the lock up front: a deferred transaction that upgrades to a writer cannot wait for the lock.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


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


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for a SpatiaLite file (WAL, busy timeout, mod_spatialite) or for PostgreSQL + PostGIS.

    Behind pgbouncer in transaction pooling mode, add `?prepare_threshold=none` to the PostgreSQL URL: psycopg 3
    otherwise prepares a statement on the server after its fifth execution, and the next transaction may run on a
    server connection that lacks it, or already has another one of that name (`prepared statement "_pg3_0" does not
    exist` / `already exists`). A number sets psycopg's threshold instead; note that `0` means "prepare every
    statement at once", not "never". SQLite URLs are not affected."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        import pysqlite3.dbapi2 as sqlite

        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed, module=sqlite, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
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
