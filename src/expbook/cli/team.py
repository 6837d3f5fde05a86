"""``expbook server`` and ``expbook token``: the team server and its API tokens (declarations
only; ``expbook.cli.serving`` and ``expbook.cli.tokens`` implement them, imported inside each
function so that ``expbook --help`` stays light). See docs/server.md."""

from __future__ import annotations

from typing import Any

import click

from expbook.cli.main import cli, store_option


@cli.command("server")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: all). Any but a loopback address needs "
              "auth.")  # fmt: skip
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=5005, show_default=True,
              help="Port to listen on (0: any free port).")  # fmt: skip
@click.option("--workers", "-w", type=click.IntRange(1, 64), default=1, show_default=True,
              metavar="N",
              help="Server processes sharing the port (the store's database is all they "
              "share).")  # fmt: skip
@click.option("--artifacts", metavar="URL",
              help="Where artifact contents go (s3://bucket/prefix or a folder) [default: "
              "the store's setting, see expbook artifact location].")  # fmt: skip
@click.option("--no-auth", is_flag=True,
              help="Serve without API tokens: only on a loopback address.")  # fmt: skip
@click.option("--read-only", is_flag=True, help="Refuse every change, whoever sends it.")
@click.option("--allowed-hosts", metavar="NAMES", default="",
              help="Host names (comma-separated) the server answers to besides localhost and "
              "the --host address: its DNS name, a proxy's name; '*' for any (behind a "
              "proxy that checks them).")  # fmt: skip
@store_option
def server_command(**options: Any) -> None:
    """Serve a store to a team: the web UI, the JSON API, and the store API that clients
    with EXPBOOK_STORE=http://HOST:PORT log through. Every request needs an API token
    (expbook token create), sent as a Bearer token or as the password of HTTP Basic (browsers
    ask for it: any user name, the token as the password). Ctrl-C stops it.

    \b
    Examples:
      expbook server --store postgresql://tracker@db.internal/expbook --host 0.0.0.0
      expbook server --store postgresql://db.internal/expbook --host 0.0.0.0 --workers 4 \\
        --artifacts s3://ml-team/expbook --allowed-hosts expbook.lab.example
      expbook server --no-auth --port 8080
    """
    from expbook.cli import serving

    serving.server(**options)


@cli.group("token")
def token_group() -> None:
    """API tokens of the team server (expbook server): create, list, revoke. Run these where
    the server's database is (--store postgresql://...)."""


@token_group.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="The token may read but not change anything.")
@store_option
def token_create_command(**options: Any) -> None:
    """Create an API token called NAME (a person, a machine, a CI job) and print its secret,
    once: the store keeps only its sha256.

    \b
    Examples:
      expbook token create ana --store postgresql://db.internal/expbook
      expbook token create dashboards --read-only --store postgresql://db.internal/expbook
    """
    from expbook.cli import tokens

    tokens.create(**options)


@token_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@store_option
def token_ls_command(**options: Any) -> None:
    """List the API tokens: name, access, created, last used (to the minute), revoked. Never
    their secrets.

    \b
    Example:
      expbook token ls --store postgresql://db.internal/expbook
    """
    from expbook.cli import tokens

    tokens.ls(**options)


@token_group.command("revoke")
@click.argument("name")
@store_option
def token_revoke_command(**options: Any) -> None:
    """Revoke the API token NAME: servers refuse it within a few seconds (each server process
    trusts a token it checked for 5 s). Its name can then be given to a new token.

    \b
    Example:
      expbook token revoke ana --store postgresql://db.internal/expbook
    """
    from expbook.cli import tokens

    tokens.revoke(**options)
