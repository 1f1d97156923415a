"""API keys: admins create them; the token is shown once and stored hashed."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint
from marshmallow import validate

from api.auth import roles
from api.extensions import db
from api.fields import NodeCode, OfficeCode, Text
from api.transaction import transaction
from tracking.access import create_key
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


@blp.route("/keys", methods=["POST"])
@transaction
@blp.arguments(KeyCreate)
@blp.response(201, KeyCreated)
@blp.alt_response(403, response="FORBIDDEN")
@roles(Role.ADMIN)
def create(data: dict[str, Any]) -> dict[str, Any]:
    """Create an API key (admin)"""
    key, token = create_key(db.session, **data)
    return {"id": key.id, "token": token}
