"""Params from a program's command line, read without knowing the program's argument parser.

`command_params` turns ``python train.py --lr 1e-3 --amp --config configs/gru.yaml`` into
``{"lr": 0.001, "amp": True, "config": "configs/gru.yaml", "config.model.hidden": 256, ...}``.
It only observes user input, so it never raises: what it cannot read it leaves out, and a config
file it cannot load is skipped with a `ParamsWarning`.

Launchers (``env``, ``uv run``, ``torchrun``, ``srun``, the Python interpreter...) are unwrapped
by `expbook.runner.launchers`, and config files read by `expbook.runner.configs`. `command_name`
names a run after the command the launchers run, and `expbook.runner.rewrite.with_flags`
(``expbook rerun --set``) rewrites a command line in the same terms, finding flags with `scan`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from expbook.runner.configs import ParamsWarning as ParamsWarning  # re-exported
from expbook.runner.configs import config_params
from expbook.runner.launchers import Command, layer_flags, unwrap
from expbook.runner.settings import RunSettings, normalize_flag
from expbook.runner.tokens import (
    INT,
    Flag,
    clean,
    is_flag,
    is_number,
    is_value,
    is_word,
    typed,
    valid_key,
)

DEFAULT_SETTINGS = RunSettings()
_BRACKETED = re.compile(r"\[(.*)\]", re.DOTALL)
_ASSIGNMENT = re.compile(r"(\+{0,2})([^\W\d][\w\-]*(?:[./@][\w\-]+)*)=(.*)", re.DOTALL)
_LIST_SEPARATORS = re.compile(r"[\s,]+")


def command_params(
    argv: Sequence[str],
    settings: RunSettings = DEFAULT_SETTINGS,
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Read a program's params from its command line.

    Rules, in the order they apply:

    - Launchers are unwrapped: ``env``, ``nohup``, ``time``, ``nice``, ``uv run``, ``poetry
      run``, ``pipenv run``, ``conda``/``mamba``/``micromamba run``, ``torchrun``, ``python -m
      torch.distributed.run`` (and ``.launch``), ``accelerate launch``, ``deepspeed``, ``srun``,
      ``mpirun``/``mpiexec``, the Python interpreter and ``sh``/``bash``/``zsh``, nested in any
      order. Each launcher's own options are params named ``<launcher>.<option>``, spelled as
      written (``torchrun --nproc_per_node=8`` gives ``torchrun.nproc_per_node: 8``; the module
      forms use the command's name, ``torchrun``), except those of ``env``, the interpreter and
      the shells, which are not params. ``NAME=value`` words before the command or after
      ``env`` give ``env.NAME`` params (text, untyped). What the innermost launcher runs is the
      program (a script, a ``-m`` module, a binary); ``python -c CODE`` and ``python -`` have
      no program, the words after them are its arguments. Config files named by launcher
      options are not read.
    - Programs whose arguments are text, not settings (`TEXT_PROGRAMS`: ``echo``, ``printf``,
      ``cat``...), have no params: ``echo "loss=0.1 acc=0.9"`` prints a line, it overrides
      nothing.
    - The program's positional arguments are not params (but see ``key=value`` and config
      files). ``key=value`` words whose key is a dotted name (Hydra, ``make``: ``model=resnet``,
      ``optimizer.lr=0.01``, ``+trainer.max_epochs=5``, ``LR=0.1``) are params of that key,
      without the ``+``/``++``; ``~key`` deletions are not params, nor is a word that holds
      several assignments (``"loss=0.1 acc=0.9"``: a value with a space and another ``key=``).
    - A token starting with ``-`` is a flag unless it is a number (``-1``, ``-3e-4``, ``-inf``),
      ``-`` or ``--``. Its key is the flag without its leading dashes, spelled as written:
      ``--batch-size`` gives ``batch-size``, ``-lr`` gives ``lr``. Flags are never split further
      (``-xvf`` is the key ``xvf``). A flag whose key is not a valid expbook key is dropped.
    - ``--flag=value`` takes the text after the first ``=``. Otherwise a flag takes the next token
      as its value unless that token is a flag, ``--`` or missing, or the flag is in
      ``settings.booleans``; then its value is True. ``--no-foo`` without a value gives
      ``foo = False`` (unless ``no_foo`` itself is listed in ``booleans``).
    - Numbers in a row: when a flag's value is a number followed by more numbers, the flag takes
      the whole run as a list (like argparse's ``nargs="+"``) if the run has at least two
      numbers of one kind (all integers, or all decimals: ``--milestones 30 60 90`` gives
      ``[30, 60, 90]``, ``--betas 0.9 0.999`` ``[0.9, 0.999]``) and ends at a flag, ``--`` or
      the end of the command. Otherwise it takes only the first number and the rest are
      positional: ``--lr 0.1 5`` gives ``lr: 0.1``, as does ``--size 224 224 data/`` ``size:
      224``. A flag in ``settings.lists`` takes the whole run however it ends, one in
      ``settings.strings`` only ever one word; ``--flag=value`` is always one word.
    - Values are typed: integers (without leading zeros, within 64 bits) become int; decimals and
      exponents (``0.001``, ``1e-3``, ``.5``) and ``nan``/``inf`` become float; ``true``/``false``
      become bool and ``none``/``null`` None, in any case. Anything else stays a str.
    - List heuristic: a value with whitespace in it whose parts are all "word-like" (identifiers,
      numbers, paths, ``key=value``, ``host:port``: letters, digits and ``_-+./~@=:``, not ending
      in ``.``, ``:`` or other punctuation) becomes a list of typed parts, so ``--features "cli
      ml_train"`` gives ``["cli", "ml_train"]``, while ``--note "first try, with warmup!"``
      stays a str. So does ``[a,b,c]`` with word-like items (``devices=[0,1]`` gives ``[0, 1]``).
      A value with a single part stays a str. Values of flags in ``settings.lists`` are always
      split, on whitespace and commas; values of flags in ``settings.strings`` are never typed
      or split.
    - A flag given several times collects its values into one flat list, in order.
    - ``--`` separates a launcher's flags (``cargo run --release --``) from the program's. Flags
      on both sides are params; a key given on both sides takes the values from the later side.
    - Flags in ``settings.ignore`` are dropped with their values (launcher options by their full
      name, ``torchrun.rdzv_endpoint``).
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
    words = [clean(str(word)) for word in argv]
    command = unwrap(words)
    params = _launcher_params(words, command, settings)
    if _takes_text(words, command):
        return params
    flags: list[Flag] = []
    candidates: list[str] = []
    for item in scan(words[command.start :], settings):
        if isinstance(item, str):
            candidates.append(item)
        elif _is_param(item, settings):
            flags.append(item)
            candidates += [item.raw] if item.raw is not None else []
    params.update(_collect(flags, settings))
    for key, value in config_params(candidates, cwd).items():
        params.setdefault(key, value)
    return params


def _launcher_params(
    words: Sequence[str], command: Command, settings: RunSettings
) -> dict[str, Any]:
    """``env.NAME`` for the environment, ``<launcher>.<option>`` for launchers' options."""
    params: dict[str, Any] = {}
    for index in command.environment:
        name, _, value = words[index].partition("=")
        if valid_key(f"env.{name}"):
            params[f"env.{name}"] = value
    flags = [
        flag
        for layer in command.layers
        for flag in layer_flags(words, layer)
        if _is_param(flag, settings)
    ]
    params.update(_collect(flags, settings))
    return params


TEXT_PROGRAMS = frozenset({"echo", "printf", "yes", "true", "false", "sleep", "cat", "tee"})
"""Programs whose arguments are text to print or pass on, not settings: they have no params."""


def _takes_text(words: Sequence[str], command: Command) -> bool:
    if command.program >= len(words) or command.start != command.program + 1:
        return False  # nothing run, or python -c CODE: its arguments may be settings
    return os.path.basename(words[command.program]) in TEXT_PROGRAMS


# --- naming --------------------------------------------------------------------------------------

_SCRIPT = (".py", ".sh", ".bash", ".zsh", ".R", ".jl", ".js", ".ts", ".rb", ".pl", ".lua")
_MAKE_OPTIONS_WITH_VALUE = frozenset(
    {"-C", "-f", "-I", "-o", "-W", "--directory", "--file", "--makefile", "--include-dir"}
)


def command_name(argv: Sequence[str]) -> str:
    """A run name from a command line, launchers unwrapped (as in `command_params`): the script
    (``train`` for ``python train.py``, ``torchrun --nproc_per_node 8 train.py``, ``bash
    train.sh``), the module (``python -m pkg.train`` → ``train``), the Cargo binary or example
    (``cargo run --bin train``), the Bazel target (``bazel run //pkg:train`` → ``train``), the
    make target (``make train LR=0.1``), else the program's file name."""
    words = [str(word) for word in argv]
    command = unwrap(words)
    if command.program >= len(words):  # nothing, or only NAME=value words
        return os.path.basename(words[0]) if words else "run"
    word = words[command.program]
    if command.module:
        return word.rsplit(".", 1)[-1] or "run"
    program = os.path.basename(word)
    namer = _NAMERS.get(program)
    if namer is not None:
        return namer(words[command.start :]) or program
    if program.endswith(_SCRIPT):
        return os.path.splitext(program)[0]
    return program or "run"


def _cargo_name(args: list[str]) -> str | None:
    for flag in ("--bin", "--example"):
        if flag in args and args.index(flag) + 1 < len(args):
            return args[args.index(flag) + 1]
    return None


def _bazel_name(args: list[str]) -> str | None:
    for arg in args:
        if arg.startswith("//") or arg.startswith(":"):
            return arg.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    return None


def _make_name(args: list[str]) -> str | None:
    """The first target: a word that is not an option, an option's value or NAME=value."""
    for index, arg in enumerate(args):
        after_option = index > 0 and args[index - 1] in _MAKE_OPTIONS_WITH_VALUE
        if not (arg.startswith("-") or after_option or "=" in arg or is_number(arg)):
            return arg
    return None


_NAMERS: dict[str, Callable[[list[str]], str | None]] = {
    "cargo": _cargo_name,
    "bazel": _bazel_name,
    "bazelisk": _bazel_name,
    "make": _make_name,
    "gmake": _make_name,
}


# --- flags ---------------------------------------------------------------------------------------


def scan(words: Sequence[str], settings: RunSettings) -> Iterator[Flag | str]:
    """Yield each flag, each ``key=value`` word (as a flag) and each other positional, in order."""
    side = 0
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            side += 1
            index += 1
        elif not is_flag(word):
            yield _assignment(word, side, index) or word
            index += 1
        else:
            flag = _read_flag(words, index, side, settings)
            yield flag
            index = flag.stop


def _read_flag(words: Sequence[str], index: int, side: int, settings: RunSettings) -> Flag:
    key = words[index].lstrip("-")
    if "=" in key:
        key, _, raw = key.partition("=")
        return Flag(key, normalize_flag(key), raw, side, False, index, index + 1, "equals")
    first = index + 1
    if _takes_value(key, settings) and first < len(words) and is_value(words[first]):
        stop = _value_stop(words, first, normalize_flag(key), settings)
        raw = " ".join(words[first:stop])
        return Flag(key, normalize_flag(key), raw, side, False, index, stop, "separate")
    return _bare_flag(key, side, settings, index)


def _value_stop(words: Sequence[str], first: int, name: str, settings: RunSettings) -> int:
    """Where a flag's value that starts at ``first`` ends: after a run of numbers or one word."""
    if name in settings.strings or not is_number(words[first]):
        return first + 1
    kind = INT.fullmatch(words[first]) is not None
    stop = first + 1
    while stop < len(words) and is_number(words[stop]):
        stop += 1
    if name in settings.lists:
        return stop
    ends = stop == len(words) or not is_value(words[stop])
    alike = all((INT.fullmatch(word) is not None) == kind for word in words[first:stop])
    return stop if stop > first + 1 and ends and alike else first + 1


def _assignment(word: str, side: int, index: int) -> Flag | None:
    """A ``key=value`` word as a flag; None for other words, and for one that holds several
    assignments (``"loss=0.1 acc=0.9"``: text, not one override)."""
    match = _ASSIGNMENT.fullmatch(word)
    if match is None or any(_ASSIGNMENT.fullmatch(part) for part in match[3].split()[1:]):
        return None
    key = match[2]
    return Flag(key, normalize_flag(key), match[3], side, False, index, index + 1, "assign")


def _takes_value(token: str, settings: RunSettings) -> bool:
    name = normalize_flag(token)
    if name in settings.booleans:
        return False
    return not (_negatable(name) and name[3:] in settings.booleans)


def _negatable(name: str) -> bool:
    return name.startswith("no_") and len(name) > 3


def _bare_flag(key: str, side: int, settings: RunSettings, index: int) -> Flag:
    name = normalize_flag(key)
    if _negatable(name) and name not in settings.booleans:
        return Flag(key[3:], name[3:], None, side, True, index, index + 1)
    return Flag(key, name, None, side, False, index, index + 1)


def _is_param(flag: Flag, settings: RunSettings) -> bool:
    if flag.name in settings.ignore or (flag.negated and f"no_{flag.name}" in settings.ignore):
        return False
    return valid_key(flag.key)


def _collect(flags: list[Flag], settings: RunSettings) -> dict[str, Any]:
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


def _flag_value(flag: Flag, settings: RunSettings) -> Any:
    if flag.raw is None:
        return not flag.negated
    if flag.name in settings.strings:
        return flag.raw
    bracketed = _BRACKETED.fullmatch(flag.raw)
    if bracketed is not None:
        items = [item.strip() for item in bracketed[1].split(",")] if bracketed[1].strip() else []
        if all(is_word(item) for item in items):
            return [typed(item) for item in items]
    if flag.name in settings.lists:
        return [typed(part) for part in _LIST_SEPARATORS.split(flag.raw) if part]
    parts = flag.raw.split()
    if len(parts) > 1 and all(is_word(part) for part in parts):
        return [typed(part) for part in parts]
    return typed(flag.raw)
