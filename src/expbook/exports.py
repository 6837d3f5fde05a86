"""The flat runs table as CSV or Parquet: what ``expbook export`` writes and what the web UI's
"Download CSV / Parquet" links (``GET /api/export/runs``) send, from the same code."""

from __future__ import annotations

import csv
import datetime as _dt
import json
from collections.abc import Sequence
from typing import IO, Any

from expbook.errors import ExpbookError
from expbook.model import RunRecord

PARQUET_HINT = "parquet export needs pyarrow: pip install 'expbook[parquet]'"
METRIC_VALUES = ("last", "min", "max", "best")


class MissingDependencyError(ExpbookError):
    """An optional package a feature needs is not installed (the message says how to get it)."""


def run_rows(
    runs: Sequence[RunRecord],
    *,
    params: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    value: str | None = None,
) -> tuple[list[str], list[dict[str, Any]]]:
    """The flat runs table (``RunRecord.to_row``): columns in a stable order, times in ISO 8601
    (UTC), tags joined with ``;``.

    By default every param (sorted) and, per metric (sorted), ``metrics.KEY`` (the latest
    value), ``min(metrics.KEY)`` and ``max(metrics.KEY)``. ``params`` and ``metrics`` choose
    the keys and their order instead; ``value`` keeps one column per metric: ``last``
    (``metrics.KEY``), ``min``, ``max``, or ``best`` (min for an error such as ``loss``, else
    max; :func:`expbook.report.stats.resolve_value`), named as the column it is.
    """
    from expbook.report.stats import resolve_value

    if value is not None and value not in METRIC_VALUES:
        raise ExpbookError(f"unknown metric value {value!r}: one of {', '.join(METRIC_VALUES)}")
    rows = [run.to_row() for run in runs]
    if not rows:
        return [], []
    per_key = ("params.", "metrics.", "min(metrics.", "max(metrics.")
    columns = [c for c in rows[0] if not c.startswith(per_key)]
    if params is None:
        params = sorted({c[7:] for row in rows for c in row if c.startswith("params.")})
    if metrics is None:
        metrics = sorted({c[8:] for row in rows for c in row if c.startswith("metrics.")})
    columns += [f"params.{key}" for key in params]
    for key in metrics:
        which = resolve_value(key, value)
        if which in (None, "last"):
            columns.append(f"metrics.{key}")
        if which in (None, "min"):
            columns.append(f"min(metrics.{key})")
        if which in (None, "max"):
            columns.append(f"max(metrics.{key})")
    for row in rows:
        row.update(started_at=_iso(row["started_at"]), ended_at=_iso(row["ended_at"]))
        row["tags"] = ";".join(row["tags"])
    return columns, rows


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).isoformat()


def write_csv(handle: IO[str], columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """The table as CSV (lists and objects as JSON text); keys of ``rows`` not in ``columns``
    are left out."""
    writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


def parquet_table(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Any:
    """The table as a ``pyarrow.Table`` (see :func:`parquet_column` for the types).

    Raises:
        MissingDependencyError: pyarrow is not installed.
    """
    pyarrow = pyarrow_module()
    data = {column: parquet_column([row.get(column) for row in rows]) for column in columns}
    return pyarrow.table(data)


def parquet_column(values: list[Any]) -> list[Any]:
    """Parquet columns have one type: ints mixed with floats become floats; any other mix
    (a param that is 0.001 in one run and 'auto' in another), and lists, become JSON text."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int, float} and len(kinds) == 2:
        return [None if v is None else float(v) for v in values]
    if len(kinds) > 1 or kinds & {list, dict}:
        return [
            None if v is None else (v if isinstance(v, str) else json.dumps(v)) for v in values
        ]
    return values


def pyarrow_module() -> Any:
    """``pyarrow`` with its ``parquet`` module imported.

    Raises:
        MissingDependencyError: pyarrow is not installed; the message says how to install it.
    """
    try:
        import pyarrow
        import pyarrow.parquet
    except ModuleNotFoundError:
        raise MissingDependencyError(PARQUET_HINT) from None
    return pyarrow
