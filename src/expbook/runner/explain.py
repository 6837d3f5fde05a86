"""``expbook parse``: what ``expbook run`` reads in a program's output, line by line, and why.

A user whose metric was missed (or read where it should not be) runs the log through the same
line assembly, parsers and automatic steps as the recorder, sees which parser took each line and
what it stored, and can then add a pattern or an ``ignore_metrics`` entry to ``expbook.toml``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from expbook.runner.parsers import OutputParser, Point, Summary, UserPattern
from expbook.runner.points import PointBuffer
from expbook.runner.replay import Chunk, read_capture
from expbook.runner.text import LineAssembler, Redraw


@dataclass
class ExplainedLine:
    number: int
    stream: str
    text: str
    parser: str | None = None
    points: list[tuple[int, float | None, dict[str, float]]] = field(default_factory=list)
    """(step as stored, epoch, values) for each point the line gave."""
    summaries: list[Summary] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    redraw: bool = False
    """An earlier drawing of line ``number`` (a progress bar a ``\\r`` overwrote): not in the
    text log, but read; listed only when it gave something."""


def read_output(path: str) -> list[Chunk]:
    """A log file's chunks: a capture (``.jsonl`` from the corpus) or plain output (``-`` is
    standard input)."""
    import sys

    if path == "-":
        return [("stdout", 0.0, sys.stdin.buffer.read())]
    data = Path(path).read_bytes()
    if path.endswith(".jsonl") and data.lstrip().startswith(b'{"s"'):
        return read_capture(path)
    return [("stdout", 0.0, data)]


def explain(
    chunks: Iterable[Chunk], patterns: Iterable[UserPattern] = (), ignore: Iterable[str] = ()
) -> Iterator[ExplainedLine]:
    """Each line of the output with what the parsers made of it (uncached, so every line is
    attributed; the result is the same as the recorder's, which caches only for speed)."""
    parser = OutputParser(list(patterns), ignore=list(ignore), cache=False)
    buffer = PointBuffer()
    assemblers = {"stdout": LineAssembler(redraws=True), "stderr": LineAssembler(redraws=True)}
    number = 0
    for stream, _at, data in [*chunks, ("stdout", 0.0, b""), ("stderr", 0.0, b"")]:
        assembler = assemblers[stream]
        lines = assembler.feed(data) if data else assembler.flush()
        for text in lines:
            if type(text) is Redraw:
                line = _explain(
                    parser, buffer, ExplainedLine(number + 1, stream, text, redraw=True)
                )
                if line.points or line.summaries or line.problems:
                    yield line
                continue
            number += 1
            yield _explain(parser, buffer, ExplainedLine(number, stream, text))
    for event in parser.close():  # a table still open at the end
        line = ExplainedLine(number + 1, "stdout", "(end of output)", parser="table")
        _take(buffer, line, [event])
        yield line


def _explain(parser: OutputParser, buffer: PointBuffer, line: ExplainedLine) -> ExplainedLine:
    events, line.parser = parser.explain(line.text)
    _take(buffer, line, events)
    return line


def _take(buffer: PointBuffer, line: ExplainedLine, events: Iterable[object]) -> None:
    for event in events:
        if isinstance(event, Point):
            step = buffer.next_step if event.step is None else event.step
            try:
                buffer.add(event.values, event.step, event.epoch, 0.0)
            except Exception as exc:  # what the recorder would skip, with a warning
                line.problems.append(str(exc))
                continue
            line.points.append((step, event.epoch, dict(event.values)))
        elif isinstance(event, Summary):
            line.summaries.append(event)


def describe(line: ExplainedLine) -> str:
    """What a line gave, in one line of text."""
    parts = []
    for step, epoch, values in line.points:
        where = f"step {step}" + (f", epoch {_number(epoch)}" if epoch is not None else "")
        pairs = " ".join(f"{key}={_number(value)}" for key, value in values.items())
        parts.append(f"point at {where}: {pairs}")
    for summary in line.summaries:
        unit = summary.unit or ""
        parts.append(f"summary value {summary.key}={_number(summary.value)}{unit}")
    parts += [f"skipped: {problem}" for problem in line.problems]
    return f"{line.parser}: " + "; ".join(parts) if parts else "nothing"


def as_json(line: ExplainedLine) -> str:
    return json.dumps(
        {
            "line": line.number,
            "stream": line.stream,
            "redraw": line.redraw,
            "text": line.text,
            "parser": line.parser,
            "points": [{"step": s, "epoch": e, "values": v} for s, e, v in line.points],
            "summaries": {s.key: s.value for s in line.summaries},
            "skipped": line.problems,
        },
        default=str,
    )


def _number(value: float) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    return f"{value:g}" if isinstance(value, float) else str(value)
