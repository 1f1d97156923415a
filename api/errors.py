"""One error envelope: RFC 9457 problem+json for HTTP errors, validation failures and domain errors."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Response, current_app, json
from werkzeug.exceptions import HTTPException

from routing.errors import ConflictError, DomainError, ForbiddenError, InvalidError, NotFoundError

PROBLEM_JSON = "application/problem+json"

STATUS_OF: dict[type[DomainError], int] = {
    NotFoundError: 404,
    InvalidError: 422,
    ConflictError: 409,
    ForbiddenError: 403,
}


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details; `errors` maps a field (dotted path) to its messages."""

    type = ma.fields.String(metadata={"description": "A URI reference naming the problem type"})
    title = ma.fields.String(required=True)
    status = ma.fields.Integer(required=True)
    detail = ma.fields.String()
    errors = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()), metadata={"description": "Field errors"}
    )


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """`{"containers": {0: {"number": [..]}}}` → `{"containers.0.number": [..]}`; strings stay messages."""
    if isinstance(messages, str):
        return {prefix or "_request": [messages]}
    out: dict[str, list[str]] = {}
    if isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            return {prefix or "_request": list(messages)}
        for item in messages:
            for key, value in flatten_errors(item, prefix).items():
                out.setdefault(key, []).extend(value)
        return out
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = "" if key == "_schema" else str(key)
            path = f"{prefix}.{name}" if prefix and name else (prefix or name)
            for k, v in flatten_errors(value, path).items():
                out.setdefault(k, []).extend(v)
    return out


def problem(
    status: int,
    detail: str | None = None,
    *,
    title: str | None = None,
    errors: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title or HTTPStatus(status).phrase, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = dict(errors)
    response = current_app.response_class(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http_exception(error: HTTPException) -> Response:
    """Problem response for a werkzeug/webargs exception, keeping headers such as `Allow` and `WWW-Authenticate`."""
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    data = getattr(error, "data", None) or {}
    headers.update(data.get("headers") or {})
    errors: dict[str, list[str]] = {}
    if "messages" in data or "errors" in data:
        # webargs keys messages by location ("json", "query"); the field path is what a client needs.
        raw = data.get("errors") or data.get("messages") or {}
        for location_or_field, messages in raw.items():
            nested = flatten_errors(messages) if location_or_field in {"json", "query", "path", "headers"} else None
            if nested is not None:
                for key, value in nested.items():
                    errors.setdefault(key, []).extend(value)
            else:
                errors.update(flatten_errors({location_or_field: messages}))
    detail = data.get("message") or (error.description if status != 500 else "An unexpected error occurred.")
    if status == 422 and errors and not data.get("message"):
        detail = "Some values are not valid; see errors."
    if status == 400 and errors and "_request" in errors:
        detail = "; ".join(errors.pop("_request")) or detail
    return problem(status, detail, errors=errors or None, headers=headers)


def from_domain_error(error: DomainError) -> Response:
    status = next((code for cls, code in STATUS_OF.items() if isinstance(error, cls)), 400)
    return problem(status, error.detail, title=error.title, errors=error.errors or None)
