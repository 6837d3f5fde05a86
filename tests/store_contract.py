"""The store contract as a reusable test class: a backend is correct when it passes it.

``StoreContract`` holds every rule of ``expbook.store.base.Store`` (its module docstring and
its methods) as tests: runs, numbers and references; every ``WriteBatch`` field, applied whole or
not at all, and exactly once per batch id; summaries and series; the filter and sort language;
notes, tags, params, experiments, settings, output, attachments and artifact records; deleting;
frozen results; several store objects, threads and processes on one location; sweeps and trials
under contention. It is the shape of Optuna's ``StorageTestCase``: the tests live in a class
whose name does not start with ``Test`` (so it is not collected here), and a backend subclasses
it with a ``Test...`` name and provides fixtures::

    from tests.store_contract import StoreContract

    class TestSqliteStore(StoreContract):
        @pytest.fixture
        def location(self, tmp_path: Path) -> str:
            return str(tmp_path / "store" / "expbook.db")

The fixtures a backend may provide (all are methods of the subclass):

- ``location`` (required unless ``store`` and ``open_again`` are overridden): where a new,
  empty store is, as ``expbook.open_store`` and ``EXPBOOK_STORE`` take it. The tests that race
  processes (sweep agents adding, claiming and expiring trials at once) hand it to child
  processes, so it must work from another process too.
- ``process_env``: environment variables another process needs to open ``location`` (a remote
  store's ``EXPBOOK_TOKEN``); default none.
- ``store``: a fresh, empty ``Store`` object on ``location``; default
  ``expbook.open_store(location)``, closed after the test.
- ``open_again``: a callable giving another ``Store`` object on the same location (a second
  client: the multi-client tests); default ``expbook.open_store(location)``; every object it
  gave is closed after the test.

A test that cannot apply to a backend is skipped, saying why, by a class attribute the
subclass sets to False or to the reason (``shared_between_processes = "lives in this process
only"``); nothing is left out silently.

Not here: what only the SQL store promises (chunk rows, rows left after a delete: tests/
test_store.py's ``TestSqlInternals``; the applied-writes record: tests/test_write_once.py;
migrations: tests/test_migrations.py), faults of a PostgreSQL connection (tests/
test_sweep_store.py, tests/test_write_once.py, tests/test_writer_faults.py), and artifact files
logged, fetched and collected through ``expbook.artifacts`` on a folder and on S3
(tests/test_artifacts.py). How to use the class: docs/store.md, "Writing a backend".
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar

import pytest

import expbook
from expbook import (
    AmbiguousRunError,
    ExperimentNotFoundError,
    FilterSyntaxError,
    InvalidValueError,
    NoteNotFoundError,
    RunNotFoundError,
    RunStatus,
)
from expbook.errors import (
    AmbiguousSweepError,
    SweepExistsError,
    SweepNotFoundError,
    TrialNotFoundError,
)
from expbook.model import ArtifactRecord, SweepState, TrialState
from expbook.store import RunQuery, RunSpec, Store, SummaryValue, WriteBatch
from expbook.store.base import ARTIFACTS_SETTING, OutputText
from expbook.store.chunks import CHUNK_POINTS, Points
from expbook.validation import flatten_params

# --- helpers ------------------------------------------------------------------------------------


def points(values, *, start=0, epochs=None, times=None) -> Points:  # type: ignore[no-untyped-def]
    result = Points()
    now = time.time()
    for i, value in enumerate(values):
        epoch = None if epochs is None else epochs[i]
        at = now + i * 1e-3 if times is None else times[i]
        result.append(start + i, value, at, epoch)
    return result


def new_run(store: Store, **spec: Any) -> str:
    return store.create_run(RunSpec(**spec)).id


def numbers(store: Store, where: str | None = None, **kwargs: Any) -> list[int]:
    return [r.number for r in store.runs(where, **kwargs)]


def logged_batch(start: int, stop: int, note: str, batch_id: str | None = None) -> WriteBatch:
    """Points ``start..stop-1`` of ``loss``, a note, a param and a tag, in one batch."""
    loss = Points()
    for step in range(start, stop):
        loss.append(step, float(step), 1000.0 + step, None)
    return WriteBatch(
        points={"loss": loss},
        notes=[(1000.0 + start, note)],
        params={f"p{start}": start},
        tags_add={f"t{start}"},
        batch_id=batch_id,
    )


def check_logged(store: Store, run_id: str, stop: int, notes: list[str]) -> None:
    series = store.series(run_id, "loss")
    assert list(series.steps) == list(range(stop))  # no duplicate step, none lost
    run = store.run(run_id)
    assert [n.text for n in run.notes] == notes
    assert run.metrics["loss"].count == stop


SPEC = {
    "method": "grid",
    "parameters": {"lr": {"values": [0.1, 0.01]}},
    "metric": {"name": "loss"},
}


def add_trial(store: Store, sweep_id: str, key: str, **options: Any) -> Any:
    """Add a trial at the sweep's current version (leased to worker ``w1`` unless told)."""
    version = store.get_sweep(sweep_id).version
    options.setdefault("worker", "w1")
    options.setdefault("params", {"key": key})
    return store.add_trial(sweep_id, expected_version=version, config_key=key, **options)


CHILD = """
import json, os, sys, time, traceback
import expbook
url, task, name, args, go = sys.argv[1:6]
args = json.loads(args)
store = expbook.open_store(url)
sweep = args["sweep"]
open(f"{go}.{name}", "w").close()  # ready
while not os.path.exists(go):
    time.sleep(0.001)
started = time.perf_counter()
out = {"added": [], "conflicts": 0, "claimed": [], "expired": []}
try:
    if task == "add":
        i = 0
        while True:
            version = store.get_sweep(sweep).version
            if version >= args["limit"]:
                break
            key = f"{name}-{i}"
            i += 1
            trial = store.add_trial(sweep, expected_version=version, params={"by": name},
                                    config_key=key, worker=name)
            if trial is None:
                out["conflicts"] += 1
                out.setdefault("refused", []).append(key)
            else:
                out["added"].append([key, trial.number, version])
    elif task == "claim":
        while (trial := store.claim_trial(sweep, name)) is not None:
            out["claimed"].append(trial.number)
    elif task == "expire":
        found = store.expire_trials(sweep, stale_after=args["stale"], max_attempts=2)
        out["expired"] = [t.number for t in found]
except BaseException:
    out["error"] = traceback.format_exc()
out["seconds"] = time.perf_counter() - started
print(json.dumps(out))
"""


def _together(
    location: str, env: dict[str, str], task: str, count: int, tmp_path: Path, **args: Any
) -> list[dict]:
    """Start ``count`` processes running ``task`` on the store at ``location``, let them go at
    the same moment (once all have opened the store), and return what each reports."""
    go = tmp_path / f"go-{uuid.uuid4().hex[:6]}"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, location, task, f"p{i}", json.dumps(args), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        for i in range(count)
    ]
    ready = [Path(f"{go}.p{i}") for i in range(count)]
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in ready) and time.monotonic() < deadline:
        time.sleep(0.01)  # every child has imported expbook and opened the store
    go.touch()
    reports = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        report = json.loads(out)
        assert "error" not in report, report["error"]  # no deadlock, no lost connection...
        reports.append(report)
    return reports


class StoreContract:
    """Every rule of the ``Store`` contract as a test. Subclass it as ``Test<Backend>`` and
    provide ``location`` (or ``store`` and ``open_again``); see the module docstring."""

    shared_between_processes: ClassVar[bool | str] = True
    """Other processes can open ``location`` (with ``process_env``) and work on the same store
    at once. False, or the reason as a string, for a store that lives in the test's process
    only (an in-memory store): the tests that race processes are skipped, saying so."""

    removes_unreferenced_blobs: ClassVar[bool | str] = True
    """``remove_unreferenced_blobs`` removes blobs from this client (``expbook artifact gc``).
    False, or the reason, for a store whose server keeps that to its own store."""

    def needs(self, capability: str) -> None:
        """Skip the test, saying why, when the backend lacks ``capability`` (a class flag)."""
        value = getattr(self, capability)
        if value is not True:
            reason = value if isinstance(value, str) else f"{capability} is False"
            pytest.skip(f"{type(self).__name__}: {reason}")

    # --- the fixtures a backend provides ------------------------------------------------------

    @pytest.fixture
    def location(self) -> str:
        raise NotImplementedError(
            f"{type(self).__name__} must provide the 'location' fixture (or 'store' and "
            "'open_again'): see tests/store_contract.py"
        )

    @pytest.fixture
    def process_env(self) -> dict[str, str]:
        return {}

    @pytest.fixture
    def store(self, location: str) -> Iterator[Store]:
        opened = expbook.open_store(location)
        yield opened
        opened.close()

    @pytest.fixture
    def open_again(self, store: Store, location: str) -> Iterator[Callable[[], Store]]:
        """Another client of the store (``store`` is opened first: the location exists)."""
        opened: list[Store] = []

        def open_() -> Store:
            again = expbook.open_store(location)
            opened.append(again)
            return again

        yield open_
        for again in opened:
            again.close()

    # --- runs: creation, numbers, references --------------------------------------------------

    def test_runs_get_sequential_numbers_and_uuids(self, store: Store) -> None:
        records = [store.create_run(RunSpec(name=f"r{i}")) for i in range(3)]
        assert [r.number for r in records] == [1, 2, 3]
        assert len({r.id for r in records}) == 3
        assert all(len(r.id) == 32 and int(r.id, 16) >= 0 for r in records)
        assert [r.number for r in store.runs()] == [3, 2, 1]  # newest first

    def test_concurrent_creation_never_reuses_a_number(
        self, open_again: Callable[[], Store]
    ) -> None:
        stores = [open_again() for _ in range(4)]
        numbers: list[int] = []

        def create(target: Store) -> None:
            for _ in range(10):
                numbers.append(target.create_run(RunSpec()).number)

        threads = [threading.Thread(target=create, args=(s,)) for s in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(numbers) == list(range(1, 41))

    def test_creating_a_run_with_its_id_again_returns_it_unchanged(self, store: Store) -> None:
        run_id = uuid.uuid4().hex
        first = store.create_run(RunSpec(id=run_id, name="shared", params={"lr": 0.1}))
        again = store.create_run(RunSpec(id=run_id, name="other", params={"lr": 0.2}))
        assert (again.id, again.number, again.name) == (run_id, first.number, "shared")
        assert store.run(run_id).params == {"lr": 0.1}
        assert store.count_runs(RunQuery()) == 1

    def test_parent_must_exist(self, store: Store) -> None:
        with pytest.raises(RunNotFoundError, match="parent"):
            store.create_run(RunSpec(parent="f" * 32))

    def test_resolve_run_by_number_prefix_and_name(self, store: Store) -> None:
        first = store.create_run(RunSpec(name="gru-256"))
        second = store.create_run(RunSpec(name="twin"))
        third = store.create_run(RunSpec(name="twin"))
        assert store.resolve_run(1) == first.id
        assert store.resolve_run("#2") == second.id
        assert store.resolve_run("3") == third.id
        assert store.resolve_run(first.id[:8]) == first.id
        assert store.resolve_run(first.id.upper()) == first.id
        assert store.resolve_run("gru-256") == first.id
        with pytest.raises(AmbiguousRunError, match=r"#2 \(twin\), #3 \(twin\)"):
            store.resolve_run("twin")
        with pytest.raises(RunNotFoundError, match="#7"):
            store.resolve_run("#7")
        with pytest.raises(RunNotFoundError, match="'nothing'"):
            store.resolve_run("nothing")

    def test_resolve_run_last_and_last_n(self, store: Store) -> None:
        with pytest.raises(RunNotFoundError, match="no run last: the store has 0 runs"):
            store.resolve_run("last")
        first = store.create_run(RunSpec(name="a"))
        named_last = store.create_run(RunSpec(name="last"))
        third = store.create_run(RunSpec(name="c"))
        assert store.resolve_run("last") == third.id  # the keyword, not the run named "last"
        assert store.resolve_run("last~0") == third.id
        assert store.resolve_run("last~1") == named_last.id
        assert store.resolve_run(" last~2 ") == first.id
        with pytest.raises(RunNotFoundError, match="no run last~3: the store has 3 runs"):
            store.resolve_run("last~3")
        with pytest.raises(RunNotFoundError, match="'last~x'"):
            store.resolve_run("last~x")  # not the keyword: looked up as a name
        huge = "9" * 25  # beyond 64 bits: no run's number, not an error of the database
        for ref in (huge, f"#{huge}", f"last~{huge}"):
            with pytest.raises(RunNotFoundError):
                store.resolve_run(ref)

    # --- params, tags, notes, names, experiments ----------------------------------------------

    def test_params_keep_their_types(self, store: Store) -> None:
        params = flatten_params(
            {
                "lr": 1e-3,
                "layers": 2,
                "amp": True,
                "optimizer": {"name": "adam", "betas": [0.9, 0.999]},
                "scheduler": None,
                "nan_param": float("nan"),
            }
        )
        run_id = new_run(store, params=params)
        got = store.run(run_id).params
        assert got["lr"] == 1e-3 and type(got["lr"]) is float
        assert got["layers"] == 2 and type(got["layers"]) is int
        assert got["amp"] is True
        assert got["optimizer.name"] == "adam"
        assert got["optimizer.betas"] == [0.9, 0.999]
        assert got["scheduler"] is None
        assert math.isnan(got["nan_param"])

    def test_set_params_later_overwrites_and_adds(self, store: Store) -> None:
        run_id = new_run(store, params={"lr": 0.1})
        store.set_params(run_id, {"lr": 0.2, "warmup": 10})
        assert store.run(run_id).params == {"lr": 0.2, "warmup": 10}

    def test_tags_notes_and_names(self, store: Store) -> None:
        run_id = new_run(store, name="first", tags=["gru", "baseline"])
        store.add_tags(run_id, "ablation", "gru")
        store.remove_tags(run_id, "baseline")
        store.add_note(run_id, "GPU utilization around 20%")
        store.add_note(run_id, "second *markdown* note")
        store.update_run(run_id, name="renamed")
        run = store.run(run_id)
        assert run.tags == ("ablation", "gru")
        assert [n.text for n in run.notes] == [
            "GPU utilization around 20%", "second *markdown* note"]  # fmt: skip
        assert run.notes[0].created_at <= run.notes[1].created_at
        assert run.name == "renamed"
        with pytest.raises(InvalidValueError, match="note"):
            store.add_note(run_id, "   ")
        with pytest.raises(InvalidValueError, match="tag"):
            store.add_tags(run_id, " padded ")

    def test_notes_are_edited_and_deleted_only_through_their_run(self, store: Store) -> None:
        first, second = new_run(store, name="a"), new_run(store, name="b")
        store.add_note(first, "keep")
        store.add_note(first, "typo: GPU utilisation 2%")
        store.add_note(second, "other run")
        keep, typo = store.run(first).notes
        store.edit_note(first, typo.id, "GPU utilization around 20%")
        assert [(n.id, n.text) for n in store.run(first).notes] == [
            (keep.id, "keep"), (typo.id, "GPU utilization around 20%")]  # fmt: skip
        store.edit_note(first, keep.id, None)
        assert [n.text for n in store.run(first).notes] == ["GPU utilization around 20%"]
        other = store.run(second).notes[0]
        with pytest.raises(NoteNotFoundError, match=str(other.id)):
            store.edit_note(first, other.id, "not mine")
        with pytest.raises(NoteNotFoundError):
            store.edit_note(first, keep.id, None)  # already gone
        with pytest.raises(InvalidValueError, match="note"):
            store.edit_note(first, typo.id, "  ")
        assert store.run(second).notes == (other,)

    def test_experiments_and_moving_runs(self, store: Store) -> None:
        created = store.create_experiment("hidden size", hypothesis="bigger is better")
        assert created.name == "hidden size" and created.hypothesis == "bigger is better"
        again = store.create_experiment("hidden size", hypothesis="ignored")
        assert again.id == created.id and again.hypothesis == "bigger is better"
        run_id = new_run(store, experiment="hidden size")
        other = new_run(store, experiment="sequence length")  # created on the fly
        assert store.run(run_id).experiment == "hidden size"
        store.update_run(other, experiment="hidden size")
        assert store.get_experiment("hidden size").run_count == 2
        updated = store.update_experiment("hidden size", conclusion="256 wins by 1%")
        assert updated.conclusion == "256 wins by 1%"
        assert [e.name for e in store.list_experiments()] == ["hidden size", "sequence length"]
        store.update_run(other, experiment=None)
        assert store.run(other).experiment is None
        with pytest.raises(ExperimentNotFoundError):
            store.get_experiment("nope")
        with pytest.raises(ExperimentNotFoundError):
            store.update_experiment("nope", conclusion="x")

    # --- writes: every field, whole or not at all, exactly once -------------------------------

    def test_every_write_batch_field_is_applied(self, store: Store) -> None:
        """One batch holding every ``WriteBatch`` field, each read back; a new field fails
        this test until it has a check here."""
        parent = store.create_run(RunSpec(name="parent"))
        run = store.create_run(RunSpec(name="r", tags=["old"]))
        store.add_note(run.id, "to edit")
        store.add_note(run.id, "to delete")
        edited, deleted = store.run(run.id).notes
        store.write(run.id, WriteBatch(points={"cpu": points([1.0, 2.0])}))
        now = time.time()
        model = ArtifactRecord("model.pt", "ab" * 32, 3, now)
        update = {
            "name": "renamed", "status": "failed", "ended_at": now, "exit_code": 3,
            "error": "Traceback ...", "kind": "eval", "git_commit": "c" * 40,
            "git_branch": "main", "git_remote": "https://example.com/r.git", "git_dirty": True,
            "host": {"cpus": 8}, "command": ["python", "train.py"], "cwd": "/work",
            "pid": 4242, "hostname": "gpu-1", "recording_error": "parser broke",
            "recorded_offset": 1234, "recorded_autolog": {"autolog-1.jsonl": 56},
            "experiment": "moved here", "parent": parent.id,
        }  # fmt: skip
        batch = WriteBatch(
            replaced={"cpu": points([5.0], start=3)},
            points={"loss": points([1.0, 0.5]), "cpu": points([6.0], start=4)},
            params={"lr": 0.1, "model.depth": 3},
            tags_add={"new"},
            tags_remove={"old"},
            notes=[(now + 1, "added")],
            note_edits={edited.id: "edited", deleted.id: None},
            summary={"best": SummaryValue(0.9, "%", now)},
            attachments={"a.txt": b"attached"},
            artifacts={"model.pt": model},
            output=[OutputText("stdout", now, "one\n"), OutputText("stderr", now, "two\n")],
            update=update,
            heartbeat=now + 2,
        )
        store.write(run.id, batch)
        got = store.run(run.id)
        git = (got.git.commit, got.git.branch, got.git.remote, got.git.dirty)
        checks: dict[str, Callable[[], bool]] = {
            "replaced": lambda: list(store.series(run.id, "cpu").values) == [5.0, 6.0],
            "points": lambda: list(store.series(run.id, "loss").values) == [1.0, 0.5],
            "params": lambda: got.params == {"lr": 0.1, "model.depth": 3},
            "tags_add": lambda: "new" in got.tags,
            "tags_remove": lambda: "old" not in got.tags,
            "notes": lambda: got.notes[-1].text == "added",
            "note_edits": lambda: [n.text for n in got.notes] == ["edited", "added"],
            "summary": lambda: (got.metrics["best"].value, got.metrics["best"].unit) == (0.9, "%"),
            "attachments": lambda: store.get_attachment(run.id, "a.txt") == b"attached",
            "artifacts": lambda: store.list_artifacts(run.id) == [model],
            "output": lambda: [(c.stream, c.text) for c in store.get_output(run.id)] == [
                ("stdout", "one\n"), ("stderr", "two\n")],
            "update": lambda: (
                got.name, got.status, got.ended_at, got.exit_code, got.error, got.kind, git,
                dict(got.host), got.command, got.cwd, got.pid, got.hostname,
                got.recording_error, got.recorded_offset, dict(got.recorded_autolog),
                got.experiment, got.parent_id,
            ) == (
                "renamed", RunStatus.FAILED, now, 3, "Traceback ...", "eval",
                ("c" * 40, "main", "https://example.com/r.git", True), {"cpus": 8},
                ("python", "train.py"), "/work", 4242, "gpu-1", "parser broke", 1234,
                {"autolog-1.jsonl": 56}, "moved here", parent.id,
            ),
            "heartbeat": lambda: got.heartbeat_at == now + 2,
        }  # fmt: skip
        names = [f.name for f in fields(WriteBatch) if f.name != "batch_id"]  # no change
        assert sorted(checks) == sorted(names), "add a check for the new WriteBatch field"
        failed = [name for name, check in checks.items() if not check()]
        assert failed == [], f"not applied: {failed}"

    def test_a_write_is_applied_whole_or_not_at_all(self, store: Store) -> None:
        parent = store.create_run(RunSpec(name="parent"))
        run = store.create_run(RunSpec(name="r", tags=["t"]))
        store.add_note(run.id, "kept")
        before = store.run(run.id)

        def everything(parent: str | None, note_edits: dict[int, str | None]) -> WriteBatch:
            return WriteBatch(
                points={"loss": points([1.0, 2.0])}, params={"lr": 1}, tags_add={"u"},
                tags_remove={"t"}, notes=[(time.time(), "lost")], note_edits=note_edits,
                summary={"acc": SummaryValue(0.5, None, time.time())},
                attachments={"a": b"x"}, output=[OutputText("stdout", 1.0, "out\n")],
                update={"name": "renamed", "status": "finished", "parent": parent},
                heartbeat=time.time() + 100,
            )  # fmt: skip

        with pytest.raises(NoteNotFoundError):  # one item of the batch is refused
            store.write(run.id, everything(None, {10**9: "no such note"}))
        with pytest.raises(RunNotFoundError, match="parent"):
            store.write(run.id, everything("f" * 32, {}))
        assert store.run(run.id) == before
        assert store.series_keys(run.id) == [] and store.list_attachments(run.id) == {}
        assert store.get_output(run.id) == []
        store.write(run.id, everything(parent.id, {}))  # and now it goes in
        assert store.run(run.id).parent_id == parent.id

    def test_writing_to_a_missing_run_names_it(self, store: Store) -> None:
        with pytest.raises(RunNotFoundError, match="0" * 32):
            store.write("0" * 32, WriteBatch(notes=[(time.time(), "x")]))

    def test_a_batch_id_is_applied_once_and_the_series_goes_on(self, store: Store) -> None:
        run_id = store.create_run(RunSpec(name="r")).id
        first = logged_batch(0, 10, "one", batch_id="a" * 32)
        store.write(run_id, first)
        store.write(run_id, first)  # a later call retrying a batch whose write seemed to fail
        check_logged(store, run_id, 10, ["one"])
        store.write(run_id, logged_batch(10, 20, "two"))  # the key's chunks go on from there
        store.write(run_id, logged_batch(20, 25, "three", batch_id="b" * 32))
        check_logged(store, run_id, 25, ["one", "two", "three"])
        assert store.run(run_id).params == {"p0": 0, "p10": 10, "p20": 20}
        other = store.create_run(RunSpec(name="other")).id  # an id is per run
        store.write(other, logged_batch(0, 3, "x", batch_id="a" * 32))
        check_logged(store, other, 3, ["x"])

    def test_a_deleted_runs_key_is_never_written_through(self, store: Store) -> None:
        old = store.create_run(RunSpec(name="old"))
        store.write(old.id, WriteBatch(points={"loss": points([1.0])}))
        store.delete_runs([old.id])
        new = store.create_run(RunSpec(name="new"))  # SQLite may give it the deleted run's key
        with pytest.raises(RunNotFoundError):
            store.write(old.id, WriteBatch(points={"loss": points([2.0], start=1)}, update={
                "status": "finished"}))  # fmt: skip
        record = store.run(new.id)
        assert record.status is RunStatus.RUNNING and record.metrics == {}

    def test_text_that_postgresql_refuses_is_cleaned(self, store: Store) -> None:
        run_id = new_run(store, params={"p": "a\x00b"})
        store.write(run_id, WriteBatch(output=[OutputText("stdout", 1.0, "x\x00y\n")],
                                       update={"error": "bad\x00"}))  # fmt: skip
        assert store.get_output(run_id)[0].text == "x\ufffdy\n"
        assert store.run(run_id).params["p"] == "a\x00b"  # the JSON form keeps it exactly

    def test_api_input_errors_name_the_problem(self, store: Store) -> None:
        numpy = pytest.importorskip("numpy")
        from expbook import MetricNotFoundError

        run = store.create_run(RunSpec(name="r"))
        store.set_metric(run, "acc", numpy.float32(0.5))
        assert store.run(run.id).metrics["acc"].value == 0.5
        with pytest.raises(InvalidValueError, match="unknown run status 'done'; one of running"):
            store.runs(status="done")
        with pytest.raises(InvalidValueError, match="'crashed' is worked out from the heartbeat"):
            store.update_run(run, status="crashed")
        with pytest.raises(InvalidValueError, match="invalid run kind None"):
            store.create_run(RunSpec(kind=None))  # type: ignore[arg-type]
        with pytest.raises(InvalidValueError, match="tags must be a list of strings, not str"):
            store.create_run(RunSpec(tags="baseline"))  # type: ignore[arg-type]
        with pytest.raises(
            MetricNotFoundError, match=r"run #1 has no metric 'typo' \(its metrics: acc\)"
        ):
            store.series(run, "typo")
        with pytest.raises(TypeError):
            store.run(run.id).params["x"] = 1  # type: ignore[index]
        with pytest.raises(InvalidValueError, match="NUL"):
            store.add_note(run, "a\x00b")

    # --- metrics: summaries and series --------------------------------------------------------

    def test_summary_tracks_last_min_max_with_steps(self, store: Store) -> None:
        run_id = new_run(store)
        store.write(
            run_id, WriteBatch(points={"valid/loss": points([0.9, 0.4, 0.5], epochs=[1, 2, 3])})
        )
        store.write(run_id, WriteBatch(points={"valid/loss": points([0.45, 0.95], start=3)}))
        summary = store.run(run_id).metrics["valid/loss"]
        assert summary.value == 0.95 and summary.step == 4
        assert (summary.min, summary.min_step, summary.min_epoch) == (0.4, 1, 2.0)
        assert (summary.max, summary.max_step) == (0.95, 4)
        assert summary.count == 5

    def test_nan_and_inf_are_stored_faithfully(self, store: Store) -> None:
        run_id = new_run(store)
        values = [1.0, float("nan"), float("inf"), float("-inf"), 0.25]
        store.write(run_id, WriteBatch(points={"loss": points(values)}))
        series = store.series(run_id, "loss")
        assert list(series.values)[:1] == [1.0]
        assert math.isnan(series.values[1])
        assert series.values[2] == math.inf and series.values[3] == -math.inf
        summary = store.run(run_id).metrics["loss"]
        assert summary.value == 0.25
        assert summary.min == -math.inf and summary.min_step == 3
        assert summary.max == math.inf and summary.max_step == 2
        store.write(run_id, WriteBatch(points={"loss": points([float("nan")], start=5)}))
        assert math.isnan(store.run(run_id).metrics["loss"].value)  # a NaN last value stays NaN

    def test_all_nan_series_has_no_min_or_max(self, store: Store) -> None:
        run_id = new_run(store)
        store.write(run_id, WriteBatch(points={"loss": points([float("nan")] * 3)}))
        summary = store.run(run_id).metrics["loss"]
        assert math.isnan(summary.value) and summary.min is None and summary.max is None
        assert summary.count == 3

    def test_set_metric_is_a_summary_value_not_a_point(self, store: Store) -> None:
        run_id = new_run(store)
        store.write(run_id, WriteBatch(points={"valid/acc": points([0.5, 0.6])}))
        store.set_metric(run_id, "manual/valid_acc", 55.46, unit="%")
        store.set_metric(run_id, "valid/acc", 0.7)
        run = store.run(run_id)
        manual = run.metrics["manual/valid_acc"]
        assert (manual.value, manual.unit, manual.count, manual.step) == (55.46, "%", 0, None)
        assert run.metrics["valid/acc"].value == 0.7 and run.metrics["valid/acc"].count == 2
        assert len(store.series(run_id, "valid/acc")) == 2
        assert len(store.series(run_id, "manual/valid_acc")) == 0
        with pytest.raises(InvalidValueError, match="manual"):
            store.set_metric(run_id, "manual", "high")  # type: ignore[arg-type]

    def test_set_value_counts_for_min_max_only_without_points(self, store: Store) -> None:
        run_id = new_run(store)
        store.set_metric(run_id, "acc", 0.5)
        assert store.run(run_id).metrics["acc"].max == 0.5
        store.write(run_id, WriteBatch(points={"acc": points([0.7, 0.8])}))
        summary = store.run(run_id).metrics["acc"]
        assert (summary.min, summary.max, summary.count) == (0.7, 0.8, 2)  # points decide now
        store.set_metric(run_id, "acc", 0.99)
        summary = store.run(run_id).metrics["acc"]
        assert (summary.value, summary.min, summary.max) == (0.99, 0.7, 0.8)

    def test_reported_extremes_from_a_summary_table(self, store: Store) -> None:
        run_id = new_run(store)
        table = SummaryValue(0.032, None, time.time(), step=53, epoch=53.0, min=0.032,
                             min_step=53, min_epoch=53.0, max=0.106, max_step=1,
                             max_epoch=1.0)  # fmt: skip
        store.write(run_id, WriteBatch(summary={"train/loss": table}))
        summary = store.run(run_id).metrics["train/loss"]
        assert (summary.min, summary.min_epoch, summary.max, summary.max_epoch) == (
            0.032,
            53.0,
            0.106,
            1.0,
        )
        assert (summary.value, summary.step, summary.count) == (0.032, 53, 0)

    def test_series_round_trip_with_epochs_and_ranges(self, store: Store) -> None:
        run_id = new_run(store)
        values = points([float(i) for i in range(10)], epochs=[i / 2 for i in range(10)])
        store.write(run_id, WriteBatch(points={"loss": values}))
        series = store.series(run_id, "loss")
        assert list(series.steps) == list(range(10))
        assert list(series.epochs) == [i / 2 for i in range(10)]
        window = store.series(run_id, "loss", step_min=3, step_max=5)
        assert list(window.steps) == [3, 4, 5] and list(window.values) == [3.0, 4.0, 5.0]
        no_epochs = new_run(store)
        store.write(no_epochs, WriteBatch(points={"loss": points([1.0, 2.0])}))
        assert [p.epoch for p in store.series(no_epochs, "loss")] == [None, None]
        assert store.series_keys(run_id) == ["loss"]

    def test_out_of_order_steps_read_back_sorted_and_stable(self, store: Store) -> None:
        run_id = new_run(store)
        batch = Points()
        now = time.time()
        for i, step in enumerate([5, 1, 3, 1]):
            batch.append(step, float(i), now - 10 + i, None)
        store.write(run_id, WriteBatch(points={"x": batch}))
        store.write(run_id, WriteBatch(points={"x": points([9.0], start=0)}))  # step 0, last
        series = store.series(run_id, "x")
        assert list(series.steps) == [0, 1, 1, 3, 5]
        assert list(series.values) == [9.0, 1.0, 3.0, 2.0, 0.0]
        assert store.run(run_id).metrics["x"].value == 9.0  # last logged, not highest step

    def test_many_small_writes_read_back_whole_and_in_order(self, store: Store) -> None:
        run = store.create_run(RunSpec())
        for step in range(300):
            store.write(run.id, WriteBatch(points={"loss": points([step * 0.5], start=step)}))
        series = store.series(run.id, "loss")
        assert list(series.steps) == list(range(300))
        assert list(series.values) == [s * 0.5 for s in range(300)]
        assert store.run(run.id).metrics["loss"].count == 300

    def test_a_big_batch_reads_back_whole(self, store: Store) -> None:
        run = store.create_run(RunSpec())
        n = CHUNK_POINTS * 3 + 17
        store.write(run.id, WriteBatch(points={"loss": points([float(i) for i in range(n)])}))
        series = store.series(run.id, "loss")
        assert list(series.steps) == list(range(n)) and series.values[-1] == n - 1
        edge = store.series(run.id, "loss", step_min=CHUNK_POINTS - 1, step_max=CHUNK_POINTS)
        assert list(edge.values) == [CHUNK_POINTS - 1, CHUNK_POINTS]

    def test_equal_steps_keep_the_order_they_were_logged_across_chunks(self, store: Store) -> None:
        run_id = new_run(store)
        first = points([1.0] * CHUNK_POINTS, start=100)  # steps 100..2147, logged first
        store.write(run_id, WriteBatch(points={"x": first}))
        store.write(run_id, WriteBatch(points={"x": points([2.0] * 200, start=0)}))  # a restart
        series = store.series(run_id, "x", step_min=100, step_max=100)
        assert list(series.values) == [1.0, 2.0]

    def test_a_series_is_rewritten_with_its_summary(self, store: Store) -> None:
        run = store.create_run(RunSpec())
        store.set_metric(run.id, "other", 1.0)
        store.write(run.id, WriteBatch(points={"cpu": points([5.0, 1.0, 9.0, 3.0])}))
        coarse = points([3.0, 6.0], start=1)
        store.write(
            run.id, WriteBatch(replaced={"cpu": coarse}, points={"cpu": points([2.0], start=7)})
        )
        series = store.series(run.id, "cpu")
        assert list(series.steps) == [1, 2, 7] and list(series.values) == [3.0, 6.0, 2.0]
        summary = store.run(run.id).metrics["cpu"]
        assert (summary.value, summary.min, summary.max, summary.count) == (2.0, 2.0, 6.0, 3)
        assert store.run(run.id).metric("other") == 1.0  # other keys are untouched
        # a rewrite after many small flushes (an open chunk stack) leaves only the new points
        for step in range(10, 40):
            store.write(run.id, WriteBatch(points={"cpu": points([1.0], start=step)}))
        store.write(run.id, WriteBatch(replaced={"cpu": points([4.0], start=50)}))
        store.write(run.id, WriteBatch(points={"cpu": points([8.0], start=51)}))
        assert list(store.series(run.id, "cpu").values) == [4.0, 8.0]
        assert store.run(run.id).metrics["cpu"].count == 2

    def test_iter_series_reads_many_runs_at_once(self, store: Store) -> None:
        ids = [new_run(store) for _ in range(3)]
        for n, run_id in enumerate(ids):
            batch = {"b": points([1.0]), "a": points([float(n)] * 3)}
            store.write(run_id, WriteBatch(points=batch))
        got = [(s.run_id, s.key, list(s.values)) for s in store.iter_series(ids[::-1], ["a"])]
        assert got == [(ids[2], "a", [2.0] * 3), (ids[1], "a", [1.0] * 3),
                       (ids[0], "a", [0.0] * 3)]  # fmt: skip
        every = [(s.run_id, s.key) for s in store.iter_series(ids)]
        assert every == [(run_id, key) for run_id in ids for key in ("a", "b")]  # keys sorted
        assert store.series_keys(ids[0]) == ["a", "b"]

    # --- status -------------------------------------------------------------------------------

    def test_stale_heartbeat_reads_as_crashed(self, store: Store) -> None:
        alive = store.create_run(RunSpec(heartbeat_interval=60))
        dead = store.create_run(RunSpec(heartbeat_interval=0.05, started_at=time.time() - 10))
        done = store.create_run(RunSpec(heartbeat_interval=0.05, started_at=time.time() - 10))
        store.write(done.id, WriteBatch(update={"status": "finished", "ended_at": time.time()}))
        assert store.run(alive.id).status is RunStatus.RUNNING
        assert store.run(dead.id).status is RunStatus.CRASHED
        assert store.run(done.id).status is RunStatus.FINISHED
        assert [r.number for r in store.runs(status="crashed")] == [dead.number]
        assert [r.number for r in store.runs("status = 'crashed'")] == [dead.number]
        # a crashed run's duration ends at its last heartbeat
        assert store.run(dead.id).duration == pytest.approx(0.0, abs=0.01)
        # a run that comes back (a suspended laptop) is running again
        store.write(dead.id, WriteBatch(heartbeat=time.time() + 5))
        assert store.run(dead.id).status is RunStatus.RUNNING

    def test_pruned_runs_never_read_as_crashed(self, store: Store) -> None:
        run = store.create_run(
            RunSpec(name="t", heartbeat_interval=0.01, started_at=time.time() - 60)
        )
        store.update_run(run.id, status="pruned")
        assert store.run(run.id).status is RunStatus.PRUNED  # a stale heartbeat: only running

    # --- querying -----------------------------------------------------------------------------

    @pytest.fixture
    def grid(self, store: Store) -> Store:
        """Six finished runs of a batch-size x learning-rate grid, like the audio log."""
        results = {(4, 8e-5): 5.91, (4, 5e-4): 2.95, (8, 8e-5): 5.79, (8, 5e-4): 2.89,
                   (32, 8e-5): 1.83, (32, 5e-4): 0.68}  # fmt: skip
        for (batch, lr), acc in results.items():
            run = store.create_run(
                RunSpec(
                    name=f"regnet-b{batch}",
                    experiment="batch size x lr",
                    params={"batch_size": batch, "lr": lr, "model": "regnet"},
                    tags=["regnet"] + (["small-batch"] if batch < 16 else []),
                )
            )
            store.write(
                run.id,
                WriteBatch(
                    points={"valid/acc": points([acc / 2, acc])},
                    update={"status": "finished", "ended_at": time.time()},
                ),
            )
        store.create_run(RunSpec(name="unrelated", params={"lr": "auto"}))
        return store

    @pytest.mark.parametrize(
        ("where", "expected"),
        [
            ("params.batch_size = 8", [4, 3]),
            ("params.lr < 1e-4 and metrics.valid/acc > 5", [3, 1]),
            ("params.lr = 'auto'", [7]),
            ("params.lr > 1e-4", [6, 4, 2]),  # the text 'auto' is not a number
            ("tags has 'small-batch'", [4, 3, 2, 1]),
            ("not tags has 'regnet'", [7]),
            ("max(metrics.valid/acc) >= 5.79 or name = 'unrelated'", [7, 3, 1]),
            ("min(metrics.valid/acc) < 0.5", [6]),
            ("count(metrics.valid/acc) = 2", [6, 5, 4, 3, 2, 1]),
            ("metrics.valid/acc is null", [7]),
            ("params.batch_size in (4, 32)", [6, 5, 2, 1]),
            ("params.batch_size not in (4, 32)", [7, 4, 3]),
            ("name ~ 'regnet-b3*'", [6, 5]),
            ("name !~ 'regnet*'", [7]),
            ("experiment = 'batch size x lr' and status = 'finished'", [6, 5, 4, 3, 2, 1]),
            ("status = 'running'", [7]),
            ("duration < 1h and number <= 2", [2, 1]),
            ("started >= '2000-01-01' and number = 1", [1]),
            ("not (params.model = 'regnet')", [7]),
            ("params.missing != 1", []),
            ("params.missing = null", [7, 6, 5, 4, 3, 2, 1]),
        ],
    )
    def test_filter_language(self, grid: Store, where: str, expected: list[int]) -> None:
        assert numbers(grid, where) == expected

    def test_filter_values_are_bound_not_formatted(self, grid: Store) -> None:
        hostile = "x' OR 1=1 --"
        assert numbers(grid, f'name = "{hostile}"') == []
        assert numbers(grid, "params.model = 'regnet\\' OR \\'1\\'=\\'1'") == []

    def test_sorting(self, grid: Store) -> None:
        assert numbers(grid, "experiment = 'batch size x lr'", sort="-metrics.valid/acc") == [
            1, 3, 2, 4, 5, 6,
        ]  # fmt: skip
        assert numbers(grid, sort="params.batch_size, -params.lr")[:3] == [2, 1, 4]
        assert numbers(grid, sort="metrics.valid/acc")[-1] == 7  # missing values sort last
        assert numbers(grid, sort="-metrics.valid/acc")[-1] == 7
        assert numbers(grid, sort="name desc, number asc") == [7, 3, 4, 1, 2, 5, 6]  # lexical

    def test_selection_options_limit_offset_and_count(self, grid: Store) -> None:
        assert numbers(grid, experiment="batch size x lr", limit=2) == [6, 5]
        assert numbers(grid, experiment="batch size x lr", limit=2, offset=2) == [4, 3]
        assert numbers(grid, status=["running"]) == [7]
        assert grid.count_runs(RunQuery(where="params.batch_size < 16")) == 4
        assert grid.count_runs(RunQuery(experiments=("nope",))) == 0

    def test_runs_are_read_by_their_ids(self, store: Store) -> None:
        ids = [new_run(store, name=f"r{i}") for i in range(3)]
        found = store.find_runs(RunQuery(ids=(ids[0], ids[2])))
        assert [r.id for r in found] == [ids[2], ids[0]]  # newest first, as always
        assert store.count_runs(RunQuery(ids=(ids[1], "0" * 32))) == 1
        assert store.find_runs(RunQuery(ids=("0" * 32,))) == ()

    def test_bad_filters_raise_with_a_position(self, grid: Store) -> None:
        with pytest.raises(FilterSyntaxError) as error:
            grid.runs("params.lr < and tags has 'x'")
        assert error.value.position == 12
        with pytest.raises(FilterSyntaxError, match="unknown field"):
            grid.runs(sort="-bogus")

    def test_text_sorts_and_compares_bytewise_on_every_backend(self, store: Store) -> None:
        for name in ("adam", "B", "Zeta", "b-run"):
            store.create_run(RunSpec(name=name, params={"opt": name}))
        assert [r.name for r in store.runs(sort="name")] == ["B", "Zeta", "adam", "b-run"]
        assert [r.name for r in store.runs(sort="params.opt")] == ["B", "Zeta", "adam", "b-run"]
        assert [r.name for r in store.runs("params.opt < 'a'", sort="name")] == ["B", "Zeta"]
        assert [r.name for r in store.runs("name >= 'a'", sort="name")] == ["adam", "b-run"]

    def test_nan_finds_diverged_runs(self, store: Store) -> None:
        diverged = new_run(store, name="diverged", params={"init": float("nan")})
        healthy = new_run(store, name="healthy", params={"init": 0.1})
        store.write(diverged, WriteBatch(points={"loss": points([1.0, float("nan")])}))
        store.write(healthy, WriteBatch(points={"loss": points([1.0, 0.5])}))
        assert [r.name for r in store.runs("metrics.loss = nan")] == ["diverged"]
        assert [r.name for r in store.runs("metrics.loss != nan")] == ["healthy"]
        assert [r.name for r in store.runs("params.init = nan")] == ["diverged"]

    # --- attachments, output, settings --------------------------------------------------------

    def test_attachments_round_trip(self, store: Store) -> None:
        run_id = new_run(store)
        diff = ("diff --git a/x b/x\n+é\n" * 1000).encode()
        store.write(run_id, WriteBatch(attachments={"git.diff": diff, "packages.txt": b"a==1"}))
        assert store.get_attachment(run_id, "git.diff") == diff
        assert store.list_attachments(run_id) == {"git.diff": len(diff), "packages.txt": 4}
        assert store.get_attachment(run_id, "missing") is None
        store.write(run_id, WriteBatch(attachments={"packages.txt": b"a==2\nb==1"}))  # replaced
        assert store.get_attachment(run_id, "packages.txt") == b"a==2\nb==1"

    def test_output_tail_reads_only_the_last_chunks(self, store: Store) -> None:
        run_id = new_run(store)
        for n in range(5):
            store.write(run_id, WriteBatch(output=[OutputText("stdout", float(n), f"line {n}\n")]))
        everything = store.get_output(run_id)
        assert [c.text for c in everything] == [f"line {n}\n" for n in range(5)]
        assert store.get_output(run_id, last=2) == everything[-2:]
        assert store.get_output(run_id, after=everything[1].id, last=10) == everything[2:]
        assert store.get_output(run_id, last=0) == []

    def test_settings_are_kept_for_every_client(
        self, store: Store, open_again: Callable[[], Store]
    ) -> None:
        assert store.get_setting("contract.example") is None
        store.set_setting("contract.example", "one")
        store.set_setting("contract.example", "two")  # replaced
        other = open_again()
        assert other.get_setting("contract.example") == "two"
        other.set_setting("contract.example", None)  # removed
        assert store.get_setting("contract.example") is None
        with pytest.raises(InvalidValueError, match="setting"):
            store.set_setting("contract.example", "a\x00b")
        assert store.get_setting("contract.example") is None

    def test_the_schema_version_is_the_same_for_every_client(
        self, store: Store, open_again: Callable[[], Store]
    ) -> None:
        version = store.schema_version()
        assert isinstance(version, str) and version
        assert open_again().schema_version() == version

    # --- artifacts: records in the store, contents in its artifact location ------------------
    # (logging, fetching and collecting artifact files through expbook.artifacts, on a folder
    # and on S3: tests/test_artifacts.py)

    @pytest.fixture
    def located(self, store: Store, tmp_path: Path) -> Path:
        """The store with its artifact location set to a folder (PostgreSQL has no default)."""
        root = tmp_path / "blobs"
        store.set_setting(ARTIFACTS_SETTING, str(root))
        return root

    def test_artifact_records_are_kept_by_name_and_found_by_hash(
        self, store: Store, located: Path
    ) -> None:
        blobs = store.blobs()
        (a, _), (b, _), (c, _) = (blobs.put_bytes(data) for data in (b"a", b"bb", b"ccc"))
        run, other = store.create_run(RunSpec(name="a")), store.create_run(RunSpec(name="b"))
        store.write(run.id, WriteBatch(artifacts={
            "z.pt": ArtifactRecord("z.pt", a, 1, 1.0),
            "m/x.pt": ArtifactRecord("m/x.pt", b, 2, 2.0)}))  # fmt: skip
        store.write(other.id, WriteBatch(artifacts={"y.pt": ArtifactRecord("y.pt", b, 2, 3.0)}))
        assert [r.name for r in store.list_artifacts(run.id)] == ["m/x.pt", "z.pt"]  # by name
        store.write(run.id, WriteBatch(artifacts={"z.pt": ArtifactRecord("z.pt", c, 3, 4.0)}))
        assert store.list_artifacts(run.id)[1] == ArtifactRecord("z.pt", c, 3, 4.0)  # replaced
        assert store.artifact_references([a, b, c, "d" * 64]) == {b, c}
        assert store.delete_runs([run.id]) == 1
        assert store.artifact_references([a, b, c]) == {b}  # still held by the other run
        assert store.list_artifacts(other.id) == [ArtifactRecord("y.pt", b, 2, 3.0)]
        # the blob only the deleted run held went with it; the other run's blob stays, and so
        # does a, which no run held when the run was deleted (expbook artifact gc's work)
        assert [blobs.exists(h) for h in (a, b, c)] == [True, True, False]
        assert blobs.read(b) == b"bb"

    def test_unreferenced_blobs_are_removed_on_request(self, store: Store, located: Path) -> None:
        self.needs("removes_unreferenced_blobs")
        blobs = store.blobs()
        (held, _), (loose, _) = blobs.put_bytes(b"held"), blobs.put_bytes(b"loose")
        run = store.create_run(RunSpec(name="a"))
        store.write(run.id, WriteBatch(artifacts={"h": ArtifactRecord("h", held, 4, 1.0)}))
        assert store.remove_unreferenced_blobs([held, loose, loose]) == 1
        assert (blobs.exists(held), blobs.exists(loose)) == (True, False)
        assert store.remove_unreferenced_blobs([held]) == 0

    # --- deleting -----------------------------------------------------------------------------

    def test_delete_removes_everything_and_orphans_children(self, store: Store) -> None:
        parent = store.create_run(RunSpec(name="train", params={"lr": 1}, tags=["t"]))
        child = store.create_run(RunSpec(name="eval", parent=parent.id, kind="eval"))
        assert store.run(child.id).parent_number == parent.number
        store.write(parent.id, WriteBatch(points={"loss": points([1.0, 2.0])},
                                          notes=[(1.0, "n")],
                                          attachments={"a": b"x"}))  # fmt: skip
        assert store.delete_runs([parent.id]) == 1
        with pytest.raises(RunNotFoundError):
            store.run(parent.id)
        with pytest.raises(RunNotFoundError):
            store.series(parent.id, "loss")
        assert store.run(child.id).parent_id is None
        assert [r.name for r in store.runs("params.lr = 1 or tags has 't'")] == []
        assert store.delete_runs([parent.id, "0" * 32]) == 0  # nothing left to delete
        assert [r.id for r in store.runs()] == [child.id]

    # --- frozen results -----------------------------------------------------------------------

    def test_records_are_frozen(self, store: Store) -> None:
        run = store.run(new_run(store, name="a"))
        with pytest.raises(AttributeError):
            run.name = "b"  # type: ignore[misc]

    def test_what_was_read_is_not_changed_by_later_writes(self, store: Store) -> None:
        run_id = new_run(store, name="a", params={"lr": 0.1}, tags=["t"])
        store.write(run_id, WriteBatch(points={"loss": points([1.0])}, notes=[(1.0, "n")]))
        record, series, listed = store.run(run_id), store.series(run_id, "loss"), store.runs()
        experiments = store.list_experiments()
        store.write(run_id, WriteBatch(points={"loss": points([0.5], start=1)},
                                       params={"lr": 0.2}, tags_add={"u"}, notes=[(2.0, "m")],
                                       update={"name": "b", "experiment": "e"}))  # fmt: skip
        assert (record.name, dict(record.params), record.tags) == ("a", {"lr": 0.1}, ("t",))
        assert [n.text for n in record.notes] == ["n"] and record.metrics["loss"].count == 1
        assert list(series.values) == [1.0] and listed[0].name == "a" and experiments == []
        with pytest.raises(TypeError):
            record.metrics["x"] = None  # type: ignore[index]
        assert store.run(run_id).name == "b"  # a new read sees the change

    # --- several clients, threads and processes -----------------------------------------------

    def test_every_change_is_seen_at_once_by_another_client(
        self, store: Store, open_again: Callable[[], Store]
    ) -> None:
        other = open_again()
        run = store.create_run(RunSpec(name="a", params={"lr": 0.1}, tags=["t"]))
        assert other.run(run.id).name == "a"
        store.write(run.id, WriteBatch(points={"loss": points([1.0, 0.5])}, notes=[(1.0, "n")]))
        seen = other.run(run.id)
        assert seen.metrics["loss"].count == 2 and [n.text for n in seen.notes] == ["n"]
        assert list(other.series(run.id, "loss").values) == [1.0, 0.5]
        other.add_tags(run.id, "from-other")
        other.set_metric(run.id, "acc", 0.9)
        assert store.run(run.id).tags == ("from-other", "t") and store.run(run.id).metric("acc")
        other.create_experiment("question")
        assert [e.name for e in store.list_experiments()] == ["question"]
        sweep = store.create_sweep("s", SPEC)
        assert other.get_sweep("s") == sweep
        other.delete_run(run.id)
        with pytest.raises(RunNotFoundError):
            store.run(run.id)

    def test_one_store_object_serves_many_threads(self, store: Store) -> None:
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                run = store.create_run(RunSpec(name=f"t{i}"))
                for step in range(20):
                    logged = points([float(step)], start=step)
                    store.write(run.id, WriteBatch(points={"x": logged}))
                store.add_note(run.id, f"note {i}")
                assert list(store.series(run.id, "x").steps) == list(range(20))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        runs = store.runs()
        assert sorted(r.number for r in runs) == [1, 2, 3, 4]
        assert all(r.metrics["x"].count == 20 and len(r.notes) == 1 for r in runs)

    @pytest.mark.slow
    def test_six_processes_add_trials_no_duplicate_no_loss(
        self, store: Store, location: str, process_env: dict[str, str], tmp_path: Path
    ) -> None:
        self.needs("shared_between_processes")
        limit = 60
        sweep = store.create_sweep("race", SPEC)
        reports = _together(location, process_env, "add", 6, tmp_path, sweep=sweep.id,
                            limit=limit)  # fmt: skip
        trials = store.list_trials(sweep.id)
        assert [t.number for t in trials] == list(range(limit))  # no gap, no duplicate
        added = {key: (number, version) for r in reports for key, number, version in r["added"]}
        assert len(added) == sum(len(r["added"]) for r in reports) == limit  # a success: a...
        assert {t.config_key: t.number for t in trials} == {k: n for k, (n, _) in added.items()}
        refused = {key for r in reports for key in r.get("refused", [])}
        assert refused.isdisjoint(t.config_key for t in trials)  # ...a refusal: nothing
        assert sorted(version for _, version in added.values()) == list(range(limit))
        assert store.get_sweep(sweep.id).version == limit  # every bump is one added trial
        assert sum(1 for r in reports if r["added"]) >= 2  # they did run at the same time
        seconds = max(r["seconds"] for r in reports)
        conflicts = sum(r["conflicts"] for r in reports)
        print(f"\n{type(self).__name__}: {limit} trials by 6 processes in {seconds:.2f} s "
              f"({limit / seconds:.0f}/s), {conflicts} compare-and-set conflicts")  # fmt: skip

    @pytest.mark.slow
    def test_concurrent_claims_never_share_a_trial(
        self, store: Store, location: str, process_env: dict[str, str], tmp_path: Path
    ) -> None:
        self.needs("shared_between_processes")
        count = 40
        sweep = store.create_sweep("claims", SPEC)
        for i in range(count):
            assert add_trial(store, sweep.id, f"k{i}", state=TrialState.QUEUED) is not None
        reports = _together(location, process_env, "claim", 6, tmp_path, sweep=sweep.id)
        claimed = [number for r in reports for number in r["claimed"]]
        assert sorted(claimed) == list(range(count))  # each trial once, none left
        owner = {n: f"p{i}" for i, r in enumerate(reports) for n in r["claimed"]}
        for trial in store.list_trials(sweep.id):
            assert trial.state is TrialState.RUNNING and trial.worker == owner[trial.number]

    @pytest.mark.slow
    def test_two_agents_expiring_at_once_record_each_crash_once(
        self, store: Store, location: str, process_env: dict[str, str], tmp_path: Path
    ) -> None:
        self.needs("shared_between_processes")
        sweep = store.create_sweep("expiry", SPEC)
        stale = [add_trial(store, sweep.id, f"k{i}", worker=f"w{i % 3}").number for i in range(12)]
        version = store.get_sweep(sweep.id).version
        time.sleep(0.5)
        reports = _together(location, process_env, "expire", 2, tmp_path, sweep=sweep.id,
                            stale=0.4)  # fmt: skip
        expired = [number for r in reports for number in r["expired"]]
        assert sorted(expired) == stale  # every crash reported, by one caller only
        trials = store.list_trials(sweep.id)
        assert Counter(t.state for t in trials) == {TrialState.CRASHED: 12, TrialState.QUEUED: 12}
        assert sorted(t.config_key for t in trials if t.attempt == 2) == sorted(
            f"k{i}" for i in range(12)
        )
        assert store.get_sweep(sweep.id).version == version + 1  # one expiry changed the sweep

    # --- sweeps and trials --------------------------------------------------------------------

    def test_sweeps_are_created_found_listed_and_deleted(self, store: Store) -> None:
        sweep = store.create_sweep("lr search", SPEC, experiment="learning rate")
        assert sweep.state is SweepState.RUNNING and sweep.version == 0 and sweep.spec == SPEC
        assert sweep.experiment == "learning rate" and store.get_experiment("learning rate")
        assert store.get_sweep("lr search") == sweep == store.get_sweep(sweep.id)
        assert store.get_sweep(sweep.id[:6].upper()) == sweep
        with pytest.raises(SweepExistsError, match="'lr search' exists already"):
            store.create_sweep("lr search", {})
        other = store.create_sweep("other", {"method": "random"})
        assert [s.name for s in store.list_sweeps()] == ["lr search", "other"]
        with pytest.raises(SweepNotFoundError, match="no sweep matches 'nope'"):
            store.get_sweep("nope")
        firsts = {sweep.id[0]: sweep, other.id[0]: other}
        while len(firsts) == len(store.list_sweeps()):  # 17 sweeps at most: two share a digit
            extra = store.create_sweep(f"extra {len(firsts)}", {})
            firsts.setdefault(extra.id[0], extra)
        shared = next(s.id[0] for s in store.list_sweeps() if firsts[s.id[0]] != s)
        with pytest.raises(AmbiguousSweepError, match=f"'{shared}' matches several sweeps"):
            store.get_sweep(shared)
        for extra in store.list_sweeps()[1:]:
            store.delete_sweep(extra.id)
        assert [s.name for s in store.list_sweeps()] == ["lr search"]
        with pytest.raises(SweepNotFoundError, match=other.id):
            store.delete_sweep(other.id)
        with pytest.raises(SweepNotFoundError):
            store.list_trials(other.id)

    def test_specs_and_params_keep_the_order_they_were_given_in(self, store: Store) -> None:
        """PostgreSQL's JSONB sorts keys: a spec's parameters would come back out of the
        file's order (the UI's axes, `sweep show`, edit diffs)."""
        spec = {"program": "t.py", "method": "random", "parameters": {"zeta": {"value": 1},
                "alpha": {"values": [1, 2]}, "mid": {"min": 0.0, "max": 1.0}}}  # fmt: skip
        sweep = store.create_sweep("ordered", spec)
        assert list(store.get_sweep(sweep.id).spec) == ["program", "method", "parameters"]
        assert list(store.get_sweep(sweep.id).spec["parameters"]) == ["zeta", "alpha", "mid"]
        add_trial(store, sweep.id, "k", params={"zeta": 1, "alpha": 2, "mid": 0.5})
        assert list(store.list_trials(sweep.id)[0].params) == ["zeta", "alpha", "mid"]

    def test_an_edit_keeps_the_spec_it_replaced_in_its_own_transaction(self, store: Store) -> None:
        sweep = store.create_sweep("edited", SPEC)
        wider = {**SPEC, "parameters": {"lr": {"values": [0.1, 0.01, 0.001]}}}
        assert store.update_sweep(sweep.id, spec=wider, expected_version=sweep.version + 1) is None
        assert store.sweep_history(sweep.id) == []  # a refused compare-and-set keeps nothing
        after = store.update_sweep(sweep.id, spec=wider, expected_version=sweep.version)
        assert after is not None and after.spec == wider
        store.update_sweep(sweep.id, state="stopped")  # not a spec change: no entry
        store.update_sweep(sweep.id, spec=wider)  # the same spec: no entry
        [kept] = store.sweep_history(sweep.id)
        assert (kept.version, kept.spec) == (sweep.version, SPEC) and kept.replaced_at > 0
        store.delete_sweep(sweep.id)
        with pytest.raises(SweepNotFoundError):
            store.sweep_history(sweep.id)

    def test_bad_sweep_input_names_the_value(self, store: Store) -> None:
        with pytest.raises(InvalidValueError, match=r"sweep spec .* not JSON data"):
            store.create_sweep("s", {"x": float("nan")})
        with pytest.raises(InvalidValueError, match="invalid sweep name"):
            store.create_sweep("", {})
        sweep = store.create_sweep("s", {})
        with pytest.raises(InvalidValueError, match="unknown sweep state 'paused'"):
            store.update_sweep(sweep.id, state="paused")
        with pytest.raises(InvalidValueError, match="running trial needs the worker"):
            add_trial(store, sweep.id, "a", worker=None)
        with pytest.raises(InvalidValueError, match=r"trial params .* not JSON data"):
            add_trial(store, sweep.id, "a", params={"f": object()})
        with pytest.raises(InvalidValueError, match=r"cannot update trial field.*: worker"):
            store.update_trial(sweep.id, 0, worker=None, worker_name="x")
        assert store.list_trials(sweep.id) == [] and store.get_sweep("s").version == 0

    def test_add_trial_is_compare_and_set_on_the_version(self, store: Store) -> None:
        sweep = store.create_sweep("s", SPEC)
        first = store.add_trial(
            sweep.id, expected_version=0, params={"lr": 0.1}, config_key="lr=0.1", worker="w1"
        )
        assert first is not None and (first.number, first.config, first.attempt) == (0, 0, 1)
        assert first.state is TrialState.RUNNING and first.worker == "w1"
        assert first.heartbeat_at == first.started_at == first.created_at
        stale = store.add_trial(
            sweep.id, expected_version=0, params={"lr": 0.01}, config_key="lr=0.01", worker="w2"
        )
        assert stale is None  # another agent added a trial since version 0 was read
        assert [t.config_key for t in store.list_trials(sweep.id)] == ["lr=0.1"]
        assert store.get_sweep(sweep.id).version == 1
        repeat = store.add_trial(
            sweep.id, expected_version=1, params={"lr": 0.1}, config_key="lr=0.1", config=0,
            repeat=1, worker="w2",
        )  # fmt: skip
        assert repeat is not None and (repeat.number, repeat.config, repeat.repeat) == (1, 0, 1)
        queued = store.add_trial(
            sweep.id, expected_version=2, params={"lr": 0.01}, config_key="lr=0.01",
            worker="w9", state=TrialState.QUEUED,
        )  # fmt: skip
        assert queued is not None and (queued.number, queued.config) == (2, 1)
        assert queued.worker is None and queued.started_at is None and queued.heartbeat_at is None
        assert store.update_sweep(sweep.id, state="stopped") is not None
        assert add_trial(store, sweep.id, "late") is None  # a stopped sweep takes no trials
        assert len(store.list_trials(sweep.id)) == 3

    def test_update_sweep_with_and_without_compare_and_set(self, store: Store) -> None:
        sweep = store.create_sweep("s", SPEC)
        edited = store.update_sweep(sweep.id, spec={"method": "random"}, expected_version=0)
        assert edited is not None and edited.version == 1 and edited.spec == {"method": "random"}
        assert store.update_sweep(sweep.id, state="stopped", expected_version=0) is None
        assert store.get_sweep(sweep.id).state is SweepState.RUNNING
        stopped = store.update_sweep(sweep.id, state="stopped", expected_version=1)
        assert stopped is not None and stopped.state is SweepState.STOPPED
        assert stopped.ended_at is not None and stopped.version == 2
        finished = store.update_sweep(sweep.id, state="finished")
        assert finished is not None and finished.ended_at == stopped.ended_at  # ended when stopped
        resumed = store.update_sweep(sweep.id, state="running")
        assert resumed is not None and resumed.ended_at is None and resumed.version == 4
        with pytest.raises(SweepNotFoundError):
            store.update_sweep(uuid.uuid4().hex, state="stopped")

    def test_claims_leases_and_heartbeats(self, store: Store) -> None:
        sweep = store.create_sweep("s", SPEC)
        for key in ("a", "b"):
            add_trial(store, sweep.id, key, state=TrialState.QUEUED)
        first = store.claim_trial(sweep.id, "w1")
        second = store.claim_trial(sweep.id, "w2")
        assert first is not None and second is not None
        assert (first.number, first.worker, second.number, second.worker) == (0, "w1", 1, "w2")
        assert first.state is TrialState.RUNNING and first.started_at == first.heartbeat_at
        assert store.claim_trial(sweep.id, "w3") is None
        assert store.heartbeat_trials(sweep.id, [0, 1, 7], "w1") == {0}  # 1 is w2's, 7 none
        renewed = store.list_trials(sweep.id)[0].heartbeat_at
        assert renewed is not None and renewed > first.heartbeat_at
        assert store.heartbeat_trials(sweep.id, [], "w1") == set()
        assert store.update_trial(sweep.id, 1, worker="w1", state="failed") is False  # not w1's
        assert store.update_trial(sweep.id, 1, worker="w2", values=[0.5], pruned_step=7) is True
        assert store.update_trial(sweep.id, 1, worker="w2", state=TrialState.PRUNED) is True
        pruned = store.list_trials(sweep.id)[1]
        assert pruned.state is TrialState.PRUNED and pruned.values == (0.5,)
        assert pruned.pruned_step == 7 and pruned.ended_at is not None
        assert store.heartbeat_trials(sweep.id, [1], "w2") == set()  # finished: no lease
        assert store.update_trial(sweep.id, 1, worker="w2", error="late") is False
        assert store.update_trial(sweep.id, 1, worker=None, error="edited") is True  # a person
        with pytest.raises(TrialNotFoundError, match="no trial 9"):
            store.update_trial(sweep.id, 9, worker=None, error="x")
        store.update_sweep(sweep.id, state="stopped")
        requeued = store.update_trial(sweep.id, 0, worker="w1", state="queued")
        assert requeued is True and store.claim_trial(sweep.id, "w4") is None  # sweep stopped
        store.update_sweep(sweep.id, state="running")
        again = store.claim_trial(sweep.id, "w4")
        assert again is not None and again.number == 0 and again.worker == "w4"

    def test_expired_trials_crash_and_requeue_up_to_max_attempts(self, store: Store) -> None:
        sweep = store.create_sweep("s", SPEC)
        trial = add_trial(store, sweep.id, "a", worker="w1")
        kept = add_trial(store, sweep.id, "b", worker="w2")
        assert store.expire_trials(sweep.id, stale_after=60, max_attempts=2) == []
        version = store.get_sweep(sweep.id).version
        time.sleep(1.2)  # 'kept' renews its lease just before: stale after 1 s, it is not
        store.heartbeat_trials(sweep.id, [kept.number], "w2")
        crashed = store.expire_trials(sweep.id, stale_after=1.0, max_attempts=2)
        assert [t.number for t in crashed] == [trial.number]
        assert crashed[0].state is TrialState.CRASHED
        assert crashed[0].error == "agent w1 stopped sending heartbeats"
        assert store.get_sweep(sweep.id).version == version + 1
        assert store.heartbeat_trials(sweep.id, [trial.number], "w1") == set()  # lease lost
        assert store.update_trial(sweep.id, trial.number, worker="w1", state="finished") is False
        trials = store.list_trials(sweep.id)
        copy = trials[-1]
        assert (copy.number, copy.state, copy.attempt) == (2, TrialState.QUEUED, 2)
        assert (copy.params, copy.config, copy.config_key) == (trial.params, trial.config, "a")
        claimed = store.claim_trial(sweep.id, "w3")
        assert claimed is not None and claimed.number == 2 and claimed.attempt == 2
        time.sleep(1.2)
        store.heartbeat_trials(sweep.id, [kept.number], "w2")
        again = store.expire_trials(sweep.id, stale_after=1.0, max_attempts=2)
        assert [t.number for t in again] == [2]
        assert len(store.list_trials(sweep.id)) == 3  # attempt 2 of 2: not queued again

    def test_trials_link_runs_and_survive_their_deletion(self, store: Store) -> None:
        sweep = store.create_sweep("s", SPEC)
        run = store.create_run(RunSpec(name="old", kind="sweep-trial", started_at=1000.0))
        store.write(run.id, WriteBatch(update={"status": "finished", "ended_at": 1010.0}))
        attached = add_trial(
            store, sweep.id, "old", worker=None, state=TrialState.FINISHED, run_id=run.id,
            values=[0.25, float("nan")],
        )  # fmt: skip
        assert attached.run_id == run.id and attached.run_number == run.number
        assert (attached.started_at, attached.ended_at) == (1000.0, 1010.0)
        assert attached.values == (0.25, None)  # NaN: a metric the run never logged
        with pytest.raises(RunNotFoundError):
            add_trial(store, sweep.id, "x", run_id=uuid.uuid4().hex)
        live = add_trial(store, sweep.id, "new", worker="w1")
        second = store.create_run(RunSpec(name="trial", kind="sweep-trial"))
        assert store.update_trial(sweep.id, live.number, worker="w1", run_id=second.id) is True
        store.update_run(second.id, status="pruned", ended_at=time.time())
        assert store.run(second.id).status is RunStatus.PRUNED
        assert [r.number for r in store.runs(status="pruned")] == [second.number]
        assert [r.number for r in store.runs("status = 'pruned'")] == [second.number]
        store.delete_run(run.id)
        trials = store.list_trials(sweep.id)
        assert trials[0].run_id is None and trials[0].values == (0.25, None)
        assert trials[1].run_number == second.number
        store.delete_sweep(sweep.id)  # the trials go, their runs stay
        assert store.run(second.id).name == "trial"
