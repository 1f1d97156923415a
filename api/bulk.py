"""`railsea import`: post the rows of a yard system's CSV export through the HTTP API, resumably.

Every request carries an `Idempotency-Key` derived from its content, so running the same file again replays what
was stored (reported as already imported) and changes nothing; the rows the API refused are written, with the
reasons, to `FILE.rejected.csv` next to the file. A box's transfers are posted in file order, boxes in parallel.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from tracking import importer

RETRIES = 3
# Requests in a row that got no answer at all (after their retries) before the run gives up.
GIVE_UP_AFTER = 5
# Statuses worth retrying: the same key makes a retry safe even when the first attempt was stored.
_TRANSIENT = frozenset({408, 429, 500, 502, 503, 504})
_SHOWN = 20


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the API answered to one request (status 0: no answer)."""

    request: importer.Request
    status: int
    replayed: bool = False
    problem: dict[str, Any] | None = None
    error: str | None = None


class Client:
    """Posts requests to the API with a bearer token, retrying what may succeed later."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 60.0, backoff_s: float = 0.5) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s

    def post(self, request: importer.Request) -> Outcome:
        data = json.dumps(request.body).encode("utf-8")
        last = Outcome(request, 0, error="not sent")
        for attempt in range(RETRIES + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            http = urllib.request.Request(self.base_url + request.path, data=data, method="POST")
            http.add_header("Authorization", f"Bearer {self.token}")
            http.add_header("Content-Type", "application/json")
            http.add_header("Idempotency-Key", request.key)
            try:
                with urllib.request.urlopen(http, timeout=self.timeout_s) as response:
                    replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
                    response.read()
                    return Outcome(request, response.status, replayed)
            except urllib.error.HTTPError as error:
                with error:
                    last = Outcome(request, error.code, problem=_problem(error.read()))
                if error.code not in _TRANSIENT:
                    return last
            except (urllib.error.URLError, OSError) as error:
                last = Outcome(request, 0, error=str(getattr(error, "reason", error)))
        return last


def _problem(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body or b"null")
    except ValueError:
        return {"detail": body.decode("utf-8", "replace")[:500]}
    return parsed if isinstance(parsed, dict) else None


@dataclass
class Summary:
    rows: int = 0
    imported: int = 0
    replayed: int = 0
    rejected: int = 0
    failed: int = 0


def run(
    requests: list[importer.Request],
    post: Callable[[importer.Request], Outcome],
    *,
    jobs: int,
    progress: Callable[[int], None],
) -> list[Outcome]:
    """Post every request: one group (a box, a declaration) after the other within itself, groups in parallel.
    Stops early, with what it has, when the token is refused or the API stops answering."""
    groups: dict[str, list[importer.Request]] = {}
    for request in requests:
        groups.setdefault(request.group, []).append(request)
    done: queue.Queue[Outcome] = queue.Queue()
    stop = threading.Event()
    silent = [0]
    lock = threading.Lock()

    def work(group: list[importer.Request]) -> None:
        for request in group:
            if stop.is_set():
                return
            outcome = post(request)
            with lock:
                silent[0] = silent[0] + 1 if outcome.status == 0 else 0
                # A refused token, or an API that stopped answering: sending the rest would only repeat it.
                if outcome.status == 401 or silent[0] >= GIVE_UP_AFTER:
                    stop.set()
            done.put(outcome)

    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(work, g) for g in groups.values()]
        while len(outcomes) < len(requests):
            try:
                outcome = done.get(timeout=0.2)
            except queue.Empty:
                # Workers stop early after a refused token or silence: nothing more will come.
                if done.empty() and all(f.done() for f in futures):
                    break
                continue
            outcomes.append(outcome)
            progress(len(outcome.request.rows))
        for future in futures:
            future.result()
    while not done.empty():
        outcomes.append(done.get())
    return outcomes


def _tally(outcomes: Iterable[Outcome], summary: Summary) -> list[importer.Rejection]:
    rejected: list[importer.Rejection] = []
    for outcome in outcomes:
        rows = len(outcome.request.rows)
        if 200 <= outcome.status < 300:
            if outcome.replayed:
                summary.replayed += rows
            else:
                summary.imported += rows
        elif outcome.status == 0 or outcome.status in _TRANSIENT:
            summary.failed += rows
            reason = outcome.error or str((outcome.problem or {}).get("detail") or f"HTTP {outcome.status}")
            rejected += [
                importer.Rejection(row, "failed", f"not imported, run again: {reason}") for row in outcome.request.rows
            ]
        else:
            summary.rejected += rows
            rejected += importer.rejections(outcome.request, outcome.status, outcome.problem)
    return rejected


def report_path(path: Path) -> Path:
    return path.with_name(f"{path.stem}.rejected.csv")


def import_file(
    path: Path,
    *,
    kind: str,
    url: str,
    token: str,
    jobs: int,
    timeout_s: float = 60.0,
) -> Summary:
    """Import one CSV file of `transfers` or `declarations`; prints the rejected rows and writes the report."""
    required = importer.TRANSFER_REQUIRED if kind == "transfers" else importer.DECLARATION_REQUIRED
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            header, rows = importer.read_rows(stream, required)
    except (importer.HeaderError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    parsed = importer.transfer_requests(rows) if kind == "transfers" else importer.declaration_requests(rows)
    summary = Summary(rows=len(rows), rejected=len(parsed.rejected))
    client = Client(url, token, timeout_s=timeout_s)
    with click.progressbar(length=len(rows), label=f"Importing {kind} from {path.name}", file=sys.stderr) as bar:
        bar.update(len(parsed.rejected))
        outcomes = run(parsed.requests, client.post, jobs=jobs, progress=bar.update)
    if any(o.status == 401 for o in outcomes):
        raise click.ClickException("The API refused the token (401): nothing more was sent.")
    sent = {id(o.request) for o in outcomes}
    unsent = [Outcome(r, 0, error="not sent: the API stopped answering") for r in parsed.requests if id(r) not in sent]
    rejected = parsed.rejected + _tally([*outcomes, *unsent], summary)
    report = report_path(path)
    if rejected:
        with report.open("w", encoding="utf-8", newline="") as stream:
            importer.write_report(stream, header, rejected)
        for item in sorted(rejected, key=lambda r: r.row.number)[:_SHOWN]:
            click.echo(f"row {item.row.number}: {item.status} {item.reason}", err=True)
        if len(rejected) > _SHOWN:
            click.echo(f"... and {len(rejected) - _SHOWN} more", err=True)
    elif report.exists():
        report.unlink()
    click.echo(
        f"{path.name}: {summary.rows} rows: {summary.imported} imported, {summary.replayed} already imported, "
        f"{summary.rejected} rejected, {summary.failed} failed" + (f" (see {report.name})" if rejected else "")
    )
    return summary


_file = click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
_token = click.option("--token", envvar="RAILSEA_TOKEN", required=True, help="bearer token (or RAILSEA_TOKEN)")
_url = click.option(
    "--url", envvar="RAILSEA_URL", default="http://127.0.0.1:8000", show_default=True, help="the API's base URL"
)
_jobs = click.option(
    "--jobs", default=4, show_default=True, type=click.IntRange(1, 32), help="requests in parallel (one per box)"
)


def _exit(summary: Summary) -> None:
    """Exit status 1 when a row was rejected or got no answer, so scripts notice."""
    if summary.rejected or summary.failed:
        raise SystemExit(1)


@click.group("import")
def import_group() -> None:
    """Import CSV exports through the HTTP API (columns: docs/import.md); safe to run again."""


@import_group.command("transfers")
@_file
@_token
@_url
@_jobs
def import_transfers(file: Path, token: str, url: str, jobs: int) -> None:
    """Transfers: container, node, event_time, activity, seals (number:condition;...), from_mode, to_mode, vehicle."""
    _exit(import_file(file, kind="transfers", url=url, token=token, jobs=jobs))


@import_group.command("declarations")
@_file
@_token
@_url
@_jobs
def import_declarations(file: Path, token: str, url: str, jobs: int) -> None:
    """Declarations, one row per container (rows sharing a reference form one declaration)."""
    _exit(import_file(file, kind="declarations", url=url, token=token, jobs=jobs))
