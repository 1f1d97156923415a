"""Cursor pagination over id-ordered queries: `{"items": [...], "next_cursor": str | None}`."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from routing.errors import InvalidError

T = TypeVar("T")
# Ids are 32-bit on PostgreSQL: a larger one in a path names nothing (404), it must not reach the database.
MAX_ID = 2**31 - 1
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = text.partition(":")
        # Only what `encode_cursor` writes: digits, an id the database can hold.
        if prefix != "id" or not value.isascii() or not value.isdigit() or not 0 < int(value) <= MAX_ID:
            raise ValueError(cursor)
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise InvalidError("The cursor is not one this API gave out.", {"cursor": ["invalid cursor"]}) from None


def paginate(
    session: Session, query: Select[Any], id_column: InstrumentedAttribute[int], *, limit: int, cursor: str | None
) -> Page[Any]:
    """Newest first: rows with an id below the cursor's, `limit` at a time."""
    if cursor:
        query = query.where(id_column < decode_cursor(cursor))
    rows = list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)).unique())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].id) if more and rows else None)
