"""Import speed: ``expbook import tensorboard`` on a 100,000-point event file and
``expbook import mlflow`` on a SQLite-backed MLflow run with 10,000-point histories.

Each import is timed in-process (reading the source, comparing with the store, writing), then a
second time on the same store (nothing new: the idempotency check alone). Prints points/s.

    .venv/bin/python benchmarks/bench_import.py [--points 100000] [--mlflow-points 10000]
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from expbook.importers import ImportReport, import_runs
from expbook.store import open_store


def write_event_file(directory: Path, points: int, keys: int = 4) -> None:
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(directory), max_queue=10_000, flush_secs=3600)
    t0 = 1_700_000_000.0
    for step in range(points // keys):
        for k in range(keys):
            writer.add_scalar(f"train/m{k}", math.sin(step * 0.001 + k), step, walltime=t0 + step)
    writer.close()


def write_mlflow_run(uri: str, points: int, keys: int = 3) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.create_experiment("bench")
    run = client.create_run(experiment, start_time=1_700_000_000_000)
    metrics = [
        Metric(f"m{k}", math.cos(step * 0.001 + k), 1_700_000_000_000 + step, step)
        for k in range(keys)
        for step in range(points)
    ]
    for start in range(0, len(metrics), 1000):  # MLflow's batch limit
        client.log_batch(run.info.run_id, metrics=metrics[start : start + 1000])
    client.set_terminated(run.info.run_id, "FINISHED", end_time=1_700_000_100_000)


def timed_import(store_path: Path, read) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Seconds to read the source, seconds to compare and write, points written."""
    start = time.perf_counter()
    runs = read()
    read_s = time.perf_counter() - start
    with open_store(store_path) as store:
        start = time.perf_counter()
        report = import_runs(store, runs, ImportReport(source="bench"))
        write_s = time.perf_counter() - start
    return read_s, write_s, report.total("points")


def show(name: str, total: int, first: tuple[float, float, int], again: tuple[float, float, int]):  # type: ignore[no-untyped-def]
    read_s, write_s, written = first
    print(f"{name}: {total:,} points")
    print(
        f"  first import:  {read_s + write_s:6.2f} s = {total / (read_s + write_s):,.0f} points/s "
        f"(reading {read_s:.2f} s, storing {write_s:.2f} s; {written:,} points written)"
    )
    read_s, write_s, written = again
    print(
        f"  import again:  {read_s + write_s:6.2f} s (reading {read_s:.2f} s, comparing "
        f"{write_s:.2f} s; {written:,} points written)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--mlflow-points", type=int, default=10_000)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from expbook.importers.tensorboard import read_logdir

        write_event_file(root / "logs" / "run", args.points)
        store = root / "tb.db"
        first = timed_import(store, lambda: read_logdir(root / "logs"))
        again = timed_import(store, lambda: read_logdir(root / "logs"))
        show("tensorboard (4 tags, one event file)", args.points, first, again)

        from expbook.importers.mlflow import read_tracking

        uri = f"sqlite:///{root / 'mlflow.db'}"
        write_mlflow_run(uri, args.mlflow_points)
        store = root / "mlflow.db.expbook"
        first = timed_import(store, lambda: read_tracking(uri).runs)
        again = timed_import(store, lambda: read_tracking(uri).runs)
        show(
            f"mlflow sqlite (3 keys x {args.mlflow_points:,})",
            3 * args.mlflow_points,
            first,
            again,
        )


if __name__ == "__main__":
    main()
