"""Run settings from the user's ``expbook.toml``: how to read a program's command line and output.

``expbook run`` records any program without knowing its argument parser, so a few flags need a
hint from the user. The hints live in a ``[run]`` table::

    [run]
    booleans = ["amp", "fast"]        # flags that never take a value
    lists = ["features"]              # values always lists: split on whitespace and commas,
                                      # and all the numbers in a row (--gpus 0 1 data/)
    strings = ["note"]                # values kept as text: one word, no typing, no splitting
    ignore = ["output-dir"]           # flags that are not params
    ignore_metrics = ["seed", "*_time"]  # parsed metric keys to drop (shell-style patterns)

    [[run.patterns]]                  # passed on, unparsed, to the output parser
    regex = 'BLEU = (?P<value>[\\d.]+)'
    key = "bleu"
    kind = "summary"                  # "series" or "summary"

Flag names are written without leading dashes and compared in normalised form (see
`normalize_flag`), so ``batch_size`` matches ``--batch-size``. They apply to ``key=value`` words
too, and to launchers' options by their param name (``torchrun.rdzv_endpoint``). Other top-level
tables are left to other parts of expbook and ignored here.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from expbook.errors import InvalidValueError

SETTINGS_FILENAME = "expbook.toml"
PATTERN_KINDS = ("series", "summary")

_FLAG_SETS = ("booleans", "lists", "strings", "ignore")
_RUN_KEYS = frozenset({*_FLAG_SETS, "patterns", "ignore_metrics"})
_PATTERN_KEYS = frozenset({"regex", "key", "kind"})
_TOML_POSITION = re.compile(r"(?P<msg>.*) \(at line (?P<line>\d+), column (?P<col>\d+)\)")


def normalize_flag(name: str) -> str:
    """The form in which flag names are compared: no leading dashes, ``-`` as ``_``, lower case.

    Args:
        name: a flag name, with or without its leading dashes (``--Batch-Size``).

    Returns:
        The normalised name (``batch_size``).
    """
    return name.lstrip("-").replace("-", "_").lower()


@dataclass(frozen=True, slots=True)
class RunSettings:
    """How ``expbook run`` reads a program's command line and output.

    The four flag sets hold normalised names (`normalize_flag` is applied on construction, so
    ``RunSettings(booleans=frozenset({"--Dry-Run"}))`` matches ``--dry-run``).

    Attributes:
        booleans: flags that never take a value (``--amp``, ``--fast``); ``expbook rerun --set
            amp=false`` removes such a flag, ``amp=true`` adds it.
        lists: flags whose value is always split into a list, on whitespace and commas, and
            that take all the numbers that follow them (``--gpus 0 1 data/``).
        strings: flags whose value is one word kept as text: no typing, no splitting.
        ignore: flags that are not params (an output directory, say), dropped with their value.
        patterns: the raw ``[[run.patterns]]`` tables (``regex``, optional ``key`` and ``kind``),
            checked for shape only and passed on unparsed to the output parser.
        ignore_metrics: shell-style patterns (``fnmatch``: ``*``, ``?``, ``[seq]``) of metric
            keys the output parser must drop, matched against the key as stored (lower case:
            ``Seed:`` gives ``seed``); a point left with no key is dropped.
        source: the path of the file these settings were read from, for messages.
    """

    booleans: frozenset[str] = frozenset()
    lists: frozenset[str] = frozenset()
    strings: frozenset[str] = frozenset()
    ignore: frozenset[str] = frozenset()
    patterns: tuple[dict[str, str], ...] = ()
    ignore_metrics: tuple[str, ...] = ()
    source: str | None = None

    def __post_init__(self) -> None:
        for name in _FLAG_SETS:
            names = frozenset(normalize_flag(flag) for flag in getattr(self, name))
            object.__setattr__(self, name, names)


def find_settings_file(cwd: str | os.PathLike[str]) -> Path | None:
    """Find the ``expbook.toml`` that applies to a program started in ``cwd``.

    Looks in ``cwd`` itself, then in the root of the git work tree that holds it (the nearest
    directory at or above ``cwd`` with a ``.git`` entry, which may be a file as in worktrees and
    submodules). Directories between the two are not searched.

    Args:
        cwd: the directory the program runs in.

    Returns:
        The absolute path of the file, or None when there is none.
    """
    start = Path(cwd).resolve()
    for directory in (start, _git_root(start)):
        if directory is not None and _is_file(directory / SETTINGS_FILENAME):
            return directory / SETTINGS_FILENAME
    return None


def _git_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if _exists(directory / ".git"):
            return directory
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a directory we may not search
        return False


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False


def load_settings(path: str | os.PathLike[str] | None) -> RunSettings:
    """Read run settings from an ``expbook.toml`` file.

    Args:
        path: the file to read, usually from `find_settings_file`; None gives the defaults.

    Returns:
        The settings; a file without a ``[run]`` table gives the defaults (with ``source`` set).

    Raises:
        InvalidValueError: the file cannot be read or is not valid TOML, ``[run]`` has an unknown
            key or a value of the wrong type, a pattern has no ``regex`` or an unknown key, a
            pattern's ``kind`` is not "series" or "summary", or a flag is listed both in
            ``strings`` and in ``lists``. The message is one line that names the file.
    """
    if path is None:
        return RunSettings()
    name = os.fspath(path)
    run = _run_table(name, _read_toml(name))
    flag_sets = {field: _flag_names(name, run, field) for field in _FLAG_SETS}
    both = sorted(flag_sets["strings"] & flag_sets["lists"])
    if both:
        raise InvalidValueError(f"{name}: [run] {both[0]!r} is in both strings and lists")
    return RunSettings(
        **flag_sets,
        patterns=_patterns(name, run),
        ignore_metrics=_metric_patterns(name, run),
        source=name,
    )


def _read_toml(name: str) -> dict[str, Any]:
    try:
        with open(name, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise InvalidValueError(f"{name}: cannot read it: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidValueError(f"{name}: not UTF-8 text ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidValueError(_toml_message(name, exc)) from exc


def _toml_message(name: str, error: tomllib.TOMLDecodeError) -> str:
    text = str(error).replace("\n", " ")
    match = _TOML_POSITION.fullmatch(text)
    if match is None:
        return f"{name}: {text}"
    return f"{name} line {match['line']}, column {match['col']}: {match['msg']}"


def _run_table(name: str, data: dict[str, Any]) -> dict[str, Any]:
    run = data.get("run", {})
    if not isinstance(run, dict):
        raise InvalidValueError(f"{name}: run must be a table ([run]), not {_short(run)}")
    unknown = sorted(set(run) - _RUN_KEYS)
    if unknown:
        known = ", ".join(sorted(_RUN_KEYS))
        raise InvalidValueError(f"{name}: unknown key {unknown[0]!r} in [run] (known: {known})")
    return run


def _flag_names(name: str, run: dict[str, Any], field: str) -> frozenset[str]:
    value = run.get(field, [])
    if not isinstance(value, list) or not all(
        isinstance(flag, str) and normalize_flag(flag) for flag in value
    ):
        raise InvalidValueError(
            f"{name}: [run] {field} must be a list of flag names, not {_short(value)}"
        )
    return frozenset(normalize_flag(flag) for flag in value)


def _metric_patterns(name: str, run: dict[str, Any]) -> tuple[str, ...]:
    value = run.get("ignore_metrics", [])
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        raise InvalidValueError(
            f"{name}: [run] ignore_metrics must be a list of metric key patterns "
            f'("seed", "*_time"), not {_short(value)}'
        )
    return tuple(pattern.strip().lower() for pattern in value)


def _patterns(name: str, run: dict[str, Any]) -> tuple[dict[str, str], ...]:
    value = run.get("patterns", [])
    if not isinstance(value, list):
        raise InvalidValueError(
            f"{name}: [run] patterns must be an array of tables ([[run.patterns]]), "
            f"not {_short(value)}"
        )
    return tuple(_pattern(f"{name}: [[run.patterns]] #{n}", p) for n, p in enumerate(value, 1))


def _pattern(where: str, pattern: object) -> dict[str, str]:
    if not isinstance(pattern, dict):
        raise InvalidValueError(f"{where} must be a table, not {_short(pattern)}")
    unknown = sorted(set(pattern) - _PATTERN_KEYS)
    if unknown:
        known = ", ".join(sorted(_PATTERN_KEYS))
        raise InvalidValueError(f"{where} has unknown key {unknown[0]!r} (known: {known})")
    if "regex" not in pattern:
        raise InvalidValueError(f"{where} has no regex")
    for key, value in pattern.items():
        if not isinstance(value, str):
            raise InvalidValueError(f"{where} {key} must be a string, not {_short(value)}")
    if pattern.get("kind", "series") not in PATTERN_KINDS:
        raise InvalidValueError(
            f"{where} kind must be 'series' or 'summary', not {pattern['kind']!r}"
        )
    return dict(pattern)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
