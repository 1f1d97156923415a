"""E-seal telemetry: batches validated reading by reading, stored in bulk; tamper holds the box, a position off
the corridor of the declared itinerary alerts."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from routing.cache import paths
from routing.service import network_version
from tracking import iso6346
from tracking.access import Principal
from tracking.alerts import raise_alert
from tracking.chain import record_event
from tracking.clock import as_utc, rfc3339
from tracking.corridor import outside
from tracking.models import Alert, Container, Device, Reading
from tracking.scope import containers_visible
from tracking.vocab import UNRESOLVED_ALERT_STATUSES, AlertKind, ContainerStatus, EventType

MAX_READINGS = 1000
# Core insert of the table: one executemany, without the ORM's per-row bookkeeping.
READINGS = cast(Table, Reading.__table__)
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
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
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


def _validate(raw: Any, now: datetime) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    if not isinstance(raw, Mapping):
        return None, {"_reading": ["must be an object"]}
    unknown = set(raw) - {"device", "container", "time", "lat", "lon", "sealed", "battery_pct"}
    for name in sorted(unknown):
        errors[name] = ["unknown field"]
    device = raw.get("device")
    if not isinstance(device, str) or not _DEVICE.match(device):
        errors["device"] = ["must be 1 to 64 visible characters"]
    number = raw.get("container")
    problem = iso6346.validation_error(number) if isinstance(number, str) else "must be a container number"
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
    for name in ("device", "container", "time", "lat", "lon", "sealed"):
        if name not in raw:
            errors[name] = ["required"]
    if errors:
        return None, errors
    assert isinstance(number, str)
    return {
        "device": device,
        "number": iso6346.normalise(number),
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
    for index, raw in enumerate(readings):
        reading, errors = _validate(raw, now)
        if reading is None:
            rejected.append({"index": index, "errors": errors})
        else:
            valid.append((index, reading))

    numbers = sorted({r["number"] for _, r in valid})
    containers: dict[str, Container] = {}
    if numbers:
        for box in session.scalars(
            select(Container)
            .where(Container.number.in_(numbers), Container.is_open, containers_visible(principal))
            .with_for_update(of=Container)
        ):
            containers[box.number] = box
    rows: list[dict[str, Any]] = []
    stored: list[tuple[Container, dict[str, Any]]] = []
    for index, reading in valid:
        found = containers.get(reading["number"])
        if found is None:
            rejected.append({"index": index, "errors": {"container": ["no open declaration in your scope"]}})
            continue
        box = found
        rows.append(
            {
                "container_id": box.id,
                "device": reading["device"],
                "time": reading["time"],
                "lat": reading["lat"],
                "lon": reading["lon"],
                "sealed": reading["sealed"],
                "battery_pct": reading["battery_pct"],
                "received_at": now,
            }
        )
        stored.append((box, reading))
    if rows:
        # One executemany for the batch, not an ORM object per reading.
        session.execute(insert(READINGS), rows)
        _touch_devices(session, stored, silent_after)
    rejected.sort(key=lambda r: r["index"])
    return IngestResult(len(rows), rejected, _apply_rules(session, stored, now, corridor_km))


def _touch_devices(session: Session, stored: list[tuple[Container, dict[str, Any]]], silent_after: timedelta) -> None:
    latest: dict[str, tuple[Container, datetime]] = {}
    for box, reading in stored:
        seen = latest.get(reading["device"])
        if seen is None or reading["time"] > seen[1]:
            latest[reading["device"]] = (box, reading["time"])
    devices = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(list(latest))))}
    for device_id, (box, moment) in latest.items():
        device = devices.get(device_id)
        if device is None:
            session.add(
                Device(
                    id=device_id,
                    container_id=box.id,
                    last_seen_at=moment,
                    silent_after_s=int(silent_after.total_seconds()),
                )
            )
        else:
            device.container_id = box.id
            if moment > as_utc(device.last_seen_at):
                device.last_seen_at = moment
    session.flush()


def _apply_rules(
    session: Session, stored: list[tuple[Container, dict[str, Any]]], now: datetime, corridor_km: float
) -> list[Alert]:
    alerts: list[Alert] = []
    opened = [box.id for box, reading in stored if not reading["sealed"]]
    tampered = _unresolved(session, opened, AlertKind.ESEAL_TAMPER) if opened else set()
    for box, reading in sorted(stored, key=lambda item: item[1]["time"]):
        if not reading["sealed"] and box.id not in tampered:
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
                node=box.location,
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
    by_box: dict[int, list[tuple[Container, dict[str, Any]]]] = {}
    for box, reading in stored:
        by_box.setdefault(box.id, []).append((box, reading))
    version = network_version(session)
    deviating: list[tuple[Container, dict[str, Any], float]] = []
    for items in by_box.values():
        box = items[0][0]
        items.sort(key=lambda item: item[1]["time"])
        path = paths.get(session, box.declaration.itinerary, version)
        distances = outside(path, [(r["lon"], r["lat"]) for _, r in items], corridor_km)
        first = next(((r, km) for (_, r), km in zip(items, distances, strict=True) if km is not None), None)
        if first is not None:
            deviating.append((box, *first))
    known = _unresolved(session, [box.id for box, _, _ in deviating], AlertKind.CORRIDOR_DEVIATION)
    for box, reading, off_km in deviating:
        if box.id in known:
            continue
        alert = raise_alert(
            session,
            box,
            AlertKind.CORRIDOR_DEVIATION,
            node=box.location,
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
