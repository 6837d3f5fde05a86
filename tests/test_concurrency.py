"""Many processes writing one SQLite store at once: no errors reach them, nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import expbook
from expbook import RunStatus

pytestmark = pytest.mark.slow

WRITER = """
import sys, time, expbook
store, index, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with expbook.start_run(name=f"worker-{index}", store=store, params={"worker": index}) as run:
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1), "worker": float(index)}, step=step)
        if step % 20 == 0:
            time.sleep(0.002)  # spread the logging over ~1 s so the writers overlap
        if step % 1000 == 0:
            run.note(f"step {step}")
            run.summary["progress"] = step
"""


def test_eight_processes_into_one_new_sqlite_file(tmp_path: Path) -> None:
    location = str(tmp_path / "shared" / "expbook.db")  # does not exist yet: created concurrently
    processes, steps = 8, 10_000
    # a flush every 20 ms per process: hundreds of overlapping write transactions
    env = {**os.environ, "EXPBOOK_FLUSH_INTERVAL": "0.02"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, location, str(i), str(steps)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(processes)
    ]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        assert err == "", err  # no "database is locked" or any warning reached the user
    store = expbook.open_store(location)
    runs = store.runs()
    assert sorted(r.number for r in runs) == list(range(1, processes + 1))
    total = 0
    for run in runs:
        assert run.status is RunStatus.FINISHED
        series = store.series(run.id, "loss")
        assert list(series.steps) == list(range(steps))
        assert set(store.series(run.id, "worker").values) == {float(run.params["worker"])}
        assert run.metrics["loss"].count == steps
        assert len(run.notes) == steps // 1000
        total += len(series) + len(store.series(run.id, "worker"))
    assert total == processes * steps * 2
