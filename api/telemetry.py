"""E-seal telemetry in batches, and running a periodic job on demand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint
from marshmallow import validate
from werkzeug.exceptions import NotFound

from api.auth import principal, roles
from api.extensions import db
from api.transaction import transaction
from tracking import jobs, telemetry
from tracking.clock import utcnow
from tracking.vocab import Role

blp = Blueprint("telemetry", __name__, url_prefix="/api/v1", description="E-seal telemetry and periodic jobs")


class Batch(ma.Schema):
    # Readings are validated one by one in the domain, so one bad reading never rejects the batch.
    readings = ma.fields.List(
        ma.fields.Raw(),
        required=True,
        validate=validate.Length(min=1, max=telemetry.MAX_READINGS),
        metadata={
            "description": "[{device, container, time, lat, lon, sealed, battery_pct?}]",
            "items": {"type": "object"},
        },
    )


class Rejected(ma.Schema):
    index = ma.fields.Integer(required=True)
    errors = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()), required=True)


class Accepted(ma.Schema):
    accepted = ma.fields.Integer(required=True)
    rejected = ma.fields.List(ma.fields.Nested(Rejected), required=True)


class JobRun(ma.Schema):
    name = ma.fields.String(required=True)
    alerts_raised = ma.fields.Integer(required=True)


@blp.route("/telemetry", methods=["POST"])
@roles(Role.OPERATOR, Role.ADMIN)
@transaction
@blp.arguments(Batch)
@blp.response(202, Accepted)
def ingest(data: dict[str, Any]) -> dict[str, Any]:
    """A batch of up to 1,000 e-seal readings; a bad reading is rejected alone (operator, admin)"""
    who = principal()
    assert who is not None
    result = telemetry.ingest(
        db.session,
        who,
        data["readings"],
        utcnow(),
        corridor_km=float(current_app.config["CORRIDOR_WIDTH_KM"]),
        silent_after=timedelta(minutes=float(current_app.config["TELEMETRY_SILENT_AFTER_MIN"])),
    )
    return {"accepted": result.accepted, "rejected": result.rejected}


@blp.route("/jobs/<name>/run", methods=["POST"])
@roles(Role.ADMIN)
@transaction
@blp.response(200, JobRun)
@blp.alt_response(404, response="NOT_FOUND")
def run_job(name: str) -> dict[str, Any]:
    """Run one periodic job now (admin): overdue, telemetry_silent, dwell, webhooks, idempotency"""
    if name not in jobs.JOBS:
        raise NotFound(f"No job {name!r}; jobs: {', '.join(sorted(jobs.JOBS))}.")
    raised = jobs.run(db.session, name, utcnow())
    return {"name": name, "alerts_raised": raised or 0}
