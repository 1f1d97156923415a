"""Extensions created unbound and bound in `create_app`: the database (a session per request) and the API."""

from __future__ import annotations

import functools
import http
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import flask_smorest
import marshmallow as ma
from flask import Flask, current_app, g, has_request_context, request
from flask_smorest.utils import prepare_response
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

from api.errors import PROBLEM_JSON, ProblemSchema, from_http_exception
from routing.db import make_engine, session_factory, writer

F = TypeVar("F", bound=Callable[..., Any])
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_POOL_SIZE = 10


@dataclass
class _DatabaseState:
    engine: Engine
    readers: sessionmaker[Session]
    writers: sessionmaker[Session]
    replica_engine: Engine | None = None
    replica: sessionmaker[Session] | None = None

    def dispose(self) -> None:
        self.engine.dispose()
        if self.replica_engine is not None:
            self.replica_engine.dispose()


class Database:
    """Binds one engine per app; `db.session` is the request's session: a writer for unsafe methods, otherwise a
    reader, on the read replica when one is configured."""

    def init_app(self, app: Flask) -> None:
        url = app.config.get("DATABASE_URL") or f"sqlite:///{app.instance_path}/railsea.db"
        app.config["DATABASE_URL"] = url
        pool_size = int(app.config.get("DATABASE_POOL_SIZE") or DEFAULT_POOL_SIZE)
        engine = make_engine(url, pool_size=pool_size)
        replica_url = app.config.get("DATABASE_REPLICA_URL")
        replica = make_engine(replica_url, pool_size=pool_size) if replica_url else None
        app.extensions["railsea_db"] = _DatabaseState(
            engine,
            session_factory(engine),
            session_factory(writer(engine)),
            replica,
            session_factory(replica) if replica is not None else None,
        )
        app.teardown_appcontext(self._close)

    @staticmethod
    def _state(app: Flask | None = None) -> _DatabaseState:
        state: _DatabaseState = (app or current_app).extensions["railsea_db"]
        return state

    @property
    def engine(self) -> Engine:
        return self._state().engine

    @property
    def read_engine(self) -> Engine:
        """Where request readers read: the replica when one is configured, else the primary."""
        state = self._state()
        return state.replica_engine or state.engine

    def new_session(self, *, write: bool = True, app: Flask | None = None) -> Session:
        """A session outside a request (CLI, jobs); the caller commits and closes it."""
        state = self._state(app)
        return state.writers() if write else state.readers()

    @property
    def session(self) -> Session:
        if "db_session" not in g:
            write = not has_request_context() or (request.method not in SAFE_METHODS and not g.get("db_read_only"))
            replica = self._state().replica
            g.db_session = replica() if replica is not None and not write else self.new_session(write=write)
        session: Session = g.db_session
        return session

    @staticmethod
    def _close(exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            if exc is not None:
                session.rollback()
            session.close()


class Api(flask_smorest.Api):
    """flask-smorest's Api whose errors, and their documentation, are application/problem+json."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        return from_http_exception(error)

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if not (100 <= status < 200) and status not in (204, 304):
                response["schema"] = self.ERROR_SCHEMA
                prepare_response(response, self.spec, PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Error (RFC 9457 problem details)", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def read_only(view: F) -> F:
    """For a POST that only reads (route planning): no writer lock on SQLite."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.db_read_only = True
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# A misspelt query parameter (`?staus=open`) is refused with 422 rather than silently ignored.
for _location in ("query", "querystring"):
    flask_smorest.Blueprint.ARGUMENTS_PARSER.DEFAULT_UNKNOWN_BY_LOCATION[_location] = ma.RAISE

db = Database()
api = Api()
