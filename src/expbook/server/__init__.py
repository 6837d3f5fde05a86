"""``expbook ui``: the web UI and JSON API (FastAPI + uvicorn), on the store of your choice.

Imported only by ``expbook ui`` and by code that serves the app itself; ``import expbook`` never
loads it.
"""

from __future__ import annotations

from expbook.server.app import create_app

__all__ = ["create_app", "serve"]


def serve(
    location: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 5005,
    read_only: bool = False,
    on_ready: object = None,
) -> None:
    """Serve the UI on ``location``'s store until interrupted.

    Args:
        on_ready: called with the address once the socket listens (the CLI prints it).
    """
    import uvicorn

    from expbook.store import open_store

    store = open_store(location)
    try:
        app = create_app(store, read_only=read_only)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        if callable(on_ready):
            _announce_when_started(server, on_ready, host, port)
        server.run()
    finally:
        store.close()


def _announce_when_started(server: object, on_ready: object, host: str, port: int) -> None:
    """Call ``on_ready(url)`` after uvicorn has bound its socket (so the printed address
    works as soon as it is printed)."""
    startup = server.startup  # type: ignore[attr-defined]

    async def startup_then_announce(sockets: object = None) -> None:
        await startup(sockets=sockets)
        if server.started:  # type: ignore[attr-defined]
            shown = f"[{host}]" if ":" in host else host
            on_ready(f"http://{shown}:{port}/")  # type: ignore[operator]

    server.startup = startup_then_announce  # type: ignore[attr-defined]
