"""Telemetry ingest: batches of 1,000 readings through the real endpoint versus the driver's own bulk insert of
the same rows (sqlite executemany; psycopg COPY), measured in the same run on each database.

Run: .venv/bin/python -m bench.ingest [--batches N] [--backend spatialite|postgis]
Target (issue 7): the endpoint ingests ≥ 25 % of the driver's rows/s.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import make_url, select
from sqlalchemy.orm import Session

from bench.common import declare, fresh_database, server, workdir
from routing.db import make_engine
from tracking.models import Container

TARGET = 0.25
# Points along Hong Kong → Nansha → Guangzhou → Changsha, inside the corridor of the declared itinerary.
PATH = [
    (114.12, 22.34),
    (113.9, 22.5),
    (113.67, 22.65),
    (113.6, 22.7),
    (113.31, 23.29),
    (113.59, 24.8),
    (112.96, 28.33),
]


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


def driver_rows(rows: list[dict[str, Any]], ids: dict[str, int], prefix: str) -> list[tuple[Any, ...]]:
    """The same readings as the driver's row tuples (devices prefixed, so they are told apart)."""
    now = datetime.now(UTC)
    return [
        (
            ids[r["container"]],
            prefix + r["device"],
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


class Driver:
    """The database driver's own bulk insert on one open connection: executemany (SQLite) or COPY (psycopg)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite:
            import pysqlite3.dbapi2 as sqlite

            self.conn: Any = sqlite.connect(parsed.database, isolation_level=None)
        else:
            import psycopg

            self.conn = psycopg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))

    def insert(self, rows: list[tuple[Any, ...]]) -> float:
        """Seconds to insert `rows` in one transaction, commit included (the rows stay, as the endpoint's do)."""
        started = time.perf_counter()
        if self.sqlite:
            self.conn.execute("BEGIN")
            self.conn.executemany(SQLITE_INSERT, [(*r[:2], r[2].isoformat(), *r[3:7], r[7].isoformat()) for r in rows])
            self.conn.execute("COMMIT")
        else:
            with self.conn.cursor() as cur, cur.copy(f"COPY readings ({COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            self.conn.commit()
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


def post(url: str, token: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(url + "/api/v1/telemetry", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Connection", "close")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read())


def run(backend: str, batches: int) -> float:
    """Batch by batch, the endpoint then the driver with the same 1,000 rows, so both see the same machine load."""
    with workdir() as tmp:
        url = fresh_database(backend, tmp)
        with server(url, workers=2, threads=4) as srv:
            tokens, numbers = declare(srv, 200)
            ids = container_ids(url)
            warm = {"readings": readings(numbers, 0, 1000)}
            post(srv.url, tokens["operator"], json.dumps(warm).encode())
            driver = Driver(url)
            driver.insert(driver_rows(warm["readings"], ids, "WARM-"))
            endpoint_s = driver_s = 0.0
            for b in range(1, batches + 1):
                batch = readings(numbers, b, 1000)
                body = json.dumps({"readings": batch}).encode()
                started = time.perf_counter()
                status, answer = post(srv.url, tokens["operator"], body)
                endpoint_s += time.perf_counter() - started
                assert status == 202, answer
                assert answer["accepted"] == 1000, answer
                driver_s += driver.insert(driver_rows(batch, ids, "DRV-"))
            driver.close()
    rows = batches * 1000
    endpoint_rate, driver_rate = rows / endpoint_s, rows / driver_s
    ratio = endpoint_rate / driver_rate
    print(
        f"{backend:10}  endpoint {endpoint_rate:10,.0f} rows/s   driver {driver_rate:10,.0f} rows/s   "
        f"ratio {ratio:5.2f}  (target ≥ {TARGET:.2f}: {'met' if ratio >= TARGET else 'NOT met'})"
    )
    return ratio


def container_ids(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with Session(engine) as session:
        ids: dict[str, int] = dict(session.execute(select(Container.number, Container.id)).all())
    engine.dispose()
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--backend", choices=["spatialite", "postgis"], action="append")
    args = parser.parse_args()
    print(
        f"telemetry ingest: {args.batches} batches × 1,000 readings; endpoint = POST /api/v1/telemetry on gunicorn "
        "(2 workers), driver = executemany / COPY of the same rows"
    )
    ratios = [run(backend, args.batches) for backend in args.backend or ["spatialite", "postgis"]]
    if min(ratios) < TARGET:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
