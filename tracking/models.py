"""Models of tracking: parties, keys, declarations, containers, seals, events, inspections, alerts, idempotency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from routing.db import Base


class Party(Base):
    """A forwarder's party: the owner of declarations; registered on the first key that names it."""

    __tablename__ = "parties"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ApiKey(Base):
    """A bearer token (stored as its SHA-256) with a role and a scope: party, nodes or customs offices."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, so an operator can tell keys apart without the secret.
    prefix: Mapped[str] = mapped_column(String(12))
    party_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id"), index=True)
    nodes: Mapped[list[str]] = mapped_column(JSON, default=list)
    offices: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    party: Mapped[Party | None] = relationship(lazy="joined")


class Declaration(Base):
    """A forwarder's one declaration: direction, itinerary (origin first), inspection node, deadline, containers."""

    __tablename__ = "declarations"
    __table_args__ = (UniqueConstraint("party_id", "reference"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("parties.id"), index=True)
    reference: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(10))
    origin: Mapped[str] = mapped_column(ForeignKey("nodes.code"))
    destination: Mapped[str] = mapped_column(ForeignKey("nodes.code"))
    itinerary: Mapped[list[str]] = mapped_column(JSON)
    inspection_node: Mapped[str] = mapped_column(ForeignKey("nodes.code"))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(80))

    party: Mapped[Party] = relationship(lazy="joined")
    containers: Mapped[list[Container]] = relationship(
        back_populates="declaration", order_by="Container.id", lazy="selectin"
    )
    stops: Mapped[list[DeclarationStop]] = relationship(order_by="DeclarationStop.position", lazy="select")


class DeclarationStop(Base):
    """One node of a declaration's itinerary, as a row, so scopes can ask "which declarations pass node X"."""

    __tablename__ = "declaration_stops"

    declaration_id: Mapped[int] = mapped_column(ForeignKey("declarations.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    node: Mapped[str] = mapped_column(String(20), index=True)


class Container(Base):
    """One box on one declaration: its status, where it was last seen, and the head of its evidence chain."""

    __tablename__ = "containers"
    __table_args__ = (
        # A container is on at most one open declaration at a time.
        Index(
            "uq_containers_open_number",
            "number",
            unique=True,
            sqlite_where=text("is_open"),
            postgresql_where=text("is_open"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    declaration_id: Mapped[int] = mapped_column(ForeignKey("declarations.id"), index=True)
    number: Mapped[str] = mapped_column(String(11), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    is_open: Mapped[bool] = mapped_column(Boolean)
    port_quarantine: Mapped[bool] = mapped_column(Boolean)
    quarantine_cleared: Mapped[bool] = mapped_column(Boolean, default=False)
    goods: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    location: Mapped[str | None] = mapped_column(String(20))
    last_event_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the box's stay at its location began (for the dwell job); none once it departs.
    located_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    evidence_head: Mapped[str] = mapped_column(String(64), default="")
    evidence_length: Mapped[int] = mapped_column(Integer, default=0)

    declaration: Mapped[Declaration] = relationship(back_populates="containers", lazy="joined")
    seals: Mapped[list[Seal]] = relationship(order_by="Seal.id", lazy="selectin")

    @property
    def here(self) -> str:
        """Where the box is: its last transfer's node, or its origin before its first. Inspections take place
        there, and alerts about the box as it stands go to that node's office."""
        return self.location or self.declaration.itinerary[0]


class Seal(Base):
    """A seal on a container; the `expected` ones are what the next transfer must find intact."""

    __tablename__ = "seals"

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id"), index=True)
    number: Mapped[str] = mapped_column(String(64))
    normalised: Mapped[str] = mapped_column(String(64))
    type: Mapped[str | None] = mapped_column(String(10))
    source: Mapped[str | None] = mapped_column(String(12))
    expected: Mapped[bool] = mapped_column(Boolean, default=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # "declaration" or "inspection:<id>": who put it on.
    applied_by: Mapped[str] = mapped_column(String(40))


class Event(Base):
    """A state-changing event of a container, and its link in the container's evidence chain."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("container_id", "seq"),
        Index(None, "container_id", "event_time"),
        # Clearance analytics: a node's transfers and inspections over a period.
        Index(None, "node", "event_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(20))
    node: Mapped[str | None] = mapped_column(String(20))
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decision: Mapped[str | None] = mapped_column(String(12))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The evidence record exactly as hashed (RFC 8785 canonical JSON of it, after prev_hash).
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Inspection(Base):
    """A supervisor's inspection of a container at a node: cleared or refused, with any seals applied."""

    __tablename__ = "inspections"

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id"), index=True)
    node: Mapped[str] = mapped_column(ForeignKey("nodes.code"))
    result: Mapped[str] = mapped_column(String(10))
    seals_applied: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    agencies: Mapped[list[str]] = mapped_column(JSON, default=list)
    remarks: Mapped[str | None] = mapped_column(Text)
    inspected_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Alert(Base):
    """An alert for the customs supervisors of `office` (and the container's forwarder), raised once per cause."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("container_id", "kind", "dedupe_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)
    severity: Mapped[str] = mapped_column(String(10))
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id"), index=True)
    party_id: Mapped[int] = mapped_column(ForeignKey("parties.id"), index=True)
    node: Mapped[str | None] = mapped_column(String(20))
    office: Mapped[str | None] = mapped_column(String(40), index=True)
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(14), index=True)
    # Distinguishes causes of one kind (an event id, a deadline): a periodic job raises each cause once.
    dedupe_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by: Mapped[str | None] = mapped_column(String(80))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(80))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    # The alert's place in the live stream, set by the database in commit order (migration 0005's trigger): on
    # PostgreSQL ids are taken at insert but seen at commit, so streams resume by this, not by id. Null until commit.
    stream_seq: Mapped[int | None] = mapped_column(BigInteger, index=True, unique=True)

    container: Mapped[Container] = relationship(lazy="joined")


class IdempotencyRecord(Base):
    """The first response to a write sent with an Idempotency-Key, replayed for retries of the same request."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("caller", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    caller: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Device(Base):
    """An e-seal or e-lock reporting by telemetry; silent longer than its threshold → `telemetry_silent`."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id"), index=True)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    silent_after_s: Mapped[int] = mapped_column(Integer)


class Reading(Base):
    """One e-seal telemetry reading: position and seal state (positions are plain numbers: corridor checks run in
    Shapely, and a spatial index would slow the bulk inserts for no query that needs it)."""

    __tablename__ = "readings"
    __table_args__ = (Index(None, "container_id", "time"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    container_id: Mapped[int] = mapped_column(ForeignKey("containers.id"))
    device: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    sealed: Mapped[bool] = mapped_column(Boolean)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Subscription(Base):
    """A webhook: where to POST which events, for the scope of the key that created it."""

    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(80), index=True)
    role: Mapped[str] = mapped_column(String(20))
    party_id: Mapped[int | None] = mapped_column(ForeignKey("parties.id"), index=True)
    offices: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboxMessage(Base):
    """A webhook message written in the transaction of its event; a job delivers it with retries and backoff."""

    __tablename__ = "outbox"
    __table_args__ = (Index(None, "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    msg_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
