"""The store contract (tests/store_contract.py) through ``expbook server``'s store API: an
``HttpStore`` client against a real HTTP server (uvicorn on loopback, in this process so that
each test gets a fresh store cheaply) in front of SQLite, and of PostgreSQL with
``EXPBOOK_TEST_HTTP_POSTGRES=1`` (84 passed on 2026-12-03). Faults with a real
server process (SIGKILL, a minute down): tests/test_remote.py and tests/test_remote_faults.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import expbook
from tests.serverproc import free_port

from .store_contract import StoreContract


def _serve(store_location: str) -> Iterator[str]:
    import uvicorn

    from expbook.server.app import create_app

    backing = expbook.open_store(store_location)
    port = free_port()
    config = uvicorn.Config(create_app(backing), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    backing.close()


class TestHttpStore(StoreContract):
    @pytest.fixture
    def location(self, tmp_path: Path) -> Iterator[str]:
        yield from _serve(str(tmp_path / "server" / "expbook.db"))


@pytest.mark.postgres
@pytest.mark.skipif(
    not os.environ.get("EXPBOOK_TEST_HTTP_POSTGRES"),
    reason="set EXPBOOK_TEST_HTTP_POSTGRES=1: the HTTP layer is the same on every backend, and "
    "these 84 cases cost about 2 minutes of the suite's 15 on 2 cores (PostgreSQL through a "
    "server runs in test_remote.py and test_remote_faults.py)",
)
class TestHttpPostgresStore(StoreContract):
    @pytest.fixture
    def location(self, postgres_url: str) -> Iterator[str]:
        yield from _serve(postgres_url)
