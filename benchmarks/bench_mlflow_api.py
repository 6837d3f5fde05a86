"""The mlflow client against expbook's MLflow API and against an MLflow tracking server, side by
side: the same client, the same workload, each server on its own fresh SQLite file (or
PostgreSQL database), one server process each (docs/design.md, "MLflow clients").

    python benchmarks/bench_mlflow_api.py [--steps 300] [--keys 10] [--history 10000]
        [--mlflow-python .venv-mlflow/bin/python] [--store sqlite|postgresql://...]

The clients run in ``--mlflow-python`` (an environment with the full ``mlflow`` package, which
also starts the MLflow server). Workloads, each timed in the client:

- ``log_metric``: one request per scalar (how simple scripts log), µs per call;
- ``log_metrics``: ``keys`` scalars per step, one request per step (autolog, most scripts);
- ``log_batch``: 1,000 metrics per request (MLflow's fastest documented path);
- ``get_metric_history`` of a ``history``-point series, ms;
- ``search_runs`` with a metric filter over 50 runs, ms.
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
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

EXPBOOK_SERVER = """
import sys, uvicorn
from expbook.store import open_store
from expbook.server.app import create_app
store = open_store(sys.argv[1])
uvicorn.run(create_app(store), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""

CLIENT = """
import json, sys, time
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

steps, keys, history = (int(a) for a in sys.argv[1:4])
client = MlflowClient()
out = {}
experiment = client.create_experiment("bench")
run = client.create_run(experiment).info.run_id

t = time.perf_counter()
for i in range(200):
    client.log_metric(run, "single", float(i), step=i)
out["log_metric_us"] = (time.perf_counter() - t) / 200 * 1e6

names = [f"k{k}" for k in range(keys)]
t = time.perf_counter()
with mlflow.start_run(run_id=run):
    for step in range(steps):
        mlflow.log_metrics({name: step * 0.5 for name in names}, step=step)
out["log_metrics_scalars_s"] = steps * keys / (time.perf_counter() - t)

now = int(time.time() * 1000)
batches = [[Metric("batch", float(i), now, i) for i in range(b * 1000, (b + 1) * 1000)]
           for b in range(history // 1000)]
t = time.perf_counter()
for batch in batches:
    client.log_batch(run, metrics=batch)
out["log_batch_scalars_s"] = history / (time.perf_counter() - t)

t = time.perf_counter()
points = client.get_metric_history(run, "batch")
out["get_history_ms"] = (time.perf_counter() - t) * 1000
assert len(points) == history, len(points)

for i in range(50):
    other = client.create_run(experiment).info.run_id
    client.log_batch(other, metrics=[Metric("acc", i / 50, now, 0)])
t = time.perf_counter()
found = client.search_runs([experiment], "metrics.acc > 0.5")
out["search_runs_ms"] = (time.perf_counter() - t) * 1000
assert len(found) == 24, len(found)
print("RESULT " + json.dumps(out))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server at {url} exited: {log.read_text()[-2000:]}")
        try:
            httpx.get(f"{url}/api/2.0/mlflow/experiments/get?experiment_id=0", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"the server at {url} did not start: {log.read_text()[-2000:]}")


def database(store: str, folder: Path, name: str) -> str:
    """A fresh SQLite file or PostgreSQL database for one server."""
    if store == "sqlite":
        return str(folder / f"{name}.db")
    import sqlalchemy as sa

    database_name = f"bench_{name}_{uuid.uuid4().hex[:8]}"
    url = sa.make_url(store)
    engine = sa.create_engine(url.set(drivername="postgresql+psycopg"),
                              isolation_level="AUTOCOMMIT")  # fmt: skip
    with engine.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {database_name}")
    engine.dispose()
    return url.set(database=database_name).render_as_string(hide_password=False)


def measure(name: str, command: list[str], args: argparse.Namespace, env: dict, log: Path) -> dict:
    port = int(command[-1])
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)  # fmt: skip
    try:
        wait(url, server, log)
        client_env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_DISABLE_TELEMETRY": "1",
                      "DO_NOT_TRACK": "true"}  # fmt: skip
        done = subprocess.run(
            [args.mlflow_python, "-c", textwrap.dedent(CLIENT), str(args.steps), str(args.keys),
             str(args.history)],
            capture_output=True, text=True, env=client_env, check=False,
        )  # fmt: skip
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if not lines:
            raise SystemExit(f"{name} client failed:\n{done.stderr[-3000:]}")
        return json.loads(lines[-1].removeprefix("RESULT "))
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--store", default="sqlite")
    parser.add_argument("--mlflow-python", default=str(ROOT / ".venv-mlflow" / "bin" / "python"))
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-mlflow-api-"))
    mlflow_bin = str(Path(args.mlflow_python).with_name("mlflow"))
    expbook_store = database(args.store, folder, "expbook")
    mlflow_store = database(args.store, folder, "mlflow")
    if args.store == "sqlite":
        mlflow_store = f"sqlite:///{mlflow_store}"
    env = {**os.environ, "EXPBOOK_ARTIFACTS": str(folder / "artifacts")}
    results = {
        "expbook": measure(
            "expbook", [sys.executable, "-c", EXPBOOK_SERVER, expbook_store, str(free_port())],
            args, env, folder / "expbook.log",
        ),
        "mlflow": measure(
            "mlflow",
            [mlflow_bin, "server", "--backend-store-uri", mlflow_store, "--artifacts-destination",
             str(folder / "mlartifacts"), "--workers", "1", "--host", "127.0.0.1", "--port",
             str(free_port())],
            args, env, folder / "mlflow.log",
        ),
    }  # fmt: skip
    version = subprocess.run(
        [args.mlflow_python, "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    print(f"mlflow client and server {version}; store {args.store}; steps {args.steps} x "
          f"{args.keys} keys; history {args.history:,} points")  # fmt: skip
    rows = [
        ("log_metric, µs per call", "log_metric_us", "{:,.0f}"),
        ("log_metrics per step, scalars/s", "log_metrics_scalars_s", "{:,.0f}"),
        ("log_batch of 1,000, scalars/s", "log_batch_scalars_s", "{:,.0f}"),
        (f"get_metric_history of {args.history:,} points, ms", "get_history_ms", "{:,.0f}"),
        ("search_runs over 51 runs, ms", "search_runs_ms", "{:,.1f}"),
    ]
    print(f"{'':<44}{'expbook':>12}{'MLflow':>12}")
    for label, key, shape in rows:
        print(f"{label:<44}{shape.format(results['expbook'][key]):>12}"
              f"{shape.format(results['mlflow'][key]):>12}")  # fmt: skip
    print(json.dumps(results))


if __name__ == "__main__":
    main()
