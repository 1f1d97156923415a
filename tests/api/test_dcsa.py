"""The DCSA Track & Trace v3 feed: a journey's events with the right codes, seals and LOCODEs, in scope, paged.

The schema below is transcribed from the stored DCSA OpenAPI (dcsaorg/DCSA-OpenAPI): events and payloads from
domain/event/event_domain_v3.1.0.yaml (used by tnt/v3/tnt_v3.0.0-Beta-1.yaml), seals from
domain/documentation/documentation_domain_v2.1.0.yaml, locations from domain/location/dcsa_location_v3.0.0.yaml and
simple types from domain/dcsa/dcsa_domain_v3.0.0.yaml. No other property is allowed, so a misspelt field fails.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest
from flask.testing import FlaskClient

from tests.api.helpers import (
    ITINERARY,
    Actors,
    actors,
    box,
    container_number,
    declare,
    inspect,
    iso,
    now,
    ok,
    parse_time,
    seals_for,
    transfer,
)
from tests.conftest import bearer, make_key

BOX = container_number(61)
CUSTOMS_SEAL, CARRIER_SEAL = seals_for(BOX)

DOCUMENT_TYPES = ["CBR", "BKG", "SHI", "TRD", "DEI", "DEO", "TRO", "CRO", "ARN", "VGM", "CAS", "CUC", "DGD", "OOG"]
DOCUMENT_TYPES += ["CQU", "INV", "HCE", "PCE", "VCE", "FCE", "ICE", "CEA", "CEO"]
REFERENCE_TYPES = ["FF", "SI", "PO", "CR", "AAO", "ECR", "CSI", "BPR", "BID", "EQ", "RUC", "DUE", "CER", "AES"]
EQUIPMENT_CODES = ["LOAD", "DISC", "GTIN", "GTOT", "STUF", "STRP", "AVPU", "PICK", "AVDO", "DROP", "INSP", "RSEA"]
EQUIPMENT_CODES += ["RMVD", "CUSS", "CUSI", "CUSR", "CROS"]
FACILITY_TYPES = ["BORD", "CLOC", "COFS", "OFFD", "DEPO", "INTE", "POTE", "RAMP", "WAYP"]
NO_SPACE_EDGES = r"^\S+(\s+\S+)*$"

LOCATION = {
    "type": "object",
    "properties": {
        "locationType": {"enum": ["UNLO"]},
        "locationName": {"type": "string", "maxLength": 100},
        "UNLocationCode": {"type": "string", "pattern": "^[A-Z]{2}[A-Z2-9]{3}$", "minLength": 5, "maxLength": 5},
    },
    "required": ["locationType", "UNLocationCode"],
    "additionalProperties": False,
}
TRANSPORT_CALL = {
    "type": "object",
    "properties": {
        "transportCallReference": {"type": "string", "maxLength": 100, "pattern": NO_SPACE_EDGES},
        "transportCallSequenceNumber": {"type": "integer"},
        "location": LOCATION,
        # The stored transportCall enum spells the border `BOCR`; the service never sends a border facility here.
        "facilityTypeCode": {"enum": ["BOCR", "CLOC", "COFS", "OFFD", "DEPO", "INTE", "POTE", "RAMP", "WAYP"]},
        "modeOfTransport": {"enum": ["VESSEL", "BARGE", "RAIL", "TRUCK"]},
        "railCar": {"type": "string", "maxLength": 50},
        "railService": {"type": "string", "maxLength": 50},
        "departureID": {"type": "string", "maxLength": 100},
        "licencePlate": {"type": "string", "maxLength": 15},
        "chassisLicencePlate": {"type": "string", "maxLength": 15},
        "barge": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 35}},
            "required": ["name"],
        },
        "vessel": {
            "type": "object",
            "properties": {"vesselIMONumber": {"type": "string", "pattern": r"^\d{7}$"}},
            "required": ["vesselIMONumber"],
        },
    },
    "required": ["transportCallReference", "modeOfTransport"],
    "additionalProperties": False,
    "allOf": [
        {
            "if": {"properties": {"modeOfTransport": {"const": mode}}},
            "then": {"not": {"anyOf": [{"required": [name]} for name in forbidden]}},
        }
        for mode, forbidden in {
            "RAIL": ["licencePlate", "chassisLicencePlate", "barge", "vessel"],
            "TRUCK": ["railCar", "railService", "departureID", "barge", "vessel"],
            "BARGE": ["railCar", "railService", "departureID", "licencePlate", "chassisLicencePlate", "vessel"],
            "VESSEL": ["railCar", "railService", "departureID", "licencePlate", "chassisLicencePlate", "barge"],
        }.items()
    ],
}
DOCUMENT_REFERENCES = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"type": {"enum": DOCUMENT_TYPES}, "value": {"type": "string", "maxLength": 100}},
        "additionalProperties": False,
    },
}
REFERENCES = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"type": {"enum": REFERENCE_TYPES}, "value": {"type": "string", "maxLength": 100}},
        "required": ["type", "value"],
        "additionalProperties": False,
    },
}
SEAL = {
    "type": "object",
    "properties": {
        "number": {"type": "string", "maxLength": 15},
        "source": {"enum": ["CAR", "SHI", "PHY", "VET", "CUS"]},
        "type": {"enum": ["KLP", "BLT", "WIR"]},
    },
    "required": ["number"],
    "additionalProperties": False,
}
DATE_TIME = {"type": "string", "format": "date-time"}
METADATA = {
    "type": "object",
    "properties": {
        "eventID": {"type": "string", "maxLength": 100},
        "eventCreatedDateTime": DATE_TIME,
        "retractedEventID": {"type": "string", "maxLength": 100},
        "eventType": {"enum": ["SHIPMENT", "EQUIPMENT", "TRANSPORT"]},
        "publisher": {
            "type": "object",
            "properties": {
                "partyName": {"type": "string", "maxLength": 100},
                "carrierCode": {"type": "string", "maxLength": 4, "pattern": NO_SPACE_EDGES},
                "carrierCodeListProvider": {"enum": ["SMDG", "NMFTA"]},
            },
            "required": ["carrierCode", "carrierCodeListProvider"],
            "additionalProperties": False,
        },
        "publisherRole": {"enum": ["CA", "AG", "VSP", "SVP"]},
    },
    "required": ["eventID", "eventCreatedDateTime", "publisher", "publisherRole", "eventType"],
    "additionalProperties": False,
}
EQUIPMENT_PAYLOAD = {
    "type": "object",
    "properties": {
        "eventClassifierCode": {"enum": ["ACT", "PLN", "EST"]},
        "eventDateTime": DATE_TIME,
        "equipmentEventTypeCode": {"enum": EQUIPMENT_CODES},
        "equipmentReference": {"type": "string", "maxLength": 11, "pattern": NO_SPACE_EDGES},
        "ISOEquipmentCode": {"type": "string", "maxLength": 4},
        "emptyIndicatorCode": {"enum": ["EMPTY", "LADEN"]},
        "isTransshipmentMove": {"type": "boolean"},
        "eventLocation": LOCATION,
        "facilityTypeCode": {"enum": FACILITY_TYPES},
        "transportCall": TRANSPORT_CALL,
        "relatedDocumentReferences": DOCUMENT_REFERENCES,
        "references": REFERENCES,
        "seals": {"type": "array", "items": SEAL},
    },
    "required": ["eventClassifierCode", "eventDateTime", "equipmentEventTypeCode", "emptyIndicatorCode"],
    "additionalProperties": False,
    "allOf": [
        {
            # isTransshipmentMove goes with LOAD, DISC, GTIN, GTOT, PICK and DROP only.
            "if": {"required": ["isTransshipmentMove"]},
            "then": {
                "properties": {"equipmentEventTypeCode": {"enum": ["LOAD", "DISC", "GTIN", "GTOT", "PICK", "DROP"]}}
            },
        },
        {"not": {"required": ["eventLocation", "transportCall"]}},
    ],
}
TRANSPORT_PAYLOAD = {
    "type": "object",
    "properties": {
        "eventClassifierCode": {"enum": ["ACT", "PLN", "EST"]},
        "eventDateTime": DATE_TIME,
        "transportEventTypeCode": {"enum": ["ARRI", "DEPA"]},
        "delayReasonCode": {"type": "string", "maxLength": 3},
        "changeRemark": {"type": "string", "maxLength": 250},
        "transportCall": TRANSPORT_CALL,
        "relatedDocumentReferences": DOCUMENT_REFERENCES,
        "references": REFERENCES,
    },
    "required": ["eventClassifierCode", "eventDateTime", "transportEventTypeCode", "transportCall"],
    "additionalProperties": False,
}
EVENT = {
    "type": "object",
    "properties": {"metadata": METADATA, "payload": {"type": "object"}},
    "required": ["metadata", "payload"],
    "additionalProperties": False,
    "allOf": [
        {
            "if": {"properties": {"metadata": {"properties": {"eventType": {"const": kind}}}}},
            "then": {"properties": {"payload": payload}},
        }
        for kind, payload in (("EQUIPMENT", EQUIPMENT_PAYLOAD), ("TRANSPORT", TRANSPORT_PAYLOAD))
    ],
}
VALIDATOR = jsonschema_rs.Draft7Validator(EVENT, validate_formats=True)


def assert_dcsa(events: list[dict[str, Any]]) -> None:
    for event in events:
        problems = [str(e) for e in VALIDATOR.iter_errors(event)]
        assert not problems, (event, problems)


def feed(client: FlaskClient, token: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    """Every event of the feed, following Next-Page."""
    items: list[dict[str, Any]] = []
    url: str | None = "/api/v1/dcsa/v3/events" + (f"?{query}" if query else "")
    while url:
        response = client.get(url, headers=token)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["API-Version"] == "3.0.0-Beta-1"
        items.extend(response.get_json())
        url = response.headers.get("Next-Page")
    return items


def summary(event: dict[str, Any]) -> tuple[Any, ...]:
    """(eventType, classifier, code, UN/LOCODE, mode of transport) of an event."""
    payload = event["payload"]
    call = payload.get("transportCall") or {}
    location = call.get("location") or payload.get("eventLocation") or {}
    return (
        event["metadata"]["eventType"],
        payload["eventClassifierCode"],
        payload.get("equipmentEventTypeCode") or payload.get("transportEventTypeCode"),
        location.get("UNLocationCode"),
        call.get("modeOfTransport"),
    )


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


def journey(client: FlaskClient, people: Actors) -> dict[str, Any]:
    """BOX from Hong Kong by barge to Nansha, by truck to the rail terminal, by rail to Guangzhou Dalang (a broken
    seal: re-inspected and resealed there) and on to Changsha, where it is inspected and released."""
    declaration = ok(declare(client, people.forwarder, reference="DCSA-1", containers=[box(BOX)]))
    start = now() - timedelta(hours=30)

    def at(hours: float) -> str:
        return iso(start + timedelta(hours=hours))

    steps: list[dict[str, Any]] = [
        {"node": "HKHKG", "activity": "depart", "to_mode": "barge", "vehicle": "WATERBUS 7", "event_time": at(0)},
        {"node": "CNNSA", "activity": "arrive", "from_mode": "barge", "event_time": at(3)},
        {"node": "CNNSA", "activity": "depart", "to_mode": "road", "vehicle": "YUE-A12345", "event_time": at(5)},
        {"node": "CNNSA-RLS", "activity": "transship", "from_mode": "road", "to_mode": "rail", "event_time": at(6)},
    ]
    for step in steps:
        ok(transfer(client, people.operator, container=BOX, **step))
    seals = [{"number": CUSTOMS_SEAL, "condition": "broken"}, CARRIER_SEAL]
    held = ok(
        transfer(
            client,
            people.operator,
            container=BOX,
            node="CNGGZ-DLG",
            activity="arrive",
            from_mode="rail",
            seals=seals,
            event_time=at(8),
        )
    )
    assert held["decision"] == "reinspect"
    ok(inspect(client, people.guangzhou, container=BOX, node="CNGGZ-DLG", seals_applied=["GZ-RESEAL-1"]))
    later = now() + timedelta(minutes=1)
    ok(
        transfer(
            client,
            people.operator,
            container=BOX,
            node="CNGGZ-DLG",
            activity="depart",
            to_mode="rail",
            vehicle="X8042",
            seals=["GZ-RESEAL-1"],
            event_time=iso(later),
        )
    )
    arrival = ok(
        transfer(
            client,
            people.operator,
            container=BOX,
            node="CNCSH",
            activity="arrive",
            from_mode="rail",
            seals=["GZ-RESEAL-1"],
            event_time=iso(later + timedelta(minutes=2)),
        )
    )
    assert arrival["decision"] == "inspect"
    ok(inspect(client, people.changsha, container=BOX, node="CNCSH"))
    return declaration


def test_a_journey_appears_with_the_right_codes_seals_and_locodes(client: FlaskClient, people: Actors) -> None:
    journey(client, people)
    events = feed(client, people.forwarder, f"equipmentReference={BOX}")
    assert_dcsa(events)
    actual = [summary(e) for e in events if e["payload"]["eventClassifierCode"] == "ACT"]
    assert actual == [
        ("EQUIPMENT", "ACT", "LOAD", "HKHKG", "BARGE"),
        ("TRANSPORT", "ACT", "DEPA", "HKHKG", "BARGE"),
        ("TRANSPORT", "ACT", "ARRI", "CNNSA", "BARGE"),
        ("EQUIPMENT", "ACT", "DISC", "CNNSA", "BARGE"),
        ("EQUIPMENT", "ACT", "GTOT", "CNNSA", "TRUCK"),
        ("EQUIPMENT", "ACT", "GTIN", "CNNSA", "TRUCK"),
        ("EQUIPMENT", "ACT", "LOAD", "CNNSA", "RAIL"),
        ("TRANSPORT", "ACT", "ARRI", "CNGGZ", "RAIL"),
        ("EQUIPMENT", "ACT", "DISC", "CNGGZ", "RAIL"),
        ("EQUIPMENT", "ACT", "CUSI", "CNGGZ", None),
        ("EQUIPMENT", "ACT", "INSP", "CNGGZ", None),
        ("EQUIPMENT", "ACT", "RSEA", "CNGGZ", None),
        ("EQUIPMENT", "ACT", "CUSR", "CNGGZ", None),
        ("EQUIPMENT", "ACT", "LOAD", "CNGGZ", "RAIL"),
        ("TRANSPORT", "ACT", "DEPA", "CNGGZ", "RAIL"),
        ("TRANSPORT", "ACT", "ARRI", "CNCSH", "RAIL"),
        ("EQUIPMENT", "ACT", "DISC", "CNCSH", "RAIL"),
        ("EQUIPMENT", "ACT", "CUSI", "CNCSH", None),
        ("EQUIPMENT", "ACT", "INSP", "CNCSH", None),
        ("EQUIPMENT", "ACT", "CUSR", "CNCSH", None),
    ]
    by_code = {(summary(e)[2], summary(e)[3]): e["payload"] for e in events if summary(e)[1] == "ACT"}
    # The seals put on at origin, with their DCSA source and type; a broken seal is no longer on the box.
    assert by_code[("DISC", "CNNSA")]["seals"] == [
        {"number": CUSTOMS_SEAL, "source": "CUS", "type": "BLT"},
        {"number": CARRIER_SEAL, "source": "CUS", "type": "BLT"},
    ]
    assert by_code[("DISC", "CNGGZ")]["seals"] == [{"number": CARRIER_SEAL, "source": "CUS", "type": "BLT"}]
    assert by_code[("RSEA", "CNGGZ")]["seals"] == [{"number": "GZ-RESEAL-1", "source": "CUS", "type": "BLT"}]
    transshipped = [p for (code, node), p in by_code.items() if node == "CNNSA" and code in {"GTIN", "LOAD"}]
    assert [p["isTransshipmentMove"] for p in transshipped] == [True, True]
    assert by_code[("DISC", "CNNSA")]["isTransshipmentMove"] is False
    # The rail terminal's own code is kept in the transport call; its facility type is a ramp.
    load = by_code[("LOAD", "CNNSA")]["transportCall"]
    assert load["transportCallReference"].startswith("CNNSA-RLS:RAIL")
    assert load["facilityTypeCode"] == "RAMP"
    assert by_code[("GTOT", "CNNSA")]["transportCall"]["licencePlate"] == "YUE-A12345"
    assert by_code[("LOAD", "HKHKG")]["transportCall"]["barge"] == {"name": "WATERBUS 7"}
    assert by_code[("DEPA", "CNGGZ")]["transportCall"]["railService"] == "X8042"
    assert by_code[("CUSI", "CNGGZ")]["eventLocation"] == {
        "locationType": "UNLO",
        "locationName": "Guangzhou Dalang rail freight station",
        "UNLocationCode": "CNGGZ",
    }
    for event in events:
        payload = event["payload"]
        assert payload["relatedDocumentReferences"] == [{"type": "CUC", "value": "DCSA-1"}]
        if event["metadata"]["eventType"] == "EQUIPMENT":
            assert payload["equipmentReference"] == BOX
            assert payload["emptyIndicatorCode"] == "LADEN"
        else:
            assert payload["references"] == [{"type": "EQ", "value": BOX}]
        assert event["metadata"]["publisherRole"] == "VSP"
    # The plan made at declaration: an arrival at every node after the origin.
    planned = [summary(e) for e in events if e["payload"]["eventClassifierCode"] == "PLN"]
    assert [(kind, code, node) for kind, _, code, node, _ in planned] == [
        ("TRANSPORT", "ARRI", code[:5]) for code in ITINERARY[1:]
    ]
    # Released: nothing is estimated any more.
    assert not [e for e in events if e["payload"]["eventClassifierCode"] == "EST"]
    created = [parse_time(e["metadata"]["eventCreatedDateTime"]) for e in events]
    assert created == sorted(created)
    assert len({e["metadata"]["eventID"] for e in events}) == len(events)
    assert feed(client, people.forwarder, f"equipmentReference={BOX}") == events


def test_a_box_in_transit_has_estimates_from_its_latest_event(client: FlaskClient, people: Actors) -> None:
    ok(declare(client, people.forwarder, reference="DCSA-2", containers=[box(BOX)]))
    ok(transfer(client, people.operator, container=BOX, node="HKHKG", activity="depart", to_mode="barge"))
    last = ok(transfer(client, people.operator, container=BOX, node="CNNSA", activity="arrive", from_mode="barge"))
    events = feed(client, people.forwarder, f"equipmentReference={BOX}")
    assert_dcsa(events)
    estimated = [e for e in events if e["payload"]["eventClassifierCode"] == "EST"]
    eta = ok(client.get(f"/api/v1/containers/{BOX}/eta", headers=people.forwarder), 200)
    assert [
        (e["payload"]["transportCall"]["transportCallReference"].split(":")[0], e["payload"]["eventDateTime"])
        for e in estimated
    ] == [(s["node"], s["eta"]) for s in eta["stops"]]
    assert [s["node"] for s in eta["stops"]] == ITINERARY[2:]
    arrival = next(e for e in events if summary(e)[:3] == ("EQUIPMENT", "ACT", "DISC"))
    assert {e["metadata"]["eventCreatedDateTime"] for e in estimated} == {arrival["metadata"]["eventCreatedDateTime"]}
    assert last["decision"] == "release"


def test_filters_and_pages(client: FlaskClient, people: Actors) -> None:
    journey(client, people)
    everything = feed(client, people.forwarder)
    assert everything == feed(client, people.forwarder, f"equipmentReference={BOX}")
    assert feed(client, people.forwarder, "limit=3") == everything
    first = client.get("/api/v1/dcsa/v3/events?limit=3", headers=people.forwarder)
    assert len(first.get_json()) == 3
    assert "cursor=" in first.headers["Next-Page"]

    transport = feed(client, people.forwarder, "eventTypes=TRANSPORT")
    assert transport
    assert all(e["metadata"]["eventType"] == "TRANSPORT" for e in transport)
    assert feed(client, people.forwarder, "eventType=TRANSPORT") == transport
    customs = feed(client, people.forwarder, "equipmentEventTypeCodes=CUSI,CUSR")
    assert [summary(e)[2:4] for e in customs] == [
        ("CUSI", "CNGGZ"),
        ("CUSR", "CNGGZ"),
        ("CUSI", "CNCSH"),
        ("CUSR", "CNCSH"),
    ]
    assert {summary(e)[3] for e in feed(client, people.forwarder, "UNLocationCode=CNCSH")} == {"CNCSH"}
    arrivals = feed(client, people.forwarder, "transportEventTypeCodes=ARRI&eventTypes=TRANSPORT")
    assert {summary(e)[2] for e in arrivals} == {"ARRI"}

    inspected = next(e for e in everything if summary(e)[2:4] == ("INSP", "CNGGZ"))
    since = inspected["metadata"]["eventCreatedDateTime"]
    recent = feed(client, people.forwarder, f"eventCreatedDateTime:gte={since}")
    assert recent == [e for e in everything if parse_time(e["metadata"]["eventCreatedDateTime"]) >= parse_time(since)]
    assert recent[0]["metadata"]["eventID"] == inspected["metadata"]["eventID"]
    older = feed(client, people.forwarder, f"eventCreatedDateTime:lt={since}")
    assert older + recent == everything
    # The same instant written in Beijing time selects the same events.
    local = parse_time(since).astimezone(timezone(timedelta(hours=8))).isoformat()
    assert feed(client, people.forwarder, f"eventCreatedDateTime:gte={quote(local)}") == recent

    for query in (
        "eventTypes=PARCEL",
        "equipmentEventTypeCodes=LOAD,FLY",
        "limit=0",
        "cursor=abc",
        "UNLocationCode=X",
        "eventDateTime:gte=0001-01-01T00:00:00%2B01:00",
    ):
        response = client.get(f"/api/v1/dcsa/v3/events?{query}", headers=people.forwarder)
        assert response.status_code == 422, query
        assert response.content_type == "application/problem+json"


def test_the_callers_scope_applies(client: FlaskClient, people: Actors) -> None:
    journey(client, people)
    assert feed(client, people.other_forwarder) == []
    outsider = bearer(make_key(client, name="Shekou", role="operator", nodes=["CNSHK"]))
    assert feed(client, outsider) == []
    assert feed(client, people.operator, f"equipmentReference={BOX}")
    assert client.get("/api/v1/dcsa/v3/events").status_code == 401
