"""``expbook sync`` and ``expbook login``: a client's side of a team server (declarations
only; the implementations are in ``expbook.cli.remote``)."""

from __future__ import annotations

import sys
from typing import Any

import click

from expbook.cli.main import cli, store_option


@cli.command("sync")
@click.option("--status", "status_only", is_flag=True,
              help="Only show what waits in the journal, and send nothing.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(min=0), default=0, show_default=True,
              metavar="SECONDS",
              help="Keep trying this long while the server cannot be reached "
              "(0: try once).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@store_option
def sync_command(**options: Any) -> None:
    """Send the writes kept in this machine's journal to the server (EXPBOOK_STORE=https://...).

    Every run created and every batch written to a server is kept in a journal on disk first
    (~/.cache/expbook/journal, or $EXPBOOK_JOURNAL) and removed once the server has it. Writes
    of processes that were killed, or that ended while the server could not be reached, wait
    there: the next expbook command on the store sends them, or this one does now. It exits 1
    when writes are still waiting.

    \b
    Examples:
      expbook sync --status
      expbook sync
      expbook sync --timeout 600 --store https://tracker.lab.example:5005
    """
    from expbook.cli import remote

    sys.exit(remote.sync(**options))


@cli.command("login")
@click.argument("url")
@click.option("--token", metavar="TOKEN", envvar="EXPBOOK_TOKEN",
              help="The API token ('expbook token create NAME' on the server); asked for "
              "when not given.")  # fmt: skip
def login_command(**options: Any) -> None:
    """Save an API token for the expbook server at URL (checked with the server first), in
    ~/.config/expbook/credentials.json, readable by you only. Commands and runs on that store
    (--store URL or EXPBOOK_STORE=URL) then send it; EXPBOOK_TOKEN, when set, wins.

    \b
    Examples:
      expbook login https://tracker.lab.example:5005
      export EXPBOOK_STORE=https://tracker.lab.example:5005
    """
    from expbook.cli import remote

    remote.login(**options)
