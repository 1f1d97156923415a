"""Who is calling: API keys (stored hashed), roles and scopes, and the principal a token stands for."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from routing.errors import InvalidError, NotFoundError
from routing.models import Node
from tracking.models import ApiKey, Party
from tracking.pagination import MAX_ID
from tracking.vocab import Role

TOKEN_PREFIX = "rs_"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: a role and the scope it acts in."""

    role: Role
    name: str
    key_id: int | None = None
    party: str | None = None
    party_id: int | None = None
    nodes: frozenset[str] = field(default_factory=frozenset)
    offices: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


ADMIN = Principal(role=Role.ADMIN, name="bootstrap admin")


def hash_token(token: str) -> str:
    """Tokens are 256-bit random values, so one SHA-256 suffices (no password stretching needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# One row per request, read in the request's transaction (so a revocation counts from the next request on): plain
# columns, no ORM objects to build.
_KEY_BY_HASH = (
    select(ApiKey.id, ApiKey.role, ApiKey.name, ApiKey.party_id, Party.code, ApiKey.nodes, ApiKey.offices)
    .outerjoin(Party, ApiKey.party_id == Party.id)
    .where(ApiKey.token_hash == bindparam("token_hash"), ApiKey.revoked_at.is_(None))
)


def authenticate(session: Session, token: str, admin_token: str | None = None) -> Principal | None:
    """The principal a bearer token stands for, or None when the token is unknown or revoked."""
    token_hash = hash_token(token)
    if admin_token and hmac.compare_digest(token_hash, hash_token(admin_token)):
        return ADMIN
    row = session.connection().execute(_KEY_BY_HASH, {"token_hash": token_hash}).first()
    if row is None:
        return None
    key_id, role, name, party_id, party, nodes, offices = row
    return Principal(
        role=Role(role),
        name=name,
        key_id=key_id,
        party=party,
        party_id=party_id,
        nodes=frozenset(nodes or ()),
        offices=frozenset(offices or ()),
    )


def _codes(values: Iterable[str]) -> list[str]:
    return sorted({v.strip() for v in values if v and v.strip()})


def create_key(
    session: Session,
    *,
    name: str,
    role: str,
    party: str | None = None,
    nodes: Iterable[str] = (),
    offices: Iterable[str] = (),
) -> tuple[ApiKey, str]:
    """Create a key; returns it with its token, which is shown this once and stored only hashed."""
    errors: dict[str, list[str]] = {}
    node_codes, office_codes = _codes(nodes), _codes(offices)
    party = party.strip() if party else None
    try:
        role_ = Role(role)
    except ValueError:
        errors["role"] = [f"must be one of {', '.join(r.value for r in Role)}"]
        role_ = None
    if not name or not name.strip():
        errors["name"] = ["must not be empty"]
    if node_codes:
        known = set(session.scalars(select(Node.code).where(Node.code.in_(node_codes))))
        unknown = [c for c in node_codes if c not in known]
        if unknown:
            errors["nodes"] = [f"unknown node {c}" for c in unknown]
    if office_codes:
        known = set(session.scalars(select(Node.customs_office).where(Node.customs_office.in_(office_codes))))
        unknown = [c for c in office_codes if c not in known]
        if unknown:
            errors["offices"] = [f"unknown customs office {c}" for c in unknown]
    required = {
        Role.FORWARDER: ("party", party),
        Role.OPERATOR: ("nodes", node_codes),
        Role.SUPERVISOR: ("offices", office_codes),
    }
    if role_ in required:
        field_name, value = required[role_]
        if not value:
            errors.setdefault(field_name, []).append(f"required for the {role_} role")
    if errors:
        raise InvalidError("The key cannot be created with these values.", errors)

    party_row = None
    if party:
        party_row = session.scalar(select(Party).where(Party.code == party))
        if party_row is None:
            party_row = Party(code=party)
            session.add(party_row)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name.strip(),
        role=str(role_),
        token_hash=hash_token(token),
        prefix=token[:10],
        party=party_row,
        nodes=node_codes,
        offices=office_codes,
    )
    session.add(key)
    session.flush()
    return key, token


def revoke_key(session: Session, key_id: int, now: datetime) -> ApiKey:
    """Revoke a key: its token is refused from now on (by each API worker once its trust in the key runs out,
    `RAILSEA_AUTH_CACHE_S`). Revoking a revoked key changes nothing."""
    key = session.get(ApiKey, key_id) if 0 < key_id <= MAX_ID else None
    if key is None:
        raise NotFoundError(f"No API key {key_id}.")
    if key.revoked_at is None:
        key.revoked_at = now
    return key
