"""Progress lines: an epoch/step counter and metric pairs, Keras and tqdm bars."""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterator, Mapping
from itertools import repeat
from operator import getitem
from typing import NamedTuple

from expbook.runner.parsers._common import (
    _HAS_DIGIT,
    _MAX_CACHED_TEXT,
    _NUM,
    _RESULT_WORDS,
    Event,
    Point,
    PointRows,
    Summary,
    _CurrentLine,
    _has_word,
    _LineParser,
    _short_text_cache,
    _StepContext,
    _to_float,
    _zero_thousands,
    normalize_key,
)

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
_METRIC_WORD = re.compile(rf"(?:{_RESULT_WORDS}|lr)\d*")
_RESULT_WORD = re.compile(rf"(?:{_RESULT_WORDS})\d*")
# Lightning's version number in its progress bar; times left to run.
_NOT_METRICS = frozenset({"v_num", "eta", "remaining", "time_left"})
_SOURCE_FILE = re.compile(
    r"\.(?:py|pyx|rs|c|cc|cpp|cxx|h|hpp|cu|go|java|kt|scala|js|ts|rb|jl|lua|sh|swift)$"
)

# One "key value" token: a key at the start of the line or after a space or [ ( { | , ; ' " < >
# (not inside a path, a URL's query or a word), then ":"/"=" or whitespace, then a number that
# no letter, unit, "/", ":digit" (a time), ",digit", ".word" (a version, a path) or "%|" (a
# tqdm bar's percentage: "Training: 100%|███|") follows. The key's first character comes before
# the lookbehind so that the regex engine skips quickly.
_TOKEN = re.compile(
    r"([A-Za-z_](?<![^\s\[({|,;'\"<>].)[\w./@-]*+(?:'s\s+[A-Za-z_][\w./@-]*+)?)"
    r"(?:\s*([:=])\s*|\s+)(\[\s*)?"
    rf"(?=[-+.\dnNiI])({_NUM})(?:\s*/\s*(\d+))?(%(?!\|)|(?:ms|s|us|µs|min)(?![\w/]))?"
    r"(?![\w/%]|\.\w|[,:]\d)"
)
# ":"/"=" before a number, but not the ":" of a time like 12:30 or 1:23 (the lookbehinds come
# after the first character so that the regex engine can skip to ":" and "=" quickly).
# A counter in brackets at the start of a line: XGBoost's and LightGBM's "[10]" (the round),
# PyTorch's tutorial "[1,  2000]" (epoch, batch), "[1][ 5/19]" (epoch, batch of the epoch).
_LEADING_COUNTER = re.compile(
    r"\s*\[\s*(\d{1,18})\s*(?:,\s*(\d{1,18})\s*)?\](?:\s*\[\s*(\d{1,18})\s*/\s*\d+\s*\])?(?=\s|$)"
)
# Progress in brackets after a counter: "Train Epoch: 1 [640/60000 (1%)]" (the samples of the
# epoch so far: a batch counter, so that the epoch's points come at steps of their own).
_BRACKET_PROGRESS = re.compile(
    r"\d[ \t]*\[\s*(\d{1,18})\s*/\s*\d{1,18}\s*(?:\(\s*\d+(?:\.\d*)?\s*%\s*\)\s*)?\]"
)
# A fraction's percentage after it: "Accuracy: 9800/10000 (98%)".
_FRACTION_PERCENT = re.compile(rf"\s*\(\s*({_NUM})\s*%\s*\)")
# A library's own log line, "[LightGBM] [Info] Number of positive: 417": about itself.
_LIBRARY_LOG = re.compile(r"\s*\[[A-Za-z][\w.-]*\]\s*\[(?i:info|warning|warn|debug|fatal)\]")
_SEP_NUMBER = re.compile(
    r"[:=](?<![0-9][0-9][:=])(?<![^A-Za-z_][0-9]:)\s*[-+]?(?:\.?[0-9]|nan|inf|NaN|Inf)"
)
_COUNTER_ONLY = re.compile(
    r"(?:[\W_]*(?i:epoch|ep|step|global_step|iter|iteration|it|batch)\s*(?:[:=#]\s*)?\[?\s*"
    r"\d+(?:\.\d+)?(?:\s*/\s*\d+)?\s*\]?)+[\W_]*"
)
_CALL_OR_STRUCT = re.compile(r"[A-Za-z_]\w*\s?[({]\s*[A-Za-z_]\w*\s*[:=]")
_KERAS_BAR = re.compile(r"\s*(\d+)/(\d+)\s+[\[━]")
# A bar's counter: tqdm's "...| 5/60 [00:02<...", Rich's "━━━━╸━━━ 4/10 0:00:01".
_TQDM_COUNT = re.compile(r"(?:\||[━╸╺])\s*(\d+)/(\d+)\s")
_INDENT = " " * 8  # a line this indented after a bar continues its postfix (Rich wraps it)
_KEY_CACHE_SIZE = 4096  # entries of the key memo and of the plan cache (each then cleared)
_MAX_COUNTER_DIGITS = 18
"""A longer number is no counter (so a counter always makes a valid step: < 2**63)."""
_MIN_ROWS = 8
"""Consecutive lines of one layout read as one PointRows from this many on (a few lines are
quicker read one by one)."""
_UNKNOWN = object()
_NAN = math.nan

_KeyInfo = tuple[str | None, str | None, bool]  # (counter kind, normalised key, metric word)
# A counter or value of a line: (start, end) of its number, its counter kind (None for a value),
# its key (None when the key has a digit: then read from the line, at key), percent sign, and
# whether the number has a thousands separator.
_Token = tuple[int, int, "str | None", "str | None", "slice | None", str, bool]


def _may_have_pairs(line: str) -> bool:
    """Cheap test: could this line give a Point or a counter? False for most log messages.

    A Point needs two pairs, a counter or a tqdm bar: two ``key: number``/``key=number``, one of
    the words lines with a counter or with space-separated pairs have, or ``%|``. (A line with a
    rarer counter word, ``ep 3``/``it 3``, and only space-separated pairs of rarer metrics is
    missed.)
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
        or "val" in low
        or "test" in low
        or "train" in low
        or "eval" in low
    ):
        return True
    if "=" not in line and ":" not in line:
        return False
    return "%|" in line or len(_SEP_NUMBER.findall(line)) >= 2


@_short_text_cache(maxsize=4096)
def _is_metric_name(key: str) -> bool:
    """Whether a space-separated key names a metric (``train_loss``, ``valAcc``, ``top1_acc``)."""
    return _has_word(key, _METRIC_WORD)


# Words that name the data a result is on; a key printed after one, or in a line whose head
# (the text before its first pair) names one, is that split's ("train loss 2.7" is train_loss;
# "Test set: Average loss: 0.8" is test_loss; "[Valid - Epoch 3] Loss 0.35" is valid_loss).
_SPLITS = "train|training|val|valid|validation|test|testing|eval|evaluation|dev"
_SPLIT_WORD = re.compile(rf"(?<![A-Za-z])(?i:{_SPLITS})(?![A-Za-z]|\.\w)")  # not train.py
_SPLIT_PART = re.compile(rf"(?i:{_SPLITS})")
_LOGGER_LIKE = re.compile(r"\s*:\s*(?i:epoch|ep|step|global_step|iter|iteration|it|batch)\b")
_KEY_BEFORE = re.compile(r"[A-Za-z_][\w./@-]*[ \t]+\Z")
_WORD_BEFORE = re.compile(r"([A-Za-z]+)[ \t]+\Z")
_SEP_BEFORE = re.compile(r"[=:]\s*[-+.\d]")  # a pair before: the head has ended
# A "name value" segment starts a line's message or follows a delimiter (or a counter's colon).
_SEGMENT_START = re.compile(r"(?:\A|[,|;\t]|\d:)[ \t]*\Z")
_RATE = re.compile(rf"(?<![\w./])({_NUM})[ \t]*([A-Za-z]{{1,12}}/[A-Za-z]{{1,12}})(?![\w/])")


def _by_position(plan: list[_Token]) -> list[_Token]:
    """The values of a line in the order they appear, each once: a value two rules both read
    (a segment and a metric word, "step 0 valid/loss 0.5") keeps the first rule's reading."""
    seen: set[tuple[int, int]] = set()
    kept = []
    for token in sorted(plan, key=lambda token: (token[0], token[1])):  # stable: first rule wins
        if (token[0], token[1]) not in seen:
            seen.add((token[0], token[1]))
            kept.append(token)
    return kept


def _results_after_settings(line: str, plan: list[_Token]) -> list[_Token]:
    """Without the values before the last ``;`` when they name no result and those after it
    do: scikit-learn's ``[CV 1/3] END C=0.1, gamma=0.01;, score=0.840`` (the candidate's
    parameters, then its score)."""
    cut = line.rfind(";")
    before = [t for t in plan if t[2] is None and t[0] < cut]
    after = [t for t in plan if t[2] is None and t[0] > cut]
    if not before or not after:
        return plan
    if any(t[4] is not None or _is_result_name(t[3]) for t in before):
        return plan
    if not any(t[4] is not None or _is_result_name(t[3]) for t in after):
        return plan
    return [t for t in plan if t[2] is not None or t[0] > cut]


def _split_of(line: str, start: int) -> str:
    """The split word in a line's head (before ``start``, its first pair's key), or "" (also
    for a name before a colon and a counter: the logger's, "train: epoch 3 loss=0.5")."""
    found = _SPLIT_WORD.search(line, 0, start)
    if found is None or _LOGGER_LIKE.match(line, found.end()) is not None:
        return ""
    return found[0].lower()


def _qualified(line: str, start: int, name: str, head: str) -> str:
    """A key with the split it is on: the word printed before it if that is a split word,
    else the line head's split, unless the key names a split already. With ``name`` empty:
    the split alone (for a key read from each line)."""
    if name and _has_word(name, _SPLIT_PART):
        return name
    before = _WORD_BEFORE.search(line[max(0, start - 24) : start])
    split = before[1].lower() if before and _SPLIT_PART.fullmatch(before[1]) else head
    if not name:
        return split
    return normalize_key(f"{split}_{name}") or name if split else name


@_short_text_cache(maxsize=4096)
def _is_result_name(key: str) -> bool:
    """Whether a key names a result (loss, acc, ...: not lr, momentum, seed)."""
    return _has_word(key, _RESULT_WORD)


_POSSESSIVE = re.compile(r"'s\s+")  # "valid_0's binary_logloss": valid_0/binary_logloss


def _key_info(key: str) -> _KeyInfo:
    name = normalize_key(_POSSESSIVE.sub("/", key) if "'s" in key else key)
    if name in _NOT_METRICS or _SOURCE_FILE.search(key):
        name = None  # `train.py:42` in a log line is a source location, not a metric
    return _COUNTER_KINDS.get(key.lower()), name, _is_metric_name(key)


def _counter_value(kind: str, text: str, percent: str) -> int | float | None:
    if text.isdecimal() and not percent:
        return int(text) if len(text) <= _MAX_COUNTER_DIGITS else None
    if percent or not text[:1].isdigit():
        return None
    if kind == "epoch" and "." in text and "e" not in text.lower():
        return _to_float(text)  # 1,024.5 too
    digits = text.replace(",", "")
    return int(digits) if digits.isdecimal() and len(digits) <= _MAX_COUNTER_DIGITS else None


def _same(old: float | None, new: float) -> bool:
    return old == new or (old is not None and old != old and new != new)  # NaN stays NaN


def _keras_bar(line: str) -> re.Match[str] | None:
    """The done/total match of a Keras progress bar line (``625/625 [====...] - ...``)."""
    if not line.lstrip()[:1].isdigit():
        return None
    return _KERAS_BAR.match(line)


# (start, end, kind, percent sign, whether int() reads it: digits alone, in every line of a shape)
_Counters = list[tuple[int, int, str, str, bool]]
_Values = list[tuple[int, int, str]]  # (start, end, key)


def _plain_parts(plan: list[_Token], line: str) -> tuple[_Counters | None, _Values | None]:
    """The counters and values of a plan to read by slicing alone; (None, None) when it has a
    thousands separator or a key with digits (read each line the general way)."""
    counters: _Counters = []
    values: _Values = []
    for start, end, kind, name, key, percent, comma in plan:
        if comma or key is not None:
            return None, None
        if kind is not None:
            text = line[start:end]
            whole = text.isdecimal() and not percent and len(text) <= _MAX_COUNTER_DIGITS
            counters.append((start, end, kind, percent, whole))
        elif name is not None:
            values.append((start, end, name))
    return counters, values


class _RowReader(NamedTuple):
    """How a run of lines of one layout is read at once (``_ProgressParser.read_rows``).

    Made for the layouts whose every line is a Point of the same keys with its step and epoch
    by the same rule: read by slicing (no thousands separators, no keys with digits), every
    counter a plain integer, not an unfinished Keras bar, and a Point by its pairs alone.
    """

    keys: tuple[str, ...]  # as the values dict of a Point of the line has them
    values: tuple[slice, ...]  # per key, where its value is (the last of equal keys, as there)
    counters: dict[str, slice]  # counter kind -> where it is (the first counter of each kind)


def _row_reader(
    prefix: int, counters: _Counters | None, values: _Values | None, tqdm: bool, keras: bool
) -> _RowReader | None:
    """The row reader of a layout, if it can have one (see :class:`_RowReader`)."""
    if counters is None or not values or not all(whole for *_, whole in counters):
        return None
    places: dict[str, slice] = {}
    for start, end, key in values:
        places[key] = slice(prefix + start, prefix + end)
    kinds: dict[str, slice] = {}
    for start, end, kind, _, _ in counters:
        if kind not in kinds:
            kinds[kind] = slice(prefix + start, prefix + end)
    if tqdm:
        return None  # a bar: its points hang on the previous drawing (_ProgressParser._bar)
    if not kinds and (keras or len(places) < 2):
        return None  # a Keras bar (finished or not by its values), or maybe a summary line
    return _RowReader(tuple(places), tuple(places.values()), kinds)


def _texts(lines: list[str], place: slice) -> Iterator[str]:
    """``line[place]`` for each line, at C speed."""
    return map(getitem, lines, repeat(place))


class _Layout(NamedTuple):
    """Where things are in every progress line of one shape (see ``_ProgressParser``)."""

    prefix: int  # length of the logging prefix before the message
    plan: list[_Token]  # its counters and values, in order
    counters: _Counters | None  # read by slicing (see _plain_parts)
    values: _Values | None
    tqdm: bool  # a tqdm bar ("%|"): one pair is enough for a Point
    keras: tuple[int, int, int, int] | None  # spans of a Keras bar's done and total
    counter_only: bool  # nothing but counters (Keras' "Epoch 3/16")
    rows: _RowReader | None  # for reading many lines of the shape at once
    results: bool = True  # a value names a result: without a counter, a point needs one
    single: bool = False  # one pair is a point: "  validation: mse 2.15" (a split word heads it)


class _ProgressParser(_LineParser):
    """Lines with an epoch/step counter and metric pairs, or with two pairs or more.

    Also counter-only lines (Keras' ``Epoch 3/16``), which set the step context and yield
    nothing, and Keras' unfinished progress bars (``100/625 [==>...] - loss: ...``), which yield
    nothing because the finished bar of the same epoch follows. A tqdm bar's percentage
    (``Training: 100%|███| 50/50``) is not a value, but the bar makes one pair of its postfix
    (``[00:01<00:00, 30.1it/s, loss=0.5]``) enough for a Point.

    Everything but the values is decided by the line's shape (its digits masked): whether it
    may be a progress line at all, its logging prefix, where its counters and values are. That
    :class:`_Layout` is kept per shape, so a line of a known shape is read by slicing; the owner
    may go straight to :meth:`read` for shapes this parser recognised (see ``OutputParser``).
    """

    def __init__(self, context: _StepContext, current: _CurrentLine) -> None:
        self._context = context
        self._current = current
        self._keys: dict[str, _KeyInfo] = {}  # memo of _key_info: keys repeat on every line
        # Per line shape: its layout, or None when no line of the shape is a progress line.
        # Within a shape, every digit is at the same offset, so the tokens are too (and the
        # logging prefix has the same length); replaying the layout by slicing saves the token
        # regex, the costliest step.
        self._plans: dict[bytes, _Layout | None] = {}
        # The shape of the line the next parse gets, set by the owner (computed once per line
        # for all the caches); None to parse without a plan.
        self.line_shape: bytes | None = None
        # Progress bars (tqdm): the postfix values of the last drawing, the steps its changes
        # counted, the longest bar's total, and the points held for its next drawing.
        self._bar_values: dict[str, float] = {}
        self._bar_live: set[str] = set()  # keys that change from step to step
        self._after_bar = False  # the last line read was a bar (or its wrapped postfix)
        self._first_epoch: int | float | None = None  # of the bars with an epoch counter
        self._bar_at_start = False  # the last bar drawn showed its counter at 0
        self._bar_points = 0
        self._bar_total = 0
        self._bar_cleared = False  # a blank drawing since the bar's last drawing
        self._held_drawings = 0  # drawings of the bar since points were held
        self._bar_done = False  # the bar's last drawing showed it finished
        self._held_done = False  # so did the one before the held points were printed
        self.held: list[Point] = []

    def parse(self, line: str) -> list[Event] | None:
        layout = self.layout(line)
        return None if layout is None else self.read(line, layout)

    def layout(self, line: str) -> _Layout | None:
        """The layout of ``line`` (from the cache when its shape is known); None when it cannot
        be a progress line."""
        shape = self.line_shape
        if shape is None:
            return self._analyse(line)
        plans = self._plans
        layout = plans.get(shape, _UNKNOWN)
        if layout is _UNKNOWN:
            if len(plans) >= _KEY_CACHE_SIZE:
                plans.clear()
            layout = plans[shape] = self._analyse(line)
        return layout

    def cached_layout(self, shape: bytes) -> _Layout | None:
        """The layout kept for a shape, if any."""
        return self._plans.get(shape)

    def read(self, line: str, layout: _Layout) -> list[Event] | None:
        """The events of a line of this layout; None if, by its values, it is no progress line
        (one pair without a counter: a summary line?). Keeps the context's ``counted``: whether
        the last line that gave or set something had a counter."""
        context = self._context
        was, writes = context.counted, context.writes
        context.counted = False
        found = self._read(line, layout)
        if not found and context.writes == writes:
            context.counted = was  # a line that gave and set nothing changes nothing
        return found

    def _read(self, line: str, layout: _Layout) -> list[Event] | None:
        prefix, plan, plain_counters, plain_values, tqdm, keras, counter_only = layout[:7]
        message = line[prefix:] if prefix else line
        counters: dict[str, int | float] = {}
        if plain_values is None or plain_counters is None:
            values: dict[str, float] = {}
            self._scan(message, plan, counters, values)
        else:
            values = {key: float(message[start:end]) for start, end, key in plain_values}
            for start, end, kind, percent, whole in plain_counters:
                if kind not in counters:
                    text = message[start:end]
                    number = int(text) if whole else _counter_value(kind, text, percent)
                    if number is not None:
                        counters[kind] = number
        if tqdm:
            self._after_bar = True
            return self._bar(message, values, counters)
        if self._after_bar:
            if values and not counters and message.startswith(_INDENT):
                return self._bar(message, values, counters)  # the postfix, wrapped
            self._after_bar = False
        if values:
            if not counters and not layout.results and keras is None:
                return None  # settings ("optimizer: sgd momentum=0.9 base_lr=0.03")
            if not counters and len(values) < 2 and not layout.single:
                return None  # one pair without a counter or a tqdm bar: a summary line?
            if keras is not None and not counters:
                return self._keras_point(message, keras, values)
            step, epoch = self._position(counters)
            return [Point(values, step, epoch)]
        if counters and counter_only:
            self._position(counters)
            return []
        return None

    def _bar(
        self, message: str, values: dict[str, float], counters: dict[str, int | float]
    ) -> list[Event]:
        """A drawing of a tqdm bar (a line, or a state a ``\\r`` overwrote).

        Its postfix pairs give a point when a value changed since the last drawing. A change of
        a per-step pair (one of the first drawing's, or one that changed with a step before)
        is a new step (a bar is redrawn whenever its counter moves or its postfix is set, and
        the counter a drawing shows may lag: tqdm updates it at most every ``mininterval``, so
        the postfix's changes count the steps), and the point has every per-step pair, changed
        or not (``acc=0.667`` twice in a row is two points). Other pairs, new or changed
        (``val_loss`` set at an epoch's end), give a point at the same step (with the step's
        pairs when they changed too); first shown by a drawing at the counter's start (0/10)
        of an epoch, they belong to the epoch before.

        When the drawing's counter (plus the bar's total for each epoch before, counted from
        the first epoch seen) is ahead of that count, drawings were skipped (Rich draws from a
        thread): the step is the counter's.

        A bar without a postfix counts the steps with its counter when it is the longest bar
        seen (an evaluation bar inside it is shorter): the points of lines without a step
        of their own (``transformers``' log dicts) wait for the next drawing of that bar and
        take the step it shows: the first drawing after the bar was cleared (``tqdm.write``
        clears the bar, prints, and draws it again with the counter up to date), else the
        second one (the first may have been drawn before the line was printed: the two
        streams are read apart, and a drawing is complete only once the next one starts).
        """
        self._current.value_dependent = True  # what a drawing gives hangs on the last one
        context = self._context
        epoch = counters.get("epoch")
        if counters or not message.startswith(_INDENT):  # a bar, not its wrapped postfix
            shown = _TQDM_COUNT.search(message)
            self._bar_at_start = shown is not None and shown[1].strip("0") == ""
        if epoch is not None:
            context.epoch = float(epoch)
        if not values:
            bar = _TQDM_COUNT.search(message)
            if bar is None or self._bar_points:
                return []
            total = int(bar[2])
            if total < self._bar_total:
                return []  # a nested bar (evaluation)
            self._bar_total = total
            self._bar_done = bar[1] == bar[2]
            context.step = int(bar[1])
            context.fine = True
            context.fresh = True
            context.writes += 1
            cleared, self._bar_cleared = self._bar_cleared, False
            if not self.held:
                return []
            self._held_drawings += 1
            if not cleared and self._held_drawings < 2:
                return []  # drawn before the line was printed (the other stream's lag)
            held, self.held = self.held, []
            self._held_drawings = 0
            return [Point(point.values, context.step, point.epoch) for point in held]
        last, live = self._bar_values, self._bar_live
        changed = [key for key, value in values.items() if not _same(last.get(key), value)]
        if not changed:
            return []
        last.update(values)
        context.fine = True
        if not self._bar_points or not live.isdisjoint(changed):
            # a new step: its point has every per-step pair; the counter shown, when it is
            # ahead, says how many steps there were (drawings may be skipped: Rich draws
            # from a thread)
            self._bar_points = max(self._bar_points + 1, self._shown_steps(message, epoch))
            was_live = set(live)
            live.update(changed)
            values = {
                key: value for key, value in values.items() if key in was_live or key in changed
            }
        else:  # pairs set once in a while (val_loss at an epoch's end): at the same step
            values = {key: values[key] for key in changed}
            if (
                self._bar_at_start
                and context.epoch is not None
                and context.epoch > (self._first_epoch or 0)
            ):  # first shown as the next epoch starts: they end the one before
                context.step = self._bar_points
                return [Point(values, context.step, context.epoch - 1)]
        context.step = self._bar_points
        context.fresh = True
        context.writes += 1
        return [Point(values, context.step, context.epoch)]

    def _shown_steps(self, message: str, epoch: int | float | None) -> int:
        """The steps a bar's drawing shows: its counter, plus its total for each epoch before
        (counted from the first epoch seen); 0 when it shows none."""
        bar = _TQDM_COUNT.search(message)
        if bar is None:
            return 0
        done = int(bar[1])
        if epoch is not None:
            if self._first_epoch is None:
                self._first_epoch = epoch
            done += int(max(0, epoch - self._first_epoch)) * int(bar[2])
        return done

    def bar_cleared(self) -> None:
        """A blank drawing: the bar was cleared for a message, and its next drawing shows the
        counter as it was when the message was printed."""
        if self._bar_total:
            self._bar_cleared = True

    def place(self, events: list[Event]) -> list[Event]:
        """Hold the points of a line without a step of their own (a dict) while a bar counts
        the steps, until its next drawing (:meth:`_bar`)."""
        if not self._bar_total or self._bar_points:
            return events
        placed: list[Event] = []
        for event in events:
            if type(event) is Point and event.step is None:
                if not self.held:
                    self._held_done = self._bar_done
                self.held.append(event)
            else:
                placed.append(event)
        self._current.value_dependent = True
        return placed

    def close(self) -> list[Event]:
        """The points still held: at the bar's last step if they were printed after it
        finished (a final evaluation), else at automatic steps (where is unknown)."""
        held, self.held = self.held, []
        step = self._context.step if self._held_done else None
        return [Point(point.values, step, point.epoch) for point in held]

    def read_block(self, lines: list[str], layout: _Layout) -> list[Event | PointRows]:
        """The events of consecutive lines of one layout that has a row reader: one
        :class:`PointRows` for many lines, a Point each for a few (cheaper then)."""
        if len(lines) >= _MIN_ROWS and layout.rows is not None:
            return self.read_rows(lines, layout.rows)
        events: list[Event | PointRows] = []
        for line in lines:
            events += self.read(line, layout) or ()
        return events

    def read_rows(self, lines: list[str], reader: _RowReader) -> list[Event | PointRows]:
        """The events of consecutive lines of one layout that has a row reader: what
        :meth:`read` gives line by line (and the same step context after), as one
        :class:`PointRows`, column by column at C speed."""
        self._after_bar = False
        values = tuple(array("d", map(float, _texts(lines, place))) for place in reader.values)
        counted = {
            kind: list(map(int, _texts(lines, place))) for kind, place in reader.counters.items()
        }
        context = self._context
        count = len(lines)
        if not counted:  # at the step and epoch the context has
            context.counted = False
            steps = None if context.step is None else array("q", [context.step]) * count
            epoch = _NAN if context.epoch is None else context.epoch
            return [PointRows(reader.keys, values, steps, array("d", [epoch]) * count)]
        epoch_counter = counted.get("epoch")
        step = counted.get("step")
        if step is None:  # as _position works it out
            batch = counted.get("batch")
            if epoch_counter is None:
                step = batch
            elif batch is None and context.fine:
                step = None if context.step is None else [context.step] * count
            elif batch is None:
                step = epoch_counter
        if epoch_counter is not None:
            epochs = array("d", epoch_counter)
            context.epoch = epochs[-1]
        else:
            epochs = array("d", [_NAN if context.epoch is None else context.epoch]) * count
        context.step = None if step is None else step[-1]
        context.fine = context.fine or "step" in counted or "batch" in counted
        context.fresh = True
        context.counted = True
        context.writes += count
        return [PointRows(reader.keys, values, None if step is None else array("q", step), epochs)]

    def _analyse(self, line: str) -> _Layout | None:
        if not _may_have_pairs(line):
            return None
        message = self._current.message(line)
        if message.startswith("[") and _LIBRARY_LOG.match(message):
            return None
        if ("(" in message or "{" in message) and _CALL_OR_STRUCT.search(message):
            return None  # Namespace(lr=0.1, ...), Linear(in_features=3, ...), Rust structs
        plan = self._plan(message)
        counters, values = _plain_parts(plan, message)
        bar = _keras_bar(message)
        prefix = len(line) - len(message)
        tqdm = "%|" in message or ("━" in message and _TQDM_COUNT.search(message) is not None)
        names = [
            name if key is None else None for _, _, kind, name, key, _, _ in plan if kind is None
        ]
        results = any(name is None or _is_result_name(name) for name in names)
        single = False  # "  validation: mse 2.15", but not "Test loss: 0.25" (a summary line)
        if len(names) == 1 and not any(kind for _, _, kind, *_ in plan):
            key = _KEY_BEFORE.search(message, 0, plan[0][0])  # space-separated from its value
            single = (
                key is not None
                and _SPLIT_WORD.search(message, 0, key.start()) is not None
                and _SEP_BEFORE.search(message, 0, key.start()) is None
            )
        return _Layout(
            prefix=prefix,
            plan=plan,
            counters=counters,
            values=values,
            tqdm=tqdm,
            keras=None if bar is None else (*bar.span(1), *bar.span(2)),
            counter_only=_COUNTER_ONLY.fullmatch(message) is not None,
            rows=_row_reader(prefix, counters, values, tqdm, bar is not None)
            if results or tqdm
            else None,
            results=results,
            single=single,
        )

    def _scan(
        self,
        line: str,
        plan: list[_Token],
        counters: dict[str, int | float],
        values: dict[str, float],
    ) -> None:
        """Read the counters and values of a line by its plan (the general way: thousands
        separators, keys with digits)."""
        for start, end, kind, name, key, percent, comma in plan:
            text = line[start:end]
            if comma:  # 1,512 is a number, 0,512 none; and they have one shape
                self._current.value_dependent = True
                if _zero_thousands(text):
                    continue
            if kind is not None:
                if kind not in counters:
                    number = _counter_value(kind, text, percent)
                    if number is not None:
                        counters[kind] = number
                continue
            if key is not None:  # fold1_acc and fold2_acc have one shape
                raw = _POSSESSIVE.sub("/", line[key]) if "'s" in line[key] else line[key]
                name = normalize_key(f"{name}_{raw}" if name else raw)
                if name is None or _has_word(raw, _SPLIT_PART):
                    name = normalize_key(raw)
            values[name] = _to_float(text) if comma else float(text)

    def _plan(self, line: str) -> list[_Token]:
        """The counters and values of a line, as :data:`_Token` tuples."""
        keys = self._keys
        plan: list[_Token] = []
        segments: list[_Token] = []  # "name value" pairs of names that are no metric word
        head: str | None = None  # the split the line's head names ("Test set: ..."), or ""
        tqdm = "%|" in line or "━" in line
        leading = _LEADING_COUNTER.match(line)
        if leading is not None:
            kinds = ("step",) if leading[2] is None and leading[3] is None else ("epoch",)
            for group, kind in zip((1, 2, 3), (*kinds, "batch", "batch"), strict=True):
                if leading[group] is not None:
                    plan.append((*leading.span(group), kind, None, None, "", False))
        if leading is None and "/" in line:
            progress = _BRACKET_PROGRESS.search(line)
            if progress is not None:
                plan.append((*progress.span(1), "batch", None, None, "", False))
        for match in _TOKEN.finditer(line):
            key, sep, bracket, _, total, percent = match.groups()
            info = keys.get(key)
            if info is None:
                info = _key_info(key)
                if len(key) <= _MAX_CACHED_TEXT:
                    if len(keys) >= _KEY_CACHE_SIZE:
                        keys.clear()
                    keys[key] = info
            kind, name, is_metric = info
            start, end = match.span(4)
            comma = "," in match[4]
            if kind is not None:
                plan.append((start, end, kind, None, None, percent or "", comma))
            elif total and name is not None and (sep or is_metric):
                percent_match = _FRACTION_PERCENT.match(line, match.end())
                if percent_match is not None:  # "Accuracy: 9800/10000 (98%)": 98
                    if head is None:
                        head = "" if tqdm else _split_of(line, match.start(1))
                    name = _qualified(line, match.start(1), name, head)
                    start, end = percent_match.span(1)
                    plan.append((start, end, None, name, None, "%", "," in percent_match[1]))
            elif total or bracket or name is None:
                continue  # a fraction like 9890/10000 is not a value
            else:
                if head is None:
                    head = "" if tqdm else _split_of(line, match.start(1))
                if _HAS_DIGIT.search(key) is not None:
                    if sep or is_metric:  # the name differs between lines of one shape: read
                        split = _qualified(line, match.start(1), "", head)  # it from each line
                        where = slice(*match.span(1))
                        plan.append((start, end, None, split or None, where, "", comma))
                    continue
                name = _qualified(line, match.start(1), name, head)
                if sep or is_metric:  # space-separated: only metric words ("Processed 500 ...")
                    plan.append((start, end, None, name, None, "", comma))
                elif _SEGMENT_START.search(line, 0, match.start(1)) is not None:
                    segments.append((start, end, None, name, None, "", comma))
        if ";" in line:
            plan = _results_after_settings(line, plan)
        if segments and any(kind is None for _, _, kind, *_ in plan):
            # "iter 10: loss 2.95, time 29.48ms, mfu 0.02%": a list of "name value" segments
            plan += segments
        plan = _by_position(plan)
        if not (tqdm or "━" in line or _keras_bar(line)) and any(
            kind is None for _, _, kind, *_ in plan
        ):
            for rate in _RATE.finditer(line):  # "6.03 ms/it", "1234 tokens/s"
                name = normalize_key(rate[2])
                if name is not None:
                    plan.append((*rate.span(1), None, name, None, "", "," in rate[1]))
            plan = _by_position(plan)
        return plan

    def _keras_point(
        self, line: str, bar: tuple[int, int, int, int], values: dict[str, float]
    ) -> list[Event]:
        """A Keras progress bar line: nothing until finished; then the epoch it belongs to."""
        if line[bar[0] : bar[1]] != line[bar[2] : bar[3]]:
            self._current.value_dependent = True  # 143/625 and 625/625 have one shape
            return []  # an unfinished bar: the finished one of the same epoch follows
        context = self._context
        if not context.fresh:  # a second bar for the epoch: model.evaluate(), not training
            return [Summary(f"evaluate/{key}", value) for key, value in values.items()]
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
            elif batch is None and context.fine:
                step = context.step  # the epoch's results, at the step the program is at
            elif batch is None and float(epoch).is_integer():
                step = int(epoch)
            # with an epoch and a batch-in-epoch counter only, the step is left automatic
        if "step" in counters or "batch" in counters:
            context.fine = True
        if epoch is not None:
            context.epoch = float(epoch)
        context.step = None if step is None else int(step)
        context.fresh = True
        context.counted = True
        context.writes += 1
        return context.step, context.epoch
