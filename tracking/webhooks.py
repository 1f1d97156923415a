"""Webhooks: subscriptions, a transactional outbox, and the `webhooks` job that delivers it (Standard Webhooks).

- **Subscriptions** name a URL and the events wanted (`alert.<kind>`, `container.<event type>`, or the wildcards
  `alert.*` / `container.*`). They carry the scope of the key that created them: a forwarder's party, a supervisor's
  customs offices, or everything for an admin.
- **Enqueue.** `record_event` and `raise_alert` call `enqueue_container_event` / `enqueue_alert`, which add one
  `OutboxMessage` per matching subscription in the caller's transaction: a rolled-back transfer sends nothing, a
  committed one cannot lose its messages.
- **Delivery.** `deliver(session, now)` (registered as the job `webhooks`) claims due messages under a lease, commits
  the claim so no lock is held while it waits for receivers, POSTs each one signed per Standard Webhooks
  (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>`), and records the outcome: 2xx →
  `delivered`; anything else → retried with exponential backoff, `failed` after `MAX_ATTEMPTS`.
- **Targets.** Only http(s) URLs whose host resolves to public addresses, checked on creation and again on every
  delivery, where the address actually connected to is checked too (DNS may change between the two). Settings
  (`WEBHOOK_ALLOW_PRIVATE`, `WEBHOOK_TIMEOUT_S`) come from the app through `configure`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import http.client
import ipaddress
import json
import re
import secrets
import socket
import ssl
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from routing.errors import InvalidError, NotFoundError
from routing.models import Node
from tracking import jobs
from tracking.access import Principal
from tracking.clock import rfc3339, utcnow
from tracking.models import Alert, ApiKey, Container, Event, OutboxMessage, Subscription
from tracking.pagination import MAX_ID, Page, paginate
from tracking.vocab import AlertKind, EventType, Role

SECRET_PREFIX = "whsec_"
MSG_PREFIX = "msg_"
ALERT_EVENTS: tuple[str, ...] = tuple(f"alert.{kind}" for kind in AlertKind)
CONTAINER_EVENTS: tuple[str, ...] = tuple(f"container.{kind}" for kind in EventType)
WILDCARDS: tuple[str, ...] = ("alert.*", "container.*")
EVENT_NAMES: tuple[str, ...] = (*WILDCARDS, *ALERT_EVENTS, *CONTAINER_EVENTS)
SUBSCRIBER_ROLES = frozenset({Role.FORWARDER, Role.SUPERVISOR, Role.ADMIN})

# Delivery: a run takes at most BATCH due messages and sends up to WORKERS at a time. A claimed message is leased for
# LEASE (a crashed run's messages are retried after it). Failed attempts back off 30 s, 60 s, 120 s, ... (at most
# an hour); the MAX_ATTEMPTS-th failure gives up.
BATCH = 100
WORKERS = 8
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 6
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
RECENT_DELIVERIES = 20
_MAX_ERROR = 500
_MAX_READ = 64 * 1024
_USER_AGENT = "RailSea-Webhooks/1"
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after MAX_ATTEMPTS
    CANCELLED = "cancelled"  # its subscription was deleted before delivery


@dataclass(frozen=True, slots=True)
class Settings:
    """What the delivery job reads from the app's configuration."""

    allow_private: bool = False
    timeout_s: float = 5.0


_settings: Callable[[], Settings] = Settings


def configure(source: Callable[[], Settings]) -> None:
    """Where `deliver` reads its settings when none are passed (the app points it at its live config)."""
    global _settings
    _settings = source


def current_settings() -> Settings:
    return _settings()


# --- subscriptions ------------------------------------------------------------------------------------------------


def new_secret() -> str:
    """`whsec_` + base64 of 24 random bytes (Standard Webhooks' secret format)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def owner_of(principal: Principal) -> str:
    """The key a subscription belongs to (the bootstrap admin has no key)."""
    return f"key:{principal.key_id}" if principal.key_id is not None else "admin"


def check_events(events: Iterable[str]) -> list[str]:
    """The distinct event names in their given order; unknown names → InvalidError on `events`."""
    chosen = list(dict.fromkeys(events))
    unknown = [name for name in chosen if name not in EVENT_NAMES]
    if unknown:
        hint = "known: alert.*, container.*, alert.<alert kind>, container.<event type>"
        raise InvalidError(
            "Some event names are unknown.", {"events": [f"unknown event {n!r}; {hint}" for n in unknown]}
        )
    if not chosen:
        raise InvalidError("Name at least one event.", {"events": ["must not be empty"]})
    return chosen


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def target_problem(url: str, *, allow_private: bool) -> str | None:
    """Why `url` may not receive webhooks, or None: http(s) only, a host, no credentials, and (unless
    `allow_private`) every address the host resolves to public — not private, loopback, link-local or reserved."""
    if not url.isascii() or _SPACE_OR_CONTROL.search(url):
        return "must be ASCII without spaces or control characters (percent-encode, punycode hosts)"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    host = parts.hostname
    if not host:
        return "must name a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials"
    if allow_private:
        return None
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return f"host {host} does not resolve"
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if not _is_public(address):
            return f"host {host} resolves to {address}, a private, loopback, link-local or reserved address"
    return None


def create_subscription(
    session: Session, principal: Principal, *, url: str, events: Sequence[str], now: datetime, allow_private: bool
) -> Subscription:
    """A subscription in the caller's scope; its secret is in the returned row (show it this once)."""
    errors: dict[str, list[str]] = {}
    url = url.strip()
    problem = target_problem(url, allow_private=allow_private)
    if problem:
        errors["url"] = [problem]
    try:
        chosen = check_events(events)
    except InvalidError as exc:
        errors.update(exc.errors)
        chosen = []
    if errors:
        raise InvalidError("The subscription cannot be created with these values.", errors)
    subscription = Subscription(
        url=url,
        events=chosen,
        secret=new_secret(),
        owner=owner_of(principal),
        role=str(principal.role),
        party_id=principal.party_id if principal.role is Role.FORWARDER else None,
        offices=sorted(principal.offices) if principal.role is Role.SUPERVISOR else [],
        created_at=now,
    )
    session.add(subscription)
    session.flush()
    return subscription


def _mine(principal: Principal) -> Any:
    """Admins manage every subscription; everyone else the ones their key created."""
    active = Subscription.deleted_at.is_(None)
    return active if principal.is_admin else and_(active, Subscription.owner == owner_of(principal))


def list_subscriptions(
    session: Session, principal: Principal, *, limit: int, cursor: str | None = None
) -> Page[Subscription]:
    return paginate(session, select(Subscription).where(_mine(principal)), Subscription.id, limit=limit, cursor=cursor)


def get_subscription(session: Session, principal: Principal, subscription_id: int) -> Subscription:
    if not 0 < subscription_id <= MAX_ID:
        # Beyond the column's range: no such row (and SQLite, PostgreSQL would refuse the parameter).
        raise NotFoundError(f"No subscription {subscription_id}.")
    found = session.scalar(select(Subscription).where(Subscription.id == subscription_id, _mine(principal)))
    if found is None:
        raise NotFoundError(f"No subscription {subscription_id}.")
    return found


def recent_deliveries(
    session: Session, subscription: Subscription, limit: int = RECENT_DELIVERIES
) -> list[OutboxMessage]:
    return list(
        session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.subscription_id == subscription.id)
            .order_by(OutboxMessage.id.desc())
            .limit(limit)
        )
    )


def delete_subscription(session: Session, principal: Principal, subscription_id: int, now: datetime) -> None:
    """Soft delete; its undelivered messages are cancelled."""
    subscription = get_subscription(session, principal, subscription_id)
    subscription.deleted_at = now
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.subscription_id == subscription.id, OutboxMessage.status == str(DeliveryStatus.PENDING))
        .values(status=str(DeliveryStatus.CANCELLED), next_attempt_at=now)
    )
    session.flush()


# --- enqueue (in the transaction of the event) --------------------------------------------------------------------


def alert_data(alert: Alert, container_number: str) -> dict[str, Any]:
    """An alert as the API shows it (api/serialise.py's `alert`)."""
    return {
        "id": alert.id,
        "kind": alert.kind,
        "severity": alert.severity,
        "container": container_number,
        "node": alert.node,
        "office": alert.office,
        "reasons": list(alert.reasons or []),
        "status": alert.status,
        "created_at": rfc3339(alert.created_at),
        "detail": dict(alert.detail or {}),
        "acknowledged_at": rfc3339(alert.acknowledged_at),
        "resolved_at": rfc3339(alert.resolved_at),
        "resolution_note": alert.resolution_note,
    }


def _matches(subscription: Subscription, event_type: str) -> bool:
    family = event_type.partition(".")[0]
    wanted = subscription.events or []
    return event_type in wanted or f"{family}.*" in wanted


def _revoked_owners(session: Session, owners: set[str]) -> set[str]:
    key_ids = {int(owner[4:]) for owner in owners if owner.startswith("key:") and owner[4:].isdigit()}
    if not key_ids:
        return set()
    revoked = session.scalars(select(ApiKey.id).where(ApiKey.id.in_(sorted(key_ids)), ApiKey.revoked_at.is_not(None)))
    return {f"key:{key_id}" for key_id in revoked}


def _enqueue(
    session: Session,
    event_type: str,
    data: dict[str, Any],
    *,
    party_id: int,
    office: Callable[[], str | None],
    now: datetime,
) -> list[OutboxMessage]:
    """One pending message per active subscription that wants `event_type` and whose scope covers it."""
    candidates = [
        s
        for s in session.scalars(
            select(Subscription)
            .where(
                Subscription.deleted_at.is_(None),
                or_(
                    Subscription.role == str(Role.ADMIN),
                    Subscription.role == str(Role.SUPERVISOR),
                    and_(Subscription.role == str(Role.FORWARDER), Subscription.party_id == party_id),
                ),
            )
            .order_by(Subscription.id)
        )
        if _matches(s, event_type)
    ]
    if not candidates:
        return []
    revoked = _revoked_owners(session, {s.owner for s in candidates})
    office_code: str | None = None
    if any(s.role == Role.SUPERVISOR for s in candidates):
        office_code = office()
    payload = {"type": event_type, "timestamp": rfc3339(now), "data": data}

    def in_scope(s: Subscription) -> bool:
        if s.owner in revoked:
            return False
        return s.role != Role.SUPERVISOR or (office_code is not None and office_code in (s.offices or []))

    messages = [
        OutboxMessage(
            subscription_id=s.id,
            msg_id=MSG_PREFIX + uuid.uuid4().hex,
            event_type=event_type,
            payload=payload,
            status=str(DeliveryStatus.PENDING),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for s in candidates
        if in_scope(s)
    ]
    session.add_all(messages)
    if messages:
        session.flush()
    return messages


def _office_of(session: Session, node: str | None) -> str | None:
    if node is None:
        return None
    return session.scalar(select(Node.customs_office).where(Node.code == node))


def enqueue_alert(session: Session, number: str, alert: Alert) -> list[OutboxMessage]:
    """`alert.<kind>` for the forwarder of container `number`, the supervisors of the alert's office, and admins."""
    return _enqueue(
        session,
        f"alert.{alert.kind}",
        alert_data(alert, number),
        party_id=alert.party_id,
        office=lambda: alert.office,
        now=alert.created_at,
    )


def enqueue_container_event(session: Session, container: Container, event: Event) -> list[OutboxMessage]:
    """`container.<type>` with `{container, node, event: <evidence record>}`, for the container's forwarder, the
    supervisors of the event's node's office (without a node — an e-seal reading — where an alert would go: the
    box's location, else its inspection node) and admins."""
    declaration = container.declaration
    return _enqueue(
        session,
        f"container.{event.type}",
        {"container": container.number, "node": event.node, "event": dict(event.record)},
        party_id=declaration.party_id,
        office=lambda: _office_of(session, event.node or container.location or declaration.inspection_node),
        now=event.recorded_at,
    )


# --- delivery -----------------------------------------------------------------------------------------------------


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` keyed by the secret's bytes (after `whsec_`)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def backoff(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failure: 30 s × 2^(attempts-1), at most an hour."""
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def _check_peer(sock: socket.socket | None) -> None:
    if sock is None:
        return
    address = ipaddress.ip_address(sock.getpeername()[0])
    if not _is_public(address):
        sock.close()
        raise ConnectionRefusedError(f"connected to {address}, a private, loopback, link-local or reserved address")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    """Checks the address it actually connected to (before any byte is sent, or a TLS handshake)."""

    def connect(self) -> None:
        super().connect()
        _check_peer(self.sock)


class _GuardedHTTPSConnection(http.client.HTTPSConnection, _GuardedHTTPConnection):
    """HTTPSConnection.connect calls the guarded connect (MRO) before wrapping the socket in TLS."""


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guarded: bool) -> None:
        super().__init__()
        self._connection = _GuardedHTTPConnection if guarded else http.client.HTTPConnection

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying client context (loading the CA store once; contexts are safe to share between threads)."""
    return ssl.create_default_context()


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guarded: bool) -> None:
        self._tls = _tls_context()
        super().__init__(context=self._tls)
        self._connection = _GuardedHTTPSConnection if guarded else http.client.HTTPSConnection

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req, context=self._tls)


def _opener(allow_private: bool) -> urllib.request.OpenerDirector:
    """No proxies from the environment, no redirects followed, every status returned (not raised)."""
    opener = urllib.request.OpenerDirector()
    opener.add_handler(_HTTPHandler(guarded=not allow_private))
    opener.add_handler(_HTTPSHandler(guarded=not allow_private))
    return opener


@dataclass(frozen=True, slots=True)
class _Outgoing:
    id: int
    msg_id: str
    payload: dict[str, Any]
    url: str
    secret: str


def body_of(payload: dict[str, Any]) -> str:
    """The exact JSON text sent (and signed)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _post(message: _Outgoing, settings: Settings) -> str | None:
    """POST one message; None when the receiver answered 2xx, else why not."""
    problem = target_problem(message.url, allow_private=settings.allow_private)
    if problem:
        return f"url {problem}"
    body = body_of(message.payload)
    timestamp = int(utcnow().timestamp())
    request = urllib.request.Request(
        message.url,
        data=body.encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "webhook-id": message.msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(message.secret, message.msg_id, timestamp, body),
        },
    )
    try:
        with _opener(settings.allow_private).open(request, timeout=settings.timeout_s) as response:
            response.read(_MAX_READ)
            status = response.status
            reason = response.reason
    except Exception as exc:  # any failure to deliver is recorded and retried
        return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]
    if 200 <= status < 300:
        return None
    return f"HTTP {status} {reason}".strip()[:_MAX_ERROR]


def deliver(session: Session, now: datetime, *, settings: Settings | None = None, limit: int = BATCH) -> int:
    """The `webhooks` job: deliver due messages; returns how many were delivered (the jobs API reports the count
    as `alerts_raised`).

    Unlike other jobs it commits its claim before the HTTP calls, so no row lock (and on SQLite no database lock)
    is held while receivers answer: claimed messages get `next_attempt_at = now + LEASE`, so another run does not
    take them, and a run that dies is retried once the lease expires (delivery is at least once; receivers
    deduplicate on `webhook-id`). Outcomes are written in the caller's transaction.
    """
    settings = settings or current_settings()
    rows = session.execute(
        select(OutboxMessage, Subscription.url, Subscription.secret)
        .join(Subscription, OutboxMessage.subscription_id == Subscription.id)
        .where(
            OutboxMessage.status == str(DeliveryStatus.PENDING),
            OutboxMessage.next_attempt_at <= now,
            Subscription.deleted_at.is_(None),
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
        .with_for_update(of=OutboxMessage, skip_locked=True)
    ).all()
    if not rows:
        return 0
    batch = [_Outgoing(m.id, m.msg_id, dict(m.payload), url, secret) for m, url, secret in rows]
    for claimed, _, _ in rows:
        claimed.next_attempt_at = now + LEASE
    session.commit()

    with ThreadPoolExecutor(max_workers=min(WORKERS, len(batch)), thread_name_prefix="webhooks") as pool:
        outcomes = list(pool.map(lambda m: _post(m, settings), batch))

    fresh = {
        m.id: m
        for m in session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.id.in_([m.id for m in batch]))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    delivered = 0
    for outgoing, error in zip(batch, outcomes, strict=True):
        message = fresh.get(outgoing.id)
        if message is None or message.status == DeliveryStatus.DELIVERED:
            continue
        message.attempts += 1
        if error is None:
            message.status = str(DeliveryStatus.DELIVERED)
            message.delivered_at = now
            message.last_error = None
            delivered += 1
        elif message.status == DeliveryStatus.PENDING:
            message.last_error = error
            if message.attempts >= MAX_ATTEMPTS:
                message.status = str(DeliveryStatus.FAILED)
            else:
                message.next_attempt_at = now + backoff(message.attempts)
    session.flush()
    return delivered


jobs.register("webhooks", deliver)
