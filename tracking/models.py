"""Models of tracking: parties (forwarders) and API keys; declarations and containers build on these."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, String, func
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
