"""The spool: files through which ``expbook run``'s launcher hands a run to its recorder.

One directory per run, ``<spool root>/<run UUID>/``:

- ``meta.json``   — written by the launcher before anything starts: the command, options, times;
- ``output``      — the program's output as it is printed: frames of (stream, time, bytes);
- ``exit.json``   — written by the launcher when the program has ended: exit code or signal;
- ``ready``       — written by the recorder once the run exists in the store (its number);
- ``done``        — written by the recorder when everything is stored (status, counts);
- ``attached``    — created by a Python program that attached to the run with ``start_run``;
- ``recorder.log``— the recorder's own messages.

JSON files are written to a temporary name and renamed, so a reader never sees half a file.
Standard library only: the launcher uses this module on its critical path.
"""

from __future__ import annotations

import json
import os
import struct

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs 10 ms
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

FRAME = struct.Struct(">cId")
"""A frame header: stream (b"o" stdout, b"e" stderr), length of the data, time (Unix seconds)."""
STREAMS = {b"o": "stdout", b"e": "stderr"}


def write_json(path: str, data: dict[str, Any]) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


def read_json(path: str) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None if it does not exist (yet)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


class FrameReader:
    """Reads the frames appended to an ``output`` file so far, resuming where it stopped."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self._handle: Any = None
        self._partial = b""

    def read(self, limit: int = 1 << 22) -> Iterator[tuple[str, float, bytes]]:
        """(stream, time, data) for each complete frame, up to about ``limit`` bytes."""
        if self._handle is None:
            try:
                self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open across calls
            except FileNotFoundError:
                return
        data = self._partial + self._handle.read(limit)
        position = 0
        while len(data) - position >= FRAME.size:
            stream, length, at = FRAME.unpack_from(data, position)
            end = position + FRAME.size + length
            if end > len(data):
                break
            yield STREAMS.get(stream, "stdout"), at, data[position + FRAME.size : end]
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
