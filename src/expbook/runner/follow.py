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
- when the launcher has reported the exit status (the spool's ``exit``) and all output is read,
  sends the end: the exit report and what the summary line needs. If the launcher died without
  a report, the end carries none.

A recorder that resumes a spool (after one was killed, or ``expbook recover``) starts with
``skip``, the bytes of output the store already has: those lines are parsed again, so that the
parser's context (the step, the epoch) is as it was, but not sent. Every batch carries the
offset it reaches, stored with it in one transaction, so nothing is stored twice.

If the parser raises (a bug), parsing stops there and the output goes on being stored; the
error is sent as a recording error, never as the program's failure.

The messages are those of ``expbook.runner.messages``. The pipe is written without blocking:
while the storing half is busy (starting, or waiting for the database) this half goes on
reading and parsing, keeping up to ``OUTBOX_BYTES`` of messages, then waits.
"""

from __future__ import annotations

import os
import select
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from expbook.errors import ExpbookError
from expbook.runner.autolog_records import Claims, RecordsReader
from expbook.runner.messages import SUMMARY_FIELDS, Batch, End, encode
from expbook.runner.parsers import Event, OutputParser, Point, PointRows, Summary
from expbook.runner.points import PointBuffer
from expbook.runner.spool import FrameReader, Spool, alive
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


class Follower:
    """Follows one spool directory and sends batches to ``out`` (a pipe's writing end).

    Args:
        spool: The run's spool.
        parser: The parser for its lines (with the user's patterns).
        launcher_pid: The launcher, watched while it has not reported the exit status.
        out: File descriptor to write messages to.
        skip: Bytes of output the store already has (a resumed recording).
        autolog: Bytes of each autolog records file the store already has, likewise.
    """

    def __init__(
        self,
        spool: Spool,
        parser: OutputParser,
        launcher_pid: int | None,
        out: int,
        skip: int = 0,
        autolog: dict[str, int] | None = None,
    ) -> None:
        self.spool = spool
        self.parser: OutputParser | None = parser
        self.skip = skip
        self.offset = 0  # output read and fed to the parser
        self.errors: list[str] = []  # recording errors not yet sent
        self.parse_failure_said = False
        self.launcher_pid = launcher_pid
        self.recorder_pid = os.getppid()  # the storing half
        self.outbox = _Outbox(out)
        self.assemblers = {  # with the states progress bars overwrite: for the parser only
            "stdout": LineAssembler(redraws=True),
            "stderr": LineAssembler(redraws=True),
        }
        self.pending: list[tuple[str, list[str]]] = []  # (stream, lines), in printed order
        self.pending_bytes = 0
        self.lines = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.buffer = PointBuffer()  # parsed points not yet sent
        self.values: dict[str, tuple[Any, ...]] = {}  # parsed summary values, likewise
        self.summaries = 0
        self.keys: set[str] = set()  # keys of summary values
        self.warnings: list[str] = []  # not yet sent
        self.now = 0.0  # the time parsed points are logged at
        self.attached_at: float | None = None  # when the program attached through the API
        self.records = RecordsReader(spool.path, autolog)  # the framework hooks' records
        self.claims = Claims()  # keys they cover: parsed values of these are dropped
        self.hooked = PointBuffer()  # their points (steps of their own, never automatic ones)
        self.params: dict[str, Any] = {}
        self.frameworks: dict[str, str | None] = {}
        self.autolog_sent = dict(autolog or {})

    def run(self) -> None:
        """Follow the output to its end; send the batches and then the end."""
        ended = self._follow()
        self.outbox.put(
            End(
                exit=ended, lines=self.lines, points=self.buffer.count, values=self.summaries,
                keys=len(self.keys | self.buffer.keys | self.hooked.keys), tail=list(self.tail),
                attached_at=self.attached_at, offset=self.offset, frameworks=self.frameworks,
                autolog_points=self.hooked.count,
            )
        )  # fmt: skip
        self.outbox.close()

    def _follow(self) -> dict[str, Any] | None:
        """Read output until the launcher reports the end and all of it is read; return the
        exit report (None if the launcher died without one)."""
        reader = FrameReader(self.spool.output)
        last_flush = last_check = time.monotonic()
        ended = None
        while True:
            frames = list(reader.read())
            # After the output, before parsing it: a hook writes its record before the
            # framework prints, so every claim of the output just read is known now.
            self._autolog()
            if frames and self.attached_at is None:
                self.attached_at = self.spool.attached_at()
            for stream, data, points, at, end in self._groups(frames):
                lines = self.assemblers[stream].feed(data)
                self.now = max(self.now, at)
                if lines:
                    self._lines(stream, lines, points=points, send=end > self.skip)
                self.offset = end
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
                ended = self.spool.exit_report()
            if ended is not None and _all_read(reader, ended):
                break
            if now - last_check > LAUNCHER_CHECK_SECONDS:
                last_check = now
                if os.getppid() != self.recorder_pid:
                    raise BrokenPipeError("the recorder's storing half has gone")
                if ended is None and not alive(self.launcher_pid):
                    ended = self.spool.exit_report()  # it may have written it just before dying
                    if ended is None:
                        self._flush()
                        return None
            self.outbox.wait(IDLE_SLEEP)
        reader.close()
        self._autolog()
        for stream, assembler in self.assemblers.items():
            self._lines(stream, assembler.flush(), points=self.attached_at is None)
        if self.parser is not None:
            try:
                self._take(self.parser.close(), points=self.attached_at is None)
            except Exception as exc:
                self._parser_failed(exc)
        self._flush()
        return ended

    def _groups(
        self, frames: list[tuple[str, float, bytes, int]]
    ) -> list[tuple[str, bytes, bool, float, int]]:
        """(stream, data, whether parsed points count, time, end offset) for runs of
        consecutive frames of one stream, up to about ``GROUP_BYTES``; a run ends where the
        program attached (once the program logs through the API, its points win over parsed
        ones: the marker holds the time, written before anything it prints after attaching),
        and where the output the store already has ends."""
        attached, skip = self.attached_at, self.skip
        groups: list[tuple[str, bytes, bool, float, int]] = []
        group: list[bytes] = []
        size = 0
        key: tuple[str, bool, bool] = ("", True, True)
        last_at, last_end = 0.0, 0
        for stream, at, data, end in frames:
            points = attached is None or at < attached
            new = end > skip
            if stream != key[0] or points != key[1] or new != key[2] or size >= GROUP_BYTES:
                if group:
                    groups.append((key[0], b"".join(group), key[1], last_at, last_end))
                group, size, key = [], 0, (stream, points, new)
            group.append(data)
            size += len(data)
            last_at, last_end = at, end
        if group:
            groups.append((key[0], b"".join(group), key[1], last_at, last_end))
        return groups

    def _lines(
        self, stream: str, lines: list[str], *, points: bool = True, send: bool = True
    ) -> None:
        """Keep, remember the tail of, and parse complete lines of one stream (this loop runs
        for every line a program prints: the per-line work is the parser's only). Lines the
        store already has (``send`` False) are parsed for the context they set, not sent."""
        if not lines:
            return
        logged = lines
        if self.assemblers[stream].redrawn:  # overwritten bar states: parsed, not kept
            logged = [line for line in lines if type(line) is str]
        self.lines += len(logged)
        self.tail.extend(logged[-TAIL_LINES:])
        if send and logged:
            if self.pending and self.pending[-1][0] == stream:
                self.pending[-1][1].extend(logged)
            else:
                self.pending.append((stream, list(logged)))
            self.pending_bytes += sum(map(len, logged)) + len(logged)
        if self.parser is None:
            return
        try:
            events = self.parser.feed_lines(lines)
        except Exception as exc:
            self._parser_failed(exc)
            return
        if self.parser.first_failure is not None and not self.parse_failure_said:
            self.parse_failure_said = True
            self.errors.append(
                f"the parser failed on a line near line {self.lines} of output "
                f"({self.parser.first_failure}); lines it fails on are skipped, parsing goes on"
            )
        if events:
            self._take(events, points=points)
            if not send:  # stored before: only the step they set counts
                self.buffer.take()
                self.values.clear()

    def _parser_failed(self, error: Exception) -> None:
        """A bug in a parser: stop parsing, keep storing the output, and say so on the run."""
        self.parser = None
        self.errors.append(
            f"metrics were not parsed after line {self.lines} of output: the parser failed "
            f"({type(error).__name__}: {error})"
        )

    def _take(self, events: Sequence[Event | PointRows], *, points: bool = True) -> None:
        """Keep parsed events for the next batch (a point the store cannot take is skipped,
        with a warning)."""
        add = self.buffer.add
        if self.claims:
            events = self._unclaimed(events)
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
                self.values[event.key] = _summary_fields(event, self.now)
                self.summaries += 1
                self.keys.add(event.key)
                self.now += 1e-6  # points after it are newer, as they were printed

    def _unclaimed(self, events: Sequence[Event | PointRows]) -> list[Event | PointRows]:
        """``events`` without the values of keys autolog has claimed by now (the time the
        output was read): the hooks' exact values replace them."""
        covers, now = self.claims.covers, self.now
        kept: list[Event | PointRows] = []
        for event in events:
            if type(event) is Point:
                step = event.step
                values = {k: v for k, v in event.values.items() if not covers(k, now, step)}
                if len(values) == len(event.values):
                    kept.append(event)
                elif values:
                    kept.append(Point(values, event.step, event.epoch))
            elif type(event) is PointRows:
                columns = [i for i, key in enumerate(event.keys) if not covers(key, now)]
                if len(columns) == len(event.keys):
                    kept.append(event)
                elif columns:
                    kept.append(
                        PointRows(
                            tuple(event.keys[i] for i in columns),
                            tuple(event.values[i] for i in columns),
                            event.steps,
                            event.epochs,
                        )
                    )
            elif not isinstance(event, Summary) or not covers(event.key, now):
                kept.append(event)
        return kept

    def _autolog(self) -> None:
        """Take the records the framework hooks wrote since the last call: claims at once;
        points, summary values, params and warnings for the next batch, unless the store has
        them already (a resumed recording)."""
        for record, stored in self.records.read():
            try:
                self._record(record, stored)
            except (ExpbookError, KeyError, TypeError, ValueError) as exc:
                self.warnings.append(f"autolog record skipped ({exc})")

    def _record(self, record: dict[str, Any], stored: bool) -> None:
        kind, framework = record.get("kind"), record.get("framework") or "autolog"
        at = float(record.get("time") or self.now)
        if kind == "claim":
            self.claims.claim(framework, record["keys"], at)
        elif kind == "framework":
            self.frameworks[framework] = record.get("version")
        elif kind == "warning":
            self.claims.release(framework, at)
            if not stored:
                self.warnings.append(str(record["text"]))
        elif stored:
            return
        elif kind == "point":
            values = {str(k): float(v) for k, v in record["values"].items()}
            self.claims.claim(framework, list(values), at)
            step = record.get("step")
            self.claims.recorded(list(values), step if isinstance(step, int) else None)
            epoch = record.get("epoch")
            epoch = None if epoch is None else float(epoch)
            self.hooked.add(values, record.get("step"), epoch, at)
        elif kind == "summary":
            for key, value in record["values"].items():
                self.values[key] = _summary_fields(Summary(key, float(value)), at)
                self.summaries += 1
                self.keys.add(key)
        elif kind == "params":
            self.params.update(record["params"])

    def _flush(self) -> None:
        """Send the output, points, summary values, params and warnings gathered so far."""
        series = _series(self.buffer.take(), self.hooked.take())
        autolog = dict(self.records.offsets) if self.records.offsets != self.autolog_sent else {}
        if not (
            self.pending
            or series
            or self.values
            or self.warnings
            or self.errors
            or self.params
            or autolog
        ):
            return
        now = time.time()
        output = [(stream, now, "\n".join(lines) + "\n") for stream, lines in self.pending]
        batch = Batch(
            output=output, series=series, values=list(self.values.values()),
            warnings=self.warnings, errors=self.errors, offset=self.offset, params=self.params,
            autolog=dict(self.records.offsets),
        )  # fmt: skip
        self.outbox.put(batch)
        self.pending, self.pending_bytes, self.values, self.warnings = [], 0, {}, []
        self.errors, self.params = [], {}
        self.autolog_sent = dict(self.records.offsets)


def _series(*buffers: dict[str, Any]) -> list[tuple[bytes, ...]]:
    """The points of the point buffers' ``take()``, per key as a batch sends them (a key in two
    buffers: the parsed points, then the hooks')."""
    merged: dict[str, Any] = {}
    for taken in buffers:
        for key, columns in taken.items():
            if key in merged:
                for column, more in zip(merged[key], columns, strict=True):
                    column.extend(more)
            else:
                merged[key] = columns
    return [(key, *(column.tobytes() for column in columns)) for key, columns in merged.items()]


def _summary_fields(event: Summary, at: float) -> tuple[Any, ...]:
    """A parsed summary value as sent: its key, then ``SUMMARY_FIELDS``."""
    fields = {name: getattr(event, name, None) for name in SUMMARY_FIELDS}
    fields["time"] = at
    return (event.key, *(fields[name] for name in SUMMARY_FIELDS))


def _all_read(reader: FrameReader, ended: dict[str, Any]) -> bool:
    """Whether every whole frame the launcher wrote has been read (``spooled``: the bytes of
    output it left in the file; a spool made by an older launcher lacks it)."""
    spooled = ended.get("spooled")
    return reader.at_end() if spooled is None else reader.offset >= spooled


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

    def put(self, message: Batch | End) -> None:
        data = encode(message)
        self.queue.append(memoryview(data))
        self.size += len(data)
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
