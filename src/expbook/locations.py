"""Where things live: store locations and spool directories.

Standard library only (``os.path``, not even ``pathlib``): ``expbook run`` resolves its store
here before the program starts, so this module is on the critical path of every run.
"""

from __future__ import annotations

import os

from expbook.errors import StoreError

DEFAULT_DIR = ".expbook"
DEFAULT_FILE = "expbook.db"


def default_location(cwd: str | os.PathLike[str] | None = None) -> str:
    """``.expbook/expbook.db`` at the root of the git work tree containing ``cwd``, else in
    ``cwd``. No ``git`` process is started: the root is the nearest directory with ``.git``."""
    start = os.path.realpath(os.fspath(cwd) if cwd is not None else os.getcwd())
    directory = start
    while True:
        if os.path.exists(os.path.join(directory, ".git")):
            return os.path.join(directory, DEFAULT_DIR, DEFAULT_FILE)
        parent = os.path.dirname(directory)
        if parent == directory:
            return os.path.join(start, DEFAULT_DIR, DEFAULT_FILE)
        directory = parent


def resolve_url(location: str | os.PathLike[str] | None = None) -> str:
    """A SQLAlchemy URL for a store location: the argument, else ``EXPBOOK_STORE``, else the
    default. A location is a file path (a directory means ``DIR/expbook.db``), ``sqlite:///...``,
    ``postgresql://...``, or the ``https://`` (``http://``) address of an ``expbook server``.

    Raises:
        StoreError: the location has a scheme expbook does not support.
    """
    if location is None or str(location) == "":
        location = os.environ.get("EXPBOOK_STORE") or default_location()
    text = os.fspath(location)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if text.startswith(("postgresql+", "sqlite:")):
        return text
    if text.startswith(("http://", "https://")):
        return text.rstrip("/")  # an ``expbook server``: expbook.remote.HttpStore
    if "://" in text:
        raise StoreError(
            f"store {text!r}: unknown scheme; use a file path, sqlite:///PATH, postgresql://... "
            "or the https:// address of an expbook server"
        )
    path = os.path.expanduser(text)
    if os.path.isdir(path):
        path = os.path.join(path, DEFAULT_FILE)
    return "sqlite:///" + os.path.abspath(path)


def sqlite_path(url: str) -> str | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs and in-memory SQLite)."""
    for prefix in ("sqlite:///", "sqlite+pysqlite:///"):
        if url.startswith(prefix):
            path = url[len(prefix) :].split("?", 1)[0]
            return path if path and path != ":memory:" else None
    return None


def default_artifacts(url: str) -> str | None:
    """Where a store keeps artifact contents unless told otherwise: ``artifacts/`` next to a
    store file named ``expbook.db`` (``.expbook/artifacts``), ``<file>-artifacts/`` next to a
    store file of another name (two stores in one folder never share blobs that one of them
    would remove); None for a store that is not a file (PostgreSQL)."""
    database = sqlite_path(url)
    if database is None:
        return None
    if os.path.basename(database) == DEFAULT_FILE:
        return os.path.join(os.path.dirname(database), "artifacts")
    return database + "-artifacts"


def spool_root(url: str) -> str:
    """Where ``expbook run`` keeps a run's output until the recorder has stored it: next to a
    SQLite store (``.expbook/spool``), else ``$EXPBOOK_SPOOL_ROOT`` or
    ``~/.cache/expbook/spool``."""
    explicit = os.environ.get("EXPBOOK_SPOOL_ROOT")
    if explicit:
        return explicit
    database = sqlite_path(url)
    if database is not None:
        return os.path.join(os.path.dirname(database), "spool")
    return _cache_spool()


def spool_roots(url: str) -> list[str]:
    """Where spools for the store at ``url`` may be: ``spool_root(url)`` first, then the
    fallback used when that cannot be written (a read-only store directory, a full disk):
    ``~/.cache/expbook/spool``, else a directory of this user's in the temporary directory."""
    temporary = os.environ.get("TMPDIR") or "/tmp"
    fallback = os.path.join(temporary, f"expbook-spool-{os.getuid()}")
    roots = [spool_root(url), _cache_spool(), fallback]
    unique: list[str] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def _cache_spool() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "expbook", "spool")
