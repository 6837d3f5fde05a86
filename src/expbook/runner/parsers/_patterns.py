"""The user's own patterns, from ``expbook.toml``: the first line parser."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from expbook.runner.parsers._common import (
    Event,
    Point,
    Summary,
    _LineParser,
    _parse_number,
    _StepContext,
    normalize_key,
)


@dataclass(frozen=True, slots=True)
class UserPattern:
    """A user's own pattern, from ``expbook.toml``.

    Attributes:
        regex: A Python regular expression searched in each line (ANSI codes removed), with named
            groups ``value`` (required), ``key`` (unless ``key`` is given), and optionally
            ``step`` and ``epoch``. Every match in a line counts.
        key: A fixed key, for a regex without a ``key`` group; it wins over a ``key`` group.
        kind: ``"series"`` (matches become one :class:`Point`; the step comes from the ``step``
            group or else the step context) or ``"summary"`` (each match is a :class:`Summary`).
    """

    regex: str
    key: str | None = None
    kind: str = "series"


@dataclass(frozen=True, slots=True)
class _CompiledPattern:
    regex: re.Pattern[str]
    key: str | None
    summary: bool


def _compile_pattern(spec: UserPattern) -> _CompiledPattern:
    try:
        regex = re.compile(spec.regex)
    except re.error as exc:
        raise ValueError(f"user pattern {spec.regex!r} does not compile: {exc}") from exc
    groups = regex.groupindex
    if "value" not in groups:
        raise ValueError(f"user pattern {spec.regex!r} has no named group 'value'")
    if spec.kind not in ("series", "summary"):
        raise ValueError(
            f"user pattern {spec.regex!r}: kind must be 'series' or 'summary', not {spec.kind!r}"
        )
    key = None
    if spec.key is not None:
        key = normalize_key(spec.key)
        if key is None:
            raise ValueError(f"user pattern {spec.regex!r}: {spec.key!r} is not a valid key")
    elif "key" not in groups:
        raise ValueError(f"user pattern {spec.regex!r} needs a named group 'key' or a fixed key")
    return _CompiledPattern(regex, key, spec.kind == "summary")


def _group(match: re.Match[str], name: str) -> str | None:
    return match[name] if name in match.re.groupindex else None


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdecimal() else None


_UserMatch = tuple[str, tuple[float, str | None], int | None, float | None]


def _user_match(match: re.Match[str], fixed_key: str | None) -> _UserMatch | None:
    """(key, (value, unit), step, epoch) of one match of a user pattern; None if unusable."""
    key = fixed_key or normalize_key(_group(match, "key") or "")
    number = _parse_number(match["value"] or "")
    if key is None or number is None:
        return None
    epoch = _parse_number(_group(match, "epoch") or "")
    return key, number, _int_or_none(_group(match, "step")), None if epoch is None else epoch[0]


class _UserPatternParser(_LineParser):
    """Matches of the user's patterns: series values go into one Point, summaries each apart."""

    def __init__(self, patterns: Sequence[UserPattern], context: _StepContext) -> None:
        self._patterns = [_compile_pattern(spec) for spec in patterns]
        self._context = context

    def parse(self, line: str) -> list[Event] | None:
        values: dict[str, float] = {}
        steps: list[int] = []
        epochs: list[float] = []
        summaries: list[Event] = []
        for pattern in self._patterns:
            for match in pattern.regex.finditer(line):
                found = _user_match(match, pattern.key)
                if found is None:
                    continue
                key, (value, unit), step, epoch = found
                if pattern.summary:
                    summaries.append(Summary(key, value, unit, step, epoch))
                    continue
                values[key] = value
                steps.extend(() if step is None else (step,))
                epochs.extend(() if epoch is None else (epoch,))
        if not values:
            return summaries or None
        if steps:  # the line's own step; else the step context, as a pair with its epoch
            point = Point(values, steps[-1], epochs[-1] if epochs else None)
        else:
            context = self._context
            point = Point(values, context.step, epochs[-1] if epochs else context.epoch)
        return [point, *summaries]
