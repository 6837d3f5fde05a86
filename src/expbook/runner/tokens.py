"""The words of a command line, one at a time: the basics every reader of a command line shares.

What counts as a flag, a value or a number, what JSON value a word stands for (`typed`), which
keys are valid param keys, and the `Flag` a scanned flag (or ``key=value`` word) becomes. Used by
`expbook.runner.launchers`, `expbook.runner.argv`, `expbook.runner.configs` and
`expbook.runner.rewrite`; it imports none of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from expbook.errors import InvalidKeyError
from expbook.validation import check_key

INT64 = 1 << 63
INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[+-]?(([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+)")
_SPECIAL_FLOAT = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_WORD = re.compile(r"[\w\-+./~@=:]*[\w/]")
ENV_NAME = re.compile(r"[^\W\d]\w*")
_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Flag:
    key: str  # as written, without leading dashes or "+" (and without "no-" when negated)
    name: str  # normalised, for comparing with the settings
    raw: str | None  # the value's text (a run of numbers joined by spaces); None: no value
    side: int  # how many "--" separators come before it
    negated: bool = False  # "--no-foo" without a value: foo = False
    index: int = 0  # where its first word is, in the words scanned
    stop: int = 0  # the index after its last word
    form: str = "bare"  # --f, "equals" --f=v, "separate" --f v..., "assign" key=v, "attached" -N2


def clean(text: str) -> str:
    """``text`` with lone surrogates (undecodable bytes in argv, JSON escapes) as U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


def is_flag(token: str) -> bool:
    return token.startswith("-") and token not in ("-", "--") and not is_number(token)


def is_value(token: str) -> bool:
    return token != "--" and not is_flag(token)


def is_number(token: str) -> bool:
    return bool(_NUMBER.fullmatch(token) or _SPECIAL_FLOAT.fullmatch(token))


def is_word(part: str) -> bool:
    return is_number(part) or bool(_WORD.fullmatch(part))


def typed(text: str) -> Any:
    """The JSON value a command-line token most likely stands for."""
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    if lower in ("none", "null"):
        return None
    if INT.fullmatch(text):
        number = int(text)
        return number if -INT64 <= number < INT64 else text
    if _FLOAT.fullmatch(text) or _SPECIAL_FLOAT.fullmatch(text):
        return float(text)
    return text


def valid_key(key: str) -> bool:
    try:
        check_key(key, "param")
    except InvalidKeyError:
        return False
    return True
