"""The recorder's reading half: follows a run's spool, parses, and sends what is to be stored.

The recorder forks before it opens the store. This half — the standard library and the parsers,
no SQLAlchemy — starts reading at once, while the storing half imports the database code and
creates the run, and after that the two use a CPU each. It

- reads the frames the launcher appends to ``output`` (see ``expbook.runner.spool``), joins
  consecutive frames of one stream and puts their lines together (``LineAssembler``);
- feeds every line to the ``OutputParser`` and keeps the points per key (``PointBuffer``) and
  the summary values; once the program logs through the Python API itself (the ``attached``
  marker), points from output printed after that are dropped, so nothing counts twice;
- every ``FLUSH_SECONDS`` or ``FLUSH_BYTES`` of output sends one batch — the output text, the
  points, the summary values — through a pipe to the storing half;
- when the launcher has reported the exit status (``exit.json``) and all output is read, sends
  the end: the exit report and what the summary line needs. If the launcher died without a
  report, the end carries none.

Messages are ``marshal`` tuples, each after its length. The pipe is written without blocking:
while the storing half is busy (starting, or waiting for the database) this half goes on
reading and parsing, keeping up to ``OUTBOX_BYTES`` of messages, then waits.
"""

from __future__ import annotations

import marshal
import os
import select
import struct
import time
from collections import deque
from collections.abc import Sequence
from typing import IO, Any

from expbook.errors import ExpbookError
from expbook.runner.parsers import Event, OutputParser, Point, PointRows, Summary
from expbook.runner.points import PointBuffer
from expbook.runner.spool import FrameReader, read_json
from expbook.runner.text import LineAssembler

FLUSH_SECONDS = 0.5
FLUSH_BYTES = 1 << 20
OUTBOX_BYTES = 32 << 20
"""Messages kept while the storing half is busy, beyond which this half waits for it: the
program is never slowed (the launcher does not wait for the recorder), and memory stays bounded
however much is printed."""
GROUP_BYTES = 1 << 18
"""Consecutive frames of one stream are joined up to this size before they are split into lines
(a program that flushes every line makes a frame per line)."""
TAIL_LINES = 30
IDLE_SLEEP = 0.02
LAUNCHER_CHECK_SECONDS = 1.0
_HEADER = struct.Struct("<I")

# One summary value: key, value, unit, time, step, epoch, min, min_step, min_epoch, max,
# max_step, max_epoch (the fields of ``SummaryValue`` after the key).
SummaryFields = tuple[Any, ...]


class Follower:
    """Follows one spool directory and sends batches to ``out`` (a pipe's writing end).

    Args:
        spool: The run's spool directory.
        parser: The parser for its lines (with the user's patterns).
        launcher_pid: The launcher, watched while it has not reported the exit status.
        out: File descriptor to write messages to.
    """

    def __init__(self, spool: str, parser: OutputParser, launcher_pid: int | None, out: int):
        self.spool = spool
        self.parser = parser
        self.launcher_pid = launcher_pid
        self.recorder_pid = os.getppid()  # the storing half
        self.outbox = _Outbox(out)
        self.assemblers = {"stdout": LineAssembler(), "stderr": LineAssembler()}
        self.pending: list[tuple[str, list[str]]] = []  # (stream, lines), in printed order
        self.pending_bytes = 0
        self.lines = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.buffer = PointBuffer()  # parsed points not yet sent
        self.values: dict[str, SummaryFields] = {}  # parsed summary values, likewise
        self.summaries = 0
        self.keys: set[str] = set()  # keys of summary values
        self.warnings: list[str] = []  # not yet sent
        self.now = 0.0  # the time parsed points are logged at
        self.attached_at: float | None = None  # when the program attached through the API

    def run(self) -> None:
        """Follow the output to its end; send the batches and then the end."""
        ended = self._follow()
        self.outbox.put(("end", ended, *self._counts()))
        self.outbox.close()

    def _counts(self) -> tuple[Any, ...]:
        """Lines, points, summary values, keys, the last lines, and when the program attached."""
        keys = len(self.keys | self.buffer.keys)
        tail = list(self.tail)
        return self.lines, self.buffer.count, self.summaries, keys, tail, self.attached_at

    def _follow(self) -> dict[str, Any] | None:
        """Read output until the launcher reports the end and all of it is read; return the
        exit report (None if the launcher died without one)."""
        reader = FrameReader(os.path.join(self.spool, "output"))
        exit_path = os.path.join(self.spool, "exit.json")
        last_flush = last_check = time.monotonic()
        ended = None
        while True:
            frames = list(reader.read())
            if frames and self.attached_at is None:
                self._check_attached()
            for stream, data, points in self._groups(frames):
                lines = self.assemblers[stream].feed(data)
                if lines:
                    self._lines(stream, lines, points=points)
                if self.pending_bytes >= FLUSH_BYTES:
                    self._flush()
                    last_flush = time.monotonic()
                else:
                    self.outbox.push()  # the rest of a message the pipe did not take at once
            now = time.monotonic()
            if now - last_flush >= FLUSH_SECONDS:
                self._flush()
                last_flush = now
            if frames:
                continue
            if ended is None:
                ended = read_json(exit_path)
            if ended is not None and reader.at_end():
                break
            if now - last_check > LAUNCHER_CHECK_SECONDS:
                last_check = now
                if os.getppid() != self.recorder_pid:
                    raise BrokenPipeError("the recorder's storing half has gone")
                if ended is None and not alive(self.launcher_pid):
                    ended = read_json(exit_path)  # it may have written it just before dying
                    if ended is None:
                        self._flush()
                        return None
            self.outbox.wait(IDLE_SLEEP)
        reader.close()
        for stream, assembler in self.assemblers.items():
            self._lines(stream, assembler.flush(), points=self.attached_at is None)
        self._take(self.parser.close(), points=self.attached_at is None)
        self._flush()
        return ended

    def _check_attached(self) -> None:
        """Once the program logs through the API, its points win over parsed ones: drop points
        from output that arrived after it attached (the marker holds the time; it is written
        before anything the program prints after attaching)."""
        attached = read_json(os.path.join(self.spool, "attached"))
        self.attached_at = attached["at"] if attached else None

    def _groups(self, frames: list[tuple[str, float, bytes]]) -> list[tuple[str, bytes, bool]]:
        """(stream, data, whether parsed points count) for runs of consecutive frames of one
        stream, up to about ``GROUP_BYTES``; a run ends where the program attached."""
        attached = self.attached_at
        groups: list[tuple[str, bytes, bool]] = []
        group: list[bytes] = []
        size = 0
        key = ("", True)
        for stream, at, data in frames:
            points = attached is None or at < attached
            if stream != key[0] or points != key[1] or size >= GROUP_BYTES:
                if group:
                    groups.append((key[0], b"".join(group), key[1]))
                group, size, key = [], 0, (stream, points)
            group.append(data)
            size += len(data)
        if group:
            groups.append((key[0], b"".join(group), key[1]))
        return groups

    def _lines(self, stream: str, lines: list[str], *, points: bool = True) -> None:
        """Keep, remember the tail of, and parse complete lines of one stream (this loop runs
        for every line a program prints: the per-line work is the parser's only)."""
        if not lines:
            return
        self.lines += len(lines)
        if self.pending and self.pending[-1][0] == stream:
            self.pending[-1][1].extend(lines)
        else:
            self.pending.append((stream, list(lines)))
        self.pending_bytes += sum(map(len, lines)) + len(lines)
        self.tail.extend(lines[-TAIL_LINES:])
        self.now = time.time()
        events = self.parser.feed_lines(lines)
        if events:
            self._take(events, points=points)

    def _take(self, events: Sequence[Event | PointRows], *, points: bool = True) -> None:
        """Keep parsed events for the next batch (a point the store cannot take is skipped,
        with a warning)."""
        add = self.buffer.add
        for event in events:
            if type(event) is Point:
                if points:
                    try:
                        add(event.values, event.step, event.epoch, self.now)
                    except ExpbookError as exc:
                        self.warnings.append(str(exc))
            elif type(event) is PointRows:
                if points:
                    try:
                        self.buffer.add_rows(event, self.now)
                    except ExpbookError:  # some point is wrong: which ones, one by one
                        self._take(event.points())
            elif isinstance(event, Summary):
                self.values[event.key] = _summary_fields(event)
                self.summaries += 1
                self.keys.add(event.key)
                self.now = time.time()  # points after it are newer, as they were printed

    def _flush(self) -> None:
        """Send the output, points, summary values and warnings gathered so far."""
        series = [
            (key, *(column.tobytes() for column in columns))
            for key, columns in self.buffer.take().items()
        ]
        if not (self.pending or series or self.values or self.warnings):
            return
        now = time.time()
        output = [(stream, now, "\n".join(lines) + "\n") for stream, lines in self.pending]
        self.outbox.put(("batch", output, series, list(self.values.values()), self.warnings))
        self.pending, self.pending_bytes, self.values, self.warnings = [], 0, {}, []


def _summary_fields(event: Summary) -> SummaryFields:
    return (
        event.key, event.value, event.unit, time.time(), event.step, event.epoch,
        event.min, event.min_step, event.min_epoch, event.max, event.max_step, event.max_epoch,
    )  # fmt: skip


class _Outbox:
    """Messages to the storing half: written without blocking while the pipe takes them, kept
    while it does not (up to ``OUTBOX_BYTES``, then waited for).

    Raises:
        BrokenPipeError: From any method, once the storing half has gone.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)
        self.queue: deque[memoryview] = deque()
        self.size = 0

    def put(self, message: tuple[Any, ...]) -> None:
        data = marshal.dumps(message)
        self.queue.append(memoryview(_HEADER.pack(len(data)) + data))
        self.size += _HEADER.size + len(data)
        self.push()
        while self.size > OUTBOX_BYTES:
            self.wait(1.0)

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds, writing what the pipe takes meanwhile."""
        if not self.queue:
            time.sleep(timeout)
            return
        select.select([], [self.fd], [], timeout)
        self.push()

    def close(self) -> None:
        """Write everything, then close the pipe."""
        while self.queue:
            self.wait(1.0)
        os.close(self.fd)

    def push(self) -> None:
        """Write what the pipe takes now."""
        queue = self.queue
        while queue:
            try:
                written = os.write(self.fd, queue[0])
            except BlockingIOError:
                return
            self.size -= written
            if written == len(queue[0]):
                queue.popleft()
            else:
                queue[0] = queue[0][written:]


def read_message(source: IO[bytes]) -> tuple[Any, ...] | None:
    """The next message from the follower, or None once it has closed the pipe."""
    header = source.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (length,) = _HEADER.unpack(header)
    data = source.read(length)
    if len(data) < length:
        return None
    return marshal.loads(data)


def alive(pid: int | None) -> bool:
    """Whether process ``pid`` exists (False for None)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
