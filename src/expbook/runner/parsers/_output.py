"""The output parser: each line through the line parsers, with the shape caches."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from expbook.runner.parsers._common import (
    _HAS_DIGIT,
    _MAX_CACHED_TEXT,
    _SHAPE_BYTES,
    Event,
    Point,
    PointRows,
    Summary,
    _CurrentLine,
    _LineParser,
    _StepContext,
)
from expbook.runner.parsers._dicts import _DictLineParser
from expbook.runner.parsers._patterns import UserPattern, _UserPatternParser
from expbook.runner.parsers._progress import _Layout, _ProgressParser
from expbook.runner.parsers._summaries import _SummaryLineParser
from expbook.runner.parsers._tables import _TableParser
from expbook.runner.text import Redraw, strip_ansi

_SHAPE_CACHE_SIZE = 16384  # quiet shapes kept (then cleared): at most ~10 MB
_PROGRESS_SHAPES = 4096  # shapes of progress lines kept (then cleared)
_NO_LAYOUT = _Layout(0, [], None, None, False, None, False, None)  # no block of lines yet
_PARSER_NAMES = {
    "_DictLineParser": "dict",
    "_TableParser": "table",
    "_ProgressParser": "progress",
    "_SummaryLineParser": "summary",
}


# What launchers put before a worker's lines: torchrun's "[rank1]:" and "[default0]:" (with
# --tee or --redirects), mpirun's "[1,0]<stdout>:" (--tag-output), Ray's "(trainable
# pid=10711)" and "(pid=123, ip=10.0.0.2)".
_WORKER = re.compile(
    r"\[(?:rank|default)(?P<rank>\d+)\]:[ \t]?"
    r"|\[\d+,(?P<mpi>\d+)\]<std(?:out|err)>:[ \t]?"  # mpirun --tag-output: [job,rank]<stdout>:
    r"|\((?:\w+ )?pid=\d+(?:, ip=[\d.]+)?\)[ \t]*"
)


def _digitless_look(line: str) -> bool:
    """Whether a line without a digit may still matter: a table header, a model block or dict
    (``|``, ``{``, names apart by two spaces), or a summary of a NaN or infinite value."""
    return (
        "|" in line
        or "{" in line
        or line.rstrip()[-3:].lower() in ("nan", "inf", "ity")
        or "  " in line.strip()  # maybe the header of a fixed-width table
    )


class _KeyFilter:
    """Drops the metric keys that match the user's ``ignore_metrics`` patterns from events."""

    def __init__(self, patterns: Sequence[str]) -> None:
        import fnmatch

        self._regex = re.compile("|".join(fnmatch.translate(pattern) for pattern in patterns))
        self._memo: dict[str, bool] = {}

    def ignored(self, key: str) -> bool:
        hit = self._memo.get(key)
        if hit is None:
            hit = self._regex.match(key) is not None
            if len(self._memo) < _PROGRESS_SHAPES:  # keys a program prints are few
                self._memo[key] = hit
        return hit

    def apply(self, events: list[Event | PointRows]) -> list[Event | PointRows]:
        ignored = self.ignored
        kept: list[Event | PointRows] = []
        for event in events:
            if type(event) is Point:
                if any(map(ignored, event.values)):
                    values = {k: v for k, v in event.values.items() if not ignored(k)}
                    if not values:
                        continue
                    event = Point(values, event.step, event.epoch)
            elif type(event) is PointRows:
                if any(map(ignored, event.keys)):
                    pairs = [p for p in zip(event.keys, event.values, strict=True)
                             if not ignored(p[0])]  # fmt: skip
                    if not pairs:
                        continue
                    keys, columns = zip(*pairs, strict=True)
                    event = PointRows(keys, columns, event.steps, event.epochs)
            elif isinstance(event, Summary) and ignored(event.key):
                continue
            kept.append(event)
        return kept


class OutputParser:
    """Turn a program's printed lines into metric events.

    Not thread-safe: one parser per output stream. Lines must come in order.

    Args:
        patterns: The user's own patterns, tried before the built-in parsers.
        ignore: Shell-style patterns (``fnmatch``, case-sensitive: keys are lower case) of
            metric keys to drop from every event; a point left with no key is dropped.
        cache: Remember line shapes (digits masked) that gave nothing, and where the values of
            progress lines are; only ever changes speed, never results (a test checks it). The
            caches hold lines of at most 512 characters and a bounded number of entries.

    Raises:
        ValueError: If a pattern does not compile, lacks the ``value`` group, has neither a
            ``key`` group nor a fixed key, or has an unknown kind; the message names the regex.
    """

    def __init__(
        self,
        patterns: Sequence[UserPattern] = (),
        *,
        ignore: Sequence[str] = (),
        cache: bool = True,
    ) -> None:
        context = self._context = _StepContext()
        self._ignore = _KeyFilter(ignore) if ignore else None
        current = self._current = _CurrentLine()
        self._quiet: set[bytes] | None = set() if cache else None  # shapes that did nothing
        self._progress_shapes: dict[bytes, _Layout] = {}  # shapes of progress lines
        self._recognised: _LineParser | None = None  # the parser that took the last line
        self._last_point: Point | None = None  # the last point given (see _once)
        self.failed_lines = 0
        """Lines a parser failed on (a bug): skipped, parsing goes on (see ``_feed_once``)."""
        self.first_failure: str | None = None
        self._user = _UserPatternParser(patterns, context) if patterns else None
        self._table = _TableParser()
        self._progress = _ProgressParser(context, current)
        self._dicts = _DictLineParser(current)
        self._parsers: tuple[_LineParser, ...] = (
            self._dicts,
            self._table,
            self._progress,
            _SummaryLineParser(current, context),
        )

    def feed(self, line: str) -> list[Event]:
        """Parse one complete line (ANSI colour codes allowed).

        Args:
            line: One line without its line ending, as ``LineAssembler`` returns it.

        Returns:
            The events the line gives, from one parser only; usually none.
        """
        events = self._feed_once(line)
        if events and self._ignore is not None:
            return self._ignore.apply(events)  # type: ignore[return-value]
        return events

    def _feed(self, line: str) -> list[Event]:
        if "\x1b" in line:
            line = strip_ansi(line)
        if line[:1] in "[(":
            worker = _WORKER.match(line)
            if worker is not None:
                if (worker["rank"] or worker["mpi"] or "0") != "0":
                    return []  # another rank's copy: rank 0's lines are the run's
                line = line[worker.end() :]
        if self._user is not None:
            events = self._user.parse(line)
            if events is not None:
                return events
        idle = self._table.idle()
        quiet = self._quiet
        if quiet is None or len(line) > _MAX_CACHED_TEXT:  # not cached (memory)
            if idle and _HAS_DIGIT.search(line) is None and not _digitless_look(line):
                if type(line) is Redraw and not line.strip():
                    self._progress.bar_cleared()
                return []
            return self._parse(line, None)
        text = line.encode("utf-8", "surrogatepass")
        shape = text.translate(_SHAPE_BYTES)
        if shape == text and idle and not _digitless_look(line):
            if type(line) is Redraw and not line.strip():
                self._progress.bar_cleared()
            return []  # most lines: no digit, so no counter and (nearly always) no value
        if self._user is not None or not idle:  # user regexes may test digits; a table
            return self._parse(line, shape)
        # Log lines repeat with only their digits changing. A line whose shape (digits masked:
        # the same structure for every regex here; see _SHAPE_BYTES) once gave no event, left
        # every parser's state as it was and did not hang on its digits' values will do so
        # again: skip it. A line of the shape of a progress line goes straight to that parser.
        if shape in quiet:
            return []
        layout = self._progress_shapes.get(shape)
        if layout is not None:
            events = self._progress.read(line, layout)
            if events is not None:
                return events
        return self._parse_and_learn(line, shape, quiet)

    def _feed_once(self, line: str) -> list[Event]:
        try:
            return self._once(self._feed(line))
        except Exception as exc:  # a parser bug on one line costs that line, not the run's rest
            self.failed_lines += 1
            if self.first_failure is None:
                self.first_failure = f"{line[:120]!r}: {type(exc).__name__}: {exc}"
            return []

    def explain(self, line: str) -> tuple[list[Event], str | None]:
        """:meth:`feed`, and which parser took the line: ``"user pattern"``, ``"dict"``,
        ``"table"``, ``"progress"``, ``"summary"``, or None (for ``expbook parse``)."""
        self._recognised = None
        events = self.feed(line)
        if not events:
            return events, None
        recognised = self._recognised
        if recognised is None:
            return events, "user pattern" if self._user is not None else None
        return events, _PARSER_NAMES.get(type(recognised).__name__)

    def feed_lines(self, lines: Iterable[str]) -> list[Event | PointRows]:
        """Parse many lines: the events of :meth:`feed` for each, in order, with less work per
        line where the line's shape is known (a recorder's loop over a program's output).

        Progress lines of one known shape that follow each other (log messages between them
        do not count) come as one :class:`PointRows` instead of a Point each: the same
        points, read column by column.

        Args:
            lines: Complete lines, as ``LineAssembler`` returns them.

        Returns:
            The events of all the lines; usually few.
        """
        events = self._feed_lines(lines)
        if events and self._ignore is not None:
            return self._ignore.apply(events)
        return events

    def _once(self, events: list[Any]) -> list[Any]:
        """Without a point equal to the one before it (values, step and epoch) when it has a
        step: every rank of a distributed launch prints the same line, and a display redrawn
        line by line (Rich on a terminal) prints its lines again; a series has one value at a
        step."""
        if not events:
            return events
        last = self._last_point
        kept = []
        for event in events:
            if type(event) is Point:
                if event.step is not None and event == last:
                    continue
                last = event
            elif type(event) is PointRows:
                last = None
            kept.append(event)
        self._last_point = last
        return kept

    def _feed_lines(self, lines: Iterable[str]) -> list[Event | PointRows]:
        events: list[Event | PointRows] = []
        feed = self._feed_once
        quiet = self._quiet
        if quiet is None or self._user is not None:
            for line in lines:
                events += feed(line)
            return events
        shapes = self._progress_shapes
        read = self._progress.read
        read_block = self._progress.read_block
        idle = self._table.idle()
        block: list[str] = []  # lines of one layout with a row reader, not read yet
        block_layout = _NO_LAYOUT
        for line in lines:
            # What feed() does first for a line of a known shape, without its checks of what
            # this loop knows already (the table's state changes only in feed() itself).
            if idle and len(line) <= _MAX_CACHED_TEXT and "\x1b" not in line:
                text = line.encode("utf-8", "surrogatepass")
                shape = text.translate(_SHAPE_BYTES)
                if shape in quiet or (shape == text and not _digitless_look(line)):
                    if type(line) is Redraw and not line.strip():
                        self._progress.bar_cleared()
                    continue  # gives nothing, and leaves the step context as it is
                layout = shapes.get(shape)
                if layout is not None:
                    if layout.rows is not None:
                        if layout is not block_layout:
                            if block:
                                events += self._once(read_block(block, block_layout))
                            block, block_layout = [], layout
                        block.append(line)
                        continue
                    if block:  # its points come first, and set the step context
                        events += self._once(read_block(block, block_layout))
                        block, block_layout = [], _NO_LAYOUT
                    found = read(line, layout)
                    if found is not None:
                        events += self._once(found)
                        continue
            if block:
                events += self._once(read_block(block, block_layout))
                block, block_layout = [], _NO_LAYOUT
            events += feed(line)
            idle = self._table.idle()
        if block:
            events += self._once(read_block(block, block_layout))
        return events

    def _parse_and_learn(self, line: str, shape: bytes, quiet: set[bytes]) -> list[Event]:
        """Parse a line of a shape not known yet (or known as a progress line's but not one by
        its values); remember the shape as quiet, or as a progress line's, when that is safe."""
        before = self._context.state()
        current = self._current
        current.value_dependent = False
        events = self._parse(line, shape)
        if self._recognised is self._progress and "{" not in line:
            self._remember_progress(shape)
        if (
            not events
            and not current.value_dependent
            and self._table.idle()
            and self._context.state() == before
        ):
            if len(quiet) >= _SHAPE_CACHE_SIZE:
                quiet.clear()
            quiet.add(shape)
        return events

    def _parse(self, line: str, shape: bytes | None) -> list[Event]:
        """The events of the first line parser that recognises the line (of this shape, if
        known: the progress parser's cache of plans uses it)."""
        self._progress.line_shape = shape
        context = self._context
        was, writes = context.counted, context.writes
        context.after_counter, context.counted = was, False
        for parser in self._parsers:
            found = parser.parse(line)
            if found is not None:
                self._recognised = parser
                if found and parser is self._dicts:
                    found = self._progress.place(found)
                if not found and context.writes == writes:
                    context.counted = was  # a line that gave and set nothing changes nothing
                return found
        self._recognised = None
        context.counted = was
        return []

    def _remember_progress(self, shape: bytes) -> None:
        """Send the next lines of this shape straight to the progress parser. Safe when the
        table parser is idle and the line has no ``{``: the parsers before the progress parser
        then pass on every line of the shape (they look at nothing that differs within it)."""
        layout = self._progress.cached_layout(shape)
        shapes = self._progress_shapes
        if layout is not None and shape not in shapes:
            if len(shapes) >= _PROGRESS_SHAPES:
                shapes.clear()
            shapes[shape] = layout

    def close(self) -> list[Event]:
        """End the output: return anything still pending (such as an unclosed model block)."""
        events: list[Event] = []
        for parser in self._parsers:
            events.extend(parser.close())
        if events and self._ignore is not None:
            return self._ignore.apply(events)  # type: ignore[return-value]
        return events
