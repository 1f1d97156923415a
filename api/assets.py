"""Front-end files installed from npm by the set-up and served by the app itself (no CDN)."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, send_from_directory

bp = Blueprint("assets", __name__)


@bp.get("/api/docs/assets/<path:filename>")
def docs_asset(filename: str) -> Response:
    return send_from_directory(Path(current_app.config["VENDOR_DIR"]) / "swagger-ui-dist", filename)
