"""Rewriting a command line with new param values, for ``expbook rerun --set key=value``.

`with_flags` names params as `expbook.runner.argv.command_params` does and changes them where
they are written: a program's flags and ``key=value`` words (found by `expbook.runner.argv.scan`),
a launcher's options (`expbook.runner.launchers`) and ``NAME=value`` environment words.
"""

from __future__ import annotations

from collections.abc import Sequence

from expbook.errors import InvalidValueError
from expbook.runner.argv import DEFAULT_SETTINGS, scan
from expbook.runner.launchers import Command, Layer, layer_flags, option_kind, unwrap
from expbook.runner.settings import RunSettings, normalize_flag
from expbook.runner.tokens import ENV_NAME, Flag, typed


def with_flags(
    argv: Sequence[str], assignments: Sequence[str], settings: RunSettings = DEFAULT_SETTINGS
) -> list[str]:
    """``argv`` with params set to new values, for ``expbook rerun --set key=value``.

    Each assignment is ``key=value``, the key as `command_params` names the param; launchers are
    unwrapped the same way. Where the key occurs, its last occurrence is changed in place:

    - ``--key value`` gets the new value (a run of numbers, ``--milestones 30 60 90``, is
      replaced as a whole, by the new value split on whitespace); ``--key=value`` and
      ``key=value`` words (also ``+key=value``) keep their form: ``--key=new``. The key matches
      flags with any number of dashes (``lr`` finds ``-lr 0.1``) and reads ``-`` and ``_`` as
      the same (``batch_size`` finds ``--batch-size``); a key written with dashes (``--set
      --lr=1``) only matches flags, one written with ``+`` only ``key=value`` words.
    - A flag without a value (in ``settings.booleans``, or followed by another flag, ``--`` or
      nothing) is a switch: ``true`` keeps it, ``false`` removes it (every bare occurrence),
      another value makes it ``--key=value``. When only ``--no-key`` occurs, ``true`` replaces
      it with ``--key`` and ``false`` keeps it (``--set no-key=false`` removes it).
    - ``<launcher>.<option>`` (``torchrun.nproc_per_node``) sets that launcher's option, the same
      way; a missing one is added at the end of the launcher's options as ``--option value``
      (``--option`` alone for a switch it knows set to ``true``).
    - ``env.NAME`` sets the ``NAME=value`` word before the command (or after ``env``); a
      missing one is added before the command.

    A key that does not occur is appended to the command: as ``key=value`` when the command's
    last param is a ``key=value`` word (Hydra, ``make``) or the key starts with ``+``; as a bare
    ``--key`` for ``true`` (nothing for ``false``) when it is in ``settings.booleans``; else as
    ``--key=value`` (one dash for a one-letter key, or when all the command's long flags have
    one).

    Args:
        argv: the recorded command line, ``NAME=value`` prefixes included or not.
        assignments: the ``key=value`` texts, applied in order.
        settings: the user's hints from ``expbook.toml`` (``booleans`` matters here).

    Returns:
        The new command line.

    Raises:
        InvalidValueError: an assignment has no ``=`` or no key.
    """
    result = [str(word) for word in argv]
    for assignment in assignments:
        name, eq, value = assignment.partition("=")
        name = name.strip()
        if not eq or not name.lstrip("-+"):
            raise InvalidValueError(f"--set {assignment!r}: write it as key=value")
        result = _set(result, name, value, settings)
    return result


def guessed_flags(
    argv: Sequence[str], assignments: Sequence[str], settings: RunSettings = DEFAULT_SETTINGS
) -> list[tuple[str, list[str]]]:
    """The assignments that `with_flags` would add as a new flag whose spelling it guesses: a
    plain key (no dashes, no ``+``) that the command has neither as a flag nor as a ``key=value``
    word, for a command whose last param is not a ``key=value`` word. The program may spell it
    otherwise (``--batch-size`` for ``batch_size``), so ``expbook rerun`` refuses these.

    Returns:
        ``(assignment, closest keys the command has)`` for each, in order.
    """
    from expbook.columns import closest

    words = [str(word) for word in argv]
    guessed = []
    for assignment in assignments:
        name, eq, value = assignment.partition("=")
        name = name.strip()
        if not eq or not name.lstrip("-+"):
            continue  # with_flags says what is wrong with it
        if _adds_a_guessed_flag(words, name, value, settings):
            args = words[unwrap(words).start :]
            flags = [_written(args, f) for f in scan(args, settings) if isinstance(f, Flag)]
            guessed.append((assignment, closest(name, flags)))
        words = _set(words, name, value, settings)
    return guessed


def _adds_a_guessed_flag(words: list[str], name: str, value: str, settings: RunSettings) -> bool:
    if name.startswith(("-", "+")) or (name.startswith("env.") and ENV_NAME.fullmatch(name[4:])):
        return False
    command = unwrap(words)
    if any(
        layer.spec.namespace and name.startswith(f"{layer.spec.namespace}.")
        for layer in command.layers
    ):
        return False
    args = words[command.start :]
    flags = [item for item in scan(args, settings) if isinstance(item, Flag)]
    if any(_same_key(_written(args, f), name) for f in flags):
        return False
    if any(f.negated and _same_key(f.key, name) for f in flags):
        return False
    if flags and flags[-1].form == "assign":
        return False  # added as a key=value word, the command's own way
    return not (normalize_flag(name) in settings.booleans and _truth(value) is False)


def _set(words: list[str], name: str, value: str, settings: RunSettings) -> list[str]:
    command = unwrap(words)
    if name.startswith("env.") and ENV_NAME.fullmatch(name[4:]):
        return _set_environment(words, command, name[4:], value)
    for layer in reversed(command.layers):
        namespace = layer.spec.namespace
        if namespace and name.startswith(f"{namespace}.") and len(name) > len(namespace) + 1:
            return _set_option(words, layer, name[len(namespace) + 1 :], value)
    head, args = words[: command.start], words[command.start :]
    return head + _set_flag(args, name, value, settings)


def _set_environment(words: list[str], command: Command, name: str, value: str) -> list[str]:
    found = [i for i in command.environment if words[i].partition("=")[0] == name]
    index = found[-1] if found else command.prefix
    return _splice(words, index, index + bool(found), [f"{name}={value}"])


def _set_option(words: list[str], layer: Layer, key: str, value: str) -> list[str]:
    prefix = len(layer.spec.namespace or "") + 1
    found = [flag for flag in layer_flags(words, layer) if _same_key(flag.key[prefix:], key)]
    if found:
        return _change(words, found, value)
    option = ("-" if len(key) == 1 else "--") + key
    count, _ = option_kind(option, layer.spec)
    truth = _truth(value)
    if count == 0:
        new = [option] if truth else [] if truth is False else [f"{option}={value}"]
    else:
        new = [option, *_value_words(value, count)]
    return _splice(words, layer.end, layer.end, new)


def _set_flag(args: list[str], name: str, value: str, settings: RunSettings) -> list[str]:
    """Set a flag or ``key=value`` word among a program's arguments (see `with_flags`)."""
    key, dashes, plus = name.lstrip("-+"), name[: len(name) - len(name.lstrip("-"))], ""
    if not dashes:
        plus = name[: len(name) - len(name.lstrip("+"))]
    flags = [item for item in scan(args, settings) if isinstance(item, Flag)]
    found = [
        flag
        for flag in flags
        if _same_key(_written(args, flag), key)
        and (flag.form == "assign" if plus else flag.form != "assign" or not dashes)
    ]
    if found:
        return _change(args, found, value)
    negated = [flag for flag in flags if flag.negated and _same_key(flag.key, key)]
    if negated and not plus:
        return _unnegate(args, negated[-1], value)
    truth = _truth(value)
    dashes = dashes or _dashes(args, flags, key)
    if normalize_flag(key) in settings.booleans and truth is not None and not plus:
        return args + ([dashes + key] if truth else [])
    if plus or (not name.startswith("-") and flags and flags[-1].form == "assign"):
        return [*args, f"{plus}{key}={value}"]
    return [*args, *([f"{dashes}{key}={value}"] if dashes == "--" else [dashes + key, value])]


def _change(words: list[str], found: list[Flag], value: str) -> list[str]:
    """Give the last of ``found`` (occurrences of one key) a new value."""
    last = found[-1]
    word = words[last.index]
    if last.form in ("equals", "assign"):
        return _splice(words, last.index, last.stop, [f"{word.partition('=')[0]}={value}"])
    if last.form == "attached":  # -N2
        return _splice(words, last.index, last.stop, [word[:2] + value])
    if last.form == "separate":
        count = last.stop - last.index - 1
        return _splice(words, last.index + 1, last.stop, _value_words(value, count))
    truth = _truth(value)
    if truth is True:
        return words
    if truth is False:
        bare = {flag.index for flag in found if flag.form == "bare"}
        return [word for index, word in enumerate(words) if index not in bare]
    return _splice(words, last.index, last.stop, [f"{word}={value}"])


def _unnegate(words: list[str], flag: Flag, value: str) -> list[str]:
    """``--no-key`` for ``key=true`` becomes ``--key``; for ``false`` it stays."""
    truth = _truth(value)
    if truth is False:
        return words
    word = words[flag.index]
    positive = word[: len(word) - len(word.lstrip("-"))] + flag.key
    return _splice(words, flag.index, flag.stop, [positive if truth else f"{positive}={value}"])


def _written(words: Sequence[str], flag: Flag) -> str:
    """The key of a flag or ``key=value`` word as written, without dashes, ``+`` or value."""
    word = words[flag.index]
    return (word.lstrip("+") if flag.form == "assign" else word.lstrip("-")).partition("=")[0]


def _same_key(written: str, key: str) -> bool:
    return written == key or written.replace("-", "_") == key.replace("-", "_")


def _dashes(words: Sequence[str], flags: list[Flag], key: str) -> str:
    """``-`` for a one-letter key or when all the long flags have one dash, else ``--``."""
    if len(key) == 1:
        return "-"
    long = [words[f.index] for f in flags if f.form != "assign" and len(_written(words, f)) > 1]
    return "-" if long and all(not word.startswith("--") for word in long) else "--"


def _truth(value: str) -> bool | None:
    truth = typed(value)
    return truth if isinstance(truth, bool) else None


def _value_words(value: str, count: int) -> list[str]:
    """A new value for ``count`` value words: split on whitespace when there are several."""
    return value.split() if count > 1 and value.split() else [value]


def _splice(words: list[str], start: int, stop: int, new: list[str]) -> list[str]:
    return [*words[:start], *new, *words[stop:]]
