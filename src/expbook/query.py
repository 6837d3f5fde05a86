"""The filter and sort language shared by the CLI, the API, the web UI and reports.

Examples::

    params.lr < 1e-3 and metrics.valid/acc > 0.9 and tags has 'gru'
    status in ('failed', 'crashed') or duration > 2h
    max(metrics.valid/acc) >= 0.95 and not params.optimizer = 'sgd'
    name ~ 'gru-*' and started >= '2026-11-01'

This module parses text into an AST (``parse_filter``, ``parse_sort``). Backends compile the AST;
the SQL store binds every value as a parameter, never formatting it into SQL. Errors raise
``FilterSyntaxError`` with the character position. The full grammar is in docs/filter.md.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass
from typing import Any

from expbook.errors import FilterSyntaxError

ATTRIBUTES = {
    "number": "number",
    "id": "text",
    "name": "text",
    "status": "text",
    "kind": "text",
    "experiment": "text",
    "parent": "number",
    "duration": "number",
    "started": "time",
    "ended": "time",
    "commit": "text",
    "branch": "text",
    "remote": "text",
    "dirty": "bool",
    "host": "text",
    "cwd": "text",
    "exit_code": "number",
}
"""Run attributes a filter can name, with the type of value they compare to."""

AGGREGATES = ("last", "min", "max", "count")
OPERATORS = ("=", "!=", "<", "<=", ">", ">=", "~", "!~")
_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "has", "asc", "desc"})

# --- AST ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """What a comparison looks at: ``scope`` is ``param``, ``metric``, ``attr`` or ``tags``."""

    scope: str
    name: str
    aggregate: str = "last"
    pos: int = 0

    def label(self) -> str:
        if self.scope == "attr" or self.scope == "tags":
            return self.name
        text = f"{self.scope}s.{self.name}"
        return text if self.aggregate == "last" else f"{self.aggregate}({text})"


@dataclass(frozen=True, slots=True)
class Compare:
    field: Field
    op: str
    value: Any
    pos: int = 0


@dataclass(frozen=True, slots=True)
class In:
    field: Field
    values: tuple[Any, ...]
    negated: bool = False
    pos: int = 0


@dataclass(frozen=True, slots=True)
class IsNull:
    field: Field
    negated: bool = False


@dataclass(frozen=True, slots=True)
class HasTag:
    tag: str
    pos: int = 0


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Compare | In | IsNull | HasTag | And | Or | Not


@dataclass(frozen=True, slots=True)
class SortKey:
    field: Field
    descending: bool = False


# --- lexer --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # word, key, number, string, op, lparen, rparen, comma, minus, plus, end
    text: str
    value: Any
    pos: int


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?P<unit>[smhd](?![\w.]))?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<>|<=|>=|!~|[=<>~])
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<minus>-)
  | (?P<plus>\+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)
_KEY = re.compile(r"`([^`]+)`|'((?:[^'\\]|\\.)+)'|\"((?:[^\"\\]|\\.)+)\"|([^\s()<>=!~,'\"`]+)")
_SCOPES = {"params": "param", "param": "param", "metrics": "metric", "metric": "metric"}


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise FilterSyntaxError(f"unexpected character {text[pos]!r}", text, pos)
        kind = match.lastgroup if match.lastgroup != "unit" else "number"
        token_text = match.group()
        if kind == "word" and token_text.lower() in _SCOPES and text.startswith(".", match.end()):
            key_match = _KEY.match(text, match.end() + 1)
            if key_match is None:
                raise FilterSyntaxError(
                    f"expected a key after '{token_text}.'", text, match.end() + 1
                )
            key = next(g for g in key_match.groups() if g is not None)
            if key_match.group(2) or key_match.group(3):
                key = _unescape(key)
            tokens.append(
                Token("key", text[pos : key_match.end()], (_SCOPES[token_text.lower()], key), pos)
            )
            pos = key_match.end()
            continue
        if kind != "space":
            tokens.append(Token(kind, token_text, _literal(kind, match), pos))
        pos = match.end()
    tokens.append(Token("end", "", None, len(text)))
    return tokens


def _literal(kind: str | None, match: re.Match[str]) -> Any:
    text = match.group()
    if kind == "number":
        unit = match.group("unit")
        if unit:
            return float(text[:-1]) * _DURATION_UNITS[unit]
        return float(text) if any(c in text for c in ".eE") else int(text)
    if kind == "string":
        return _unescape(text[1:-1])
    if kind == "op":
        return {"==": "=", "<>": "!="}.get(text, text)
    return text


# --- parser -------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.lower() in words

    def error(self, reason: str, token: Token | None = None) -> FilterSyntaxError:
        return FilterSyntaxError(reason, self.text, (token or self.tok).pos)

    def expect(self, kind: str, what: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}")
        return self.advance()

    # expr := and ('or' and)*
    def expr(self) -> Node:
        items = [self.conj()]
        while self.is_word("or"):
            self.advance()
            items.append(self.conj())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conj(self) -> Node:
        items = [self.neg()]
        while self.is_word("and"):
            self.advance()
            items.append(self.neg())
        return items[0] if len(items) == 1 else And(tuple(items))

    def neg(self) -> Node:
        if self.is_word("not"):
            self.advance()
            return Not(self.neg())
        return self.atom()

    def atom(self) -> Node:
        if self.tok.kind == "lparen":
            self.advance()
            node = self.expr()
            self.expect("rparen", "')'")
            return node
        if self.is_word("tags", "tag"):
            start = self.advance()
            if not self.is_word("has"):
                raise self.error("expected 'has' after 'tags' (tags has 'name')")
            self.advance()
            value = self.expect("string", "a quoted tag after 'has'")
            return HasTag(value.value, start.pos)
        field = self.field()
        return self.predicate(field)

    def field(self) -> Field:
        token = self.tok
        if token.kind == "key":
            self.advance()
            scope, name = token.value
            return Field(scope, name, "last", token.pos)
        is_call = token.kind != "end" and self.tokens[self.i + 1].kind == "lparen"
        if token.kind == "word" and token.text.lower() in AGGREGATES and is_call:
            self.advance()
            self.advance()
            inner = self.tok
            if inner.kind != "key" or inner.value[0] != "metric":
                raise self.error(f"{token.text}() takes a metric, like metrics.valid/acc")
            self.advance()
            self.expect("rparen", "')'")
            return Field("metric", inner.value[1], token.text.lower(), token.pos)
        if token.kind == "word" and token.text.lower() in ATTRIBUTES:
            self.advance()
            return Field("attr", token.text.lower(), "last", token.pos)
        if token.kind == "end":
            raise self.error("expected a field (params.KEY, metrics.KEY, name, status, ...)")
        if token.kind == "word":
            raise self.error(
                f"unknown field {token.text!r}; use params.KEY, metrics.KEY, tags or one of "
                + ", ".join(sorted(ATTRIBUTES))
            )
        raise self.error("expected a field (params.KEY, metrics.KEY, name, status, ...)")

    def predicate(self, field: Field) -> Node:
        token = self.tok
        if token.kind == "op":
            self.advance()
            value_token = self.tok
            value = self.value()
            return Compare(
                field, token.value, _check(self, field, token.value, value, value_token), token.pos
            )
        if self.is_word("in"):
            return self.in_list(field, negated=False)
        if (
            self.is_word("not")
            and self.tokens[self.i + 1].kind == "word"
            and (self.tokens[self.i + 1].text.lower() == "in")
        ):
            self.advance()
            return self.in_list(field, negated=True)
        if self.is_word("is"):
            self.advance()
            negated = False
            if self.is_word("not"):
                self.advance()
                negated = True
            if not self.is_word("null"):
                raise self.error("expected 'null' after 'is'")
            self.advance()
            return IsNull(field, negated)
        if token.kind == "end":
            raise self.error(f"expected an operator after {field.label()!r}")
        raise self.error(
            f"expected an operator (=, !=, <, <=, >, >=, ~, in, is) after {field.label()!r}"
        )

    def in_list(self, field: Field, negated: bool) -> Node:
        start = self.advance()
        self.expect("lparen", "'(' after 'in'")
        values = []
        while True:
            token = self.tok
            values.append(_check(self, field, "=", self.value(), token))
            if self.tok.kind == "comma":
                self.advance()
                continue
            self.expect("rparen", "',' or ')'")
            break
        return In(field, tuple(values), negated, start.pos)

    def value(self) -> Any:
        token = self.tok
        sign = 1
        if token.kind in ("minus", "plus"):
            sign = -1 if token.kind == "minus" else 1
            self.advance()
            token = self.tok
            if token.kind != "number" and not self.is_word("inf"):
                raise self.error("expected a number after the sign")
        if token.kind in ("number", "string"):
            self.advance()
            return token.value * sign if token.kind == "number" else token.value
        if token.kind == "word":
            word = token.text.lower()
            constants = {
                "true": True, "false": False, "null": None, "inf": math.inf, "nan": math.nan,
            }  # fmt: skip
            if word in constants:
                self.advance()
                value = constants[word]
                return value * sign if word == "inf" else value
            if word not in _KEYWORDS:
                raise self.error(f"expected a value; quote text like '{token.text}'")
        raise self.error("expected a value (a number, a 'quoted string', true, false or null)")


_STATUSES = ("running", "finished", "failed", "interrupted", "crashed", "pruned")


def _check(parser: _Parser, field: Field, op: str, value: Any, token: Token) -> Any:
    """Type-check a literal against its field; turn times into epoch seconds.

    Every comparison that passes means the same on SQLite and PostgreSQL: text fields compare to
    text, number fields to numbers, ``~`` works on text only, NaN only with ``=``/``!=``.
    """
    kind = {"param": "any", "metric": "number"}.get(field.scope) or ATTRIBUTES[field.name]
    label = field.label()
    if op in ("~", "!~"):
        if kind not in ("text", "any"):
            raise parser.error(f"'~' matches text; {label} is not text", token)
        if not isinstance(value, str):
            raise parser.error("'~' matches text against a 'glob*' pattern; quote it", token)
        return value
    if value is None:
        if op not in ("=", "!="):
            raise parser.error("null only compares with = or != (or use 'is null')", token)
        return value
    if isinstance(value, float) and math.isnan(value):
        if op not in ("=", "!=") or kind not in ("number", "any"):
            raise parser.error("nan only compares with = or != on params and metrics", token)
        return value
    if kind == "number" and isinstance(value, str | bool):
        raise parser.error(f"{label} compares to numbers, not {value!r}", token)
    if kind == "text" and not isinstance(value, str):
        raise parser.error(f"{label} compares to text; quote it: '{value}'", token)
    if kind == "bool" and not isinstance(value, bool):
        raise parser.error(f"{label} compares to true or false", token)
    if kind == "time":
        return _to_epoch(parser, value, token)
    is_status = field.scope == "attr" and field.name == "status"
    if is_status and op in ("=", "!=") and value not in _STATUSES:
        raise parser.error(f"unknown status {value!r}; one of {', '.join(_STATUSES)}", token)
    return value


def _to_epoch(parser: _Parser, value: Any, token: Token) -> float:
    if isinstance(value, bool):
        raise parser.error("a time is a date like '2026-11-01' or epoch seconds", token)
    if isinstance(value, int | float):
        return float(value)
    try:
        moment = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise parser.error(
            f"cannot read {value!r} as a time; use '2026-11-01' or '2026-11-01 14:30'", token
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as people write dates
    return moment.timestamp()


def parse_filter(text: str) -> Node | None:
    """Parse a filter expression; None for an empty or blank one.

    Raises:
        FilterSyntaxError: with the position of the problem.
    """
    if text is None or not text.strip():
        return None
    parser = _Parser(text)
    node = parser.expr()
    if parser.tok.kind != "end":
        raise parser.error("expected 'and', 'or' or the end of the filter")
    return node


def parse_sort(text: str) -> list[SortKey]:
    """Parse a sort expression: fields separated by commas, each optionally prefixed with ``-``
    (descending) or followed by ``asc``/``desc``. Example: ``-metrics.valid/acc, number``.

    Raises:
        FilterSyntaxError: with the position of the problem.
    """
    if text is None or not text.strip():
        return []
    parser = _Parser(text)
    keys: list[SortKey] = []
    while True:
        descending = False
        if parser.tok.kind in ("minus", "plus"):
            descending = parser.advance().kind == "minus"
        field = parser.field()
        if parser.is_word("asc", "desc"):
            descending = parser.advance().text.lower() == "desc"
        keys.append(SortKey(field, descending))
        if parser.tok.kind == "comma":
            parser.advance()
            continue
        if parser.tok.kind != "end":
            raise parser.error("expected ',' or the end of the sort")
        return keys


def parse_field(text: str) -> Field:
    """Parse one field (``params.lr``, ``max(metrics.valid/acc)``, ``duration``)."""
    parser = _Parser(text)
    field = parser.field()
    if parser.tok.kind != "end":
        raise parser.error("expected the end of the field")
    return field
