"""A real RailSea server (gunicorn, threaded workers) on a free loopback port, for tests that need processes."""

from __future__ import annotations

import json
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import free_port, serve_process
from tests.conftest import ADMIN_TOKEN

__all__ = ["LiveServer", "free_port", "live_server"]


@dataclass(frozen=True)
class LiveServer:
    url: str

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str = ADMIN_TOKEN,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        request.add_header("Connection", "close")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            with error:
                return error.code, json.loads(error.read() or b"null")


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
        yield LiveServer(url)
