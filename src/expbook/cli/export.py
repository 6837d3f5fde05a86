"""``expbook export``: the runs table or every metric point, as CSV, JSON or Parquet."""

from __future__ import annotations

import contextlib
import csv
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from expbook.cli.common import check_experiments, open_cli_store, selection_query
from expbook.cli.output import to_json
from expbook.errors import ExpbookError
from expbook.exports import parquet_table, pyarrow_module, run_rows, write_csv
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
            write_csv(handle, columns, rows)
        return
    _write_parquet(pyarrow_module(), parquet_table(columns, rows), out)


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
    pyarrow = pyarrow_module()
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
