"""Live-alert delivery: seal-break transfers posted one at a time to gunicorn (2 workers, Redis fan-out) while a
supervisor's Server-Sent Events stream is open on each worker; for each transfer, the POST's own latency and the
time from sending the POST until every stream has the matching `alert` event.

Run: .venv/bin/python -m bench.stream [--backend spatialite|postgis] [--count N] [--rate PER_S] [--timeout S]
Target (issue 7): p99(delivery) ≤ 3 × p99(POST), on each database.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from bench.common import AlertStream, Server, declare, fresh_database, percentile_ms, serve_process, workdir

TARGET = 3.0
REDIS_URL = os.environ.get("RAILSEA_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
NODE = "CNNSA"  # on the declared itinerary, in the operator's scope, under CN-GUANGZHOU (the supervisor's office)


def about(number: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the alerts of one container."""
    return lambda alert: alert["container"] == number


def open_streams(url: str, token: str, until: float) -> list[AlertStream]:
    """Streams until each of the two workers holds one (bounded), so every alert also crosses workers via Redis."""
    streams: list[AlertStream] = []
    while len({s.worker for s in streams}) < 2:
        if len(streams) >= 16 or time.monotonic() > until:
            raise RuntimeError("all streams landed on one worker")
        stream = AlertStream(url, token)
        stream.start()
        if not stream.ready.wait(10) or not stream.worker:
            raise RuntimeError(f"stream did not start: {stream.error}")
        streams.append(stream)
    return streams


def seal_break(number: str) -> dict[str, object]:
    return {
        "container": number,
        "node": NODE,
        "event_time": datetime.now(UTC).isoformat(),
        "activity": "arrive",
        "seals": [{"number": f"S{number}", "condition": "broken"}],
    }


def run(backend: str, count: int, rate: float, timeout_s: float) -> bool:
    with workdir() as tmp:
        url = fresh_database(backend, tmp)
        log = tmp / "server.log"
        env = {"RAILSEA_REDIS_URL": REDIS_URL}
        with serve_process(url, workers=2, threads=8, env=env, log=log) as base:
            srv = Server(base)
            tokens, numbers = declare(srv, count, reference=f"STREAM-{backend}")
            deadline = time.monotonic() + timeout_s
            streams = open_streams(base, tokens["supervisor"], deadline)
            posts: list[float] = []
            deliveries: list[float] = []
            lost: list[str] = []
            alert_ids: list[int] = []
            interval = 1.0 / rate
            try:
                for i, number in enumerate(numbers):
                    if time.monotonic() > deadline:
                        print(f"  timeout after {i} transfers")
                        break
                    started = time.perf_counter()
                    status, body = srv.call("POST", "/api/v1/transfers", seal_break(number), token=tokens["operator"])
                    posted = time.perf_counter()
                    assert status == 201, body
                    assert body["decision"] == "reinspect", body
                    alert_ids.append(body["alert_id"])
                    latest = posted
                    for stream in streams:
                        got = stream.wait_for(about(number), posted + 10.0)
                        if got is None:
                            lost.append(f"{number}@worker {stream.worker}")
                            continue
                        assert got[0]["id"] == body["alert_id"], (got, body)
                        latest = max(latest, got[1])
                    if i > 0:  # the first one warms both workers' paths
                        posts.append(posted - started)
                        deliveries.append(latest - started)
                    time.sleep(max(0.0, started + interval - time.perf_counter()))
            finally:
                for stream in streams:
                    stream.close()
            replay = replay_s(base, tokens["supervisor"], numbers[: len(alert_ids)], alert_ids)
    met = report(backend, posts, deliveries, lost, len(streams))
    if replay is None:
        print("  replay after Last-Event-ID: 0 did not bring back every alert within 30 s")
        return False
    print(
        f"  reconnect with Last-Event-ID: 0 replayed all {len(alert_ids)} alerts, in order, in {replay * 1000:.0f} ms"
    )
    return met


def replay_s(url: str, token: str, numbers: Sequence[str], alert_ids: Sequence[int]) -> float | None:
    """Seconds a new stream resuming from the start takes to replay every alert from the database (None if it
    did not, or not in order)."""
    started = time.perf_counter()
    stream = AlertStream(url, token, last_event_id=0)
    stream.start()
    try:
        got = stream.wait_for(about(numbers[-1]), started + 30.0) if numbers else None
        if got is None:
            return None
        elapsed = got[1] - started
        with stream.changed:
            received = list(stream.arrived)  # alert ids, in the order they arrived
        return elapsed if received == list(alert_ids) else None
    finally:
        stream.close()


def report(backend: str, posts: Sequence[float], deliveries: Sequence[float], lost: Sequence[str], n: int) -> bool:
    if not posts:
        print(f"{backend:10}  no measurements")
        return False
    post50, post99 = percentile_ms(list(posts), 0.5), percentile_ms(list(posts), 0.99)
    del50, del99 = percentile_ms(list(deliveries), 0.5), percentile_ms(list(deliveries), 0.99)
    ratio = del99 / post99
    met = ratio <= TARGET and not lost
    print(
        f"{backend:10}  {len(posts)} alerts, {n} streams   POST p50 {post50:7.1f} ms  p99 {post99:7.1f} ms   "
        f"delivery p50 {del50:7.1f} ms  p99 {del99:7.1f} ms   p99 ratio {ratio:5.2f}  "
        f"(target ≤ {TARGET:.1f}: {'met' if met else 'NOT met'})"
    )
    if lost:
        print(f"  {len(lost)} alerts missing from a stream after 10 s: {', '.join(lost[:5])}")
    return met


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["spatialite", "postgis"], action="append")
    parser.add_argument("--count", type=int, default=200, help="seal-break transfers per database")
    parser.add_argument("--rate", type=float, default=10.0, help="transfers started per second, at most")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds of posting per database, at most")
    args = parser.parse_args(argv)
    print(
        f"live alerts: {args.count} seal-break transfers at ≤ {args.rate:g}/s; gunicorn 2 workers × 8 threads, "
        "Redis fan-out (streams also look in the database every SSE_POLL_S = 3 s), a supervisor's SSE stream on "
        "each worker; delivery = POST sent → event on every stream"
    )
    results = [
        run(backend, args.count, args.rate, args.timeout) for backend in args.backend or ["spatialite", "postgis"]
    ]
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
