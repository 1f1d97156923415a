"""The Flask application: factory, configuration, errors, blueprints, CLI (imports tracking and routing)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from api import auth
from api.config import Defaults
from api.errors import from_domain_error
from api.extensions import SAFE_METHODS, api, db
from routing.errors import DomainError
from tracking import webhooks  # registers the `webhooks` job in tracking.jobs

__all__ = ["create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then `RAILSEA_*` environment variables, then `config` (keys without prefix)."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(Defaults)
    app.config.from_prefixed_env("RAILSEA")
    if config:
        app.config.update(config)
    if app.config.get("ADMIN_TOKEN") is not None:
        # from_prefixed_env parses JSON, so a numeric token would arrive as a number.
        app.config["ADMIN_TOKEN"] = str(app.config["ADMIN_TOKEN"])
    app.json.sort_keys = False  # type: ignore[attr-defined]

    db.init_app(app)
    auth.init_app(app)
    api.init_app(app)

    from api import (
        alerts,
        assets,
        declarations,
        health,
        keys,
        network,
        operations,
        routes,
        standards,
        stream,
        subscriptions,
        telemetry,
    )
    from api.dashboard import bp as dashboard_bp

    for module in (
        health,
        network,
        routes,
        keys,
        declarations,
        operations,
        telemetry,
        stream,
        alerts,
        subscriptions,
        standards,
    ):
        api.register_blueprint(module.blp)
    app.register_blueprint(assets.bp)
    app.register_blueprint(dashboard_bp)
    # Every process that commits alerts (workers, the scheduler, the CLI) announces them to other processes' streams.
    stream.announce_alerts(app)

    # The delivery job runs without the app (scheduler threads): it reads the settings through this callback.
    webhooks.configure(
        lambda: webhooks.Settings(
            allow_private=bool(app.config["WEBHOOK_ALLOW_PRIVATE"]), timeout_s=float(app.config["WEBHOOK_TIMEOUT_S"])
        )
    )
    app.register_error_handler(DomainError, from_domain_error)
    app.before_request(_check_body)
    return app


def _check_body() -> None:
    """Refuse oversized or non-JSON bodies from their headers, before anything reads them."""
    if request.method in SAFE_METHODS or not request.path.startswith("/api/"):
        return
    limit = request.max_content_length
    if limit is not None and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge(f"The body is larger than {limit} bytes.")
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding") == "chunked"
    if has_body and not request.is_json:
        raise UnsupportedMediaType("The body must be JSON (Content-Type: application/json).")
