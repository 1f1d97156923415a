"""API keys: admins create them; the token is shown once and stored hashed."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import Response, after_this_request, current_app
from flask_smorest import Blueprint
from marshmallow import validate

from api.auth import Principals, principal, roles
from api.extensions import db
from api.fields import NodeCode, OfficeCode, Text
from api.transaction import transaction
from tracking.access import create_key, revoke_key
from tracking.clock import utcnow
from tracking.vocab import Role

blp = Blueprint("keys", __name__, url_prefix="/api/v1", description="API keys")


class KeyCreate(ma.Schema):
    name = Text(required=True, min_length=1, max_length=120)
    role = ma.fields.String(required=True, validate=validate.OneOf(list(Role)))
    party = Text(load_default=None, allow_none=True, max_length=64, min_length=1)
    nodes = ma.fields.List(NodeCode(), load_default=list, validate=validate.Length(max=500))
    offices = ma.fields.List(OfficeCode(), load_default=list, validate=validate.Length(max=100))


class KeyCreated(ma.Schema):
    id = ma.fields.Integer(required=True)
    token = ma.fields.String(required=True, metadata={"description": "shown this once; stored only hashed"})


class Me(ma.Schema):
    role = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    party = ma.fields.String(allow_none=True)
    nodes = ma.fields.List(ma.fields.String(), required=True)
    offices = ma.fields.List(ma.fields.String(), required=True)


@blp.route("/me", methods=["GET"])
@roles()
@blp.response(200, Me)
def me() -> dict[str, Any]:
    """Who the token belongs to: role and scope (the dashboard shows what the caller may do)"""
    who = principal()
    assert who is not None
    return {
        "role": str(who.role),
        "name": who.name,
        "party": who.party,
        "nodes": sorted(who.nodes),
        "offices": sorted(who.offices),
    }


@blp.route("/keys", methods=["POST"])
@roles(Role.ADMIN)
@transaction
@blp.arguments(KeyCreate)
@blp.response(201, KeyCreated)
@blp.alt_response(403, response="FORBIDDEN")
def create(data: dict[str, Any]) -> dict[str, Any]:
    """Create an API key (admin)"""
    key, token = create_key(db.session, **data)
    return {"id": key.id, "token": token}


@blp.route("/keys/<int:key_id>", methods=["DELETE"])
@roles(Role.ADMIN)
@transaction
@blp.response(204)
@blp.alt_response(404, response="NOT_FOUND")
def revoke(key_id: int) -> None:
    """Revoke an API key (admin): refused at once by this worker, by every other within RAILSEA_AUTH_CACHE_S"""
    revoke_key(db.session, key_id, utcnow())
    principals: Principals = current_app.extensions["railsea_principals"]

    @after_this_request
    def forget(response: Response) -> Response:  # once committed: a request meanwhile could trust it again
        principals.forget(key_id)
        return response
