"""Models of the transport network: nodes, legs (with weekly timetables) and the network's version."""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from routing.db import Base
from routing.vocab import WGS84


class Node(Base):
    """A place where containers are handled: seaport, river port, dry port, rail terminal, border crossing, depot."""

    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    geom: Mapped[WKBElement] = mapped_column(Geometry("POINT", srid=WGS84, spatial_index=True))
    modes: Mapped[list[str]] = mapped_column(JSON)
    customs_office: Mapped[str] = mapped_column(String(40), index=True)
    handling_h: Mapped[float] = mapped_column(Float)
    handling_cost_per_teu: Mapped[float] = mapped_column(Float)
    seal_preserving_transfer: Mapped[bool] = mapped_column(Boolean)
    dwell_limit_h: Mapped[float] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(Text)


class Leg(Base):
    """A directed service between two nodes by one mode; weekly `departures` (UTC) when timetabled."""

    __tablename__ = "legs"

    id: Mapped[int] = mapped_column(primary_key=True)
    origin_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    destination_id: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(10), index=True)
    geom: Mapped[WKBElement] = mapped_column(Geometry("LINESTRING", srid=WGS84, spatial_index=True))
    distance_km: Mapped[float] = mapped_column(Float)
    duration_h: Mapped[float] = mapped_column(Float)
    cost_per_teu: Mapped[float] = mapped_column(Float)
    co2_kg_per_teu: Mapped[float] = mapped_column(Float)
    # Weekly departures as "mon 22:00" (UTC); empty when the service runs at any time.
    departures: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str | None] = mapped_column(Text)

    origin: Mapped[Node] = relationship(foreign_keys=[origin_id], lazy="joined", innerjoin=True)
    destination: Mapped[Node] = relationship(foreign_keys=[destination_id], lazy="joined", innerjoin=True)


class NetworkVersion(Base):
    """One row whose number grows with every change of nodes or legs, so caches know when to rebuild."""

    __tablename__ = "network_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
