"""Stores: where runs live. ``open_store`` turns a location into a ``Store``.

Importing this package (or ``expbook.store.base``, the contract and ``WriteBatch``) does not
import SQLAlchemy: ``open_store`` does, when a store is opened.
"""

from __future__ import annotations

import os

from expbook.locations import default_location, resolve_url
from expbook.store.base import RunQuery, RunSpec, Store, SummaryValue, WriteBatch

__all__ = [
    "RunQuery",
    "RunSpec",
    "Store",
    "SummaryValue",
    "WriteBatch",
    "default_location",
    "open_store",
    "resolve_url",
]


def open_store(
    location: str | os.PathLike[str] | None = None, *, auto_upgrade: bool | None = None
) -> Store:
    """Open the store at ``location`` (a path, ``sqlite:///...``, ``postgresql://...`` or an
    ``expbook server``'s ``https://host:port``, with ``EXPBOOK_TOKEN`` or ``expbook login``);
    without one, ``EXPBOOK_STORE`` or ``.expbook/expbook.db`` at the git root (else the current
    directory). A new store is created with the current schema.

    Raises:
        StoreError: the store cannot be opened.
        SchemaVersionError: the store needs an upgrade that is not automatic, or is newer.
    """
    url = resolve_url(location)
    if is_remote(url):
        from expbook.remote.client import HttpStore

        return HttpStore(url)
    from expbook.store.sql import SqlStore

    return SqlStore(url, auto_upgrade=auto_upgrade)


def is_remote(url: str) -> bool:
    """Whether a resolved store URL is an ``expbook server``'s address."""
    return url.startswith(("http://", "https://"))
