"""Params from a command line: flags, values, typing, ``--``, settings and config files."""

from __future__ import annotations

import json
import math
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expbook.errors import InvalidValueError
from expbook.runner.argv import command_name, command_params
from expbook.runner.configs import MAX_CONFIG_BYTES, ParamsWarning
from expbook.runner.rewrite import with_flags
from expbook.runner.settings import RunSettings
from expbook.validation import check_key

GEMATRIA = (
    "bazel run //gematria/granite/python:run_granite_model -- --gematria_action=train "
    "--gematria_checkpoint_dir=/data/bbs_20u7_model4/ --gematria_learning_rate=0.001 "
    "--gematria_loss_type=mean_absolute_error --gematria_training_num_epochs=0 "
    "--gematria_tokens_file=/data/vocab.txt  "
    "--gematria_input_file=/data/bbs_benchmarked_20u7.tfrecord  "
    "--gematria_max_blocks_in_batch=100 --gematria_learning_rate_schedule=cosine "
    "--gematria_decay_steps=10000"
)
CARGO = (
    "cargo run --release -- --model-epochs 16 --training-sources a --training-sources b "
    '--features "cli ml_train ml_target_full"'
)
PYTHON = (
    "python train.py --lr 1e-3 --batch-size 32 --amp --config configs/gru.yaml -n 4 "
    "--dropout=0.0 --seed -1"
)


BOOLEAN_AMP = RunSettings(booleans=frozenset({"amp"}))


def params(command: str, run_settings: RunSettings | None = None, **kwargs: Any) -> dict[str, Any]:
    return command_params(shlex.split(command), run_settings or RunSettings(), **kwargs)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --- the real command lines -----------------------------------------------------------------


def test_bazel_gematria_command_line() -> None:
    assert params(GEMATRIA) == {
        "gematria_action": "train",
        "gematria_checkpoint_dir": "/data/bbs_20u7_model4/",
        "gematria_learning_rate": 0.001,
        "gematria_loss_type": "mean_absolute_error",
        "gematria_training_num_epochs": 0,
        "gematria_tokens_file": "/data/vocab.txt",
        "gematria_input_file": "/data/bbs_benchmarked_20u7.tfrecord",
        "gematria_max_blocks_in_batch": 100,
        "gematria_learning_rate_schedule": "cosine",
        "gematria_decay_steps": 10000,
    }


def test_bazel_gematria_with_an_ignored_checkpoint_dir() -> None:
    result = params(GEMATRIA, RunSettings(ignore=frozenset({"gematria_checkpoint_dir"})))
    assert "gematria_checkpoint_dir" not in result
    assert len(result) == 9


def test_cargo_command_line() -> None:
    assert params(CARGO) == {
        "release": True,
        "model-epochs": 16,
        "training-sources": ["a", "b"],
        "features": ["cli", "ml_train", "ml_target_full"],
    }


def test_python_command_line(tmp_path: Path) -> None:
    assert params(PYTHON, cwd=tmp_path) == {
        "lr": 0.001,
        "batch-size": 32,
        "amp": True,
        "config": "configs/gru.yaml",
        "n": 4,
        "dropout": 0.0,
        "seed": -1,
    }


def test_python_command_line_loads_its_config_file(tmp_path: Path) -> None:
    write(tmp_path / "configs" / "gru.yaml", "model:\n  hidden: 256\n  cell: gru\nepochs: 10\n")
    result = params(PYTHON, cwd=tmp_path)
    assert result == {
        "lr": 0.001,
        "batch-size": 32,
        "amp": True,
        "config": "configs/gru.yaml",
        "n": 4,
        "dropout": 0.0,
        "seed": -1,
        "config.model.hidden": 256,
        "config.model.cell": "gru",
        "config.epochs": 10,
    }


# --- flags and values -----------------------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["prog"], ["prog", "data.csv", "out"], ["prog", "-", "x"]])
def test_no_flags_no_params(argv: list[str]) -> None:
    assert command_params(argv) == {}


def test_the_program_is_not_a_param() -> None:
    assert command_params(["--lr", "0.1"]) == {}
    assert command_params(["--lr", "--x", "1"]) == {"x": 1}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("p --flag value", {"flag": "value"}),
        ("p --flag=value", {"flag": "value"}),
        ("p -f value", {"f": "value"}),
        ("p -lr 0.1", {"lr": 0.1}),
        ("p -n 4", {"n": 4}),
        ("p -lr=0.1", {"lr": 0.1}),
        ("p ---odd 1", {"odd": 1}),
        ("p -xvf a.tar", {"xvf": "a.tar"}),
        ("p in.txt --k v out.txt", {"k": "v"}),
    ],
)
def test_flag_forms(command: str, expected: dict[str, Any]) -> None:
    assert params(command) == expected


def test_keys_keep_the_spelling_of_the_command_line() -> None:
    assert params("p --batch-size 32 --Learning_Rate 1 --gematria_x y") == {
        "batch-size": 32,
        "Learning_Rate": 1,
        "gematria_x": "y",
    }


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("p --define=a=b", {"define": "a=b"}),
        ("p --define a=b", {"define": "a=b"}),
        ("p --empty= --x 1", {"empty": "", "x": 1}),
        ("p --url=http://h:8/?q=1&r=2", {"url": "http://h:8/?q=1&r=2"}),
    ],
)
def test_values_with_equals_signs(command: str, expected: dict[str, Any]) -> None:
    assert params(command) == expected


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("p --amp", {"amp": True}),
        ("p --amp --lr 1", {"amp": True, "lr": 1}),
        ("p --lr 1 --amp", {"lr": 1, "amp": True}),
        ("p --a --b -c", {"a": True, "b": True, "c": True}),
        ("p --amp --", {"amp": True}),
    ],
)
def test_a_flag_without_a_value_is_true(command: str, expected: dict[str, Any]) -> None:
    assert params(command) == expected


def test_booleans_never_take_a_value() -> None:
    run_settings = RunSettings(booleans=frozenset({"amp", "dry_run"}))
    assert params("p --amp data.csv --dry-run 3 --x 1", run_settings) == {
        "amp": True,
        "dry-run": True,
        "x": 1,
    }
    assert params("p --amp data.csv", RunSettings()) == {"amp": "data.csv"}


def test_a_boolean_written_with_a_value_keeps_it() -> None:
    run_settings = RunSettings(booleans=frozenset({"amp"}))
    assert params("p --amp=false --amp=yes", run_settings) == {"amp": [False, "yes"]}


def test_settings_compare_normalised_names() -> None:
    run_settings = RunSettings(booleans=frozenset({"batch_size"}), strings=frozenset({"LR"}))
    assert params("p --Batch-Size 32 --lr 1e-3", run_settings) == {
        "Batch-Size": True,
        "lr": "1e-3",
    }


# --- --no-foo -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("p --no-cuda", {"cuda": False}),
        ("p --no_cuda --lr 1", {"cuda": False, "lr": 1}),
        ("p --No-Cuda", {"Cuda": False}),
        ("p --no-cuda 0", {"no-cuda": 0}),
        ("p --no-cuda=1", {"no-cuda": 1}),
        ("p --no", {"no": True}),
        ("p --no-", {"no-": True}),
        ("p --nothing", {"nothing": True}),
    ],
)
def test_no_prefix(command: str, expected: dict[str, Any]) -> None:
    assert params(command) == expected


def test_no_prefix_with_the_flag_in_booleans_takes_no_value() -> None:
    run_settings = RunSettings(booleans=frozenset({"cuda"}))
    assert params("p --no-cuda data.csv", run_settings) == {"cuda": False}


def test_a_no_flag_listed_in_booleans_keeps_its_name() -> None:
    run_settings = RunSettings(booleans=frozenset({"no_cuda"}))
    assert params("p --no-cuda data.csv", run_settings) == {"no-cuda": True}


@pytest.mark.parametrize("ignored", ["cuda", "no-cuda"])
def test_no_prefix_and_ignore(ignored: str) -> None:
    assert params("p --no-cuda --x 1", RunSettings(ignore=frozenset({ignored}))) == {"x": 1}


def test_a_flag_and_its_negation_collect_in_order() -> None:
    assert params("p --cuda --no-cuda") == {"cuda": [True, False]}


# --- numbers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("p --seed -1", {"seed": -1}),
        ("p --lr -3e-4", {"lr": -3e-4}),
        ("p --shift -.5", {"shift": -0.5}),
        ("p --x -1.", {"x": -1.0}),
        ("p -n -5 --y 2", {"n": -5, "y": 2}),
        ("p --floor -inf", {"floor": -math.inf}),
        ("p -1 --k 2", {"k": 2}),
        ("p --k 2 -1", {"k": [2, -1]}),  # numbers in a row: see below
        ("p --k 2 -1 data.csv", {"k": 2}),
        ("p --a -1 -2", {"a": [-1, -2]}),
        ("p --offset +3", {"offset": 3}),
    ],
)
def test_negative_numbers_are_values_not_flags(command: str, expected: dict[str, Any]) -> None:
    assert params(command) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16", 16),
        ("0", 0),
        ("-0", 0),
        ("0.001", 0.001),
        ("1e-3", 0.001),
        ("1E3", 1000.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("true", True),
        ("TRUE", True),
        ("False", False),
        ("none", None),
        ("None", None),
        ("null", None),
        ("NULL", None),
        ("inf", math.inf),
        ("Infinity", math.inf),
        ("-inf", -math.inf),
        ("007", "007"),
        ("1_000", "1_000"),
        ("0x1f", "0x1f"),
        ("1e", "1e"),
        ("1.2.3", "1.2.3"),
        ("yes", "yes"),
        ("٣", "٣"),
        ("9" * 30, "9" * 30),
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), str(2**63)),
        ("1e999", math.inf),
        ("abc", "abc"),
        ("", ""),
    ],
)
def test_value_typing(text: str, expected: Any) -> None:
    value = command_params(["p", f"--x={text}"])["x"]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", ["nan", "NaN", "-nan"])
def test_nan_is_a_float(text: str) -> None:
    value = command_params(["p", f"--x={text}"])["x"]
    assert isinstance(value, float)
    assert math.isnan(value)


# --- repeats and lists ----------------------------------------------------------------------


def test_a_repeated_flag_collects_values_in_order() -> None:
    assert params("p --src a --src=b -src 3 --other 1") == {"src": ["a", "b", 3], "other": 1}


def test_repeated_list_values_are_flattened() -> None:
    assert params("p --f 'a b' --f c --f 'd 1'") == {"f": ["a", "b", "c", "d", 1]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("cli ml_train ml_target_full", ["cli", "ml_train", "ml_target_full"]),
        ("32 64\t128", [32, 64, 128]),
        ("0.1 -1 1e-3 true none", [0.1, -1, 0.001, True, None]),
        ("/data/a.txt ./b ~/c data/", ["/data/a.txt", "./b", "~/c", "data/"]),
        ("cuda:0 host:8080 a=1 x@y", ["cuda:0", "host:8080", "a=1", "x@y"]),
        ("наука данные", ["наука", "данные"]),
        ("first try, with warmup!", "first try, with warmup!"),
        ("use the model.", "use the model."),
        ("Note: warmup", "Note: warmup"),
        ("data/*.csv x", "data/*.csv x"),
        ("(a b)", "(a b)"),
        ("it's fine", "it's fine"),
        (" lonely ", " lonely "),
        ("  ", "  "),
    ],
)
def test_whitespace_list_heuristic(value: str, expected: Any) -> None:
    assert command_params(["p", "--v", value]) == {"v": expected}


def test_lists_setting_splits_on_whitespace_and_commas() -> None:
    run_settings = RunSettings(lists=frozenset({"gpus", "tags"}))
    assert command_params(
        ["p", "--gpus", "0,1, 2", "--tags=a b,c!", "--other", "0,1", "--gpus="], run_settings
    ) == {"gpus": [0, 1, 2], "tags": ["a", "b", "c!"], "other": "0,1"}
    assert command_params(["p", "--gpus", "3"], run_settings) == {"gpus": [3]}


def test_strings_setting_keeps_text() -> None:
    run_settings = RunSettings(strings=frozenset({"note", "version"}))
    assert command_params(
        ["p", "--note", "cli ml_train", "--version", "16", "--v2", "16"], run_settings
    ) == {"note": "cli ml_train", "version": "16", "v2": 16}


# --- the -- separator -----------------------------------------------------------------------


def test_flags_on_both_sides_of_the_separator_are_params() -> None:
    assert params("bazel run --config=opt //pkg:train -- --lr=0.1") == {
        "config": "opt",
        "lr": 0.1,
    }


def test_the_program_side_wins() -> None:
    assert params("cargo run --release --features a -- --features b --features c") == {
        "release": True,
        "features": ["b", "c"],
    }
    assert params("cargo run --jobs 4 -- --lr 1 --jobs 8") == {"jobs": 8, "lr": 1}


def test_a_bare_separator_is_never_a_param() -> None:
    assert params("p -- --") == {}
    assert params("p --x -- -- --x 2") == {"x": 2}
    assert params("p --a -- b") == {"a": True}


def test_a_later_separator_wins_again() -> None:
    assert params("p --x 1 -- --x 2 -- --x 3 --x 4") == {"x": [3, 4]}


# --- numbers in a row -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("p --milestones 30 60 90", {"milestones": [30, 60, 90]}),
        ("p --milestones 30 60 90 --lr 1", {"milestones": [30, 60, 90], "lr": 1}),
        ("p --betas 0.9 0.999 -- x", {"betas": [0.9, 0.999]}),
        ("p --bounds -1 1 --x", {"bounds": [-1, 1], "x": True}),
        ("p --scales 0.5 1 2", {"scales": 0.5}),  # not all of one kind
        ("p --epochs 10 data.csv", {"epochs": 10}),
        ("p --epochs 10 3 data.csv", {"epochs": 10}),
        ("p --size 224 224 data/", {"size": 224}),
        ("p --lr 0.1 5", {"lr": 0.1}),
        ("p --lr 1e-3 5 --x 1", {"lr": 0.001, "x": 1}),
        ("p --lr=0.1 5 6", {"lr": 0.1}),
        ("p --name a 5 6", {"name": "a"}),
        ("p --gpus 0 1 2 3", {"gpus": [0, 1, 2, 3]}),
    ],
)
def test_numbers_in_a_row(command: str, expected: dict[str, Any]) -> None:
    assert params(command) == expected


def test_settings_decide_how_many_numbers_a_flag_takes() -> None:
    assert params("p --scales 0.5 1 2 d/", RunSettings(lists=frozenset({"scales"}))) == {
        "scales": [0.5, 1, 2]
    }
    assert params("p --seeds 1 2", RunSettings(strings=frozenset({"seeds"}))) == {"seeds": "1"}
    assert params("p --seeds 1 2", RunSettings(booleans=frozenset({"seeds"}))) == {"seeds": True}


def test_a_repeated_flag_with_runs_of_numbers_flattens_them() -> None:
    assert params("p --m 1 2 --m 3") == {"m": [1, 2, 3]}


# --- key=value words (Hydra, make) ----------------------------------------------------------


def test_hydra_overrides_are_params() -> None:
    command = (
        "python train.py model=resnet optimizer.lr=0.01 +trainer.max_epochs=5 ~callbacks "
        "++seed=7 db@backup=mysql hydra/launcher=joblib ~trainer.profiler=simple"
    )
    assert params(command) == {
        "model": "resnet",
        "optimizer.lr": 0.01,
        "trainer.max_epochs": 5,
        "seed": 7,
        "db@backup": "mysql",
        "hydra/launcher": "joblib",
    }


def test_make_variables_are_params() -> None:
    assert params("make train LR=0.1 AMP=true NAME=") == {"LR": 0.1, "AMP": True, "NAME": ""}
    assert command_name(["make", "train", "LR=0.1"]) == "train"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[0,1]", [0, 1]),
        ("[0.5, 1e-3, true, x]", [0.5, 0.001, True, "x"]),
        ("[]", []),
        ("[[0,1],[2]]", "[[0,1],[2]]"),
        ("[a b]", "[a b]"),
        ("[,]", "[,]"),
        ("0.1,0.01", "0.1,0.01"),
        ("${model.dim}", "${model.dim}"),
    ],
)
def test_bracketed_lists(value: str, expected: Any) -> None:
    assert command_params(["p", f"k={value}"]) == {"k": expected}
    assert command_params(["p", "--k", value]) == {"k": expected}


@pytest.mark.parametrize(
    "word", ["http://host/?a=b", "/data/a=b", "=x", "1x=2", "a..b=1", "a b=1", "~a=1", "a.=1"]
)
def test_words_that_are_not_assignments(word: str) -> None:
    assert command_params(["p", word]) == {}


def test_assignments_and_flags_mix() -> None:
    assert params("p --define a=b lr=0.1 --lr 0.2 -- lr=0.3") == {"define": "a=b", "lr": 0.3}
    assert params("p lr=0.1 --lr 0.2") == {"lr": [0.1, 0.2]}


def test_a_flag_takes_a_key_value_word_after_it_unless_it_is_a_boolean() -> None:
    assert params("p --amp model=resnet") == {"amp": "model=resnet"}
    assert params("p --amp model=resnet", BOOLEAN_AMP) == {"amp": True, "model": "resnet"}


def test_settings_apply_to_assignments(tmp_path: Path) -> None:
    write(tmp_path / "exp.json", '{"a": 1}')
    run_settings = RunSettings(strings=frozenset({"version"}), ignore=frozenset({"out.dir"}))
    assert params("p version=16 out.dir=/tmp/x cfg=exp.json", run_settings, cwd=tmp_path) == {
        "version": "16",
        "cfg": "exp.json",
        "config.a": 1,
    }


# --- launchers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "name", "expected"),
    [
        ("env A=1 B= python train.py --lr 0.1", "train", {"env.A": "1", "env.B": ""}),
        ("env -i -u X A=1 python train.py --lr 0.1", "train", {"env.A": "1"}),
        ("CUDA_VISIBLE_DEVICES=1 python train.py --lr 0.1", "train",
         {"env.CUDA_VISIBLE_DEVICES": "1"}),
        ("poetry run python train.py --lr 0.1", "train", {}),
        ("poetry -C sub run python train.py --lr 0.1", "train", {"poetry.C": "sub"}),
        ("uv run train.py --lr 0.1", "train", {}),
        ("uv run python train.py --lr 0.1", "train", {}),
        ("uv run --with torch --frozen -- python train.py --lr 0.1", "train",
         {"uv.with": "torch", "uv.frozen": True}),
        ("uv run -m pkg.train --lr 0.1", "train", {"uv.m": True}),
        ("pipenv run python train.py --lr 0.1", "train", {}),
        ("conda run -n gpu python train.py --lr 0.1", "train", {"conda.n": "gpu"}),
        ("micromamba run -n gpu python train.py --lr 0.1", "train", {"micromamba.n": "gpu"}),
        ("torchrun --nproc_per_node=8 train.py --lr 0.1", "train",
         {"torchrun.nproc_per_node": 8}),
        ("torchrun --standalone --nnodes 1 --nproc-per-node gpu -m pkg.train --lr 0.1", "train",
         {"torchrun.standalone": True, "torchrun.nnodes": 1, "torchrun.nproc-per-node": "gpu",
          "torchrun.m": True}),
        ("python -m torch.distributed.run --nproc_per_node 8 train.py --lr 0.1", "train",
         {"torchrun.nproc_per_node": 8}),
        ("python -m torch.distributed.launch --use_env --nproc_per_node 2 train.py --lr 0.1",
         "train", {"torchrun.use_env": True, "torchrun.nproc_per_node": 2}),
        ("accelerate launch --num_processes 2 --multi_gpu --mixed_precision bf16 train.py "
         "--lr 0.1", "train",
         {"accelerate.num_processes": 2, "accelerate.multi_gpu": True,
          "accelerate.mixed_precision": "bf16"}),
        ("deepspeed --num_gpus 8 --no_local_rank train.py --lr 0.1", "train",
         {"deepspeed.num_gpus": 8, "deepspeed.no_local_rank": True}),
        ("srun -n 4 -N2 --gres=gpu:1 -l python train.py --lr 0.1", "train",
         {"srun.n": 4, "srun.N": 2, "srun.gres": "gpu:1", "srun.l": True}),
        ("mpirun -np 4 --allow-run-as-root --mca btl ^openib python train.py --lr 0.1", "train",
         {"mpirun.np": 4, "mpirun.allow-run-as-root": True, "mpirun.mca": "btl ^openib"}),
        ("nohup python train.py --lr 0.1", "train", {}),
        ("timeout 10h python train.py --lr 0.1", "train", {}),
        ("timeout -s INT -k 30 600 python train.py --lr 0.1", "train", {}),
        ("timeout --signal=KILL 2.5 python train.py --lr 0.1", "train", {}),
        ("stdbuf -oL -eL python train.py --lr 0.1", "train", {}),
        ("stdbuf -o 0 --error=L python train.py --lr 0.1", "train", {}),
        ("xvfb-run -a -s '-screen 0 1400x900x24' python train.py --lr 0.1", "train", {}),
        ("time -v python train.py --lr 0.1", "train", {"time.v": True}),
        ("nice -n 10 python train.py --lr 0.1", "train", {"nice.n": 10}),
        ("nice -10 python train.py --lr 0.1", "train", {}),
        ("/usr/bin/env A=1 .venv/bin/python3.12 -u -X dev scripts/train.py --lr 0.1", "train",
         {"env.A": "1"}),
        ("bash -x -o pipefail train.sh --lr 0.1", "train", {}),
    ],
)  # fmt: skip
def test_launchers_are_unwrapped(command: str, name: str, expected: dict[str, Any]) -> None:
    assert params(command) == {**expected, "lr": 0.1}
    assert command_name(shlex.split(command)) == name


def test_timeout_stdbuf_and_xvfb_run_nest_and_rerun_changes_the_program() -> None:
    command = (
        "timeout -k 30 10h stdbuf -oL xvfb-run -a torchrun --nproc_per_node 2 train.py --lr 0.1"
    )
    assert params(command) == {"torchrun.nproc_per_node": 2, "lr": 0.1}
    assert command_name(shlex.split(command)) == "train"
    assert rewrite(command, "lr=0.2", "torchrun.nproc_per_node=4") == (
        "timeout -k 30 10h stdbuf -oL xvfb-run -a torchrun --nproc_per_node 4 train.py --lr 0.2"
    )


def test_launchers_nest() -> None:
    command = (
        "env OMP_NUM_THREADS=4 nohup srun -N1 uv run --frozen torchrun --nproc_per_node 2 "
        "-m pkg.train --lr 0.1 model=resnet"
    )
    assert params(command) == {
        "env.OMP_NUM_THREADS": "4",
        "srun.N": 1,
        "uv.frozen": True,
        "torchrun.nproc_per_node": 2,
        "torchrun.m": True,
        "lr": 0.1,
        "model": "resnet",
    }
    assert command_name(shlex.split(command)) == "train"


@pytest.mark.parametrize(
    ("command", "name", "expected"),
    [
        ("uv pip install torch", "uv", {}),
        ("poetry install --no-root", "poetry", {"root": False}),
        ("accelerate config --config_file x.yaml", "accelerate", {"config_file": "x.yaml"}),
        ("torchrun", "torchrun", {}),
        ("torchrun --nnodes 2", "torchrun", {"torchrun.nnodes": 2}),
        ("python", "python", {}),
        ("python -m", "python", {}),
        ("python -c 'import x' --lr 1", "python", {"lr": 1}),
        ("python -uc 'import x' --lr 1", "python", {"lr": 1}),
        ("bash -lc 'python train.py --lr 2' --lr 1", "bash", {"lr": 1}),
        ("python - --lr 1", "python", {"lr": 1}),
        ("uv run - --lr 1", "uv", {"lr": 1}),
        ("python -Wignore -um pkg.train --lr 1", "train", {"lr": 1}),
        ("python -m pkg. --lr 1", "run", {"lr": 1}),
        ("uv run --new-option 3 train.py --lr 1", "train", {"uv.new-option": 3, "lr": 1}),
    ],
)
def test_launchers_without_a_program(command: str, name: str, expected: dict[str, Any]) -> None:
    assert params(command) == expected
    assert command_name(shlex.split(command)) == name


def test_launcher_options_follow_the_settings_by_their_full_name() -> None:
    command = "torchrun --rdzv_endpoint host:29400 --rdzv_id 7 train.py --lr 1"
    run_settings = RunSettings(
        ignore=frozenset({"torchrun.rdzv_endpoint"}), strings=frozenset({"torchrun.rdzv_id"})
    )
    assert params(command, run_settings) == {"torchrun.rdzv_id": "7", "lr": 1}


def test_config_files_named_by_launchers_are_not_read(tmp_path: Path) -> None:
    write(tmp_path / "acc.yaml", "num_processes: 2\n")
    write(tmp_path / "ds.json", '{"zero": 2}')
    command = "accelerate launch --config_file acc.yaml train.py --ds ds.json"
    assert params(command, cwd=tmp_path) == {
        "accelerate.config_file": "acc.yaml",
        "ds": "ds.json",
        "config.zero": 2,
    }


# --- run names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ([], "run"),
        (["./train.py", "--lr", "1"], "train"),
        (["python", "train.py", "--config", "c.py"], "train"),
        (["python", "-m", "pkg.sub.train"], "train"),
        (["python3.11", "-O", "t.py"], "t"),
        (["bash", "scripts/train.sh"], "train"),
        (["Rscript", "fit.R"], "Rscript"),
        (["./a.out", "--lr", "1"], "a.out"),
        (["cargo", "run", "--release", "--bin", "train", "--", "--lr", "1"], "train"),
        (["cargo", "run", "--example", "demo"], "demo"),
        (["cargo", "run", "--release"], "cargo"),
        (["bazel", "run", "//gematria/granite/python:run_granite_model", "--", "--x=1"],
         "run_granite_model"),
        (["bazelisk", "run", ":train"], "train"),
        (["make", "-C", "sub", "-j", "4", "LR=1", "train"], "train"),
        (["make"], "make"),
        (["uvicorn", "app:main"], "uvicorn"),
        (["shuf", "x.py"], "shuf"),
    ],
)  # fmt: skip
def test_command_name(command: list[str], name: str) -> None:
    assert command_name(command) == name


# --- ignore, invalid keys, unicode ----------------------------------------------------------


def test_ignored_flags_are_dropped_with_their_value() -> None:
    run_settings = RunSettings(ignore=frozenset({"output_dir", "o"}))
    assert params("p --output-dir /tmp/x --lr 1 -o out --Output_Dir=y", run_settings) == {"lr": 1}


@pytest.mark.parametrize(
    "token", ["--it's", '--"q"', "--a//b", "--/x", "--x/", "--=v", "---", f"--{'k' * 251}"]
)
def test_a_flag_with_an_invalid_key_is_skipped_with_its_value(token: str) -> None:
    assert command_params(["p", token, "value", "--ok", "1"]) == {"ok": 1}


def test_unicode_flags_and_values() -> None:
    assert command_params(["p", "--λ=β", "--名前", "値", "--emoji", "🚀", "--größe", "1,5"]) == {
        "λ": "β",
        "名前": "値",
        "emoji": "🚀",
        "größe": "1,5",
    }


def test_lone_surrogates_in_config_files_become_replacement_characters(tmp_path: Path) -> None:
    write(tmp_path / "c.json", '{"k\\ud800": "v\\udfff", "l": [{"\\ud801": 1}]}')
    result = params("p c.json", cwd=tmp_path)
    assert result == {"config.k\ufffd": "v\ufffd", "config.l": ['{"\ufffd": 1}']}


def test_undecodable_bytes_become_replacement_characters() -> None:
    result = command_params(["p", "--name", "caf\udce9", "--x\udcff", "1"])
    assert result == {"name": "caf\ufffd", "x\ufffd": 1}
    json.dumps(result, ensure_ascii=False).encode("utf-8")


def test_tokens_need_not_be_str() -> None:
    assert command_params(["p", "--out", Path("/x/y")]) == {"out": "/x/y"}  # type: ignore[list-item]


# --- config files ---------------------------------------------------------------------------


def test_yaml_config_is_flattened_into_dotted_keys(tmp_path: Path) -> None:
    write(
        tmp_path / "c.yaml",
        "model:\n  hidden: 256\n  layers: [1, 2.5, x, null]\n  opt: {name: adam, betas: [0.9]}\n"
        "data:\n  items: [{a: 1}, [2, 3], 4]\n  empty: {}\n  none: ~\n  when: 2024-01-02\n",
    )
    assert params("p --config c.yaml", cwd=tmp_path) == {
        "config": "c.yaml",
        "config.model.hidden": 256,
        "config.model.layers": [1, 2.5, "x", None],
        "config.model.opt.name": "adam",
        "config.model.opt.betas": [0.9],
        "config.data.items": ['{"a": 1}', "[2, 3]", 4],
        "config.data.none": None,
        "config.data.when": "2024-01-02",
    }


def test_json_and_toml_configs(tmp_path: Path) -> None:
    write(tmp_path / "a.json", '{"lr": 0.1, "opt": {"name": "sgd"}, "tags": ["x", "y"]}')
    write(tmp_path / "b.TOML", "[train]\nepochs = 3\nwhen = 1979-05-27T07:32:00Z\n[[runs]]\nn=1\n")
    assert params("p --hp a.json --extra=b.TOML", cwd=tmp_path) == {
        "hp": "a.json",
        "extra": "b.TOML",
        "config.lr": 0.1,
        "config.opt.name": "sgd",
        "config.tags": ["x", "y"],
        "config.train.epochs": 3,
        "config.train.when": "1979-05-27 07:32:00+00:00",
        "config.runs": ['{"n": 1}'],
    }


def test_several_configs_merge_in_order_later_wins(tmp_path: Path) -> None:
    write(tmp_path / "base.yml", "lr: 0.1\nmodel: {hidden: 128, cell: lstm}\n")
    write(tmp_path / "exp.json", '{"model": {"hidden": 512}}')
    result = params("p --config base.yml --config exp.json", cwd=tmp_path)
    assert result == {
        "config": ["base.yml", "exp.json"],
        "config.lr": 0.1,
        "config.model.hidden": 512,
        "config.model.cell": "lstm",
    }


def test_a_positional_config_file_is_loaded(tmp_path: Path) -> None:
    write(tmp_path / "run.yaml", "seed: 7\n")
    assert params("python train.py run.yaml --lr 1", cwd=tmp_path) == {
        "lr": 1,
        "config.seed": 7,
    }


def test_an_absolute_config_path(tmp_path: Path) -> None:
    path = write(tmp_path / "c.json", '{"a": 1}')
    assert command_params(["p", "--c", str(path)], cwd="/") == {"c": str(path), "config.a": 1}


def test_relative_paths_resolve_against_cwd_default_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "exp" / "c.json", '{"a": 1}')
    monkeypatch.chdir(tmp_path / "exp")
    assert params("p --c c.json") == {"c": "c.json", "config.a": 1}
    assert params("p --c c.json", cwd=tmp_path) == {"c": "c.json"}
    assert params("p --c exp/c.json", cwd=tmp_path) == {"c": "exp/c.json", "config.a": 1}


def test_a_flag_wins_over_a_config_value_of_the_same_key(tmp_path: Path) -> None:
    write(tmp_path / "c.json", '{"lr": 1, "wd": 2}')
    assert params("p --config.lr 5 --config c.json", cwd=tmp_path) == {
        "config.lr": 5,
        "config": "c.json",
        "config.wd": 2,
    }


def test_files_that_are_not_configs_are_not_read(tmp_path: Path) -> None:
    write(tmp_path / "c.txt", '{"a": 1}')
    write(tmp_path / "c.yaml.bak", "a: 1\n")
    (tmp_path / "d.json").mkdir()
    assert params("p --c c.txt --d c.yaml.bak --e d.json --f missing.json", cwd=tmp_path) == {
        "c": "c.txt",
        "d": "c.yaml.bak",
        "e": "d.json",
        "f": "missing.json",
    }


def test_an_ignored_flag_s_config_is_not_loaded(tmp_path: Path) -> None:
    write(tmp_path / "out.json", '{"a": 1}')
    run_settings = RunSettings(ignore=frozenset({"output"}))
    assert params("p --output out.json --x 1", run_settings, cwd=tmp_path) == {"x": 1}


def test_a_strings_flag_still_loads_its_config(tmp_path: Path) -> None:
    write(tmp_path / "c.json", '{"a": 1}')
    run_settings = RunSettings(strings=frozenset({"config"}))
    assert params("p --config c.json", run_settings, cwd=tmp_path) == {
        "config": "c.json",
        "config.a": 1,
    }


def test_config_keys_that_are_invalid_are_skipped(tmp_path: Path) -> None:
    write(tmp_path / "c.json", '{"it\'s": 1, "": {"x": 2}, "ok": 3, "a/": 4, "n": {"b\\"c": 5}}')
    assert params("p c.json", cwd=tmp_path) == {"config..x": 2, "config.ok": 3}


def test_yaml_keys_that_are_not_strings(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", "2: two\ntrue: yes\nnull: 0\nsizes: {64: a}\n")
    assert params("p c.yaml", cwd=tmp_path) == {
        "config.2": "two",
        "config.True": True,
        "config.None": 0,
        "config.sizes.64": "a",
    }


def test_an_empty_config_file_adds_nothing(tmp_path: Path) -> None:
    write(tmp_path / "c.yaml", "")
    write(tmp_path / "d.toml", "")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert params("p c.yaml d.toml --x 1", cwd=tmp_path) == {"x": 1}


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("bad.yaml", "a: [1, 2\n", "invalid YAML"),
        ("bad.json", "{'a': 1}", "Expecting property name"),
        ("bad.toml", "a = \n", "Invalid value"),
        ("list.json", "[1, 2]", "it holds a list, not a mapping"),
        ("scalar.yaml", "just text\n", "it holds a str, not a mapping"),
        ("two.yaml", "a: 1\n---\nb: 2\n", "invalid YAML"),
        ("tag.yaml", "a: !!python/object:os.system x\n", "invalid YAML"),
        ("latin1.toml", "a = 'caf\xe9'\n", "utf-8"),
    ],
)
def test_a_config_that_cannot_be_parsed_is_skipped_with_a_warning(
    tmp_path: Path, name: str, text: str, reason: str
) -> None:
    (tmp_path / name).write_bytes(text.encode("latin-1"))
    write(tmp_path / "good.json", '{"a": 1}')
    with pytest.warns(ParamsWarning, match=rf"config file '{name}' skipped: .*{reason}"):
        result = params(f"p --c {name} good.json", cwd=tmp_path)
    assert result == {"c": name, "config.a": 1}


def test_a_config_larger_than_one_mib_is_not_read(tmp_path: Path) -> None:
    write(tmp_path / "big.json", '{"a": "' + "x" * MAX_CONFIG_BYTES + '"}')
    write(tmp_path / "edge.json", '{"b": "' + "x" * (MAX_CONFIG_BYTES - 9) + '"}')
    assert (tmp_path / "edge.json").stat().st_size == MAX_CONFIG_BYTES
    with pytest.warns(ParamsWarning, match="'big.json' skipped: it is larger than 1048576 bytes"):
        result = params("p big.json edge.json", cwd=tmp_path)
    assert result == {"config.b": "x" * (MAX_CONFIG_BYTES - 9)}


def test_yaml_alias_bombs_and_loops_are_skipped(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdef", "bcdefg", strict=True)
    )
    write(tmp_path / "bomb.yaml", bomb)
    write(tmp_path / "loop.yaml", "a: &a\n  b: *a\n")
    with pytest.warns(ParamsWarning) as record:
        assert params("p bomb.yaml loop.yaml", cwd=tmp_path) == {}
    assert [str(w.message) for w in record] == [
        "expbook: config file 'bomb.yaml' skipped: it holds more than 100000 values",
        "expbook: config file 'loop.yaml' skipped: it is nested more than 100 levels deep",
    ]


def test_deeply_nested_json_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "deep.json", '{"a": ' * 150 + "1" + "}" * 150)
    write(tmp_path / "deeper.json", "[" * 100_000 + "]" * 100_000)
    with pytest.warns(ParamsWarning) as record:
        assert params("p deep.json deeper.json", cwd=tmp_path) == {}
    assert "nested more than 100 levels deep" in str(record[0].message)
    assert "'deeper.json' skipped" in str(record[1].message)


def test_without_pyyaml_yaml_files_are_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "c.yaml", "a: 1\n")
    write(tmp_path / "d.json", '{"b": 2}')
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.warns(ParamsWarning, match="'c.yaml' skipped: PyYAML is not installed"):
        result = params("p --c c.yaml --d d.json", cwd=tmp_path)
    assert result == {"c": "c.yaml", "d": "d.json", "config.b": 2}


# --- expbook rerun --set: with_flags --------------------------------------------------------


def rewrite(command: str, *assignments: str, run_settings: RunSettings | None = None) -> str:
    return shlex.join(with_flags(shlex.split(command), assignments, run_settings or RunSettings()))


@pytest.mark.parametrize(
    ("command", "assignment", "expected"),
    [
        ("p --lr 0.1 --x 1", "lr=0.2", "p --lr 0.2 --x 1"),
        ("p --lr=0.1 --x 1", "lr=0.2", "p --lr=0.2 --x 1"),
        ("p -lr 0.1 -epochs 5", "lr=0.2", "p -lr 0.2 -epochs 5"),
        ("p -lr=0.1", "lr=0.2", "p -lr=0.2"),
        ("p -n 4", "n=8", "p -n 8"),
        ("p --batch-size 32", "batch_size=64", "p --batch-size 64"),
        ("p --lr 1 --lr 2", "lr=3", "p --lr 1 --lr 3"),
        ("p --note 'a b'", "note=c d", "p --note 'c d'"),
        ("p --milestones 30 60 90 --lr 1", "milestones=10 20", "p --milestones 10 20 --lr 1"),
        ("p --milestones 30 60 90", "milestones=5", "p --milestones 5"),
        ("p --a -- x", "a=1", "p --a=1 -- x"),
        ("p --a --", "a=1", "p --a=1 --"),
        ("cargo run --jobs 4 -- --lr 1", "lr=2", "cargo run --jobs 4 -- --lr 2"),
        ("cargo run --jobs 4 -- --lr 1", "jobs=8", "cargo run --jobs 8 -- --lr 1"),
        ("p --lr 1", "--lr=2", "p --lr 2"),
        ("p --lr 1", "-lr=2", "p --lr 2"),
        ("p lr=1", "--lr=2", "p lr=1 --lr=2"),
        ("p --x 1", "new=2", "p --x 1 --new=2"),
        ("p", "n=8", "p -n 8"),
        ("p -lr 0.1 -epochs 5", "bs=32", "p -lr 0.1 -epochs 5 -bs 32"),
        ("p -lr 0.1 --epochs 5", "bs=32", "p -lr 0.1 --epochs 5 --bs=32"),
        ("p", "--new=1", "p --new=1"),
        ("p --x 1", "new=", "p --x 1 --new="),
    ],
)
def test_set_a_flag(command: str, assignment: str, expected: str) -> None:
    assert rewrite(command, assignment) == expected


@pytest.mark.parametrize(
    ("command", "assignment", "expected"),
    [
        ("p --amp --lr 1", "amp=false", "p --lr 1"),
        ("p --amp --lr 1 --amp", "amp=False", "p --lr 1"),
        ("p --amp --lr 1", "amp=true", "p --amp --lr 1"),
        ("p --amp --lr 1", "amp=fp16", "p --amp=fp16 --lr 1"),
        ("p --amp=false", "amp=true", "p --amp=true"),
        ("p --no-amp --lr 1", "amp=true", "p --amp --lr 1"),
        ("p --no-amp --lr 1", "amp=false", "p --no-amp --lr 1"),
        ("p --no_amp", "amp=bf16", "p --amp=bf16"),
        ("p --no-amp --lr 1", "no-amp=false", "p --lr 1"),
        ("p --lr 1", "amp=true", "p --lr 1 --amp=true"),
    ],
)
def test_set_a_switch(command: str, assignment: str, expected: str) -> None:
    assert rewrite(command, assignment) == expected


@pytest.mark.parametrize(
    ("command", "assignment", "expected"),
    [
        ("p --amp data.csv", "amp=false", "p data.csv"),
        ("p --amp data.csv", "amp=true", "p --amp data.csv"),
        ("p --amp data.csv", "amp=fp16", "p --amp=fp16 data.csv"),
        ("p data.csv", "amp=true", "p data.csv --amp"),
        ("p data.csv", "amp=false", "p data.csv"),
        ("p -lr 1", "amp=true", "p -lr 1 -amp"),
        ("p --no-amp data.csv", "amp=true", "p --amp data.csv"),
    ],
)
def test_set_a_boolean_from_the_settings(command: str, assignment: str, expected: str) -> None:
    assert rewrite(command, assignment, run_settings=BOOLEAN_AMP) == expected


def test_without_the_settings_a_flag_before_a_word_takes_it_as_its_value() -> None:
    assert rewrite("p --amp data.csv", "amp=false") == "p --amp false"


@pytest.mark.parametrize(
    ("command", "assignments", "expected"),
    [
        (
            "python train.py model=resnet optimizer.lr=0.01 +trainer.max_epochs=5 ~callbacks",
            ("optimizer.lr=0.02", "trainer.max_epochs=10", "newkey=1"),
            "python train.py model=resnet optimizer.lr=0.02 +trainer.max_epochs=10 '~callbacks' "
            "newkey=1",
        ),
        ("make train LR=0.1", ("LR=0.2", "EPOCHS=3"), "make train LR=0.2 EPOCHS=3"),
        ("p --config-name exp a=1", ("b=2",), "p --config-name exp a=1 b=2"),
        ("p a=1 --lr 1", ("bs=2",), "p a=1 --lr 1 --bs=2"),
        ("p --lr 1", ("+b=2", "++c=3"), "p --lr 1 +b=2 ++c=3"),
        ("p a=1", ("+a=2",), "p a=2"),
        ("p +a=1", ("++a=2",), "p +a=2"),
        ("p --a 1", ("+a=2",), "p --a 1 +a=2"),
        ("p --define a=b", ("a=c",), "p --define a=b -a c"),
    ],
)
def test_set_a_key_value_word(command: str, assignments: tuple[str, ...], expected: str) -> None:
    assert rewrite(command, *assignments) == expected


@pytest.mark.parametrize(
    ("command", "assignments", "expected"),
    [
        (
            "torchrun --nproc_per_node=8 train.py --lr 0.1",
            ("torchrun.nproc_per_node=4", "lr=0.2"),
            "torchrun --nproc_per_node=4 train.py --lr 0.2",
        ),
        (
            "torchrun --nproc_per_node 8 train.py --nproc_per_node 1",
            ("torchrun.nproc-per-node=4",),
            "torchrun --nproc_per_node 4 train.py --nproc_per_node 1",
        ),
        (
            "torchrun train.py",
            ("torchrun.nnodes=2", "torchrun.standalone=true", "torchrun.module=false"),
            "torchrun --nnodes 2 --standalone train.py",
        ),
        (
            "torchrun --standalone train.py --lr 1",
            ("torchrun.standalone=false", "nnodes=2"),
            "torchrun train.py --lr 1 --nnodes=2",
        ),
        ("uv run -- python t.py", ("uv.with=torch",), "uv run --with torch -- python t.py"),
        ("srun -N2 python t.py", ("srun.N=4", "srun.n=8"), "srun -N4 -n 8 python t.py"),
        ("mpirun --mca btl tcp python t.py", ("mpirun.mca=a b",), "mpirun --mca a b python t.py"),
        ("python -m torch.distributed.run t.py", ("torchrun.nnodes=2",),
         "python -m torch.distributed.run --nnodes 2 t.py"),
        ("python -X dev t.py", ("X=1",), "python -X dev t.py -X 1"),
    ],
)  # fmt: skip
def test_set_a_launcher_option(command: str, assignments: tuple[str, ...], expected: str) -> None:
    assert rewrite(command, *assignments) == expected


@pytest.mark.parametrize(
    ("command", "assignments", "expected"),
    [
        ("A=1 B=2 p --x 1", ("env.B=3",), "A=1 B=3 p --x 1"),
        ("A=1 p --x 1", ("env.C=3",), "A=1 C=3 p --x 1"),
        ("p --x 1", ("env.C=3",), "C=3 p --x 1"),
        ("env A=1 python t.py", ("env.A=2",), "env A=2 python t.py"),
        ("p --x 1", ("env.=3",), "p --x 1 --env.=3"),
    ],
)
def test_set_the_environment(command: str, assignments: tuple[str, ...], expected: str) -> None:
    assert rewrite(command, *assignments) == expected


def test_set_applies_assignments_in_order() -> None:
    assert rewrite("p --lr 1", "lr=2", "lr=3", "x=1", "x=2") == "p --lr 3 -x 2"


@pytest.mark.parametrize("assignment", ["lr", "=1", "--=1", "+=1", " =1"])
def test_set_needs_a_key_and_a_value(assignment: str) -> None:
    with pytest.raises(InvalidValueError, match="write it as key=value"):
        with_flags(["p"], [assignment])


def test_set_round_trips_through_the_params(tmp_path: Path) -> None:
    command = (
        "env OMP=1 torchrun --nproc_per_node 8 train.py model=resnet -lr 0.1 --milestones 30 60 "
        "--amp"
    )
    new = with_flags(
        shlex.split(command),
        ["lr=0.2", "milestones=10 20 30", "amp=false", "model=vit", "torchrun.nproc_per_node=4"],
    )
    assert command_params(new, cwd=tmp_path) == {
        "env.OMP": "1",
        "torchrun.nproc_per_node": 4,
        "lr": 0.2,
        "milestones": [10, 20, 30],
        "model": "vit",
    }


# --- fuzzing: any argv, never an exception, always valid keys and JSON values ---------------

TOKENS = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["--", "-", "---", "--no-x", "--no-", "-1", "-3e-4", "--a=b=c", "=", "-inf"]),
    st.from_regex(r"\A--?[a-zA-Z_\-'\"/ ]{0,6}(=.{0,6})?\Z"),
    st.sampled_from(["a b", "x, y!", "1 2", "c.json", "c.yaml", "c.toml", "/", "\x00", "\udcff"]),
)
FLAG_NAMES = st.frozensets(st.sampled_from(["x", "a", "no_x", "b_c", "lr", "config"]))
SETTINGS = st.builds(
    RunSettings, booleans=FLAG_NAMES, lists=FLAG_NAMES, strings=FLAG_NAMES, ignore=FLAG_NAMES
)


def assert_valid(result: dict[str, Any]) -> None:
    assert isinstance(result, dict)
    for key, value in result.items():
        assert check_key(key, "param") == key
        items = value if isinstance(value, list) else [value]
        assert all(v is None or isinstance(v, bool | int | float | str) for v in items)
    json.dumps(result, ensure_ascii=False, allow_nan=True).encode("utf-8")


@settings(max_examples=400, deadline=None)
@given(argv=st.lists(TOKENS, max_size=12), run_settings=SETTINGS)
def test_never_raises_on_any_argv(argv: list[str], run_settings: RunSettings) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_valid(command_params(argv, run_settings, cwd="/nonexistent-expbook-dir"))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=st.lists(st.text(), max_size=8))
def test_never_raises_on_arbitrary_text(argv: list[str]) -> None:
    assert_valid(command_params(["prog", *argv], cwd="/nonexistent-expbook-dir"))


LAUNCHER_WORDS = st.sampled_from(
    ["env", "A=1", "uv", "run", "torchrun", "python", "-m", "-c", "srun", "-N2", "accelerate",
     "launch", "mpirun", "--mca", "-", "nice", "-10", "bash", "-lc", "train.py", "k=v", "+k=1"]
)  # fmt: skip
ASSIGNMENTS = st.builds(
    "{}={}".format,
    st.sampled_from(["lr", "k", "x", "env.A", "torchrun.nnodes", "srun.N", "+k", "--x", "a.b"]),
    st.sampled_from(["1", "true", "false", "", "a b", "-1"]),
)


@settings(max_examples=300, deadline=None)
@given(
    argv=st.lists(st.one_of(TOKENS, LAUNCHER_WORDS), max_size=12),
    assignments=st.lists(ASSIGNMENTS, max_size=3),
    run_settings=SETTINGS,
)
def test_set_and_names_never_raise(
    argv: list[str], assignments: list[str], run_settings: RunSettings
) -> None:
    result = with_flags(argv, assignments, run_settings)
    assert all(isinstance(word, str) for word in result)
    assert command_name(argv) and command_name(result)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_valid(command_params(result, run_settings, cwd="/nonexistent-expbook-dir"))


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


CONFIG_TEXT = st.one_of(
    st.binary(max_size=200),
    st.text(alphabet=st.sampled_from(list("ab1:-[]{},&*\n \"'=.#!")), max_size=60).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=20,
    ).map(lambda tree: json.dumps(tree).encode()),
)


@settings(max_examples=300, deadline=None)
@given(suffix=st.sampled_from([".yaml", ".json", ".toml"]), content=CONFIG_TEXT)
def test_never_raises_on_any_config_file(fuzz_dir: Path, suffix: str, content: bytes) -> None:
    (fuzz_dir / f"c{suffix}").write_bytes(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_valid(command_params(["p", "--config", f"c{suffix}"], cwd=fuzz_dir))
