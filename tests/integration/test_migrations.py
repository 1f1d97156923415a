"""One migration set: up, down to base and up again on both databases, and no drift (`alembic check`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

import migrations
from routing.db import Base, make_engine
from tests.conftest import BACKENDS, backend_url


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_go_down_to_base_and_up_again(backend: str, tmp_path: Path) -> None:
    engine = make_engine(backend_url(backend, tmp_path, "migrations"))
    ours = set(Base.metadata.tables)
    try:
        migrations.upgrade(engine)
        assert ours <= set(inspect(engine).get_table_names())
        migrations.check(engine)

        migrations.downgrade(engine, "base")
        assert not ours & set(inspect(engine).get_table_names())

        migrations.upgrade(engine)
        assert ours <= set(inspect(engine).get_table_names())
        migrations.check(engine)
    finally:
        engine.dispose()
