"""A read replica: with `DATABASE_REPLICA_URL` set, GET requests and route planning read there, writes stay on the
primary. The "replica" here is a second database that replication has not reached yet, so where a read was served
is visible in its answer (bench/scaleout.py shows a real PostgreSQL streaming replica)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

import migrations
from api import create_app
from routing.db import make_engine
from routing.reference import ReferenceData
from tests.api.test_network import NEW_NODE
from tests.conftest import ADMIN_TOKEN, TestDatabase, _load, backend_url, bearer, reset


@pytest.fixture(scope="module")
def replica_url(database: TestDatabase, reference: ReferenceData, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = backend_url(database.backend, tmp_path_factory.mktemp("replica"), "replica")
    engine = make_engine(url)
    migrations.upgrade(engine)
    _load(engine, reference)
    engine.dispose()
    return url


@pytest.fixture
def replicated(database: TestDatabase, reference: ReferenceData, replica_url: str) -> Iterator[Flask]:
    reset(database, reference)
    app = create_app(
        {"TESTING": True, "DATABASE_URL": database.url, "DATABASE_REPLICA_URL": replica_url, "ADMIN_TOKEN": ADMIN_TOKEN}
    )
    yield app
    app.extensions["railsea_db"].dispose()


def test_writes_go_to_the_primary_and_reads_to_the_replica(replicated: Flask, replica_url: str) -> None:
    client: FlaskClient = replicated.test_client()
    admin = bearer(ADMIN_TOKEN)
    created = client.post("/api/v1/nodes", json=NEW_NODE, headers=admin)
    assert created.status_code == 201, created.get_json()
    # Not replicated yet: the read is answered by the replica, which does not hold the node.
    assert client.get("/api/v1/nodes/CNQZH-DPT").status_code == 404
    # The primary has it: writing it again conflicts there.
    assert client.post("/api/v1/nodes", json=NEW_NODE, headers=admin).status_code == 409

    # Once the row reaches the replica, reads see it.
    replica = create_app({"TESTING": True, "DATABASE_URL": replica_url, "ADMIN_TOKEN": ADMIN_TOKEN})
    assert replica.test_client().post("/api/v1/nodes", json=NEW_NODE, headers=admin).status_code == 201
    replica.extensions["railsea_db"].dispose()
    feature = client.get("/api/v1/nodes/CNQZH-DPT").get_json()
    assert feature["properties"]["customs_office"] == "CN-NANNING"


def test_route_planning_reads_from_the_replica(replicated: Flask, tmp_path: Path) -> None:
    client: FlaskClient = replicated.test_client()
    admin = bearer(ADMIN_TOKEN)
    assert client.post("/api/v1/nodes", json=NEW_NODE, headers=admin).status_code == 201
    # The primary knows the node, the replica not yet: planning from it is refused: unknown node.
    planned = client.post("/api/v1/routes", json={"origin": "CNQZH-DPT", "destination": "CNNSA"}, headers=admin)
    assert planned.status_code == 422, planned.get_json()
    assert "CNQZH-DPT" in str(planned.get_json())
    assert (
        client.post("/api/v1/routes", json={"origin": "CNCSH", "destination": "CNNSA"}, headers=admin).status_code
        == 200
    )
