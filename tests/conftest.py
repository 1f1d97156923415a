"""Fixtures: every database test runs on SpatiaLite and on PostGIS, through the real migrations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, delete, make_url, select, text

import migrations
from api import create_app
from fixtures import REFERENCE_DIR
from routing.db import Base, make_engine
from routing.models import Leg, NetworkVersion, Node
from routing.reference import ReferenceData, read_reference
from routing.service import load_network

ADMIN_TOKEN = "test-admin-token"
BACKENDS = ("spatialite", "postgis")
POSTGRES_URL = os.environ.get("RAILSEA_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/railsea_test")
NETWORK_TABLES = {Node.__tablename__, Leg.__tablename__, NetworkVersion.__tablename__}


@dataclass
class TestDatabase:
    """A migrated database holding the reference network, shared by the tests of one backend."""

    __test__ = False
    backend: str
    url: str
    engine: Engine


def fresh_postgres(url: str) -> str:
    """Drop and create the database named in `url` with PostGIS; a missing server fails loudly."""
    target = make_url(url).set(drivername="postgresql+psycopg")
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    except Exception as exc:
        pytest.fail(
            f"PostGIS backend unavailable at {target.render_as_string(hide_password=True)}: {exc}. "
            "Run `make test` (it starts PostgreSQL) or set RAILSEA_TEST_POSTGRES_URL. A backend is never skipped.",
            pytrace=False,
        )
    finally:
        admin.dispose()
    engine = create_engine(target, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    engine.dispose()
    return target.render_as_string(hide_password=False)


# Each pytest process works in databases of its own, so two runs on one machine never drop each other's.
RUN_SUFFIX = f"_{os.getpid()}"
_CREATED: list[str] = []


def backend_url(backend: str, tmp: Path, name: str = "main") -> str:
    """A new, empty database: a SpatiaLite file under `tmp`, or `<RAILSEA_TEST_POSTGRES_URL's db>_<name>_<pid>`."""
    if backend == "spatialite":
        return f"sqlite:///{tmp / (name + '.db')}"
    base = make_url(POSTGRES_URL)
    url = fresh_postgres(str(base.set(database=f"{base.database}_{name}{RUN_SUFFIX}")))
    _CREATED.append(url)
    return url


def drop_postgres_databases() -> None:
    for url in _CREATED:
        target = make_url(url)
        admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        admin.dispose()
    _CREATED.clear()


@pytest.fixture(scope="session")
def reference() -> ReferenceData:
    return read_reference(REFERENCE_DIR)


@pytest.fixture(scope="session", params=BACKENDS)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, reference: ReferenceData
) -> Iterator[TestDatabase]:
    backend: str = request.param
    url = backend_url(backend, tmp_path_factory.mktemp(backend))
    engine = make_engine(url)
    migrations.upgrade(engine)
    _load(engine, reference)
    yield TestDatabase(backend, url, engine)
    engine.dispose()


def _load(engine: Engine, reference: ReferenceData) -> None:
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        load_network(session, reference.network, reference.node_extras, reference.leg_sources)
        session.commit()


def reset(db: TestDatabase, reference: ReferenceData) -> None:
    """Empty what tests write; reload the network only when a test changed it."""
    from sqlalchemy.orm import Session

    with Session(db.engine) as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in NETWORK_TABLES:
                session.execute(delete(table))
        counts = (session.scalar(select(NetworkVersion.version)), session.query(Node).count())
        if counts != (1, len(reference.network.nodes)):
            for table in (Leg.__table__, Node.__table__, NetworkVersion.__table__):
                session.execute(delete(table))
            session.commit()
            _load(db.engine, reference)
        session.commit()


@pytest.fixture
def app(database: TestDatabase, reference: ReferenceData) -> Iterator[Flask]:
    reset(database, reference)
    app = create_app({"TESTING": True, "DATABASE_URL": database.url, "ADMIN_TOKEN": ADMIN_TOKEN})
    yield app
    app.extensions["railsea_db"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_key(client: FlaskClient, **body: Any) -> str:
    """Create a key through the API as the bootstrap admin; returns its token."""
    response = client.post("/api/v1/keys", json=body, headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 201, response.get_json()
    token: str = response.get_json()["token"]
    return token


_RESULTS = {b: {"passed": 0, "failed": 0, "skipped": 0} for b in BACKENDS}


def _backend_of(nodeid: str) -> str | None:
    params = nodeid.rpartition("[")[2]
    return (
        next((b for b in BACKENDS if b in params.split("-") or params.startswith(b)), None) if "[" in nodeid else None
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    backend = _backend_of(report.nodeid)
    if backend is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _RESULTS[backend][report.outcome] += 1


def _backend_missing() -> bool:
    ran = [b for b, c in _RESULTS.items() if c["passed"] or c["failed"]]
    return bool(ran) and (len(ran) < len(BACKENDS) or any(c["skipped"] for c in _RESULTS.values()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    drop_postgres_databases()
    # In CI a backend that did not run, or a skipped database test, fails the run.
    if os.environ.get("RAILSEA_REQUIRE_ALL_BACKENDS") == "1" and _backend_missing() and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    line = "; ".join(
        f"{b}: {c['passed']} passed, {c['failed']} failed, {c['skipped']} skipped" for b, c in _RESULTS.items()
    )
    terminalreporter.write_line(f"database backends — {line}")
    if os.environ.get("RAILSEA_REQUIRE_ALL_BACKENDS") == "1" and _backend_missing():
        terminalreporter.write_line("FAILED: a database backend was skipped or did not run", red=True)
