"""Stored first responses of writes sent with an Idempotency-Key (kept at least 24 hours)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from tracking.evidence import canonical_json
from tracking.models import IdempotencyRecord

# Long enough that a retry, or a re-run of a spreadsheet import, within a week always replays.
RETENTION = timedelta(days=7)


class Stored(NamedTuple):
    """A stored first response: the fingerprint of its request, its status and its body."""

    request_hash: str
    status: int
    body: str


# Every write with a key looks once and stores once: plain statements, no ORM objects.
_FIND = select(IdempotencyRecord.request_hash, IdempotencyRecord.status, IdempotencyRecord.body).where(
    IdempotencyRecord.caller == bindparam("caller"), IdempotencyRecord.key == bindparam("key")
)
# A key already taken (by an earlier request, or a parallel retry that committed first) stores nothing, and fails
# nothing: the caller rolls back and replays what is stored.
_SAVE = {
    name: dialect.insert(IdempotencyRecord)
    .on_conflict_do_nothing(index_elements=["caller", "key"])
    .returning(IdempotencyRecord.id)
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """The same request gives the same fingerprint whatever its key order or white space."""
    try:
        payload = canonical_json(body)
    except ValueError:
        payload = repr(body).encode()
    return hashlib.sha256(f"{method} {path}\n".encode() + payload).hexdigest()


def find(session: Session, caller: str, key: str) -> Stored | None:
    row = session.connection().execute(_FIND, {"caller": caller, "key": key}).first()
    return None if row is None else Stored(*row)


def save(session: Session, *, caller: str, key: str, fingerprint: str, status: int, body: str, now: datetime) -> bool:
    """Store the response in the caller's transaction; False (and nothing stored) when the key is already taken."""
    conn = session.connection()
    stored = conn.execute(
        _SAVE[conn.dialect.name],
        {"caller": caller, "key": key, "request_hash": fingerprint, "status": status, "body": body, "created_at": now},
    ).first()
    return stored is not None


def purge(session: Session, now: datetime) -> int:
    """Forget records older than the retention (7 days); returns how many were removed."""
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - RETENTION))
    return int(getattr(result, "rowcount", 0) or 0)
