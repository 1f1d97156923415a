"""Small actions of the tracking API for tests: declare, transfer, inspect; valid ISO 6346 numbers; row counts.

The reference itinerary is a real import route of the fixtures: Hong Kong by barge to Nansha, rail from Nansha's
rail terminal through Guangzhou Dalang to the Changsha dry port (the planner offers it as an alternative).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from tests.conftest import bearer, make_key
from tracking.iso6346 import check_digit
from tracking.models import Alert, Container, Declaration, Event, IdempotencyRecord, Inspection, Seal

ORIGIN, DESTINATION = "HKHKG", "CNCSH"
ITINERARY = ["HKHKG", "CNNSA", "CNNSA-RLS", "CNGGZ-DLG", "CNCSH"]
OFF_ITINERARY = ["CNYTN", "CNSHK", "CNHUA"]
# Customs offices of the nodes above, as fixtures/nodes.csv gives them.
OFFICE = {
    "HKHKG": "HK-CED",
    "CNNSA": "CN-GUANGZHOU",
    "CNNSA-RLS": "CN-GUANGZHOU",
    "CNGGZ-DLG": "CN-GUANGZHOU",
    "CNCSH": "CN-CHANGSHA",
    "CNYTN": "CN-SHENZHEN",
    "CNSHK": "CN-SHENZHEN",
    "CNHUA": "CN-HUANGPU",
}
STATUSES = {"declared", "in_transit", "held", "awaiting_inspection", "released", "refused"}


# --- container numbers --------------------------------------------------------------------------------------------


def container_number(serial: int, owner: str = "RSQ", category: str = "U") -> str:
    """A valid ISO 6346 number: owner code, category, six-digit serial and its check digit."""
    body = f"{owner}{category}{serial:06d}"
    return f"{body}{check_digit(body)}"


def container_numbers(start: int = 1, owner: str = "RSQ") -> Iterator[str]:
    serial = start
    while True:
        yield container_number(serial, owner)
        serial += 1


def seals_for(number: str) -> list[str]:
    """The seals put on a container at origin in these tests: one by customs, one by the carrier."""
    return [f"CN-{number[4:10]}", f"HK {number[4:10]}"]


def invalid_check_digit(number: str) -> str:
    """The same number with a wrong check digit."""
    return f"{number[:10]}{(int(number[10]) + 1) % 10}"


# --- time ---------------------------------------------------------------------------------------------------------


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- actors -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actors:
    """Bearer headers of the people in a scenario."""

    forwarder: dict[str, str]
    other_forwarder: dict[str, str]
    operator: dict[str, str]
    supervisor: dict[str, str]
    """Customs supervisor of every office on the itinerary and off it (all nodes above)."""
    guangzhou: dict[str, str]
    shenzhen: dict[str, str]
    changsha: dict[str, str]


def actors(client: FlaskClient) -> Actors:
    def key(**body: Any) -> dict[str, str]:
        return bearer(make_key(client, **body))

    return Actors(
        forwarder=key(name="Pearl Forwarding", role="forwarder", party="PEARLFWD"),
        other_forwarder=key(name="Delta Logistics", role="forwarder", party="DELTALOG"),
        operator=key(name="Terminals", role="operator", nodes=[*ITINERARY, *OFF_ITINERARY]),
        supervisor=key(name="All offices", role="supervisor", offices=sorted(set(OFFICE.values()))),
        guangzhou=key(name="Guangzhou customs", role="supervisor", offices=["CN-GUANGZHOU"]),
        shenzhen=key(name="Shenzhen customs", role="supervisor", offices=["CN-SHENZHEN"]),
        changsha=key(name="Changsha customs", role="supervisor", offices=["CN-CHANGSHA"]),
    )


# --- actions ------------------------------------------------------------------------------------------------------


def box(number: str, seals: Sequence[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A declared container with seals put on at origin (by default `seals_for(number)`)."""
    return {
        "number": number,
        "seals": [
            {"number": s, "type": "bolt", "source": "customs"} for s in (seals_for(number) if seals is None else seals)
        ],
        **extra,
    }


def declaration_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reference": "PRD-2026-0001",
        "direction": "import",
        "origin": ORIGIN,
        "destination": DESTINATION,
        "itinerary": list(ITINERARY),
        "deadline": iso(now() + timedelta(days=7)),
        "containers": [box(container_number(1))],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def declare(
    client: FlaskClient, token: dict[str, str], *, headers: dict[str, str] | None = None, **overrides: Any
) -> TestResponse:
    """POST /declarations with a valid body changed by `overrides` (a None value drops the field)."""
    return client.post("/api/v1/declarations", json=declaration_body(**overrides), headers={**token, **(headers or {})})


def readings(*numbers: str, condition: str = "intact") -> list[dict[str, str]]:
    return [{"number": n, "condition": condition} for n in numbers]


def transfer(
    client: FlaskClient,
    token: dict[str, str],
    *,
    container: str,
    node: str,
    seals: Iterable[str | dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **overrides: Any,
) -> TestResponse:
    """POST /transfers: an arrival now with `seals` read (plain numbers are read intact; by default the seals
    the container was declared with)."""
    if seals is None:
        seals = seals_for(container)
    body: dict[str, Any] = {
        "container": container,
        "node": node,
        "event_time": iso(now()),
        "activity": "arrive",
        "seals": [s if isinstance(s, dict) else {"number": s, "condition": "intact"} for s in seals],
    }
    body.update(overrides)
    return client.post("/api/v1/transfers", json=body, headers={**token, **(headers or {})})


def inspect(
    client: FlaskClient,
    token: dict[str, str],
    *,
    container: str,
    node: str,
    result: str = "cleared",
    seals_applied: Sequence[str] = (),
    headers: dict[str, str] | None = None,
    **overrides: Any,
) -> TestResponse:
    """POST /inspections: `result` at `node`, optionally applying new seals."""
    body: dict[str, Any] = {
        "container": container,
        "node": node,
        "result": result,
        "seals_applied": [{"number": s, "type": "bolt"} for s in seals_applied],
        **overrides,
    }
    return client.post("/api/v1/inspections", json=body, headers={**token, **(headers or {})})


def ok(response: TestResponse, status: int = 201) -> Any:
    """The JSON body of a response that must have `status`."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    return response.get_json()


def container_state(client: FlaskClient, token: dict[str, str], number: str) -> dict[str, Any]:
    return ok(client.get(f"/api/v1/containers/{number}", headers=token), 200)


def timeline(client: FlaskClient, token: dict[str, str], number: str) -> list[dict[str, Any]]:
    return ok(client.get(f"/api/v1/containers/{number}/events", headers=token), 200)["items"]


def alerts(client: FlaskClient, token: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    """Every alert the caller sees, following `next_cursor` over all pages."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = [p for p in (query, f"cursor={cursor}" if cursor else "") if p]
        page = ok(client.get("/api/v1/alerts" + ("?" + "&".join(params) if params else ""), headers=token), 200)
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items


# --- the database, seen from outside ------------------------------------------------------------------------------

COUNTED = {
    "declarations": Declaration,
    "containers": Container,
    "seals": Seal,
    "events": Event,
    "inspections": Inspection,
    "alerts": Alert,
    "idempotency_records": IdempotencyRecord,
}


def counts(app: Flask) -> dict[str, int]:
    """How many rows each tracking table holds."""
    with Session(app.extensions["railsea_db"].engine) as session:
        return {name: session.scalar(select(func.count()).select_from(model)) or 0 for name, model in COUNTED.items()}
