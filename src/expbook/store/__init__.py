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
    """Open the store at ``location`` (a path, ``sqlite:///...`` or ``postgresql://...``);
    without one, ``EXPBOOK_STORE`` or ``.expbook/expbook.db`` at the git root (else the current
    directory). A new store is created with the current schema.

    Raises:
        StoreError: the store cannot be opened.
        SchemaVersionError: the store needs an upgrade that is not automatic, or is newer.
    """
    from expbook.store.sql import SqlStore

    return SqlStore(resolve_url(location), auto_upgrade=auto_upgrade)
