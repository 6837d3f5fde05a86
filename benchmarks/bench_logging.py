"""Logging benchmark: expbook against MLflow and raw SQLite, side by side, in one process tree.

    python benchmarks/bench_logging.py            # full run (a few minutes)
    python benchmarks/bench_logging.py --quick    # fewer repeats, for a smoke test

Every measurement runs in a fresh child interpreter (``--child NAME``) so imports, caches and
threads of one do not colour another. The workload is the issue's: 4 scalars per step, 20,000
steps, into a SQLite file on local disk. MLflow's synchronous calls take milliseconds each, so
they log fewer steps (``MLFLOW_SYNC_STEPS``) and are reported per scalar like everything else.

Measurements (median of repeats):
- hot path: seconds spent inside the logging call, per scalar (expbook ``run.log``; MLflow
  ``log_metric``, ``log_metrics``, ``log_metrics(synchronous=False)``), next to a plain
  ``list.append`` per scalar;
- end to end: scalars per second from the first logging call until the run has ended and every
  point is in SQLite (expbook ``finish``; MLflow ``end_run`` after async logging), next to a
  bare ``sqlite3.executemany`` of the same rows;
- cold import: ``import expbook`` / ``import mlflow`` in a fresh interpreter, minus an empty one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import compile_package

STEPS = 20_000
KEYS = ("train/loss", "valid/loss", "valid/acc", "lr")
SCALARS = STEPS * len(KEYS)
MLFLOW_SYNC_STEPS = 100
MLFLOW_ASYNC_STEPS = 2_000

TARGETS = {
    "hot_us": 1.0,  # expbook run.log per scalar, microseconds
    "e2e_per_s": 300_000,  # expbook scalars/s into SQLite, final flush included
    "import_ms": 100.0,  # cold import expbook
    "vs_mlflow_sync": 2000.0,  # times cheaper per scalar than log_metric
    "vs_mlflow_async": 20.0,  # times cheaper per scalar than log_metrics(synchronous=False)
}


def values(step: int) -> dict[str, float]:
    return {
        "train/loss": 1.0 / (step + 1),
        "valid/loss": 1.1 / (step + 1),
        "valid/acc": step / STEPS,
        "lr": 1e-3,
    }


# --- children: each prints one JSON object ----------------------------------------------------


def child_list_append(tmp: Path) -> dict[str, float]:
    rows = [values(s) for s in range(STEPS)]
    sink: list[float] = []
    start = time.perf_counter()
    for row in rows:
        for value in row.values():
            sink.append(value)
    return {"hot_s_per_scalar": (time.perf_counter() - start) / SCALARS}


def child_expbook(tmp: Path) -> dict[str, float]:
    import expbook

    rows = [values(s) for s in range(STEPS)]
    run = expbook.start_run(name="bench", store=tmp / "expbook.db", capture=False)
    run.log(rows[0], step=0)
    run.flush()  # the writer thread is up and the store warm, as after the first epoch
    start = time.perf_counter()
    for step in range(1, STEPS):
        run.log(rows[step], step=step)
    logged = time.perf_counter()
    run.finish()
    done = time.perf_counter()
    scalars = (STEPS - 1) * len(KEYS)
    stored = run.store.run(run.id).metrics["valid/acc"].count
    assert stored == STEPS, f"expected {STEPS} points, found {stored}"
    return {
        "hot_s_per_scalar": (logged - start) / scalars,
        "e2e_scalars_per_s": scalars / (done - start),
    }


def child_sqlite_floor(tmp: Path) -> dict[str, float]:
    import sqlite3

    connection = sqlite3.connect(tmp / "floor.db", isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(
        "CREATE TABLE points (run INTEGER, key TEXT, step INTEGER, value REAL, time REAL)"
    )
    now = time.time()
    rows = [(1, key, s, v, now) for s in range(STEPS) for key, v in values(s).items()]
    start = time.perf_counter()
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", rows)
    connection.execute("COMMIT")
    return {"e2e_scalars_per_s": len(rows) / (time.perf_counter() - start)}


def _mlflow(tmp: Path):  # type: ignore[no-untyped-def]
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    with mlflow.start_run():  # creates the database (migrations): not timed
        mlflow.log_metric("warmup", 1.0, step=0)
    return mlflow


def child_mlflow_log_metric(tmp: Path) -> dict[str, float]:
    mlflow = _mlflow(tmp)
    rows = [values(s) for s in range(MLFLOW_SYNC_STEPS)]
    with mlflow.start_run():
        start = time.perf_counter()
        for step, row in enumerate(rows):
            for key, value in row.items():
                mlflow.log_metric(key, value, step=step)
        elapsed = time.perf_counter() - start
    scalars = MLFLOW_SYNC_STEPS * len(KEYS)
    return {"hot_s_per_scalar": elapsed / scalars, "e2e_scalars_per_s": scalars / elapsed}


def child_mlflow_log_metrics(tmp: Path) -> dict[str, float]:
    mlflow = _mlflow(tmp)
    rows = [values(s) for s in range(MLFLOW_SYNC_STEPS)]
    with mlflow.start_run():
        start = time.perf_counter()
        for step, row in enumerate(rows):
            mlflow.log_metrics(row, step=step)
        elapsed = time.perf_counter() - start
    scalars = MLFLOW_SYNC_STEPS * len(KEYS)
    return {"hot_s_per_scalar": elapsed / scalars, "e2e_scalars_per_s": scalars / elapsed}


def child_mlflow_async(tmp: Path) -> dict[str, float]:
    mlflow = _mlflow(tmp)
    rows = [values(s) for s in range(MLFLOW_ASYNC_STEPS)]
    mlflow.start_run()
    mlflow.log_metrics(rows[0], step=0, synchronous=False)
    start = time.perf_counter()
    for step in range(1, MLFLOW_ASYNC_STEPS):
        mlflow.log_metrics(rows[step], step=step, synchronous=False)
    logged = time.perf_counter()
    mlflow.end_run()  # waits for the async queue
    done = time.perf_counter()
    scalars = (MLFLOW_ASYNC_STEPS - 1) * len(KEYS)
    return {
        "hot_s_per_scalar": (logged - start) / scalars,
        "e2e_scalars_per_s": scalars / (done - start),
    }


def child_import(module: str) -> dict[str, float]:
    start = time.perf_counter()
    __import__(module)
    return {"import_s": time.perf_counter() - start}


CHILDREN = {
    "list_append": child_list_append,
    "expbook": child_expbook,
    "sqlite_floor": child_sqlite_floor,
    "mlflow_log_metric": child_mlflow_log_metric,
    "mlflow_log_metrics": child_mlflow_log_metrics,
    "mlflow_async": child_mlflow_async,
}


# --- parent -------------------------------------------------------------------------------------


def run_child(name: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        result = subprocess.run(
            [sys.executable, __file__, "--child", name, "--tmp", tmp],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    if result.returncode != 0:
        raise SystemExit(f"benchmark child {name!r} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def cold_import_ms(module: str, repeats: int) -> float:
    """Wall time of ``python -c 'import M'`` minus ``python -c 'pass'``, median."""

    def wall(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    wall(f"import {module}")  # warm the OS page cache and .pyc files: "cold" = new interpreter
    empty = statistics.median(wall("pass") for _ in range(repeats))
    full = statistics.median(wall(f"import {module}") for _ in range(repeats))
    return (full - empty) * 1000


def median_of(name: str, repeats: int) -> dict[str, float]:
    samples = [run_child(name) for _ in range(repeats)]
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--tmp")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow anchors")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](Path(args.tmp))))
        return

    compile_package()
    repeats = 3 if args.quick else 7
    has_mlflow = not args.no_mlflow and _importable("mlflow")
    results: dict[str, dict[str, float]] = {}
    for name in ("list_append", "sqlite_floor", "expbook"):
        results[name] = median_of(name, repeats)
    results["import"] = {"expbook_ms": cold_import_ms("expbook", repeats * 2)}
    if has_mlflow:
        mlflow_repeats = max(3, repeats // 2)
        for name in ("mlflow_log_metric", "mlflow_log_metrics", "mlflow_async"):
            results[name] = median_of(name, mlflow_repeats)
        results["import"]["mlflow_ms"] = cold_import_ms("mlflow", mlflow_repeats)
    report(results, has_mlflow)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def _importable(module: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def report(results: dict[str, dict[str, float]], has_mlflow: bool) -> None:
    ours = results["expbook"]
    hot = ours["hot_s_per_scalar"] * 1e6
    e2e = ours["e2e_scalars_per_s"]
    imported = results["import"]["expbook_ms"]
    append = results["list_append"]["hot_s_per_scalar"] * 1e6
    floor = results["sqlite_floor"]["e2e_scalars_per_s"]
    rows = [
        ("hot path per scalar: expbook run.log", f"{hot:.3f} us",
         f"target <= {TARGETS['hot_us']} us", hot <= TARGETS["hot_us"]),
        ("  reference: list.append per scalar", f"{append:.3f} us",
         f"expbook = {hot / append:.1f}x list.append", None),
        ("end to end into SQLite: expbook", f"{e2e:,.0f} /s",
         f"target >= {TARGETS['e2e_per_s']:,}", e2e >= TARGETS["e2e_per_s"]),
        ("  reference: bare sqlite3.executemany", f"{floor:,.0f} /s",
         f"expbook = {e2e / floor:.2f}x the floor", None),
        ("cold import expbook", f"{imported:.0f} ms",
         f"target <= {TARGETS['import_ms']:.0f} ms", imported <= TARGETS["import_ms"]),
    ]  # fmt: skip
    if has_mlflow:
        rows += mlflow_rows(results, hot, e2e, imported)
    print(f"expbook logging benchmark: {STEPS:,} steps x {len(KEYS)} scalars, SQLite store")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs\n")
    cells = [(a, b, c, "" if ok is None else ("ok" if ok else "MISSED")) for a, b, c, ok in rows]
    width = [max(len(row[i]) for row in cells) for i in range(4)]
    for row in cells:
        print("  ".join(cell.ljust(width[i]) for i, cell in enumerate(row)).rstrip())


def mlflow_rows(
    results: dict[str, dict[str, float]], hot: float, e2e: float, imported: float
) -> list[tuple[str, str, str, bool | None]]:
    sync = results["mlflow_log_metric"]["hot_s_per_scalar"] * 1e6
    batch = results["mlflow_log_metrics"]["hot_s_per_scalar"] * 1e6
    asynchronous = results["mlflow_async"]["hot_s_per_scalar"] * 1e6
    async_e2e = results["mlflow_async"]["e2e_scalars_per_s"]
    mlflow_ms = results["import"]["mlflow_ms"]
    want_sync, want_async = TARGETS["vs_mlflow_sync"], TARGETS["vs_mlflow_async"]
    return [
        ("MLflow log_metric per scalar", f"{sync:,.0f} us",
         f"expbook {sync / hot:,.0f}x cheaper (target >= {want_sync:,.0f}x)",
         sync / hot >= want_sync),
        ("MLflow log_metrics (4 per call) per scalar", f"{batch:,.0f} us",
         f"expbook {batch / hot:,.0f}x cheaper", None),
        ("MLflow log_metrics(synchronous=False) per scalar", f"{asynchronous:,.1f} us",
         f"expbook {asynchronous / hot:,.0f}x cheaper (target >= {want_async:.0f}x)",
         asynchronous / hot >= want_async),
        ("MLflow async end to end", f"{async_e2e:,.0f} /s",
         f"expbook {e2e / async_e2e:,.0f}x faster", None),
        ("cold import mlflow", f"{mlflow_ms:,.0f} ms",
         f"expbook {mlflow_ms / imported:,.0f}x faster", None),
    ]  # fmt: skip


if __name__ == "__main__":
    main()
