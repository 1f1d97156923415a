"""Bearer-token authentication and role checks for views; scopes are applied by the domain functions."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, current_app, g, request
from werkzeug.exceptions import Forbidden, Unauthorized

from api.extensions import db
from tracking.access import Principal, authenticate, hash_token
from tracking.vocab import Role

F = TypeVar("F", bound=Callable[..., Any])
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="railsea"'}


class _Unauthorized(Unauthorized):
    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), *CHALLENGE.items()]


def _bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _Unauthorized("The Authorization header must be 'Bearer <token>'.")
    return token.strip()


class Principals:
    """The principals of tokens this worker looked up lately (keyed by the token's hash), each trusted for
    `max_age_s`: most requests of a busy client then need no key look-up in the database. Unknown tokens are not
    remembered."""

    def __init__(self, max_age_s: float, size: int = 10_000) -> None:
        self.max_age_s = max_age_s
        self._size = size
        self._lock = threading.Lock()
        self._known: dict[str, tuple[Principal, float]] = {}

    def get(self, token_hash: str) -> Principal | None:
        known = self._known.get(token_hash)
        if known is None or time.monotonic() - known[1] >= self.max_age_s:
            return None
        return known[0]

    def forget(self, key_id: int) -> None:
        """Stop trusting a key (revoked through this worker) at once."""
        with self._lock:
            self._known = {h: v for h, v in self._known.items() if v[0].key_id != key_id}

    def put(self, token_hash: str, found: Principal) -> None:
        if self.max_age_s <= 0:
            return
        with self._lock:
            if len(self._known) >= self._size:
                now = time.monotonic()
                self._known = {h: v for h, v in self._known.items() if now - v[1] < self.max_age_s}
                if len(self._known) >= self._size:
                    self._known.pop(next(iter(self._known)))
            self._known[token_hash] = (found, time.monotonic())


def init_app(app: Flask) -> None:
    app.extensions["railsea_principals"] = Principals(float(app.config["AUTH_CACHE_S"]))


def principal(required: bool = True) -> Principal | None:
    """The caller; a bad token is always 401, a missing one only when `required`."""
    if "principal" not in g:
        token = _bearer()
        if token is None:
            if required:
                raise _Unauthorized("This endpoint needs an 'Authorization: Bearer <token>' header.")
            return None
        principals: Principals = current_app.extensions["railsea_principals"]
        token_hash = hash_token(token)
        found = principals.get(token_hash)
        if found is None:
            found = authenticate(db.session, token, current_app.config.get("ADMIN_TOKEN"))
            if found is None:
                raise _Unauthorized("The token is unknown or revoked.")
            principals.put(token_hash, found)
        g.principal = found
    result: Principal = g.principal
    return result


def roles(*allowed: Role) -> Callable[[F], F]:
    """Require a valid token whose role is one of `allowed` (any role when none is given)."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = principal()
            assert caller is not None
            if allowed and caller.role not in allowed:
                raise Forbidden(f"The {caller.role} role may not do this.")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def public(view: F) -> F:
    """Readable without a token; a token that is sent must still be valid."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal(required=False)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
