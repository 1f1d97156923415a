"""The evidence chain: hash-linked records that anyone holding them can verify offline (RFC 8785, SHA-256)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import rfc8785

GENESIS = ""
"""The `prev_hash` of a chain's first entry."""

_SAFE_INTEGER = 2**53 - 1


def _plain(value: Any) -> bool:
    """True when `value` holds only strings, booleans, nulls, integers of ±(2**53 - 1), lists, tuples and objects
    with ASCII keys. For these, RFC 8785 and `json.dumps(sort_keys=True)` without spaces give the same bytes (the
    same string escapes, keys in the same order, integers as digits); anything else takes the reference code."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -_SAFE_INTEGER <= value <= _SAFE_INTEGER
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False


def canonical_json(record: Any) -> bytes:
    """The RFC 8785 (JCS) bytes of a JSON-native value: sorted keys, no whitespace, ECMAScript numbers.

    Raises `rfc8785.CanonicalizationError` (a ValueError) for what JSON cannot carry exactly: NaN,
    infinities, integers beyond ±(2**53 - 1), non-string keys, and types other than dict, list, tuple, str,
    int, float, bool and None (convert times and decimals to strings first).
    """
    if _plain(record):
        # The standard library's C encoder, many times faster than the reference implementation; same bytes.
        try:
            return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it with its own error
    return rfc8785.dumps(record)


def entry_hash(prev_hash: str, record: Any) -> str:
    """Hex SHA-256 of the UTF-8 bytes of `prev_hash` followed by the canonical JSON of `record`."""
    return hashlib.sha256(prev_hash.encode("utf-8") + canonical_json(record)).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One link of the chain, as published by `GET /containers/{number}/evidence`."""

    record: Any
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": self.record, "prev_hash": self.prev_hash, "hash": self.hash}


def append(prev_hash: str, record: Any) -> Entry:
    """The entry that links `record` after the entry whose hash is `prev_hash` (`GENESIS` for the first)."""
    return Entry(record, prev_hash, entry_hash(prev_hash, record))


def build_chain(records: Iterable[Any]) -> list[Entry]:
    """Link `records` in order, the first after `GENESIS`."""
    entries: list[Entry] = []
    prev_hash = GENESIS
    for record in records:
        entry = append(prev_hash, record)
        entries.append(entry)
        prev_hash = entry.hash
    return entries


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking a chain."""

    valid: bool
    head: str
    """The hash the records themselves lead to (GENESIS for none); compare it with a head kept elsewhere,
    because dropping entries from the end leaves a shorter chain that is still consistent."""
    first_bad_index: int | None
    """The first entry whose `prev_hash` or `hash` disagrees with the records before it, or None."""


def _fields(entry: Entry | Mapping[str, Any]) -> tuple[Any, Any, Any]:
    if isinstance(entry, Entry):
        return entry.record, entry.prev_hash, entry.hash
    return entry.get("record"), entry.get("prev_hash"), entry.get("hash")


def verify_chain(entries: Sequence[Entry | Mapping[str, Any]]) -> VerifyResult:
    """Recompute every hash from the published records alone, and check each entry's links against them.

    Accepts `Entry` values or the published JSON objects (`{record, prev_hash, hash}`). A changed record fails
    its own hash; a removed, inserted or reordered entry fails the `prev_hash` of the entry after the change.
    """
    prev_hash = GENESIS
    first_bad: int | None = None
    for index, entry in enumerate(entries):
        record, published_prev, published_hash = _fields(entry)
        try:
            recomputed = entry_hash(prev_hash, record)
        except rfc8785.CanonicalizationError:
            # No hash can be recomputed past a record JSON cannot carry, so the head stops before it.
            return VerifyResult(False, prev_hash, index if first_bad is None else first_bad)
        if first_bad is None and (published_prev != prev_hash or published_hash != recomputed):
            first_bad = index
        prev_hash = recomputed
    return VerifyResult(first_bad is None, prev_hash, first_bad)
