"""Replaying recorded output through exactly the path ``expbook run``'s recorder reads it.

A *capture* is what a program printed, as the launcher saw it: chunks of (stream, seconds since
the start, bytes). :func:`replay` writes them into a real spool and runs the recorder's reading
half (:class:`~expbook.runner.follow.Follower`: line assembly, the parsers, the point buffer)
over it, collecting the batches it would send to the store. So what the corpus scorer measures
(``benchmarks/bench_capture.py``) is what ``expbook run`` would have stored, not what a
separate re-implementation would.

Captures are stored as JSON lines, one chunk each: ``{"s": "o" | "e", "t": seconds, "d": text}``
(``"b"``, base64, instead of ``"d"`` for bytes that are not UTF-8).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
import threading
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from expbook.runner.follow import Follower
from expbook.runner.messages import SUMMARY_FIELDS, Batch, End, read_message
from expbook.runner.parsers import OutputParser, UserPattern
from expbook.runner.spool import FRAME, FrameReader, Spool

Chunk = tuple[str, float, bytes]
"""(stream: "stdout" or "stderr", seconds since the start, bytes)."""


@dataclass(frozen=True, slots=True)
class ParsedPoint:
    key: str
    step: int
    epoch: float | None
    value: float


@dataclass
class Replayed:
    """What the recorder would have stored from a capture."""

    points: list[ParsedPoint] = field(default_factory=list)
    summaries: dict[str, dict[str, object]] = field(default_factory=dict)
    lines: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def read_capture(path: str | os.PathLike[str]) -> list[Chunk]:
    """The chunks of a capture file (JSON lines)."""
    chunks = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            item = json.loads(line)
            stream = "stderr" if item["s"] == "e" else "stdout"
            data = base64.b64decode(item["b"]) if "b" in item else item["d"].encode("utf-8")
            chunks.append((stream, float(item["t"]), data))
    return chunks


def write_capture(path: str | os.PathLike[str], chunks: Iterable[Chunk]) -> None:
    """Write chunks as a capture file (JSON lines)."""
    with open(path, "w", encoding="utf-8") as handle:
        for stream, at, data in chunks:
            item: dict[str, object] = {"s": "e" if stream == "stderr" else "o", "t": round(at, 4)}
            try:
                item["d"] = data.decode("utf-8")
            except UnicodeDecodeError:
                item["b"] = base64.b64encode(data).decode("ascii")
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")


def spool_chunks(spool: Spool) -> Iterator[Chunk]:
    """The chunks a launcher wrote to a spool, times relative to the first."""
    reader = FrameReader(spool.output)
    first: float | None = None
    try:
        for stream, at, data, _ in reader.read(limit=os.path.getsize(spool.output)):
            first = at if first is None else first
            yield stream, at - first, data
    finally:
        reader.close()


def replay(chunks: Iterable[Chunk], patterns: Iterable[UserPattern] = ()) -> Replayed:
    """Run the recorder's reading half over ``chunks``; what it would send to be stored."""
    result = Replayed()
    with tempfile.TemporaryDirectory(prefix="expbook-replay-") as root:
        spool = Spool(os.path.join(root, "replay"))
        os.mkdir(spool.path)
        spooled = 0
        with open(spool.output, "wb") as output:
            for stream, at, data in chunks:
                frame = FRAME.pack(b"e" if stream == "stderr" else b"o", len(data), at) + data
                output.write(frame)
                spooled += len(frame)
        Path(spool.file("exit")).write_text(json.dumps({"exit_code": 0, "spooled": spooled}))
        read, write = os.pipe()
        follower = Follower(spool, OutputParser(list(patterns)), None, write)
        errors: list[BaseException] = []

        def follow() -> None:
            try:
                follower.run()
            except BaseException as exc:  # reported below, in the caller's thread
                errors.append(exc)
                with contextlib.suppress(OSError):
                    os.close(write)

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        with os.fdopen(read, "rb") as messages:
            while (message := read_message(messages)) is not None:
                if isinstance(message, End):
                    result.lines = message.lines
                    break
                _collect(result, message)
        thread.join()
        if errors:
            raise errors[0]
    return result


def _collect(result: Replayed, batch: Batch) -> None:
    result.warnings += batch.warnings
    result.errors += batch.errors
    for key, steps, values, _times, epochs in batch.series:
        columns = [array(code) for code in "qdd"]
        for column, data in zip(columns, (steps, values, epochs), strict=True):
            column.frombytes(data)
        for step, value, epoch in zip(*columns, strict=True):
            result.points.append(ParsedPoint(key, step, None if epoch != epoch else epoch, value))
    for key, *fields in batch.values:
        result.summaries[key] = dict(zip(SUMMARY_FIELDS, fields, strict=True))
