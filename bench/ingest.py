"""Telemetry ingest: batches of 1,000 readings through the real endpoint versus the driver's own bulk insert of
the same rows (sqlite executemany; psycopg COPY), measured in the same run on each database.

Run: .venv/bin/python -m bench.ingest [--batches N] [--backend spatialite|postgis]
Target (issue 7): the endpoint ingests ≥ 25 % of the driver's rows/s.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import make_url

from bench.common import declare, fresh_database, server, workdir

TARGET = 0.25
# Points along Hong Kong → Nansha → Guangzhou → Changsha, inside the corridor of the declared itinerary.
PATH = [(114.12, 22.34), (113.9, 22.5), (113.67, 22.65), (113.6, 22.7), (113.31, 23.29), (113.0, 25.0), (112.96, 28.33)]


def readings(numbers: list[str], batch: int, size: int) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(hours=6)
    out = []
    for i in range(size):
        n = batch * size + i
        lon, lat = PATH[n % len(PATH)]
        out.append(
            {
                "device": f"ES-{numbers[n % len(numbers)]}",
                "container": numbers[n % len(numbers)],
                "time": (start + timedelta(seconds=n)).isoformat(),
                "lat": lat + (n % 7) * 1e-3,
                "lon": lon,
                "sealed": True,
                "battery_pct": 80,
            }
        )
    return out


def driver_rows(rows: list[dict[str, Any]], ids: dict[str, int]) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    return [
        (
            ids[r["container"]],
            r["device"],
            datetime.fromisoformat(r["time"]),
            r["lat"],
            r["lon"],
            r["sealed"],
            r["battery_pct"],
            now,
        )
        for r in rows
    ]


COLUMNS = "container_id, device, time, lat, lon, sealed, battery_pct, received_at"
SQLITE_INSERT = (
    "INSERT INTO readings (container_id, device, time, lat, lon, sealed, battery_pct, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


def driver_bulk(url: str, rows: list[tuple[Any, ...]]) -> float:
    """Seconds the driver takes to insert `rows` in one transaction, then the rows are removed again."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import pysqlite3.dbapi2 as sqlite

        conn = sqlite.connect(parsed.database)
        try:
            started = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany(
                SQLITE_INSERT,
                [(*r[:2], r[2].isoformat(), *r[3:7], r[7].isoformat()) for r in rows],
            )
            conn.commit()
            elapsed = time.perf_counter() - started
            conn.execute("DELETE FROM readings WHERE device LIKE 'DRV-%'")
            conn.commit()
        finally:
            conn.close()
        return elapsed
    import psycopg

    with psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(f"COPY readings ({COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        elapsed = time.perf_counter() - started
        conn.execute("DELETE FROM readings WHERE device LIKE 'DRV-%'")
        conn.commit()
    return elapsed


def run(backend: str, batches: int) -> float:
    with workdir() as tmp:
        url = fresh_database(backend, tmp)
        with server(url, workers=2, threads=4) as srv:
            tokens, numbers = declare(srv, 200)
            srv.call("POST", "/api/v1/telemetry", {"readings": readings(numbers, 0, 10)}, token=tokens["operator"])
            all_rows: list[dict[str, Any]] = []
            started = time.perf_counter()
            for b in range(1, batches + 1):
                batch = readings(numbers, b, 1000)
                status, body = srv.call("POST", "/api/v1/telemetry", {"readings": batch}, token=tokens["operator"])
                assert status == 202, body
                assert body["accepted"] == 1000, body
                all_rows.extend(batch)
            endpoint_s = time.perf_counter() - started
            _, page = srv.call("GET", "/api/v1/containers?limit=200", token=tokens["forwarder"])
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from routing.db import make_engine
        from tracking.models import Container

        engine = make_engine(url)
        with Session(engine) as session:
            ids = dict(session.execute(select(Container.number, Container.id)).all())
        engine.dispose()
        assert len(page["items"]) == 200
        rows = driver_rows(all_rows, ids)
        rows = [(r[0], "DRV-" + r[1], *r[2:]) for r in rows]
        driver_bulk(url, rows[:1000])  # warm-up
        driver_s = driver_bulk(url, rows)
    endpoint_rate, driver_rate = len(all_rows) / endpoint_s, len(rows) / driver_s
    ratio = endpoint_rate / driver_rate
    print(
        f"{backend:10}  endpoint {endpoint_rate:10,.0f} rows/s   driver {driver_rate:10,.0f} rows/s   "
        f"ratio {ratio:5.2f}  (target ≥ {TARGET:.2f}: {'met' if ratio >= TARGET else 'NOT met'})"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--backend", choices=["spatialite", "postgis"], action="append")
    args = parser.parse_args()
    print(
        f"telemetry ingest: {args.batches} batches × 1,000 readings; endpoint = POST /api/v1/telemetry on gunicorn "
        "(2 workers), driver = executemany / COPY of the same rows"
    )
    for backend in args.backend or ["spatialite", "postgis"]:
        run(backend, args.batches)


if __name__ == "__main__":
    main()
