"""A container's whole life: its evidence chain verifies offline, and random lives keep the customs invariants."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.cli import cli
from tests.api.helpers import (
    DESTINATION,
    ITINERARY,
    OFF_ITINERARY,
    STATUSES,
    Actors,
    actors,
    alerts,
    box,
    container_number,
    container_state,
    declare,
    inspect,
    ok,
    readings,
    seals_for,
    timeline,
    transfer,
)
from tracking.evidence import verify_chain
from tracking.models import Event

BOX = container_number(1)
FINAL = {"released", "refused"}


@pytest.fixture
def people(client: FlaskClient) -> Actors:
    return actors(client)


def evidence(client: FlaskClient, token: dict[str, str], number: str) -> dict[str, Any]:
    return ok(client.get(f"/api/v1/containers/{number}/evidence", headers=token), 200)


def recompute(entries: list[dict[str, Any]]) -> str:
    """Check every link from the published records alone, as anyone holding them would; the head."""
    prev = ""
    for index, entry in enumerate(entries):
        assert entry["prev_hash"] == prev, f"entry {index} does not link to the one before"
        digest = hashlib.sha256(prev.encode("utf-8") + rfc8785.dumps(entry["record"])).hexdigest()
        assert entry["hash"] == digest, f"entry {index}'s hash is not that of its record"
        prev = digest
    return prev


def eventful_life(client: FlaskClient, people: Actors) -> None:
    """BOX: released in Hong Kong, a broken seal at Nansha, moved while held, re-sealed, inspected, released."""
    ok(declare(client, people.forwarder, containers=[box(BOX)]))
    customs_seal, carrier_seal = seals_for(BOX)
    ok(transfer(client, people.operator, container=BOX, node="HKHKG"))
    broken = [*readings(customs_seal, condition="broken"), *readings(carrier_seal)]
    ok(transfer(client, people.operator, container=BOX, node="CNNSA", seals=broken))
    ok(transfer(client, people.operator, container=BOX, node="CNNSA-RLS", seals=broken))
    ok(inspect(client, people.guangzhou, container=BOX, node="CNNSA-RLS", seals_applied=["GZ-5001", "GZ-5002"]))
    ok(transfer(client, people.operator, container=BOX, node="CNGGZ-DLG", seals=["GZ-5001", "GZ-5002"]))
    ok(transfer(client, people.operator, container=BOX, node=DESTINATION, seals=["gz 5001", "gz 5002"]))
    ok(inspect(client, people.changsha, container=BOX, node=DESTINATION))


def test_the_evidence_chain_verifies_from_the_published_records_alone(client: FlaskClient, people: Actors) -> None:
    eventful_life(client, people)
    published = evidence(client, people.forwarder, BOX)
    assert published["valid"] is True
    entries = published["entries"]
    events = timeline(client, people.forwarder, BOX)
    assert len(entries) == len(events) == 8
    assert recompute(entries) == published["head"] == entries[-1]["hash"]

    records = [e["record"] for e in entries]
    assert [r["seq"] for r in records] == list(range(1, 9))
    assert {r["container"] for r in records} == {BOX}
    assert [(r["type"], r["node"], r.get("decision")) for r in records] == [
        ("declared", "HKHKG", None),
        ("transfer", "HKHKG", "release"),
        ("transfer", "CNNSA", "reinspect"),
        ("transfer", "CNNSA-RLS", "hold"),
        ("inspection", "CNNSA-RLS", "cleared"),
        ("transfer", "CNGGZ-DLG", "release"),
        ("transfer", DESTINATION, "inspect"),
        ("inspection", DESTINATION, "cleared"),
    ]
    assert records[2]["reasons"] == ["seal_broken"]
    # The same chain for every reader in scope.
    assert evidence(client, people.supervisor, BOX) == published
    assert verify_chain(entries).valid


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda e: e[2]["record"].update(decision="release", reasons=[]), id="decision-rewritten"),
        pytest.param(lambda e: e[1]["record"].update(node="CNYTN"), id="node-moved"),
        pytest.param(lambda e: e[0]["record"]["seals"].append({"number": "FAKE1"}), id="seal-added"),
        pytest.param(lambda e: e.pop(3), id="entry-removed"),
        pytest.param(lambda e: e.insert(2, e.pop(3)), id="entries-swapped"),
        pytest.param(lambda e: e[4].update(hash="0" * 64), id="hash-forged"),
    ],
)
def test_a_tampered_copy_fails_verification(client: FlaskClient, people: Actors, tamper: Any) -> None:
    eventful_life(client, people)
    published = evidence(client, people.forwarder, BOX)
    entries = copy.deepcopy(published["entries"])
    tamper(entries)
    result = verify_chain(entries)
    assert not result.valid
    assert result.first_bad_index is not None
    with pytest.raises(AssertionError):
        recompute(entries)
    assert verify_chain(published["entries"]).valid, "the published chain itself is untouched"


def test_a_truncated_copy_is_consistent_but_does_not_reach_the_published_head(
    client: FlaskClient, people: Actors
) -> None:
    eventful_life(client, people)
    published = evidence(client, people.forwarder, BOX)
    shorter = verify_chain(published["entries"][:-2])
    assert shorter.valid
    assert shorter.head != published["head"]


def railsea(app: Flask, *args: str) -> Result:
    return app.test_cli_runner().invoke(cli, list(args))


def test_evidence_tampered_in_the_database_is_reported(
    app: Flask, client: FlaskClient, people: Actors, tmp_path: Path
) -> None:
    eventful_life(client, people)
    published = evidence(client, people.forwarder, BOX)
    saved = tmp_path / "evidence.json"
    saved.write_text(json.dumps(published), encoding="utf-8")

    result = railsea(app, "evidence", "verify", BOX)
    assert result.exit_code == 0, result.output
    assert "valid" in result.output
    assert published["head"] in result.output
    assert railsea(app, "evidence", "verify", "--file", str(saved)).exit_code == 0

    with Session(app.extensions["railsea_db"].engine) as session:
        event = session.scalars(select(Event).order_by(Event.seq).offset(2).limit(1)).one()
        event.record = {**event.record, "decision": "release", "reasons": []}
        session.commit()

    after = evidence(client, people.forwarder, BOX)
    assert after["valid"] is False
    result = railsea(app, "evidence", "verify", BOX)
    assert result.exit_code == 1, result.output
    assert "INVALID at entry 2" in result.output

    tampered = copy.deepcopy(published)
    tampered["entries"][5]["record"]["node"] = "CNYTN"
    saved.write_text(json.dumps(tampered), encoding="utf-8")
    result = railsea(app, "evidence", "verify", "--file", str(saved))
    assert result.exit_code == 1, result.output
    assert "INVALID at entry 5" in result.output


# --- a stateful model of one container's life ---------------------------------------------------------------------


def test_random_lives_of_a_container_keep_the_customs_invariants(client: FlaskClient, admin: dict) -> None:
    people = actors(client)
    serials = itertools.count(1)

    class ContainerLife(RuleBasedStateMachine):
        """The model: status, the seals expected now, and how many alerts are unresolved."""

        def __init__(self) -> None:
            super().__init__()
            self.number = container_number(next(serials), owner="LIF")
            ok(declare(client, people.forwarder, reference=f"LIFE-{self.number}", containers=[box(self.number)]))
            self.expected = seals_for(self.number)
            self.status = "declared"
            self.location = ITINERARY[0]  # where the box is: inspections take place there
            self.unresolved = 0
            self.applied = itertools.count(1)

        @property
        def held(self) -> bool:
            return self.status in {"held", "awaiting_inspection"}

        def _transfer(self, node: str, seals: list[str], changed: bool) -> None:
            response = transfer(client, people.operator, container=self.number, node=node, seals=seals)
            if self.status in FINAL:
                assert response.status_code == 409, response.get_json()
                return
            decision = ok(response)["decision"]
            if self.held:
                assert decision == "hold", "a held container never gets release"
            elif changed:
                assert decision == "reinspect"
            else:
                assert decision == ("inspect" if node == DESTINATION else "release")
            self.unresolved += decision in {"hold", "reinspect"}
            self.status = {"hold": "held", "reinspect": "held", "inspect": "awaiting_inspection"}.get(
                decision, "in_transit"
            )
            self.location = node

        @rule(node=st.sampled_from(ITINERARY))
        def transfer_with_intact_seals(self, node: str) -> None:
            self._transfer(node, self.expected, changed=False)

        @rule(node=st.sampled_from(ITINERARY))
        def transfer_with_a_wrong_seal(self, node: str) -> None:
            self._transfer(node, [self.expected[0], "ZZ-999999"], changed=True)

        @rule(node=st.sampled_from(OFF_ITINERARY))
        def transfer_off_the_itinerary(self, node: str) -> None:
            self._transfer(node, self.expected, changed=True)

        def _inspect(self, node: str, result: str, seals: list[str]) -> None:
            response = inspect(
                client, people.supervisor, container=self.number, node=node, result=result, seals_applied=seals
            )
            if self.status in FINAL or node != self.location:
                assert response.status_code == 409, response.get_json()
                return
            body = ok(response)
            if result == "refused":
                self.status = "refused"
            else:
                self.status = "released" if node == DESTINATION else "in_transit"
            assert body["status"] == self.status
            if seals:
                self.expected = seals
            self.unresolved = 0

        @rule(node=st.sampled_from([*ITINERARY[:-1], *OFF_ITINERARY]))
        def inspection_cleared_elsewhere_with_new_seals(self, node: str) -> None:
            self._inspect(node, "cleared", [f"RS-{self.number[4:10]}-{next(self.applied)}"])

        @rule(result=st.sampled_from(["cleared", "refused"]))
        def inspection_at_the_inspection_node(self, result: str) -> None:
            self._inspect(DESTINATION, result, [])

        @invariant()
        def status_is_the_models(self) -> None:
            state = container_state(client, admin, self.number)
            assert state["status"] in STATUSES
            assert state["status"] == self.status
            assert state["held"] == self.held
            if self.status not in FINAL:
                assert sorted(state["expected_seals"]) == sorted(self.expected)

        @invariant()
        def evidence_chain_is_valid(self) -> None:
            published = evidence(client, admin, self.number)
            assert published["valid"] is True
            assert recompute(published["entries"]) == published["head"]
            assert len(published["entries"]) == len(timeline(client, admin, self.number))

        @invariant()
        def open_alerts_are_the_unresolved_alerts(self) -> None:
            listed = alerts(client, admin, f"container={self.number}")
            unresolved = [a for a in listed if a["status"] != "resolved"]
            assert container_state(client, admin, self.number)["open_alerts"] == len(unresolved) == self.unresolved

    run_state_machine_as_test(
        ContainerLife,
        settings=settings(
            max_examples=15,
            stateful_step_count=12,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
