"""Write views run in one transaction that this decorator commits; with an Idempotency-Key the first response
is stored in that same transaction and replayed for retries."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException, UnprocessableEntity

from api.auth import principal
from api.extensions import db
from routing.errors import ConflictError, DomainError
from tracking import idempotency
from tracking.clock import utcnow

F = TypeVar("F", bound=Callable[..., Any])
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def _caller() -> str:
    who = principal()
    assert who is not None
    return f"key:{who.key_id}" if who.key_id is not None else "admin"


def _replay(record: Any) -> Response:
    response = current_app.response_class(record.body, status=record.status, mimetype="application/json")
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _replay_or_refuse(session: Any, caller: str, key: str, fingerprint: str) -> Response | None:
    """After a failed attempt (rolled back): the stored first response for this key, if any; 422 when the key was
    used with another request."""
    session.rollback()
    record = idempotency.find(session, caller, key)
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise UnprocessableEntity("This Idempotency-Key was used with a different request.")
    return _replay(record)


def transaction(view: F) -> F:
    """Commit what the view did when it succeeds (roll back otherwise); honour `Idempotency-Key`.

    A key is looked up only when the request does not succeed: the first use of a key (nearly every request) does
    its work and stores its response in the same transaction, in one statement that yields if the key is already
    taken; then the work is rolled back and the stored response replayed (or 422, for another request under that
    key). A retry whose first attempt succeeded therefore always gets the first answer, whatever the state now."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        session = db.session
        key = request.headers.get("Idempotency-Key")
        if key is None:
            response = current_app.make_response(view(*args, **kwargs))
            if response.status_code < 400:
                session.commit()
            return response
        if not _KEY.match(key):
            raise UnprocessableEntity("The Idempotency-Key header must be 1 to 255 visible ASCII characters.")
        caller = _caller()
        fingerprint = idempotency.request_fingerprint(request.method, request.path, request.get_json(silent=True))
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except (HTTPException, DomainError, IntegrityError):
            # Refused now, but perhaps this is a retry of a request that succeeded: then its answer is the one.
            replayed = _replay_or_refuse(session, caller, key, fingerprint)
            if replayed is not None:
                return replayed
            raise
        if response.status_code >= 400:
            return _replay_or_refuse(session, caller, key, fingerprint) or response
        stored = idempotency.save(
            session,
            caller=caller,
            key=key,
            fingerprint=fingerprint,
            status=response.status_code,
            body=response.get_data(as_text=True),
            now=utcnow(),
        )
        if not stored:
            # The key was used before (or by a parallel retry that committed first): its response is the one.
            replayed = _replay_or_refuse(session, caller, key, fingerprint)
            if replayed is None:  # taken, and purged since: nothing to replay, nothing done
                raise ConflictError("This Idempotency-Key was in use a moment ago; send the request again.")
            return replayed
        session.commit()
        return response

    return wrapper  # type: ignore[return-value]
