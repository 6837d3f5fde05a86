"""What the recorder's reading half sends its storing half, written down once.

Each message is a ``NamedTuple``; on the pipe it is ``marshal`` data (fast, and built-in types
only, so a message goes as a plain tuple: its kind, then its fields in this order) after its
length. Both halves use ``encode``/``read_message`` and the field names, never positions.
Standard library only (the reading half never imports the database code).
"""

from __future__ import annotations

import marshal
import struct
from typing import IO, Any, NamedTuple

HEADER = struct.Struct("<I")

SUMMARY_FIELDS = (
    "value", "unit", "time", "step", "epoch",
    "min", "min_step", "min_epoch", "max", "max_step", "max_epoch",
)  # fmt: skip
"""The fields of a parsed summary value after its key, in the order of
``expbook.store.base.SummaryValue`` (a test checks they are the same)."""


class Batch(NamedTuple):
    """Output read and parsed since the last batch."""

    output: list[tuple[str, float, str]]
    """(stream, time, whole lines) in printed order."""
    series: list[tuple[str, bytes, bytes, bytes, bytes]]
    """Per key: the key, then steps (``q``), values, times and epochs (``d``) as array bytes."""
    values: list[tuple[Any, ...]]
    """Parsed summary values: the key, then ``SUMMARY_FIELDS``."""
    warnings: list[str]
    """Points that could not be stored, and such (shown in the summary line)."""
    errors: list[str]
    """Failures of the recording itself (a parser that broke): the run's recording error."""
    offset: int
    """Bytes of the spool's ``output`` read and parsed up to this batch."""
    params: dict[str, Any] = {}  # never changed: a message is read-only
    """Params the framework hooks recorded (autolog)."""
    autolog: dict[str, int] = {}
    """Bytes of each autolog records file read up to this batch (``runs.recorded_autolog``)."""


class End(NamedTuple):
    """All output is read: how the program ended and what the summary line needs."""

    exit: dict[str, Any] | None
    """The launcher's exit report, or None if the launcher died before the program ended."""
    lines: int
    points: int
    values: int
    keys: int
    tail: list[str]
    """The last lines of output (the error of a failed run)."""
    attached_at: float | None
    """When the program attached through the Python API."""
    offset: int
    frameworks: dict[str, str | None] = {}
    """The frameworks autolog hooked (name -> version), for the summary line."""
    autolog_points: int = 0
    """Points the framework hooks recorded."""


KINDS: dict[str, type[Batch] | type[End]] = {"batch": Batch, "end": End}
_NAMES = {kind: name for name, kind in KINDS.items()}


def encode(message: Batch | End) -> bytes:
    """The message framed for the pipe: its length, then the data."""
    data = marshal.dumps((_NAMES[type(message)], *message))
    return HEADER.pack(len(data)) + data


def read_message(source: IO[bytes]) -> Batch | End | None:
    """The next message, or None once the sender has closed the pipe (or died mid-message)."""
    header = source.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (length,) = HEADER.unpack(header)
    data = source.read(length)
    if len(data) < length:
        return None
    kind, *fields = marshal.loads(data)
    return KINDS[kind]._make(fields)
