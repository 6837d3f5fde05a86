"""MLflow search strings as expbook's filter language (docs/filter.md), and MLflow's paging.

MLflow's ``search_runs`` filter is comparisons joined by ``AND``, each ``[prefix.]key op value``
(``metrics.acc > 0.9``, ``params.optimizer = 'adam'``, ``tags.team = 'nlp'``,
``attributes.status = 'FINISHED'``). Each comparison becomes an expbook expression with the same
meaning; one that expbook cannot express exactly is refused (INVALID_PARAMETER_VALUE naming
it) rather than answered with other runs. ``order_by`` becomes an expbook sort expression;
page tokens are offsets.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from expbook.model import RunStatus
from expbook.server.mlflow_records import STATUS_FROM_MLFLOW, param_value, seconds
from expbook.server.mlflow_wire import invalid

MAX_RESULTS = 50_000
"""The most runs one search may ask for (MLflow's own limit)."""

NEVER = "number < 0"
"""An expbook filter no run matches (run numbers start at 1)."""

_KINDS = {
    "metric": "metric", "metrics": "metric",
    "param": "param", "params": "param", "parameter": "param", "parameters": "param",
    "tag": "tag", "tags": "tag",
    "attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute",
    "dataset": "dataset", "datasets": "dataset",
}  # fmt: skip
_ATTRIBUTE_NAMES = {
    "run_id": "run_id", "run_name": "run_name", "run name": "run_name", "Run name": "run_name",
    "Run Name": "run_name", "status": "status", "start_time": "start_time",
    "created": "start_time", "Created": "start_time", "end_time": "end_time",
    "user_id": "user_id", "artifact_uri": "artifact_uri", "lifecycle_stage": "lifecycle_stage",
}  # fmt: skip

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<quoted>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.]))
  | (?P<op>!=|<>|>=|<=|==|=|<|>)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<dot>\.)
  | (?P<word>[^\s'"`()=!<>,.]+)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Clause:
    """One comparison: ``kind`` is metric, param, tag, attribute or dataset; ``op`` one of
    ``= != < <= > >= LIKE ILIKE IN NOT IN IS NULL IS NOT NULL``; ``value`` a str, a float,
    a tuple of str (IN) or None (IS [NOT] NULL)."""

    kind: str
    key: str
    op: str
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    value: Any
    pos: int


def _tokens(text: str) -> list[_Token]:
    found, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise invalid(f"Invalid filter {text!r}: unexpected character {text[pos]!r} at {pos}")
        kind = match.lastgroup or ""
        raw = match.group()
        if kind == "string":
            value: Any = re.sub(r"\\(.)", r"\1", raw[1:-1].replace("''", "'"))
        elif kind == "quoted":
            value = raw[1:-1] if raw[0] == "`" else re.sub(r"\\(.)", r"\1", raw[1:-1])
        elif kind == "number":
            value = float(raw)
        else:
            value = raw
        if kind != "space":
            found.append(_Token(kind, raw, value, pos))
        pos = match.end()
    found.append(_Token("end", "", None, len(text)))
    return found


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.text.upper() in words

    def error(self, what: str) -> Exception:
        shown = self.tok.text or "the end"
        return invalid(
            f"Invalid filter {self.text!r}: {what} at character {self.tok.pos} (near {shown!r})"
        )

    def clauses(self) -> list[Clause]:
        found = [self.clause()]
        while self.tok.kind != "end":
            if not self.is_word("AND"):
                if self.is_word("OR"):
                    raise self.error("OR is not supported (MLflow supports AND only)")
                raise self.error("expected AND")
            self.advance()
            found.append(self.clause())
        return found

    def clause(self) -> Clause:
        start = self.tok.pos
        kind, key = self.identifier()
        op = self.operator()
        value = self.operand(op)
        return Clause(kind, key, op, value, self.text[start : self.tok.pos].strip())

    def identifier(self) -> tuple[str, str]:
        first = self.advance()
        if first.kind not in ("word", "quoted"):
            self.i -= 1
            raise self.error("expected a key such as metrics.acc, params.lr or tags.team")
        if self.tok.kind != "dot":  # a bare attribute: status, run_name, `Run name`
            return "attribute", first.value
        kind = _KINDS.get(first.text.lower())
        if kind is None:
            self.i -= 1
            raise self.error(
                f"unknown prefix {first.text!r}; use metrics., params., tags. or attributes."
            )
        self.advance()
        if self.tok.kind == "quoted":
            return kind, self.advance().value
        parts: list[str] = []  # an unquoted key runs to a space: tags.mlflow.parentRunId
        end = self.tokens[self.i - 1].pos + 1
        while self.tok.kind in ("word", "dot", "number") and self.tok.pos == end:
            end = self.tok.pos + len(self.tok.text)
            parts.append(self.advance().text)
        if not parts:
            raise self.error("expected a key after the prefix")
        return kind, "".join(parts)

    def operator(self) -> str:
        token = self.tok
        if token.kind == "op":
            self.advance()
            return {"==": "=", "<>": "!="}.get(token.text, token.text)
        if self.is_word("LIKE", "ILIKE", "IN"):
            return self.advance().text.upper()
        if self.is_word("NOT"):
            self.advance()
            if not self.is_word("IN"):
                raise self.error("expected IN after NOT")
            self.advance()
            return "NOT IN"
        if self.is_word("IS"):
            self.advance()
            negated = self.is_word("NOT")
            if negated:
                self.advance()
            if not self.is_word("NULL"):
                raise self.error("expected NULL after IS")
            self.advance()
            return "IS NOT NULL" if negated else "IS NULL"
        raise self.error("expected a comparison (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, IS NULL)")

    def operand(self, op: str) -> Any:
        if op in ("IS NULL", "IS NOT NULL"):
            return None
        if op in ("IN", "NOT IN"):
            if self.tok.kind != "lparen":
                raise self.error("expected '(' after IN")
            self.advance()
            values = [self.string()]
            while self.tok.kind == "comma":
                self.advance()
                values.append(self.string())
            if self.tok.kind != "rparen":
                raise self.error("expected ')' to close the IN list")
            self.advance()
            return tuple(values)
        token = self.tok
        if token.kind in ("string", "number"):
            self.advance()
            return token.value
        if token.kind == "quoted" and token.text.startswith('"'):
            self.advance()
            return token.value
        raise self.error("expected a value: a number or a 'quoted string'")

    def string(self) -> str:
        token = self.tok
        if token.kind not in ("string", "quoted") or token.text.startswith("`"):
            raise self.error("expected a 'quoted string'")
        self.advance()
        return token.value


def parse_filter(text: str | None) -> list[Clause]:
    """The comparisons of an MLflow filter string (none for an empty one).

    Raises:
        MlflowApiError: INVALID_PARAMETER_VALUE, naming what is wrong and where.
    """
    if text is None or not text.strip():
        return []
    return _Parser(text).clauses()


# --- runs: MLflow filter -> expbook filter -------------------------------------------------


def quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def key_field(scope: str, key: str) -> str:
    """``metrics.KEY`` with the key quoted when it holds characters that end a key."""
    plain = re.fullmatch(r"[A-Za-z_][^\s()<>=!~,'\"`]*", key) is not None
    return f"{scope}.{key}" if plain else f"{scope}.{quote(key)}"


def literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return quote(str(value))


def glob(pattern: str) -> str:
    """A LIKE pattern as an expbook glob (``%`` -> ``*``, ``_`` -> ``?``).

    Raises:
        MlflowApiError: the pattern holds ``*`` or ``?``, which a glob cannot take literally.
    """
    if "*" in pattern or "?" in pattern:
        raise invalid(f"LIKE pattern {pattern!r}: '*' and '?' cannot be matched literally here")
    return pattern.replace("%", "*").replace("_", "?")


def runs_filter(clauses: Sequence[Clause], parent_number: Callable[[str], int | None]) -> str:
    """The expbook filter for MLflow comparisons (all of them must hold).

    Args:
        parent_number: the run number of a run id (None: no such run), for
            ``tags.mlflow.parentRunId``.
    """
    return " and ".join(f"({_run_clause(c, parent_number)})" for c in clauses)


def _run_clause(clause: Clause, parent_number: Callable[[str], int | None]) -> str:
    if clause.kind == "metric":
        return _metric(clause)
    if clause.kind == "param":
        return _param(clause)
    if clause.kind == "tag":
        return _tag(clause, parent_number)
    if clause.kind == "attribute":
        return _attribute(clause)
    raise _unsupported(clause, "dataset filters are not supported by expbook")


def _metric(clause: Clause) -> str:
    if clause.op not in ("=", "!=", "<", "<=", ">", ">="):
        raise _unsupported(clause, f"metrics compare with =, !=, <, <=, >, >=, not {clause.op}")
    if not isinstance(clause.value, float):
        raise _unsupported(clause, "metrics compare with numbers")
    return f"{key_field('metrics', clause.key)} {clause.op} {literal(clause.value)}"


def _param(clause: Clause) -> str:
    field = key_field("params", clause.key)
    if clause.op == "IS NULL":
        return f"{field} is null"
    if clause.op == "IS NOT NULL":
        return f"{field} is not null"
    if not isinstance(clause.value, str):
        raise _unsupported(clause, "params compare with 'quoted strings'")
    if clause.op in ("=", "!="):  # the value as stored: a number where its text is one
        return f"{field} {clause.op} {literal(param_value(clause.value))}"
    if clause.op in ("LIKE", "ILIKE"):
        return f"{field} ~ {quote(glob(clause.value))}"
    raise _unsupported(clause, f"params compare with =, !=, LIKE, ILIKE, not {clause.op}")


_COLUMN_TAG_FIELDS = {
    "mlflow.runName": "name",
    "mlflow.source.git.branch": "branch",
    "mlflow.source.git.repoURL": "remote",
}


def _tag(clause: Clause, parent_number: Callable[[str], int | None]) -> str:
    key, op, value = clause.key, clause.op, clause.value
    if key in _COLUMN_TAG_FIELDS:
        return _text_field(clause, _COLUMN_TAG_FIELDS[key])
    if key == "mlflow.parentRunId":
        return _parent(clause, parent_number)
    if key.startswith("mlflow.") or "=" in key:
        raise _unsupported(clause, f"tag {key!r} is kept outside expbook's tags")
    if op == "=" and isinstance(value, str):
        return f"tags has {quote(_tag_text(key, value))}"
    raise _unsupported(clause, "tags compare with = only")


def _tag_text(key: str, value: str) -> str:
    return f"{key}={value}" if value else key


def _parent(clause: Clause, parent_number: Callable[[str], int | None]) -> str:
    if clause.op == "=" and isinstance(clause.value, str):
        number = parent_number(clause.value)
        return NEVER if number is None else f"parent = {number}"
    if clause.op == "IS NULL":
        return "parent is null"
    if clause.op == "IS NOT NULL":
        return "parent is not null"
    raise _unsupported(clause, "tags.mlflow.parentRunId compares with = or IS [NOT] NULL")


def _attribute(clause: Clause) -> str:
    name = _ATTRIBUTE_NAMES.get(clause.key)
    if name in ("start_time", "end_time"):
        if clause.op not in ("=", "!=", "<", "<=", ">", ">=") or not isinstance(
            clause.value, float
        ):
            raise _unsupported(clause, f"{clause.key} compares with a number of milliseconds")
        field = "started" if name == "start_time" else "ended"
        return f"{field} {clause.op} {literal(seconds(clause.value))}"  # type: ignore[arg-type]
    if name == "run_name":
        return _text_field(clause, "name")
    if name == "run_id":
        return _run_id(clause)
    if name == "status":
        return _status(clause)
    if name == "lifecycle_stage":
        return _lifecycle(clause)
    if name in ("user_id", "artifact_uri"):
        raise _unsupported(clause, f"attributes.{name} is not a run field in expbook")
    raise _unsupported(clause, f"unknown attribute {clause.key!r}")


def _text_field(clause: Clause, field: str) -> str:
    op, value = clause.op, clause.value
    if op in ("=", "!=") and isinstance(value, str):
        return f"{field} {op} {quote(value)}"
    if op in ("LIKE", "ILIKE") and isinstance(value, str):
        return f"{field} ~ {quote(glob(value))}"
    if op in ("IN", "NOT IN"):
        listed = ", ".join(quote(v) for v in value)
        return f"{field} {'in' if op == 'IN' else 'not in'} ({listed})"
    if op == "IS NULL":
        return f"{field} is null"
    if op == "IS NOT NULL":
        return f"{field} is not null"
    raise _unsupported(clause, f"{clause.key} compares with text")


_HEX32 = re.compile(r"[0-9a-f]{32}")


def _run_id(clause: Clause) -> str:
    values = clause.value if clause.op in ("IN", "NOT IN") else (clause.value,)
    if clause.op not in ("=", "!=", "IN", "NOT IN") or not all(isinstance(v, str) for v in values):
        raise _unsupported(clause, "run_id compares with =, !=, IN, NOT IN and 'text'")
    ids = [v for v in values if _HEX32.fullmatch(v)]  # expbook's id = is a prefix match
    either = " or ".join(f"id = {quote(v)}" for v in ids) or NEVER
    return either if clause.op in ("=", "IN") else f"not ({either})"


def _status(clause: Clause) -> str:
    values = clause.value if clause.op in ("IN", "NOT IN") else (clause.value,)
    if clause.op not in ("=", "!=", "IN", "NOT IN") or not all(isinstance(v, str) for v in values):
        raise _unsupported(clause, "status compares with =, !=, IN, NOT IN and 'text'")
    statuses: set[RunStatus] = set()
    for value in values:
        status = STATUS_FROM_MLFLOW.get(value.upper())
        if status is None:
            known = ", ".join(STATUS_FROM_MLFLOW)
            raise _unsupported(clause, f"unknown status {value!r} (one of {known})")
        statuses |= _expbook_statuses(status)
    listed = ", ".join(quote(s.value) for s in sorted(statuses))
    return f"status {'in' if clause.op in ('=', 'IN') else 'not in'} ({listed})"


def _expbook_statuses(status: RunStatus) -> set[RunStatus]:
    """The expbook statuses MLflow shows as this one's MLflow status."""
    from expbook.server.mlflow_records import STATUS_TO_MLFLOW

    shown = STATUS_TO_MLFLOW[status]
    return {s for s, name in STATUS_TO_MLFLOW.items() if name == shown}


def _lifecycle(clause: Clause) -> str:
    values = clause.value if clause.op in ("IN", "NOT IN") else (clause.value,)
    if clause.op not in ("=", "!=", "IN", "NOT IN"):
        raise _unsupported(clause, "lifecycle_stage compares with =, !=, IN, NOT IN")
    active = "active" in [str(v).lower() for v in values]
    matches = active if clause.op in ("=", "IN") else not active
    return "number > 0" if matches else NEVER  # every run is active: deleting one is for good


def _unsupported(clause: Clause, why: str) -> Exception:
    return invalid(f"Invalid filter clause {clause.text!r}: {why} (see docs/mlflow.md)")


# --- order_by -----------------------------------------------------------------------------------


def runs_sort(order_by: Sequence[str]) -> str | None:
    """The expbook sort expression for MLflow's ``order_by`` (None: newest first, as both
    MLflow and expbook order by default)."""
    keys = []
    for text in order_by:
        words = text.strip()
        descending = False
        match = re.search(r"\s+(asc|desc)$", words, re.IGNORECASE)
        if match:
            descending = match.group(1).lower() == "desc"
            words = words[: match.start()]
        parser = _Parser(words)
        try:
            kind, key = parser.identifier()
        except Exception:
            raise invalid(f"Invalid order_by clause {text!r}") from None
        if parser.tok.kind != "end":
            raise invalid(f"Invalid order_by clause {text!r}: expected ASC or DESC at the end")
        keys.append(("-" if descending else "") + _sort_field(kind, key, text))
    return ", ".join(keys) or None


_SORT_ATTRIBUTES = {"start_time": "started", "end_time": "ended", "run_name": "name",
                    "run_id": "id", "status": "status"}  # fmt: skip


def _sort_field(kind: str, key: str, text: str) -> str:
    if kind == "metric":
        return key_field("metrics", key)
    if kind == "param":
        return key_field("params", key)
    if kind == "attribute":
        field = _SORT_ATTRIBUTES.get(_ATTRIBUTE_NAMES.get(key, ""))
        if field is not None:
            return field
    if kind == "tag" and key == "mlflow.runName":
        return "name"
    raise invalid(
        f"Invalid order_by clause {text!r}: expbook orders runs by metrics, params, "
        "start_time, end_time, run_name, run_id or status"
    )


# --- experiments: evaluated here (a store has few) ----------------------------------------------


def experiment_matches(clauses: Sequence[Clause], experiment: dict[str, Any]) -> bool:
    """Whether an MLflow Experiment (as JSON) passes ``search_experiments``' filter."""
    tags = {t["key"]: t["value"] for t in experiment["tags"]}
    for clause in clauses:
        if clause.kind == "tag":
            value: Any = tags.get(clause.key)
        elif clause.kind == "attribute" and clause.key in (
            "name", "creation_time", "last_update_time", "experiment_id"
        ):  # fmt: skip
            value = experiment[clause.key]
        else:
            raise invalid(
                f"Invalid filter clause {clause.text!r}: experiments filter on name, "
                "creation_time, last_update_time and tags"
            )
        if not matches(value, clause):
            return False
    return True


def matches(value: Any, clause: Clause) -> bool:
    """Whether a value (None: missing) passes one comparison, as MLflow compares."""
    op, wanted = clause.op, clause.value
    if op == "IS NULL":
        return value is None
    if op == "IS NOT NULL":
        return value is not None
    if value is None:
        return False
    if op in ("IN", "NOT IN"):
        return (str(value) in wanted) == (op == "IN")
    if op in ("LIKE", "ILIKE"):
        pattern = "".join(
            ".*" if c == "%" else "." if c == "_" else re.escape(c) for c in str(wanted)
        )
        flags = re.IGNORECASE | re.DOTALL if op == "ILIKE" else re.DOTALL
        return re.fullmatch(pattern, str(value), flags) is not None
    if isinstance(value, int | float) and not isinstance(wanted, float):
        raise invalid(f"Invalid filter clause {clause.text!r}: compare with a number")
    if isinstance(value, str):
        wanted = str(wanted) if not isinstance(wanted, float) else _number_text(wanted)
    return {
        "=": value == wanted, "!=": value != wanted, "<": value < wanted,
        "<=": value <= wanted, ">": value > wanted, ">=": value >= wanted,
    }[op]  # fmt: skip


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def experiments_sort(order_by: Sequence[str]) -> Callable[[list[dict[str, Any]]], None]:
    """Sorts experiments in place by MLflow's ``order_by`` (default: newest first)."""
    keys: list[tuple[str, bool]] = []
    for text in order_by:
        match = re.fullmatch(r"\s*(?:attributes?\.)?(\w+)(?:\s+(asc|desc))?\s*", text, re.I)
        field = match.group(1) if match else None
        if field not in ("name", "experiment_id", "creation_time", "last_update_time"):
            raise invalid(
                f"Invalid order_by clause {text!r}: experiments order by name, experiment_id, "
                "creation_time or last_update_time"
            )
        assert match is not None
        keys.append((field, (match.group(2) or "asc").lower() == "desc"))
    if not keys:
        keys = [("creation_time", True), ("experiment_id", False)]

    def value(experiment: dict[str, Any], field: str) -> Any:
        return int(experiment[field]) if field == "experiment_id" else experiment[field]

    def sort(experiments: list[dict[str, Any]]) -> None:
        for field, descending in reversed(keys):  # stable sorts, the last key first
            experiments.sort(key=lambda e, f=field: value(e, f), reverse=descending)

    return sort


# --- paging -------------------------------------------------------------------------------------


def read_page_token(token: str | None) -> int:
    """The offset a page token stands for (0 without one)."""
    if not token:
        return 0
    try:
        data = json.loads(base64.b64decode(token, validate=True))
        offset = data["offset"]
    except (ValueError, KeyError, TypeError):
        raise invalid(f"Invalid page token {token!r}") from None
    if not isinstance(offset, int) or offset < 0:
        raise invalid(f"Invalid page token {token!r}")
    return offset


def page_token(offset: int) -> str:
    return base64.b64encode(json.dumps({"offset": offset}).encode()).decode()


def max_results(value: int | None, default: int) -> int:
    if value is None:
        return default
    if not 1 <= value <= MAX_RESULTS:
        raise invalid(f"max_results {value} is out of range: give 1 to {MAX_RESULTS}")
    return value
