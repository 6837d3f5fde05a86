"""Write ``tests/data/stores/<head>.db``: a small store made by the current schema.

Run it once for each new schema revision and commit the file; ``tests/test_migrations.py`` then
checks that every later expbook opens (and upgrades) stores of that revision.

    python tests/data/stores/make_fixture.py
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import expbook
from expbook.store import RunSpec, WriteBatch, migrate
from expbook.store.base import OutputText
from expbook.store.chunks import Points

T0 = 1790000000.0


def main() -> None:
    target = Path(__file__).parent / f"{migrate.HEAD}.db"
    target.unlink(missing_ok=True)
    store = expbook.open_store(target)
    run = store.create_run(
        RunSpec(
            name="gru-256", experiment="hidden size", tags=["gru"], started_at=T0,
            params={"model.hidden": 256, "lr": 0.001, "tags": ["a"]},
            command=["python", "train.py"],
        )
    )  # fmt: skip
    points = Points()
    for step in range(100):
        points.append(step, 1.0 / (step + 1), T0 + step, step / 10)
    store.write(
        run.id,
        WriteBatch(
            points={"train/loss": points},
            notes=[(T0 + 1, "first note")],
            attachments={"git.diff": b"+x\n"},
            output=[OutputText("stdout", T0 + 2, "epoch 1 loss=0.5\n")],
            update={"status": "finished", "ended_at": T0 + 200, "git_commit": "a" * 40,
                    "git_dirty": True},
        ),
    )  # fmt: skip
    store.set_metric(run, "manual/acc", 55.46, unit="%")
    child = store.create_run(RunSpec(name="eval", kind="eval", parent=run.id, started_at=T0 + 300))
    store.write(
        child.id,
        WriteBatch(update={"status": "failed", "ended_at": T0 + 301, "error": "boom",
                           "exit_code": 2}),
    )  # fmt: skip
    sweep = store.create_sweep("lr", {"method": "grid", "parameters": {"lr": {"values": [0.1]}}})
    store.add_trial(sweep.id, expected_version=0, params={"lr": 0.1}, config_key='{"lr": 0.1}',
                    worker=None, state="finished", run_id=run.id, values=[0.01])  # fmt: skip
    store.create_token("ci", read_only=True)
    store.close()
    with sqlite3.connect(target) as connection:  # one self-contained file, no -wal/-shm
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
