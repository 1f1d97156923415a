"""The network endpoints: GeoJSON nodes and legs with filters, and admins adding to them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.conftest import bearer, make_key

SHARED_NODES = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "nodes.csv"


def codes(response) -> set[str]:
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["type"] == "FeatureCollection"
    return {f["id"] for f in body["features"]}


def test_nodes_lists_the_whole_reference_network(client: FlaskClient) -> None:
    with SHARED_NODES.open(encoding="utf-8") as fh:
        expected = {row["code"] for row in csv.DictReader(fh)}
    found = codes(client.get("/api/v1/nodes"))
    assert len(found) >= 40
    assert expected <= found


def test_a_node_is_a_geojson_point_with_its_customs_facts(client: FlaskClient) -> None:
    feature = client.get("/api/v1/nodes/CNGGZ-DLG").get_json()
    assert feature["type"] == "Feature"
    assert feature["id"] == "CNGGZ-DLG"
    lon, lat = feature["geometry"]["coordinates"]
    assert feature["geometry"]["type"] == "Point"
    assert (round(lon, 1), round(lat, 1)) == (113.3, 23.3)
    props = feature["properties"]
    assert props["kind"] == "rail_terminal"
    assert props["customs_office"] == "CN-GUANGZHOU"
    assert "rail" in props["modes"]
    assert isinstance(props["seal_preserving_transfer"], bool)


@pytest.mark.parametrize(
    ("query", "inside", "outside"),
    [
        ("kind=border_crossing", {"CNAKL", "CNHRS", "CNERC", "CNMLX", "PLMAA"}, {"CNNSA"}),
        ("kind=dry_port", {"CNCSH", "CNGZH"}, {"CNAKL"}),
        ("mode=barge", {"CNSJQ", "CNNSA", "HKHKG"}, {"CNAKL", "RUVRS"}),
        ("bbox=112.5,22.0,114.5,23.5", {"CNNSA", "HKHKG", "CNFOS"}, {"DEDUI", "CNCSH", "CNAKL"}),
        ("kind=seaport&bbox=112.5,22.0,114.5,23.5", {"CNNSA", "HKHKG"}, {"CNFOS", "CNGGZ-DLG"}),
    ],
)
def test_node_filters(client: FlaskClient, query: str, inside: set[str], outside: set[str]) -> None:
    found = codes(client.get(f"/api/v1/nodes?{query}"))
    assert inside <= found
    assert not outside & found


@pytest.mark.parametrize(
    "query", ["kind=castle", "mode=air", "bbox=1,2,3", "bbox=a,b,c,d", "bbox=10,10,5,5", "bbox=0,0,200,10"]
)
def test_bad_filters_are_422_with_the_field_named(client: FlaskClient, query: str) -> None:
    response = client.get(f"/api/v1/nodes?{query}")
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert query.split("=")[0] in response.get_json()["errors"]


def test_legs_cover_all_four_modes_as_linestrings(client: FlaskClient) -> None:
    body = client.get("/api/v1/legs").get_json()
    modes = {f["properties"]["mode"] for f in body["features"]}
    assert modes == {"sea", "barge", "rail", "road"}
    for feature in body["features"]:
        assert feature["geometry"]["type"] == "LineString"
        assert len(feature["geometry"]["coordinates"]) >= 2
        props = feature["properties"]
        assert {
            "id",
            "origin",
            "destination",
            "mode",
            "distance_km",
            "duration_h",
            "cost_per_teu",
            "co2_kg_per_teu",
        } <= set(props)
    timetabled = [f for f in body["features"] if "departures" in f["properties"]]
    assert timetabled, "China–Europe trains run to weekly timetables"


def test_legs_filter_by_mode_and_node(client: FlaskClient) -> None:
    body = client.get("/api/v1/legs?mode=rail&node=CNAKL").get_json()
    assert body["features"]
    for f in body["features"]:
        assert f["properties"]["mode"] == "rail"
        assert "CNAKL" in (f["properties"]["origin"], f["properties"]["destination"])


def test_long_legs_follow_their_corridor(client: FlaskClient) -> None:
    body = client.get("/api/v1/legs?mode=sea&node=DEHAM").get_json()
    europe_bound = [f for f in body["features"] if f["properties"]["distance_km"] > 5000]
    assert europe_bound
    assert all(len(f["geometry"]["coordinates"]) > 3 for f in europe_bound)


def test_unknown_node_is_404_problem(client: FlaskClient) -> None:
    response = client.get("/api/v1/nodes/XXNOPE")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert response.get_json()["status"] == 404


NEW_NODE = {
    "code": "CNQZH-DPT",
    "name": "Qinzhou inland depot",
    "kind": "inland_depot",
    "lon": 108.65,
    "lat": 21.95,
    "modes": ["rail", "road"],
    "customs_office": "CN-NANNING",
    "seal_preserving_transfer": False,
}


def test_admin_adds_a_node_and_a_timetabled_leg(client: FlaskClient, admin: dict[str, str]) -> None:
    response = client.post("/api/v1/nodes", json=NEW_NODE, headers=admin)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["properties"]["seal_preserving_transfer"] is False
    leg = {
        "origin": "CNQZH-DPT",
        "destination": "CNQZH",
        "mode": "road",
        "duration_h": 1.0,
        "cost_per_teu": 40,
        "co2_kg_per_teu": 20,
        "departures": ["mon 08:00", "thu 08:00"],
        "coordinates": [[108.63, 21.8]],
    }
    response = client.post("/api/v1/legs", json=leg, headers=admin)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["properties"]["departures"] == ["mon 08:00", "thu 08:00"]
    assert len(created["geometry"]["coordinates"]) == 3
    assert created["properties"]["distance_km"] > 0
    assert "CNQZH-DPT" in codes(client.get("/api/v1/nodes?kind=inland_depot"))
    assert client.get("/api/v1/legs?node=CNQZH-DPT").get_json()["features"][0]["id"] == created["id"]


def test_a_node_code_is_taken_once(client: FlaskClient, admin: dict[str, str]) -> None:
    response = client.post("/api/v1/nodes", json={**NEW_NODE, "code": "CNNSA"}, headers=admin)
    assert response.status_code == 409
    assert client.get("/api/v1/nodes/CNNSA").get_json()["properties"]["name"] != NEW_NODE["name"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"origin": "XXNOPE"}, "origin"),
        ({"mode": "sea", "origin": "CNGGZ-DLG"}, "origin"),
        ({"destination": "CNNSA", "origin": "CNNSA"}, "destination"),
        ({"departures": ["monday 8am"]}, "departures.0"),
        ({"duration_h": -1}, "duration_h"),
    ],
)
def test_a_bad_leg_is_refused_and_nothing_is_stored(
    client: FlaskClient, admin: dict[str, str], change: dict, field: str
) -> None:
    before = len(client.get("/api/v1/legs").get_json()["features"])
    leg = {
        "origin": "CNNSA",
        "destination": "CNHUA",
        "mode": "road",
        "duration_h": 2,
        "cost_per_teu": 80,
        "co2_kg_per_teu": 40,
        **change,
    }
    response = client.post("/api/v1/legs", json=leg, headers=admin)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert len(client.get("/api/v1/legs").get_json()["features"]) == before


def test_only_admins_change_the_network(client: FlaskClient) -> None:
    operator = make_key(client, name="Nansha gate", role="operator", nodes=["CNNSA"])
    assert client.post("/api/v1/nodes", json=NEW_NODE).status_code == 401
    assert client.post("/api/v1/nodes", json=NEW_NODE, headers=bearer(operator)).status_code == 403
    assert client.get("/api/v1/nodes/CNQZH-DPT").status_code == 404


def test_the_network_is_public_but_a_bad_token_is_still_refused(client: FlaskClient) -> None:
    assert client.get("/api/v1/nodes").status_code == 200
    response = client.get("/api/v1/nodes", headers=bearer("forged"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
