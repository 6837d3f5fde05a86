"""The store contract, run on SQLite and on PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

import math
import threading
import time

import pytest

from expbook import (
    AmbiguousRunError,
    ExperimentNotFoundError,
    FilterSyntaxError,
    InvalidValueError,
    NoteNotFoundError,
    RunNotFoundError,
    RunStatus,
)
from expbook.store import RunQuery, RunSpec, Store, WriteBatch
from expbook.store.chunks import CHUNK_POINTS, Points
from expbook.store.schema import chunks
from expbook.validation import flatten_params


def points(values, *, start=0, epochs=None, times=None) -> Points:
    result = Points()
    now = time.time()
    for i, value in enumerate(values):
        epoch = None if epochs is None else epochs[i]
        at = now + i * 1e-3 if times is None else times[i]
        result.append(start + i, value, at, epoch)
    return result


def new_run(store: Store, **spec) -> str:
    return store.create_run(RunSpec(**spec)).id


# --- runs ---------------------------------------------------------------------------------------


def test_runs_get_sequential_numbers_and_uuids(store: Store) -> None:
    records = [store.create_run(RunSpec(name=f"r{i}")) for i in range(3)]
    assert [r.number for r in records] == [1, 2, 3]
    assert len({r.id for r in records}) == 3
    assert all(len(r.id) == 32 and int(r.id, 16) >= 0 for r in records)
    assert [r.number for r in store.runs()] == [3, 2, 1]  # newest first


def test_concurrent_creation_never_reuses_a_number(store_url: str) -> None:
    import expbook

    stores = [expbook.open_store(store_url) for _ in range(4)]
    numbers: list[int] = []

    def create(target: Store) -> None:
        for _ in range(10):
            numbers.append(target.create_run(RunSpec()).number)

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for opened in stores:
        opened.close()
    assert sorted(numbers) == list(range(1, 41))


def test_params_keep_their_types(store: Store) -> None:
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


def test_set_params_later_overwrites_and_adds(store: Store) -> None:
    run_id = new_run(store, params={"lr": 0.1})
    store.set_params(run_id, {"lr": 0.2, "warmup": 10})
    assert store.run(run_id).params == {"lr": 0.2, "warmup": 10}


def test_tags_notes_and_names(store: Store) -> None:
    run_id = new_run(store, name="first", tags=["gru", "baseline"])
    store.add_tags(run_id, "ablation", "gru")
    store.remove_tags(run_id, "baseline")
    store.add_note(run_id, "GPU utilization around 20%")
    store.add_note(run_id, "second *markdown* note")
    store.update_run(run_id, name="renamed")
    run = store.run(run_id)
    assert run.tags == ("ablation", "gru")
    assert [n.text for n in run.notes] == ["GPU utilization around 20%", "second *markdown* note"]
    assert run.notes[0].created_at <= run.notes[1].created_at
    assert run.name == "renamed"
    with pytest.raises(InvalidValueError, match="note"):
        store.add_note(run_id, "   ")
    with pytest.raises(InvalidValueError, match="tag"):
        store.add_tags(run_id, " padded ")


def test_notes_are_edited_and_deleted_only_through_their_run(store: Store) -> None:
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


def test_experiments_and_moving_runs(store: Store) -> None:
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


# --- metrics ------------------------------------------------------------------------------------


def test_summary_tracks_last_min_max_with_steps(store: Store) -> None:
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


def test_nan_and_inf_are_stored_faithfully(store: Store) -> None:
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


def test_all_nan_series_has_no_min_or_max(store: Store) -> None:
    run_id = new_run(store)
    store.write(run_id, WriteBatch(points={"loss": points([float("nan")] * 3)}))
    summary = store.run(run_id).metrics["loss"]
    assert math.isnan(summary.value) and summary.min is None and summary.max is None
    assert summary.count == 3


def test_set_metric_is_a_summary_value_not_a_point(store: Store) -> None:
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


def test_series_round_trip_with_epochs_and_ranges(store: Store) -> None:
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


def test_out_of_order_steps_read_back_sorted_and_stable(store: Store) -> None:
    run_id = new_run(store)
    batch = Points()
    now = time.time()
    for i, step in enumerate([5, 1, 3, 1]):
        batch.append(step, float(i), now - 10 + i, None)
    store.write(run_id, WriteBatch(points={"x": batch}))
    store.write(run_id, WriteBatch(points={"x": points([9.0], start=0)}))  # step 0, logged last
    series = store.series(run_id, "x")
    assert list(series.steps) == [0, 1, 1, 3, 5]
    assert list(series.values) == [9.0, 1.0, 3.0, 2.0, 0.0]
    assert store.run(run_id).metrics["x"].value == 9.0  # last logged, not highest step


def _chunk_count(store: Store, run_number: int) -> int:
    import sqlalchemy as sa

    with store.engine.connect() as connection:  # type: ignore[attr-defined]
        return connection.scalar(
            sa.select(sa.func.count()).select_from(chunks).where(chunks.c.run_id == run_number)
        )


def test_many_small_flushes_compact_into_few_chunks(store: Store) -> None:
    run = store.create_run(RunSpec())
    total = CHUNK_POINTS + 300
    for step in range(total):
        store.write(run.id, WriteBatch(points={"loss": points([step * 0.5], start=step)}))
    series = store.series(run.id, "loss")
    assert list(series.steps) == list(range(total))
    assert list(series.values) == [s * 0.5 for s in range(total)]
    # one full chunk plus a binary-counter stack for the 300 remaining points (<= 9 chunks)
    assert _chunk_count(store, run.number) <= 1 + 9


def test_a_big_batch_is_split_into_full_chunks(store: Store) -> None:
    run = store.create_run(RunSpec())
    n = CHUNK_POINTS * 3 + 17
    store.write(run.id, WriteBatch(points={"loss": points([float(i) for i in range(n)])}))
    assert _chunk_count(store, run.number) == 4
    assert len(store.series(run.id, "loss")) == n


def test_a_series_is_rewritten_with_its_summary(store: Store) -> None:
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


def test_merged_batches_keep_a_rewrite_and_what_follows_it() -> None:
    first = WriteBatch(points={"cpu": points([1.0, 2.0])})
    first.merge(WriteBatch(replaced={"cpu": points([1.5])}))  # drops the points queued before
    first.merge(WriteBatch(points={"cpu": points([3.0], start=5)}))  # kept, after the rewrite
    assert list(first.replaced["cpu"].values) == [1.5]
    assert list(first.points["cpu"].values) == [3.0]
    assert first.point_count() == 2
    rebuilt = WriteBatch()
    for _, part in first.parts():  # split and merged back (the writer's bisection) is the same
        rebuilt.merge(part)
    assert list(rebuilt.replaced["cpu"].values) == [1.5]
    assert list(rebuilt.points["cpu"].values) == [3.0]


def test_attachments_round_trip(store: Store) -> None:
    run_id = new_run(store)
    diff = ("diff --git a/x b/x\n+é\n" * 1000).encode()
    store.write(run_id, WriteBatch(attachments={"git.diff": diff, "packages.txt": b"a==1"}))
    assert store.get_attachment(run_id, "git.diff") == diff
    assert store.list_attachments(run_id) == {"git.diff": len(diff), "packages.txt": 4}
    assert store.get_attachment(run_id, "missing") is None


def test_writing_to_a_missing_run_names_it(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match="0" * 32):
        store.write("0" * 32, WriteBatch(notes=[(time.time(), "x")]))


# --- status -------------------------------------------------------------------------------------


def test_stale_heartbeat_reads_as_crashed(store: Store) -> None:
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


# --- resolving references -----------------------------------------------------------------------


def test_resolve_run_by_number_prefix_and_name(store: Store) -> None:
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


def test_resolve_run_last_and_last_n(store: Store) -> None:
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


# --- querying -----------------------------------------------------------------------------------


@pytest.fixture
def grid(store: Store) -> Store:
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


def numbers(store: Store, where: str | None = None, **kwargs) -> list[int]:
    return [r.number for r in store.runs(where, **kwargs)]


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
def test_filter_language(grid: Store, where: str, expected: list[int]) -> None:
    assert numbers(grid, where) == expected


def test_filter_values_are_bound_not_formatted(grid: Store) -> None:
    hostile = "x' OR 1=1 --"
    assert numbers(grid, f'name = "{hostile}"') == []
    assert numbers(grid, "params.model = 'regnet\\' OR \\'1\\'=\\'1'") == []


def test_sorting(grid: Store) -> None:
    assert numbers(grid, "experiment = 'batch size x lr'", sort="-metrics.valid/acc") == [
        1, 3, 2, 4, 5, 6,
    ]  # fmt: skip
    assert numbers(grid, sort="params.batch_size, -params.lr")[:3] == [2, 1, 4]
    assert numbers(grid, sort="metrics.valid/acc")[-1] == 7  # missing values sort last
    assert numbers(grid, sort="-metrics.valid/acc")[-1] == 7
    assert numbers(grid, sort="name desc, number asc") == [7, 3, 4, 1, 2, 5, 6]  # lexical


def test_selection_options_limit_offset_and_count(grid: Store) -> None:
    assert numbers(grid, experiment="batch size x lr", limit=2) == [6, 5]
    assert numbers(grid, experiment="batch size x lr", limit=2, offset=2) == [4, 3]
    assert numbers(grid, status=["running"]) == [7]
    assert grid.count_runs(RunQuery(where="params.batch_size < 16")) == 4
    assert grid.count_runs(RunQuery(experiments=("nope",))) == 0


def test_bad_filters_raise_with_a_position(grid: Store) -> None:
    with pytest.raises(FilterSyntaxError) as error:
        grid.runs("params.lr < and tags has 'x'")
    assert error.value.position == 12
    with pytest.raises(FilterSyntaxError, match="unknown field"):
        grid.runs(sort="-bogus")


# --- deleting -----------------------------------------------------------------------------------


def test_delete_removes_everything_and_orphans_children(store: Store) -> None:
    parent = store.create_run(RunSpec(name="train", params={"lr": 1}, tags=["t"]))
    child = store.create_run(RunSpec(name="eval", parent=parent.id, kind="eval"))
    assert store.run(child.id).parent_number == parent.number
    store.write(parent.id, WriteBatch(points={"loss": points([1.0, 2.0])}, notes=[(1.0, "n")],
                                      attachments={"a": b"x"}))  # fmt: skip
    assert store.delete_runs([parent.id]) == 1
    with pytest.raises(RunNotFoundError):
        store.run(parent.id)
    assert store.run(child.id).parent_id is None
    import sqlalchemy as sa

    from expbook.store import schema

    with store.engine.connect() as connection:  # type: ignore[attr-defined]
        for table in (schema.params, schema.tags, schema.notes, schema.metric_summaries,
                      schema.chunks, schema.attachments):  # fmt: skip
            left = connection.scalar(sa.select(sa.func.count()).select_from(table))
            assert left == 0, table.name


def test_parent_must_exist(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match="parent"):
        store.create_run(RunSpec(parent="f" * 32))


def test_records_are_frozen(store: Store) -> None:
    run = store.run(new_run(store, name="a"))
    with pytest.raises(AttributeError):
        run.name = "b"  # type: ignore[misc]


# --- edge cases found in review -----------------------------------------------------------------


def test_a_deleted_runs_key_is_never_written_through(store: Store) -> None:
    old = store.create_run(RunSpec(name="old"))
    store.write(old.id, WriteBatch(points={"loss": points([1.0])}))
    store.delete_runs([old.id])
    new = store.create_run(RunSpec(name="new"))  # SQLite may give it the deleted run's key
    with pytest.raises(RunNotFoundError):
        store.write(old.id, WriteBatch(points={"loss": points([2.0], start=1)}, update={
            "status": "finished"}))  # fmt: skip
    record = store.run(new.id)
    assert record.status is RunStatus.RUNNING and record.metrics == {}


def test_equal_steps_keep_the_order_they_were_logged_across_chunks(store: Store) -> None:
    run_id = new_run(store)
    first = points([1.0] * CHUNK_POINTS, start=100)  # steps 100..2147, logged first
    store.write(run_id, WriteBatch(points={"x": first}))
    store.write(run_id, WriteBatch(points={"x": points([2.0] * 200, start=0)}))  # a restart
    series = store.series(run_id, "x", step_min=100, step_max=100)
    assert list(series.values) == [1.0, 2.0]


def test_set_value_counts_for_min_max_only_without_points(store: Store) -> None:
    run_id = new_run(store)
    store.set_metric(run_id, "acc", 0.5)
    assert store.run(run_id).metrics["acc"].max == 0.5
    store.write(run_id, WriteBatch(points={"acc": points([0.7, 0.8])}))
    summary = store.run(run_id).metrics["acc"]
    assert (summary.min, summary.max, summary.count) == (0.7, 0.8, 2)  # points decide now
    store.set_metric(run_id, "acc", 0.99)
    summary = store.run(run_id).metrics["acc"]
    assert (summary.value, summary.min, summary.max) == (0.99, 0.7, 0.8)


def test_reported_extremes_from_a_summary_table(store: Store) -> None:
    from expbook.store import SummaryValue

    run_id = new_run(store)
    table = SummaryValue(0.032, None, time.time(), step=53, epoch=53.0, min=0.032, min_step=53,
                         min_epoch=53.0, max=0.106, max_step=1, max_epoch=1.0)  # fmt: skip
    store.write(run_id, WriteBatch(summary={"train/loss": table}))
    summary = store.run(run_id).metrics["train/loss"]
    assert (summary.min, summary.min_epoch, summary.max, summary.max_epoch) == (
        0.032,
        53.0,
        0.106,
        1.0,
    )
    assert (summary.value, summary.step, summary.count) == (0.032, 53, 0)


def test_api_input_errors_name_the_problem(store: Store) -> None:
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


def test_text_that_postgresql_refuses_is_cleaned(store: Store) -> None:
    from expbook.store.base import OutputText

    run_id = new_run(store, params={"p": "a\x00b"})
    store.write(run_id, WriteBatch(output=[OutputText("stdout", 1.0, "x\x00y\n")],
                                   update={"error": "bad\x00"}))  # fmt: skip
    assert store.get_output(run_id)[0].text == "x\ufffdy\n"
    assert store.run(run_id).params["p"] == "a\x00b"  # the JSON form keeps it exactly


def test_text_sorts_and_compares_bytewise_on_both_backends(store: Store) -> None:
    for name in ("adam", "B", "Zeta", "b-run"):
        store.create_run(RunSpec(name=name, params={"opt": name}))
    assert [r.name for r in store.runs(sort="name")] == ["B", "Zeta", "adam", "b-run"]
    assert [r.name for r in store.runs(sort="params.opt")] == ["B", "Zeta", "adam", "b-run"]
    assert [r.name for r in store.runs("params.opt < 'a'", sort="name")] == ["B", "Zeta"]
    assert [r.name for r in store.runs("name >= 'a'", sort="name")] == ["adam", "b-run"]


def test_nan_finds_diverged_runs(store: Store) -> None:
    diverged = new_run(store, name="diverged", params={"init": float("nan")})
    healthy = new_run(store, name="healthy", params={"init": 0.1})
    store.write(diverged, WriteBatch(points={"loss": points([1.0, float("nan")])}))
    store.write(healthy, WriteBatch(points={"loss": points([1.0, 0.5])}))
    assert [r.name for r in store.runs("metrics.loss = nan")] == ["diverged"]
    assert [r.name for r in store.runs("metrics.loss != nan")] == ["healthy"]
    assert [r.name for r in store.runs("params.init = nan")] == ["diverged"]


def test_iter_series_reads_many_runs_at_once(store: Store) -> None:
    ids = [new_run(store) for _ in range(3)]
    for n, run_id in enumerate(ids):
        store.write(run_id, WriteBatch(points={"a": points([float(n)] * 3), "b": points([1.0])}))
    got = [(s.run_id, s.key, list(s.values)) for s in store.iter_series(ids[::-1], ["a"])]
    assert got == [(ids[2], "a", [2.0] * 3), (ids[1], "a", [1.0] * 3), (ids[0], "a", [0.0] * 3)]
    assert len(list(store.iter_series(ids))) == 6


def test_output_tail_reads_only_the_last_chunks(store: Store) -> None:
    from expbook.store.base import OutputText

    run_id = new_run(store)
    for n in range(5):
        store.write(run_id, WriteBatch(output=[OutputText("stdout", float(n), f"line {n}\n")]))
    everything = store.get_output(run_id)
    assert [c.text for c in everything] == [f"line {n}\n" for n in range(5)]
    assert store.get_output(run_id, last=2) == everything[-2:]
    assert store.get_output(run_id, after=everything[1].id, last=10) == everything[2:]
    assert store.get_output(run_id, last=0) == []
