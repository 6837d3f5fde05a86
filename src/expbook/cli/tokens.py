"""``expbook token create|ls|revoke``: API tokens of the team server (docs/server.md)."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich import box
from rich.table import Table

from expbook.cli.common import open_cli_store
from expbook.cli.output import console, dim, fmt_time, print_json, to_json
from expbook.server.security import TOKEN_CACHE_SECONDS
from expbook.store import Store, resolve_url


def _open(location: str | None) -> Store:
    """The store whose tokens to manage: the server's database itself, not the server."""
    if resolve_url(location).startswith(("http://", "https://")):
        raise click.ClickException(
            "tokens are kept in the server's database, not managed through the server: "
            "run it where the server's database is: --store postgresql://..."
        )
    return open_cli_store(location)


def create(*, name: str, read_only: bool, store: str | None) -> None:
    with _open(store) as opened:
        record, secret = opened.create_token(name, read_only=read_only)
    access = "read-only" if record.read_only else "read-write"
    console(stderr=True).print(
        f"created {access} token {record.name!r}; its secret (below) is not shown again: "
        "keep it in EXPBOOK_TOKEN or run 'expbook login URL'",
        highlight=False,
    )
    print(secret, flush=True)


def ls(*, as_json: bool, store: str | None) -> None:
    with _open(store) as opened:
        found = opened.list_tokens()
    if as_json:
        print_json(to_json([asdict(token) for token in found]))
        return
    out = console()
    if not found:
        out.print("no tokens yet; create one with: expbook token create NAME", highlight=False)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("name", "access", "created", "last used", "revoked"):
        table.add_column(column, no_wrap=True)
    for token in found:
        table.add_row(
            token.name if token.active else dim(token.name),
            "read-only" if token.read_only else "read-write",
            fmt_time(token.created_at),
            fmt_time(token.last_used_at),
            fmt_time(token.revoked_at),
        )
    out.print(table)


def revoke(*, name: str, store: str | None) -> None:
    with _open(store) as opened:
        record = opened.revoke_token(name)
    console(stderr=True).print(
        f"token {record.name!r} revoked {fmt_time(record.revoked_at, seconds=True)}; running "
        f"servers refuse it within {TOKEN_CACHE_SECONDS:g} s (their token cache)",
        highlight=False,
    )
