"""Alembic environment: one migration set for SpatiaLite and PostGIS (geoalchemy2 helpers live here only)."""

from __future__ import annotations

import os
from typing import Any

from alembic import context

# Importing the helpers patches SQLite reflection of spatial indexes, so it happens here and nowhere else.
from geoalchemy2 import alembic_helpers

import routing.models  # noqa: F401 - registers the network tables
import tracking.models  # noqa: F401 - registers the tracking tables
from routing.db import Base, is_sqlite, make_engine

config = context.config
target_metadata = Base.metadata


def include_object(obj: Any, name: str | None, obj_type: str, reflected: bool, compare_to: Any) -> bool:
    # SpatiaLite and PostGIS keep their own tables (KNN, SpatialIndex, spatial_ref_sys ...): never ours to drop.
    if obj_type == "table" and reflected and compare_to is None:
        return False
    return bool(alembic_helpers.include_object(obj, name, obj_type, reflected, compare_to))


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        url = os.environ.get("RAILSEA_DATABASE_URL")
        if not url:
            raise SystemExit("Set RAILSEA_DATABASE_URL, or run migrations through `railsea init`.")
        engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            process_revision_directives=alembic_helpers.writer,
            render_item=alembic_helpers.render_item,
            render_as_batch=is_sqlite(engine),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported: run them against a database.")
run_migrations()
