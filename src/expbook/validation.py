"""Checks and conversions for what users log: keys, metric values, steps, params and text.

Every entry point (``Run`` methods, ``Store`` conveniences, and through those the CLI and the web
API) checks here, so bad input is refused by the call that brings it in, not later on the writer
thread where it would take the rest of a flush with it. Errors name the offending key and show a
shortened value. These functions sit off the hot path: ``Run.log`` calls them only for a key it
has not seen before or a value that is not a plain ``float``/``int``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import numbers
import operator
import os
import re
from collections.abc import Mapping
from typing import Any

from expbook.errors import InvalidKeyError, InvalidStepError, InvalidValueError

MAX_KEY_LENGTH = 250
MAX_STEP = 2**63 - 1  # steps are stored as 64-bit integers
MAX_SHOWN = 60  # characters of a bad key or value an error message shows
_FORBIDDEN_KEY_CHARS = frozenset("\"'`") | {chr(c) for c in range(32)} | {"\x7f"}
_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, always a lone one: UTF-8 cannot encode it

JSONScalar = None | bool | int | float | str


def check_key(key: object, what: str = "metric") -> str:
    """Return ``key`` if it is a valid metric/param/summary key, else raise InvalidKeyError.

    A key is a non-empty string of at most 250 characters, without quotes, backticks or control
    characters, without surrounding whitespace, and with ``/`` only between non-empty parts
    (``train/loss``, ``system/gpu.0.util``).
    """
    if not isinstance(key, str):
        raise InvalidKeyError(f"{what} key {shorten(key)} is a {type(key).__name__}, not a str")
    problem = _key_problem(key)
    if problem:
        raise InvalidKeyError(f"invalid {what} key {shorten(key)}: {problem}")
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
    if not key.isascii():
        problem = text_problem(key)
        if problem:
            return problem
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
        return to_float(value, f"metric {key!r}")
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
            return to_float(scalar, f"metric {key!r}")
    raise InvalidValueError(
        f"metric {key!r}: value {shorten(value)} is a {type(value).__name__}, not a number"
    )


def to_float(value: Any, where: str) -> float:
    """``float(value)`` for a real number, or InvalidValueError starting with ``where``.

    Every number a float cannot hold is refused alike: an int or ``Fraction`` beyond float range,
    a ``Decimal`` or numpy ``longdouble`` that would silently become infinite, and a ``Decimal``
    signaling NaN. Real infinities and NaN of any type are kept.
    """
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    except ValueError:  # Decimal('sNaN'): any operation on it signals
        raise InvalidValueError(
            f"{where}: value {shorten(value)} is a signaling NaN, which cannot be stored; "
            "use float('nan')"
        ) from None
    if (number == math.inf or number == -math.inf) and number != value:
        raise InvalidValueError(
            f"{where}: value {shorten(value)} is too large for a float (at most ~1.8e308)"
        )
    return number


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
            f"step {shorten(step)} is a {type(step).__name__}; steps are integers >= 0"
        ) from None
    if index < 0:
        raise InvalidStepError(f"step {index} is negative; steps are integers >= 0")
    if index > MAX_STEP:
        raise InvalidStepError(f"step {shorten(index)} is larger than {MAX_STEP} (2**63 - 1)")
    return index


def check_epoch(epoch: object) -> float | None:
    """Return ``epoch`` as a float (or None); it must be a finite real number."""
    if epoch is None:
        return None
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real):
        raise InvalidValueError(f"epoch {shorten(epoch)} is not a number")
    value = float(epoch)
    if not math.isfinite(value):
        raise InvalidValueError(f"epoch {value!r} is not finite")
    return value


def check_run_fields(
    *, name: object = None, kind: object = "train", tags: object = (), experiment: object = None
) -> None:
    """Check the simple fields of a new run, naming the bad one."""
    if name is not None:
        check_name(name, "run name", "a name is non-empty text")
    check_name(kind, "run kind", "e.g. 'train' or 'eval'")
    if experiment is not None:
        check_name(experiment, "experiment name", "the question the run belongs to")
    if isinstance(tags, str | bytes) or not isinstance(tags, list | tuple | set | frozenset):
        raise InvalidValueError(
            f"tags must be a list of strings, not {type(tags).__name__} {shorten(tags)}"
        )
    for tag in tags:
        check_tag(tag)


def check_name(value: object, what: str, hint: str) -> str:
    """A one-line label (a run name or kind, an experiment): non-empty text without control
    characters, lone surrogates or NUL."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(f"invalid {what} {shorten(value)}: {hint}")
    if any(ord(c) < 32 for c in value):
        raise InvalidValueError(f"invalid {what} {shorten(value)}: it contains control characters")
    return check_text(value, what)


def check_tag(tag: object) -> str:
    """A tag is a non-empty string without surrounding whitespace or control characters."""
    if not isinstance(tag, str) or not tag.strip() or tag != tag.strip():
        raise InvalidValueError(f"invalid tag {shorten(tag)}: tags are non-empty, trimmed strings")
    return check_name(tag, "tag", "")


def check_text(value: object, what: str) -> str:
    """Return ``value`` if it is a str every store can hold, else raise InvalidValueError.

    Refused: NUL (PostgreSQL cannot store it) and lone surrogates (UTF-8 cannot encode them;
    Python makes them from undecodable bytes, e.g. a Latin-1 file name or argument).
    """
    if not isinstance(value, str):
        raise InvalidValueError(f"{what} {shorten(value)} is a {type(value).__name__}, not a str")
    problem = text_problem(value)
    if problem:
        raise InvalidValueError(f"invalid {what} {shorten(value)}: {problem}")
    return value


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL character or a lone surrogate), or None."""
    if "\x00" in text:
        return "it contains a NUL character ('\\x00')"
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found:
            return (
                f"it contains a lone surrogate ({found.group()!r} at position {found.start()}), "
                "which is not valid Unicode: decode bytes with errors='replace'"
            )
    return None


def check_attachment(name: object, data: object) -> bytes:
    """The bytes of attachment ``name``: ``data`` as it is, or text encoded as UTF-8."""
    check_name(name, "attachment name", "a file name such as 'config.yaml'")
    if isinstance(data, str):
        problem = text_problem(data.replace("\x00", ""))  # NUL is fine in a file
        if problem:
            raise InvalidValueError(
                f"attachment {shorten(name)}: text {shorten(data)} {problem[3:]}; pass bytes"
            )
        return data.encode()
    try:
        return bytes(data)  # type: ignore[call-overload]
    except TypeError:
        raise InvalidValueError(
            f"attachment {shorten(name)}: data is a {type(data).__name__}, not bytes or str"
        ) from None


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
        return _param_text(key, str(value))
    if isinstance(value, enum.Enum):
        return _json_value(key, value.value, depth + 1)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _param_text(key, str(value))
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) or (
        isinstance(value, numbers.Number) and not isinstance(value, numbers.Complex)
    ):  # Decimal too
        return to_float(value, f"param {key!r}")
    if isinstance(value, os.PathLike):
        return _param_text(key, os.fspath(value))
    mapping = _as_mapping(value)
    if mapping is not None:
        return {
            _param_text(key, str(k), "key"): _json_value(key, v, depth + 1)
            for k, v in mapping.items()
        }
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
    return _param_text(key, str(value))


def _param_text(key: str, text: str, what: str = "value") -> str:
    problem = text_problem(text)
    if problem:
        raise InvalidValueError(f"param {shorten(key)}: {what} {shorten(text)} {problem[3:]}")
    return text


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


def shorten(value: object) -> str:
    """``repr(value)`` for an error message: a long string shows its first 60 characters and its
    length, anything else at most about 60 characters of its repr."""
    if isinstance(value, str) and len(value) > MAX_SHOWN:
        return f"{value[:MAX_SHOWN]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 3]}..."
