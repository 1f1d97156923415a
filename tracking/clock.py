"""Time helpers: every stored and returned time is an aware UTC datetime."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """Aware UTC; naive values (SQLite returns them) are taken as UTC."""
    zone = moment.tzinfo
    if zone is UTC:  # already (what this module makes): nothing to do
        return moment
    return moment.replace(tzinfo=UTC) if zone is None else moment.astimezone(UTC)


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return as_utc(moment).isoformat().replace("+00:00", "Z")
