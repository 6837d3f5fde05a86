"""``expbook note``, ``tag``, ``set-metric``, ``rm`` and ``db``."""

from __future__ import annotations

import math
import re
import sys

import click

from expbook.cli.common import existing_store_url, open_cli_store
from expbook.cli.output import console, fmt_metric
from expbook.errors import ExpbookError, InvalidValueError, StoreError
from expbook.model import RunStatus
from expbook.store import migrate
from expbook.store.base import RunQuery
from expbook.store.engine import display_url

_NUMBER_WITH_UNIT = re.compile(
    r"^\s*([-+]?(?:nan|inf(?:inity)?|[0-9.]+(?:[eE][-+]?\d+)?))\s*(%?)\s*$", re.I
)


def note(*, run: str, text: str, store: str | None) -> None:
    if text == "-":
        text = sys.stdin.read()
    with open_cli_store(store) as opened:
        record = opened.run(run)
        opened.add_note(record, text)
    console().print(f"noted on #{record.number} {record.name}")


def tag(*, run: str, tags: tuple[str, ...], remove: bool, store: str | None) -> None:
    with open_cli_store(store) as opened:
        record = opened.run(run)
        if remove:
            opened.remove_tags(record, *tags)
        else:
            opened.add_tags(record, *tags)
        now = opened.run(record.id).tags
    console().print(f"#{record.number} tags: {', '.join(now) if now else '(none)'}")


def parse_metric_value(text: str) -> tuple[float, str | None]:
    """``0.94`` → (0.94, None); ``55.46%`` → (55.46, '%'); ``nan``/``inf`` accepted."""
    match = _NUMBER_WITH_UNIT.match(text)
    if match is None:
        raise InvalidValueError(f"VALUE {text!r} is not a number (e.g. 0.9421, 55.46%, nan)")
    try:
        value = float(match.group(1))
    except ValueError:
        raise InvalidValueError(f"VALUE {text!r} is not a number") from None
    return value, (match.group(2) or None)


def set_metric(*, run: str, key: str, value: str, unit: str | None, store: str | None) -> None:
    number, parsed_unit = parse_metric_value(value)
    unit = unit or parsed_unit
    with open_cli_store(store) as opened:
        record = opened.run(run)
        opened.set_metric(record, key, number, unit=unit)
    shown = fmt_metric(number, unit, digits=6)
    note_nan = " (not a number)" if math.isnan(number) else ""
    console().print(f"#{record.number} {key} = {shown}{note_nan}")


def rm(*, runs: tuple[str, ...], yes: bool, force: bool, store: str | None) -> None:
    with open_cli_store(store) as opened:
        records = [opened.run(ref) for ref in runs]
        unique = {record.id: record for record in records}
        running = [r for r in unique.values() if r.status is RunStatus.RUNNING]
        if running and not force:
            listed = ", ".join(f"#{r.number}" for r in running)
            raise ExpbookError(
                f"{listed} {'is' if len(running) == 1 else 'are'} still running; stop "
                f"{'it' if len(running) == 1 else 'them'} first, or pass --force"
            )
        listing = ", ".join(f"#{r.number} {r.name} ({r.status})" for r in unique.values())
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    f"refusing to delete {listing} without --yes (no terminal to ask)"
                )
            click.confirm(f"Delete {listing}?", abort=True)
        deleted = opened.delete_runs(list(unique))
    console().print(f"deleted {deleted} run{'s' if deleted != 1 else ''}: {listing}")


def db_status(*, store: str | None) -> None:
    with open_cli_store(store) as opened:
        version = opened.schema_version()
        count = opened.count_runs(RunQuery())
    out = console()
    out.print(f"store    {display_url(opened.url)}")
    out.print(f"schema   {version} (this expbook: {migrate.HEAD})")
    out.print(f"runs     {count}")


def db_upgrade(*, store: str | None) -> None:
    from expbook.store import is_remote
    from expbook.store.engine import make_engine

    url = existing_store_url(store)
    if is_remote(url):
        raise StoreError(
            f"{url} is an expbook server: upgrade its database where it is "
            "(expbook db upgrade --store postgresql://...), then restart the server"
        )
    engine = make_engine(url)
    try:
        old, new = migrate.upgrade(engine)
    finally:
        engine.dispose()
    if old == new:
        console().print(f"{display_url(url)} is already at schema {new}")
    else:
        console().print(f"upgraded {display_url(url)} from schema {old or '(empty)'} to {new}")
