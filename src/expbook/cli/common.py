"""What the CLI commands share: opening the store, the run-selection query."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from expbook.errors import StoreError
from expbook.model import RunStatus
from expbook.store import Store, open_store, resolve_url
from expbook.store.base import RunQuery


def open_cli_store(location: str | None) -> Store:
    """Open the store for a command; a missing SQLite file is an error, not a new store."""
    url = resolve_url(location)
    parsed = sa.make_url(url)
    database = parsed.database
    is_file = parsed.get_backend_name() == "sqlite" and database and database != ":memory:"
    if is_file and not Path(database).exists():
        raise StoreError(
            f"no store at {database} (runs create it; pass --store or set EXPBOOK_STORE "
            "to use another)"
        )
    return open_store(url)


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
