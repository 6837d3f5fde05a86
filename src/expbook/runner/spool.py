"""The spool: the files through which ``expbook run``'s launcher hands a run to its recorder.

The spool is the source of truth for a run until the store has all of it: a recorder that is
killed, a store that cannot be written, a full disk — the spool keeps what the program printed
and how it ended, and ``expbook recover`` (or a restarted recorder) stores it later, exactly
once. One directory per run, ``<spool root>/<run UUID>/``:

- ``meta.json``    — written by the launcher before anything starts: the command, options, times;
- ``output``       — the program's output as it was printed: frames of (stream, time, bytes).
  It only ever holds whole frames (a write that fails is cut back), so a reader never waits for
  the rest of a frame that will not come;
- ``exit``         — reserved by the launcher at the start (so that a full disk cannot keep it
  from being written), filled in when the program has ended: its exit code or signal, any
  signal forwarded, whether spooling failed;
- ``lock``         — locked (``flock``) by the launcher and every recorder while they work on the
  spool, and released by the kernel when they die: a spool that is neither locked nor ``done``
  is orphaned;
- ``ready``        — written by the recorder once the run exists in the store (its number);
- ``progress``     — written by the recorder: how much of ``output`` it has handed to the store;
- ``done``         — written by the recorder once the store has everything (status, counts);
- ``failed.json``  — written by a recorder that could not finish (one line, the reason);
- ``attached``     — created by a Python program that attached to the run with ``start_run``;
- ``recorder.log`` — the recorder's own messages.

JSON files are written to a temporary name and renamed, so a reader never sees half a file.
Standard library only: the launcher uses this module on its critical path.
"""

from __future__ import annotations

import json
import os
import struct
import time

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs 10 ms
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

FRAME = struct.Struct(">cId")
"""A frame header: stream (b"o" stdout, b"e" stderr), length of the data, time (Unix seconds)."""
STREAMS = {b"o": "stdout", b"e": "stderr"}
EXIT_RESERVED = 4096
"""Bytes reserved for the exit report when the spool is made."""


def write_json(path: str, data: dict[str, Any]) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


def read_json(path: str) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None if it does not exist (yet) or is not whole."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:  # a reserved file being filled in right now
        return None


class Spool:
    """One run's spool directory. Every reader and writer of the spool goes through this."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.run_id = os.path.basename(path.rstrip(os.sep))
        self.created_lock: int | None = None  # the lock descriptor ``create`` took

    def __repr__(self) -> str:
        return f"Spool({self.path!r})"

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def output(self) -> str:
        return self.file("output")

    # --- made by the launcher -------------------------------------------------------------------

    @classmethod
    def create(cls, root: str, run_id: str, meta: dict[str, Any]) -> Spool:
        """Make the directory, locked for the caller (``created_lock``), with ``meta.json`` and
        the reserved exit report. The lock is taken before ``meta.json`` makes the spool
        visible to ``find_spools``: another run's launcher looking for orphans at that moment
        must see it active, never orphaned.

        Raises:
            OSError: the directory or its files cannot be written (nothing is left locked).
        """
        from expbook.storedir import make_directory

        spool = cls(os.path.join(root, run_id))
        make_directory(root)  # a new .expbook/ gets its .gitignore
        os.mkdir(spool.path)
        spool.created_lock = spool.lock()
        try:
            spool._write_new(meta)
        except OSError:
            os.close(spool.created_lock)  # type: ignore[arg-type]
            spool.created_lock = None
            raise
        return spool

    def _write_new(self, meta: dict[str, Any]) -> None:
        """``meta.json`` and the exit report's reserved bytes."""
        write_json(self.file("meta.json"), meta)
        fd = os.open(self.file("exit"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b" " * EXIT_RESERVED)
        finally:
            os.close(fd)

    def meta(self) -> dict[str, Any] | None:
        return read_json(self.file("meta.json"))

    def write_exit(self, report: dict[str, Any]) -> None:
        """Fill in the exit report, in the bytes reserved for it (a full disk cannot refuse).

        Raises:
            OSError: it could not be written.
        """
        data = json.dumps(report).encode()
        if len(data) > EXIT_RESERVED:
            write_json(self.file("exit"), report)
            return
        fd = os.open(self.file("exit"), os.O_WRONLY)
        try:
            os.pwrite(fd, data.ljust(EXIT_RESERVED), 0)
        finally:
            os.close(fd)

    def exit_report(self) -> dict[str, Any] | None:
        """How the program ended, or None while it runs (or if the launcher died first)."""
        return read_json(self.file("exit"))

    # --- the lock: who works on this spool ------------------------------------------------------

    def lock(self) -> int | None:
        """Lock the spool for this process (and those it passes the descriptor to); the open
        descriptor, or None if another process holds the lock. The kernel releases the lock when
        the last process holding the descriptor exits, however it exits."""
        import fcntl

        fd = os.open(self.file("lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        return fd

    def is_locked(self) -> bool:
        """Whether a launcher or a recorder is working on the spool now."""
        try:
            fd = self.lock()
        except OSError:
            return False
        if fd is None:
            return True
        os.close(fd)
        return False

    # --- written by the recorder ----------------------------------------------------------------

    def mark_ready(self, number: int) -> None:
        write_json(self.file("ready"), {"number": number})

    def ready(self) -> dict[str, Any] | None:
        return read_json(self.file("ready"))

    def write_progress(self, offset: int) -> None:
        write_json(self.file("progress"), {"offset": offset, "at": time.time()})

    def progress(self) -> int:
        """Bytes of ``output`` the recorder has handed to the store so far."""
        data = read_json(self.file("progress"))
        return int(data["offset"]) if data else 0

    def mark_done(self, result: dict[str, Any]) -> None:
        write_json(self.file("done"), result)

    def done(self) -> dict[str, Any] | None:
        return read_json(self.file("done"))

    def mark_failed(self, error: str) -> None:
        write_json(self.file("failed.json"), {"error": error, "at": time.time()})

    def failed(self) -> dict[str, Any] | None:
        """Why the last recorder could not finish (None if none failed, or it was reported)."""
        return read_json(self.file("failed.json"))

    def failure_reported(self) -> None:
        try:  # noqa: SIM105 - contextlib costs an import on the critical path
            os.replace(self.file("failed.json"), self.file("failed-reported.json"))
        except OSError:
            pass

    def output_size(self) -> int:
        try:
            return os.path.getsize(self.output)
        except OSError:
            return 0

    # --- attaching a Python program -------------------------------------------------------------

    def claim_attached(self) -> bool:
        """Create the ``attached`` marker (with the time, for the recorder) unless it exists;
        False if another process claimed it first. Without a spool (cleaned up), True."""
        marker = self.file("attached")
        temporary = f"{marker}.{os.getpid()}"
        try:
            with open(temporary, "w") as handle:
                handle.write(json.dumps({"at": time.time(), "pid": os.getpid()}))
            os.link(temporary, marker)  # atomic: fails if another process claimed it first
        except FileExistsError:
            return False
        except OSError:
            return True  # no spool to claim in: attach, as the only one
        finally:
            try:  # noqa: SIM105
                os.unlink(temporary)
            except OSError:
                pass
        return True

    def attached_at(self) -> float | None:
        """When the program attached through the Python API, or None."""
        data = read_json(self.file("attached"))
        return data["at"] if data else None

    # --- the end --------------------------------------------------------------------------------

    def state(self) -> str:
        """``active`` (locked: being run or recorded — a launcher may be about to read its
        ``done``), ``done`` (stored, and nobody works on it: only the directory is left), or
        ``orphaned`` (nobody works on it and the store lacks some of it)."""
        if self.is_locked():
            return "active"
        return "done" if self.done() is not None else "orphaned"

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.path, ignore_errors=True)


def alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists (False for None; True when it exists but belongs to
    another user)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_spools(roots: list[str], url: str) -> list[Spool]:
    """The spools under ``roots`` of runs recorded to the store at ``url``, oldest first."""
    found: list[tuple[float, Spool]] = []
    for root in roots:
        try:
            entries = os.listdir(root)
        except OSError:
            continue
        for entry in entries:
            spool = Spool(os.path.join(root, entry))
            meta = spool.meta()
            if meta is not None and meta.get("store") == url:
                found.append((meta.get("started_at", 0.0), spool))
    return [spool for _, spool in sorted(found, key=lambda item: item[0])]


def find_orphans(roots: list[str], url: str) -> list[Spool]:
    """The orphaned spools of the store at ``url``, oldest first; spools whose run is stored
    (a recorder wrote ``done`` but could not remove them) are removed on the way."""
    orphans = []
    for spool in find_spools(roots, url):
        state = spool.state()
        if state == "done":
            spool.remove()
        elif state == "orphaned":
            orphans.append(spool)
    return orphans


def orphans_line(roots: list[str], url: str) -> str | None:
    """The one line ``expbook run`` and ``expbook ls`` print when runs of the store at ``url``
    wait to be recovered (None when none do, or the spool roots cannot be read)."""
    try:
        count = len(find_orphans(roots, url))
    except OSError:
        return None
    if not count:
        return None
    runs = "1 earlier run waits" if count == 1 else f"{count} earlier runs wait"
    return (
        f"{runs} to be recovered (their recording was cut short; `expbook recover --list` "
        "shows them): `expbook recover` stores them"
    )


def size_text(count: float) -> str:
    """``512 bytes``, ``1.4 MB``: an amount of output in messages."""
    if count < 1000:
        return f"{count:.0f} bytes"
    for unit in ("KB", "MB", "GB"):
        count /= 1000
        if count < 1000 or unit == "GB":
            break
    return f"{count:.1f} {unit}"


class FrameReader:
    """Reads the frames appended to an ``output`` file so far, resuming where it stopped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self._handle: Any = None
        self._partial = b""

    def read(self, limit: int = 1 << 22) -> Iterator[tuple[str, float, bytes, int]]:
        """(stream, time, data, end) for each complete frame, up to about ``limit`` bytes;
        ``end`` is the offset in the file just after the frame."""
        if self._handle is None:
            try:
                self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open across calls
            except FileNotFoundError:
                return
        data = self._partial + self._handle.read(limit)
        position = 0
        base = self.offset
        while len(data) - position >= FRAME.size:
            stream, length, at = FRAME.unpack_from(data, position)
            end = position + FRAME.size + length
            if end > len(data):
                break
            yield STREAMS.get(stream, "stdout"), at, data[position + FRAME.size : end], base + end
            position = end
        self._partial = data[position:]
        self.offset += position

    def at_end(self) -> bool:
        """Whether every byte written to the file so far has been read as whole frames."""
        try:
            size = os.path.getsize(self.path)
        except FileNotFoundError:
            return True
        return self.offset >= size and not self._partial

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
