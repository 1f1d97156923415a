"""Declare once: a forwarder's declaration is stored whole or not at all, and each party sees only its own."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.api.helpers import (
    DESTINATION,
    ITINERARY,
    ORIGIN,
    Actors,
    actors,
    box,
    container_number,
    container_state,
    counts,
    declare,
    inspect,
    invalid_check_digit,
    iso,
    now,
    ok,
    parse_time,
    seals_for,
    timeline,
    transfer,
)
from tests.conftest import bearer, make_key

BOX = container_number(1)


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


def test_a_forwarder_declares_once_and_everyone_reads_the_same_declaration(client: FlaskClient, people: Actors) -> None:
    deadline = now() + timedelta(days=5)
    body = ok(
        declare(
            client,
            people.forwarder,
            deadline=iso(deadline),
            containers=[box(BOX, goods={"hs_code": "851712", "description": "mobile phones"})],
        )
    )
    assert body["reference"] == "PRD-2026-0001"
    assert body["party"] == "PEARLFWD"
    assert body["status"] == "open"
    assert (body["origin"], body["destination"]) == (ORIGIN, DESTINATION)
    assert body["itinerary"] == ITINERARY
    assert body["inspection_node"] == DESTINATION, "an import is inspected at its destination by default"
    assert abs((parse_time(body["deadline"]) - deadline).total_seconds()) < 1e-3
    assert body["containers"] == [
        {
            "number": BOX,
            "status": "declared",
            "seals": [{"number": s, "type": "bolt", "source": "customs"} for s in seals_for(BOX)],
        }
    ]
    for reader in (people.forwarder, people.supervisor, people.operator):
        assert ok(client.get(f"/api/v1/declarations/{body['id']}", headers=reader), 200) == body

    state = container_state(client, people.forwarder, BOX)
    assert state == {
        "number": BOX,
        "status": "declared",
        "declaration_id": body["id"],
        "expected_seals": seals_for(BOX),
        "location": None,
        "held": False,
        "open_alerts": 0,
    }
    [declared] = timeline(client, people.forwarder, BOX)
    assert (declared["type"], declared["node"]) == ("declared", ORIGIN)


def test_a_deadline_given_in_china_standard_time_is_kept_as_the_same_instant(
    client: FlaskClient, people: Actors
) -> None:
    deadline = (now() + timedelta(days=3)).replace(microsecond=0).astimezone(timezone(timedelta(hours=8)))
    body = ok(declare(client, people.forwarder, deadline=deadline.isoformat()))
    shown = ok(client.get(f"/api/v1/declarations/{body['id']}", headers=people.forwarder), 200)["deadline"]
    assert body["deadline"] == shown
    assert shown.endswith("Z"), "returned in UTC"
    assert parse_time(shown) == deadline, (
        f"BUG tracking/declarations.py declare: the deadline is stored without as_utc(), so SQLite keeps the "
        f"wall-clock time and drops the offset: sent {deadline.isoformat()}, shown {shown}"
    )


def test_without_an_itinerary_the_fastest_planned_route_is_declared(client: FlaskClient, people: Actors) -> None:
    body = ok(declare(client, people.forwarder, itinerary=None))
    itinerary = body["itinerary"]
    assert itinerary[0] == ORIGIN
    assert itinerary[-1] == DESTINATION
    assert len(itinerary) == len(set(itinerary)) >= 2
    fastest = ok(
        client.post("/api/v1/routes", json={"origin": ORIGIN, "destination": DESTINATION}, headers=people.forwarder),
        200,
    )
    assert itinerary == fastest["routes"][0]["nodes"]


@pytest.mark.parametrize(
    ("direction", "inspection_node", "expected"),
    [
        ("import", None, DESTINATION),
        ("transit", None, DESTINATION),
        ("export", None, ORIGIN),
        ("import", "CNNSA", "CNNSA"),
    ],
)
def test_the_inspection_node_defaults_by_direction(
    client: FlaskClient, people: Actors, direction: str, inspection_node: str | None, expected: str
) -> None:
    body = ok(declare(client, people.forwarder, direction=direction, inspection_node=inspection_node))
    assert body["inspection_node"] == expected


def test_container_numbers_are_stored_in_their_normal_form(client: FlaskClient, people: Actors) -> None:
    written = f"{BOX[:4].lower()} {BOX[4:10]}-{BOX[10]}"
    body = ok(declare(client, people.forwarder, containers=[box(written)]))
    assert [c["number"] for c in body["containers"]] == [BOX]
    assert container_state(client, people.forwarder, BOX)["number"] == BOX


def test_an_admin_declares_for_a_named_party(client: FlaskClient, admin: dict, people: Actors) -> None:
    missing = declare(client, admin)
    assert missing.status_code == 422
    assert "party" in missing.get_json()["errors"]
    body = ok(declare(client, admin, party="PEARLFWD"))
    assert body["party"] == "PEARLFWD"
    assert ok(client.get(f"/api/v1/declarations/{body['id']}", headers=people.forwarder), 200)["id"] == body["id"]


# --- rejected: nothing stored -------------------------------------------------------------------------------------

GOOD = [container_number(n) for n in (1, 2, 3)]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param(
            {"containers": [box(GOOD[0], ["S-1"]), box(invalid_check_digit(GOOD[1]), ["S-2"]), box(GOOD[2], ["S-3"])]},
            "containers.1.number",
            id="bad-check-digit-among-good-boxes",
        ),
        pytest.param({"containers": [box("NOT A BOX")]}, "containers.0.number", id="not-a-container-number"),
        pytest.param({"containers": [box("CSQX3054383")]}, "containers.0.number", id="bad-category"),
        pytest.param(
            {"containers": [box(GOOD[0], ["S-1"]), box(GOOD[0], ["S-2"])]}, "containers.1.number", id="box-twice"
        ),
        pytest.param({"origin": "CNZZZ", "itinerary": None}, "origin", id="unknown-origin"),
        pytest.param({"destination": "CNZZZ", "itinerary": None}, "destination", id="unknown-destination"),
        pytest.param({"itinerary": [ORIGIN, "CNNSA", "CNZZZ", DESTINATION]}, "itinerary.2", id="unknown-stop"),
        pytest.param({"inspection_node": "CNZZZ"}, "inspection_node", id="unknown-inspection-node"),
        pytest.param({"inspection_node": "CNYTN"}, "inspection_node", id="inspection-node-off-itinerary"),
        pytest.param({"itinerary": ["CNNSA", DESTINATION]}, "itinerary", id="itinerary-not-from-origin"),
        pytest.param({"itinerary": [ORIGIN, "CNNSA"]}, "itinerary", id="itinerary-not-to-destination"),
        pytest.param({"deadline": iso(now() - timedelta(minutes=1))}, "deadline", id="deadline-past"),
        pytest.param({"deadline": "2026-12-01T10:00:00"}, "deadline", id="deadline-without-offset"),
        pytest.param({"containers": [box(GOOD[0], ["AB-1", "ab 1"])]}, "containers.0.seals.1.number", id="dup-seal"),
        pytest.param(
            {"containers": [box(GOOD[0], ["GZ-0001"]), box(GOOD[1], ["gz 0001"])]},
            "containers.1.seals.0.number",
            id="dup-seal-across-boxes",
        ),
        pytest.param({"containers": [box(GOOD[0], [])]}, "containers.0.seals", id="no-seal"),
        pytest.param({"containers": [box(GOOD[0], ["S-1", " - "])]}, "containers.0.seals.1.number", id="blank-seal"),
        pytest.param(
            {"containers": [box(GOOD[0], ["S-1", "№" * 64])]},
            "containers.0.seals.1.number",
            id="seal-longer-normalised",
        ),
        pytest.param({"containers": []}, "containers", id="no-container"),
        pytest.param({"direction": "sideways"}, "direction", id="bad-direction"),
        pytest.param({"reference": None}, "reference", id="no-reference"),
    ],
)
def test_an_invalid_declaration_is_422_and_stores_nothing(
    app: Flask, client: FlaskClient, people: Actors, overrides: dict, field: str
) -> None:
    before = counts(app)
    response = declare(client, people.forwarder, **overrides)
    assert response.status_code == 422, (
        f"BUG tracking/declarations.py _containers: {response.status_code} for a seal number that is blank once "
        "normalised; normalise_seal never raises, so the `except ValueError` guard never fires, the seal is stored "
        "and every later transfer of the box fails with a 500"
        if field == "containers.0.seals.1.number" and overrides["containers"][0]["seals"][1]["number"] == " - "
        else response.get_json()
    )
    assert response.content_type == "application/problem+json"
    assert field in response.get_json()["errors"], response.get_json()
    assert counts(app) == before
    assert client.get(f"/api/v1/containers/{GOOD[0]}", headers=people.forwarder).status_code == 404


def test_a_reference_is_used_once_per_party(app: Flask, client: FlaskClient, people: Actors) -> None:
    ok(declare(client, people.forwarder, reference="REF-1", containers=[box(container_number(1))]))
    before = counts(app)
    again = declare(client, people.forwarder, reference="REF-1", containers=[box(container_number(2))])
    assert again.status_code == 409, again.get_json()
    assert again.content_type == "application/problem+json"
    assert counts(app) == before
    other = ok(declare(client, people.other_forwarder, reference="REF-1", containers=[box(container_number(3))]))
    assert other["party"] == "DELTALOG"


def test_a_container_is_on_one_open_declaration_at_a_time(app: Flask, client: FlaskClient, people: Actors) -> None:
    first = ok(declare(client, people.forwarder, reference="REF-1", containers=[box(BOX)]))
    before = counts(app)
    for token, reference in ((people.forwarder, "REF-2"), (people.other_forwarder, "REF-9")):
        busy = declare(client, token, reference=reference, containers=[box(container_number(2)), box(BOX)])
        assert busy.status_code == 409, busy.get_json()
        assert BOX in busy.get_json()["detail"]
        assert counts(app) == before

    # Once released, the box may travel under a new declaration; its number then means the new one.
    for node in ITINERARY:
        ok(transfer(client, people.operator, container=BOX, node=node))
    ok(inspect(client, people.supervisor, container=BOX, node=DESTINATION))
    second = ok(declare(client, people.forwarder, reference="REF-2", containers=[box(BOX)]))
    state = container_state(client, people.forwarder, BOX)
    assert (state["declaration_id"], state["status"]) == (second["id"], "declared")
    assert ok(client.get(f"/api/v1/declarations/{first['id']}", headers=people.forwarder), 200)["status"] == "closed"


# --- who may declare and who sees what ----------------------------------------------------------------------------


def test_only_forwarders_and_admins_declare(app: Flask, client: FlaskClient, people: Actors) -> None:
    before = counts(app)
    for token in (people.operator, people.supervisor):
        assert declare(client, token).status_code == 403
    assert declare(client, {}).status_code == 401
    assert declare(client, bearer("rs_not-a-token")).status_code == 401
    assert counts(app) == before


def test_without_a_token_a_declaration_is_401_whatever_its_body(client: FlaskClient) -> None:
    response = client.post("/api/v1/declarations", json={"reference": "x"})
    assert response.status_code == 401, (
        "BUG api/declarations.py create: @roles sits inside @blp.arguments, so an anonymous caller's body is "
        f"validated first and answered {response.status_code} with the schema's errors instead of 401"
    )


def test_malformed_or_non_json_declarations(app: Flask, client: FlaskClient, people: Actors) -> None:
    before = counts(app)
    headers = {**people.forwarder, "Content-Type": "application/json"}
    assert client.post("/api/v1/declarations", data="{oops", headers=headers).status_code == 400
    text = {**people.forwarder, "Content-Type": "text/plain"}
    assert client.post("/api/v1/declarations", data="reference=x", headers=text).status_code == 415
    assert counts(app) == before


def test_another_partys_declaration_and_containers_are_404(client: FlaskClient, people: Actors) -> None:
    body = ok(declare(client, people.forwarder))
    for path in (
        f"/api/v1/declarations/{body['id']}",
        f"/api/v1/containers/{BOX}",
        f"/api/v1/containers/{BOX}/events",
        f"/api/v1/containers/{BOX}/evidence",
        f"/api/v1/containers/{BOX}/track",
    ):
        assert client.get(path, headers=people.forwarder).status_code == 200, path
        response = client.get(path, headers=people.other_forwarder)
        assert response.status_code == 404, path
        assert response.content_type == "application/problem+json"
        unknown = path.replace(BOX, container_number(99)).replace(f"/{body['id']}", "/999999")
        assert client.get(unknown, headers=people.forwarder).status_code == 404, unknown


def test_declaration_lists_follow_the_callers_scope(client: FlaskClient, people: Actors) -> None:
    mine = ok(declare(client, people.forwarder, reference="A", containers=[box(container_number(1))]))
    theirs = ok(
        declare(
            client,
            people.other_forwarder,
            reference="B",
            origin="CNNSA",
            destination="CNYTN",
            itinerary=["CNNSA", "CNYTN"],
            containers=[box(container_number(2))],
        )
    )

    def listed(token: dict[str, str]) -> set[int]:
        return {d["id"] for d in ok(client.get("/api/v1/declarations", headers=token), 200)["items"]}

    assert listed(people.forwarder) == {mine["id"]}
    assert listed(people.other_forwarder) == {theirs["id"]}
    assert listed(people.supervisor) == {mine["id"], theirs["id"]}
    changsha_gate = bearer(make_key(client, name="Changsha gate", role="operator", nodes=["CNCSH"]))
    yantian_gate = bearer(make_key(client, name="Yantian gate", role="operator", nodes=["CNYTN"]))
    hamburg_gate = bearer(make_key(client, name="Hamburg gate", role="operator", nodes=["DEHAM"]))
    assert listed(changsha_gate) == {mine["id"]}
    assert listed(yantian_gate) == {theirs["id"]}
    assert listed(hamburg_gate) == set()
    assert client.get(f"/api/v1/declarations/{mine['id']}", headers=yantian_gate).status_code == 404


def test_declarations_page_with_a_cursor(client: FlaskClient, people: Actors) -> None:
    ids = [
        ok(declare(client, people.forwarder, reference=f"R{n}", containers=[box(container_number(n))]))["id"]
        for n in range(1, 4)
    ]
    seen: list[int] = []
    cursor = None
    while True:
        query = f"?limit=2&cursor={cursor}" if cursor else "?limit=2"
        response = client.get(f"/api/v1/declarations{query}", headers=people.forwarder)
        assert response.status_code == 200, (
            "BUG api/schemas.py Paging.limit: `?limit=2` in a query string must be accepted (it is always a string "
            f"there; strict=True refuses it): {response.get_json()}"
        )
        page = response.get_json()
        assert len(page["items"]) <= 2
        seen.extend(d["id"] for d in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True), "newest first, each once"
