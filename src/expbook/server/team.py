"""``expbook server``: the web UI, the JSON API and the clients' store API for a team, behind API
tokens, in one or several uvicorn worker processes.

Each worker builds its own app from the settings in ``$EXPBOOK_SERVER_CONFIG`` (JSON, written by
``serve``; uvicorn starts workers as fresh interpreters that import ``app_from_environment``),
opens its own store and closes it when it stops. The store's database is the only state the
workers share: tokens, runs, everything. Several workers on one SQLite file work (SQLite
serializes their writes, WAL lets reads go on), but a team store is PostgreSQL.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

ENVIRONMENT = "EXPBOOK_SERVER_CONFIG"
FACTORY = "expbook.server.team:app_from_environment"


@dataclass(frozen=True)
class ServerConfig:
    """What every worker needs to build the app.

    Args:
        store: the store's URL (``resolve_url``'s form).
        artifacts: where artifact contents go, if not the store's own setting.
    """

    store: str
    artifacts: str | None = None
    auth: bool = True
    read_only: bool = False
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        data = json.loads(text)
        return cls(**{**data, "allowed_hosts": tuple(data.get("allowed_hosts", ()))})


def open_server_store(config: ServerConfig) -> Any:
    """The store as the server uses it (artifacts at ``config.artifacts`` when given)."""
    from expbook.store import open_store

    store = open_store(config.store)
    if config.artifacts:
        try:
            store.use_artifacts(config.artifacts)  # type: ignore[attr-defined]
        except BaseException:
            store.close()
            raise
    return store


def build_app(config: ServerConfig) -> Any:
    """The app on a store of its own, closed when the app shuts down."""
    from expbook.server.app import create_app

    store = open_server_store(config)
    app = create_app(
        store, read_only=config.read_only, allowed_hosts=config.allowed_hosts, auth=config.auth
    )
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        try:
            async with inner(app) as state:
                yield state
        finally:
            store.close()

    app.router.lifespan_context = lifespan
    return app


def app_from_environment() -> Any:
    """uvicorn's app factory for each worker: ``build_app`` with ``$EXPBOOK_SERVER_CONFIG``."""
    return build_app(ServerConfig.from_json(os.environ[ENVIRONMENT]))


def serve(
    config: ServerConfig, *, host: str, port: int, workers: int = 1,
    on_ready: Callable[[str], None] | None = None,
) -> None:  # fmt: skip
    """Serve until interrupted (Ctrl-C, SIGTERM): ``workers`` processes share the socket.

    Args:
        on_ready: called with the address once a worker answers requests.
    """
    import uvicorn

    os.environ[ENVIRONMENT] = config.to_json()
    settings = uvicorn.Config(
        FACTORY, factory=True, host=host, port=port, workers=workers,
        log_level="warning", access_log=False, timeout_graceful_shutdown=10,
    )  # fmt: skip
    if on_ready is not None:
        _announce_when_answering(host, port, on_ready)
    if workers == 1:
        uvicorn.Server(settings).run()
        return
    from uvicorn.supervisors import Multiprocess

    socket = settings.bind_socket()
    try:
        Multiprocess(settings, sockets=[socket]).run()
    finally:
        socket.close()


def _announce_when_answering(host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Call ``on_ready(url)`` from a thread once the server answers an HTTP request (any
    status: the first worker is serving)."""
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    shown = f"[{host}]" if ":" in host else host

    def probe() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            connection = http.client.HTTPConnection(target, port, timeout=5)
            try:
                connection.request("GET", "/api/whoami")
                connection.getresponse().read()
            except OSError:
                time.sleep(0.05)
                continue
            finally:
                connection.close()
            on_ready(f"http://{shown}:{port}/")
            return

    threading.Thread(target=probe, name="expbook-server-ready", daemon=True).start()
