"""Configuration defaults; `create_app` layers `RAILSEA_*` environment variables and a test mapping on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent


class Defaults:
    """Every setting RailSea reads, with its default (environment: the same name prefixed `RAILSEA_`)."""

    # Unset: a SpatiaLite file in the instance folder.
    DATABASE_URL: str | None = None
    # Optional PostgreSQL streaming replica: GET requests and route planning read there (writes, the live stream and
    # jobs stay on the primary). Reads may trail the primary by the replica's replay lag.
    DATABASE_REPLICA_URL: str | None = None
    # Connections each worker keeps open to the database (half as many again, at least 4, at peaks); unset: the
    # worker's threads under `railsea serve`, else 10.
    DATABASE_POOL_SIZE: int | None = None
    # A bootstrap admin bearer token (never stored); create real keys with it.
    ADMIN_TOKEN: str | None = None
    # A worker trusts a key it has looked up for this long (seconds; 0: look it up on every request), so a revoked
    # key is refused by every worker at most this long after the revocation.
    AUTH_CACHE_S = 1.0
    # Route planning confirms the network version at most this often (seconds): a leg changed by another process is
    # planned with at most this long after the change; a change made through the same process counts at once.
    ROUTE_NETWORK_CHECK_S = 1.0
    # Set to fan live alerts out across workers through Redis pub/sub.
    REDIS_URL: str | None = None
    # Bodies above this are refused with 413 before they are read (1,000 telemetry readings fit easily).
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024
    # Where the npm packages (API docs UI, map library, basemap) were installed by the set-up.
    VENDOR_DIR = str(ROOT / "node_modules")
    # Live alert streams send a comment this often, and look in the database at least this often even when no
    # wake-up arrives (an alert raised by another process without Redis).
    SSE_KEEPALIVE_S = 15.0
    SSE_POLL_S = 3.0
    CORRIDOR_WIDTH_KM = 25.0
    # An e-seal that has not reported for this long while its box is in transit raises `telemetry_silent`.
    TELEMETRY_SILENT_AFTER_MIN = 30.0
    # Webhook targets resolving to private, loopback, link-local or reserved addresses are refused unless this is set
    # (tests, closed networks); seconds a receiver gets to answer one delivery.
    WEBHOOK_ALLOW_PRIVATE = False
    WEBHOOK_TIMEOUT_S = 5
    JSON_SORT_KEYS = False

    API_TITLE = "RailSea"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.1.0"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    OPENAPI_SWAGGER_UI_URL = "/api/docs/assets/"
    API_SPEC_OPTIONS: ClassVar[dict[str, Any]] = {
        "info": {
            "description": "Multimodal freight across the Pan-Pearl River Delta under 'declare once, inspect once, "
            "release once'. Errors are RFC 9457 application/problem+json.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    }
