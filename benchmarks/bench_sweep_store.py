"""Sweep coordination through the store, measured: how fast agents can add and claim trials.

    .venv/bin/python benchmarks/bench_sweep_store.py [--processes 6] [--trials 300]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

``add``: N processes, started together, each doing what an agent does to add a trial as fast as
it can — read the sweep (its version) and its trials, then ``add_trial(expected_version=...)``
— until the sweep has T trials. Reports trials added per second (all processes together) and
how many compare-and-set conflicts (a re-read and a new attempt) each trial cost.
``claim``: T queued trials, N processes claiming until none is left: claims per second.
Both on a SQLite file and on PostgreSQL (a fresh schema, dropped afterwards).
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
url, task, name, sweep, limit, go = sys.argv[1:7]
store = expbook.open_store(url)
open(f"{go}.{name}", "w").close()  # ready
while not os.path.exists(go):
    time.sleep(0.001)
started, done, conflicts, i = time.perf_counter(), 0, 0, 0
if task == "add":
    while True:
        version = store.get_sweep(sweep).version
        store.list_trials(sweep)  # what the engine rebuilds its study from
        if version >= int(limit):
            break
        i += 1
        key = f"{name}-{i}"
        trial = store.add_trial(sweep, expected_version=version, params={"k": key},
                                config_key=key, worker=name)
        if trial is None:
            conflicts += 1
        else:
            done += 1
else:
    while store.claim_trial(sweep, name) is not None:
        done += 1
print(json.dumps({"done": done, "conflicts": conflicts, "end": time.time()}))
"""


def measure(url: str, task: str, processes: int, trials: int) -> dict[str, float]:
    import expbook
    from expbook.model import TrialState

    store = expbook.open_store(url)
    sweep = store.create_sweep(f"bench-{uuid.uuid4().hex[:6]}", {"method": "random"})
    if task == "claim":
        for i in range(trials):
            store.add_trial(sweep.id, expected_version=i, params={"i": i}, config_key=str(i),
                            worker=None, state=TrialState.QUEUED)  # fmt: skip
    go = Path(tempfile.mkdtemp()) / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, task, f"p{n}", sweep.id, str(trials), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    while not all(Path(f"{go}.p{n}").exists() for n in range(processes)):
        time.sleep(0.01)  # all have opened the store
    start = time.time()
    go.touch()
    reports = [json.loads(child.communicate()[0]) for child in children]
    seconds = max(r["end"] for r in reports) - start
    done = sum(r["done"] for r in reports)
    assert done == trials == len(store.list_trials(sweep.id)), (done, trials)
    store.close()
    conflicts = sum(r["conflicts"] for r in reports)
    return {"per_second": done / seconds, "conflicts_per_trial": conflicts / done}


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
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    options = parser.parse_args()
    import psycopg

    schema, pg_url = postgres_schema(options.postgres)
    try:
        for backend, url in (("sqlite", str(Path(tempfile.mkdtemp()) / "s.db")),
                             ("postgresql", pg_url)):  # fmt: skip
            for task in ("add", "claim"):
                found = measure(url, task, options.processes, options.trials)
                print(f"{backend:10} {task:5} {options.processes} processes: "
                      f"{found['per_second']:6.0f} trials/s, "
                      f"{found['conflicts_per_trial']:.1f} conflicts per trial")  # fmt: skip
    finally:
        with psycopg.connect(options.postgres, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
