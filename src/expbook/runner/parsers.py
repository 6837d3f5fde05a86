"""Metrics from the lines a training program prints, with no change to the program.

:class:`OutputParser` takes one complete line at a time (as :class:`~expbook.runner.text.
LineAssembler` returns them) and turns the lines that report metrics into events: a
:class:`Point` (one step of one or more metric series) or a :class:`Summary` (one final value).

Each line goes to small line parsers in a fixed order; the first that recognises the line wins,
so a line yields events from one parser only:

1. the user's patterns from ``expbook.toml`` (:class:`UserPattern`), if any;
2. JSON and Python-dict lines (``{"loss": 0.5, "step": 10}``, the Hugging Face Trainer's dicts);
3. tables printed at the end of training (burn's "Learner Summary", with the model's parameter
   count) and the parameter counts of Keras, torchinfo and Lightning model summaries;
4. progress lines with an epoch/step counter and metric pairs (``epoch 3/16 loss=0.12``, Keras'
   ``Epoch 3/16`` followed by its progress bar line);
5. whole-line summaries (``Test accuracy: 94.2%``).

Before the built-in parsers see a line, its ANSI escape sequences and a leading logging prefix
(timestamp, level, logger name; see :func:`strip_log_prefix`) are removed. The parsers keep one
shared step context: an ``Epoch 3/16`` line, or a progress line with its own counter, sets the
step (and epoch) that later lines without a counter report at.

Speed matters here: a program may print hundreds of thousands of lines, most of them log
messages with no metric. A line with no digit is only looked at when it could be part of a table
or a dict, and every parser starts with a cheap check (substring searches, one regular
expression) before the work that costs.
"""

from __future__ import annotations

import ast
import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from expbook.runner.text import strip_ansi

__all__ = [
    "Event",
    "OutputParser",
    "Point",
    "Summary",
    "UserPattern",
    "normalize_key",
    "strip_log_prefix",
]

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


# --- keys and numbers -----------------------------------------------------------------------

_KEY_JUNK = re.compile(r"[^\w/.@-]+")


@functools.lru_cache(maxsize=8192)
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


# A printed number: thousands separators (1,234,567), decimals, exponents, nan and infinities.
_NUM = (
    r"[-+]?(?:(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
    r"|[-+]?(?i:nan|inf(?:inity)?)"
)
_NUMBER = re.compile(rf"\s*(?P<val>{_NUM})\s*(?P<pct>%)?\s*")


def _to_float(text: str) -> float:
    return float(text.replace(",", "")) if "," in text else float(text)


def _parse_number(text: str) -> tuple[float, str | None] | None:
    """Parse a whole printed number with an optional ``%``: (value, unit) or None."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    return _to_float(match["val"]), "%" if match["pct"] else None


# --- logging prefixes -----------------------------------------------------------------------

_TIME = r"\[?(?:\d{4}[-/]\d\d[-/]\d\d[ T])?\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\]?"
_LEVEL = r"\[?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]?"
_SEP = r"(?:\s*[-|:]\s*|\s+)"
_LOGURU_PLACE = rf"(?:[\w.<>]+:[\w.<>]+:\d+{_SEP})?"
_LOG_PREFIX = re.compile(
    rf"[IWEF]\d{{4}} \d\d:\d\d:\d\d\.\d+\s+\d+\s+[\w.-]+:\d+\]\s*"  # absl / glog
    rf"|{_TIME}{_SEP}(?:[\w.]+{_SEP}(?={_LEVEL}))?(?:{_LEVEL}(?::[\w.]*:|{_SEP}))?{_LOGURU_PLACE}"
    rf"|{_LEVEL}(?::[\w.]*:|{_SEP}){_LOGURU_PLACE}"
)
_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "CRITICAL", "FATAL")
_BRACKETED_LEVELS = tuple(f"[{level}" for level in _LEVELS)


def _may_have_prefix(line: str) -> bool:
    """Cheap test of the first characters, to spare the regex for "Epoch 3", "[Epoch 3]"..."""
    first, second = line[:1], line[1:2]
    if first.isdigit() or (first == "[" and second.isdigit()):
        return True  # a timestamp
    if first in "IWEF" and second.isdigit():
        return True  # absl: I1121 12:30:01.123456 ...
    return line.startswith(_LEVELS) or line.startswith(_BRACKETED_LEVELS)


def strip_log_prefix(line: str) -> str:
    """Remove a leading logging prefix: timestamp, level, logger name or source location.

    Handles the usual shapes: ``2026-11-21 12:30:01,123 - INFO - ``, ``INFO:root:``,
    ``[INFO] ``, loguru's ``... | INFO | module:function:42 - `` and absl's
    ``I1121 12:30:01.123456 140 train.py:12] ``.

    Args:
        line: One line of output.

    Returns:
        The message after the prefix, or ``line`` itself when it has none.
    """
    if not _may_have_prefix(line):
        return line
    match = _LOG_PREFIX.match(line)
    return line[match.end() :] if match else line


class _Messages:
    """:func:`strip_log_prefix` remembering the last line: several parsers may ask for it."""

    __slots__ = ("_line", "_message")

    def __init__(self) -> None:
        self._line: str | None = None
        self._message = ""

    def __call__(self, line: str) -> str:
        if line is not self._line:
            self._line = line
            self._message = strip_log_prefix(line)
        return self._message


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

    def state(self) -> tuple[int | None, float | None, bool, int]:
        return self.step, self.epoch, self.fresh, self.writes


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


# --- 1. user patterns -----------------------------------------------------------------------


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


# --- 2. JSON and Python-dict lines ----------------------------------------------------------

_STEP_KEYS = frozenset({"step", "global_step", "iteration", "iter"})
_MAX_DICT_LINE = 1 << 16
_MAX_DICT_DEPTH = 4
# A flat dict of quoted keys and bare values (numbers, nan, True...), read without the parser.
_FLAT_ITEM = r"""(?:'([^'\\\n]*)'|"([^"\\\n]*)")\s*:\s*([-+.\w]+)"""
_FLAT_DICT = re.compile(rf"\{{\s*(?:{_FLAT_ITEM}\s*,\s*)*{_FLAT_ITEM}\s*,?\s*\}}")
_FLAT_ITEMS = re.compile(_FLAT_ITEM)
_WRAPPED_SCALAR = re.compile(
    r"(?:np|numpy)\.\w+\(\s*([^()]*?)\s*\)|tensor\(\s*([-+\w.]+)\s*(?:,[^()]*)?\)"
)
_BARE_NONFINITE = re.compile(r"(?<![\w'\"])(-?)(nan|inf)(?![\w'\"])")
_NONFINITE_MARKERS = {
    "__expbook_nan__": math.nan,
    "__expbook_inf__": math.inf,
    "__expbook_-inf__": -math.inf,
    "__expbook_-nan__": math.nan,
}


def _flat_value(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # True, None, null...


def _load_flat_dict(text: str) -> dict[str, float | None] | None:
    """Read a flat dict of numbers quickly; None when the text is anything else."""
    if _FLAT_DICT.fullmatch(text) is None:
        return None
    return {
        single or double: _flat_value(value) for single, double, value in _FLAT_ITEMS.findall(text)
    }


def _literal(text: str) -> object:
    if text.startswith('{"'):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return ast.literal_eval(text)


def _load_dict(text: str) -> object:
    """Read a dict printed as JSON or as a Python literal; None if it is neither."""
    try:
        return _literal(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    fixed = _WRAPPED_SCALAR.sub(lambda m: m[1] if m[1] is not None else m[2], text)
    fixed = _BARE_NONFINITE.sub(r"'__expbook_\1\2__'", fixed)  # nan is not a Python literal
    if fixed == text:
        return None
    try:
        return _literal(fixed)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _as_number(value: object) -> float | None:
    if type(value) is float:
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, str):
        return _NONFINITE_MARKERS.get(value)
    return None


def _as_step(value: object) -> int | None:
    number = _as_number(value)
    if number is None or not number.is_integer() or number < 0:
        return None
    return int(number)


def _flatten(
    obj: Mapping[object, object], prefix: str, depth: int
) -> Iterator[tuple[str, object]]:
    for key, value in obj.items():
        if not isinstance(key, str):
            continue
        if isinstance(value, Mapping) and depth < _MAX_DICT_DEPTH:
            yield from _flatten(value, f"{prefix}{key}/", depth + 1)
        else:
            yield prefix + key, value


class _DictLineParser(_LineParser):
    """A whole line that is a ``{...}`` dict: numeric values become one Point.

    ``step``/``global_step``/``iteration``/``iter`` give the step and ``epoch`` the epoch; they
    are not metric values. Nested dicts give keys joined by ``/``; other values are ignored. The
    line describes itself: without a step key the step is automatic, whatever the step context.
    """

    def __init__(self, messages: _Messages) -> None:
        self._messages = messages

    def parse(self, line: str) -> list[Event] | None:
        if "{" not in line:
            return None
        text = self._messages(line).strip()
        if text[:2] not in ("{'", '{"') or not text.endswith("}") or len(text) > _MAX_DICT_LINE:
            return None
        flat = _load_flat_dict(text)
        if flat is not None:
            return self._point(flat.items())
        obj = _load_dict(text)
        if not isinstance(obj, dict):
            return None
        return self._point(_flatten(obj, "", 0))

    @staticmethod
    def _point(items: Iterable[tuple[str, object]]) -> list[Event]:
        values: dict[str, float] = {}
        step: int | None = None
        epoch: float | None = None
        for raw_key, raw_value in items:
            lowered = raw_key.lower()
            if lowered in _STEP_KEYS:
                step = _as_step(raw_value) if step is None else step
                continue
            number = _as_number(raw_value)
            if lowered == "epoch":
                epoch = number
                continue
            key = normalize_key(raw_key)
            if number is not None and key is not None:
                values[key] = number
        return [Point(values, step, epoch)] if values else []


# --- 3. end-of-training tables and parameter counts -----------------------------------------

_TABLE_WITH_SPLIT = ("split", "metric", "min", "epoch", "max", "epoch")
_TABLE_WITHOUT_SPLIT = _TABLE_WITH_SPLIT[1:]
_TABLE_RULE = re.compile(r"[\s|:+-]*-[\s|:+-]*")
_MODEL_START = re.compile(r"[A-Za-z_][\w:<>, ]*\s\{\s*")
_MODEL_PARAMS = re.compile(r"\s+params:\s*(\d+)\s*")
_PARAM_COUNT = re.compile(
    r"\s*(Total|Trainable|Non-trainable) params:\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\s*\([^)]*\))?\s*",
    re.IGNORECASE,
)
_LIGHTNING_PARAM_COUNT = re.compile(
    r"\s*(\d+(?:\.\d+)?)\s*([KMBT]?)\s+(Total|Trainable|Non-trainable) params\s*"
)
_PARAM_KEYS = {
    "total": "model.params",
    "trainable": "model.trainable_params",
    "non-trainable": "model.non_trainable_params",
}
_SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _param_count(line: str) -> Summary | None:
    match = _PARAM_COUNT.fullmatch(line)
    if match:
        return Summary(_PARAM_KEYS[match[1].lower()], float(match[2].replace(",", "")))
    match = _LIGHTNING_PARAM_COUNT.fullmatch(line)
    if match:
        return Summary(_PARAM_KEYS[match[3].lower()], float(match[1]) * _SCALE[match[2]])
    return None


def _table_row(cells: list[str], with_split: bool) -> Summary | None:
    """A "Split | Metric | Min. | Epoch | Max. | Epoch" row as a Summary; None if it is not one."""
    name = f"{cells[0]}/{cells[1]}" if with_split else cells[0]
    key = normalize_key(name)
    low, low_epoch, high, high_epoch = (_parse_number(cell) for cell in cells[-4:])
    if key is None or low is None or high is None or low_epoch is None or high_epoch is None:
        return None
    low_at, high_at = low_epoch[0], high_epoch[0]
    if not (low_at.is_integer() and high_at.is_integer()):
        return None
    value, at = (low[0], low_at) if low_at > high_at else (high[0], high_at)
    return Summary(
        key,
        value,
        step=int(at),
        epoch=at,
        min=low[0],
        min_step=int(low_at),
        min_epoch=low_at,
        max=high[0],
        max_step=int(high_at),
        max_epoch=high_at,
    )


class _TableParser(_LineParser):
    """burn's "Learner Summary" table and model block; parameter counts of model summaries.

    The table starts at a header row ``Split | Metric | Min. | Epoch | Max. | Epoch`` (the Split
    column is optional) and ends at a blank line or any row that is not a table row. Each row
    gives a Summary whose value is the entry (min or max) with the later epoch. A model block
    (``Name {`` ... ``}``) yields its top-level ``params: N`` line as ``model.params``; the lines
    inside it yield nothing (they are a model description, not metrics).
    """

    def __init__(self) -> None:
        self._columns = 0  # number of columns of the open table, 0 when none is open
        self._in_model = False
        self._model_params: float | None = None  # the previous line was "  params: N"

    def parse(self, line: str) -> list[Event] | None:
        if self._columns:
            return self._table_line(line)
        if self._in_model:
            return self._model_line(line)
        if "|" in line and ("etric" in line or "ETRIC" in line):
            return self._header(line)
        if "params" in line:
            summary = _param_count(line)
            return [summary] if summary else None
        if line.endswith("{") and _MODEL_START.fullmatch(line):
            self._in_model = True
            return []
        return None

    def close(self) -> list[Event]:
        events = self._end_model()
        self._columns = 0
        return events

    def idle(self) -> bool:
        """Whether no table or model block is open (the next line needs no look unless it has
        a digit or could start one)."""
        return not (self._columns or self._in_model)

    def _header(self, line: str) -> list[Event] | None:
        names = tuple(cell.lower().rstrip(".") for cell in _cells(line))
        if names not in (_TABLE_WITH_SPLIT, _TABLE_WITHOUT_SPLIT):
            return None
        self._columns = len(names)
        return []

    def _table_line(self, line: str) -> list[Event] | None:
        if not line.strip() or _TABLE_RULE.fullmatch(line):
            if not line.strip():
                self._columns = 0
            return []
        cells = _cells(line)
        summary = None
        if "|" in line and len(cells) == self._columns:
            summary = _table_row(cells, with_split=self._columns == len(_TABLE_WITH_SPLIT))
        if summary is None:
            self._columns = 0
            return None
        return [summary]

    def _model_line(self, line: str) -> list[Event] | None:
        if line.rstrip() == "}":
            return self._end_model()
        if not line[:1].isspace():
            self._in_model = False
            self._model_params = None
            return None
        match = _MODEL_PARAMS.fullmatch(line)
        self._model_params = float(match[1]) if match else None
        return []

    def _end_model(self) -> list[Event]:
        params = self._model_params
        self._in_model = False
        self._model_params = None
        return [] if params is None else [Summary("model.params", params)]


# --- 4. progress lines ----------------------------------------------------------------------

_COUNTER_KINDS = {
    "epoch": "epoch",
    "ep": "epoch",
    "step": "step",
    "global_step": "step",
    "iter": "step",
    "iteration": "step",
    "it": "step",
    "batch": "batch",
}
_METRIC_WORD = re.compile(
    r"(?:loss|acc|accuracy|err|error|lr|f1|auc|ppl|perplexity|mae|mse|rmse|mape|bleu|rouge"
    r"|precision|recall|score|reward|return)\d*"
)
_KEY_PARTS = re.compile(r"[_./@-]+|(?<=[a-z])(?=[A-Z])")
_NOT_METRICS = frozenset({"v_num"})  # Lightning's version number in its progress bar
_SOURCE_FILE = re.compile(
    r"\.(?:py|pyx|rs|c|cc|cpp|cxx|h|hpp|cu|go|java|kt|scala|js|ts|rb|jl|lua|sh|swift)$"
)

# One "key value" token: a key at the start of the line or after a space or [ ( { | , ; ' " < >
# (not inside a path, a URL's query or a word), then ":"/"=" or whitespace, then a number that
# no letter, unit, "/", ":digit" (a time), ",digit" or ".word" (a version, a path) follows. The
# key's first character comes before the lookbehind so that the regex engine skips quickly.
_TOKEN = re.compile(
    r"([A-Za-z_](?<![^\s\[({|,;'\"<>].)[\w./@-]*+)(?:\s*([:=])\s*|\s+)(\[\s*)?"
    rf"(?=[-+.\dnNiI])({_NUM})(?:\s*/\s*(\d+))?(%)?(?![\w/]|\.\w|[,:]\d)"
)
# ":"/"=" before a number, but not the ":" of a time like 12:30 or 1:23 (the lookbehinds come
# after the first character so that the regex engine can skip to ":" and "=" quickly).
_SEP_NUMBER = re.compile(
    r"[:=](?<![0-9][0-9][:=])(?<![^A-Za-z_][0-9]:)\s*[-+]?(?:\.?[0-9]|nan|inf|NaN|Inf)"
)
_HAS_DIGIT = re.compile(r"[0-9]")
_COUNTER_ONLY = re.compile(
    r"(?:[\W_]*(?i:epoch|ep|step|global_step|iter|iteration|it|batch)\s*(?:[:=#]\s*)?\[?\s*"
    r"\d+(?:\.\d+)?(?:\s*/\s*\d+)?\s*\]?)+[\W_]*"
)
_CALL_OR_STRUCT = re.compile(r"[A-Za-z_]\w*\s?[({]\s*[A-Za-z_]\w*\s*[:=]")
_KERAS_BAR = re.compile(r"\s*(\d+)/(\d+)\s+[\[━]")
_KEY_CACHE_SIZE = 4096
_SHAPE_BYTES = bytes.maketrans(b"0123456789", b"##########")
_SHAPE_CACHE_SIZE = 65536

_KeyInfo = tuple[str | None, str | None, bool]  # (counter kind, normalised key, metric word)
_Token = tuple[int, int, "str | None", "str | None", str]  # (start, end, counter, key, percent)


def _may_have_pairs(line: str) -> bool:
    """Cheap test: could this line give a Point or a counter? False for most log messages.

    A Point needs two pairs, or a counter: two ``key: number``/``key=number``, or one of the
    words lines with a counter or with space-separated pairs have. (A line with a rarer counter
    word, ``ep 3``/``it 3``, and only space-separated pairs of rarer metrics is missed.)
    """
    low = line.lower()  # the words that lines with a counter or space-separated pairs have
    if (
        "epoch" in low
        or "step" in low
        or "iter" in low
        or "loss" in low
        or "acc" in low
        or "batch" in low
        or "reward" in low
        or "return" in low
        or "score" in low
    ):
        return True
    return ("=" in line or ":" in line) and len(_SEP_NUMBER.findall(line)) >= 2


@functools.lru_cache(maxsize=4096)
def _is_metric_name(key: str) -> bool:
    """Whether a space-separated key names a metric (``train_loss``, ``valAcc``, ``top1_acc``)."""
    return any(_METRIC_WORD.fullmatch(part.lower()) for part in _KEY_PARTS.split(key))


def _key_info(key: str) -> _KeyInfo:
    name = normalize_key(key)
    if name in _NOT_METRICS or _SOURCE_FILE.search(key):
        name = None  # `train.py:42` in a log line is a source location, not a metric
    return _COUNTER_KINDS.get(key.lower()), name, _is_metric_name(key)


def _counter_value(kind: str, text: str, percent: str) -> int | float | None:
    if text.isdecimal() and not percent:
        return int(text)
    if percent or not text[:1].isdigit():
        return None
    if kind == "epoch" and "." in text and "e" not in text.lower():
        return float(text)
    digits = text.replace(",", "")
    return int(digits) if digits.isdecimal() else None


def _keras_bar(line: str) -> tuple[str, str] | None:
    """(done, total) of a Keras progress bar line (``625/625 [====...] - ...``), else None."""
    if not line.lstrip()[:1].isdigit():
        return None
    bar = _KERAS_BAR.match(line)
    return None if bar is None else (bar[1], bar[2])


class _ProgressParser(_LineParser):
    """Lines with an epoch/step counter and metric pairs, or with two pairs or more.

    Also counter-only lines (Keras' ``Epoch 3/16``), which set the step context and yield
    nothing, and Keras' unfinished progress bars (``100/625 [==>...] - loss: ...``), which yield
    nothing because the finished bar of the same epoch follows.
    """

    def __init__(self, context: _StepContext, messages: _Messages, *, cache: bool = True) -> None:
        self._context = context
        self._messages = messages
        self._keys: dict[str, _KeyInfo] = {}  # memo of _key_info: keys repeat on every line
        # Per line shape (digits as "#"): where its counters and values are. Within a shape,
        # every digit is at the same offset, so the tokens are too; replaying the plan by slicing
        # saves the token regex, the costliest step.
        self._plans: dict[bytes, list[_Token]] | None = {} if cache else None
        self.value_dependent = False  # the last line's outcome depended on its digits' values

    def parse(self, line: str) -> list[Event] | None:
        self.value_dependent = False
        if not _may_have_pairs(line):
            return None
        line = self._messages(line)
        if ("(" in line or "{" in line) and _CALL_OR_STRUCT.search(line):
            return None  # Namespace(lr=0.1, ...), Linear(in_features=3, ...), Rust structs
        counters: dict[str, int | float] = {}
        values: dict[str, float] = {}
        self._scan(line, counters, values)
        if values:
            if not counters and len(values) < 2:
                return None
            bar = _keras_bar(line)
            if bar is not None and not counters:
                return self._keras_point(bar, values)
            step, epoch = self._position(counters)
            return [Point(values, step, epoch)]
        if counters and _COUNTER_ONLY.fullmatch(line):
            self._position(counters)
            return []
        return None

    def _scan(self, line: str, counters: dict[str, int | float], values: dict[str, float]) -> None:
        plans = self._plans
        if plans is None:
            plan = self._plan(line)
        else:
            shape = line.encode("utf-8", "surrogatepass").translate(_SHAPE_BYTES)
            plan = plans.get(shape)
            if plan is None:
                if len(plans) >= _KEY_CACHE_SIZE:
                    plans.clear()
                plan = plans[shape] = self._plan(line)
        for start, end, kind, name, percent in plan:
            text = line[start:end]
            if kind is not None:
                if kind not in counters:
                    number = _counter_value(kind, text, percent)
                    if number is not None:
                        counters[kind] = number
            else:
                values[name] = float(text) if "," not in text else _to_float(text)

    def _plan(self, line: str) -> list[_Token]:
        """The counters and values of a line: (start, end, counter kind, key, percent)."""
        keys = self._keys
        plan: list[_Token] = []
        for match in _TOKEN.finditer(line):
            key, sep, bracket, _, total, percent = match.groups()
            info = keys.get(key)
            if info is None:
                if len(keys) >= _KEY_CACHE_SIZE:
                    keys.clear()
                info = keys[key] = _key_info(key)
            kind, name, is_metric = info
            start, end = match.span(4)
            if kind is not None:
                plan.append((start, end, kind, None, percent or ""))
            elif total or bracket or name is None:
                continue  # a fraction like 9890/10000 is not a value
            elif sep or is_metric:  # space-separated: only metric words ("Processed 500 ...")
                plan.append((start, end, None, name, ""))
        return plan

    def _keras_point(self, bar: tuple[str, str], values: dict[str, float]) -> list[Event]:
        """A Keras progress bar line: nothing until finished; then the epoch it belongs to."""
        if bar[0] != bar[1]:
            self.value_dependent = True  # 143/625 and 625/625 have the same shape
            return []  # an unfinished bar: the finished one of the same epoch follows
        context = self._context
        if not context.fresh:
            return [Point(values, None)]  # a second bar for the epoch: model.evaluate()
        context.fresh = False
        context.writes += 1
        return [Point(values, context.step, context.epoch)]

    def _position(self, counters: Mapping[str, int | float]) -> tuple[int | None, float | None]:
        """Work out (step, epoch) for a line, and update the step context from its counters."""
        context = self._context
        if not counters:
            return context.step, context.epoch
        epoch = counters.get("epoch")
        step = counters.get("step")
        batch = counters.get("batch")
        if step is None:
            if epoch is None:
                step = batch  # a batch counter alone counts steps
            elif batch is None and float(epoch).is_integer():
                step = int(epoch)
            # with an epoch and a batch-in-epoch counter only, the step is left automatic
        if epoch is not None:
            context.epoch = float(epoch)
        context.step = None if step is None else int(step)
        context.fresh = True
        context.writes += 1
        return context.step, context.epoch


# --- 5. whole-line summaries ----------------------------------------------------------------

_SUMMARY_LINE = re.compile(
    rf"\s*(?P<name>[^\W\d_][^:=]*?)\s*(?::\s+|=\s*)(?P<val>{_NUM})\s*(?P<pct>%)?\s*"
)
_SUMMARY_END = frozenset("0123456789%yY")  # a number, a percentage, "infinity"
_COUNTER_IN_NAME = re.compile(
    r"(?<![\w./@-])(?:epoch|ep|step|global_step|iter|iteration|it|batch)\s*[:=#]?\s*\[?\d",
    re.IGNORECASE,
)


class _SummaryLineParser(_LineParser):
    """A whole line ``Name: number[%]`` or ``Name = number[%]`` (the name may have spaces)."""

    def __init__(self, messages: _Messages) -> None:
        self._messages = messages

    def parse(self, line: str) -> list[Event] | None:
        end = line.rstrip()[-3:]
        if not end or (end[-1] not in _SUMMARY_END and end.lower() not in ("nan", "inf")):
            return None
        if ": " not in line and ":\t" not in line and "=" not in line:
            return None
        match = _SUMMARY_LINE.fullmatch(self._messages(line))
        if match is None or _COUNTER_IN_NAME.search(match["name"]):
            return None
        key = normalize_key(match["name"])
        if key is None:
            return None
        return [Summary(key, _to_float(match["val"]), "%" if match["pct"] else None)]


# --- the parser -----------------------------------------------------------------------------


def _digitless_look(line: str) -> bool:
    """Whether a line without a digit may still matter: a table header, a model block or dict
    (``|``, ``{``), or a summary of a NaN or infinite value."""
    return "|" in line or "{" in line or line.rstrip()[-3:].lower() in ("nan", "inf", "ity")


class OutputParser:
    """Turn a program's printed lines into metric events.

    Not thread-safe: one parser per output stream. Lines must come in order.

    Args:
        patterns: The user's own patterns, tried before the built-in parsers.
        cache: Remember line shapes (digits masked) that gave nothing, and where the values of
            progress lines are; only ever changes speed, never results (a test checks it).

    Raises:
        ValueError: If a pattern does not compile, lacks the ``value`` group, has neither a
            ``key`` group nor a fixed key, or has an unknown kind; the message names the regex.
    """

    def __init__(self, patterns: Sequence[UserPattern] = (), *, cache: bool = True) -> None:
        context = self._context = _StepContext()
        messages = _Messages()
        self._quiet: set[bytes] | None = set() if cache else None  # lines that did nothing
        self._user = _UserPatternParser(patterns, context) if patterns else None
        self._table = _TableParser()
        self._progress = _ProgressParser(context, messages, cache=cache)
        self._parsers: tuple[_LineParser, ...] = (
            _DictLineParser(messages),
            self._table,
            self._progress,
            _SummaryLineParser(messages),
        )

    def feed(self, line: str) -> list[Event]:
        """Parse one complete line (ANSI colour codes allowed).

        Args:
            line: One line without its line ending, as ``LineAssembler`` returns it.

        Returns:
            The events the line gives, from one parser only; usually none.
        """
        if "\x1b" in line:
            line = strip_ansi(line)
        if self._user is not None:
            events = self._user.parse(line)
            if events is not None:
                return events
        if _HAS_DIGIT.search(line) is None and self._table.idle() and not _digitless_look(line):
            return []  # most lines: no digit, so no counter and (nearly always) no value
        # Log lines repeat with only their digits changing. A line whose shape (every digit a
        # "#": the same structure for every regex here) once gave no event and left every
        # parser's state as it was will do so again: skip it. Not with user patterns (their
        # regexes may test digits) nor inside a table.
        cacheable = self._quiet is not None and self._user is None and self._table.idle()
        if cacheable:
            shape = line.encode("utf-8", "surrogatepass").translate(_SHAPE_BYTES)
            if shape in self._quiet:
                return []
            before = self._context.state()
        events: list[Event] = []
        for parser in self._parsers:
            found = parser.parse(line)
            if found is not None:
                events = found
                break
        if (
            cacheable
            and not events
            and not self._progress.value_dependent
            and self._table.idle()
            and self._context.state() == before
        ):
            if len(self._quiet) >= _SHAPE_CACHE_SIZE:
                self._quiet.clear()
            self._quiet.add(shape)
        return events

    def close(self) -> list[Event]:
        """End the output: return anything still pending (such as an unclosed model block)."""
        events: list[Event] = []
        for parser in self._parsers:
            events.extend(parser.close())
        return events
