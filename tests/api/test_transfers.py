"""Transfers: unchanged seals are released directly, any change holds the box, and bad requests change nothing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api.extensions import db
from routing.db import writer
from tests.api.helpers import (
    DESTINATION,
    ITINERARY,
    OFF_ITINERARY,
    Actors,
    actors,
    alerts,
    box,
    container_number,
    container_state,
    counts,
    declare,
    inspect,
    iso,
    now,
    ok,
    parse_time,
    readings,
    seals_for,
    timeline,
    transfer,
)
from tests.conftest import bearer, make_key
from tracking.access import ADMIN
from tracking.inspections import InspectionInput
from tracking.inspections import inspect as record_inspection

BOX = container_number(1)
CUSTOMS_SEAL, CARRIER_SEAL = seals_for(BOX)


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


@pytest.fixture
def declared(client: FlaskClient, people: Actors) -> dict:
    """BOX declared for import from Hong Kong to Changsha along the reference itinerary."""
    return ok(declare(client, people.forwarder, containers=[box(BOX)]))


def test_an_unchanged_box_is_released_at_every_transfer_and_inspected_once(
    client: FlaskClient, admin: dict, people: Actors, declared: dict
) -> None:
    for node in ITINERARY[:-1]:
        result = ok(transfer(client, people.operator, container=BOX, node=node, activity="transship"))
        assert {k: result[k] for k in ("container", "node", "decision", "reasons", "alert_id")} == {
            "container": BOX,
            "node": node,
            "decision": "release",
            "reasons": [],
            "alert_id": None,
        }
        state = container_state(client, people.forwarder, BOX)
        assert (state["status"], state["location"], state["held"]) == ("in_transit", node, False)

    arrival = ok(transfer(client, people.operator, container=BOX, node=DESTINATION))
    assert (arrival["decision"], arrival["reasons"], arrival["alert_id"]) == ("inspect", [], None)
    assert container_state(client, people.forwarder, BOX)["status"] == "awaiting_inspection"

    # Inspect once, by the office of the inspection node; Guangzhou customs has no say in Changsha.
    assert inspect(client, people.guangzhou, container=BOX, node=DESTINATION).status_code == 403
    cleared = ok(inspect(client, people.changsha, container=BOX, node=DESTINATION, agencies=["customs"]))
    assert (cleared["container"], cleared["node"], cleared["result"], cleared["status"]) == (
        BOX,
        DESTINATION,
        "cleared",
        "released",
    )

    state = container_state(client, people.forwarder, BOX)
    assert (state["status"], state["held"], state["open_alerts"], state["location"]) == (
        "released",
        False,
        0,
        DESTINATION,
    )
    assert ok(client.get(f"/api/v1/declarations/{declared['id']}", headers=people.forwarder), 200)["status"] == "closed"

    events = timeline(client, people.forwarder, BOX)
    assert [(e["type"], e["node"], e.get("decision")) for e in events] == [
        ("declared", ITINERARY[0], None),
        *[("transfer", node, "release") for node in ITINERARY[:-1]],
        ("transfer", DESTINATION, "inspect"),
        ("inspection", DESTINATION, "cleared"),
    ]
    times = [parse_time(e["event_time"]) for e in events]
    assert times == sorted(times)
    assert events[1]["seals"] == readings(CUSTOMS_SEAL.replace("-", ""), CARRIER_SEAL.replace(" ", ""))
    assert alerts(client, admin) == []

    # Released once: nothing more happens to this declaration's box.
    assert transfer(client, people.operator, container=BOX, node=DESTINATION).status_code == 409
    assert inspect(client, people.changsha, container=BOX, node=DESTINATION).status_code == 409


def test_seal_numbers_are_compared_in_their_normal_form(client: FlaskClient, people: Actors, declared: dict) -> None:
    typed = [CUSTOMS_SEAL.lower().replace("-", " "), CARRIER_SEAL.replace(" ", "-").lower()]
    result = ok(transfer(client, people.operator, container=BOX, node="CNNSA", seals=typed))
    assert (result["decision"], result["reasons"]) == ("release", [])


@pytest.mark.parametrize(
    ("node", "activity", "seals", "reasons"),
    [
        pytest.param(
            "CNNSA",
            "transship",
            [*readings(CUSTOMS_SEAL, condition="broken"), *readings(CARRIER_SEAL)],
            ["seal_broken"],
            id="broken",
        ),
        pytest.param("CNNSA", "transship", readings(CUSTOMS_SEAL), ["seal_missing"], id="not-read"),
        pytest.param(
            "CNNSA",
            "arrive",
            [*readings(CUSTOMS_SEAL), *readings(CARRIER_SEAL, condition="missing")],
            ["seal_missing"],
            id="read-missing",
        ),
        pytest.param(
            "CNNSA", "arrive", readings(CUSTOMS_SEAL, CARRIER_SEAL, "GZ-999999"), ["seal_mismatch"], id="extra-seal"
        ),
        pytest.param(
            "CNNSA", "arrive", readings(CUSTOMS_SEAL, "GZ-999999"), ["seal_missing", "seal_mismatch"], id="replaced"
        ),
        pytest.param(OFF_ITINERARY[0], "arrive", readings(CUSTOMS_SEAL, CARRIER_SEAL), ["route_deviation"], id="off"),
        pytest.param("CNNSA", "strip", readings(CUSTOMS_SEAL, CARRIER_SEAL), ["unsealed_activity"], id="strip"),
        pytest.param("CNNSA-RLS", "stuff", readings(CUSTOMS_SEAL, CARRIER_SEAL), ["unsealed_activity"], id="stuff"),
        pytest.param(
            OFF_ITINERARY[0],
            "strip",
            [*readings(CUSTOMS_SEAL, condition="broken"), *readings(CARRIER_SEAL)],
            ["seal_broken", "route_deviation", "unsealed_activity"],
            id="several",
        ),
        pytest.param(
            OFF_ITINERARY[1],
            "stuff",
            [*readings(CUSTOMS_SEAL, condition="broken"), *readings("GZ-999999")],
            ["seal_missing", "seal_broken", "seal_mismatch", "route_deviation", "unsealed_activity"],
            id="everything",
        ),
    ],
)
def test_any_change_holds_the_box_with_one_alert_of_the_most_severe_reason(
    client: FlaskClient,
    admin: dict,
    people: Actors,
    declared: dict,
    node: str,
    activity: str,
    seals: list[dict],
    reasons: list[str],
) -> None:
    ok(transfer(client, people.operator, container=BOX, node="HKHKG"))
    result = ok(transfer(client, people.operator, container=BOX, node=node, activity=activity, seals=seals))
    assert result["decision"] == "reinspect"
    assert result["reasons"] == reasons
    state = container_state(client, people.forwarder, BOX)
    assert (state["status"], state["held"], state["open_alerts"], state["location"]) == ("held", True, 1, node)

    [alert] = alerts(client, admin)
    assert alert["id"] == result["alert_id"]
    assert alert["kind"] == reasons[0], "the alert's kind is the most severe reason"
    assert alert["reasons"] == reasons
    assert (alert["container"], alert["node"], alert["status"]) == (BOX, node, "open")
    severe = {"seal_missing", "seal_broken"}
    assert alert["severity"] == ("critical" if reasons[0] in severe else "high")
    assert timeline(client, people.forwarder, BOX)[-1]["reasons"] == reasons


def test_port_quarantine_goods_are_inspected_at_the_first_seaport_of_entry(client: FlaskClient, people: Actors) -> None:
    fruit, phones = container_number(1), container_number(2)
    ok(declare(client, people.forwarder, containers=[box(fruit, port_quarantine=True), box(phones)]))
    for number in (fruit, phones):
        # Hong Kong is outside the destination's customs territory: not the port of entry.
        assert ok(transfer(client, people.operator, container=number, node="HKHKG"))["decision"] == "release"
    assert ok(transfer(client, people.operator, container=phones, node="CNNSA"))["decision"] == "release"
    entry = ok(transfer(client, people.operator, container=fruit, node="CNNSA"))
    assert (entry["decision"], entry["reasons"], entry["alert_id"]) == ("inspect", [], None)
    assert container_state(client, people.forwarder, fruit)["status"] == "awaiting_inspection"

    cleared = ok(inspect(client, people.guangzhou, container=fruit, node="CNNSA", agencies=["quarantine"]))
    assert cleared["status"] == "in_transit"
    # Recognised by every later node: departing the port, and the rail terminals after it, release directly.
    assert ok(transfer(client, people.operator, container=fruit, node="CNNSA", activity="depart"))["decision"] == (
        "release"
    )
    for node in ITINERARY[2:-1]:
        assert ok(transfer(client, people.operator, container=fruit, node=node))["decision"] == "release"
    assert ok(transfer(client, people.operator, container=fruit, node=DESTINATION))["decision"] == "inspect"


def test_a_late_event_takes_its_place_in_the_timeline_but_not_the_location(
    client: FlaskClient, people: Actors, declared: dict
) -> None:
    arrived = now()
    ok(transfer(client, people.operator, container=BOX, node="HKHKG", event_time=iso(arrived)))
    ok(transfer(client, people.operator, container=BOX, node="CNNSA", event_time=iso(arrived + timedelta(seconds=2))))
    late = transfer(
        client,
        people.operator,
        container=BOX,
        node="HKHKG",
        activity="depart",
        event_time=iso(arrived + timedelta(seconds=1)),
    )
    assert late.status_code == 201, late.get_json()
    assert late.get_json()["decision"] == "release"

    events = timeline(client, people.forwarder, BOX)
    assert [(e["node"], e.get("data", {}).get("activity")) for e in events[1:]] == [
        ("HKHKG", "arrive"),
        ("HKHKG", "depart"),
        ("CNNSA", "arrive"),
    ]
    assert events[2]["id"] == late.get_json()["id"]
    assert events[2]["id"] > events[3]["id"], "the late upload was recorded last yet sits in its place"
    times = [parse_time(e["event_time"]) for e in events]
    assert times == sorted(times)
    state = container_state(client, people.forwarder, BOX)
    assert (state["location"], state["status"]) == ("CNNSA", "in_transit")


def test_event_times_are_returned_in_utc(client: FlaskClient, people: Actors, declared: dict) -> None:
    local = now().replace(microsecond=0).astimezone(timezone(timedelta(hours=8)))
    ok(transfer(client, people.operator, container=BOX, node="HKHKG", event_time=local.isoformat()))
    [shown] = [e["event_time"] for e in timeline(client, people.forwarder, BOX) if e["type"] == "transfer"]
    assert shown.endswith("Z")
    assert parse_time(shown) == local


def test_a_container_number_is_recognised_as_painted_on_the_box(
    client: FlaskClient, people: Actors, declared: dict
) -> None:
    # Declarations accept "RSQU 000001 3" and lower case; a scanner or a clerk types the number the same way.
    painted = f"{BOX[:4]} {BOX[4:10]} {BOX[10]}"
    response = transfer(client, people.operator, container=painted, node="HKHKG")
    assert response.status_code == 201, (
        "BUG tracking/transfers.py register_transfer: the container number is only stripped and upper-cased, not "
        f"normalised like the declaration's (iso6346.normalise), so {painted!r} is 404: {response.get_json()}"
    )
    assert response.get_json()["container"] == BOX


# --- rejected transfers change nothing ----------------------------------------------------------------------------


def test_a_transfer_must_happen_at_a_known_node_of_a_declared_container(
    app: Flask, client: FlaskClient, people: Actors, declared: dict
) -> None:
    before = counts(app)
    unknown_box = transfer(client, people.operator, container=container_number(77), node="CNNSA")
    assert unknown_box.status_code == 404
    unknown_node = transfer(client, people.operator, container=BOX, node="CNZZZ")
    assert unknown_node.status_code == 404
    assert unknown_box.content_type == unknown_node.content_type == "application/problem+json"
    assert counts(app) == before


def test_an_operator_registers_only_at_its_own_nodes(
    app: Flask, client: FlaskClient, people: Actors, declared: dict
) -> None:
    changsha_gate = bearer(make_key(client, name="Changsha gate", role="operator", nodes=["CNCSH"]))
    before = counts(app)
    response = transfer(client, changsha_gate, container=BOX, node="CNNSA")
    assert response.status_code == 403
    assert response.content_type == "application/problem+json"
    assert counts(app) == before
    assert ok(transfer(client, changsha_gate, container=BOX, node="CNCSH"))["node"] == "CNCSH"


@pytest.mark.parametrize("result", ["cleared", "refused"])
def test_a_released_or_refused_container_takes_no_more_transfers(
    app: Flask, client: FlaskClient, people: Actors, declared: dict, result: str
) -> None:
    ok(transfer(client, people.operator, container=BOX, node=DESTINATION))
    final = ok(inspect(client, people.changsha, container=BOX, node=DESTINATION, result=result))
    assert final["status"] == {"cleared": "released", "refused": "refused"}[result]
    before = counts(app)
    for node in (DESTINATION, "CNNSA", OFF_ITINERARY[0]):
        response = transfer(client, people.operator, container=BOX, node=node)
        assert response.status_code == 409, response.get_json()
        assert response.content_type == "application/problem+json"
    assert counts(app) == before
    assert container_state(client, people.forwarder, BOX)["status"] == final["status"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"event_time": iso(now() + timedelta(days=1))}, "event_time", id="too-far-ahead"),
        pytest.param({"event_time": "2026-11-23T10:00:00"}, "event_time", id="no-offset"),
        pytest.param({"event_time": "yesterday"}, "event_time", id="not-a-time"),
        pytest.param({"activity": "fly"}, "activity", id="bad-activity"),
        pytest.param({"seals": [{"number": CUSTOMS_SEAL, "condition": "smashed"}]}, "seals.0.condition", id="cond"),
        pytest.param({"node": "cnnsa"}, "node", id="node-not-a-code"),
        pytest.param({"from_mode": "air"}, "from_mode", id="bad-mode"),
    ],
)
def test_invalid_transfer_values_are_422(
    app: Flask, client: FlaskClient, people: Actors, declared: dict, changes: dict, field: str
) -> None:
    before = counts(app)
    response = transfer(client, people.operator, container=BOX, **{"node": "CNNSA", **changes})
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert any(key.startswith(field) for key in response.get_json()["errors"]), response.get_json()
    assert counts(app) == before


@pytest.mark.parametrize(
    "blank",
    [
        pytest.param("-", id="hyphen"),
        pytest.param("\u2013", id="en-dash"),
    ],
)
def test_a_seal_number_that_is_blank_once_normalised_is_422(
    app: Flask, client: FlaskClient, people: Actors, declared: dict, blank: str
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False  # see the status a scanner would get
    before = counts(app)
    response = transfer(client, people.operator, container=BOX, node="CNNSA", seals=[*seals_for(BOX), blank])
    assert response.status_code == 422, (
        "BUG tracking/transfers.py register_transfer: it guards normalise_seal with `except ValueError`, but "
        "normalise_seal never raises; the blank number reaches rules._seal_key inside decide_transfer and its "
        f"ValueError escapes as a {response.status_code}"
    )
    assert "seals" in response.get_json()["errors"]
    assert counts(app) == before


def test_an_event_a_few_minutes_ahead_is_tolerated(client: FlaskClient, people: Actors, declared: dict) -> None:
    # Handheld clocks drift: up to ten minutes ahead is accepted.
    ahead = transfer(client, people.operator, container=BOX, node="HKHKG", event_time=iso(now() + timedelta(minutes=9)))
    assert ahead.status_code == 201, ahead.get_json()


def test_transfer_requests_that_are_not_json_or_not_allowed(
    app: Flask, client: FlaskClient, people: Actors, declared: dict
) -> None:
    before = counts(app)
    json_header = {**people.operator, "Content-Type": "application/json"}
    assert client.post("/api/v1/transfers", data='{"container": ', headers=json_header).status_code == 400
    text_header = {**people.operator, "Content-Type": "text/plain"}
    assert client.post("/api/v1/transfers", data=f"container={BOX}", headers=text_header).status_code == 415
    assert transfer(client, {}, container=BOX, node="CNNSA").status_code == 401
    assert transfer(client, bearer("rs_forged"), container=BOX, node="CNNSA").status_code == 401
    for role in (people.forwarder, people.supervisor):
        response = transfer(client, role, container=BOX, node="CNNSA")
        assert response.status_code == 403, response.get_json()
        assert response.content_type == "application/problem+json"
    assert counts(app) == before


@pytest.mark.parametrize("path", ["/api/v1/transfers", "/api/v1/inspections", "/api/v1/alerts/1/resolve"])
def test_without_a_token_it_is_401_whatever_the_body(client: FlaskClient, path: str) -> None:
    response = client.post(path, json={"container": "?"})
    assert response.status_code == 401, (
        f"BUG api/operations.py, api/alerts.py: @roles sits inside @blp.arguments, so the body is validated before "
        f"the caller is authenticated and an anonymous caller gets {response.status_code} with the schema's errors"
    )
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="railsea"'


def test_a_transfer_waiting_for_an_inspection_of_its_box_is_decided_on_the_seals_it_applied(
    app: Flask, people: Actors, declared: dict
) -> None:
    """The inspection re-seals the box while a transfer of it waits for the box (its row lock on PostGIS, the
    writer gate on SpatiaLite): the transfer must see the new seals, not those read before it waited."""
    with app.app_context():
        engine = db.engine
    inspection = Session(bind=writer(engine))
    record_inspection(
        inspection,
        ADMIN,
        InspectionInput(container=BOX, node=ITINERARY[0], result="cleared", seals_applied=[("CN-NEW-7", "bolt")]),
        now(),
    )  # not committed yet: the box stays with this transaction
    outcome: dict[str, Any] = {}

    def arrive() -> None:
        response = transfer(app.test_client(), people.operator, container=BOX, node=ITINERARY[2], seals=["CN-NEW-7"])
        outcome["status"], outcome["body"] = response.status_code, response.get_json()

    waiting = threading.Thread(target=arrive)
    waiting.start()
    try:
        time.sleep(0.5)
        assert waiting.is_alive()  # it waits for the box
        inspection.commit()
    finally:
        inspection.close()
        waiting.join(timeout=30)
    assert outcome["status"] == 201, outcome
    assert outcome["body"]["decision"] == "release", outcome
    assert outcome["body"]["reasons"] == []
