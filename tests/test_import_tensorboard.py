"""``expbook import tensorboard``: event files written by real writers (tensorboardX, and
TensorBoard's own event writer for TF 2-style tensor scalars), read back point by point."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from expbook.cli.main import run_cli
from expbook.store import open_store

pytest.importorskip("tensorboard")
tensorboardX = pytest.importorskip("tensorboardX")

T0 = 1_700_000_000.25


def f32(value: float) -> float:
    """What a float32 ``simple_value`` holds."""
    return struct.unpack("f", struct.pack("f", value))[0]


def write_scalars(directory: Path, steps: range, *, hparams: bool = False) -> None:
    """Two tags with distinct values, steps and wall times; a histogram, an image and a text
    (skipped); PyTorch-style ``add_hparams`` (a timestamped subdirectory)."""
    writer = tensorboardX.SummaryWriter(str(directory))
    for step in steps:
        writer.add_scalar("train/loss", 1.0 / (step + 1), step * 10, walltime=T0 + step)
        if step % 2 == 0:
            writer.add_scalar("valid/acc", step / 100, step * 10, walltime=T0 + step + 0.5)
    writer.add_histogram("weights", [0.1, 0.2, 0.3], 0)
    writer.add_image("sample", [[[0.0]]], 0)
    writer.add_text("notes", "hello", 0)
    if hparams:
        writer.add_hparams({"lr": 0.001, "optimizer": "adam", "layers": 4, "bn": True},
                           {"hparam/accuracy": 0.93})  # fmt: skip
    writer.close()


def write_tensor_scalars(directory: Path) -> None:
    """Scalars as TF 2's tf.summary.scalar writes them: a float64 tensor with the scalars
    plugin's metadata, through TensorBoard's own event file writer."""
    import numpy
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    writer = EventFileWriter(str(directory))
    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    for step in range(3):
        tensor = tensor_util.make_tensor_proto(numpy.float64(0.1 * step + 1e-12))
        value = Summary.Value(tag="lr", metadata=metadata, tensor=tensor)
        writer.add_event(Event(wall_time=T0 + step, step=step, summary=Summary(value=[value])))
    writer.close()


def import_tb(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(["import", "tensorboard", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    write_scalars(root / "lr-0.001", range(20), hparams=True)
    write_scalars(root / "sweep" / "lr-0.01", range(5))
    write_tensor_scalars(root / "tf2")
    return root


def test_every_point_param_and_time_is_imported(logdir: Path, tmp_path: Path, capsys) -> None:
    store = str(tmp_path / "s.db")
    code, out, err = import_tb(capsys, str(logdir), "--store", store, "-e", "lr sweep")
    assert code == 0, err
    assert "imported from TensorBoard" in out and "3 runs (3 new)" in out
    assert "histograms tags: 2; images tags: 2; text tags: 2" in out
    with open_store(store) as opened:
        runs = {run.name: run for run in opened.runs()}
        assert sorted(runs) == ["lr-0.001", "sweep/lr-0.01", "tf2"]
        run = runs["lr-0.001"]
        assert run.status.value == "finished" and run.experiment == "lr sweep"
        assert run.params == {"lr": 0.001, "optimizer": "adam", "layers": 4, "bn": True}
        assert run.started_at == T0
        loss = opened.series(run.id, "train/loss")
        assert list(loss.steps) == [s * 10 for s in range(20)]
        assert list(loss.values) == [f32(1.0 / (s + 1)) for s in range(20)]
        assert list(loss.times) == [T0 + s for s in range(20)]
        acc = opened.series(run.id, "valid/acc")
        assert list(acc.steps) == [s * 10 for s in range(0, 20, 2)]
        assert list(acc.values) == [f32(s / 100) for s in range(0, 20, 2)]
        assert list(acc.times) == [T0 + s + 0.5 for s in range(0, 20, 2)]
        hparam = opened.series(run.id, "hparam/accuracy")  # add_hparams writes it at "now"
        assert list(hparam.values) == [f32(0.93)]
        assert run.ended_at == hparam.times[0] > T0 + 19
        small = runs["sweep/lr-0.01"]
        assert list(opened.series(small.id, "train/loss").steps) == [0, 10, 20, 30, 40]
        assert not small.params and small.ended_at == T0 + 4.5
        tf2 = opened.series(runs["tf2"].id, "lr")
        assert list(tf2.values) == [0.1 * s + 1e-12 for s in range(3)]  # float64 kept
        assert list(tf2.times) == [T0, T0 + 1, T0 + 2]


def test_importing_again_adds_nothing_and_a_grown_run_gets_its_new_points(
    logdir: Path, tmp_path: Path, capsys
) -> None:
    store = str(tmp_path / "s.db")
    assert import_tb(capsys, str(logdir), "--store", store)[0] == 0
    code, out, _ = import_tb(capsys, str(logdir), "--store", store)
    assert code == 0 and "3 runs (3 up to date); 0 points, 0 params" in out
    # the program resumed: a second event file in the same directory, 10 more steps
    writer = tensorboardX.SummaryWriter(str(logdir / "sweep" / "lr-0.01"))
    for step in range(5, 15):
        writer.add_scalar("train/loss", 1.0 / (step + 1), step * 10, walltime=T0 + step)
    writer.close()
    code, out, _ = import_tb(capsys, str(logdir), "--store", store, "--dry-run")
    assert "would import" in out and "(1 updated, 2 up to date); 10 points" in out
    code, out, _ = import_tb(capsys, str(logdir), "--store", store)
    assert "(1 updated, 2 up to date); 10 points" in out
    with open_store(store) as opened:
        assert len(opened.runs()) == 3
        run = opened.run("sweep/lr-0.01")
        loss = opened.series(run.id, "train/loss")
        assert list(loss.steps) == [s * 10 for s in range(15)]
        assert list(loss.times) == [T0 + s for s in range(15)]
        assert run.metrics["train/loss"].count == 15
        assert run.ended_at == T0 + 14
        first = opened.run("lr-0.001")
        assert first.metrics["train/loss"].count == 20
    assert "0 points" in import_tb(capsys, str(logdir), "--store", store)[1]


def test_dry_run_writes_nothing(logdir: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "s.db"
    code, out, _ = import_tb(capsys, str(logdir), "--store", str(store), "--dry-run")
    assert code == 0 and not store.exists()
    assert out.startswith("dry run: nothing is written")
    assert "would import from TensorBoard" in out and "3 runs (3 new)" in out


def test_the_same_run_dir_imported_from_its_parent_or_itself_is_one_run(
    logdir: Path, tmp_path: Path, capsys
) -> None:
    store = str(tmp_path / "s.db")
    import_tb(capsys, str(logdir / "sweep"), "--store", store)
    out = import_tb(capsys, str(logdir), "--store", store)[1]
    assert "(2 new, 1 up to date)" in out
    with open_store(store) as opened:
        assert len(opened.runs()) == 3


@pytest.mark.parametrize("case", ["missing", "empty", "file"])
def test_bad_input_is_one_line(tmp_path: Path, capsys, case: str) -> None:
    target = tmp_path / "logs"
    if case == "empty":
        (target / "sub").mkdir(parents=True)
        (target / "sub" / "notes.txt").write_text("x")
    elif case == "file":
        target.write_text("x")
    code, out, err = import_tb(capsys, str(target), "--store", str(tmp_path / "s.db"))
    assert code in (1, 2) and out == ""
    assert len(err.strip().splitlines()) == 1, err
    expected = {"missing": "does not exist", "empty": "no TensorBoard event files", "file": "file"}
    assert expected[case] in err
    assert not (tmp_path / "s.db").exists()
