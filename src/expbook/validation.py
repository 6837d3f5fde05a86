"""Checks and conversions for what users log: keys, metric values, steps and params.

Errors name the offending key and value. These functions sit off the hot path: ``Run.log`` calls
them only for a key it has not seen before or a value that is not a plain ``float``/``int``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import numbers
import operator
import os
from collections.abc import Mapping
from typing import Any

from expbook.errors import InvalidKeyError, InvalidStepError, InvalidValueError

MAX_KEY_LENGTH = 250
MAX_STEP = 2**63 - 1  # steps are stored as 64-bit integers
_FORBIDDEN_KEY_CHARS = frozenset("\"'`") | {chr(c) for c in range(32)} | {"\x7f"}

JSONScalar = None | bool | int | float | str


def check_key(key: object, what: str = "metric") -> str:
    """Return ``key`` if it is a valid metric/param/summary key, else raise InvalidKeyError.

    A key is a non-empty string of at most 250 characters, without quotes, backticks or control
    characters, without surrounding whitespace, and with ``/`` only between non-empty parts
    (``train/loss``, ``system/gpu.0.util``).
    """
    if not isinstance(key, str):
        raise InvalidKeyError(f"{what} key {key!r} is a {type(key).__name__}, not a str")
    problem = _key_problem(key)
    if problem:
        raise InvalidKeyError(f"invalid {what} key {key!r}: {problem}")
    return key


def _key_problem(key: str) -> str | None:
    if not key:
        return "it is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"it is longer than {MAX_KEY_LENGTH} characters"
    if key != key.strip():
        return "it starts or ends with whitespace"
    bad = sorted(set(key) & _FORBIDDEN_KEY_CHARS)
    if bad:
        return f"it contains {', '.join(repr(c) for c in bad)}"
    if key.startswith("/") or key.endswith("/") or "//" in key:
        return "'/' must separate non-empty parts"
    return None


def coerce_metric(key: str, value: object) -> float:
    """Convert a metric value to float: ints, bools, numpy/torch scalars and other reals.

    NaN and infinities are valid and kept. Anything else raises InvalidValueError naming the key.
    """
    if type(value) is int and -1e308 < value < 1e308:  # the common case, first
        return float(value)
    if isinstance(value, numbers.Real) or (
        isinstance(value, numbers.Number) and not isinstance(value, numbers.Complex)
    ):  # Decimal registers only as a Number
        try:
            return float(value)  # type: ignore[arg-type]
        except OverflowError:
            raise InvalidValueError(
                f"metric {key!r}: value {_short_repr(value)} is too large for a float"
            ) from None
    item = getattr(value, "item", None)
    if callable(item) and not isinstance(value, str | bytes):
        try:
            scalar = item()
        except (ValueError, RuntimeError) as exc:  # numpy/torch: more than one element
            size = getattr(value, "size", None)
            size = size() if callable(size) else size
            raise InvalidValueError(
                f"metric {key!r}: value of type {type(value).__name__} with shape/size {size} "
                f"is not a scalar; log one number per key"
            ) from exc
        if isinstance(scalar, numbers.Real):
            return float(scalar)
    raise InvalidValueError(
        f"metric {key!r}: value {_short_repr(value)} is a {type(value).__name__}, not a number"
    )


def check_step(step: object) -> int:
    """Return ``step`` as an int if it is a non-negative integer, else raise InvalidStepError."""
    if isinstance(step, bool | float):
        raise InvalidStepError(
            f"step {step!r} is a {type(step).__name__}; steps are integers >= 0 "
            "(pass epoch= for fractional epochs)"
        )
    try:
        index = operator.index(step)
    except TypeError:
        raise InvalidStepError(
            f"step {_short_repr(step)} is a {type(step).__name__}; steps are integers >= 0"
        ) from None
    if index < 0:
        raise InvalidStepError(f"step {index} is negative; steps are integers >= 0")
    if index > MAX_STEP:
        raise InvalidStepError(f"step {_short_repr(index)} is larger than {MAX_STEP} (2**63 - 1)")
    return index


def check_epoch(epoch: object) -> float | None:
    """Return ``epoch`` as a float (or None); it must be a finite real number."""
    if epoch is None:
        return None
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real):
        raise InvalidValueError(f"epoch {_short_repr(epoch)} is not a number")
    value = float(epoch)
    if not math.isfinite(value):
        raise InvalidValueError(f"epoch {value!r} is not finite")
    return value


def check_run_fields(*, name: object = None, kind: object = "train", tags: object = ()) -> None:
    """Check the simple fields of a new run, naming the bad one."""
    if name is not None and (not isinstance(name, str) or not name.strip() or _control(name)):
        raise InvalidValueError(f"invalid run name {name!r}: a name is non-empty text")
    if not isinstance(kind, str) or not kind.strip() or _control(kind):
        raise InvalidValueError(f"invalid run kind {kind!r}: e.g. 'train' or 'eval'")
    if isinstance(tags, str | bytes) or not isinstance(tags, list | tuple | set | frozenset):
        raise InvalidValueError(
            f"tags must be a list of strings, not {type(tags).__name__} {tags!r}"
        )


def _control(text: str) -> bool:
    return any(ord(c) < 32 for c in text)


def flatten_params(params: object, prefix: str = "") -> dict[str, Any]:
    """Flatten nested params into dotted keys, keeping JSON types.

    Accepts mappings, dataclass instances, pydantic models (``model_dump``) and
    ``argparse.Namespace`` at any depth. Leaves become JSON values: None, bool, int, float, str,
    or lists of those. Enums become their value, paths and other objects their ``str()``.
    """
    tree = _as_mapping(params)
    if tree is None:
        raise InvalidValueError(
            f"params must be a mapping, dataclass, pydantic model or Namespace, "
            f"not {type(params).__name__}"
        )
    flat: dict[str, Any] = {}
    for raw_key, value in tree.items():
        key = f"{prefix}{raw_key}"
        child = _as_mapping(value)
        if child is not None:
            if child:
                flat.update(flatten_params(child, prefix=f"{key}."))
            else:
                flat[check_key(key, "param")] = {}
            continue
        flat[check_key(key, "param")] = _json_value(key, value)
    return flat


def _as_mapping(value: object) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        return dump()
    if type(value).__name__ == "Namespace" and hasattr(value, "__dict__"):
        return vars(value)
    return None


def _json_value(key: str, value: object, depth: int = 0) -> Any:
    """A JSON-serialisable form of a param value, converted all the way down (lists of
    mappings of numpy scalars and paths included), so nothing can fail later on the writer
    thread. Structures nested deeper than 32 levels (or cyclic) become their ``str()``."""
    if depth > 32:
        return str(value)
    if isinstance(value, enum.Enum):
        return _json_value(key, value.value, depth + 1)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    mapping = _as_mapping(value)
    if mapping is not None:
        return {str(k): _json_value(key, v, depth + 1) for k, v in mapping.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_json_value(key, v, depth + 1) for v in items]
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return _json_value(key, item(), depth + 1)
        except (ValueError, RuntimeError, TypeError):
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        try:
            return _json_value(key, tolist(), depth + 1)
        except (ValueError, RuntimeError, TypeError):
            pass
    return str(value)


def param_columns(value: Any) -> tuple[str, float | None, str | None]:
    """The stored form of one param value: (JSON text, numeric value, text value).

    The numeric column holds ints, floats and bools (as 1/0) so filters can compare them; the text
    column holds strings. Lists and objects are only in the JSON text.
    """
    text = json.dumps(value, allow_nan=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool | int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range: comparable as JSON text only
            return text, None, None
        return text, None if math.isnan(number) else number, None
    if isinstance(value, str):
        return text, None, value
    return text, None, None


def _short_repr(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
