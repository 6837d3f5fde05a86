"""What the line parsers share: events, keys, numbers, line shapes, the current line."""

from __future__ import annotations

import functools
import math
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from expbook.runner.parsers._prefixes import strip_log_prefix

MAX_KEY_LENGTH = 250


@dataclass(frozen=True, slots=True)
class Point:
    """One step of one or more metric series.

    Attributes:
        values: Metric key -> value; NaN and infinities are valid values.
        step: The step, or None for the consumer to assign the next automatic step.
        epoch: The epoch, if the line (or the step context) gave one.
    """

    values: dict[str, float]
    step: int | None
    epoch: float | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """One summary value (not a point of a series), with the extremes a table reported.

    Attributes:
        key: The summary key.
        value: The value as printed (``12.5%`` gives 12.5 with ``unit="%"``).
        unit: ``"%"`` when printed with a percent sign, else None.
        step: The step the value belongs to, if known.
        epoch: The epoch the value belongs to, if known.
        min: The minimum over training, from a summary table.
        min_step: The step of the minimum.
        min_epoch: The epoch of the minimum.
        max: The maximum over training, from a summary table.
        max_step: The step of the maximum.
        max_epoch: The epoch of the maximum.
    """

    key: str
    value: float
    unit: str | None = None
    step: int | None = None
    epoch: float | None = None
    min: float | None = None
    min_step: int | None = None
    min_epoch: float | None = None
    max: float | None = None
    max_step: int | None = None
    max_epoch: float | None = None


Event = Point | Summary


@dataclass(frozen=True, slots=True)
class PointRows:
    """Consecutive points with the same keys, column by column: what
    :meth:`~expbook.runner.parsers.OutputParser.feed_lines` gives for a run of progress lines
    of one shape, instead of a :class:`Point` per line (the same points; :meth:`points` lists
    them as Points).

    Attributes:
        keys: The metric keys, in the order a Point of them would have.
        values: One column (``array("d")``) per key.
        steps: The steps (``array("q")``); None when each point takes the next automatic step.
        epochs: The epochs (``array("d")``, NaN for none).
    """

    keys: tuple[str, ...]
    values: tuple[array, ...]
    steps: array | None
    epochs: array

    def __len__(self) -> int:
        return len(self.epochs)

    def points(self) -> list[Point]:
        """The same points, one :class:`Point` each."""
        steps = self.steps if self.steps is not None else [None] * len(self)
        epochs = [None if math.isnan(epoch) else epoch for epoch in self.epochs]
        rows = zip(*self.values, strict=True) if self.values else [()] * len(self)
        return [
            Point(dict(zip(self.keys, row, strict=True)), step, epoch)
            for row, step, epoch in zip(rows, steps, epochs, strict=True)
        ]


# --- keys and numbers -----------------------------------------------------------------------

# The longest text (a line's shape, a key) the caches keep: memory stays bounded whatever a
# program prints. Longer lines and keys are parsed every time.
_MAX_CACHED_TEXT = 512

_T = TypeVar("_T")


def _short_text_cache(maxsize: int) -> Callable[[Callable[[str], _T]], Callable[[str], _T]]:
    """``functools.lru_cache`` for a function of one string, keeping short strings only."""

    def decorate(function: Callable[[str], _T]) -> Callable[[str], _T]:
        cached = functools.lru_cache(maxsize=maxsize)(function)

        @functools.wraps(function)
        def call(text: str) -> _T:
            return cached(text) if len(text) <= _MAX_CACHED_TEXT else function(text)

        return call

    return decorate


_KEY_JUNK = re.compile(r"[^\w/.@-]+")


@_short_text_cache(maxsize=8192)
def normalize_key(raw: str) -> str | None:
    """Turn a printed metric name into a key, or None when it cannot make a valid one.

    Keys are lower-case; each run of characters other than letters, digits, ``_``, ``/``, ``.``,
    ``-`` and ``@`` becomes one ``_``; leading and trailing ``_`` and ``/`` are trimmed
    (``"Valid Acc"`` -> ``"valid_acc"``, ``"valid/acc"`` stays).

    Args:
        raw: The name as printed.

    Returns:
        The key; None if it would be empty, longer than 250 characters, or contain ``//``.
    """
    key = _KEY_JUNK.sub("_", raw.lower()).strip("_/")
    if not key or len(key) > MAX_KEY_LENGTH or "//" in key:
        return None
    return key


# Words of results, for a word of a key (``train_loss``, ``valAcc``, ``top1_acc``) to match.
_RESULT_WORDS = (
    "loss|acc|accuracy|err|error|f1|auc|ppl|perplexity|mae|mse|rmse|mape|bleu|rouge"
    "|precision|recall|score|reward|return"
)
_KEY_PARTS = re.compile(r"[_./@-]+|(?<=[a-z])(?=[A-Z])")


def _has_word(key: str, words: re.Pattern[str]) -> bool:
    """Whether a word of ``key`` (split at ``_ . / @ -`` and at camelCase) matches ``words``."""
    return any(words.fullmatch(part.lower()) for part in _KEY_PARTS.split(key))


# A printed number: thousands separators (1,234,567), decimals, exponents, nan and infinities.
# A thousands-separated number starts with 1-9 (0,512 is none), which the caller checks with
# _zero_thousands: the regexes treat all digits alike (see "line shapes").
_NUM = (
    r"[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
    r"|[-+]?(?i:nan|inf(?:inity)?)"
)
_NUMBER = re.compile(rf"\s*(?P<val>{_NUM})\s*(?P<pct>%)?\s*")


def _zero_thousands(text: str) -> bool:
    """Whether a number _NUM matched with a comma starts with 0: then it is none (0,512)."""
    return text.lstrip("+-")[:1] == "0"


def _to_float(text: str) -> float:
    return float(text.replace(",", "")) if "," in text else float(text)


def _parse_number(text: str) -> tuple[float, str | None] | None:
    """Parse a whole printed number with an optional ``%``: (value, unit) or None."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    value = match["val"]
    if "," in value and _zero_thousands(value):
        return None
    return _to_float(value), "%" if match["pct"] else None


# --- line shapes ----------------------------------------------------------------------------

# A line's shape: its UTF-8 bytes with every ASCII digit a "#"; the key of the caches (for lines
# of at most _MAX_CACHED_TEXT characters). Lines of one shape are read alike by every regex
# here: they treat all digits the same. Where an outcome hangs on the values of digits all the
# same (a key's digits: top1= and top5=; 1,512 against 0,512; a Keras bar's 143/625 against
# 625/625), the parsers read it from each line, and note a line whose outcome did so
# (_CurrentLine.value_dependent) for the caches not to remember it.
_SHAPE_BYTES = bytes.maketrans(b"0123456789", b"##########")
_HAS_DIGIT = re.compile(r"[0-9]")


# --- step context and the parser interface ----------------------------------------------------


@dataclass(slots=True)
class _StepContext:
    """Where the program is now, for lines that print metrics without a counter.

    ``fresh`` is true from a counter until the first Keras progress bar uses the context: Keras
    prints one finished bar per epoch, so a second one (``model.evaluate`` after training) is
    not at that epoch.
    """

    step: int | None = None
    epoch: float | None = None
    fresh: bool = False
    writes: int = 0  # counts updates, even to the same values (a line that sets is not idle)
    counted: bool = False  # the last line read had a counter (its results follow it)
    fine: bool = False  # a step counter (or a bar) has set the step: an epoch alone does not
    after_counter: bool = False  # so had the line before the one being read

    def state(self) -> tuple[int | None, float | None, bool, int]:
        return self.step, self.epoch, self.fresh, self.writes


class _CurrentLine:
    """The line the parsers read, shared by them: its message (:func:`strip_log_prefix`,
    computed once), and a note for the caches.

    ``value_dependent`` is set by a parser whose outcome hung on the values of the line's digits,
    not only on where they are: another line of the same shape may come out otherwise, so the
    caches must not remember this one. The owner clears it before a line it may cache.
    """

    __slots__ = ("_line", "_message", "value_dependent")

    def __init__(self) -> None:
        self._line: str | None = None
        self._message = ""
        self.value_dependent = False

    def message(self, line: str) -> str:
        """``line`` without its logging prefix."""
        if line is not self._line:
            self._line = line
            self._message = strip_log_prefix(line)
        return self._message


class _LineParser:
    """One way of reading metrics from lines; a small strategy object.

    ``parse`` returns None when the line is not its kind (the next parser gets it), and a list
    (possibly empty) when it recognised the line.
    """

    def parse(self, line: str) -> list[Event] | None:
        raise NotImplementedError

    def close(self) -> list[Event]:
        """Return what is still pending at the end of the output."""
        return []
