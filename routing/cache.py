"""One route planner per process and database, rebuilt when the network's version changes."""

from __future__ import annotations

import threading

from sqlalchemy.orm import Session

from routing.planner import Planner
from routing.service import network_version, snapshot


class PlannerCache:
    """Builds the planner once from the database and again only after nodes or legs changed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._planners: dict[str, Planner] = {}

    def get(self, session: Session) -> Planner:
        bind = session.get_bind()
        key = bind.engine.url.render_as_string(hide_password=True)
        version = network_version(session)
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
