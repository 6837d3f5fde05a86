"""Compile filter and sort ASTs (``expbook.query``) to SQLAlchemy expressions over ``runs``.

Every literal becomes a bound parameter. Predicates on params and metrics are ``EXISTS``
subqueries, so a run without the key simply does not match (and ``not`` means what it says:
``not params.opt = 'sgd'`` matches runs without ``opt`` too).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from expbook.query import And as AndNode
from expbook.query import Compare, Field, HasTag, In, IsNull, Node, SortKey
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


def _attr_column(name: str, now: float) -> ColumnElement[Any]:
    parent = runs.alias("filter_parent")
    experiment = experiments.alias("filter_experiment")
    columns = {
        "number": lambda: runs.c.number,
        "id": lambda: runs.c.uuid,
        "name": lambda: runs.c.name,
        "status": lambda: status_expr(now),
        "kind": lambda: runs.c.kind,
        "experiment": lambda: (
            sa.select(experiment.c.name)
            .where(experiment.c.id == runs.c.experiment_id)
            .scalar_subquery()
        ),
        "parent": lambda: (
            sa.select(parent.c.number).where(parent.c.id == runs.c.parent_id).scalar_subquery()
        ),
        "duration": lambda: duration_expr(now),
        "started": lambda: runs.c.started_at,
        "ended": lambda: runs.c.ended_at,
        "commit": lambda: runs.c.git_commit,
        "branch": lambda: runs.c.git_branch,
        "remote": lambda: runs.c.git_remote,
        "dirty": lambda: runs.c.git_dirty,
        "host": lambda: runs.c.hostname,
        "cwd": lambda: runs.c.cwd,
        "exit_code": lambda: runs.c.exit_code,
    }
    return columns[name]()


def _glob(pattern: str) -> str:
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _compare(column: ColumnElement[Any], op: str, value: Any) -> ColumnElement[bool]:
    if op == "~":
        return column.ilike(_glob(value), escape="\\")
    if op == "!~":
        return sa.not_(column.ilike(_glob(value), escape="\\"))
    if value is None:
        return column.is_(None) if op == "=" else column.is_not(None)
    return {
        "=": lambda: column == value,
        "!=": lambda: column != value,
        "<": lambda: column < value,
        "<=": lambda: column <= value,
        ">": lambda: column > value,
        ">=": lambda: column >= value,
    }[op]()


def _param_exists(key: str, condition: ColumnElement[bool] | None) -> ColumnElement[bool]:
    query = sa.select(sa.literal(1)).where(params.c.run_id == runs.c.id, params.c.key == key)
    if condition is not None:
        query = query.where(condition)
    return query.exists()


def _metric_exists(field: Field, condition: ColumnElement[bool] | None) -> ColumnElement[bool]:
    query = sa.select(sa.literal(1)).where(
        metric_summaries.c.run_id == runs.c.id, metric_summaries.c.key == field.name
    )
    if condition is not None:
        query = query.where(condition)
    return query.exists()


def _param_condition(op: str, value: Any) -> ColumnElement[bool]:
    if isinstance(value, str):
        column = params.c.value_text
    else:
        column = params.c.value_num
        value = float(value) if isinstance(value, bool | int | float) else value
    if op == "!=":
        return sa.not_(sa.func.coalesce(column == value, False))
    return _compare(column, op, value)


def _field_compare(field: Field, op: str, value: Any, now: float) -> ColumnElement[bool]:
    if field.scope == "param":
        if value is None:  # params.x = null: the run has no such param
            exists = _param_exists(field.name, None)
            return sa.not_(exists) if op == "=" else exists
        return _param_exists(field.name, _param_condition(op, value))
    if field.scope == "metric":
        if value is None:
            exists = _metric_exists(field, None)
            return sa.not_(exists) if op == "=" else exists
        return _metric_exists(field, _compare(_METRIC_COLUMNS[field.aggregate], op, value))
    column = _attr_column(field.name, now)
    if field.name == "commit" and op == "=" and isinstance(value, str):
        return column.like(_glob(value) + "%", escape="\\")  # commits match by prefix
    if field.name == "id" and op == "=" and isinstance(value, str):
        return column.like(_glob(value.lower()) + "%", escape="\\")
    if op == "!=" and value is not None:
        return sa.or_(column.is_(None), column != value)
    return _compare(column, op, value)


def compile_filter(node: Node | None, now: float) -> ColumnElement[bool]:
    """A boolean SQL expression over ``runs`` for a parsed filter (true for None)."""
    if node is None:
        return sa.true()
    if isinstance(node, Compare):
        return _field_compare(node.field, node.op, node.value, now)
    if isinstance(node, In):
        options = [_field_compare(node.field, "=", v, now) for v in node.values]
        either = sa.or_(*options)
        return sa.not_(either) if node.negated else either
    if isinstance(node, IsNull):
        return _field_compare(node.field, "!=" if node.negated else "=", None, now)
    if isinstance(node, HasTag):
        return (
            sa.select(sa.literal(1))
            .where(tags.c.run_id == runs.c.id, tags.c.tag == node.tag)
            .exists()
        )
    if isinstance(node, AndNode):
        return sa.and_(*(compile_filter(item, now) for item in node.items))
    if isinstance(node, OrNode):
        return sa.or_(*(compile_filter(item, now) for item in node.items))
    if isinstance(node, NotNode):
        return sa.not_(compile_filter(node.item, now))
    raise TypeError(f"unknown filter node {node!r}")


def sort_columns(field: Field, now: float) -> list[ColumnElement[Any]]:
    """The SQL expressions that order runs by ``field`` (params: numbers, then text)."""
    if field.scope == "param":
        where = (params.c.run_id == runs.c.id, params.c.key == field.name)
        return [
            sa.select(params.c.value_num).where(*where).scalar_subquery(),
            sa.select(params.c.value_text).where(*where).scalar_subquery(),
        ]
    if field.scope == "metric":
        column = _METRIC_COLUMNS[field.aggregate]
        return [
            sa.select(column)
            .where(metric_summaries.c.run_id == runs.c.id, metric_summaries.c.key == field.name)
            .scalar_subquery()
        ]
    return [_attr_column(field.name, now)]


def compile_sort(keys: list[SortKey], now: float) -> list[ColumnElement[Any]]:
    """ORDER BY clauses; missing values sort last whatever the direction; ties by number."""
    order: list[ColumnElement[Any]] = []
    for key in keys:
        for column in sort_columns(key.field, now):
            ordered = column.desc() if key.descending else column.asc()
            order.append(ordered.nulls_last())
    order.append(runs.c.number.desc())
    return order
