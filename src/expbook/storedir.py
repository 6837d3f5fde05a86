"""The store's directory in the user's work tree: made so that it never shows in ``git status``,
and listed so that git capture leaves the store's own files out of a run's git state.

Standard library only: the launcher of ``expbook run`` makes the spool directory with it.
"""

from __future__ import annotations

import os

from expbook.locations import DEFAULT_DIR, default_artifacts, spool_root, sqlite_path


def make_directory(path: str | os.PathLike[str]) -> None:
    """``os.makedirs(path, exist_ok=True)``, and a ``.gitignore`` holding ``*`` in each
    ``.expbook`` directory it creates, so that a store and its spool never show in the user's
    ``git status``.

    Raises:
        OSError: the directory cannot be created.
    """
    path = os.path.abspath(os.fspath(path))
    new: list[str] = []
    directory = path
    while not os.path.isdir(directory):
        if os.path.basename(directory) == DEFAULT_DIR:
            new.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    os.makedirs(path, exist_ok=True)
    for created in new:
        hide_from_git(created)


def hide_from_git(directory: str | os.PathLike[str]) -> None:
    """Write ``directory/.gitignore`` holding ``*`` unless it has one (best effort: a
    read-only directory keeps going without it)."""
    try:
        with open(os.path.join(directory, ".gitignore"), "x", encoding="utf-8") as file:
            file.write("*\n")
    except OSError:
        pass


def store_files(url: str) -> tuple[str, ...]:
    """What a store keeps on disk, as absolute glob patterns (``*`` matches any text; other
    special characters of the paths are escaped): a ``.expbook`` directory as a whole, else the
    SQLite file with its ``-wal``, ``-shm``, ``-journal`` and ``.bak-*`` siblings and its
    default artifact folder, and the spool. Empty for a store that is not a file (PostgreSQL)."""
    database = sqlite_path(url)
    if database is None:
        return ()
    database = os.path.abspath(database)
    directory = os.path.dirname(database)
    if os.path.basename(directory) == DEFAULT_DIR:
        files = [_escape(directory)]
    else:
        files = [_escape(database) + suffix for suffix in ("", "-wal", "-shm", "-journal")]
        files.append(_escape(database) + ".bak-*")
        files.append(_escape(default_artifacts(url) or database + "-artifacts"))
    spool = os.path.abspath(spool_root(url))
    if not spool.startswith(directory + os.sep) or os.path.basename(directory) != DEFAULT_DIR:
        files.append(_escape(spool))
    return tuple(files)


def _escape(path: str) -> str:
    """``path`` with the characters a glob reads specially bracketed, as ``glob.escape``."""
    return "".join(f"[{char}]" if char in "*?[" else char for char in path)
