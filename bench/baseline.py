"""Baselines for bench.http: the smallest Flask apps doing what the measured endpoints cannot do without.

- `POST /bare`: reads the JSON body and answers a small JSON object (the framework's own cost);
- `POST /select-insert`: one primary-key select and one insert in one transaction on the database RailSea uses,
  through the same engine set-up (`routing.db.make_engine`, and `writer`: BEGIN IMMEDIATE on SQLite).

Run under gunicorn with the configuration of `railsea serve` (see `GUNICORN_SETTINGS`):
    python -m bench.baseline --database-url URL --port 8001 --workers 2 --threads 8
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from flask import Flask, request
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text, bindparam, func, insert, select

from routing.db import make_engine, writer

# The settings `railsea serve` gives gunicorn (api/cli.py); the baseline must run under the same ones.
GUNICORN_SETTINGS: dict[str, Any] = {
    "worker_class": "gthread",
    "timeout": 60,
    "graceful_timeout": 10,
    "accesslog": "-",
}

metadata = MetaData()
rows = Table(
    "bench_baseline_rows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ref_id", Integer, nullable=False),
    Column("ref_status", String(20)),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
containers = Table("containers", MetaData(), Column("id", Integer, primary_key=True), Column("status", String(20)))
# Built once, as RailSea's hot paths do (building a statement costs more than running it).
SELECT_ONE = select(containers.c.status).where(containers.c.id == bindparam("ref_id"))
INSERT_ONE = insert(rows)


def prepare(database_url: str) -> int:
    """Create the baseline's table in the (already migrated) database; returns how many containers it can select."""
    engine = make_engine(database_url)
    try:
        metadata.create_all(engine)
        with engine.connect() as conn:
            return int(conn.scalar(select(func.max(containers.c.id))) or 0)
    finally:
        engine.dispose()


def create_app(database_url: str, pool_size: int = 10) -> Flask:
    app = Flask(__name__)
    engine = writer(make_engine(database_url, pool_size=pool_size))
    with engine.connect() as conn:
        count = max(1, int(conn.scalar(select(func.max(containers.c.id))) or 1))
    ids = itertools.count()

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok"}

    @app.post("/bare")
    def bare() -> dict[str, Any]:
        request.get_json()
        return {"status": "ok"}

    @app.post("/select-insert")
    def select_insert() -> tuple[dict[str, Any], int]:
        body = request.get_data(as_text=True)
        request.get_json()
        ref_id = next(ids) % count + 1
        with engine.begin() as conn:
            status = conn.execute(SELECT_ONE, {"ref_id": ref_id}).scalar_one()
            inserted = conn.execute(INSERT_ONE, {"ref_id": ref_id, "ref_status": status, "body": body})
        assert inserted.inserted_primary_key is not None
        return {"id": inserted.inserted_primary_key[0], "ref_id": ref_id, "status": status}, 201

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            settings = {
                "bind": f"{args.host}:{args.port}",
                "workers": args.workers,
                "threads": args.threads,
                **GUNICORN_SETTINGS,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # In each worker, after the fork, with a connection per thread, like `railsea serve`.
            return create_app(args.database_url, pool_size=args.threads)

    Server().run()


if __name__ == "__main__":
    main()
