"""Config files named on a command line, loaded and flattened into ``config.<dotted.key>`` params.

A flag value or positional argument naming an existing ``.yaml``, ``.yml``, ``.toml`` or ``.json``
file is read (see `expbook.runner.argv.command_params` for the rules). Like the rest of reading a
command line, it never raises: a file it cannot load is skipped with a `ParamsWarning`.
"""

from __future__ import annotations

import json
import os
import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from expbook.runner.tokens import INT64, clean, valid_key

MAX_CONFIG_BYTES = 1 << 20  # config files larger than 1 MiB are not read
MAX_CONFIG_NODES = 100_000  # nor are those with more values than this (YAML aliases multiply)
MAX_CONFIG_DEPTH = 100
_CONFIG_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}
_SEQUENCES = (list, tuple, set, frozenset)


class ParamsWarning(UserWarning):
    """A config file named on the command line was skipped; the run goes on without it."""


def config_params(candidates: list[str], cwd: str | os.PathLike[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for token in candidates:
        path = _config_path(token, cwd)
        if path is not None:
            params.update(_load_config(path, token))
    return params


def _config_path(token: str, cwd: str | os.PathLike[str] | None) -> Path | None:
    if os.path.splitext(token)[1].lower() not in _CONFIG_SUFFIXES:
        return None
    path = Path(cwd if cwd is not None else ".") / token
    try:
        return path if path.is_file() else None
    except (OSError, ValueError):  # a name too long, a directory we may not search...
        return None


def _load_config(path: Path, token: str) -> dict[str, Any]:
    """Flattened ``config.*`` params from one file, or {} with a warning when it cannot be read."""
    try:
        tree = _parse_config(path)
        _check_size(tree)
    except ImportError:
        return _skip(token, "PyYAML is not installed (pip install pyyaml)")
    except (OSError, ValueError, RecursionError) as exc:
        return _skip(token, " ".join(str(exc).split()) or type(exc).__name__)
    if tree is None:
        return {}
    if not isinstance(tree, Mapping):
        return _skip(token, f"it holds a {type(tree).__name__}, not a mapping")
    params: dict[str, Any] = {}
    _flatten(tree, "config", params)
    return params


def _skip(token: str, reason: str) -> dict[str, Any]:
    warnings.warn(f"expbook: config file {token!r} skipped: {reason}", ParamsWarning, stacklevel=5)
    return {}


def _parse_config(path: Path) -> object:
    """Parse a config file; raises OSError, ValueError or ImportError (for YAML)."""
    with path.open("rb") as file:
        data = file.read(MAX_CONFIG_BYTES + 1)
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"it is larger than {MAX_CONFIG_BYTES} bytes")
    kind = _CONFIG_SUFFIXES[path.suffix.lower()]
    if kind == "json":
        return json.loads(data)
    if kind == "toml":
        return tomllib.loads(data.decode("utf-8"))
    return _parse_yaml(data)


def _parse_yaml(data: bytes) -> object:
    import yaml

    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from exc


def _check_size(tree: object) -> None:
    """Refuse trees too large or too deep to flatten (YAML aliases can nest them, or loop)."""
    stack = [(tree, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_NODES:
            raise ValueError(f"it holds more than {MAX_CONFIG_NODES} values")
        if depth > MAX_CONFIG_DEPTH:
            raise ValueError(f"it is nested more than {MAX_CONFIG_DEPTH} levels deep")
        if isinstance(node, Mapping):
            stack += [(child, depth + 1) for child in node.values()]
        elif isinstance(node, _SEQUENCES):
            stack += [(child, depth + 1) for child in node]


def _flatten(tree: Mapping[Any, Any], prefix: str, params: dict[str, Any]) -> None:
    for raw_key, value in tree.items():
        key = clean(f"{prefix}.{raw_key}")
        if isinstance(value, Mapping):
            _flatten(value, key, params)
        elif valid_key(key):
            params[key] = _config_value(value)


def _config_value(value: object) -> Any:
    if isinstance(value, _SEQUENCES):
        return [_list_item(item) for item in _ordered(value)]
    return _scalar(value)


def _list_item(item: object) -> Any:
    if isinstance(item, (Mapping, *_SEQUENCES)):
        return json.dumps(_plain(item), ensure_ascii=False)
    return _scalar(item)


def _ordered(items: list[Any] | tuple[Any, ...] | set[Any] | frozenset[Any]) -> list[Any]:
    return sorted(items, key=repr) if isinstance(items, set | frozenset) else list(items)


def _plain(value: object) -> Any:
    """A JSON-serialisable copy: mapping keys as str, scalars as by `_scalar`."""
    if isinstance(value, Mapping):
        return {clean(str(key)): _plain(child) for key, child in value.items()}
    if isinstance(value, _SEQUENCES):
        return [_plain(child) for child in _ordered(value)]
    return _scalar(value)


def _scalar(value: object) -> Any:
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, int):
        return value if -INT64 <= value < INT64 else str(value)
    return clean(str(value))  # dates and times from YAML and TOML, bytes, ...
