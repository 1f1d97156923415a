"""The HTTP conventions of the contract: health, problem+json errors, auth, keys, limits, OpenAPI."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from api import create_app
from api.extensions import db
from tests.conftest import ADMIN_TOKEN, TestDatabase, bearer, make_key
from tracking.access import hash_token
from tracking.models import ApiKey, Party


def test_health_needs_no_token(client: FlaskClient) -> None:
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
def test_no_or_bad_token_is_401(client: FlaskClient, headers: dict[str, str]) -> None:
    response = client.post("/api/v1/keys", json={"name": "x", "role": "admin"}, headers=headers)
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="railsea"'
    body = response.get_json()
    assert body["status"] == 401
    assert {"type", "title", "detail"} <= set(body)


def test_admin_creates_keys_that_are_stored_hashed(app: Flask, client: FlaskClient, admin: dict) -> None:
    response = client.post(
        "/api/v1/keys", json={"name": "Ocean Forwarding", "role": "forwarder", "party": "OCEANFWD"}, headers=admin
    )
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "token"}
    with app.app_context():
        key = db.session.get(ApiKey, body["id"])
        assert key is not None
        assert key.token_hash == hash_token(body["token"])
        assert body["token"] not in (key.token_hash, key.prefix)
        assert db.session.scalar(select(Party.code)) == "OCEANFWD"


def test_a_non_admin_creating_a_key_is_403(client: FlaskClient) -> None:
    forwarder = make_key(client, name="Ocean", role="forwarder", party="OCEANFWD")
    response = client.post("/api/v1/keys", json={"name": "x", "role": "admin"}, headers=bearer(forwarder))
    assert response.status_code == 403
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "s", "role": "supervisor", "offices": ["CN-NOWHERE"]}, "offices"),
        ({"name": "o", "role": "operator", "nodes": ["CNZZZ"]}, "nodes"),
        ({"name": "o", "role": "operator"}, "nodes"),
        ({"name": "f", "role": "forwarder"}, "party"),
        ({"name": "x", "role": "emperor"}, "role"),
        ({"role": "admin"}, "name"),
    ],
)
def test_key_scopes_must_name_known_things(
    app: Flask, client: FlaskClient, admin: dict, body: dict, field: str
) -> None:
    response = client.post("/api/v1/keys", json=body, headers=admin)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    with app.app_context():
        assert db.session.scalar(select(ApiKey.id)) is None


def test_scoped_keys_authenticate(client: FlaskClient) -> None:
    supervisor = make_key(client, name="Nansha customs", role="supervisor", offices=["CN-GUANGZHOU"])
    assert client.get("/api/v1/nodes", headers=bearer(supervisor)).status_code == 200


def revoke(app: Flask, token: str) -> None:
    with db.new_session(app=app) as session:
        key = session.scalars(select(ApiKey).where(ApiKey.token_hash == hash_token(token))).one()
        key.revoked_at = datetime.now(UTC)
        session.commit()


def test_a_revoked_key_is_refused_once_the_workers_trust_in_it_runs_out(app: Flask, client: FlaskClient) -> None:
    app.extensions["railsea_principals"].max_age_s = 0.3  # AUTH_CACHE_S, 1 s by default
    operator = make_key(client, name="Nansha gate", role="operator", nodes=["CNNSA"])
    assert client.get("/api/v1/me", headers=bearer(operator)).status_code == 200
    revoke(app, operator)
    # Looked up a moment ago: trusted for at most AUTH_CACHE_S, then looked up again and refused.
    time.sleep(0.35)
    response = client.get("/api/v1/me", headers=bearer(operator))
    assert response.status_code == 401
    assert "revoked" in response.get_json()["detail"]


def test_an_admin_revokes_a_key_and_this_worker_refuses_it(app: Flask, client: FlaskClient, admin: dict) -> None:
    created = client.post(
        "/api/v1/keys", json={"name": "Nansha gate", "role": "operator", "nodes": ["CNNSA"]}, headers=admin
    ).get_json()
    assert client.get("/api/v1/me", headers=bearer(created["token"])).status_code == 200  # now trusted for a second
    operator = bearer(created["token"])
    assert client.delete(f"/api/v1/keys/{created['id']}", headers=operator).status_code == 403
    response = client.delete(f"/api/v1/keys/{created['id']}", headers=admin)
    assert response.status_code == 204
    assert response.data == b""
    refused = client.get("/api/v1/me", headers=operator)
    assert refused.status_code == 401
    assert refused.content_type == "application/problem+json"
    assert client.delete(f"/api/v1/keys/{created['id']}", headers=admin).status_code == 204  # revoked already
    missing = client.delete("/api/v1/keys/999999", headers=admin)
    assert missing.status_code == 404
    assert missing.content_type == "application/problem+json"
    with app.app_context():
        key = db.session.get(ApiKey, created["id"])
        assert key is not None
        assert key.revoked_at is not None


def test_without_the_auth_cache_a_revoked_key_is_refused_at_once(app: Flask, database: TestDatabase) -> None:
    uncached = create_app(
        {"TESTING": True, "DATABASE_URL": database.url, "ADMIN_TOKEN": ADMIN_TOKEN, "AUTH_CACHE_S": 0}
    )
    client = uncached.test_client()
    operator = make_key(client, name="Nansha gate", role="operator", nodes=["CNNSA"])
    assert client.get("/api/v1/me", headers=bearer(operator)).status_code == 200
    revoke(uncached, operator)
    assert client.get("/api/v1/me", headers=bearer(operator)).status_code == 401
    uncached.extensions["railsea_db"].dispose()


def test_an_oversized_body_is_413_before_it_is_read(client: FlaskClient, admin: dict) -> None:
    response = client.post(
        "/api/v1/keys", data=b"[" + b"1," * 1_200_000 + b"1]", headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.content_type == "application/problem+json"


def test_malformed_json_is_400(client: FlaskClient, admin: dict) -> None:
    response = client.post("/api/v1/keys", data="{oops", headers={**admin, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.content_type == "application/problem+json"


def test_a_body_that_is_not_json_is_415(client: FlaskClient, admin: dict) -> None:
    response = client.post("/api/v1/keys", data="name=x", headers={**admin, "Content-Type": "text/plain"})
    assert response.status_code == 415


def test_405_keeps_its_allow_header(client: FlaskClient) -> None:
    response = client.delete("/api/v1/health")
    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]
    assert response.content_type == "application/problem+json"


def test_unknown_path_is_404_problem(client: FlaskClient) -> None:
    response = client.get("/api/v1/nowhere")
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"


def test_openapi_31_documents_problem_json_and_bearer_auth(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "application/problem+json" in spec["components"]["responses"]["DEFAULT_ERROR"]["content"]
    assert {"/api/v1/health", "/api/v1/nodes", "/api/v1/nodes/{code}", "/api/v1/legs", "/api/v1/keys"} <= set(
        spec["paths"]
    )


def test_docs_ui_is_served_from_local_files(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert f"/api/docs/assets/{asset}" in html
        with client.get(f"/api/docs/assets/{asset}") as response:
            assert response.status_code == 200
