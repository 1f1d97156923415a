"""EPCIS 2.0: a container's custody chain as an EPCISDocument of ordered ObjectEvents, checked against the standard.

The schema is transcribed from the stored GS1 standard (repository gs1/EPCIS): the event fields, `action`, the
`eventTimeZoneOffset` pattern and `readPoint`/`bizTransaction` shapes from EPCIS-JSON-Schema.json (whose drafts
still say `isA`; EPCIS 2.0 and JSON-LD-Context/epcis-context-root.jsonld say `type`), the business steps from
JSON-LD-Context/cbv-context-bizstep.jsonld and the dispositions from JSON-LD-Context/cbv-context-disposition.jsonld.
Extension fields are allowed only under the `railsea:` prefix the document declares.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from flask.testing import FlaskClient

from tests.api.helpers import (
    Actors,
    actors,
    box,
    container_number,
    declare,
    inspect,
    ok,
    parse_time,
    seals_for,
    timeline,
    transfer,
)

BOX = container_number(71)
CUSTOMS_SEAL, CARRIER_SEAL = seals_for(BOX)

BIZ_STEPS = [
    "accepting", "arriving", "assembling", "collecting", "commissioning", "consigning", "creating_class_instance",
    "cycle_counting", "decommissioning", "departing", "destroying", "disassembling", "dispensing", "encoding",
    "entering_exiting", "holding", "inspecting", "installing", "killing", "loading", "other", "packing", "picking",
    "receiving", "removing", "repackaging", "repairing", "replacing", "reserving", "retail_selling", "sampling",
    "sensor_reporting", "shipping", "staging_outbound", "stock_taking", "stocking", "storing", "transporting",
    "unloading", "unpacking", "void_shipping",
]  # fmt: skip
DISPOSITIONS = [
    "active", "available", "completeness_verified", "completeness_inferred", "conformant", "container_closed",
    "container_open", "damaged", "destroyed", "dispensed", "disposed", "encoded", "expired", "in_progress",
    "in_transit", "inactive", "mismatch_instance", "mismatch_class", "mismatch_quantity", "needs_replacement",
    "no_pedigree_match", "non_conformant", "non_sellable_other", "partially_dispensed", "recalled", "reserved",
    "retail_sold", "returned", "sellable_accessible", "sellable_not_accessible", "stolen", "unavailable", "unknown",
]  # fmt: skip
BIZ_TRANSACTION_TYPES = ["bol", "cert", "desadv", "inv", "pedigree", "po", "poc", "prodorder", "recadv", "rma"]
BIZ_TRANSACTION_TYPES += ["testprd", "testres", "upevt"]
URI = {"type": "string", "format": "uri"}
DATE_TIME = {"type": "string", "format": "date-time"}
LOCATION = {"type": "object", "properties": {"id": URI}, "required": ["id"], "additionalProperties": False}
OBJECT_EVENT = {
    "type": "object",
    "properties": {
        "type": {"const": "ObjectEvent"},
        "eventID": URI,
        "eventTime": DATE_TIME,
        "recordTime": DATE_TIME,
        "eventTimeZoneOffset": {"type": "string", "pattern": "^([+]|[-])((0[0-9]|1[0-3]):([0-5][0-9])|14:00)$"},
        "epcList": {"type": "array", "items": URI},
        "action": {"enum": ["OBSERVE", "ADD", "DELETE"]},
        "bizStep": {"enum": BIZ_STEPS},
        "disposition": {"enum": DISPOSITIONS},
        "readPoint": LOCATION,
        "bizLocation": LOCATION,
        "bizTransactionList": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"type": {"anyOf": [{"enum": BIZ_TRANSACTION_TYPES}, URI]}, "bizTransaction": URI},
                "required": ["bizTransaction"],
                "additionalProperties": False,
            },
        },
    },
    "patternProperties": {"^railsea:": {}},
    "required": ["type", "eventTime", "eventTimeZoneOffset", "action", "epcList"],
    "additionalProperties": False,
}
DOCUMENT = {
    "type": "object",
    "properties": {
        "@context": {"type": "array"},
        "type": {"const": "EPCISDocument"},
        "schemaVersion": {"const": "2.0"},
        "creationDate": DATE_TIME,
        "epcisBody": {
            "type": "object",
            "properties": {"eventList": {"type": "array", "items": OBJECT_EVENT}},
            "required": ["eventList"],
            "additionalProperties": False,
        },
    },
    "required": ["@context", "type", "schemaVersion", "creationDate", "epcisBody"],
    "additionalProperties": False,
}
VALIDATOR = jsonschema_rs.Draft7Validator(DOCUMENT, validate_formats=True)


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


def test_a_journey_is_an_ordered_epcis_document(client: FlaskClient, people: Actors) -> None:
    declaration = ok(declare(client, people.forwarder, reference="EPCIS-1", containers=[box(BOX)]))
    ok(transfer(client, people.operator, container=BOX, node="HKHKG", activity="depart", to_mode="barge"))
    broken = [{"number": CUSTOMS_SEAL, "condition": "broken"}, CARRIER_SEAL]
    held = ok(
        transfer(
            client,
            people.operator,
            container=BOX,
            node="CNNSA",
            activity="transship",
            from_mode="barge",
            to_mode="rail",
            seals=broken,
        )
    )
    assert held["reasons"] == ["seal_broken"]
    ok(inspect(client, people.guangzhou, container=BOX, node="CNNSA", seals_applied=["GZ-RESEAL-2"]))
    ok(transfer(client, people.operator, container=BOX, node="CNGGZ-DLG", seals=["GZ-RESEAL-2"], activity="depart"))
    ok(transfer(client, people.operator, container=BOX, node="CNCSH", seals=["GZ-RESEAL-2"], from_mode="rail"))
    ok(inspect(client, people.changsha, container=BOX, node="CNCSH"))

    response = client.get(f"/api/v1/containers/{BOX}/epcis", headers=people.forwarder)
    document = ok(response, 200)
    assert response.headers["GS1-EPCIS-Version"] == "2.0.0"
    problems = [str(e) for e in VALIDATOR.iter_errors(document)]
    assert not problems, problems
    assert document["@context"][0] == "https://ref.gs1.org/standards/epcis/epcis-context.jsonld"
    assert document["@context"][1] == {"railsea": "https://railsea.example/voc/"}
    events = document["epcisBody"]["eventList"]

    def node_of(event: dict[str, Any]) -> str:
        return event["readPoint"]["id"].rsplit("/", 1)[1]

    assert [(e["action"], e["bizStep"], e["disposition"], node_of(e)) for e in events] == [
        ("ADD", "shipping", "container_closed", "HKHKG"),
        ("OBSERVE", "departing", "in_transit", "HKHKG"),
        ("OBSERVE", "unloading", "container_open", "CNNSA"),
        ("OBSERVE", "loading", "container_open", "CNNSA"),
        ("OBSERVE", "holding", "container_open", "CNNSA"),
        ("OBSERVE", "inspecting", "conformant", "CNNSA"),
        ("OBSERVE", "departing", "in_transit", "CNGGZ-DLG"),
        ("OBSERVE", "arriving", "container_closed", "CNCSH"),
        ("OBSERVE", "holding", "container_closed", "CNCSH"),
        ("OBSERVE", "inspecting", "conformant", "CNCSH"),
    ]
    times = [parse_time(e["eventTime"]) for e in events]
    assert times == sorted(times)
    recorded = timeline(client, people.forwarder, BOX)
    # Times are given to the millisecond.
    stored = {
        parse_time(e["event_time"]).replace(microsecond=parse_time(e["event_time"]).microsecond // 1000 * 1000)
        for e in recorded
    }
    assert sorted(stored) == sorted(set(times))
    for event in events:
        assert event["epcList"] == [f"urn:epc:id:bic:{BOX}"]
        # Hong Kong and the mainland keep UTC+8, and the event time is written in that local time.
        assert event["eventTimeZoneOffset"] == "+08:00"
        assert event["eventTime"].endswith("+08:00")
        assert event["bizTransactionList"] == [
            {
                "type": "railsea:customs_declaration",
                "bizTransaction": f"http://localhost/api/v1/declarations/{declaration['id']}",
            }
        ]
        assert event["eventID"].startswith("urn:uuid:")
    assert len({e["eventID"] for e in events}) == len(events)
    # Where the box stays, the read point is also its business location; after departing it has none.
    assert "bizLocation" not in events[1]
    assert events[2]["bizLocation"] == events[2]["readPoint"]
    assert [e.get("railsea:decision") for e in events[2:6]] == ["reinspect", "reinspect", "reinspect", "cleared"]
    # A read point is this API's URI of the node: it dereferences to the node.
    node = ok(client.get(events[2]["readPoint"]["id"].replace("http://localhost", ""), headers=people.forwarder), 200)
    assert node["id"] == "CNNSA"


def test_the_document_is_in_scope_only(client: FlaskClient, people: Actors) -> None:
    ok(declare(client, people.forwarder, reference="EPCIS-2", containers=[box(BOX)]))
    assert client.get(f"/api/v1/containers/{BOX}/epcis", headers=people.other_forwarder).status_code == 404
    assert client.get(f"/api/v1/containers/{BOX}/epcis").status_code == 401
    document = ok(client.get(f"/api/v1/containers/{BOX}/epcis", headers=people.supervisor), 200)
    assert [e["bizStep"] for e in document["epcisBody"]["eventList"]] == ["shipping"]
