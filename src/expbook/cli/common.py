"""What the CLI commands share: opening the store, the run-selection query."""

from __future__ import annotations

from pathlib import Path

from expbook.errors import StoreError
from expbook.locations import sqlite_path
from expbook.model import RunStatus
from expbook.store import Store, open_store, resolve_url
from expbook.store.base import RunQuery


def existing_store_url(location: str | None) -> str:
    """The store's URL; a SQLite file that does not exist is an error, not a new store."""
    url = resolve_url(location)
    database = sqlite_path(url)
    if database is None and url.startswith("sqlite"):
        raise StoreError(f"store {location!r}: give the SQLite file, as sqlite:///PATH or a path")
    if database is not None and not Path(database).exists():
        raise StoreError(
            f"no store at {database} (runs create it; pass --store or set EXPBOOK_STORE "
            "to use another)"
        )
    return url


def open_cli_store(location: str | None) -> Store:
    """Open the store for a command (see ``existing_store_url``)."""
    return open_store(existing_store_url(location))


def selection_query(
    *,
    experiments: tuple[str, ...] = (),
    statuses: tuple[str, ...] = (),
    where: str | None = None,
    sort: str | None = None,
    limit: int | None = None,
) -> RunQuery:
    return RunQuery(
        where=where,
        sort=sort,
        experiments=tuple(experiments),
        statuses=tuple(RunStatus(s) for s in statuses),
        limit=limit or None,
    )
