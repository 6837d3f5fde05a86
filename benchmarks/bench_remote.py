"""Logging through a team server into PostgreSQL: expbook server + HttpStore against an MLflow
tracking server + the mlflow client, side by side in one process tree.

    python benchmarks/bench_remote.py [--steps 20000] [--keys 10] [--clients 1,8]
        [--mlflow-python .venv-mlflow/bin/python] [--workers 2]

Each client is its own process: it starts a run, logs ``keys`` scalars per step for ``steps``
steps as fast as it can, and ends the run; the time counted is from the run's start to the end
of its last write *on the server* (expbook: the run finished and the store closed, which sends
the journal; MLflow: its calls returned). Scalars/s = clients * steps * keys / wall time of the
slowest client. Both servers get a fresh database of the same PostgreSQL and the same number of
worker processes. MLflow is measured two ways: ``log_metrics`` once per step (how scripts and
autolog log) and ``log_batch`` with 1,000 metrics per request (its fastest documented path),
over fewer steps (it is slower; the rate is what counts).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from common import fresh_postgres_database

POSTGRES = os.environ.get(
    "EXPBOOK_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ROOT = Path(__file__).resolve().parent.parent

EXPBOOK_CLIENT = textwrap.dedent("""
    import json, sys, time, expbook
    url, steps, keys = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    names = [f"metric_{k}" for k in range(keys)]
    store = expbook.open_store(url)
    start = time.perf_counter()
    run = expbook.start_run(store=store)
    for step in range(steps):
        run.log({name: step * 0.001 + k for k, name in enumerate(names)}, step=step)
    run.finish()
    store.close()
    print(json.dumps({"seconds": time.perf_counter() - start}))
""")

MLFLOW_CLIENT = textwrap.dedent("""
    import json, sys, time
    import mlflow
    from mlflow.entities import Metric
    url, steps, keys, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    mlflow.set_tracking_uri(url)
    names = [f"metric_{k}" for k in range(keys)]
    client = mlflow.MlflowClient()
    start = time.perf_counter()
    with mlflow.start_run() as run:
        if mode == "log_metrics":
            for step in range(steps):
                mlflow.log_metrics({n: step * 0.001 + k for k, n in enumerate(names)}, step=step)
        else:
            pending = []
            now = int(time.time() * 1000)
            for step in range(steps):
                pending += [Metric(n, step * 0.001 + k, now, step) for k, n in enumerate(names)]
                if len(pending) >= 1000:
                    client.log_batch(run.info.run_id, metrics=pending[:1000])
                    pending = pending[1000:]
            if pending:
                client.log_batch(run.info.run_id, metrics=pending)
    print(json.dumps({"seconds": time.perf_counter() - start}))
""")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_database() -> str:
    return fresh_postgres_database(POSTGRES, "bench_remote")


def wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    sys.exit(f"the server did not start: {log.read_text()[-2000:]}")


def start(command: list[str], probe: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    wait_for(probe, process, log)
    return process


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def clients(python: str, script: str, args: list[str], count: int, env: dict) -> float:
    """Run ``count`` client processes at once; the wall time of the slowest (seconds)."""
    path = Path(tempfile.mkdtemp()) / "client.py"
    path.write_text(script)
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [python, str(path), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(count)
    ]
    seconds = []
    for proc in procs:
        out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            sys.exit(f"a client failed: {err[-2000:]}")
        seconds.append(json.loads(out.strip().splitlines()[-1])["seconds"])
    wall = time.perf_counter() - started
    return max(max(seconds), 0.0) if seconds else wall


def check_arrived(database: str, count: int, steps: int, keys: int) -> None:
    """Every scalar of the last ``count`` runs is in the database (not only sent)."""
    import expbook

    with expbook.open_store(database) as store:
        runs = store.runs(limit=count)
        stored = sum(m.count for run in runs for m in run.metrics.values())
        finished = all(run.status.value == "finished" for run in runs)
    if stored != count * steps * keys or not finished:
        sys.exit(f"expected {count * steps * keys:,} scalars in finished runs, found {stored:,}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--clients", default="1,8")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--mlflow-python", default=str(ROOT / ".venv-mlflow" / "bin" / "python"))
    parser.add_argument("--mlflow-steps", type=int, default=500)
    options = parser.parse_args()
    counts = [int(c) for c in options.clients.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    env = {**os.environ, "EXPBOOK_JOURNAL": str(work / "journal"), "EXPBOOK_SYSTEM_METRICS": "0"}
    env.pop("EXPBOOK_STORE", None)
    results: dict[str, dict[int, float]] = {}

    # --- expbook ---
    database = fresh_database()
    subprocess.run(
        [sys.executable, "-c", f"import expbook; expbook.open_store({database!r}).close()"],
        check=True,
    )
    port = free_port()
    expbook = str(Path(sys.executable).with_name("expbook"))
    server_command = [
        expbook,
        "server",
        "--store",
        database,
        "--port",
        str(port),
        "--no-auth",
        "--workers",
        str(options.workers),
    ]
    server = start(server_command, f"http://127.0.0.1:{port}/api/openapi.json", work / "eb.log")
    try:
        url = f"http://127.0.0.1:{port}"
        for count in counts:
            seconds = clients(
                sys.executable,
                EXPBOOK_CLIENT,
                [url, str(options.steps), str(options.keys)],
                count,
                env,
            )
            rate = count * options.steps * options.keys / seconds
            results.setdefault("expbook HttpStore", {})[count] = rate
            check_arrived(database, count, options.steps, options.keys)
            print(
                f"expbook  {count} client(s): {rate:12,.0f} scalars/s "
                f"({count} x {options.steps} steps x {options.keys} keys in {seconds:.2f} s)",
                flush=True,
            )
    finally:
        stop(server)

    # --- MLflow ---
    if not Path(options.mlflow_python).exists():
        print(
            f"MLflow: skipped ({options.mlflow_python} missing: python -m venv .venv-mlflow "
            "&& .venv-mlflow/bin/pip install mlflow psycopg2-binary)"
        )
    else:
        version = subprocess.run(
            [options.mlflow_python, "-c", "import mlflow; print(mlflow.__version__)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        database = fresh_database()
        port = free_port()
        mlflow_bin = str(Path(options.mlflow_python).with_name("mlflow"))
        server = start(
            [
                mlflow_bin,
                "server",
                "--backend-store-uri",
                database.replace("postgresql+psycopg://", "postgresql://"),
                "--default-artifact-root",
                str(work / "mlruns"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(options.workers),
            ],
            f"http://127.0.0.1:{port}/health",
            work / "mlflow.log",
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for mode in ("log_metrics", "log_batch"):
                for count in counts:
                    seconds = clients(
                        options.mlflow_python,
                        MLFLOW_CLIENT,
                        [url, str(options.mlflow_steps), str(options.keys), mode],
                        count,
                        env,
                    )
                    rate = count * options.mlflow_steps * options.keys / seconds
                    results.setdefault(f"MLflow {version} {mode}", {})[count] = rate
                    print(
                        f"MLflow {mode:11s} {count} client(s): {rate:12,.0f} scalars/s "
                        f"({count} x {options.mlflow_steps} steps in {seconds:.2f} s)",
                        flush=True,
                    )
        finally:
            stop(server)

    print()
    print(
        f"scalars/s through a server into PostgreSQL ({options.workers} server workers, "
        f"{options.keys} keys per step)"
    )
    ours = results["expbook HttpStore"]
    for name, by_count in results.items():
        cells = []
        for count in counts:
            rate = by_count.get(count)
            ratio = (
                f" (expbook {ours[count] / rate:,.0f}x)"
                if rate and name != "expbook HttpStore"
                else ""
            )
            cells.append(f"{count} client(s) {rate:12,.0f}{ratio}" if rate else "-")
        print(f"  {name:32s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
