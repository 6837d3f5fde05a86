"""``import expbook.wandb as wandb``: W&B scripts run unchanged but for the import line, and
everything they log lands in the store."""

from __future__ import annotations

import io
import json
import os
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

import expbook
from expbook import artifacts
from expbook.errors import InvalidStepError, InvalidValueError
from tests.helpers import run_cli, run_python

TRAIN = """
import argparse
import numpy as np
import expbook.wandb as wandb

args = argparse.Namespace(lr=0.01, epochs=3, batch_size=32)
run = wandb.init(project="mnist", name="gru-64", config=args, tags=["gru", "baseline"],
                 group="sweep-1", notes="first try", job_type="train")
wandb.config.update({"optimizer": "adam", "model": {"hidden": 64}})
wandb.config.dropout = 0.1
wandb.define_metric("epoch")
wandb.define_metric("val/*", step_metric="epoch")
step = 0
best = 0.0
for epoch in range(wandb.config.epochs):
    for batch in range(4):
        wandb.log({"train/loss": 1.0 / (step + 1), "train/lr": wandb.config.lr}, step=step)
        step += 1
    wandb.log({"train": {"grad_norm": 0.5 + epoch}}, commit=False)
    acc = 0.5 + 0.1 * epoch
    wandb.log({"val/acc": acc, "epoch": epoch})
    if acc > best:
        best = acc
        wandb.summary["best"] = best
image = np.zeros((8, 6, 3), dtype=np.uint8)
image[..., 0] = 255
table = wandb.Table(columns=["id", "label"], data=[[1, "cat"], [2, "dog"]])
wandb.log({"examples": wandb.Image(image, caption="red"), "preds": table})
print(wandb.run.id, wandb.run.name, wandb.run.project, wandb.run.step)
wandb.finish()
assert wandb.run is None
"""


def run_script(code: str, tmp_path: Path) -> tuple[str, expbook.Store]:
    store_path = tmp_path / "runs.db"
    result = run_python(
        textwrap.dedent(code),
        env={"EXPBOOK_STORE": str(store_path), "EXPBOOK_SYSTEM_METRICS": "0"},
        cwd=tmp_path,
    )
    return result.stdout + result.stderr, expbook.open_store(store_path)


def points(store: expbook.Store, run: expbook.RunRecord, key: str) -> list[tuple[int, float]]:
    series = store.series(run, key)
    return list(zip(series.steps, series.values, strict=True))


def test_a_typical_wandb_script_lands_in_the_store(tmp_path: Path) -> None:
    output, store = run_script(TRAIN, tmp_path)
    [run] = store.runs()
    assert f"{run.id} gru-64 mnist 13" in output, output
    assert (run.status, run.name, run.experiment, run.kind) == ("finished", "gru-64", "mnist",
                                                                 "train")  # fmt: skip
    assert sorted(run.tags) == ["baseline", "group:sweep-1", "gru"]
    assert [note.text for note in run.notes] == ["first try"]
    assert run.params == {"lr": 0.01, "epochs": 3, "batch_size": 32, "optimizer": "adam",
                          "model.hidden": 64, "dropout": 0.1}  # fmt: skip
    assert points(store, run, "train/loss") == [(s, 1.0 / (s + 1)) for s in range(12)]
    assert points(store, run, "train/lr") == [(s, 0.01) for s in range(12)]
    # commit=False accumulated into the step of the last train/loss; the row was committed
    # by the next log() call, which also carried the epoch
    assert points(store, run, "train/grad_norm") == [(3, 0.5), (7, 1.5), (11, 2.5)]
    assert points(store, run, "epoch") == [(3, 0.0), (7, 1.0), (11, 2.0)]
    # define_metric("val/*", step_metric="epoch"): the points go at the epoch's value
    assert points(store, run, "val/acc") == [(0, 0.5), (1, 0.6), (2, pytest.approx(0.7))]
    assert run.metrics["best"].value == pytest.approx(0.7)
    names = [a.name for a in store.list_artifacts(run.id)]
    assert names == ["media/examples/12.caption.txt", "media/examples/12.png",
                     "media/preds/12.csv", "media/preds/12.json"]  # fmt: skip
    from PIL import Image

    png = Image.open(io.BytesIO(artifacts.read(store, run.id, "media/examples/12.png")[1]))
    assert png.size == (6, 8) and png.getpixel((0, 0)) == (255, 0, 0)
    assert artifacts.read(store, run.id, "media/examples/12.caption.txt")[1] == b"red"
    table = json.loads(artifacts.read(store, run.id, "media/preds/12.json")[1])
    assert table == {"columns": ["id", "label"], "data": [[1, "cat"], [2, "dog"]]}
    assert artifacts.read(store, run.id, "media/preds/12.csv")[1] == b"id,label\n1,cat\n2,dog\n"


def test_an_exception_inside_with_marks_the_run_failed(tmp_path: Path) -> None:
    _, store = run_script(
        """
        import expbook.wandb as wandb
        with wandb.init(project="p", job_type="eval") as run:
            wandb.log({"loss": 0.5}, step=3)
            raise ValueError("diverged")
        """,
        tmp_path,
    )
    [run] = store.runs()
    assert run.status == "failed" and run.kind == "eval"
    assert "ValueError: diverged" in run.error
    assert points(store, run, "loss") == [(3, 0.5)]  # the pending row was written first


def test_a_script_that_never_finishes_keeps_its_last_row_and_fails(tmp_path: Path) -> None:
    _, store = run_script(
        """
        import expbook.wandb as wandb
        wandb.init(project="p")
        wandb.log({"loss": 0.25}, step=7)
        raise RuntimeError("out of memory")
        """,
        tmp_path,
    )
    [run] = store.runs()
    assert run.status == "failed" and "out of memory" in run.error
    assert points(store, run, "loss") == [(7, 0.25)]


@pytest.fixture
def wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    import expbook.wandb as module

    store = expbook.open_store(tmp_path / "runs.db")
    monkeypatch.setitem(expbook._default, "tracker", expbook.Tracker(store))
    monkeypatch.setenv("EXPBOOK_SYSTEM_METRICS", "0")
    yield module
    while module.run is not None:
        module.finish()


def test_finish_with_a_non_zero_exit_code_fails_the_run(wandb) -> None:  # type: ignore[no-untyped-def]
    run = wandb.init(project="p")
    wandb.finish(exit_code=2)
    record = run.expbook_run.record()
    assert (record.status, record.exit_code) == ("failed", 2)
    assert wandb.run is None


def test_a_step_behind_the_current_one_warns_and_is_stored_there(wandb) -> None:  # type: ignore[no-untyped-def]
    run = wandb.init()
    wandb.log({"loss": 1.0}, step=10, commit=True)
    with pytest.warns(UserWarning, match=r"step 4 is behind the current step 11 \(keys loss\)"):
        wandb.log({"loss": 2.0}, step=4)
    wandb.finish()
    store = run.expbook_run.store
    assert points(store, store.run(run.id), "loss") == [(4, 2.0), (10, 1.0)]


def test_a_step_metric_not_logged_yet_warns_and_keeps_the_global_step(wandb) -> None:  # type: ignore[no-untyped-def]
    run = wandb.init()
    wandb.define_metric("val/*", step_metric="epoch")
    with pytest.warns(UserWarning, match="'val/acc' has step metric 'epoch', which has no value"):
        wandb.log({"val/acc": 0.5})
    wandb.finish()
    store = run.expbook_run.store
    assert points(store, store.run(run.id), "val/acc") == [(0, 0.5)]


def test_config_summary_and_reinit(wandb) -> None:  # type: ignore[no-untyped-def]
    first = wandb.init(config={"lr": 0.1})
    assert wandb.init() is first  # reinit default: the run already started
    wandb.config.setdefaults({"lr": 0.5, "seed": 1})
    wandb.config.update({"lr": 0.2}, allow_val_change=True)
    assert wandb.config.as_dict() == {"lr": 0.2, "seed": 1} and wandb.config["lr"] == 0.2
    assert sorted(wandb.config.keys()) == ["lr", "seed"] and "seed" in wandb.config
    wandb.log({"loss": 0.3})
    wandb.summary.update({"test": {"acc": 0.9}})
    assert wandb.summary["loss"] == 0.3 and wandb.summary["test/acc"] == 0.9
    second = wandb.init(reinit="finish_previous")
    assert second is not first and wandb.run is second
    record = first.expbook_run.store.run(first.id)
    assert record.status == "finished" and record.params == {"lr": 0.2, "seed": 1}
    assert record.metrics["test/acc"].value == 0.9


def test_save_keeps_files_now_and_again_at_the_end(  # type: ignore[no-untyped-def]
    wandb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "last.pt").write_bytes(b"epoch 1")
    (tmp_path / "notes.txt").write_text("once")
    run = wandb.init()
    assert wandb.save("ckpt/*.pt") == ["ckpt/last.pt"]
    assert run.save(str(tmp_path / "notes.txt"), policy="now") == [str(tmp_path / "notes.txt")]
    (tmp_path / "ckpt" / "last.pt").write_bytes(b"epoch 2")  # overwritten during the run
    (tmp_path / "ckpt" / "best.pt").write_bytes(b"best")  # and a new match
    (tmp_path / "notes.txt").write_text("twice")  # policy "now": not kept again
    run_id = run.expbook_run.id
    wandb.finish()
    store = expbook.open_store(tmp_path / "runs.db")
    kept = {a.name: a for a in store.list_artifacts(run_id)}
    assert sorted(kept) == ["ckpt/best.pt", "ckpt/last.pt", "notes.txt"]
    blobs = store.blobs()
    assert blobs.read(kept["ckpt/last.pt"].sha256) == b"epoch 2"
    assert blobs.read(kept["notes.txt"].sha256) == b"once"
    with pytest.raises(InvalidValueError, match="not under base_path"):
        wandb.init(reinit=True).save(str(tmp_path / "notes.txt"), base_path=str(tmp_path / "ckpt"))


def test_images_from_pil_matplotlib_and_a_file(wandb, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    figure = plt.figure(figsize=(1, 1))
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (4, 4)).save(path)
    run = wandb.init()
    wandb.log({"plots": [wandb.Image(Image.new("L", (3, 2))), wandb.Image(figure)]}, step=5)
    wandb.log({"photo": wandb.Image(path), "floats": wandb.Image([[0.0, 1.0]])})
    wandb.finish()
    names = [a.name for a in run.expbook_run.store.list_artifacts(run.expbook_run.id)]
    assert names == ["media/floats/5.png", "media/photo/5.jpg", "media/plots/5-0.png",
                     "media/plots/5-1.png"]  # fmt: skip


ERRORS = [
    ("wandb.log({'loss': 'low'})", InvalidValueError, "metric 'loss'"),
    ("wandb.log({'a': {'b': None}})", InvalidValueError, "metric 'a/b'"),
    ("wandb.log({'loss': 1}, step=-1)", InvalidStepError, "step -1"),
    ("wandb.config.lr = 0.5", ValueError, "key 'lr' would change from 0.1 to 0.5"),
    ("wandb.watch(model)", NotImplementedError, "wandb.watch()"),
    ("wandb.save('*.pt', policy='sometimes')", ValueError, "policy='sometimes'"),
    ("wandb.alert(title='x', text='y')", NotImplementedError, "wandb.alert()"),
    ("wandb.run.log_code('.')", NotImplementedError, "wandb.log_code()"),
    ("wandb.Histogram([1, 2])", NotImplementedError, "wandb.Histogram"),
    ("wandb.Table(columns=['a'], data=[[1, 2]])", InvalidValueError, "2 values for 1 columns"),
    ("wandb.Image([[[1, 2], [3, 4]], [[5, 6], [7, 8]]])", InvalidValueError, "shape (2, 2, 2)"),
    ("wandb.Image({'x': 1})", InvalidValueError, "from a dict"),
    ("wandb.log_artifact(object())", NotImplementedError, "wandb.log_artifact()"),
    ("wandb.init(reinit='create_new', sync_tensorboard=True)", NotImplementedError,
     "wandb.init(sync_tensorboard=...)"),
    ("wandb.init(reinit=True, mode='disabled')", NotImplementedError, "mode='disabled'"),
]  # fmt: skip


@pytest.mark.parametrize(("code", "error", "message"), ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_name_the_key_or_function(wandb, code: str, error: type, message: str) -> None:  # type: ignore[no-untyped-def]
    wandb.init(config={"lr": 0.1})
    with pytest.raises(error) as raised:
        exec(code, {"wandb": wandb, "model": object()})
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_calls_before_init_say_so(wandb) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(wandb.Error, match=r"wandb.log\(\) called before wandb.init\(\)"):
        wandb.log({"loss": 1.0})
    with pytest.raises(wandb.Error, match=r"wandb.config used before wandb.init\(\)"):
        wandb.config.lr  # noqa: B018
    assert wandb.run is None
    wandb.finish()  # nothing to finish: no error, as in W&B


def test_expbook_wandb_loads_only_when_imported() -> None:
    code = (
        "import sys, expbook\nassert 'expbook.wandb' not in sys.modules\n"
        "import expbook.wandb\nprint(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'numpy', 'PIL', 'matplotlib', 'sqlalchemy', 'wandb'}))"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_warning_when_steps_only_go_forward(wandb) -> None:  # type: ignore[no-untyped-def]
    run = wandb.init()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(3):
            wandb.log({"loss": 1.0 / (step + 1)}, step=step)
            wandb.log({"acc": 0.1 * step}, step=step)  # the same step: one row
    wandb.finish()
    store = run.expbook_run.store
    assert points(store, store.run(run.id), "acc") == [(0, 0.0), (1, 0.1), (2, 0.2)]


def test_id_resume_and_renaming(wandb) -> None:  # type: ignore[no-untyped-def]
    first = wandb.init(id="abc123")
    first.name = "renamed"
    assert (first.id, first.name) == ("abc123", "renamed")
    wandb.finish()
    record = first.expbook_run.store.run(first.expbook_run.id)
    assert record.name == "renamed" and "wandb-id:abc123" in record.tags
    with pytest.raises(NotImplementedError, match=r"resume='allow', id='abc123'"):
        wandb.init(id="abc123", resume="allow")
    assert wandb.init(id="fresh", resume="allow").id == "fresh"  # nothing to resume: new run


SWEPT_PROGRAM = """
import expbook.wandb as wandb

run = wandb.init(config={"lr": 0.5, "optimizer": {"name": "sgd", "momentum": 0.0}, "epochs": 3})
for epoch in range(wandb.config.epochs):
    wandb.log({"loss": wandb.config.lr * wandb.config.optimizer["momentum"] + epoch})
wandb.finish()
"""

SWEEP_SPEC = """
program: train.py
command:
  - ${env}
  - ${interpreter}
  - ${program}
method: grid
metric: {name: loss, goal: minimize}
parameters:
  lr: {values: [0.1, 0.2]}
  optimizer:
    parameters:
      momentum: {value: 0.9}
      name: {value: sgd}
"""


@pytest.mark.slow
def test_a_wandb_program_reads_its_sweep_params_from_wandb_config(tmp_path: Path) -> None:
    """A program that takes no flags and reads wandb.config (as W&B's sweep docs show) runs
    unchanged under expbook sweep: the agent hands the params over as W&B's does."""
    (tmp_path / "train.py").write_text(SWEPT_PROGRAM)
    (tmp_path / "sweep.yaml").write_text(SWEEP_SPEC)
    store = str(tmp_path / "runs.db")
    path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"  # ${interpreter}
    done = run_cli("sweep", "run", "sweep.yaml", store=store, cwd=tmp_path, timeout=180,
                   env={"EXPBOOK_SWEEP_POLL": "0.2", "PATH": path})  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    runs = sorted(expbook.open_store(store).runs(), key=lambda r: r.params["lr"])
    assert [r.params["lr"] for r in runs] == [0.1, 0.2]
    for run in runs:
        assert run.params["optimizer.momentum"] == 0.9 and run.params["epochs"] == 3
        assert run.metrics["loss"].value == pytest.approx(run.params["lr"] * 0.9 + 2)


def test_wandb_init_takes_the_params_file_of_wandbs_own_agent(
    wandb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # as wandb/wandb_agent.py writes it: YAML, a version key, {"value": ...} per parameter
    path = tmp_path / "config-abc123.yaml"
    path.write_text("wandb_version: 1\nlr:\n  desc: null\n  value: 0.01\nlayers:\n  value: 3\n")
    monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(path))
    run = wandb.init(config={"lr": 0.1, "batch": 32})
    assert dict(wandb.config.items()) == {"lr": 0.01, "batch": 32, "layers": 3}
    assert run.expbook_run.record().params == {"lr": 0.01, "batch": 32, "layers": 3}
