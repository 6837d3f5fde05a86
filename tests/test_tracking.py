"""The tracking API on real stores: logging, validation, statuses, capture, flushing."""

from __future__ import annotations

import argparse
import dataclasses
import math
import subprocess
import time
from pathlib import Path

import pytest

import expbook
from expbook import (
    InvalidKeyError,
    InvalidStepError,
    InvalidValueError,
    RunFinishedError,
    RunStatus,
)
from expbook.store import Store


def test_the_readme_example(tracker: expbook.Tracker, store: Store) -> None:
    cfg = {"model": {"hidden": 256, "layers": 2}, "lr": 1e-3, "dropout": 0.0}
    with tracker.start_run(name="gru-256", experiment="hidden size", params=cfg,
                           tags=["gru"], parent=None) as run:  # fmt: skip
        for epoch in range(3):
            tl, vl, va = 1 / (epoch + 1), 1.2 / (epoch + 1), 0.9 + epoch / 100
            run.log({"train/loss": tl, "valid/loss": vl, "valid/acc": va}, step=epoch)
        run.summary["inference_accuracy"] = 0.2614
        run.note("GPU utilization around 20%")
    record = store.run(run.number)
    assert record.status is RunStatus.FINISHED and record.ended_at is not None
    assert record.name == "gru-256" and record.experiment == "hidden size"
    assert record.params == {"model.hidden": 256, "model.layers": 2, "lr": 1e-3, "dropout": 0.0}
    assert record.tags == ("gru",)
    assert record.metrics["valid/acc"].value == pytest.approx(0.92)
    assert record.metrics["valid/acc"].count == 3
    assert record.metrics["inference_accuracy"].value == 0.2614
    assert [n.text for n in record.notes] == ["GPU utilization around 20%"]
    assert list(store.series(run.id, "train/loss").steps) == [0, 1, 2]


def test_steps_default_to_one_more_than_the_last(tracker: expbook.Tracker, store: Store) -> None:
    with tracker.start_run() as run:
        run.log({"a": 1})
        run.log({"a": 2})
        run.log({"a": 3}, step=10)
        run.log({"a": 4})
    assert list(store.series(run.id, "a").steps) == [0, 1, 10, 11]


def test_epochs_are_stored_with_points(tracker: expbook.Tracker, store: Store) -> None:
    with tracker.start_run() as run:
        run.log({"loss": 0.5}, step=100, epoch=0.5)
        run.log({"loss": 0.4}, step=200, epoch=1.0)
    assert [p.epoch for p in store.series(run.id, "loss")] == [0.5, 1.0]
    assert store.run(run.id).metrics["loss"].min_epoch == 1.0


def test_nan_and_inf_metrics_round_trip(tracker: expbook.Tracker, store: Store) -> None:
    with tracker.start_run() as run:
        run.log({"loss": float("nan"), "grad": float("inf")}, step=0)
        run.log({"loss": 0.5, "grad": -math.inf}, step=1)
    assert math.isnan(store.series(run.id, "loss").values[0])
    assert list(store.series(run.id, "grad").values) == [math.inf, -math.inf]


def test_scalar_types_are_accepted(tracker: expbook.Tracker, store: Store) -> None:
    numpy = pytest.importorskip("numpy")
    from decimal import Decimal
    from fractions import Fraction

    with tracker.start_run() as run:
        run.log({"np64": numpy.float64(0.5), "np32": numpy.float32(0.25), "npint": numpy.int64(3),
                 "array0d": numpy.array(1.5), "bool": True, "dec": Decimal("0.1"),
                 "frac": Fraction(1, 4)})  # fmt: skip
    metrics = store.run(run.id).metrics
    assert {k: m.value for k, m in metrics.items()} == {
        "np64": 0.5, "np32": 0.25, "npint": 3.0, "array0d": 1.5, "bool": 1.0, "dec": 0.1,
        "frac": 0.25,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("metrics", "step", "error", "message"),
    [
        ({"loss": "0.5"}, 0, InvalidValueError, r"metric 'loss': value '0.5' is a str"),
        ({"loss": None}, 0, InvalidValueError, r"metric 'loss'"),
        ({"loss": [1, 2]}, 0, InvalidValueError, r"metric 'loss'"),
        ({"": 1.0}, 0, InvalidKeyError, r"invalid metric key '': it is empty"),
        ({"/loss": 1.0}, 0, InvalidKeyError, r"'/loss'"),
        ({"train//loss": 1.0}, 0, InvalidKeyError, r"'train//loss'"),
        ({"it's": 1.0}, 0, InvalidKeyError, r"it contains \"'\""),
        ({" loss": 1.0}, 0, InvalidKeyError, r"whitespace"),
        ({7: 1.0}, 0, InvalidKeyError, r"metric key 7 is a int"),
        ({"loss": 1.0}, -1, InvalidStepError, r"step -1 is negative"),
        ({"loss": 1.0}, 1.5, InvalidStepError, r"step 1.5 is a float"),
        ({"loss": 1.0}, 2.0, InvalidStepError, r"step 2.0 is a float"),
        ({"loss": 1.0}, "3", InvalidStepError, r"step '3' is a str"),
        ({"loss": 1.0}, True, InvalidStepError, r"step True is a bool"),
    ],
)
def test_bad_input_names_the_key_or_value(
    tracker: expbook.Tracker, store: Store, metrics, step, error, message
) -> None:
    with tracker.start_run() as run:
        run.log({"ok": 1.0}, step=0)
        with pytest.raises(error, match=message):
            run.log(metrics, step=step)
        run.log({"ok": 2.0}, step=5)
    series = store.series(run.id, "ok")
    assert list(series.values) == [1.0, 2.0]  # a rejected call logs nothing, loses nothing
    assert set(store.run(run.id).metrics) == {"ok"}


def test_log_needs_a_mapping(tracker: expbook.Tracker) -> None:
    with tracker.start_run() as run:
        with pytest.raises(
            InvalidValueError, match="mapping of metric keys to numbers, not float"
        ):
            run.log(0.5)  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError, match="not NoneType"):
            run.log(None)  # type: ignore[arg-type]


def test_numpy_arrays_with_many_elements_are_rejected(tracker: expbook.Tracker) -> None:
    numpy = pytest.importorskip("numpy")
    with (
        tracker.start_run() as run,
        pytest.raises(InvalidValueError, match=r"'acc'.*not a scalar"),
    ):
        run.log({"acc": numpy.array([0.1, 0.2])})


def test_params_from_dataclasses_namespaces_and_nesting(
    tracker: expbook.Tracker, store: Store
) -> None:
    @dataclasses.dataclass
    class Optim:
        name: str = "adam"
        lr: float = 3e-4

    @dataclasses.dataclass
    class Config:
        optim: Optim = dataclasses.field(default_factory=Optim)
        data_dir: Path = Path("/data/digits")
        features: tuple = ("cli", "ml_train")

    with tracker.start_run(params=Config()) as run:
        run.log_params(argparse.Namespace(epochs=16, amp=False))
    assert store.run(run.id).params == {
        "optim.name": "adam", "optim.lr": 3e-4, "data_dir": "/data/digits",
        "features": ["cli", "ml_train"], "epochs": 16, "amp": False,
    }  # fmt: skip


def test_bad_params_name_the_key(tracker: expbook.Tracker) -> None:
    with pytest.raises(InvalidKeyError, match=r"invalid param key 'model.na\"me'"):
        tracker.start_run(params={"model": {'na"me': 1}})
    with pytest.raises(InvalidValueError, match="params must be a mapping"):
        tracker.start_run(params=[1, 2])


def test_exception_marks_the_run_failed_with_traceback(
    tracker: expbook.Tracker, store: Store
) -> None:
    with pytest.raises(ZeroDivisionError), tracker.start_run() as run:
        run.log({"loss": 1.0})
        1 / 0  # noqa: B018
    record = store.run(run.id)
    assert record.status is RunStatus.FAILED
    assert "ZeroDivisionError: division by zero" in record.error
    assert "test_tracking.py" in record.error  # the traceback, not just the message
    assert record.metrics["loss"].count == 1  # what was logged before is kept


@pytest.mark.parametrize(
    ("exception", "status", "code"),
    [
        (KeyboardInterrupt(), RunStatus.INTERRUPTED, None),
        (SystemExit(0), RunStatus.FINISHED, 0),
        (SystemExit(3), RunStatus.FAILED, 3),
    ],
)
def test_interrupts_and_exits(
    tracker: expbook.Tracker, store: Store, exception, status, code
) -> None:
    with pytest.raises(type(exception)), tracker.start_run() as run:
        raise exception
    record = store.run(run.id)
    assert record.status is status and record.exit_code == code


def test_finished_runs_refuse_more_data(tracker: expbook.Tracker) -> None:
    run = tracker.start_run()
    run.finish()
    run.finish()  # idempotent
    with pytest.raises(RunFinishedError, match=f"run #{run.number} has finished"):
        run.log({"loss": 1.0})
    with pytest.raises(RunFinishedError):
        run.note("late")
    other = tracker.start_run()
    with pytest.raises(InvalidValueError, match="crashed"):
        other.finish("crashed")
    other.finish("failed")


def test_log_does_no_io_and_a_flush_follows_within_a_second(
    tracker: expbook.Tracker, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXPBOOK_FLUSH_INTERVAL")  # the default interval, not the tests' 0.1 s
    run = tracker.start_run()
    run.flush()  # the writer has started and captured the context
    run.log({"loss": 1.0}, step=0)
    assert len(run._points) == 1  # buffered on the caller's thread, not written
    reader = expbook.open_store(store_url)
    # the writer wakes every second; the margin is for a loaded CI machine (the point is that
    # the data arrives on its own, long before finish())
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        if reader.run(run.id).metrics:
            break
        time.sleep(0.02)
    assert reader.run(run.id).metrics["loss"].value == 1.0
    reader.close()
    run.finish()


def test_default_crash_detection_is_within_30_seconds() -> None:
    from expbook.store.base import STALE_HEARTBEATS
    from expbook.tracking.tracker import DEFAULT_FLUSH_INTERVAL, DEFAULT_HEARTBEAT_INTERVAL

    assert DEFAULT_HEARTBEAT_INTERVAL * STALE_HEARTBEATS <= 30
    assert DEFAULT_FLUSH_INTERVAL <= 1


def test_explicit_flush_and_record(tracker: expbook.Tracker) -> None:
    with tracker.start_run() as run:
        for step in range(1000):
            run.log({"x": step}, step=step)
        assert run.flush(timeout=10)
        assert run.record().metrics["x"].count == 1000


def test_parent_and_kind(tracker: expbook.Tracker, store: Store) -> None:
    with tracker.start_run(name="train") as train:
        pass
    with tracker.start_run(name="eval", kind="eval", parent=train.number) as evaluation:
        evaluation.summary.set("test/acc", 55.46, unit="%")
    record = store.run(evaluation.id)
    assert record.kind == "eval" and record.parent_id == train.id
    assert record.metrics["test/acc"].unit == "%"
    with pytest.raises(expbook.RunNotFoundError):
        tracker.start_run(parent="#999")


def test_active_run_and_tags(tracker: expbook.Tracker, store: Store) -> None:
    assert tracker.active_run() is None
    with tracker.start_run(tags=["a"]) as run:
        assert tracker.active_run() is run
        run.tag("b", "c")
        run.untag("a")
        run.set_name("renamed")
    assert tracker.active_run() is None
    record = store.run(run.id)
    assert record.tags == ("b", "c") and record.name == "renamed"


def test_context_is_captured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracker: expbook.Tracker, store: Store
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "train.py").write_text("print('v1')\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    subprocess.run(
        [*git, "remote", "add", "origin", "https://me:secret@example.com/r.git"], check=True
    )
    (repo / "train.py").write_text("print('v2')\n")
    monkeypatch.chdir(repo)
    with tracker.start_run() as run:
        pass
    record = store.run(run.id)
    assert len(record.git.commit) == 40 and record.git.branch == "main" and record.git.dirty
    assert record.git.remote == "https://example.com/r.git"
    diff = store.get_attachment(run.id, "git.diff").decode()
    assert "+print('v2')" in diff
    packages = store.get_attachment(run.id, "packages.txt").decode().splitlines()
    assert any(line.startswith("sqlalchemy==") for line in packages)
    assert record.host["cpus"] >= 1 and record.host["ram_bytes"] > 0
    assert record.cwd == str(repo) and record.pid > 0 and record.command
    assert record.hostname


def test_capture_can_be_turned_off(tracker: expbook.Tracker, store: Store) -> None:
    with tracker.start_run(capture=False) as run:
        pass
    assert store.list_attachments(run.id) == {} and store.run(run.id).host == {}


def test_module_level_api_uses_expbook_store(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    location = tmp_path / "env-store.db"
    monkeypatch.setenv("EXPBOOK_STORE", str(location))
    monkeypatch.setattr(expbook, "_default", {})
    with expbook.start_run(name="via-env", capture=False) as run:
        assert expbook.active_run() is run
        run.log({"x": 1})
    assert expbook.active_run() is None
    assert location.exists()
    assert expbook.open_store(location).run("via-env").metrics["x"].value == 1


def test_default_store_is_at_the_git_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from expbook.store import default_location

    (tmp_path / "project" / ".git").mkdir(parents=True)
    (tmp_path / "project" / "src" / "deep").mkdir(parents=True)
    expected = (tmp_path / "project" / ".expbook" / "expbook.db").resolve()
    assert default_location(tmp_path / "project" / "src" / "deep") == str(expected)
    (tmp_path / "plain").mkdir()
    plain = (tmp_path / "plain" / ".expbook" / "expbook.db").resolve()
    assert default_location(tmp_path / "plain") == str(plain)


def test_bad_flush_interval_setting_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tracker: expbook.Tracker
) -> None:
    monkeypatch.setenv("EXPBOOK_FLUSH_INTERVAL", "soon")
    with pytest.raises(InvalidValueError, match="EXPBOOK_FLUSH_INTERVAL='soon'"):
        tracker.start_run()


def test_deleting_a_running_run_stops_its_writer(
    tracker: expbook.Tracker, store: Store, capfd: pytest.CaptureFixture[str]
) -> None:
    run = tracker.start_run()
    run.log({"x": 1.0})
    run.flush()
    store.delete_run(run.id)
    run.log({"x": 2.0})
    deadline = time.monotonic() + 5
    while run._writer.is_alive() and time.monotonic() < deadline:  # gives up at once
        time.sleep(0.05)
    assert not run._writer.is_alive()
    run._high_water = 100
    for step in range(1000):  # logging on does not grow memory without bound
        run.log({"x": float(step)})
    assert len(run._points) < 100
    run.finish()
    err = capfd.readouterr().err
    assert f"giving up on run {run.id[:8]}" in err and "does not exist" in err
    assert err.count("expbook:") == 1
    with pytest.raises(expbook.RunNotFoundError):
        store.run(run.id)


def test_to_pandas_helpers(tracker: expbook.Tracker, store: Store) -> None:
    pandas = pytest.importorskip("pandas")
    for lr in (0.1, 0.01):
        with tracker.start_run(params={"lr": lr}, experiment="lr") as run:
            run.log({"loss": 1.0, "acc": float("nan")}, step=0, epoch=0.5)
            run.log({"loss": 0.5}, step=1)
    frame = store.runs(experiment="lr").to_pandas()
    assert list(frame["params.lr"]) == [0.01, 0.1]
    assert list(frame["metrics.loss"]) == [0.5, 0.5]
    assert frame["metrics.acc"].isna().all()
    assert str(frame["started_at"].dt.tz) == "UTC"
    series = store.series(run.id, "loss").to_pandas()
    assert list(series.columns) == ["step", "epoch", "value", "time"]
    assert list(series["step"]) == [0, 1] and series["epoch"].iloc[0] == 0.5
    assert pandas.isna(series["epoch"].iloc[1])
    assert str(series["time"].dt.tz) == "UTC"


# --- edge cases found in review -----------------------------------------------------------------


def test_params_nested_in_lists_are_converted_on_the_callers_thread(
    tracker: expbook.Tracker, store: Store
) -> None:
    numpy = pytest.importorskip("numpy")
    with tracker.start_run(params={"aug": [{"root": Path("/d"), "p": numpy.float32(0.5)}]}) as run:
        run.log_params({"big": 10**400, "deep": [[[{"x": (1, 2)}]]]})
        run.log({"loss": 1.0})
    record = store.run(run.id)
    assert record.params["aug"] == [{"root": "/d", "p": 0.5}]
    assert record.params["big"] == 10**400 and record.params["deep"] == [[[{"x": [1, 2]}]]]
    assert record.status is RunStatus.FINISHED and record.metrics["loss"].count == 1


def test_a_part_the_store_refuses_is_dropped_and_the_metrics_kept(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    location = tmp_path / "s.db"
    expbook.open_store(location).close()
    with sqlite3.connect(location) as connection:  # a real database refusal
        connection.execute(
            "CREATE TRIGGER no_notes BEFORE INSERT ON notes "
            "BEGIN SELECT RAISE(ABORT, 'notes are read-only here'); END"
        )
    connection.close()
    tracker = expbook.Tracker(location)
    with tracker.start_run(capture=False) as run:
        for step in range(5):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run.note("this note cannot be stored")
        assert run.flush(timeout=30)
        run.log({"loss": 0.1}, step=5)
    record = expbook.open_store(location).run(run.id)
    assert record.status is RunStatus.FINISHED
    assert record.metrics["loss"].count == 6 and record.notes == ()
    err = capfd.readouterr().err
    assert "dropped note 'this note cannot be stored'" in err and "read-only here" in err


def test_numbers_the_store_cannot_hold_are_refused_at_the_call(
    tracker: expbook.Tracker, store: Store
) -> None:
    with tracker.start_run() as run:
        run.log({"ok": 1.0}, step=0)
        with pytest.raises(InvalidStepError, match=r"larger than 9223372036854775807"):
            run.log({"ok": 2.0}, step=2**63)
        with pytest.raises(InvalidValueError, match=r"metric 'c': value .* too large for a float"):
            run.log({"c": 10**400})
        run.log({"ok": 3.0, "n": 2**62}, step=1)
    assert list(store.series(run.id, "ok").values) == [1.0, 3.0]
    assert store.run(run.id).metrics["n"].value == float(2**62)
    assert store.run(run.id).status is RunStatus.FINISHED


def test_heartbeats_keep_up_with_a_slow_flush_interval(
    tracker: expbook.Tracker, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPBOOK_FLUSH_INTERVAL", "3")
    monkeypatch.setenv("EXPBOOK_HEARTBEAT_INTERVAL", "0.2")
    run = tracker.start_run(capture=False)
    statuses = set()
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        statuses.add(store.run(run.id).status)
        time.sleep(0.05)
    run.finish()
    assert statuses == {RunStatus.RUNNING}
