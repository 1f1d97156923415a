"""E-seal telemetry: batches validated reading by reading, stored in bulk; tamper holds the box, a position off
the corridor of the declared itinerary alerts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import String, Table, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from routing.cache import paths
from routing.service import network_version
from tracking import iso6346
from tracking.access import Principal
from tracking.alerts import raise_alert
from tracking.chain import record_event
from tracking.clock import as_utc, rfc3339
from tracking.corridor import outside
from tracking.models import Alert, Container, Declaration, Device, Inspection, Reading
from tracking.scope import containers_visible
from tracking.vocab import UNRESOLVED_ALERT_STATUSES, AlertKind, ContainerStatus, EventType, InspectionResult

MAX_READINGS = 1000
READINGS = cast(Table, Reading.__table__)
DEVICES = cast(Table, Device.__table__)
FUTURE_TOLERANCE = timedelta(minutes=10)
DEFAULT_SILENT_AFTER = timedelta(minutes=30)
_DEVICE = re.compile(r"^[\x21-\x7e]{1,64}$")


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    rejected: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


def _number(value: Any, name: str, low: float, high: float, errors: dict[str, list[str]]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        errors[name] = ["must be a number"]
        return None
    if not low <= value <= high:
        errors[name] = [f"must be between {low:g} and {high:g}"]
        return None
    return float(value)


def _time(value: Any, now: datetime, errors: dict[str, list[str]]) -> datetime | None:
    if not isinstance(value, str):
        errors["time"] = ["must be an RFC 3339 time with an offset"]
        return None
    try:
        moment = datetime.fromisoformat(value)  # RFC 3339, "Z" included
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("z", "+00:00"))
        except ValueError:
            errors["time"] = ["must be an RFC 3339 time with an offset"]
            return None
    if moment.tzinfo is None:
        errors["time"] = ["needs an offset (e.g. Z or +08:00)"]
        return None
    if moment > now + FUTURE_TOLERANCE:
        errors["time"] = ["more than 10 minutes in the future"]
        return None
    return as_utc(moment)


_FIELDS = frozenset({"device", "container", "time", "lat", "lon", "sealed", "battery_pct"})
_REQUIRED = ("device", "container", "time", "lat", "lon", "sealed")


class _Numbers(dict[str, tuple[str | None, str | None]]):
    """Container numbers checked once per batch (a batch repeats a few hundred boxes): text → (normalised, error)."""

    def __missing__(self, text: str) -> tuple[str | None, str | None]:
        problem = iso6346.validation_error(text)
        result = (None, problem) if problem else (iso6346.normalise(text), None)
        self[text] = result
        return result


def _validate(raw: Any, now: datetime, numbers: _Numbers) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(raw, Mapping):
        return None, {"_reading": ["must be an object"]}
    if not _FIELDS.issuperset(raw):
        for name in sorted(set(raw) - _FIELDS):
            errors[name] = ["unknown field"]
    device = raw.get("device")
    if not isinstance(device, str) or not _DEVICE.match(device):
        errors["device"] = ["must be 1 to 64 visible characters"]
    number = raw.get("container")
    normalised, problem = numbers[number] if isinstance(number, str) else (None, "must be a container number")
    if problem:
        errors["container"] = [problem]
    moment = _time(raw.get("time"), now, errors)
    lat = _number(raw.get("lat"), "lat", -90, 90, errors)
    lon = _number(raw.get("lon"), "lon", -180, 180, errors)
    sealed = raw.get("sealed")
    if not isinstance(sealed, bool):
        errors["sealed"] = ["must be true or false"]
    battery = raw.get("battery_pct")
    if battery is not None:
        battery = _number(battery, "battery_pct", 0, 100, errors)
    if errors:
        for name in _REQUIRED:
            if name not in raw:
                errors[name] = ["required"]
        return None, errors
    return {
        "device": device,
        "number": normalised,
        "time": moment,
        "lat": lat,
        "lon": lon,
        "sealed": sealed,
        "battery_pct": battery,
    }, {}


def _unresolved(session: Session, container_ids: Sequence[int], kind: AlertKind) -> set[int]:
    """Which of the containers have an alert of `kind` still open or acknowledged (raised once per episode)."""
    return set(
        session.scalars(
            select(Alert.container_id).where(
                Alert.container_id.in_(list(container_ids)),
                Alert.kind == str(kind),
                Alert.status.in_([str(s) for s in UNRESOLVED_ALERT_STATUSES]),
            )
        )
    )


@dataclass(frozen=True, slots=True)
class _Box:
    """What the rules need of a container a reading names (the ORM object is loaded only to act on it)."""

    id: int
    itinerary: tuple[str, ...]


def ingest(
    session: Session,
    principal: Principal,
    readings: Sequence[Any],
    now: datetime,
    *,
    corridor_km: float = 25.0,
    silent_after: timedelta = DEFAULT_SILENT_AFTER,
) -> IngestResult:
    """Store the valid readings (each bad one is rejected alone, with its index), then apply the alert rules."""
    rejected: list[dict[str, Any]] = []
    valid: list[tuple[int, dict[str, Any]]] = []
    numbers = _Numbers()
    for index, raw in enumerate(readings):
        reading, errors = _validate(raw, now, numbers)
        if reading is None:
            rejected.append({"index": index, "errors": errors})
        else:
            valid.append((index, reading))

    boxes = _boxes(session, principal, sorted({r["number"] for _, r in valid}))
    rows: list[tuple[Any, ...]] = []
    stored: list[tuple[_Box, dict[str, Any]]] = []
    for index, reading in valid:
        found = boxes.get(reading["number"])
        if found is None:
            rejected.append({"index": index, "errors": {"container": ["no open declaration in your scope"]}})
            continue
        rows.append(
            (
                found.id,
                reading["device"],
                reading["time"],
                reading["lat"],
                reading["lon"],
                reading["sealed"],
                reading["battery_pct"],
                now,
            )
        )
        stored.append((found, reading))
    rejected.sort(key=lambda r: r["index"])
    if not rows:
        return IngestResult(0, rejected)
    unsealed = sorted(((f, r) for f, r in stored if not r["sealed"]), key=lambda item: item[1]["time"])
    off = _first_off(session, stored, corridor_km)
    # Every row lock the rules may need is taken before the readings are written (see `_locked`).
    acting = _locked(session, {found.id for found, _ in unsealed} | set(off)) if unsealed or off else {}
    _insert_readings(session, rows)
    _touch_devices(session, stored, silent_after)
    alerts = _tamper(session, unsealed, acting, now)
    alerts += _corridor(session, off, acting, now, corridor_km)
    return IngestResult(len(rows), rejected, alerts)


# The hot path of the batch goes to the driver directly (its executemany, or COPY), with the column types' own
# conversions, because SQLAlchemy's per-row parameter handling costs more than the database's work here.
def _boxes(session: Session, principal: Principal, numbers: list[str]) -> dict[str, _Box]:
    """The open containers of these numbers in the caller's scope, with their itineraries."""
    if not numbers:
        return {}
    if session.get_bind().dialect.name == "postgresql":
        # One array parameter rather than hundreds of IN parameters to render and send.
        named = Container.number == any_(bindparam("numbers", numbers, type_=postgresql.ARRAY(String)))
    else:
        named = Container.number.in_(numbers)
    found = session.execute(
        select(Container.id, Container.number, Declaration.itinerary)
        .join(Declaration, Container.declaration_id == Declaration.id)
        .where(named, Container.is_open, containers_visible(principal))
    )
    return {number: _Box(box_id, tuple(itinerary)) for box_id, number, itinerary in found}


_READING_COLUMNS = ("container_id", "device", "time", "lat", "lon", "sealed", "battery_pct", "received_at")
_COPY_READINGS = "COPY readings (container_id, device, time, lat, lon, sealed, battery_pct, received_at) FROM STDIN"
_INSERT_READINGS = (
    "INSERT INTO readings (container_id, device, time, lat, lon, sealed, battery_pct, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_DEVICE_COLUMNS = ("id", "container_id", "last_seen_at", "silent_after_s")
# A device reports for the box it is on now; its last_seen_at never moves back (late readings arrive out of order).
_UPSERT_DEVICES = (
    "INSERT INTO devices (id, container_id, last_seen_at, silent_after_s) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET container_id = excluded.container_id, last_seen_at = "
    "CASE WHEN excluded.last_seen_at > devices.last_seen_at THEN excluded.last_seen_at ELSE devices.last_seen_at END"
)
_UPSERT_DEVICES_UNNEST = (
    "INSERT INTO devices (id, container_id, last_seen_at, silent_after_s) "
    "SELECT * FROM unnest(%s::varchar[], %s::int[], %s::timestamptz[], %s::int[]) "
    "ON CONFLICT (id) DO UPDATE SET container_id = excluded.container_id, last_seen_at = "
    "CASE WHEN excluded.last_seen_at > devices.last_seen_at THEN excluded.last_seen_at ELSE devices.last_seen_at END"
)


def _executemany(session: Session, table: Table, columns: Sequence[str], sql: str, rows: list[tuple[Any, ...]]) -> None:
    """`sql` (qmark placeholders) for every row through the driver's executemany, in the session's transaction."""
    connection = session.connection()
    dialect = connection.dialect
    convert = [table.c[name].type.bind_processor(dialect) for name in columns]
    if any(convert):
        rows = [tuple(v if f is None or v is None else f(v) for f, v in zip(convert, row, strict=True)) for row in rows]
    if dialect.paramstyle != "qmark":
        sql = sql.replace("?", "%s")
    connection.exec_driver_sql(sql, rows)


def _insert_readings(session: Session, rows: list[tuple[Any, ...]]) -> None:
    """One bulk write in the request's transaction: COPY on PostgreSQL, one executemany on SQLite."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        _executemany(session, READINGS, _READING_COLUMNS, _INSERT_READINGS, rows)
        return
    driver = connection.connection.driver_connection  # psycopg's connection, inside the same transaction
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(_COPY_READINGS) as copy:
        for row in rows:
            copy.write_row(row)


def _touch_devices(session: Session, stored: list[tuple[_Box, dict[str, Any]]], silent_after: timedelta) -> None:
    """Register unknown devices and move each one's `last_seen_at` forward, as one upsert in device order (so two
    batches naming the same devices lock them in the same order)."""
    latest: dict[str, tuple[int, datetime]] = {}
    for box, reading in stored:
        seen = latest.get(reading["device"])
        if seen is None or reading["time"] > seen[1]:
            latest[reading["device"]] = (box.id, reading["time"])
    silent_s = int(silent_after.total_seconds())
    rows = [(device, box_id, moment, silent_s) for device, (box_id, moment) in sorted(latest.items())]
    if session.get_bind().dialect.name == "postgresql":
        # One statement for the batch: the rows travel as four arrays.
        columns = [list(column) for column in zip(*rows, strict=True)] if rows else [[], [], [], []]
        session.connection().exec_driver_sql(_UPSERT_DEVICES_UNNEST, tuple(columns))
    else:
        _executemany(session, DEVICES, _DEVICE_COLUMNS, _UPSERT_DEVICES, rows)


def _locked(session: Session, ids: set[int]) -> dict[int, Container]:
    """The containers the batch acts on, row-locked in one statement, in id order, before its readings are written.

    Two batches naming the same boxes then queue on their first common box instead of each holding one the other
    waits for. The lock is FOR NO KEY UPDATE: it serialises with a transfer's or inspection's FOR UPDATE, but not with
    the FOR KEY SHARE that a reading's foreign key takes, so another batch writing readings of a box locked here
    never waits for it while holding a lock this batch needs next."""
    return {
        box.id: box
        for box in session.scalars(
            select(Container)
            .where(Container.id.in_(sorted(ids)))
            .order_by(Container.id)
            .with_for_update(of=Container, key_share=True)
            .execution_options(populate_existing=True)
        )
    }


def _cleared_at(session: Session, ids: Sequence[int]) -> dict[int, datetime]:
    """When each of the containers was last cleared by an inspection (those never cleared are left out)."""
    return {
        box_id: as_utc(moment)
        for box_id, moment in session.execute(
            select(Inspection.container_id, func.max(Inspection.created_at))
            .where(Inspection.container_id.in_(list(ids)), Inspection.result == str(InspectionResult.CLEARED))
            .group_by(Inspection.container_id)
        )
    }


def _tamper(
    session: Session, unsealed: list[tuple[_Box, dict[str, Any]]], acting: dict[int, Container], now: datetime
) -> list[Alert]:
    """`sealed=false` → the box held and `eseal_tamper` raised, once while an earlier one is unresolved. A reading
    from before the box's latest clearing inspection is stored but acts on nothing: the inspection came after it."""
    if not unsealed:
        return []
    # Read after the row locks: a concurrent batch's tamper of the same box is committed by now.
    opened = sorted({found.id for found, _ in unsealed})
    tampered = _unresolved(session, opened, AlertKind.ESEAL_TAMPER)
    cleared = _cleared_at(session, [i for i in opened if i not in tampered]) if len(tampered) < len(opened) else {}
    alerts: list[Alert] = []
    for found, reading in unsealed:
        if found.id in tampered:
            continue
        if found.id in cleared and reading["time"] < cleared[found.id]:
            continue
        box = acting[found.id]
        if not box.is_open:
            continue  # released or refused while this batch waited for the lock
        tampered.add(box.id)
        box.status = str(ContainerStatus.HELD)
        event = record_event(
            session,
            box,
            type=str(EventType.ESEAL_TAMPER),
            node=None,
            event_time=reading["time"],
            recorded_at=now,
            decision="hold",
            reasons=[],
            data={
                "device": reading["device"],
                "lat": reading["lat"],
                "lon": reading["lon"],
                "status": box.status,
            },
        )
        alert = raise_alert(
            session,
            box,
            AlertKind.ESEAL_TAMPER,
            node=box.here,
            now=now,
            detail={
                "device": reading["device"],
                "time": rfc3339(reading["time"]),
                "event_id": event.id,
                "position": [reading["lon"], reading["lat"]],
            },
            dedupe_key=f"tamper:{reading['device']}:{rfc3339(reading['time'])}",
        )
        if alert is not None:
            alerts.append(alert)
    return alerts


def _first_off(
    session: Session, stored: list[tuple[_Box, dict[str, Any]]], corridor_km: float
) -> dict[int, tuple[dict[str, Any], float]]:
    """Each box's earliest reading of the batch outside the corridor of its itinerary, with its distance in km:
    one vectorised distance per itinerary for all its boxes' readings."""
    by_itinerary: dict[tuple[str, ...], list[tuple[_Box, dict[str, Any]]]] = {}
    for found, reading in stored:
        by_itinerary.setdefault(found.itinerary, []).append((found, reading))
    version = network_version(session)
    first_off: dict[int, tuple[dict[str, Any], float]] = {}
    for itinerary, items in by_itinerary.items():
        items.sort(key=lambda item: (item[0].id, item[1]["time"]))
        path = paths.get(session, list(itinerary), version)
        distances = outside(path, [(r["lon"], r["lat"]) for _, r in items], corridor_km)
        for (found, reading), km in zip(items, distances, strict=True):
            if km is not None and found.id not in first_off:
                first_off[found.id] = (reading, km)
    return first_off


def _corridor(
    session: Session,
    first_off: dict[int, tuple[dict[str, Any], float]],
    acting: dict[int, Container],
    now: datetime,
    corridor_km: float,
) -> list[Alert]:
    """A position off the corridor → `corridor_deviation`, once while an earlier one is unresolved."""
    if not first_off:
        return []
    known = _unresolved(session, list(first_off), AlertKind.CORRIDOR_DEVIATION)
    alerts: list[Alert] = []
    for box_id, (reading, off_km) in sorted(first_off.items()):
        if box_id in known:
            continue
        box = acting[box_id]
        if not box.is_open:
            continue
        alert = raise_alert(
            session,
            box,
            AlertKind.CORRIDOR_DEVIATION,
            node=box.here,
            now=now,
            detail={
                "device": reading["device"],
                "time": rfc3339(reading["time"]),
                "position": [reading["lon"], reading["lat"]],
                "distance_km": round(off_km, 1),
                "corridor_km": corridor_km,
            },
            dedupe_key=f"corridor:{rfc3339(reading['time'])}",
        )
        if alert is not None:
            alerts.append(alert)
    return alerts
