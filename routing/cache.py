"""Per-process caches keyed by database and network version: the route planner, itinerary lines."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from routing.models import NetworkVersion
from routing.planner import Planner
from routing.service import itinerary_path, local_changes, network_version, snapshot

# Asked on every route request: built once (building the statement costs more than running it).
_VERSION = select(NetworkVersion.version).where(NetworkVersion.id == 1)
_KEYS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def _database(session: Session | Engine) -> str:
    """The key of a database in the caches (its URL without the password), computed once per engine."""
    engine = session if isinstance(session, Engine) else session.get_bind().engine
    key = _KEYS.get(engine)
    if key is None:
        key = _KEYS[engine] = engine.url.render_as_string(hide_password=True)
    return key


class PlannerCache:
    """Builds the planner once from the database and again only after nodes or legs changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._planners: dict[str, Planner] = {}
        # Per database, for `recent`: the planner, when its version was last confirmed, and this process's count of
        # network changes then.
        self._recent: dict[str, tuple[Planner, float, int]] = {}

    def get(self, session: Session) -> Planner:
        """The planner of the network as the session's transaction sees it."""
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

    def recent(self, engine: Engine, session: Callable[[], Session], max_age_s: float) -> Planner:
        """The planner of `engine`'s database, its network version confirmed there at most `max_age_s` ago: a route
        asked for within that time of a network change made by another process may still be planned on the network
        before it; a change made in this process is seen at once. `session` (on that database) is called only when
        the version is due to be read again."""
        key = _database(engine)
        recent = self._recent.get(key)
        if recent is not None and time.monotonic() - recent[1] < max_age_s and recent[2] == local_changes():
            return recent[0]
        changes = local_changes()
        planner = self.get(session())
        self._recent[key] = (planner, time.monotonic(), changes)
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
