"""Holds, alerts and inspections: the right supervisor sees the alert, inspects, re-seals and lets the box go."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.helpers import (
    DESTINATION,
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
    ok,
    readings,
    seals_for,
    timeline,
    transfer,
)
from tests.conftest import bearer, make_key

BOX = container_number(1)
CUSTOMS_SEAL, CARRIER_SEAL = seals_for(BOX)
NEW_SEAL = "GZ-5001"


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


@pytest.fixture
def held(client: FlaskClient, people: Actors) -> dict:
    """BOX released in Hong Kong, then found at Nansha with its carrier seal replaced: held, one alert."""
    ok(declare(client, people.forwarder, containers=[box(BOX)]))
    ok(transfer(client, people.operator, container=BOX, node="HKHKG"))
    result = ok(transfer(client, people.operator, container=BOX, node="CNNSA", seals=[CUSTOMS_SEAL, "GZ-0666"]))
    assert (result["decision"], result["reasons"]) == ("reinspect", ["seal_missing", "seal_mismatch"])
    return result


@pytest.mark.parametrize(
    ("next_seals", "decision", "reasons"),
    [
        pytest.param([NEW_SEAL], "release", [], id="new-seals-release"),
        pytest.param(None, "reinspect", ["seal_missing", "seal_mismatch"], id="old-seals-now-mismatch"),
    ],
)
def test_a_changed_seal_holds_the_box_until_a_supervisor_reseals_it(
    client: FlaskClient,
    people: Actors,
    held: dict,
    next_seals: list[str] | None,
    decision: str,
    reasons: list[str],
) -> None:
    state = container_state(client, people.forwarder, BOX)
    assert (state["status"], state["held"], state["open_alerts"], state["location"]) == ("held", True, 1, "CNNSA")

    # One alert, for Guangzhou customs (Nansha's office) and the owner, nobody else.
    [alert] = alerts(client, people.guangzhou)
    assert (alert["id"], alert["kind"], alert["severity"]) == (held["alert_id"], "seal_missing", "critical")
    assert (alert["container"], alert["node"], alert["status"]) == (BOX, "CNNSA", "open")
    assert alert["reasons"] == ["seal_missing", "seal_mismatch"]
    assert alert["detail"]["unexpected"] == ["GZ0666"]
    assert [a["id"] for a in alerts(client, people.forwarder)] == [alert["id"]]
    assert [a["id"] for a in alerts(client, people.supervisor)] == [alert["id"]]
    for outsider in (people.shenzhen, people.changsha, people.other_forwarder):
        assert alerts(client, outsider) == []

    # Moving a held box is itself an alert, whatever its seals.
    moved = ok(transfer(client, people.operator, container=BOX, node="CNNSA-RLS", activity="depart"))
    assert moved["decision"] == "hold"
    assert moved["alert_id"] is not None
    state = container_state(client, people.forwarder, BOX)
    assert (state["status"], state["held"], state["open_alerts"], state["location"]) == ("held", True, 2, "CNNSA-RLS")
    kinds = {a["id"]: a["kind"] for a in alerts(client, people.guangzhou)}
    assert kinds == {alert["id"]: "seal_missing", moved["alert_id"]: "moved_while_held"}
    assert {a["severity"] for a in alerts(client, people.guangzhou, "kind=moved_while_held")} == {"critical"}

    # Shenzhen customs cannot lift a hold in Guangzhou's jurisdiction; Guangzhou re-seals and releases the box.
    assert (
        inspect(client, people.shenzhen, container=BOX, node="CNNSA-RLS", seals_applied=[NEW_SEAL]).status_code == 403
    )
    cleared = ok(inspect(client, people.guangzhou, container=BOX, node="CNNSA-RLS", seals_applied=[NEW_SEAL]))
    assert (cleared["result"], cleared["status"]) == ("cleared", "in_transit")
    state = container_state(client, people.forwarder, BOX)
    assert (state["status"], state["held"], state["open_alerts"]) == ("in_transit", False, 0)
    assert state["expected_seals"] == [NEW_SEAL]
    settled = alerts(client, people.guangzhou)
    assert {a["status"] for a in settled} == {"resolved"}, "the inspection settles the box's alerts"
    assert all(a["resolution_note"] for a in settled)

    after = ok(
        transfer(
            client,
            people.operator,
            container=BOX,
            node="CNGGZ-DLG",
            seals=seals_for(BOX) if next_seals is None else next_seals,
        )
    )
    assert (after["decision"], after["reasons"]) == (decision, reasons)
    assert container_state(client, people.forwarder, BOX)["status"] == ("in_transit" if not reasons else "held")
    assert [e["type"] for e in timeline(client, people.forwarder, BOX)] == [
        "declared",
        "transfer",
        "transfer",
        "transfer",
        "inspection",
        "transfer",
    ]


def test_a_box_inspected_elsewhere_is_still_inspected_once_at_its_inspection_node(
    client: FlaskClient, people: Actors, held: dict
) -> None:
    ok(inspect(client, people.guangzhou, container=BOX, node="CNNSA", seals_applied=[NEW_SEAL]))
    for node in ("CNNSA-RLS", "CNGGZ-DLG"):
        assert (
            ok(transfer(client, people.operator, container=BOX, node=node, seals=[NEW_SEAL]))["decision"] == "release"
        )
    assert ok(transfer(client, people.operator, container=BOX, node=DESTINATION, seals=[NEW_SEAL]))["decision"] == (
        "inspect"
    )
    assert ok(inspect(client, people.changsha, container=BOX, node=DESTINATION))["status"] == "released"


def test_a_refused_box_stays_refused(client: FlaskClient, people: Actors, held: dict) -> None:
    refused = ok(inspect(client, people.guangzhou, container=BOX, node="CNNSA", result="refused", remarks="undeclared"))
    assert (refused["result"], refused["status"], refused["remarks"]) == ("refused", "refused", "undeclared")
    state = container_state(client, people.forwarder, BOX)
    assert (state["status"], state["held"], state["open_alerts"]) == ("refused", False, 0)
    assert transfer(client, people.operator, container=BOX, node="CNNSA").status_code == 409
    assert inspect(client, people.guangzhou, container=BOX, node="CNNSA").status_code == 409


# --- inspections refused ------------------------------------------------------------------------------------------


def test_who_may_inspect(app: Flask, client: FlaskClient, people: Actors, held: dict) -> None:
    before = counts(app)
    for token in (people.shenzhen, people.changsha, people.operator, people.forwarder):
        response = inspect(client, token, container=BOX, node="CNNSA")
        assert response.status_code == 403, response.get_json()
        assert response.content_type == "application/problem+json"
    assert inspect(client, {}, container=BOX, node="CNNSA").status_code == 401
    assert counts(app) == before
    assert container_state(client, people.forwarder, BOX)["status"] == "held"


@pytest.mark.parametrize(
    ("who", "node"),
    [
        pytest.param("changsha", DESTINATION, id="its-inspection-node-far-away"),
        pytest.param("shenzhen", "CNYTN", id="a-node-off-its-itinerary"),
        pytest.param("supervisor", "CNNSA-RLS", id="the-next-node-same-office"),
    ],
)
def test_a_box_is_inspected_only_where_it_is(
    app: Flask, client: FlaskClient, people: Actors, held: dict, who: str, node: str
) -> None:
    """A box held at Nansha cannot be cleared, let alone released, by naming a node where it is not — not even by
    a supervisor whose offices include that node. Its hold and Guangzhou's alert stay."""
    before = counts(app)
    response = inspect(client, getattr(people, who), container=BOX, node=node, seals_applied=[NEW_SEAL])
    assert response.status_code == 409, response.get_json()
    assert response.content_type == "application/problem+json"
    assert "CNNSA" in response.get_json()["detail"]
    assert counts(app) == before
    state = container_state(client, people.forwarder, BOX)
    assert (state["status"], state["location"], state["open_alerts"]) == ("held", "CNNSA", 1)
    assert [a["status"] for a in alerts(client, people.guangzhou)] == ["open"]


def test_a_box_not_yet_moved_is_inspected_at_its_origin(client: FlaskClient, people: Actors) -> None:
    ok(declare(client, people.forwarder, containers=[box(BOX)]))
    assert inspect(client, people.supervisor, container=BOX, node="CNNSA").status_code == 409
    cleared = ok(inspect(client, people.supervisor, container=BOX, node="HKHKG", seals_applied=[NEW_SEAL]))
    assert (cleared["node"], cleared["status"]) == ("HKHKG", "in_transit")


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        pytest.param({"container": container_number(42)}, 404, id="unknown-container"),
        pytest.param({"node": "CNZZZ"}, 404, id="unknown-node"),
        pytest.param({"result": "maybe"}, 422, id="bad-result"),
        pytest.param({"seals_applied": [{"number": "AB-1"}, {"number": "ab 1"}]}, 422, id="seal-applied-twice"),
        pytest.param({"seals_applied": [{"number": "№" * 64}]}, 422, id="seal-longer-once-normalised"),
    ],
)
def test_invalid_inspections_change_nothing(
    app: Flask, client: FlaskClient, people: Actors, held: dict, changes: dict, status: int
) -> None:
    before = counts(app)
    response = inspect(client, people.supervisor, **{"container": BOX, "node": "CNNSA", **changes})
    assert response.status_code == status, response.get_json()
    assert response.content_type == "application/problem+json"
    assert counts(app) == before


def test_a_blank_seal_cannot_be_applied(app: Flask, client: FlaskClient, people: Actors, held: dict) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    before = counts(app)
    response = inspect(client, people.guangzhou, container=BOX, node="CNNSA", seals_applied=[NEW_SEAL, " - "])
    assert response.status_code == 422, (
        "BUG tracking/inspections.py inspect: a seal number blank once normalised is applied (normalise_seal never "
        f"raises, the `except ValueError` guard is dead), got {response.status_code}; the box then expects a seal "
        "'' and every later transfer of it fails with a 500"
    )
    assert counts(app) == before
    assert ok(transfer(client, people.operator, container=BOX, node="CNNSA-RLS"))["decision"] == "hold"


# --- alerts: lists, filters, pages, acknowledge, resolve ----------------------------------------------------------


@pytest.fixture
def several(client: FlaskClient, people: Actors) -> dict[str, int]:
    """Three boxes and four alerts: a broken seal, a route deviation, a move while held, an unsealed activity."""
    a, b, c = (container_number(n) for n in (1, 2, 3))
    ok(declare(client, people.forwarder, containers=[box(a), box(b), box(c)]))
    seal_a = seals_for(a)
    ids = {
        "broken": ok(
            transfer(
                client,
                people.operator,
                container=a,
                node="CNNSA",
                seals=[*readings(seal_a[0], condition="broken"), *readings(seal_a[1])],
            )
        )["alert_id"],
        "deviation": ok(transfer(client, people.operator, container=b, node=OFF_ITINERARY[0]))["alert_id"],
        "moved": ok(transfer(client, people.operator, container=a, node="CNNSA-RLS"))["alert_id"],
        "stripped": ok(transfer(client, people.operator, container=c, node="CNNSA", activity="strip"))["alert_id"],
    }
    assert all(ids.values())
    return ids


def test_alerts_filter_by_status_kind_and_container(
    client: FlaskClient, admin: dict, people: Actors, several: dict[str, int]
) -> None:
    everything = alerts(client, admin)
    assert [a["id"] for a in everything] == sorted(several.values(), reverse=True), "newest first"
    assert {a["kind"] for a in everything} == {
        "seal_broken",
        "route_deviation",
        "moved_while_held",
        "unsealed_activity",
    }
    a, b = container_number(1), container_number(2)
    assert {x["id"] for x in alerts(client, admin, f"container={a}")} == {several["broken"], several["moved"]}
    assert [x["id"] for x in alerts(client, admin, f"container={b}")] == [several["deviation"]]
    assert [x["id"] for x in alerts(client, admin, "kind=seal_broken")] == [several["broken"]]
    assert [x["id"] for x in alerts(client, admin, f"kind=moved_while_held&container={a}")] == [several["moved"]]
    assert alerts(client, admin, f"kind=seal_broken&container={b}") == []
    ok(client.post(f"/api/v1/alerts/{several['stripped']}/acknowledge", headers=people.guangzhou), 200)
    assert [x["id"] for x in alerts(client, admin, "status=acknowledged")] == [several["stripped"]]
    assert len(alerts(client, admin, "status=open")) == 3
    assert alerts(client, admin, "status=resolved") == []
    # Shenzhen customs sees only the deviation at Yantian; Guangzhou the three at its nodes.
    assert [x["id"] for x in alerts(client, people.shenzhen)] == [several["deviation"]]
    assert len(alerts(client, people.guangzhou)) == 3
    for query in ("status=closed", "kind=volcano", "limit=0", "cursor=garbage"):
        assert client.get(f"/api/v1/alerts?{query}", headers=admin).status_code == 422, query


def test_the_container_filter_takes_the_number_as_written(
    client: FlaskClient, admin: dict, several: dict[str, int]
) -> None:
    """As painted on the box, in lower case or with spaces: the same alerts as for the number's canonical form."""
    a = container_number(1)
    expected = {several["broken"], several["moved"]}
    for written in (a, a.lower(), f"{a[:4]} {a[4:10]} {a[10]}"):
        assert {x["id"] for x in alerts(client, admin, f"container={quote(written)}")} == expected, written


@pytest.mark.parametrize("value", ["99999999999999999999", "-5", " 7", "1_000", "0", "2147483648", "٣"])
@pytest.mark.parametrize("path", ["/api/v1/alerts", "/api/v1/declarations", "/api/v1/containers"])
def test_a_forged_cursor_is_refused(client: FlaskClient, admin: dict, path: str, value: str) -> None:
    """Only cursors this API gave out are taken: anything else is 422 on the cursor, never a server error."""
    cursor = base64.urlsafe_b64encode(f"id:{value}".encode()).decode().rstrip("=")
    response = client.get(f"{path}?cursor={cursor}", headers=admin)
    assert response.status_code == 422, response.get_json()
    assert "cursor" in response.get_json()["errors"]


def test_alerts_page_with_a_cursor(client: FlaskClient, admin: dict, several: dict[str, int]) -> None:
    seen: list[int] = []
    cursor = None
    for _ in range(len(several) + 1):
        query = f"?limit=1&cursor={cursor}" if cursor else "?limit=1"
        response = client.get(f"/api/v1/alerts{query}", headers=admin)
        assert response.status_code == 200, (
            "BUG api/schemas.py Paging.limit (inherited by AlertQuery): `limit` from a query string is a string, "
            f"which strict=True refuses: {response.get_json()}"
        )
        page = response.get_json()
        assert len(page["items"]) == 1
        seen.append(page["items"][0]["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(several.values(), reverse=True)


def test_acknowledge_then_resolve_with_a_note(
    app: Flask, client: FlaskClient, people: Actors, several: dict[str, int]
) -> None:
    alert_id = several["broken"]
    acknowledged = ok(client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=people.guangzhou), 200)
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["acknowledged_at"] is not None
    assert acknowledged["resolved_at"] is None
    again = ok(client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=people.guangzhou), 200)
    assert again["acknowledged_at"] == acknowledged["acknowledged_at"], "acknowledging twice changes nothing"
    # An acknowledged alert is still being worked on: it counts as open for the box.
    assert container_state(client, people.forwarder, container_number(1))["open_alerts"] == 2

    before = counts(app)
    for body in ({}, {"note": ""}, {"note": "   "}):
        response = client.post(f"/api/v1/alerts/{alert_id}/resolve", json=body, headers=people.guangzhou)
        assert response.status_code == 422, (body, response.get_json())
        assert "note" in response.get_json()["errors"]
    assert counts(app) == before

    resolved = ok(
        client.post(
            f"/api/v1/alerts/{alert_id}/resolve", json={"note": "seal re-read: intact"}, headers=people.guangzhou
        ),
        200,
    )
    assert (resolved["status"], resolved["resolution_note"]) == ("resolved", "seal re-read: intact")
    assert resolved["resolved_at"] is not None
    assert [a["id"] for a in alerts(client, people.guangzhou, "status=resolved")] == [alert_id]
    assert container_state(client, people.forwarder, container_number(1))["open_alerts"] == 1
    # Resolving lifts no hold: only an inspection does.
    assert container_state(client, people.forwarder, container_number(1))["status"] == "held"

    twice = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "again"}, headers=people.guangzhou)
    assert twice.status_code == 409
    assert twice.content_type == "application/problem+json"
    assert client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=people.guangzhou).status_code == 409


def test_only_supervisors_in_scope_handle_alerts(
    client: FlaskClient, admin: dict, people: Actors, several: dict[str, int]
) -> None:
    alert_id = several["broken"]
    for token in (people.forwarder, people.other_forwarder, people.operator):
        assert client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=token).status_code == 403
        response = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "mine"}, headers=token)
        assert response.status_code == 403
    # Outside a supervisor's offices the alert does not exist for them.
    assert client.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=people.shenzhen).status_code == 404
    response = client.post(f"/api/v1/alerts/{alert_id}/resolve", json={"note": "x"}, headers=people.shenzhen)
    assert response.status_code == 404
    assert client.post("/api/v1/alerts/999999/acknowledge", headers=admin).status_code == 404
    [untouched] = [a for a in alerts(client, admin) if a["id"] == alert_id]
    assert untouched["status"] == "open"
    assert client.get("/api/v1/alerts").status_code == 401


def test_an_operator_sees_the_alerts_at_its_nodes(client: FlaskClient, several: dict[str, int]) -> None:
    nansha_gate = bearer(make_key(client, name="Nansha gate", role="operator", nodes=["CNNSA"]))
    assert {a["id"] for a in alerts(client, nansha_gate)} == {several["broken"], several["stripped"]}
