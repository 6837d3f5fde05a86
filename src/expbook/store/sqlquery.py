"""Compile filter and sort ASTs (``expbook.query``) to SQLAlchemy expressions over ``runs``.

Every literal becomes a bound parameter. Predicates on params and metrics are ``EXISTS``
subqueries, so a run without the key simply does not match (and ``not`` means what it says:
``not params.opt = 'sgd'`` matches runs without ``opt`` too).

SQLite and PostgreSQL must agree. The parser already refuses comparisons whose meaning differs
(text against numbers, ``~`` on numbers); here, text is ordered by bytes on both (SQLite's
default; ``COLLATE "C"`` on PostgreSQL, whose default follows the locale).
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from expbook.query import ATTRIBUTES, Compare, Field, HasTag, In, IsNull, Node, SortKey
from expbook.query import And as AndNode
from expbook.query import Not as NotNode
from expbook.query import Or as OrNode
from expbook.store.base import STALE_HEARTBEATS
from expbook.store.schema import experiments, metric_summaries, params, runs, tags

_METRIC_COLUMNS = {
    "last": metric_summaries.c.value,
    "min": metric_summaries.c.min_value,
    "max": metric_summaries.c.max_value,
    "count": metric_summaries.c.count,
}
_ORDERING = ("<", "<=", ">", ">=")


def status_expr(now: float) -> ColumnElement[str]:
    """The reported status: ``running`` with a stale heartbeat reads as ``crashed``."""
    stale = runs.c.heartbeat_at + runs.c.heartbeat_interval * STALE_HEARTBEATS < sa.literal(now)
    return sa.case((sa.and_(runs.c.status == "running", stale), "crashed"), else_=runs.c.status)


def duration_expr(now: float) -> ColumnElement[float]:
    end = sa.case(
        (runs.c.ended_at.is_not(None), runs.c.ended_at),
        (status_expr(now) == "crashed", runs.c.heartbeat_at),
        else_=sa.literal(now),
    )
    return end - runs.c.started_at


def _glob(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


class SqlCompiler:
    """Turns filter and sort ASTs into SQL for one dialect, at one moment ``now``."""

    def __init__(self, now: float, dialect: str) -> None:
        self.now = now
        self.dialect = dialect

    # --- filters --------------------------------------------------------------------------------

    def filter(self, node: Node | None) -> ColumnElement[bool]:
        """A boolean SQL expression over ``runs`` for a parsed filter (true for None)."""
        if node is None:
            return sa.true()
        if isinstance(node, Compare):
            return self._field(node.field, node.op, node.value)
        if isinstance(node, In):
            either = sa.or_(*(self._field(node.field, "=", v) for v in node.values))
            return sa.not_(either) if node.negated else either
        if isinstance(node, IsNull):
            return self._field(node.field, "!=" if node.negated else "=", None)
        if isinstance(node, HasTag):
            return (
                sa.select(sa.literal(1))
                .where(tags.c.run_id == runs.c.id, tags.c.tag == node.tag)
                .exists()
            )
        if isinstance(node, AndNode):
            return sa.and_(*(self.filter(item) for item in node.items))
        if isinstance(node, OrNode):
            return sa.or_(*(self.filter(item) for item in node.items))
        if isinstance(node, NotNode):
            return sa.not_(self.filter(node.item))
        raise TypeError(f"unknown filter node {node!r}")

    def _field(self, field: Field, op: str, value: Any) -> ColumnElement[bool]:
        if field.scope == "param":
            return self._param(field.name, op, value)
        if field.scope == "metric":
            return self._metric(field, op, value)
        return self._attribute(field.name, op, value)

    def _param(self, key: str, op: str, value: Any) -> ColumnElement[bool]:
        query = sa.select(sa.literal(1)).where(params.c.run_id == runs.c.id, params.c.key == key)
        if value is None:  # params.x = null: the run has no such param
            return sa.not_(query.exists()) if op == "=" else query.exists()
        if _is_nan(value):  # NaN is stored as the JSON text NaN
            nan = params.c.value_json == "NaN"
            return query.where(nan if op == "=" else sa.not_(nan)).exists()
        if isinstance(value, str):
            column, text = params.c.value_text, True
        else:
            column, text = params.c.value_num, False
            value = float(value)
        if op == "!=":  # a param of another type is "not equal" too
            condition = sa.not_(sa.func.coalesce(column == value, False))
        else:
            condition = self._compare(column, op, value, text=text)
        return query.where(condition).exists()

    def _metric(self, field: Field, op: str, value: Any) -> ColumnElement[bool]:
        query = sa.select(sa.literal(1)).where(
            metric_summaries.c.run_id == runs.c.id, metric_summaries.c.key == field.name
        )
        if value is None:
            return sa.not_(query.exists()) if op == "=" else query.exists()
        column = _METRIC_COLUMNS[field.aggregate]
        if _is_nan(value):  # NaN is stored as NULL in summaries
            return query.where(column.is_(None) if op == "=" else column.is_not(None)).exists()
        return query.where(self._compare(column, op, value, text=False)).exists()

    def _attribute(self, name: str, op: str, value: Any) -> ColumnElement[bool]:
        column = self.attribute_column(name)
        text = ATTRIBUTES[name] == "text"
        if name == "commit" and op == "=" and isinstance(value, str):
            return column.like(_glob(value) + "%", escape="\\")  # commits match by prefix
        if name == "id" and op == "=" and isinstance(value, str):
            return column.like(_glob(value.lower()) + "%", escape="\\")
        if op == "!=" and value is not None:
            return sa.or_(column.is_(None), column != value)
        return self._compare(column, op, value, text=text)

    def _compare(
        self, column: ColumnElement[Any], op: str, value: Any, *, text: bool
    ) -> ColumnElement[bool]:
        if op == "~":
            return column.ilike(_glob(value), escape="\\")
        if op == "!~":
            return sa.not_(column.ilike(_glob(value), escape="\\"))
        if value is None:
            return column.is_(None) if op == "=" else column.is_not(None)
        if text and op in _ORDERING:
            column = self._bytewise(column)
        return {
            "=": lambda: column == value,
            "!=": lambda: column != value,
            "<": lambda: column < value,
            "<=": lambda: column <= value,
            ">": lambda: column > value,
            ">=": lambda: column >= value,
        }[op]()

    def _bytewise(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return column.collate("C") if self.dialect == "postgresql" else column

    def attribute_column(self, name: str) -> ColumnElement[Any]:
        if name == "experiment":
            experiment = experiments.alias("filter_experiment")
            return (
                sa.select(experiment.c.name)
                .where(experiment.c.id == runs.c.experiment_id)
                .scalar_subquery()
            )
        if name == "parent":
            parent = runs.alias("filter_parent")
            return (
                sa.select(parent.c.number).where(parent.c.id == runs.c.parent_id).scalar_subquery()
            )
        if name == "status":
            return status_expr(self.now)
        if name == "duration":
            return duration_expr(self.now)
        column = {
            "number": "number", "id": "uuid", "name": "name", "kind": "kind",
            "started": "started_at", "ended": "ended_at", "commit": "git_commit",
            "branch": "git_branch", "remote": "git_remote", "dirty": "git_dirty",
            "host": "hostname", "cwd": "cwd", "exit_code": "exit_code",
        }[name]  # fmt: skip
        return runs.c[column]

    # --- sorting --------------------------------------------------------------------------------

    def sort_columns(self, field: Field) -> list[ColumnElement[Any]]:
        """The SQL expressions that order runs by ``field`` (params: numbers, then text)."""
        if field.scope == "param":
            where = (params.c.run_id == runs.c.id, params.c.key == field.name)
            return [
                sa.select(params.c.value_num).where(*where).scalar_subquery(),
                self._bytewise(sa.select(params.c.value_text).where(*where).scalar_subquery()),
            ]
        if field.scope == "metric":
            column = _METRIC_COLUMNS[field.aggregate]
            return [
                sa.select(column)
                .where(
                    metric_summaries.c.run_id == runs.c.id, metric_summaries.c.key == field.name
                )
                .scalar_subquery()
            ]
        column = self.attribute_column(field.name)
        return [self._bytewise(column) if ATTRIBUTES[field.name] == "text" else column]

    def order_by(self, keys: list[SortKey]) -> list[ColumnElement[Any]]:
        """ORDER BY clauses; missing values sort last whatever the direction; ties: newest."""
        order: list[ColumnElement[Any]] = []
        for key in keys:
            for column in self.sort_columns(key.field):
                ordered = column.desc() if key.descending else column.asc()
                order.append(ordered.nulls_last())
        order.append(runs.c.number.desc())
        return order
