"""Write views run in one transaction that this decorator commits; with an Idempotency-Key the first response
is stored in that same transaction and replayed for retries."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Response, current_app, request
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import UnprocessableEntity

from api.auth import principal
from api.extensions import db
from routing.errors import ConflictError
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


def transaction(view: F) -> F:
    """Commit what the view did when it succeeds (roll back otherwise); honour `Idempotency-Key`."""

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
        record = idempotency.find(session, caller, key)
        if record is not None:
            if record.request_hash != fingerprint:
                raise UnprocessableEntity("This Idempotency-Key was used with a different request.")
            return _replay(record)
        try:
            response = current_app.make_response(view(*args, **kwargs))
        except (ConflictError, IntegrityError):
            # A parallel retry with this key may have won the race: then its answer is the one to give.
            session.rollback()
            record = idempotency.find(session, caller, key)
            if record is not None and record.request_hash == fingerprint:
                return _replay(record)
            raise
        if response.status_code >= 400:
            return response
        try:
            idempotency.save(
                session,
                caller=caller,
                key=key,
                fingerprint=fingerprint,
                status=response.status_code,
                body=response.get_data(as_text=True),
                now=utcnow(),
            )
            session.commit()
        except IntegrityError:
            # The same key raced in from a parallel retry and won: its response is the one to give.
            session.rollback()
            record = idempotency.find(session, caller, key)
            if record is None or record.request_hash != fingerprint:
                raise
            return _replay(record)
        return response

    return wrapper  # type: ignore[return-value]
