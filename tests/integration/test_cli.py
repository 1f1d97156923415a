"""The `railsea` command: init is idempotent; keys create prints the token alone."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.cli import cli
from routing.db import make_engine
from routing.models import Leg, NetworkVersion, Node
from tests.conftest import TestDatabase, backend_url


def _state(url: str) -> tuple[int, int, int, list[tuple]]:
    engine = make_engine(url)
    with Session(engine) as session:
        state = (
            session.scalar(select(func.count(Node.id))) or 0,
            session.scalar(select(func.count(Leg.id))) or 0,
            session.scalar(select(NetworkVersion.version)) or 0,
            list(session.execute(select(Leg.id, Leg.duration_h, Leg.departures).order_by(Leg.id)).tuples()),
        )
    engine.dispose()
    return state


def test_init_twice_changes_nothing_the_second_time(database: TestDatabase, tmp_path: Path) -> None:
    url = backend_url(database.backend, tmp_path, "railsea_test_cli")
    runner = CliRunner()
    first = runner.invoke(cli, ["init"], env={"RAILSEA_DATABASE_URL": url})
    assert first.exit_code == 0, first.output
    after_first = _state(url)
    assert after_first[0] >= 40
    second = runner.invoke(cli, ["init"], env={"RAILSEA_DATABASE_URL": url})
    assert second.exit_code == 0, second.output
    assert "0 created, 0 updated" in second.output
    assert _state(url) == after_first


def test_keys_create_prints_only_the_token(database: TestDatabase) -> None:
    result = CliRunner().invoke(
        cli,
        ["keys", "create", "--role", "operator", "--name", "Nansha gate", "--nodes", "CNNSA,CNNSA-RLS"],
        env={"RAILSEA_DATABASE_URL": database.url},
    )
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert token.startswith("rs_")
    assert "\n" not in token
    assert " " not in token


def test_keys_create_refuses_unknown_nodes(database: TestDatabase) -> None:
    result = CliRunner().invoke(
        cli,
        ["keys", "create", "--role", "operator", "--name", "x", "--nodes", "CNNOPE"],
        env={"RAILSEA_DATABASE_URL": database.url},
    )
    assert result.exit_code != 0
    assert "CNNOPE" in result.output
