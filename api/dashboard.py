"""The web dashboard: one page for supervisors and forwarders, and the few npm files it needs (no CDN).

The page itself is `templates/dashboard.html` with `static/dashboard.js` and `static/dashboard.css` (served by
Flask's own static route); the map library, the basemap and its decoder come from the npm packages the set-up
installed in `VENDOR_DIR`, and only the files listed in `VENDOR_FILES` are reachable.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, send_from_directory

bp = Blueprint("dashboard", __name__)

_LEAFLET_IMAGES = ("layers.png", "layers-2x.png", "marker-icon.png", "marker-icon-2x.png", "marker-shadow.png")

# package → files inside it that the browser may fetch; everything else under node_modules stays private.
VENDOR_FILES: dict[str, frozenset[str]] = {
    "leaflet": frozenset(
        {
            "dist/leaflet.js",
            "dist/leaflet.js.map",
            "dist/leaflet-src.js",
            "dist/leaflet-src.js.map",
            "dist/leaflet-src.esm.js",
            "dist/leaflet-src.esm.js.map",
            "dist/leaflet.css",
            *(f"dist/images/{name}" for name in _LEAFLET_IMAGES),
        }
    ),
    "world-atlas": frozenset({"countries-50m.json", "countries-110m.json"}),
    "topojson-client": frozenset({"dist/topojson-client.js", "dist/topojson-client.min.js"}),
}

# The page loads nothing from elsewhere; the browser enforces it too.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",  # Leaflet positions its panes and popups with style attributes
        "img-src 'self' data:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
VENDOR_MAX_AGE_S = 3600


@bp.get("/")
def page() -> Response:
    """The operations console (it signs in with an API token in the browser; the page itself is public)."""
    response = current_app.make_response(render_template("dashboard.html"))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/vendor/<package>/<path:path>")
def vendor(package: str, path: str) -> Response:
    """A whitelisted file of an npm package installed by the set-up."""
    if path not in VENDOR_FILES.get(package, frozenset()):
        abort(404)
    response = send_from_directory(Path(current_app.config["VENDOR_DIR"]) / package, path, max_age=VENDOR_MAX_AGE_S)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
