"""The `railsea` command: init is idempotent; keys create prints the token alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import create_app
from api.cli import cli
from api.extensions import db
from routing.models import Leg, NetworkVersion, Node
from tests.conftest import ADMIN_TOKEN, TestDatabase, backend_url, bearer
from tracking.access import hash_token
from tracking.models import ApiKey


@pytest.fixture
def empty_app(database: TestDatabase, tmp_path: Path) -> Iterator[Flask]:
    """An app on a new, empty database of the same backend."""
    app = create_app({"TESTING": True, "DATABASE_URL": backend_url(database.backend, tmp_path, "cli")})
    yield app
    app.extensions["railsea_db"].engine.dispose()


def railsea(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(cli, list(args))


def _state(app: Flask) -> tuple:
    with Session(app.extensions["railsea_db"].engine) as session:
        return (
            session.scalar(select(func.count(Node.id))),
            session.scalar(select(func.count(Leg.id))),
            session.scalar(select(NetworkVersion.version)),
            session.execute(select(Leg.id, Leg.duration_h, Leg.departures).order_by(Leg.id)).all(),
        )


def test_init_twice_changes_nothing_the_second_time(empty_app: Flask) -> None:
    first = railsea(empty_app, "init")
    assert first.exit_code == 0, first.output
    after_first = _state(empty_app)
    assert after_first[0] >= 40
    assert after_first[2] == 1
    second = railsea(empty_app, "init")
    assert second.exit_code == 0, second.output
    assert "0 created, 0 updated" in second.output
    assert _state(empty_app) == after_first


def test_keys_create_prints_only_the_token(app: Flask) -> None:
    result = railsea(app, "keys", "create", "--role", "operator", "--name", "Nansha gate", "--nodes", "CNNSA,CNNSA-RLS")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("rs_")
    assert "\n" not in token
    assert " " not in token


def test_keys_revoke_refuses_the_token(app: Flask) -> None:
    client = app.test_client()
    token = railsea(app, "keys", "create", "--role", "operator", "--name", "Nansha gate", "--nodes", "CNNSA").stdout
    token = token.strip()
    other = client.post("/api/v1/keys", json={"name": "x", "role": "admin"}, headers=bearer(ADMIN_TOKEN)).get_json()
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    with app.app_context():
        revoked = db.session.scalar(select(ApiKey.id).where(ApiKey.token_hash == hash_token(token)))
    result = railsea(app, "keys", "revoke", str(revoked))
    assert result.exit_code == 0, result.output
    assert f"key {revoked} revoked" in result.output
    app.extensions["railsea_principals"].max_age_s = 0  # this test's worker: no trust left from the request above
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(other["token"])).status_code == 200  # other keys unaffected
    assert railsea(app, "keys", "revoke", "999999").exit_code != 0


def test_keys_create_refuses_unknown_nodes(app: Flask) -> None:
    result = railsea(app, "keys", "create", "--role", "operator", "--name", "x", "--nodes", "CNZZZ")
    assert result.exit_code != 0
    assert "CNZZZ" in result.output
