"""Behind pgbouncer (transaction pooling) a PostgreSQL URL carries `?prepare_threshold=none`: psycopg then never
prepares statements on the server, which another pooled connection would not have."""

from __future__ import annotations

import pytest
from sqlalchemy import make_url, text

from routing.db import make_engine
from tests.conftest import POSTGRES_URL


@pytest.mark.parametrize(("query", "expected"), [("none", None), ("NONE", None), ("12", 12)])
def test_the_prepare_threshold_reaches_psycopg_and_not_libpq(query: str, expected: int | None) -> None:
    url = make_url(POSTGRES_URL).set(database="postgres").update_query_dict({"prepare_threshold": query})
    engine = make_engine(url)
    try:
        assert "prepare_threshold" not in engine.url.query
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
            assert conn.connection.driver_connection.prepare_threshold == expected
    finally:
        engine.dispose()


def test_without_it_psycopg_keeps_its_default() -> None:
    engine = make_engine(make_url(POSTGRES_URL).set(database="postgres"))
    try:
        with engine.connect() as conn:
            assert conn.connection.driver_connection.prepare_threshold == 5
    finally:
        engine.dispose()


def test_a_threshold_that_is_not_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="prepare_threshold"):
        make_engine(make_url(POSTGRES_URL).update_query_dict({"prepare_threshold": "never"}))
