"""Webhook subscriptions: forwarders, supervisors and admins subscribe a URL to alert and container events."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app
from flask_smorest import Blueprint
from marshmallow import validate

from api.auth import principal, roles
from api.extensions import db
from api.schemas import Paging
from api.transaction import transaction
from tracking import webhooks
from tracking.access import Principal
from tracking.clock import rfc3339, utcnow
from tracking.models import OutboxMessage, Subscription
from tracking.vocab import Role

blp = Blueprint(
    "subscriptions",
    __name__,
    url_prefix="/api/v1",
    description="Webhook subscriptions: signed POSTs (Standard Webhooks) of alerts and container events in the "
    "caller's scope, retried with backoff",
)

EVENTS_HELP = (
    "`alert.<kind>` (e.g. `alert.seal_broken`), `container.<type>` (`declared`, `transfer`, `inspection`, "
    "`eseal_tamper`), or the wildcards `alert.*` and `container.*`"
)


class SubscriptionIn(ma.Schema):
    url = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=2000),
        metadata={"description": "http(s) URL whose host resolves to public addresses", "format": "uri"},
    )
    events = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=40), metadata={"enum": list(webhooks.EVENT_NAMES)}),
        required=True,
        validate=validate.Length(min=1, max=50),
        metadata={"description": EVENTS_HELP},
    )


class SubscriptionOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    url = ma.fields.String(required=True)
    events = ma.fields.List(ma.fields.String(), required=True)
    created_at = ma.fields.String(required=True)


class SubscriptionCreated(SubscriptionOut):
    secret = ma.fields.String(
        required=True,
        metadata={"description": "`whsec_` + base64 of the HMAC key; shown this once"},
    )


class Delivery(ma.Schema):
    id = ma.fields.String(required=True, metadata={"description": "the `webhook-id` the receiver gets"})
    type = ma.fields.String(required=True)
    status = ma.fields.String(required=True, metadata={"enum": [str(s) for s in webhooks.DeliveryStatus]})
    attempts = ma.fields.Integer(required=True)
    last_error = ma.fields.String(required=True, allow_none=True)
    created_at = ma.fields.String(required=True)
    next_attempt_at = ma.fields.String(required=True, allow_none=True)
    delivered_at = ma.fields.String(required=True, allow_none=True)


class SubscriptionDetail(SubscriptionOut):
    deliveries = ma.fields.List(
        ma.fields.Nested(Delivery), required=True, metadata={"description": "the most recent messages, newest first"}
    )


class SubscriptionPage(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(SubscriptionOut), required=True)
    next_cursor = ma.fields.String(required=True, allow_none=True)


def caller() -> Principal:
    who = principal()
    assert who is not None
    return who


def _subscription(item: Subscription) -> dict[str, Any]:
    return {"id": item.id, "url": item.url, "events": list(item.events), "created_at": rfc3339(item.created_at)}


def _delivery(message: OutboxMessage) -> dict[str, Any]:
    pending = message.status == webhooks.DeliveryStatus.PENDING
    return {
        "id": message.msg_id,
        "type": message.event_type,
        "status": message.status,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "created_at": rfc3339(message.created_at),
        "next_attempt_at": rfc3339(message.next_attempt_at) if pending else None,
        "delivered_at": rfc3339(message.delivered_at),
    }


SUBSCRIBERS = (Role.FORWARDER, Role.SUPERVISOR, Role.ADMIN)


@blp.route("/subscriptions", methods=["POST"])
@roles(*SUBSCRIBERS)
@transaction
@blp.arguments(SubscriptionIn)
@blp.response(201, SubscriptionCreated)
@blp.alt_response(403, response="FORBIDDEN")
def create(data: dict[str, Any]) -> dict[str, Any]:
    """Subscribe a URL to events in the caller's scope (forwarder, supervisor, admin); the secret is shown once"""
    subscription = webhooks.create_subscription(
        db.session,
        caller(),
        url=data["url"],
        events=data["events"],
        now=utcnow(),
        allow_private=bool(current_app.config["WEBHOOK_ALLOW_PRIVATE"]),
    )
    return {**_subscription(subscription), "secret": subscription.secret}


@blp.route("/subscriptions", methods=["GET"])
@roles(*SUBSCRIBERS)
@blp.arguments(Paging, location="query", as_kwargs=True, unknown=ma.RAISE)
@blp.response(200, SubscriptionPage)
@blp.alt_response(403, response="FORBIDDEN")
def index(limit: int, cursor: str | None) -> dict[str, Any]:
    """The caller's subscriptions (an admin's: all), newest first, without secrets"""
    page = webhooks.list_subscriptions(db.session, caller(), limit=limit, cursor=cursor)
    return {"items": [_subscription(s) for s in page.items], "next_cursor": page.next_cursor}


@blp.route("/subscriptions/<int:subscription_id>", methods=["GET"])
@roles(*SUBSCRIBERS)
@blp.response(200, SubscriptionDetail)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def show(subscription_id: int) -> dict[str, Any]:
    """One of the caller's subscriptions with its recent deliveries (status, attempts, last error)"""
    session = db.session
    subscription = webhooks.get_subscription(session, caller(), subscription_id)
    deliveries = webhooks.recent_deliveries(session, subscription)
    return {**_subscription(subscription), "deliveries": [_delivery(m) for m in deliveries]}


@blp.route("/subscriptions/<int:subscription_id>", methods=["DELETE"])
@roles(*SUBSCRIBERS)
@transaction
@blp.response(204)
@blp.alt_response(403, response="FORBIDDEN")
@blp.alt_response(404, response="NOT_FOUND")
def delete(subscription_id: int) -> None:
    """Delete a subscription; messages not yet delivered are dropped"""
    webhooks.delete_subscription(db.session, caller(), subscription_id, utcnow())
