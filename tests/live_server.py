"""A real RailSea server (gunicorn, threaded workers) on a free loopback port, for tests that need processes."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bench.common import Server, free_port, serve_process
from tests.conftest import ADMIN_TOKEN

__all__ = ["LiveServer", "free_port", "live_server"]


LiveServer = Server


@contextmanager
def live_server(
    database_url: str, *, workers: int = 2, threads: int = 8, env: Mapping[str, str] | None = None
) -> Iterator[LiveServer]:
    """Start `railsea serve` against `database_url`; stop it (bounded) when the block ends."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_process(
            database_url,
            workers=workers,
            threads=threads,
            env=env,
            log=Path(tmp) / "server.log",
            admin_token=ADMIN_TOKEN,
        ) as url,
    ):
        yield Server(url, admin_token=ADMIN_TOKEN)
