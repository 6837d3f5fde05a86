"""The writer under real faults: killed PostgreSQL backends, a SQLite file locked by another
process, data the database refuses, a store file deleted or replaced under a running writer.

Every fault here is real (no mock of our own components): ``pg_terminate_backend`` from a
separate admin connection, a ``sqlite3`` connection in another process holding ``BEGIN
EXCLUSIVE``, triggers that make the database refuse one item, ``os.unlink``/``os.replace``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import expbook
from expbook import RunStatus
from expbook.model import ArtifactRecord
from expbook.store import SummaryValue, WriteBatch
from expbook.store.base import OutputText
from expbook.store.chunks import Points

from .conftest import POSTGRES_URL

# --- WriteBatch: every field survives merge and split ---------------------------------------


def _points(*values: float) -> Points:
    points = Points()
    for step, value in enumerate(values):
        points.append(step, value, 1000.0 + step, None)
    return points


SAMPLES = {
    "replaced": lambda: {"system/cpu_percent": _points(40.0, 60.0)},
    "points": lambda: {"loss": _points(1.0, 0.5), "acc": _points(0.1)},
    "params": lambda: {"lr": 0.1, "model": {"depth": 3}},
    "tags_add": lambda: {"a", "b"},
    "tags_remove": lambda: {"c"},
    "notes": lambda: [(1.0, "first"), (2.0, "second")],
    "note_edits": lambda: {7: "edited", 8: None},
    "summary": lambda: {"best": SummaryValue(0.9, None, 3.0)},
    "attachments": lambda: {"a.txt": b"a", "b.txt": b"b"},
    "artifacts": lambda: {
        "model.pt": ArtifactRecord("model.pt", "ab" * 32, 3, 1.0),
        "plots/loss.png": ArtifactRecord("plots/loss.png", "cd" * 32, 5, 2.0),
    },
    "output": lambda: [OutputText("stdout", 4.0, "one\n"), OutputText("stderr", 5.0, "two\n")],
    "update": lambda: {"name": "n", "status": "finished", "ended_at": 6.0, "exit_code": 0},
    "heartbeat": lambda: 7.0,
}


def _comparable(value: object) -> object:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, Points):
        return (list(value.steps), list(value.values), list(value.times))
    return value


def test_every_write_batch_field_survives_merge_and_split() -> None:
    names = [f.name for f in dataclasses.fields(WriteBatch) if f.name != "batch_id"]  # no change
    assert sorted(SAMPLES) == sorted(names), "add a sample for the new WriteBatch field"
    full = WriteBatch(**{name: make() for name, make in SAMPLES.items()})
    for name in names:  # merging one field at a time into an empty batch keeps it
        merged = WriteBatch()
        merged.merge(WriteBatch(**{name: SAMPLES[name]()}))
        assert not merged.is_empty()
        assert _comparable(getattr(merged, name)) == _comparable(getattr(full, name)), name
    parts = full.parts()
    assert all(not part.is_empty() for _, part in parts)
    rebuilt = WriteBatch()
    for _, part in parts:
        rebuilt.merge(part)
    for name in names:  # split into items and merged back: nothing lost, nothing reordered
        assert _comparable(getattr(rebuilt, name)) == _comparable(getattr(full, name)), name
    described = [what for what, _ in parts]
    assert len(described) == len(set(described)), described
    ending = [part for what, part in parts if "status" in part.update]
    assert len(ending) == 1 and set(ending[0].update) == {"status", "ended_at", "exit_code"}


def test_merge_keeps_the_later_tag_change() -> None:
    batch = WriteBatch(tags_add={"x"}, tags_remove={"y"})
    batch.merge(WriteBatch(tags_add={"y"}, tags_remove={"x"}))
    assert batch.tags_add == {"y"} and batch.tags_remove == {"x"}


# --- PostgreSQL: backends terminated again and again while a run logs -------------------------


def _terminate_repeatedly(application: str, stop: threading.Event, kills: list[int]) -> None:
    """Terminate the store's backends every 20-150 ms, with a storm of 12 s in the middle
    (every millisecond: no write gets through, longer than the writer's 10 s write timeout)."""
    import psycopg

    admin = POSTGRES_URL.replace("postgresql+psycopg", "postgresql")
    started = time.monotonic()
    with psycopg.connect(admin, autocommit=True) as connection:
        while not stop.is_set():
            killed = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application,),
            ).fetchone()
            kills.append(killed[0] if killed else 0)
            storm = 1.0 <= time.monotonic() - started <= 13.0
            stop.wait(0.001 if storm else random.uniform(0.02, 0.15))


@pytest.mark.postgres
def test_terminated_postgres_backends_lose_nothing(
    postgres_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    application = f"expbook-faults-{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}&application_name={application}"
    tracker = expbook.Tracker(url)
    run = tracker.start_run(name="start", capture=False)
    stop, kills = threading.Event(), []
    killer = threading.Thread(target=_terminate_repeatedly, args=(application, stop, kills))
    killer.start()
    try:
        for step in range(1600):  # 16 s: before, during and after the storm
            run.log({"loss": 1.0 / (step + 1), "acc": step / 1600}, step=step)
            if step % 5 == 0:
                run.note(f"note {step}")
                run.log_params({f"p{step}": step})
                run.tag(f"t{step}")
            time.sleep(0.01)
        run.summary["best"] = 0.75
        run.set_name("survivor")
        run.finish()
    finally:
        stop.set()
        killer.join()
    assert sum(kills) >= 20, f"only {sum(kills)} backends were terminated"
    reader = expbook.open_store(postgres_url)
    try:
        record = reader.run(run.id)
        series = reader.series(run.id, "loss")
    finally:
        reader.close()
    assert record.status is RunStatus.FINISHED and record.ended_at is not None
    assert record.name == "survivor"
    assert record.metrics["loss"].count == 1600 and record.metrics["acc"].count == 1600
    assert list(series.steps) == list(range(1600))
    assert [note.text for note in record.notes] == [f"note {s}" for s in range(0, 1600, 5)]
    assert record.params == {f"p{s}": s for s in range(0, 1600, 5)}
    assert sorted(record.tags) == sorted(f"t{s}" for s in range(0, 1600, 5))
    assert record.metrics["best"].value == 0.75
    assert "expbook:" not in capfd.readouterr().err


# --- SQLite: the file locked by another process -------------------------------------------------

HOLD_LOCK = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
"""


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


def _log_through_a_lock(path: Path, seconds: float) -> tuple[expbook.Run, float]:
    """Start a run, lock the file from another process for ``seconds``, log and finish while
    it is locked. Returns the run and how long the lock was held."""
    tracker = expbook.Tracker(path)
    run = tracker.start_run(name="start", capture=False)
    run.log({"loss": 1.0}, step=0)
    assert run.flush(timeout=30)
    started = time.monotonic()
    holder = _hold_lock(path, seconds)
    for step in range(1, 101):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        if step % 10 == 0:
            run.note(f"note {step}")
            run.log_params({f"p{step}": step})
            run.tag(f"t{step}")
        time.sleep(0.01)
    run.set_name("survivor")
    run.finish()  # while the file is still locked: waits for it
    held = time.monotonic() - started
    holder.wait(timeout=60)
    return run, held


def _assert_everything_stored(path: Path, run: expbook.Run) -> None:
    reader = expbook.open_store(path)
    try:
        record = reader.run(run.id)
    finally:
        reader.close()
    assert record.status is RunStatus.FINISHED and record.ended_at is not None
    assert record.name == "survivor"
    assert record.metrics["loss"].count == 101
    assert [note.text for note in record.notes] == [f"note {s}" for s in range(10, 101, 10)]
    assert record.params == {f"p{s}": s for s in range(10, 101, 10)}
    assert sorted(record.tags) == sorted(f"t{s}" for s in range(10, 101, 10))


@pytest.mark.parametrize("seconds", [8, 15])
def test_a_store_locked_by_another_process_loses_and_prints_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], seconds: float
) -> None:
    path = tmp_path / "expbook.db"
    run, held = _log_through_a_lock(path, seconds)
    assert held >= seconds - 1  # finish() really waited for the lock
    _assert_everything_stored(path, run)
    assert capfd.readouterr().err == ""


# --- data the database refuses: only the refused item is dropped ------------------------------


def _add_trigger(path: Path, sql: str) -> None:
    import sqlite3

    expbook.open_store(path).close()
    connection = sqlite3.connect(path)
    with connection:
        connection.execute(sql)
    connection.close()


def test_one_refused_note_drops_only_that_note(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "expbook.db"
    _add_trigger(
        path,
        "CREATE TRIGGER no_bad_notes BEFORE INSERT ON notes WHEN NEW.text LIKE '%forbidden%' "
        "BEGIN SELECT RAISE(ABORT, 'this note is refused'); END",
    )
    tracker = expbook.Tracker(path)
    with tracker.start_run(capture=False) as run:
        for step in range(5):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
            run.note(f"note {step}")
            run.log_params({f"p{step}": step})
            run.tag(f"t{step}")
        run.note("a forbidden note")
        run.note("the last note")
        run.set_name("kept")
        run.attach("kept.txt", "kept")
    record = expbook.open_store(path).run(run.id)
    assert [n.text for n in record.notes] == [*(f"note {s}" for s in range(5)), "the last note"]
    assert record.params == {f"p{s}": s for s in range(5)}
    assert sorted(record.tags) == [f"t{s}" for s in range(5)]
    assert record.name == "kept" and record.metrics["loss"].count == 5
    assert record.status is RunStatus.FINISHED
    assert expbook.open_store(path).get_attachment(run.id, "kept.txt") == b"kept"
    err = capfd.readouterr().err.splitlines()
    assert err == [
        f"expbook: dropped note 'a forbidden note' of run {run.id[:8]}: this note is refused"
    ]


def test_the_final_status_is_kept_when_a_run_field_is_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "expbook.db"
    _add_trigger(
        path,
        "CREATE TRIGGER no_bad_names BEFORE UPDATE OF name ON runs WHEN NEW.name = 'refused' "
        "BEGIN SELECT RAISE(ABORT, 'this name is refused'); END",
    )
    tracker = expbook.Tracker(path)
    run = tracker.start_run(name="original", capture=False)
    run.log({"loss": 0.5}, step=0)
    run.set_name("refused")
    run.finish(exit_code=3)
    record = expbook.open_store(path).run(run.id)
    assert record.status is RunStatus.FINISHED and record.ended_at is not None
    assert record.exit_code == 3 and record.name == "original"
    assert record.metrics["loss"].count == 1
    err = capfd.readouterr().err.splitlines()
    assert err == [f"expbook: dropped run field 'name' of run {run.id[:8]}: this name is refused"]


# --- the store file deleted or replaced under a running writer --------------------------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_store_file_gone_from_under_the_writer_is_reported(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], how: str
) -> None:
    path = tmp_path / "expbook.db"
    tracker = expbook.Tracker(path)
    run = tracker.start_run(capture=False)
    run.log({"loss": 1.0}, step=0)
    assert run.flush(timeout=30)
    if how == "deleted":
        os.unlink(path)
    else:
        shutil.copy(path, tmp_path / "copy.db")
        os.replace(tmp_path / "copy.db", path)
    for step in range(1, 50):
        run.log({"loss": 1.0 / step}, step=step)
    run.note("after")
    run.finish(timeout=30)
    err = capfd.readouterr().err.splitlines()
    assert len(err) == 1, err
    assert str(path) in err[0] and how in err[0] and f"run {run.id[:8]}" in err[0]
    if how == "deleted":
        assert not path.exists()  # not silently re-created as an empty file
    else:  # the new file is as it was copied: nothing written into the old inode reaches it
        record = expbook.open_store(path).run(run.id)
        assert record.status is RunStatus.RUNNING and record.metrics["loss"].count == 1
