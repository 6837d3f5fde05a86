"""How store calls, their results and errors travel between a client and ``expbook server``.

Values are JSON with a small set of tagged objects, so that what a remote store returns is the
same value objects a local one returns (``RunRecord``, ``Series``...), not dictionaries:

- ``{"$": "tuple" | "set", "v": [...]}``; a dict whose keys are not all strings, or that has a
  ``"$"`` key, is ``{"$": "dict", "v": [[key, value], ...]}``;
- ``{"$": "bytes", "v": base64}``; ``{"$": "array", "t": typecode, "v": base64}`` (the array's
  bytes, little-endian): a series or a batch of points travels as its packed columns, 8 bytes a
  number plus a third for base64, not as text (decoding 100,000 points this way costs about a
  millisecond);
- ``{"$": "<Enum>", "v": value}`` and ``{"$": "<Dataclass>", "f": {field: value}}`` for the
  value types of ``expbook.model`` and ``expbook.store.base`` only: the registry below is the
  whole list of what a peer can make this side build.

Journaled operations (a run created, a batch written) travel as *frames*: each one is
zlib-compressed JSON, and a request is their concatenation, each preceded by its length (4
bytes, big-endian). The journal keeps the same compressed bytes, so sending it costs no
re-encoding.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
import struct
import sys
import zlib
from array import array
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from expbook import errors, model
from expbook.store import base, chunks

_LITTLE = sys.byteorder == "little"
FRAME_HEADER = struct.Struct(">I")
MAX_FRAME = 256 << 20
"""The largest frame a server decompresses (a write of ~8 million points)."""


def _registry() -> dict[str, type]:
    found: dict[str, type] = {}
    for module in (model, base, chunks):
        for name, value in vars(module).items():
            ours = isinstance(value, type) and value.__module__ == module.__name__
            if ours and (dataclasses.is_dataclass(value) or issubclass(value, enum.Enum)):
                found[name] = value
    found["RunList"] = model.RunList
    return found


TYPES = _registry()
FROZEN = {"RunRecord": ("recorded_autolog", "host", "params", "metrics")}
"""Fields the SQL store returns as read-only mappings (``sqlrows.run_record``): the same here,
so that a result read through a server cannot be changed either."""
ERRORS = {
    name: value
    for name, value in vars(errors).items()
    if isinstance(value, type) and issubclass(value, errors.ExpbookError)
}


class WireError(errors.StoreError):
    """A message from the peer could not be decoded (a different version, a damaged frame)."""


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data (see the module docstring)."""
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, enum.Enum):
            return {"$": type(value).__name__, "v": value.value}
        return value
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, model.RunList):
        return {"$": "RunList", "v": [encode(item) for item in value]}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"$": "tuple", "v": [encode(item) for item in value]}
    if isinstance(value, set | frozenset):
        return {"$": "set", "v": [encode(item) for item in value]}
    if isinstance(value, array):
        data = value if _LITTLE or value.itemsize == 1 else _swapped(value)
        return {"$": "array", "t": value.typecode, "v": base64.b64encode(data).decode()}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$": "bytes", "v": base64.b64encode(value).decode()}
    if isinstance(value, enum.Enum):
        return {"$": type(value).__name__, "v": value.value}
    if TYPES.get(type(value).__name__) is type(value):  # ours (a user's namesake is not)
        return {
            "$": type(value).__name__,
            "f": {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)},
        }
    if isinstance(value, Mapping):
        if all(type(key) is str for key in value) and "$" not in value:
            return {key: encode(item) for key, item in value.items()}
        return {"$": "dict", "v": [[encode(key), encode(item)] for key, item in value.items()]}
    if isinstance(value, tuple):  # a NamedTuple (MetricPoint): as a plain tuple
        return {"$": "tuple", "v": [encode(item) for item in value]}
    # Anything else (an object as a param value...) is not refused here, where the error
    # could not say what the value was for: it arrives as a stand-in of the same type name,
    # which the store refuses with the message it gives for that value locally ("trial params
    # {'f': <object object at ...>} is not JSON data: Object of type object is not ...").
    return {"$": "unsendable", "t": type(value).__name__, "v": repr(value)[:200]}


def decode(data: Any) -> Any:
    """The value ``encode`` made ``data`` from.

    Raises:
        WireError: ``data`` names a type this side does not know.
    """
    if isinstance(data, list):
        return [decode(item) for item in data]
    if not isinstance(data, dict):
        return data
    tag = data.get("$")
    if tag is None:
        return {key: decode(item) for key, item in data.items()}
    if tag == "tuple":
        return tuple(decode(item) for item in data["v"])
    if tag == "set":
        return {decode(item) for item in data["v"]}
    if tag == "dict":
        return {decode(key): decode(item) for key, item in data["v"]}
    if tag == "bytes":
        return base64.b64decode(data["v"])
    if tag == "array":
        result = array(data["t"])
        result.frombytes(base64.b64decode(data["v"]))
        if not _LITTLE and result.itemsize > 1:
            result.byteswap()
        return result
    if tag == "unsendable":
        return _stand_in(str(data.get("t")), str(data.get("v")))
    kind = TYPES.get(tag)
    if kind is None:
        raise WireError(f"the server sent a value of unknown type {tag!r} (another version?)")
    if kind is model.RunList:
        return model.RunList(decode(item) for item in data["v"])
    if issubclass(kind, enum.Enum):
        return kind(data["v"])
    values = {key: decode(item) for key, item in data["f"].items()}
    if kind is base.WriteBatch:  # its fields are sets, lists and dicts, as the store expects
        values["tags_add"] = set(values.get("tags_add", ()))
        values["tags_remove"] = set(values.get("tags_remove", ()))
    for name in FROZEN.get(tag, ()):  # as the SQL store returns them: read-only
        if isinstance(values.get(name), dict):
            values[name] = MappingProxyType(values[name])
    try:
        return kind(**values)
    except TypeError as exc:
        raise WireError(f"cannot rebuild a {tag} sent by the peer: {exc}") from None


class Unsendable:
    """Stands in for a value that has no wire form (see ``encode``); only its repr travels."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _stand_in(type_name: str, text: str) -> Unsendable:
    name = type_name if type_name.isidentifier() else "object"
    return type(name, (Unsendable,), {"__slots__": ()})(text)


def _swapped(value: array) -> array:
    copy = array(value.typecode, value)
    copy.byteswap()
    return copy


def dumps(value: Any) -> bytes:
    return json.dumps(encode(value), separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    try:
        return decode(json.loads(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise WireError(f"a message could not be decoded: {exc}") from None


# --- errors ------------------------------------------------------------------------------------


def encode_error(exc: BaseException) -> dict[str, Any]:
    """An error as ``{"type", "message", "attrs"}``; errors that are not expbook's own (a bug
    on the server) travel as a ``StoreError`` naming their type."""
    if isinstance(exc, errors.ExpbookError):
        attrs = {
            key: value
            for key, value in vars(exc).items()
            if isinstance(value, str | int | float | bool | type(None))
        }
        return {"type": type(exc).__name__, "message": str(exc), "attrs": attrs}
    return {
        "type": "StoreError",
        "message": f"the server failed: {type(exc).__name__}: {exc}",
        "attrs": {},
    }


def decode_error(data: Mapping[str, Any]) -> errors.ExpbookError:
    """The exception ``encode_error`` described, as the same class (``StoreError`` for a type
    this version does not know)."""
    kind = ERRORS.get(str(data.get("type")), errors.StoreError)
    exc = kind.__new__(kind)
    exc.args = (str(data.get("message", "")),)
    for key, value in dict(data.get("attrs") or {}).items():
        setattr(exc, key, value)
    return exc


# --- frames ------------------------------------------------------------------------------------


def frame(value: Any) -> bytes:
    """One journaled operation, compressed (zlib level 1: ~4x smaller for metric names and
    JSON, at a few hundred MB/s)."""
    return zlib.compress(dumps(value), 1)


def framed(frames: list[bytes]) -> bytes:
    """A request body: each frame preceded by its length."""
    return b"".join(FRAME_HEADER.pack(len(f)) + f for f in frames)


def unframe(body: bytes) -> Iterator[Any]:
    """The operations of a request body, decoded one at a time; an operation that cannot be
    decoded (a type this version does not know) comes as its ``WireError``, so that the others
    are applied and it is set aside, not retried forever.

    Raises:
        WireError: the body is not a sequence of whole frames, or a frame is damaged.
    """
    offset = 0
    while offset < len(body):
        if offset + FRAME_HEADER.size > len(body):
            raise WireError("a request ends inside a frame header")
        (length,) = FRAME_HEADER.unpack_from(body, offset)
        offset += FRAME_HEADER.size
        if offset + length > len(body):
            raise WireError("a request ends inside a frame")
        try:
            inflater = zlib.decompressobj()
            data = inflater.decompress(body[offset : offset + length], MAX_FRAME)
        except zlib.error as exc:
            raise WireError(f"a frame is damaged: {exc}") from None
        if inflater.unconsumed_tail:
            raise WireError(f"a frame is over {MAX_FRAME:,} bytes uncompressed")
        offset += length
        try:
            yield loads(data)
        except WireError as exc:  # this operation only (a newer client's type): the rest goes on
            yield exc
