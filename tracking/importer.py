"""Bulk import from spreadsheets: CSV rows → API requests (with idempotency keys from their content) and back.

Pure functions, no HTTP: `api/bulk.py` posts what these build. Columns (docs/import.md):
- transfers: container, node, event_time, activity, seals (`number:condition;...`), from_mode, to_mode, vehicle;
- declarations, one row per container, rows with the same reference forming one declaration: reference, direction,
  origin, destination, itinerary (`A>B>C`), inspection_node, deadline, container, seals (`number:type:source;...`),
  hs_code, description, port_quarantine, party (admins declaring for a forwarder).
Unknown columns are ignored, so a `.rejected.csv` report can be fixed and imported again as it is.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from tracking.evidence import canonical_json
from tracking.vocab import DCSA_SEAL_SOURCE, DCSA_SEAL_TYPE

TRANSFER_COLUMNS = ("container", "node", "event_time", "activity", "seals", "from_mode", "to_mode", "vehicle")
TRANSFER_REQUIRED = ("container", "node", "event_time", "activity")
DECLARATION_COLUMNS = (
    "reference",
    "direction",
    "origin",
    "destination",
    "itinerary",
    "inspection_node",
    "deadline",
    "container",
    "seals",
    "hs_code",
    "description",
    "port_quarantine",
    "party",
)
DECLARATION_REQUIRED = ("reference", "direction", "origin", "destination", "deadline", "container")
# Declaration-level columns: every row of one reference must agree on them (a blank repeats the first row's).
DECLARATION_LEVEL = ("direction", "origin", "destination", "itinerary", "inspection_node", "deadline", "party")
REPORT_COLUMNS = ("row", "status", "reason")

_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0", ""})
# Seal types and sources may be given as RailSea's words or as the DCSA codes yard systems often export.
_SEAL_TYPES = {code: str(kind) for kind, code in DCSA_SEAL_TYPE.items() if code} | {
    str(k): str(k) for k in DCSA_SEAL_TYPE
}
_SEAL_SOURCES = {code: str(src) for src, code in DCSA_SEAL_SOURCE.items()} | {str(s): str(s) for s in DCSA_SEAL_SOURCE}
_CONTAINER_FIELD = re.compile(r"^containers\.(\d+)(\.|$)")


class HeaderError(ValueError):
    """The file cannot be imported at all (no header, or required columns missing)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its spreadsheet row number (the header is row 1) and its values by column."""

    number: int
    values: Mapping[str, str]

    def get(self, column: str) -> str:
        return (self.values.get(column) or "").strip()


@dataclass(frozen=True, slots=True)
class Request:
    """One API write built from one or more rows; `group` orders requests that must go one after another."""

    rows: tuple[Row, ...]
    path: str
    body: dict[str, Any]
    key: str
    group: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that was not imported, and why."""

    row: Row
    status: str
    reason: str


@dataclass
class Parsed:
    requests: list[Request] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def read_rows(stream: TextIO, required: Sequence[str]) -> tuple[list[str], list[Row]]:
    """The header and data rows of a CSV (UTF-8, a BOM allowed); blank lines are skipped."""
    reader = csv.DictReader(stream)
    if reader.fieldnames is None:
        raise HeaderError("the file is empty: a header row is needed")
    header = [name.strip().lstrip("\ufeff").lower() for name in reader.fieldnames]
    missing = [c for c in required if c not in header]
    if missing:
        raise HeaderError(f"missing columns: {', '.join(missing)} (found: {', '.join(header)})")
    rows = []
    for raw in reader:
        values = {name: (raw.get(original) or "") for name, original in zip(header, reader.fieldnames, strict=True)}
        if any(v.strip() for v in values.values()):
            rows.append(Row(reader.line_num, values))
    return header, rows


def idempotency_key(kind: str, body: Mapping[str, Any]) -> str:
    """The same request gives the same key, whatever file or row it came from (so a re-run replays it)."""
    digest = hashlib.sha256(kind.encode() + b"\n" + canonical_json(dict(body))).hexdigest()
    return f"railsea-import-{kind}-{digest[:48]}"


def _optional(body: dict[str, Any], name: str, value: str) -> None:
    if value:
        body[name] = value


def parse_transfer_seals(text: str) -> list[dict[str, str]]:
    """`A1:intact;B2:broken` → `[{number: A1, condition: intact}, ...]`; raises ValueError for a bad part."""
    seals = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        number, sep, condition = part.rpartition(":")
        if not sep or not number.strip() or not condition.strip():
            raise ValueError(f"{part!r} is not number:condition")
        seals.append({"number": number.strip(), "condition": condition.strip().lower()})
    return seals


def transfer_requests(rows: Iterable[Row]) -> Parsed:
    """One `POST /transfers` per row, grouped by container so a box's transfers keep their order."""
    parsed = Parsed()
    for row in rows:
        try:
            seals = parse_transfer_seals(row.get("seals"))
        except ValueError as exc:
            parsed.rejected.append(Rejection(row, "invalid", f"seals: {exc}"))
            continue
        body: dict[str, Any] = {
            "container": row.get("container"),
            "node": row.get("node"),
            "event_time": row.get("event_time"),
            "activity": row.get("activity").lower(),
            "seals": seals,
        }
        for name in ("from_mode", "to_mode"):
            _optional(body, name, row.get(name).lower())
        _optional(body, "vehicle", row.get("vehicle"))
        parsed.requests.append(
            Request((row,), "/api/v1/transfers", body, idempotency_key("transfer", body), body["container"].upper())
        )
    return parsed


def parse_declared_seals(text: str) -> list[dict[str, str]]:
    """`A1:bolt:customs;B2::` (or DCSA codes `A1:BLT:CUS`) → seals; type and source may be left blank."""
    seals = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        number, *rest = [s.strip() for s in part.split(":")]
        if not number or len(rest) > 2:
            raise ValueError(f"{part!r} is not number:type:source")
        seal = {"number": number}
        kind, source = [*rest, "", ""][:2]
        if kind:
            if kind.upper() not in _SEAL_TYPES and kind.lower() not in _SEAL_TYPES:
                raise ValueError(f"{part!r}: unknown seal type {kind!r}")
            seal["type"] = _SEAL_TYPES.get(kind.upper()) or _SEAL_TYPES[kind.lower()]
        if source:
            if source.upper() not in _SEAL_SOURCES and source.lower() not in _SEAL_SOURCES:
                raise ValueError(f"{part!r}: unknown seal source {source!r}")
            seal["source"] = _SEAL_SOURCES.get(source.upper()) or _SEAL_SOURCES[source.lower()]
        seals.append(seal)
    return seals


def _container(row: Row) -> dict[str, Any]:
    try:
        seals = parse_declared_seals(row.get("seals"))
    except ValueError as exc:
        raise ValueError(f"seals: {exc}") from None
    box: dict[str, Any] = {"number": row.get("container"), "seals": seals}
    goods = {k: row.get(k) for k in ("hs_code", "description") if row.get(k)}
    if goods:
        box["goods"] = goods
    flag = row.get("port_quarantine").lower()
    if flag not in _TRUE | _FALSE:
        raise ValueError(f"port_quarantine: {row.get('port_quarantine')!r} is not true or false")
    if flag in _TRUE:
        box["port_quarantine"] = True
    return box


def declaration_requests(rows: Iterable[Row]) -> Parsed:
    """One `POST /declarations` per reference (its rows are its containers, in file order)."""
    parsed = Parsed()
    groups: dict[str, list[Row]] = {}
    for row in rows:
        if not row.get("reference"):
            parsed.rejected.append(Rejection(row, "invalid", "reference: required"))
            continue
        groups.setdefault(row.get("reference"), []).append(row)
    for reference, group in groups.items():
        head = group[0]
        problems: dict[int, str] = {}
        for row in group[1:]:
            clash = [c for c in DECLARATION_LEVEL if row.get(c) and row.get(c) != head.get(c)]
            if clash:
                problems[row.number] = f"differs from row {head.number} of {reference} in {', '.join(clash)}"
        containers = []
        for row in group:
            try:
                containers.append(_container(row))
            except ValueError as exc:
                problems[row.number] = str(exc)
        if problems:
            for row in group:
                reason = problems.get(row.number) or "not imported: another row of this declaration is invalid"
                parsed.rejected.append(Rejection(row, "invalid", reason))
            continue
        body: dict[str, Any] = {
            "reference": reference,
            "direction": head.get("direction").lower(),
            "origin": head.get("origin"),
            "destination": head.get("destination"),
            "deadline": head.get("deadline"),
            "containers": containers,
        }
        itinerary = [code.strip() for code in head.get("itinerary").split(">") if code.strip()]
        if itinerary:
            body["itinerary"] = itinerary
        _optional(body, "inspection_node", head.get("inspection_node"))
        _optional(body, "party", head.get("party"))
        parsed.requests.append(
            Request(tuple(group), "/api/v1/declarations", body, idempotency_key("declaration", body), reference)
        )
    return parsed


def _describe(errors: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{name}: {', '.join(messages)}" for name, messages in errors.items())


def rejections(request: Request, status: int, problem: Mapping[str, Any] | None) -> list[Rejection]:
    """The rows of a refused request with the server's reason; a declaration's field errors `containers.N...` go to
    the row of its Nth container, the other errors to every row."""
    problem = problem or {}
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
    errors: Mapping[str, Sequence[str]] = problem.get("errors") or {}
    per_row: dict[int, dict[str, Sequence[str]]] = {}
    general: dict[str, Sequence[str]] = {}
    for name, messages in errors.items():
        match = _CONTAINER_FIELD.match(name)
        if match and len(request.rows) > 1 and int(match.group(1)) < len(request.rows):
            per_row.setdefault(int(match.group(1)), {})[name] = messages
        else:
            general[name] = messages
    out = []
    for index, row in enumerate(request.rows):
        mine = {**general, **per_row.get(index, {})}
        reason = f"{detail} {_describe(mine)}".strip() if mine else detail
        out.append(Rejection(row, str(status), reason))
    return out


def write_report(stream: TextIO, header: Sequence[str], rejected: Iterable[Rejection]) -> int:
    """The rejected rows, in file order, with row number, status and reason before the original columns."""
    columns = list(REPORT_COLUMNS) + [c for c in header if c not in REPORT_COLUMNS]
    writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    count = 0
    for item in sorted(rejected, key=lambda r: r.row.number):
        writer.writerow({**item.row.values, "row": item.row.number, "status": item.status, "reason": item.reason})
        count += 1
    return count
