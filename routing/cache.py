"""Per-process caches keyed by database and network version: the route planner, itinerary lines."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from routing.models import NetworkVersion
from routing.planner import Planner
from routing.service import itinerary_path, network_version, snapshot

# Asked on every route request: built once (building the statement costs more than running it).
_VERSION = select(NetworkVersion.version).where(NetworkVersion.id == 1)
_KEYS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def _database(session: Session) -> str:
    """The key of the session's database in the caches (its URL without the password), computed once per engine."""
    engine = session.get_bind().engine
    key = _KEYS.get(engine)
    if key is None:
        key = _KEYS[engine] = engine.url.render_as_string(hide_password=True)
    return key


class PlannerCache:
    """Builds the planner once from the database and again only after nodes or legs changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._planners: dict[str, Planner] = {}

    def get(self, session: Session) -> Planner:
        key = _database(session)
        # The version is read in the session's transaction (version bumps are executed statements, never pending).
        version = session.connection().execute(_VERSION).scalar() or 0
        planner = self._planners.get(key)
        if planner is not None and planner.version == version:
            return planner
        with self._lock:
            planner = self._planners.get(key)
            if planner is None or planner.version != version:
                planner = Planner(snapshot(session))
                self._planners[key] = planner
            return planner


planners = PlannerCache()


class PathCache:
    """The line of each declared itinerary, per database and network version (declarations share a few)."""

    def __init__(self, size: int = 4096) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._paths: dict[tuple[str, int, tuple[str, ...]], list[tuple[float, float]]] = {}

    def get(self, session: Session, itinerary: Sequence[str], version: int | None = None) -> list[tuple[float, float]]:
        """The itinerary's line; pass the network `version` when asking for many in one transaction."""
        version = network_version(session) if version is None else version
        key = (_database(session), version, tuple(itinerary))
        path = self._paths.get(key)
        if path is None:
            path = itinerary_path(session, itinerary)
            with self._lock:
                if len(self._paths) >= self._size:
                    self._paths.pop(next(iter(self._paths)))
                self._paths[key] = path
        return path


paths = PathCache()
