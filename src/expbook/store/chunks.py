"""Series stored as chunks: packed arrays of up to ``CHUNK_POINTS`` points per (run, key).

Why chunks and not one row per point: at the same SQLite write speed as bare rows, a chunk needs
no per-point index, and a 1,000,000-point series reads back in a few hundred rows instead of a
million (see docs/design.md for the measurements).

Encoding ``raw1``: little-endian int64 steps, float64 values, float64 wall times, and float64
epochs (NaN = none; the column is NULL when no point of the chunk has an epoch). Every chunk is
sorted by step, ties in the order logged.

Compaction: a writer that flushes a few points at a time would leave one tiny chunk per flush.
``ChunkStack`` merges them like a binary counter: a new piece merges into the chunk below it while
that chunk is no larger, so each point is rewritten O(log CHUNK_POINTS) times and a series
settles into full chunks. The stack lives in the writing process only; chunks it has let go of
("sealed") are never touched again.
"""

from __future__ import annotations

import heapq
import itertools
import math
import operator
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

CHUNK_POINTS = 2048
CODEC = "raw1"
_NAN = math.nan
_BIG_ENDIAN = sys.byteorder == "big"
_NAN_BYTES = struct.pack("<d", _NAN)  # as stored: little-endian


@dataclass(slots=True)
class Points:
    """A growable run of points for one key (steps, values, times, epochs)."""

    steps: array = field(default_factory=lambda: array("q"))
    values: array = field(default_factory=lambda: array("d"))
    times: array = field(default_factory=lambda: array("d"))
    epochs: array = field(default_factory=lambda: array("d"))

    def __len__(self) -> int:
        return len(self.steps)

    def append(self, step: int, value: float, time: float, epoch: float | None) -> None:
        self.steps.append(step)
        self.values.append(value)
        self.times.append(time)
        self.epochs.append(_NAN if epoch is None else epoch)

    def extend(self, other: Points) -> None:
        self.steps.extend(other.steps)
        self.values.extend(other.values)
        self.times.extend(other.times)
        self.epochs.extend(other.epochs)

    def slice(self, start: int, stop: int) -> Points:
        return Points(
            self.steps[start:stop],
            self.values[start:stop],
            self.times[start:stop],
            self.epochs[start:stop],
        )

    def is_sorted(self) -> bool:
        steps = self.steps
        return all(map(operator.le, steps, itertools.islice(steps, 1, None)))  # C speed

    def sorted(self) -> Points:
        """A copy ordered by step; equal steps keep their order (stable)."""
        if self.is_sorted():
            return self
        order = sorted(range(len(self.steps)), key=self.steps.__getitem__)
        return self._take(order)

    def _take(self, order: Iterable[int]) -> Points:
        out = Points()
        for i in order:
            out.steps.append(self.steps[i])
            out.values.append(self.values[i])
            out.times.append(self.times[i])
            out.epochs.append(self.epochs[i])
        return out


def merge_sorted(parts: list[Points]) -> Points:
    """Concatenate step-sorted parts into one step-sorted run (stable across parts)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Points()
    if all(parts[i].steps[-1] <= parts[i + 1].steps[0] for i in range(len(parts) - 1)):
        out = Points()
        for part in parts:
            out.extend(part)
        return out
    out = Points()
    for _, n, i in heapq.merge(*(_keyed(part, n) for n, part in enumerate(parts))):
        part = parts[n]
        out.append(part.steps[i], part.values[i], part.times[i], part.epochs[i])
    return out


def _keyed(part: Points, n: int) -> Iterator[tuple[int, int, int]]:
    """(step, part number, index) for a stable k-way merge by step."""
    for i, step in enumerate(part.steps):
        yield step, n, i


def _pack(values: array) -> bytes:
    if _BIG_ENDIAN:  # pragma: no cover - no big-endian CI machine
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def _unpack(typecode: str, data: bytes) -> array:
    values = array(typecode)
    values.frombytes(data)
    if _BIG_ENDIAN:  # pragma: no cover
        values.byteswap()
    return values


def encode(points: Points) -> dict[str, object]:
    """Column values of one chunk row for step-sorted ``points``."""
    has_epoch = not all(map(math.isnan, points.epochs))
    return {
        "n": len(points),
        "step_min": points.steps[0],
        "step_max": points.steps[-1],
        "codec": CODEC,
        "steps": _pack(points.steps),
        "vals": _pack(points.values),
        "times": _pack(points.times),
        "epochs": _pack(points.epochs) if has_epoch else None,
    }


def decode(codec: str, steps: bytes, vals: bytes, times: bytes, epochs: bytes | None) -> Points:
    """The points of one chunk row."""
    if codec != CODEC:
        raise ValueError(f"unknown chunk codec {codec!r}; upgrade expbook")
    step_array = _unpack("q", steps)
    epoch_array = (
        _unpack("d", epochs) if epochs is not None else array("d", [_NAN]) * len(step_array)
    )
    return Points(step_array, _unpack("d", vals), _unpack("d", times), epoch_array)


def decode_rows(rows: Sequence[Sequence[Any]]) -> Points:
    """The points of chunk rows ``(codec, steps, vals, times, epochs)`` in the order they were
    written, step-sorted. When the chunks follow each other by step (the usual case) each column
    is one join of bytes and one conversion, not one per chunk (a 1,000,000-point series reads
    in about half the time)."""
    rows = [row for row in rows if row[1]]
    for row in rows:
        if row[0] != CODEC:
            raise ValueError(f"unknown chunk codec {row[0]!r}; upgrade expbook")
    steps = _unpack("q", b"".join(row[1] for row in rows))
    ends = list(itertools.accumulate(len(row[1]) // 8 for row in rows))
    if any(steps[end - 1] > steps[end] for end in ends[:-1]):
        return merge_sorted([decode(*row) for row in rows])
    epochs = b"".join(
        row[4] if row[4] is not None else _NAN_BYTES * (len(row[1]) // 8) for row in rows
    )
    return Points(
        steps,
        _unpack("d", b"".join(row[2] for row in rows)),
        _unpack("d", b"".join(row[3] for row in rows)),
        _unpack("d", epochs),
    )


@dataclass(slots=True)
class OpenChunk:
    id: int | None
    points: Points


@dataclass(slots=True)
class ChunkPlan:
    """What one flush of one key writes: rows to insert, one row to update, rows to delete.

    ``inserts`` are encoded rows; the last insert (or the update) is the new open top of the
    stack when ``keep_top`` is set. Apply it to the database, then ``ChunkStack.commit`` it.
    """

    inserts: list[Points]
    update: OpenChunk | None
    deletes: list[int]
    keep_top: bool
    remaining: list[OpenChunk]


class ChunkStack:
    """The open (not yet full) chunks of one (run, key) that this process wrote."""

    def __init__(self) -> None:
        self.open: list[OpenChunk] = []

    def plan(self, new: Points) -> ChunkPlan:
        """Plan writing step-sorted ``new`` points after what this stack holds."""
        stack = list(self.open)
        inserts: list[Points] = []
        full = len(new) - len(new) % CHUNK_POINTS
        if full:
            stack = []  # earlier open chunks stay as they are: sealed
            inserts.extend(new.slice(i, i + CHUNK_POINTS) for i in range(0, full, CHUNK_POINTS))
            new = new.slice(full, len(new))
        if not len(new):
            return ChunkPlan(inserts, None, [], keep_top=False, remaining=[])
        top = new
        merged: list[OpenChunk] = []
        while (
            stack
            and len(stack[-1].points) <= len(top)
            and (len(stack[-1].points) + len(top) <= CHUNK_POINTS)
        ):
            below = stack.pop()
            merged.append(below)
            top = merge_sorted([below.points, top])
        if stack and len(stack[-1].points) + len(top) > CHUNK_POINTS:
            stack = []  # nothing below can ever merge with what comes next: seal it
        keep = len(top) < CHUNK_POINTS
        if merged:
            deepest = merged[-1]
            update = OpenChunk(deepest.id, top)
            deletes = [m.id for m in merged[:-1] if m.id is not None]
            return ChunkPlan(inserts, update, deletes, keep_top=keep, remaining=stack)
        inserts.append(top)
        return ChunkPlan(inserts, None, [], keep_top=keep, remaining=stack)

    def commit(self, plan: ChunkPlan, top_id: int | None) -> None:
        """Adopt ``plan`` after it was written; ``top_id`` is the row id of its top chunk."""
        self.open = list(plan.remaining)
        if plan.keep_top:
            top = plan.update.points if plan.update else plan.inserts[-1]
            self.open.append(OpenChunk(top_id, top))
