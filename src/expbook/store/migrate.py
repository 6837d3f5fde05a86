"""Schema versions: create new stores, upgrade old ones, refuse newer ones.

Opening a store reads its Alembic revision with one query. When it is not the head revision:

- an empty database is created by running every migration;
- an older SQLite store (one user's file) is copied to ``<file>.bak-<revision>`` and upgraded;
- an older PostgreSQL store (shared by a team, whose other clients may still be older) is left
  alone and the error says to run ``expbook db upgrade --store URL``;
- a store from a newer expbook is refused with the versions involved.

Migrations run inside one transaction that holds the write lock (SQLite ``BEGIN IMMEDIATE``,
a PostgreSQL advisory lock), so processes that open a new store at the same time create it once.
Alembic is imported only when a migration actually runs.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from expbook.errors import SchemaVersionError, StoreError
from expbook.store.engine import display_url, retrying, transaction

REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009")
"""Every schema revision, oldest first; the last is the head. A test checks it against Alembic."""
HEAD = REVISIONS[-1]
_PG_LOCK_ID = 0x657870626F6F6B  # "expbook"


def current_version(connection: Connection) -> str | None:
    """The revision recorded in the database, or None when it has none."""
    if not sa.inspect(connection).has_table("alembic_version"):
        return None
    return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def ensure_schema(engine: Engine, *, auto_upgrade: bool) -> None:
    """Make sure the store is at the head revision (see the module docstring).

    Raises:
        SchemaVersionError: the store is newer, or older and ``auto_upgrade`` is off.
    """

    version = _read_version(engine)
    if version == HEAD:
        return
    if auto_upgrade and version in REVISIONS:
        _backup_sqlite(engine, version)
    retrying(lambda: _migrate(engine, auto_upgrade=auto_upgrade))


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Upgrade the store to the head revision now; returns (old revision, new revision)."""
    version = _read_version(engine)
    if version in REVISIONS and version != HEAD:
        _backup_sqlite(engine, version)
    return retrying(lambda: _migrate(engine, auto_upgrade=True))


def _read_version(engine: Engine) -> str | None:
    def check() -> str | None:
        with transaction(engine, write=False) as connection:
            return current_version(connection)

    return retrying(check)


def _migrate(engine: Engine, *, auto_upgrade: bool) -> tuple[str | None, str]:
    with transaction(engine, write=True) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_ID)))
        version = current_version(connection)
        if version == HEAD:
            return version, HEAD
        url = display_url(str(engine.url))
        if version is None:
            if sa.inspect(connection).has_table("runs"):
                raise StoreError(f"{url} has a 'runs' table but no expbook schema version")
        elif version not in REVISIONS:
            raise SchemaVersionError(
                f"store {url} has schema {version}, newer than this expbook understands "
                f"({HEAD}); upgrade expbook (pip install -U expbook)"
            )
        elif not auto_upgrade:
            raise SchemaVersionError(
                f"store {url} has schema {version}; this expbook needs {HEAD}. "
                f"Run: expbook db upgrade --store {url}"
            )
        _run_alembic(connection)
        return version, HEAD


def _backup_sqlite(engine: Engine, version: str) -> None:
    """Copy a SQLite store to ``<file>.bak-<version>`` before upgrading it.

    Done before the migration's write transaction, on connections of its own: SQLite's backup
    reports LOCKED forever when its source connection is itself in a write transaction.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return
    target = f"{database}.bak-{version}"
    if os.path.exists(target):
        return
    partial = f"{target}.{os.getpid()}.partial"
    with (
        closing(sqlite3.connect(database, timeout=60)) as source,
        closing(sqlite3.connect(partial)) as copy,
    ):
        source.backup(copy)
    os.replace(partial, target)


def _run_alembic(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "expbook.store:migrations")
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
