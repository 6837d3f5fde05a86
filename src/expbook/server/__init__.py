"""``expbook ui``: the web UI and JSON API (FastAPI + uvicorn), on the store of your choice.

Imported only by ``expbook ui`` and by code that serves the app itself; ``import expbook`` never
loads it.
"""

from __future__ import annotations

from collections.abc import Iterable

from expbook.server.app import create_app

__all__ = ["create_app", "own_names", "serve"]
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def serve(
    location: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 5005,
    read_only: bool = False,
    allowed_hosts: Iterable[str] = (),
    on_ready: object = None,
) -> None:
    """Serve the UI on ``location``'s store until interrupted.

    Args:
        allowed_hosts: host names it answers to besides the loopback names and ``host``
            (with a wildcard ``host``, the machine's name and addresses); ``"*"``: any.
        on_ready: called with the address once the socket listens (the CLI prints it).
    """
    import uvicorn

    from expbook.store import open_store

    store = open_store(location)
    try:
        names = [*own_names(host), *allowed_hosts]
        app = create_app(store, read_only=read_only, allowed_hosts=names)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        if callable(on_ready):
            _announce_when_started(server, on_ready, host, port)
        server.run()
    finally:
        store.close()


def own_names(host: str) -> list[str]:
    """The names a browser may use for a server listening on ``host``: the address itself;
    for a wildcard address, this machine's host name and every address of its interfaces."""
    if host not in WILDCARD_HOSTS:
        return [host]
    import socket

    import psutil

    name = socket.gethostname()
    addresses = [
        address.address.split("%")[0]  # fe80::1%eth0 -> fe80::1
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family in (socket.AF_INET, socket.AF_INET6)
    ]
    return [name, f"{name}.local", *addresses]


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
