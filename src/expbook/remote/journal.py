"""The client's on-disk journal: every run created and every batch written to a remote store
is kept here, durably, before it is sent, and removed once the server has acknowledged it.

Layout, under ``journal_root()`` (``$EXPBOOK_JOURNAL``, else ``~/.cache/expbook/journal``)::

    <key>/                     one folder per server (key: a hash of its URL)
        url                    the server's URL, for ``expbook sync --status``
        <producer>/            one folder per process that wrote (start time and pid)
            lock               held (flock) by that process while it lives
            000000000001.op    an operation: a wire frame (zlib-compressed JSON)
        rejected/              operations the server refused, kept with the reason

A process appends only to its own producer folder, in order, and sends its own entries in
order. A producer whose lock is free has died (a process killed after a flush): the next
process that opens the store, or ``expbook sync``, takes its lock and sends its entries, in
their order, before anything of its own is read. Entries are written to a temporary name,
fsynced and renamed, so an entry is either whole or absent, and one that is there survives a
power cut.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

ENTRY_SUFFIX = ".op"
REJECTED = "rejected"
BLOBS = "blobs"
NEW = ".new"
"""The suffix of a producer folder being made (see :meth:`Journal.own`)."""
UNFINISHED_AFTER = 60.0
"""Seconds after which an unlocked folder being made is taken for its dead maker's."""


def journal_root() -> str:
    explicit = os.environ.get("EXPBOOK_JOURNAL")
    if explicit:
        return explicit
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "expbook", "journal")


def server_key(url: str) -> str:
    return hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Entry:
    """One journaled operation: its file and its frame."""

    path: str
    data: bytes

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


class Producer:
    """The entries of one process, in order.

    A producer made by ``Journal.own`` holds its lock until ``close``; one made by
    ``Journal.orphans`` holds the lock of a process that died, while this one sends its entries.
    """

    def __init__(self, directory: str, lock_fd: int) -> None:
        self.directory = directory
        self._lock_fd = lock_fd
        self._next = self._last_number() + 1

    def _last_number(self) -> int:
        numbers = [int(name[: -len(ENTRY_SUFFIX)]) for name in self._names()]
        return max(numbers, default=0)

    def _names(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.endswith(ENTRY_SUFFIX) and n[:-3].isdigit())

    def append(self, data: bytes) -> Entry:
        """Keep ``data`` durably as the next entry.

        Raises:
            OSError: it cannot be written (a full disk, a read-only folder).
        """
        path = os.path.join(self.directory, f"{self._next:012d}{ENTRY_SUFFIX}")
        temporary = path + ".tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        os.close(fd)
        os.rename(temporary, path)
        _sync_directory(self.directory)
        self._next += 1
        return Entry(path, data)

    def pending(self, limit_bytes: int | None = None) -> list[Entry]:
        """The entries not yet acknowledged, oldest first (up to about ``limit_bytes``)."""
        found: list[Entry] = []
        size = 0
        for name in self._names():
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as file:
                    data = file.read()
            except FileNotFoundError:  # sent and removed meanwhile
                continue
            found.append(Entry(path, data))
            size += len(data)
            if limit_bytes is not None and size >= limit_bytes:
                break
        return found

    def count(self) -> tuple[int, int]:
        """How many entries wait, and their size in bytes."""
        names = self._names()
        size = 0
        for name in names:
            with contextlib.suppress(OSError):
                size += os.path.getsize(os.path.join(self.directory, name))
        return len(names), size

    def remove(self, entries: list[Entry]) -> None:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)

    def close(self, *, remove_if_empty: bool = True) -> None:
        """Release the lock; the folder goes when nothing waits in it."""
        if self._lock_fd < 0:
            return
        if remove_if_empty and not self._names():
            for name in os.listdir(self.directory) if os.path.isdir(self.directory) else ():
                if name.endswith(".tmp") or name == "lock":
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self.directory, name))
            with contextlib.suppress(OSError):
                os.rmdir(self.directory)
        os.close(self._lock_fd)
        self._lock_fd = -1


class Journal:
    """The journal folder of one server."""

    def __init__(self, url: str, root: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.directory = os.path.join(root or journal_root(), server_key(self.url))

    def own(self) -> Producer:
        """A new producer folder for this process, locked.

        Raises:
            OSError: the journal folder cannot be made.
        """
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        url_file = os.path.join(self.directory, "url")
        if not os.path.exists(url_file):
            with open(url_file, "w") as file:
                file.write(self.url + "\n")
        # Made and locked under a name no sender looks at, then renamed into place: a folder
        # that appeared unlocked, even for an instant, is an empty orphan to another process's
        # sender, which removes it (eight clients starting at once lost one that way).
        name = f"{time.time_ns():x}-{os.getpid()}-{threading.get_ident():x}"
        directory = os.path.join(self.directory, name)
        making = directory + NEW
        os.makedirs(making, mode=0o700)
        fd = _lock(making, blocking=True)
        if fd is None:  # only a removal of a NEW folder can do it, and no one removes a locked one
            raise OSError(f"the journal folder {making} went away as it was made")
        os.rename(making, directory)
        return Producer(directory, fd)

    def producers(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(
            os.path.join(self.directory, n)
            for n in names
            if n not in (REJECTED, BLOBS)
            and not n.endswith(NEW)
            and os.path.isdir(os.path.join(self.directory, n))
        )

    def orphans(self, *, skip: str | None = None) -> Iterator[Producer]:
        """The producers whose process has died, each locked by this process while the caller
        uses it (the caller closes it). Live ones, and ones another process is sending, are
        skipped."""
        self._remove_unfinished()
        for directory in self.producers():
            if directory == skip:
                continue
            fd = _lock(directory, blocking=False)
            if fd is None:
                continue
            yield Producer(directory, fd)

    def _remove_unfinished(self) -> None:
        """Remove the folders of producers that died while making them (empty by then): those
        a minute old that no one holds (a folder is briefly unlocked right after it is made)."""
        try:
            names = [n for n in os.listdir(self.directory) if n.endswith(NEW)]
        except FileNotFoundError:
            return
        for name in names:
            making = os.path.join(self.directory, name)
            with contextlib.suppress(OSError):
                if time.time() - os.stat(making).st_mtime < UNFINISHED_AFTER:
                    continue
            fd = _lock(making, blocking=False)
            if fd is None:  # its maker is alive and about to rename it
                continue
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(making, "lock"))
                os.rmdir(making)
            os.close(fd)

    def status(self) -> list[tuple[str, int, int, bool]]:
        """(producer folder, entries, bytes, alive) for each producer with entries waiting."""
        found = []
        for directory in self.producers():
            fd = _lock(directory, blocking=False)
            alive = fd is None
            producer = Producer(directory, fd if fd is not None else -1)
            count, size = producer.count()
            if fd is not None:
                os.close(fd)
            if count:
                found.append((directory, count, size, alive))
        return found

    def reject(self, entry: Entry, reason: str) -> str:
        """Keep a refused entry with the reason next to it; returns where it is."""
        directory = os.path.join(self.directory, REJECTED)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        producer = os.path.basename(os.path.dirname(entry.path))
        target = os.path.join(directory, f"{producer}-{entry.name}")
        os.replace(entry.path, target)
        with open(target[: -len(ENTRY_SUFFIX)] + ".reason", "w") as file:
            json.dump({"reason": reason, "rejected_at": time.time()}, file)
        return target

    @property
    def blob_directory(self) -> str:
        """Artifact contents logged while the server could not take them (named by their
        SHA-256), sent before the journal's entries."""
        return os.path.join(self.directory, BLOBS)

    def blobs(self) -> list[tuple[str, int]]:
        """(path, size) of each kept artifact content."""
        try:
            names = os.listdir(self.blob_directory)
        except FileNotFoundError:
            return []
        found = []
        for name in sorted(names):
            path = os.path.join(self.blob_directory, name)
            if len(name) == 64 and not name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    found.append((path, os.path.getsize(path)))
        return found

    def keep_blob(self, chunks: Iterator[bytes]) -> tuple[str, int]:
        """Copy content into the journal, fsynced, named by its SHA-256; returns (sha256,
        size).

        Raises:
            OSError: it cannot be written (a full disk).
        """
        os.makedirs(self.blob_directory, mode=0o700, exist_ok=True)
        temporary = os.path.join(self.blob_directory, f"{os.getpid()}-{time.time_ns()}.tmp")
        digest, size = hashlib.sha256(), 0
        try:
            with open(temporary, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            os.replace(temporary, os.path.join(self.blob_directory, sha256))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _sync_directory(self.blob_directory)
        return sha256, size

    def rejected(self) -> list[str]:
        directory = os.path.join(self.directory, REJECTED)
        try:
            return sorted(
                os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".op")
            )
        except FileNotFoundError:
            return []


def _lock(directory: str, *, blocking: bool) -> int | None:
    """The fd holding ``directory/lock`` exclusively, or None when another process holds it."""
    try:
        fd = os.open(os.path.join(directory, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:  # the folder was removed meanwhile
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    if not os.path.isdir(directory):  # removed by its sender before we got the lock
        os.close(fd)
        return None
    return fd


def _sync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
