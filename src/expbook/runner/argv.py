"""Params from a program's command line, read without knowing the program's argument parser.

`command_params` turns ``python train.py --lr 1e-3 --amp --config configs/gru.yaml`` into
``{"lr": 0.001, "amp": True, "config": "configs/gru.yaml", "config.model.hidden": 256, ...}``.
It only observes user input, so it never raises: what it cannot read it leaves out, and a config
file it cannot load is skipped with a `ParamsWarning`.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expbook.errors import InvalidKeyError
from expbook.runner.settings import RunSettings, normalize_flag
from expbook.validation import check_key

MAX_CONFIG_BYTES = 1 << 20  # config files larger than 1 MiB are not read
MAX_CONFIG_NODES = 100_000  # nor are those with more values than this (YAML aliases multiply)
MAX_CONFIG_DEPTH = 100

_DEFAULT_SETTINGS = RunSettings()
_CONFIG_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}
_INT64 = 1 << 63
_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?(([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)")
_SPECIAL_FLOAT = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[\w\-+./~@=:]*[\w/]")
_LIST_SEPARATORS = re.compile(r"[\s,]+")
_SURROGATES = re.compile("[\ud800-\udfff]")
_SEQUENCES = (list, tuple, set, frozenset)


class ParamsWarning(UserWarning):
    """A config file named on the command line was skipped; the run goes on without it."""


@dataclass(frozen=True, slots=True)
class _Flag:
    key: str  # as written, without leading dashes (and without "no-" when negated)
    name: str  # normalised, for comparing with the settings
    raw: str | None  # the value's text; None when no value follows
    side: int  # how many "--" separators come before it
    negated: bool = False  # "--no-foo" without a value: foo = False


def command_params(
    argv: Sequence[str],
    settings: RunSettings = _DEFAULT_SETTINGS,
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Read a program's params from its command line.

    Rules, in the order they apply:

    - ``argv[0]`` is the program and positional arguments are not params (but see config files).
      For a Python interpreter, its own options (``-u``, ``-X dev``, ``-c CODE``, ``-m MODULE``)
      are not params either: the script's arguments are.
    - A token starting with ``-`` is a flag unless it is a number (``-1``, ``-3e-4``, ``-inf``),
      ``-`` or ``--``. Its key is the flag without its leading dashes, spelled as written:
      ``--batch-size`` gives ``batch-size``, ``-lr`` gives ``lr``. Flags are never split further
      (``-xvf`` is the key ``xvf``). A flag whose key is not a valid expbook key is dropped.
    - ``--flag=value`` takes the text after the first ``=``. Otherwise a flag takes the next token
      as its value unless that token is a flag, ``--`` or missing, or the flag is in
      ``settings.booleans``; then its value is True. ``--no-foo`` without a value gives
      ``foo = False`` (unless ``no_foo`` itself is listed in ``booleans``).
    - Values are typed: integers (without leading zeros, within 64 bits) become int; decimals and
      exponents (``0.001``, ``1e-3``, ``.5``) and ``nan``/``inf`` become float; ``true``/``false``
      become bool and ``none``/``null`` None, in any case. Anything else stays a str.
    - List heuristic: a value with whitespace in it whose parts are all "word-like" (identifiers,
      numbers, paths, ``key=value``, ``host:port``: letters, digits and ``_-+./~@=:``, not ending
      in ``.``, ``:`` or other punctuation) becomes a list of typed parts, so ``--features "cli
      ml_train"`` gives ``["cli", "ml_train"]``, while ``--note "first try, with warmup!"``
      stays a str. A value with a single part stays a str. Values of flags in ``settings.lists``
      are always split, on whitespace and commas; values of flags in ``settings.strings`` are
      never typed or split.
    - A flag given several times collects its values into one flat list, in order.
    - ``--`` separates a launcher's flags (``cargo run --release --``) from the program's. Flags
      on both sides are params; a key given on both sides takes the values from the later side.
    - Flags in ``settings.ignore`` are dropped with their values.
    - Config files: a flag value or positional argument naming an existing ``.yaml``, ``.yml``,
      ``.toml`` or ``.json`` file (relative to ``cwd``) of at most 1 MiB is also loaded, and its
      contents flattened into ``config.<dotted.key>`` params. Nested mappings give dotted keys,
      lists are kept as lists of scalars with other items as JSON text, and several files merge
      in order, the later winning. A flag of the same key wins over a config value. Files that
      cannot be read or parsed, and YAML files when PyYAML is missing, are skipped with a
      `ParamsWarning`.

    Args:
        argv: the command line, program first.
        settings: the user's hints from ``expbook.toml``.
        cwd: the directory relative config paths are resolved against; default the current one.

    Returns:
        Flat params: valid keys to JSON values (None, bool, int, float, str, or a list of those).
    """
    tokens = [_clean(str(token)) for token in _program_args(argv)]
    flags: list[_Flag] = []
    candidates: list[str] = []
    for item in _scan(tokens, settings):
        if isinstance(item, str):
            candidates.append(item)
        elif _is_param(item, settings):
            flags.append(item)
            candidates += [item.raw] if item.raw is not None else []
    params = _collect(flags, settings)
    for key, value in _config_params(candidates, cwd).items():
        params.setdefault(key, value)
    return params


_INTERPRETERS = ("python", "python3", "pypy", "pypy3", "bash", "sh", "zsh", "uv", "poetry")
_PYTHON_OPTIONS_WITH_VALUE = frozenset({"-W", "-X", "--check-hash-based-pycs"})


def _is_python(program: str) -> bool:
    name = os.path.basename(program)
    return re.fullmatch(r"(python|pypy)[\d.]*", name) is not None


def _program_args(argv: Sequence[str]) -> list[str]:
    """The arguments that belong to the program: for ``python [options] script.py ARGS`` (or
    ``-m module ARGS``, ``-c code ARGS``) just ARGS; otherwise everything after ``argv[0]``."""
    args = [str(a) for a in argv[1:]]
    if not argv or not _is_python(str(argv[0])):
        return args
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-c", "-m"):
            return args[i + 2 :]
        if arg == "-" or not arg.startswith("-"):
            return args[i + 1 :]  # the script (or stdin)
        if arg in _PYTHON_OPTIONS_WITH_VALUE:
            i += 1
        i += 1
    return []


_SCRIPT = (".py", ".sh", ".bash", ".zsh", ".R", ".jl", ".js", ".ts", ".rb", ".pl", ".lua")


def command_name(argv: Sequence[str]) -> str:
    """A run name from a command line: the script (``train`` for ``python train.py``, ``bash
    train.sh``), the module (``python -m pkg.train`` → ``train``), the Cargo binary or example
    (``cargo run --bin train``), the Bazel target (``bazel run //pkg:train`` → ``train``), else
    the program's file name."""
    if not argv:
        return "run"
    program = os.path.basename(argv[0])
    args = list(argv[1:])
    if program.startswith(_INTERPRETERS):
        if "-m" in args and args.index("-m") + 1 < len(args):
            return args[args.index("-m") + 1].rsplit(".", 1)[-1] or program
        for arg in args:
            if arg.endswith(_SCRIPT):
                return os.path.splitext(os.path.basename(arg))[0]
    if program == "cargo":
        for flag in ("--bin", "--example"):
            if flag in args and args.index(flag) + 1 < len(args):
                return args[args.index(flag) + 1]
        return "cargo"
    if program in ("bazel", "bazelisk"):
        for arg in args:
            if arg.startswith("//") or arg.startswith(":"):
                return arg.rsplit(":", 1)[-1].rsplit("/", 1)[-1] or program
    if program.endswith(_SCRIPT):
        return os.path.splitext(program)[0]
    return program or "run"


def _clean(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes in argv, JSON escapes) as U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


def _scan(tokens: list[str], settings: RunSettings) -> Iterator[_Flag | str]:
    """Yield each flag and each positional argument, in order."""
    side = 0
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token == "--":
            side += 1
        elif not _is_flag(token):
            yield token
        elif "=" in token:
            key, _, raw = token.lstrip("-").partition("=")
            yield _Flag(key, normalize_flag(key), raw, side)
        elif _takes_value(token, settings) and index < len(tokens) and _is_value(tokens[index]):
            key = token.lstrip("-")
            yield _Flag(key, normalize_flag(key), tokens[index], side)
            index += 1
        else:
            yield _bare_flag(token.lstrip("-"), side, settings)


def _is_flag(token: str) -> bool:
    return token.startswith("-") and token not in ("-", "--") and not _is_number(token)


def _is_value(token: str) -> bool:
    return token != "--" and not _is_flag(token)


def _is_number(token: str) -> bool:
    return bool(_NUMBER.fullmatch(token) or _SPECIAL_FLOAT.fullmatch(token))


def _takes_value(token: str, settings: RunSettings) -> bool:
    name = normalize_flag(token)
    if name in settings.booleans:
        return False
    return not (_negatable(name) and name[3:] in settings.booleans)


def _negatable(name: str) -> bool:
    return name.startswith("no_") and len(name) > 3


def _bare_flag(key: str, side: int, settings: RunSettings) -> _Flag:
    name = normalize_flag(key)
    if _negatable(name) and name not in settings.booleans:
        return _Flag(key[3:], name[3:], None, side, negated=True)
    return _Flag(key, name, None, side)


def _is_param(flag: _Flag, settings: RunSettings) -> bool:
    if flag.name in settings.ignore or (flag.negated and f"no_{flag.name}" in settings.ignore):
        return False
    try:
        check_key(flag.key, "param")
    except InvalidKeyError:
        return False
    return True


def _collect(flags: list[_Flag], settings: RunSettings) -> dict[str, Any]:
    """Group values by key; a later ``--`` side replaces an earlier one, a same side appends."""
    grouped: dict[str, tuple[int, list[Any]]] = {}
    for flag in flags:
        side, values = grouped.get(flag.key, (flag.side, []))
        if side != flag.side:
            values = []
        values.append(_flag_value(flag, settings))
        grouped[flag.key] = (flag.side, values)
    return {key: _merge(values) for key, (_, values) in grouped.items()}


def _merge(values: list[Any]) -> Any:
    if len(values) == 1:
        return values[0]
    merged: list[Any] = []
    for value in values:
        merged += value if isinstance(value, list) else [value]
    return merged


def _flag_value(flag: _Flag, settings: RunSettings) -> Any:
    if flag.raw is None:
        return not flag.negated
    if flag.name in settings.strings:
        return flag.raw
    if flag.name in settings.lists:
        return [_typed(part) for part in _LIST_SEPARATORS.split(flag.raw) if part]
    parts = flag.raw.split()
    if len(parts) > 1 and all(_is_word(part) for part in parts):
        return [_typed(part) for part in parts]
    return _typed(flag.raw)


def _is_word(part: str) -> bool:
    return _is_number(part) or bool(_WORD.fullmatch(part))


def _typed(text: str) -> Any:
    """The JSON value a command-line token most likely stands for."""
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    if lower in ("none", "null"):
        return None
    if _INT.fullmatch(text):
        number = int(text)
        return number if -_INT64 <= number < _INT64 else text
    if _FLOAT.fullmatch(text) or _SPECIAL_FLOAT.fullmatch(text):
        return float(text)
    return text


def _config_params(candidates: list[str], cwd: str | os.PathLike[str] | None) -> dict[str, Any]:
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
        key = _clean(f"{prefix}.{raw_key}")
        if isinstance(value, Mapping):
            _flatten(value, key, params)
        elif _valid_key(key):
            params[key] = _config_value(value)


def _valid_key(key: str) -> bool:
    try:
        check_key(key, "param")
    except InvalidKeyError:
        return False
    return True


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
        return {_clean(str(key)): _plain(child) for key, child in value.items()}
    if isinstance(value, _SEQUENCES):
        return [_plain(child) for child in _ordered(value)]
    return _scalar(value)


def _scalar(value: object) -> Any:
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    return _clean(str(value))  # dates and times from YAML and TOML, bytes, ...


def with_flags(argv: Sequence[str], assignments: Sequence[str]) -> list[str]:
    """``argv`` with flags set to new values, for ``expbook rerun --set flag=value``.

    Each assignment is ``flag=value`` (the flag with or without leading dashes). Where the flag
    occurs as ``--flag value`` or ``--flag=value`` (the last occurrence, after a ``--`` when
    there is one: the program's own flags), its value is replaced; a bare boolean ``--flag`` is
    replaced by ``--flag=value``; a flag that does not occur is appended as ``--flag=value``.

    Raises:
        InvalidValueError: an assignment has no ``=``.
    """
    from expbook.errors import InvalidValueError

    result = list(argv)
    for assignment in assignments:
        name, eq, value = assignment.partition("=")
        name = name.strip()
        if not eq or not name.strip("-"):
            raise InvalidValueError(f"--set {assignment!r}: write it as flag=value")
        dashes = name if name.startswith("-") else ("-" if len(name) == 1 else "--") + name
        result = _set_flag(result, dashes, value)
    return result


def _set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    for i in range(len(argv) - 1, 0, -1):
        token = argv[i]
        if token.startswith(flag + "="):
            return [*argv[:i], f"{flag}={value}", *argv[i + 1 :]]
        if token == flag:
            following = argv[i + 1] if i + 1 < len(argv) else None
            if following is not None and (_is_value(following) or not _is_flag(following)):
                return [*argv[: i + 1], value, *argv[i + 2 :]]
            return [*argv[:i], f"{flag}={value}", *argv[i + 1 :]]
    return [*argv, f"{flag}={value}"]
