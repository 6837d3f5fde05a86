"""``expbook server`` (docs/server.md)."""

from __future__ import annotations

import contextlib
import ipaddress

import click

from expbook.cli.common import existing_store_url
from expbook.cli.output import console
from expbook.cli.web import _check_port, _free_port, _shown


def server(
    *, host: str, port: int, workers: int, artifacts: str | None, no_auth: bool,
    read_only: bool, allowed_hosts: str, store: str | None,
) -> None:  # fmt: skip
    from expbook.server import own_names
    from expbook.server.team import ServerConfig, open_server_store, serve

    if no_auth and not is_loopback(host):
        raise click.ClickException(
            f"refusing --no-auth on {host}: anyone who reaches it could read and change the "
            "store; drop --no-auth (clients then need a token: expbook token create NAME) or "
            "listen on 127.0.0.1"
        )
    url = existing_store_url(store)
    if url.startswith(("http://", "https://")):
        raise click.ClickException(
            "expbook server serves a database: give it --store postgresql://... (or a SQLite "
            "file), not another server's address"
        )
    names = [name.strip() for name in allowed_hosts.split(",") if name.strip()]
    config = ServerConfig(
        store=url, artifacts=artifacts, auth=not no_auth, read_only=read_only,
        allowed_hosts=tuple([*own_names(host), *names]),
    )  # fmt: skip
    with open_server_store(config) as opened:  # fails here, in one line, rather than per worker
        active = [token for token in opened.list_tokens() if token.active]
    port = port or _free_port(host)
    _check_port(host, port)
    err = console(stderr=True)
    if config.auth and not active:
        err.print(
            "no API tokens yet: every request will be refused until you create one with "
            f"'expbook token create NAME --store {_shown(url)}'",
            highlight=False,
        )
    access = "no auth" if no_auth else f"API tokens ({len(active)} active)"
    plural = "es" if workers > 1 else ""

    def ready(address: str) -> None:
        err.print(
            f"expbook server on {address} (store {_shown(url)}; {workers} process{plural}; "
            f"{access}{'; read-only' if read_only else ''}); Ctrl-C stops it",
            highlight=False,
        )

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server stops
        serve(config, host=host, port=port, workers=workers, on_ready=ready)
    err.print("expbook server stopped", highlight=False)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any address
