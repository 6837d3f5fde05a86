"""Sweep coordination through the store, measured: what adding and claiming trials costs agents.

    .venv/bin/python benchmarks/bench_sweep_store.py [--processes 6] [--trials 120]
        [--trial-seconds 0.5] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

N processes, started together once all have opened the store, on a SQLite file and on
PostgreSQL (a fresh schema, dropped afterwards):

``add``: each does what an agent does to add a trial, as fast as it can — read the sweep (its
version) and its trials, then ``add_trial(expected_version=...)`` — until the sweep has T
trials: trials added per second (all processes together), and compare-and-set conflicts (a
re-read and a new attempt) per trial. The worst case: nothing but adding.
``agent``: the same, but each added trial "runs" for ``--trial-seconds`` (a sleep, renewing its
lease once) and is then finished with ``update_trial``: milliseconds spent in store calls per
trial, and conflicts per trial, when agents do what agents do.
``claim``: T queued trials, N processes claiming until none is left: claims per second.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

CHILD = """
import json, os, sys, time
import expbook
url, task, name, sweep, limit, seconds, go = sys.argv[1:8]
limit, seconds = int(limit), float(seconds)
store = expbook.open_store(url)
open(f"{go}.{name}", "w").close()  # ready
while not os.path.exists(go):
    time.sleep(0.001)
done, conflicts, i, in_store = 0, 0, 0, 0.0
if task in ("add", "agent"):
    while True:
        t0 = time.perf_counter()
        version = store.get_sweep(sweep).version
        store.list_trials(sweep)  # what the engine rebuilds its study from
        if version >= limit:
            break
        i += 1
        key = f"{name}-{i}"
        trial = store.add_trial(sweep, expected_version=version, params={"k": key},
                                config_key=key, worker=name)
        in_store += time.perf_counter() - t0
        if trial is None:
            conflicts += 1
            continue
        done += 1
        if task == "agent":
            time.sleep(seconds / 2)
            t0 = time.perf_counter()
            store.heartbeat_trials(sweep, [trial.number], name)
            in_store += time.perf_counter() - t0
            time.sleep(seconds / 2)
            t0 = time.perf_counter()
            store.update_trial(sweep, trial.number, worker=name, state="finished", values=[1.0])
            in_store += time.perf_counter() - t0
else:
    while store.claim_trial(sweep, name) is not None:
        done += 1
print(json.dumps({"done": done, "conflicts": conflicts, "in_store": in_store, "end": time.time()}))
"""


def measure(url: str, task: str, processes: int, trials: int, seconds: float) -> dict[str, float]:
    import expbook
    from expbook.model import TrialState

    store = expbook.open_store(url)
    sweep = store.create_sweep(f"bench-{uuid.uuid4().hex[:6]}", {"method": "random"})
    if task == "claim":
        for i in range(trials):
            store.add_trial(sweep.id, expected_version=i, params={"i": i}, config_key=str(i),
                            worker=None, state=TrialState.QUEUED)  # fmt: skip
    go = Path(tempfile.mkdtemp()) / "go"
    argv = [sys.executable, "-c", CHILD, url, task]
    rest = [sweep.id, str(trials), str(seconds), str(go)]
    children = [
        subprocess.Popen([*argv, f"p{n}", *rest], stdout=subprocess.PIPE, text=True)
        for n in range(processes)
    ]
    while not all(Path(f"{go}.p{n}").exists() for n in range(processes)):
        time.sleep(0.01)  # all have opened the store
    start = time.time()
    go.touch()
    reports = [json.loads(child.communicate()[0]) for child in children]
    seconds_taken = max(r["end"] for r in reports) - start
    done = sum(r["done"] for r in reports)
    assert done == trials == len(store.list_trials(sweep.id)), (done, trials)
    store.close()
    return {
        "per_second": done / seconds_taken,
        "conflicts": sum(r["conflicts"] for r in reports) / done,
        "store_ms": 1000 * sum(r["in_store"] for r in reports) / done,
    }


def postgres_schema(admin: str) -> tuple[str, str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in admin else "?"
    return schema, f"{admin}{separator}options=-csearch_path%3D{schema}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=6)
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--trial-seconds", type=float, default=0.5)
    parser.add_argument("--tasks", default="add,agent,claim")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    options = parser.parse_args()
    import psycopg

    schema, pg_url = postgres_schema(options.postgres)
    n = options.processes
    try:
        for backend, url in (("sqlite", str(Path(tempfile.mkdtemp()) / "s.db")),
                             ("postgresql", pg_url)):  # fmt: skip
            for task in options.tasks.split(","):
                found = measure(url, task, n, options.trials, options.trial_seconds)
                print(f"{backend:10} {task:5} {n} processes: {found['per_second']:6.1f} trials/s, "
                      f"{found['conflicts']:.2f} conflicts and {found['store_ms']:.1f} ms "
                      "in store calls per trial", flush=True)  # fmt: skip
    finally:
        with psycopg.connect(options.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
