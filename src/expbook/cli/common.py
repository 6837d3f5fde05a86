"""What the CLI commands share: opening the store, the run-selection query."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from expbook.columns import did_you_mean, filter_keys, unknown_keys
from expbook.errors import ExperimentNotFoundError, StoreError
from expbook.locations import sqlite_path
from expbook.model import RunRecord, RunStatus
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


def warn_orphans(url: str) -> None:
    """One line on stderr when runs of ``expbook run`` on this store wait to be recovered."""
    from expbook.locations import spool_roots
    from expbook.runner.spool import orphans_line

    line = orphans_line(spool_roots(url), url)
    if line:
        sys.stderr.write(f"expbook: {line}\n")


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


def check_experiments(store: Store, names: Sequence[str]) -> None:
    """Refuse an experiment name no experiment has (a typo would list nothing, silently).

    Raises:
        ExperimentNotFoundError: naming it and the closest experiments' names.
    """
    if not names:
        return
    known = [experiment.name for experiment in store.list_experiments()]
    for name in names:
        if name not in known:
            raise ExperimentNotFoundError(
                f"no experiment named {name!r}{did_you_mean(name, known)}"
            )


def warn_unknown_keys(
    store: Store,
    runs: Sequence[RunRecord],
    metrics: Sequence[str] = (),
    params: Sequence[str] = (),
    where: str | None = None,
    sort: str | None = None,
) -> None:
    """One line on stderr for each metric or param named (as a column, in the filter or the
    sort) that no run in the store has, with the closest keys runs do have."""
    in_where, in_sort = filter_keys(where, sort)
    columns = [("metric", key) for key in metrics] + [("param", key) for key in params]
    wanted = {"": columns, "--where: ": in_where, "--sort: ": in_sort}
    unknown = {
        (u.scope, u.key): u for u in unknown_keys(store, columns + in_where + in_sort, runs)
    }
    for option, pairs in wanted.items():
        for pair in dict.fromkeys(pairs):
            if pair in unknown:
                sys.stderr.write(f"warning: {option}{unknown[pair].message()}\n")
