"""``expbook export``: the runs table or every metric point, as CSV, JSON or Parquet."""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import json
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from expbook.cli.common import check_experiments, open_cli_store, selection_query
from expbook.cli.output import to_json
from expbook.errors import ExpbookError
from expbook.model import RunRecord
from expbook.store.base import Store

POINT_COLUMNS = ("run_number", "run_id", "run_name", "key", "step", "epoch", "value", "time")


def export(
    *,
    experiments: tuple[str, ...],
    statuses: tuple[str, ...],
    where: str | None,
    sort: str | None,
    fmt: str,
    points: bool,
    keys: tuple[str, ...],
    limit: int,
    out: str | None,
    store: str | None,
) -> None:
    if fmt == "parquet" and not out:
        raise ExpbookError("parquet is binary: pass --out FILE")
    if keys and not points:
        raise ExpbookError("--key selects metric keys for --metrics exports; add --metrics")
    query = selection_query(
        experiments=experiments, statuses=statuses, where=where, sort=sort, limit=limit
    )
    with open_cli_store(store) as opened:
        check_experiments(opened, experiments)
        runs = opened.find_runs(query)
        if points:
            _export_points(opened, runs, keys, fmt, out)
        else:
            _export_runs(runs, fmt, out)
    if out:
        what = "metric points" if points else "runs"
        print(f"exported {what} of {len(runs)} runs to {out}", file=sys.stderr)


def run_rows(runs: Sequence[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """The flat runs table (``RunRecord.to_row``): columns in a stable order, times in ISO 8601
    (UTC), tags joined with ``;``."""
    rows = [run.to_row() for run in runs]
    per_key = ("params.", "metrics.", "min(metrics.", "max(metrics.")
    columns = [c for c in rows[0] if not c.startswith(per_key)] if rows else []
    params = sorted({c for row in rows for c in row if c.startswith("params.")})
    metrics = sorted(
        {c[len("metrics.") :] for row in rows for c in row if c.startswith("metrics.")}
    )
    columns += params
    for key in metrics:
        columns += [f"metrics.{key}", f"min(metrics.{key})", f"max(metrics.{key})"]
    for row in rows:
        row.update(started_at=_iso(row["started_at"]), ended_at=_iso(row["ended_at"]))
        row["tags"] = ";".join(row["tags"])
    return columns, rows


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).isoformat()


@contextlib.contextmanager
def _output(out: str | None, binary: bool = False) -> Iterator[IO[Any]]:
    if out is None:
        yield sys.stdout.buffer if binary else sys.stdout
        return
    mode = "wb" if binary else "w"
    try:
        handle = open(out, mode, **({} if binary else {"newline": "", "encoding": "utf-8"}))  # noqa: SIM115
    except OSError as exc:
        raise ExpbookError(f"cannot write {out}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _export_runs(runs: Sequence[RunRecord], fmt: str, out: str | None) -> None:
    if fmt == "json":
        with _output(out) as handle:
            handle.write(to_json([run.to_dict() for run in runs]) + "\n")
        return
    columns, rows = run_rows(runs)
    if fmt == "csv":
        with _output(out) as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
        return
    pyarrow = _pyarrow()
    data = {column: _parquet_column([row.get(column) for row in rows]) for column in columns}
    _write_parquet(pyarrow, pyarrow.table(data), out)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | dict):
        return json.dumps(value)
    return value


def _parquet_column(values: list[Any]) -> list[Any]:
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


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ModuleNotFoundError:
        raise ExpbookError(
            "parquet export needs pyarrow: pip install 'expbook[parquet]'"
        ) from None
    return pyarrow


def _write_parquet(pyarrow: Any, table: Any, out: str | None) -> None:
    try:
        pyarrow.parquet.write_table(table, out)
    except OSError as exc:
        raise ExpbookError(f"cannot write {out}: {exc}") from None


def _export_points(
    store: Store, runs: Sequence[RunRecord], keys: Sequence[str], fmt: str, out: str | None
) -> None:
    def series() -> Iterator[tuple[RunRecord, Any]]:
        by_id = {run.id: run for run in runs}
        for points in store.iter_series(list(by_id), list(keys) or None):
            yield by_id[points.run_id], points

    if fmt == "parquet":
        _points_parquet(series(), out)
        return
    with _output(out) as handle:
        if fmt == "csv":
            writer = csv.writer(handle)
            writer.writerow(POINT_COLUMNS)
            for run, points in series():
                for point in points:
                    writer.writerow(
                        (run.number, run.id, run.name, points.key, point.step,
                         "" if point.epoch is None else point.epoch, point.value, point.time)
                    )  # fmt: skip
            return
        handle.write("[")
        first = True
        for run, points in series():
            for point in points:
                record = dict(zip(POINT_COLUMNS, (run.number, run.id, run.name, points.key,
                                                  point.step, point.epoch, point.value,
                                                  point.time), strict=True))  # fmt: skip
                handle.write(("\n" if first else ",\n") + to_json(record, indent=None))
                first = False
        handle.write("\n]\n")


def _points_parquet(series: Iterator[tuple[RunRecord, Any]], out: str | None) -> None:
    pyarrow = _pyarrow()
    tables = []
    for run, points in series:
        n = len(points)
        tables.append(
            pyarrow.table(
                {
                    "run_number": pyarrow.array([run.number] * n, pyarrow.int64()),
                    "run_id": pyarrow.array([run.id] * n, pyarrow.string()),
                    "run_name": pyarrow.array([run.name] * n, pyarrow.string()),
                    "key": pyarrow.array([points.key] * n, pyarrow.string()),
                    "step": pyarrow.array(points.steps, pyarrow.int64()),
                    "epoch": pyarrow.array(points.epochs, pyarrow.float64(), from_pandas=True),
                    "value": pyarrow.array(points.values, pyarrow.float64()),
                    "time": pyarrow.array(points.times, pyarrow.float64()),
                }
            )
        )
    if tables:
        table = pyarrow.concat_tables(tables)
    else:
        table = pyarrow.table({c: pyarrow.array([], pyarrow.string()) for c in POINT_COLUMNS})
    _write_parquet(pyarrow, table, out)
