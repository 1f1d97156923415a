"""Bearer-token authentication and role checks for views; scopes are applied by the domain functions."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from werkzeug.exceptions import Forbidden, Unauthorized

from api.extensions import db
from tracking.access import Principal, authenticate
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


def principal(required: bool = True) -> Principal | None:
    """The caller; a bad token is always 401, a missing one only when `required`."""
    if "principal" not in g:
        token = _bearer()
        if token is None:
            if required:
                raise _Unauthorized("This endpoint needs an 'Authorization: Bearer <token>' header.")
            return None
        found = authenticate(db.session, token, current_app.config.get("ADMIN_TOKEN"))
        if found is None:
            raise _Unauthorized("The token is unknown or revoked.")
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
