"""JSON and Python-dict lines: ``{"loss": 0.5, "step": 10}``, the Hugging Face Trainer's."""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping

from expbook.runner.parsers._common import (
    _RESULT_WORDS,
    Event,
    Point,
    _CurrentLine,
    _has_word,
    _LineParser,
    _short_text_cache,
    normalize_key,
)

_STEP_KEYS = frozenset({"step", "global_step", "iteration", "iter"})
_MAX_DICT_LINE = 1 << 16
_MAX_DICT_DEPTH = 4
# A flat dict of quoted keys and bare values (numbers, nan, True...), read without the parser.
_FLAT_ITEM = (
    r"""(?:'([^'\\\n]*)'|"([^"\\\n]*)")\s*:\s*"""
    r"""(?:([-+.\w]+)|'([-+.\w]+)'|"([-+.\w]+)")"""
)
_FLAT_DICT = re.compile(rf"\{{\s*(?:{_FLAT_ITEM}\s*,\s*)*{_FLAT_ITEM}\s*,?\s*\}}")
_FLAT_ITEMS = re.compile(_FLAT_ITEM)
_WRAPPED_SCALAR = re.compile(
    r"(?:np|numpy)\.\w+\(\s*([^()]*?)\s*\)|tensor\(\s*([-+\w.]+)\s*(?:,[^()]*)?\)"
)
# A number of two characters or more (12, 0x1f): whether Python or JSON reads it as a number may
# hang on its first digit being 0 (00 and 0x1f are numbers, 01 and 1x1f are not).
_MULTI_CHARACTER_NUMBER = re.compile(r"(?<![\w.])\d\w")
_BARE_NONFINITE = re.compile(r"(?<![\w'\"])(-?)(nan|inf)(?![\w'\"])")
_NONFINITE_MARKERS = {
    "__expbook_nan__": math.nan,
    "__expbook_inf__": math.inf,
    "__expbook_-inf__": -math.inf,
    "__expbook_-nan__": math.nan,
}
_NUMERIC_TEXT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)")
_DICT_METRIC_WORD = re.compile(rf"(?:{_RESULT_WORDS}|runtime|throughput)\d*")


@_short_text_cache(maxsize=4096)
def _is_dict_metric_name(key: str) -> bool:
    """Whether a dict key names a result: a metric word (not ``lr``: a configuration has one
    too), ``runtime``, ``throughput``, ``..._per_second`` or ``grad_norm``."""
    low = key.lower()
    if low.endswith("per_second") or low == "grad_norm" or low.endswith("/grad_norm"):
        return True
    return _has_word(key, _DICT_METRIC_WORD)


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
        single or double: _flat_value(bare or quoted or double_quoted)
        for single, double, bare, quoted, double_quoted in _FLAT_ITEMS.findall(text)
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
        except OverflowError:  # an int past the floats (10**400): as float("1e400") reads it
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        marker = _NONFINITE_MARKERS.get(value)
        if marker is not None or _NUMERIC_TEXT.fullmatch(value) is None:
            return marker
        return float(value)  # a number printed as text: {'loss': '0.6905'} (transformers 5)
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
    """A whole line that is a ``{...}`` dict of metrics: its numeric values become one Point.

    A dict is taken for metrics when it has a top-level step key (``step``, ``global_step``,
    ``iteration``, ``iter``) or ``epoch`` key, or when a key of a numeric value names a result:
    one of its words (split at ``_ . / @ -`` and lower-to-upper case changes; nested keys are
    joined by ``/``) is loss, acc, accuracy, err, error, f1, auc, ppl, perplexity, mae, mse,
    rmse, mape, bleu, rouge, precision, recall, score, reward, return, runtime or throughput
    (with digits after it or not: ``rouge2``), or it is ``grad_norm`` or ends in ``per_second``.
    ``lr`` and ``learning_rate`` are not enough on their own: a configuration printed at
    start-up (``{'lr': 0.1, 'epochs': 10, 'batch_size': 32}``) has them too. Any other dict
    gives no event (and goes to no other parser).

    The step and epoch keys give the step and the epoch; they are not metric values. Other
    values than numbers are ignored. The line describes itself: without a step key the step is
    automatic, whatever the step context.
    """

    def __init__(self, current: _CurrentLine) -> None:
        self._current = current

    def parse(self, line: str) -> list[Event] | None:
        if "{" not in line:
            return None
        text = self._current.message(line).strip()
        if text[:2] not in ("{'", '{"') or not text.endswith("}") or len(text) > _MAX_DICT_LINE:
            return None
        flat = _load_flat_dict(text)
        if flat is not None:
            return self._point(flat.items())
        if _MULTI_CHARACTER_NUMBER.search(text):  # {'a': [1], 'loss': 01} is no literal
            self._current.value_dependent = True
        obj = _load_dict(text)
        if not isinstance(obj, dict):
            return None
        return self._point(_flatten(obj, "", 0))

    @staticmethod
    def _point(items: Iterable[tuple[str, object]]) -> list[Event]:
        values: dict[str, float] = {}
        step: int | None = None
        epoch: float | None = None
        moment = named = False  # a step or epoch key; a key naming a result
        for raw_key, raw_value in items:
            lowered = raw_key.lower()
            if lowered in _STEP_KEYS:
                moment = True
                step = _as_step(raw_value) if step is None else step
                continue
            number = _as_number(raw_value)
            if lowered == "epoch":
                moment = True
                epoch = number
                continue
            key = normalize_key(raw_key)
            if number is not None and key is not None:
                values[key] = number
                named = named or _is_dict_metric_name(raw_key)
        return [Point(values, step, epoch)] if values and (moment or named) else []
