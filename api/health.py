"""Liveness without authentication."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

blp = Blueprint("health", __name__, url_prefix="/api", description="Service health")


class Health(ma.Schema):
    status = ma.fields.String(required=True)


@blp.route("/v1/health", methods=["GET"])
@blp.response(200, Health)
@blp.doc(security=[])
def health() -> dict[str, Any]:
    """Liveness: 200 when the service answers"""
    return {"status": "ok"}
