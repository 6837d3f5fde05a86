"""Typos are not silent: an unknown metric, param or experiment named to ``expbook ls``, or a
``rerun --set`` of a flag the command does not have, gets one line naming the closest names."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
from pathlib import Path

import pytest

import expbook
from expbook.store import RunSpec, WriteBatch
from expbook.store.chunks import Points
from tests.helpers import run_cli


@pytest.fixture
def filled(tmp_path: Path) -> str:
    location = str(tmp_path / "s.db")
    store = expbook.open_store(location)
    for index, hidden in enumerate((64, 128)):
        run = store.create_run(
            RunSpec(name=f"gru-{hidden}", experiment="hidden size",
                    params={"model.hidden": hidden, "optimizer.lr": 0.01})
        )  # fmt: skip
        points = {}
        for key in ("valid/acc", "train/loss"):
            points[key] = Points()
            points[key].append(0, 0.5 + index / 10, time.time(), None)
        store.write(run.id, WriteBatch(points=points, update={"status": "finished"}))
    store.close()
    return location


def warnings_of(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: ")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("-m", "valid/accc"),
         "warning: no run has metric 'valid/accc' (did you mean 'valid/acc'?)"),
        (("-p", "model.hiden"),
         "warning: no run has param 'model.hiden' (did you mean 'model.hidden'?)"),
        (("--sort", "-metrics.valid/accuracy"),
         "warning: --sort: no run has metric 'valid/accuracy' (did you mean 'valid/acc'?)"),
        (("--where", "metrics.valid/ac > 0.5"),
         "warning: --where: no run has metric 'valid/ac' (did you mean 'valid/acc'?)"),
        (("--where", "params.lr < 1"),
         "warning: --where: no run has param 'lr' (did you mean 'optimizer.lr'?)"),
    ],
)  # fmt: skip
def test_ls_warns_about_an_unknown_key(filled: str, args: tuple[str, ...], expected: str) -> None:
    result = run_cli("ls", *args, store=filled)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [expected]


def test_known_keys_give_no_warning(filled: str) -> None:
    for args in (("-m", "valid/acc,train/loss"), ("-p", "optimizer.lr"),
                 ("--where", "metrics.valid/acc > 0.9"),  # matches nothing, but is known
                 ("--sort", "-params.model.hidden"), ("-e", "hidden size")):  # fmt: skip
        result = run_cli("ls", *args, store=filled)
        assert (result.returncode, result.stderr) == (0, ""), args


def test_json_output_stays_json_with_the_warning_on_stderr(filled: str) -> None:
    result = run_cli("ls", "-m", "valid/accc", "--json", store=filled)
    assert len(json.loads(result.stdout)) == 2
    assert len(warnings_of(result)) == 1


def test_ls_refuses_an_unknown_experiment(filled: str) -> None:
    result = run_cli("ls", "-e", "hidden-size", store=filled)
    assert result.returncode == 1
    assert (
        result.stderr == "error: no experiment named 'hidden-size' (did you mean 'hidden size'?)\n"
    )
    export = run_cli("export", "-e", "hiden size", store=filled)
    assert export.returncode == 1 and "did you mean 'hidden size'?" in export.stderr


def make_run(tmp_path: Path, command: str, **params: object) -> str:
    location = str(tmp_path / "r.db")
    store = expbook.open_store(location)
    store.create_run(
        RunSpec(name="train", command=shlex.split(command), cwd=str(tmp_path), params=params)
    )
    store.close()
    return location


def test_rerun_set_of_a_flag_the_command_does_not_have_is_refused(tmp_path: Path) -> None:
    location = make_run(tmp_path, "python train.py --lr 0.1 --epochs 5", lr=0.1, epochs=5)
    result = run_cli("rerun", "1", "--set", "batch_size=64", "--dry-run", store=location)
    assert result.returncode == 1, result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith("error: --set batch_size=64: run #1's command has no flag batch_size")
    assert "--set --batch-size=64" in line and "--set --batch_size=64" in line
    close = run_cli("rerun", "1", "--set", "epoch=8", "--dry-run", store=location)
    assert close.returncode == 1 and "(did you mean 'epochs'?)" in close.stderr


def test_rerun_set_adds_a_flag_written_as_the_program_spells_it(tmp_path: Path) -> None:
    location = make_run(tmp_path, "python train.py --lr 0.1", lr=0.1)
    result = run_cli("rerun", "1", "--set", "--batch-size=64", "--set", "lr=0.2", "--dry-run",
                     store=location)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("python train.py --lr 0.2 --batch-size=64\n")


def test_rerun_set_of_a_key_value_param_is_appended_as_one(tmp_path: Path) -> None:
    # Hydra: a key from the config, not on the command line, is set with key=value
    location = make_run(tmp_path, "python train.py model=resnet", model="resnet")
    result = run_cli("rerun", "1", "--set", "optimizer.lr=0.02", "--dry-run", store=location)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("python train.py model=resnet optimizer.lr=0.02\n")
