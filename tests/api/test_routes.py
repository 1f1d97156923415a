"""Route planning through the API on the reference network."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest
from flask.testing import FlaskClient

from tests.conftest import make_key

DAY_H = 24


@pytest.fixture
def forwarder(client: FlaskClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(client, name='Ocean', role='forwarder', party='OCEANFWD')}"}


def plan(client: FlaskClient, headers: dict[str, str], **body: object) -> list[dict]:
    response = client.post("/api/v1/routes", json=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    routes: list[dict] = response.get_json()["routes"]
    return routes


def test_fastest_rail_changsha_to_duisburg_crosses_a_border(client: FlaskClient, forwarder: dict) -> None:
    (route,) = plan(client, forwarder, origin="CNCSH", destination="DEDUI", modes=["rail"])
    borders = {f["id"] for f in client.get("/api/v1/nodes?kind=border_crossing").get_json()["features"]}
    assert set(route["nodes"]) & borders
    assert 5 * DAY_H <= route["duration_h"] <= 40 * DAY_H
    assert {leg["mode"] for leg in route["legs"]} == {"rail"}
    assert route["nodes"][0] == "CNCSH"
    assert route["nodes"][-1] == "DEDUI"
    assert "DEDUI" in route["inspections"]
    assert route["geometry"]["type"] == "LineString"
    assert len(route["geometry"]["coordinates"]) > len(route["nodes"])


def test_barge_only_sanshui_to_nansha(client: FlaskClient, forwarder: dict) -> None:
    (route,) = plan(client, forwarder, origin="CNSJQ", destination="CNNSA", modes=["barge"])
    assert {leg["mode"] for leg in route["legs"]} == {"barge"}
    assert route["legs"][0]["origin"] == "CNSJQ"
    assert route["legs"][-1]["destination"] == "CNNSA"
    for a, b in zip(route["legs"], route["legs"][1:], strict=False):
        assert a["destination"] == b["origin"]


def test_each_objective_is_best_on_its_own_measure(client: FlaskClient, forwarder: dict) -> None:
    best = {
        objective: plan(client, forwarder, origin="CNGGZ-DLG", destination="DEHAM", optimize=objective)[0]
        for objective in ("time", "cost", "co2", "inspections")
    }
    for other in best.values():
        assert best["time"]["duration_h"] <= other["duration_h"] + 1e-6
        assert best["cost"]["cost_per_teu"] <= other["cost_per_teu"] + 1e-6
        assert best["co2"]["co2_kg_per_teu"] <= other["co2_kg_per_teu"] + 1e-6
    assert len(best["inspections"]["inspections"]) <= len(best["time"]["inspections"])


def test_alternatives_are_distinct_and_ordered(client: FlaskClient, forwarder: dict) -> None:
    routes = plan(client, forwarder, origin="CNSJQ", destination="HKHKG", alternatives=4)
    assert len(routes) >= 2
    assert len({tuple(r["nodes"]) for r in routes}) == len(routes)
    durations = [r["duration_h"] for r in routes]
    assert durations == sorted(durations)


def test_avoided_nodes_never_appear(client: FlaskClient, forwarder: dict) -> None:
    (fastest,) = plan(client, forwarder, origin="CNCSH", destination="DEDUI", modes=["rail"])
    crossing = next(n for n in fastest["nodes"] if n in {"CNAKL", "CNHRS", "CNERC", "CNMLX"})
    (detour,) = plan(client, forwarder, origin="CNCSH", destination="DEDUI", modes=["rail"], avoid=[crossing])
    assert crossing not in detour["nodes"]
    assert detour["duration_h"] >= fastest["duration_h"]


def test_departure_time_gives_leg_times_and_waits(client: FlaskClient, forwarder: dict) -> None:
    depart = "2026-12-07T00:00:00Z"
    (route,) = plan(client, forwarder, origin="CNGGZ-DLG", destination="PLMAA", modes=["rail"], depart_at=depart)
    legs = route["legs"]
    assert all("depart_at" in leg and "arrive_at" in leg for leg in legs)
    start = datetime.fromisoformat(depart)
    assert datetime.fromisoformat(legs[0]["depart_at"]) >= start
    for a, b in itertools.pairwise(legs):
        assert datetime.fromisoformat(b["depart_at"]) >= datetime.fromisoformat(a["arrive_at"])
    total = (datetime.fromisoformat(legs[-1]["arrive_at"]) - start).total_seconds() / 3600
    assert route["duration_h"] == pytest.approx(total, abs=0.05)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"origin": "CNZZZ", "destination": "CNNSA"}, 404),
        ({"origin": "CNNSA", "destination": "CNZZZ"}, 404),
        ({"origin": "CNSJQ", "destination": "DEDUI", "modes": ["barge"]}, 422),
        ({"origin": "CNNSA", "destination": "CNNSA"}, 422),
        ({"origin": "CNNSA", "destination": "HKHKG", "alternatives": 9}, 422),
        ({"origin": "CNNSA", "destination": "HKHKG", "optimize": "beauty"}, 422),
    ],
)
def test_unknown_nodes_are_404_and_impossible_plans_422(
    client: FlaskClient, forwarder: dict, body: dict, status: int
) -> None:
    response = client.post("/api/v1/routes", json=body, headers=forwarder)
    assert response.status_code == status
    assert response.content_type == "application/problem+json"


def test_routes_need_a_token(client: FlaskClient) -> None:
    assert client.post("/api/v1/routes", json={"origin": "CNNSA", "destination": "HKHKG"}).status_code == 401


def test_the_planner_is_rebuilt_when_the_network_changes(client: FlaskClient, admin: dict) -> None:
    before = plan(client, admin, origin="CNSJQ", destination="CNZQG")[0]["duration_h"]
    leg = {
        "origin": "CNSJQ",
        "destination": "CNZQG",
        "mode": "road",
        "duration_h": 0.1,
        "cost_per_teu": 1,
        "co2_kg_per_teu": 1,
    }
    assert client.post("/api/v1/legs", json=leg, headers=admin).status_code == 201
    (route,) = plan(client, admin, origin="CNSJQ", destination="CNZQG")
    assert route["nodes"] == ["CNSJQ", "CNZQG"]
    assert route["duration_h"] < before
