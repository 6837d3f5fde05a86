"""Store locations, SQLAlchemy engines and retrying transactions.

SQLite: WAL journal (readers never block the writer), ``synchronous=NORMAL`` (a committed
transaction survives the process being killed; only an OS crash or power loss can lose the last
ones), foreign keys on, a 5 s busy timeout, and ``BEGIN IMMEDIATE`` for every write transaction
so two writers queue on the lock instead of failing on a read-to-write upgrade. Whatever still
comes back as "database is locked" is retried with backoff by ``retrying`` until the caller's
deadline; past it, the error is a ``StoreUnavailableError`` (``store_error``), which the run
writer keeps retrying quietly. ``FileGuard`` notices a store file deleted or replaced while open.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from expbook.errors import (
    StoreError,
    StoreRefusedError,
    StoreReplacedError,
    StoreUnavailableError,
)
from expbook.locations import DEFAULT_DIR, default_location, resolve_url  # noqa: F401 - re-exported
from expbook.storedir import hide_from_git, make_directory

T = TypeVar("T")

RETRY_SECONDS = 300.0
BUSY_SECONDS = 5.0
MIN_SQLITE = (3, 35)  # RETURNING; NULLS LAST needs 3.30


def display_url(url: str) -> str:
    """The URL as users write it (no password, no driver name), for messages."""
    try:
        shown = sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url
    return shown.replace("postgresql+psycopg://", "postgresql://", 1)


def make_engine(url: str) -> Engine:
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        try:
            return sa.create_engine(parsed, pool_pre_ping=True, pool_size=4, max_overflow=8)
        except ModuleNotFoundError as exc:
            raise StoreError(
                "PostgreSQL stores need psycopg: pip install 'expbook[postgres]'"
            ) from exc
    raise StoreError(f"store {display_url(url)!r}: unsupported database {parsed.drivername!r}")


def _sqlite_engine(url: sa.URL) -> Engine:
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE))
        raise StoreError(
            f"expbook needs SQLite {need} or newer; this Python has {sqlite3.sqlite_version}"
        )
    database = url.database or ""
    if database and database != ":memory:":
        directory = Path(database).parent
        try:
            make_directory(directory)
        except OSError as exc:
            raise StoreError(f"cannot create the store directory {directory}: {exc}") from exc
        if directory.name == DEFAULT_DIR and not Path(database).exists():
            hide_from_git(str(directory))  # a new store in a .expbook made by someone else
    # A short busy timeout: waiting longer is `retrying`'s job, which honours callers' deadlines.
    engine = sa.create_engine(
        url, connect_args={"timeout": BUSY_SECONDS, "check_same_thread": False}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
            if mode != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get("expbook_write") else ""
        connection.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying at once: a locked/busy SQLite file, a PostgreSQL
    serialization failure or deadlock, a dropped connection."""
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    name = getattr(error.orig, "sqlite_errorname", "")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return True
    text = str(error.orig).lower() if error.orig is not None else str(error).lower()
    if (
        "database is locked" in text
        or "database is busy" in text
        or "database table is locked" in text
    ):
        return True
    code = getattr(error.orig, "sqlstate", None)
    if code in ("40001", "40P01", "55P03", "57P01", "08006", "08003", "08001"):
        return True
    return isinstance(error, sa.exc.OperationalError) and "server closed the connection" in text


_UNAVAILABLE_SQLITE = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN",
                       "SQLITE_PROTOCOL", "SQLITE_NOMEM")  # fmt: skip
_UNAVAILABLE_SQLSTATE = ("08", "53", "57", "58", "25006", "55P03", "40")


def is_unavailable(error: BaseException) -> bool:
    """True when the store as a whole cannot be written now but may be later, whatever the
    write: everything ``is_transient`` retries, plus a full disk, an I/O error, a read-only
    file or server (a failover), too many connections, a server shutting down. False for a
    database refusing a particular change (a constraint, a value, text it cannot hold)."""
    if is_transient(error) or isinstance(error, sa.exc.TimeoutError):
        return True
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    if getattr(error.orig, "sqlite_errorname", "").startswith(_UNAVAILABLE_SQLITE):
        return True
    code = getattr(error.orig, "sqlstate", None) or ""
    return code.startswith(_UNAVAILABLE_SQLSTATE)


def store_error(url: str, error: sa.exc.DBAPIError | sa.exc.TimeoutError) -> StoreError:
    """The StoreError to raise for a database error: ``StoreUnavailableError`` when the same
    write can succeed later (see ``is_unavailable``), else ``StoreRefusedError``."""
    orig = getattr(error, "orig", None)
    text = str(orig) if orig is not None else str(error)
    reason = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    message = f"store {display_url(url)}: {reason}"
    if is_unavailable(error):
        return StoreUnavailableError(message)
    return StoreRefusedError(message, reason)


class FileGuard:
    """Notices a SQLite store file deleted or replaced while the store is open.

    SQLite keeps writing through open connections into the file they opened, even once it is
    unlinked or another file has taken its name: such writes are lost without an error. The
    guard remembers the file's (device, inode) and compares it with the path's before each
    write transaction (one ``stat``, about a microsecond). A replaced file is adopted (the
    connections to the old one are dropped) after the one write that noticed it has failed;
    a deleted file is never re-created by a write.
    """

    def __init__(self, engine: Engine) -> None:
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        memory = not database or database == ":memory:" or database.startswith("file:")
        self.path = None if memory else os.path.abspath(database)  # type: ignore[arg-type]
        self._identity: tuple[int, int] | None = None
        self._identity = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            return None
        except OSError:  # cannot tell: let SQLite report it
            return self._identity
        return found.st_dev, found.st_ino

    def check(self, engine: Engine) -> None:
        """Raises StoreReplacedError when the file is no longer the one the store opened."""
        if self.path is None or self._identity is None:
            return
        now = self._stat()
        if now == self._identity:
            return
        if now is None:
            raise StoreReplacedError(
                f"store file {self.path} was deleted while open; nothing more is written to it"
            )
        self._identity = now
        engine.dispose()
        raise StoreReplacedError(
            f"store file {self.path} was replaced by another file while open; "
            "nothing more is written to the old one"
        )


def retrying(
    action: Callable[[], T],
    *,
    deadline: float = RETRY_SECONDS,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Call ``action`` until it succeeds, retrying transient errors with jittered exponential
    backoff for up to ``deadline`` seconds."""
    give_up = time.monotonic() + deadline
    delay = 0.005
    while True:
        try:
            return action()
        except Exception as exc:
            if not retry_on(exc) or time.monotonic() + delay > give_up:
                raise
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 1.0)


@contextmanager
def transaction(engine: Engine, *, write: bool) -> Iterator[Connection]:
    """A connection inside one transaction; writes take SQLite's lock at BEGIN."""
    with engine.connect() as connection:
        if write:
            connection = connection.execution_options(expbook_write=True)
        with connection.begin():
            yield connection
