"""``expbook ui``."""

from __future__ import annotations

import errno
import socket

import click

from expbook.cli.common import existing_store_url
from expbook.cli.output import console


def ui(
    *, host: str, port: int, read_only: bool, open_browser: bool, allowed_hosts: str,
    store: str | None,
) -> None:  # fmt: skip
    try:
        from expbook.server import serve
    except ImportError as exc:  # pragma: no cover - the UI's packages are dependencies
        raise click.ClickException(
            f"the web UI needs {exc.name}: pip install 'expbook' again to get it"
        ) from exc
    url = existing_store_url(store)
    port = port or _free_port(host)
    _check_port(host, port)

    def ready(address: str) -> None:
        console(stderr=True).print(
            f"expbook UI on {address} (store {_shown(url)}); Ctrl-C stops it", highlight=False
        )
        if open_browser:
            import webbrowser

            webbrowser.open(address)

    try:
        serve(
            url, host=host, port=port, read_only=read_only, on_ready=ready,
            allowed_hosts=[name.strip() for name in allowed_hosts.split(",") if name.strip()],
        )  # fmt: skip
    except KeyboardInterrupt:  # Ctrl-C is how a server stops: not an error
        console(stderr=True).print("expbook UI stopped", highlight=False)


def _shown(url: str) -> str:
    from expbook.store.engine import display_url

    return display_url(url)


def _free_port(host: str) -> int:
    with socket.socket(_family(host)) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _check_port(host: str, port: int) -> None:
    """Fail with one line when the address cannot be bound (uvicorn would log and exit)."""
    with socket.socket(_family(host)) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise click.ClickException(
                    f"port {port} on {host} is in use; choose another with --port"
                ) from exc
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
