"""Statistics: repeats, confidence intervals and Welch's t-test, checked against numpy/scipy
computed here independently; and the commands that use them (compare, experiment, --repeat)."""

from __future__ import annotations

import dataclasses
import json
import math
import stat
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

import expbook
from expbook.report.stats import (
    NOISE_UNKNOWN,
    compare_values,
    estimate,
    group_by_params,
    group_repeats,
    is_seed,
)
from tests.helpers import run_cli

A = [0.5101, 0.5234, 0.5159, 0.5188]
B = [0.5546, 0.5490, 0.5611]


def test_estimate_matches_numpy_and_scipy() -> None:
    result = estimate(A)
    assert result.n == 4
    assert result.mean == pytest.approx(np.mean(A))
    assert result.std == pytest.approx(np.std(A, ddof=1))
    low, high = scipy_stats.t.interval(0.95, 3, loc=np.mean(A), scale=scipy_stats.sem(A))
    assert (result.low, result.high) == (pytest.approx(low), pytest.approx(high))
    assert result.format() == f"{np.mean(A):.4g} ± {np.std(A, ddof=1):.2g} (n=4)"
    wide = estimate(A, confidence=0.99)
    assert wide.high - wide.low > result.high - result.low


def test_one_value_has_no_spread_and_nan_propagates() -> None:
    single = estimate([0.9])
    assert single.n == 1 and single.mean == 0.9
    assert math.isnan(single.std) and math.isnan(single.low) and single.format() == "0.9 (n=1)"
    assert math.isnan(estimate([0.5, math.nan]).mean)
    assert estimate([]).n == 0 and estimate([]).format() == "—"


def test_welch_matches_scipy() -> None:
    result = compare_values(A, B)
    reference = scipy_stats.ttest_ind(B, A, equal_var=False)
    interval = reference.confidence_interval(0.95)
    assert result.diff == pytest.approx(np.mean(B) - np.mean(A))
    assert result.t == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert result.df == pytest.approx(reference.df)
    assert (result.low, result.high) == (pytest.approx(interval.low), pytest.approx(interval.high))
    assert result.distinguishable is True
    assert result.verdict.startswith("distinguishable (95% interval excludes 0")


def test_overlapping_groups_are_not_distinguishable() -> None:
    noisy_a, noisy_b = [0.80, 0.86, 0.83], [0.82, 0.88, 0.81]
    result = compare_values(noisy_a, noisy_b)
    assert result.distinguishable is False
    assert result.p_value == pytest.approx(
        scipy_stats.ttest_ind(noisy_b, noisy_a, equal_var=False).pvalue
    )
    assert result.verdict.startswith("not distinguishable from noise")


def test_a_single_run_says_noise_is_unknown() -> None:
    result = compare_values([0.5101], [0.5546])
    assert result.verdict == NOISE_UNKNOWN
    assert result.distinguishable is None and math.isnan(result.p_value)
    assert result.diff == pytest.approx(0.0445)
    assert compare_values([0.5], B).verdict == NOISE_UNKNOWN


def test_identical_repeats_have_no_noise() -> None:
    same = compare_values([0.5, 0.5], [0.5, 0.5])
    assert same.distinguishable is False and same.verdict.startswith("no difference")
    apart = compare_values([0.5, 0.5], [0.6, 0.6])
    assert apart.distinguishable is True


@pytest.mark.parametrize(
    ("key", "seed"),
    [("seed", True), ("training.seed", True), ("random-seed", True), ("manual_seed", True),
     ("--seed", True), ("seeds_per_batch", False), ("lr", False), ("seedling", False)],
)  # fmt: skip
def test_seed_names(key: str, seed: bool) -> None:
    assert is_seed(key) is seed


def test_runs_differing_only_by_seed_are_repeats(tracker: expbook.Tracker) -> None:
    configs = [({"lr": 0.1, "seed": s}, ()) for s in range(3)]
    configs += [({"lr": 0.2, "seed": 0}, ()), ({"lr": 0.2, "rng": 1}, ("seed:rng",))]
    configs += [({"lr": 0.2, "rng": 2}, ("seed:rng",))]
    for params, tags in configs:
        with tracker.start_run(params=params, tags=list(tags), capture=False):
            pass
    runs = tracker.store().runs(sort="number")
    groups = group_repeats(runs)
    assert [[r.number for r in g.runs] for g in groups] == [[1, 2, 3], [4, 5, 6]]
    assert groups[0].params == {"lr": 0.1} and groups[0].label == "#1, #2, #3"
    assert [[r.number for r in g.runs] for g in group_repeats(runs[:3] + runs[4:5])] == [
        [1, 2, 3], [5]]  # fmt: skip


def test_grouping_compares_values_as_canonical_text_not_by_identity(
    tracker: expbook.Tracker,
) -> None:
    """Equal list params group together whether or not the store shares one decoded object
    between runs; 1, 1.0 and true stay three configurations."""
    configs = [{"model": {"hidden": 64}, "layers": [1, 2], "seed": s} for s in range(2)]
    configs += [{"model": {"hidden": 64}, "layers": [1, 2], "rng_seed": 7}]
    configs += [{"model": {"hidden": 128}, "layers": [1, 2], "seed": 0}]
    configs += [{"model": {"hidden": 64}, "layers": v, "seed": 0} for v in (1, 1.0, True)]
    for params in configs:
        with tracker.start_run(params=params, capture=False):
            pass
    runs = tracker.store().runs(sort="number")
    copies = [  # the same values, each run with objects of its own
        dataclasses.replace(run, params=json.loads(json.dumps(dict(run.params)))) for run in runs
    ]
    for found in (runs, copies):
        groups = [[r.number for r in g.runs] for g in group_repeats(found)]
        assert groups == [[1, 2, 3], [4], [5], [6], [7]]
        by_model = [[r.number for r in g.runs] for g in group_by_params(found, ["model.hidden"])]
        assert by_model == [[1, 2, 3, 5, 6, 7], [4]]
        by_layers = [[r.number for r in g.runs] for g in group_by_params(found, ["layers"])]
        assert by_layers == [[1, 2, 3, 4], [5], [6], [7]]


def test_python_repeat_runs_one_configuration_with_seeds(tracker: expbook.Tracker) -> None:
    seen = []
    for seed, run in tracker.repeat(3, "gru", params={"lr": 0.1, "seed": 5}, capture=False):
        with run:
            run.log({"valid/acc": 0.5 + seed / 100}, step=0)
            seen.append(seed)
    assert seen == [5, 6, 7]
    for _seed, run in tracker.repeat(2, "gru", params={"lr": 0.2}, seed_param="rng",
                                     capture=False):  # fmt: skip
        run.log({"valid/acc": 0.4}, step=0)  # left open: the loop finishes it
    runs = tracker.store().runs(sort="number")
    assert [r.params.get("seed", r.params.get("rng")) for r in runs] == [5, 6, 7, 0, 1]
    assert all(r.status.value == "finished" for r in runs)
    assert runs[3].tags == ("seed:rng",)
    assert [len(g.runs) for g in group_repeats(runs)] == [3, 2]
    with pytest.raises(expbook.InvalidValueError, match="repeat count 0"):
        next(tracker.repeat(0))


# --- the commands, through the real console script ---------------------------------------------

TRAIN = """#!/bin/sh
# a training program that is not Python: its accuracy depends on --lr and a little on --seed
lr=0.1; seed=0
while [ $# -gt 0 ]; do
  case "$1" in --lr) lr=$2; shift;; --seed) seed=$2; shift;; --rng) seed=$2; shift;; esac
  shift
done
awk -v lr="$lr" -v seed="$seed" 'BEGIN {
  for (e = 1; e <= 3; e++) printf "epoch %d/3 loss=%.4f\\n", e, 1 / e + seed / 1000
  printf "Valid accuracy: %.4f\\n", 0.5 + lr + seed / 500
}'
"""


@pytest.fixture
def trainer(tmp_path: Path) -> Path:
    script = tmp_path / "train.sh"
    script.write_text(TRAIN)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, on 3 values
def test_repeat_then_compare_on_the_command_line(tmp_path: Path, trainer: Path) -> None:
    store = str(tmp_path / "s.db")
    first = run_cli("run", "--repeat", "3", "-e", "lr", "--", str(trainer), "--lr", "0.1",
                    "--seed", "7", store=store, cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "3 repeats over seed: runs #1, #2, #3" in first.stderr
    second = run_cli("run", "--repeat", "3", "--seed-flag", "--rng", "-e", "lr", "--",
                     str(trainer), "--lr", "0.2", store=store, cwd=tmp_path)  # fmt: skip
    assert second.returncode == 0, second.stderr
    opened = expbook.open_store(store)
    runs = opened.runs(sort="number")
    assert [r.params.get("seed", r.params.get("rng")) for r in runs] == [7, 8, 9, 0, 1, 2]
    assert runs[3].tags == ("seed:rng",)
    values_a = [r.metric("valid_accuracy") for r in runs[:3]]
    values_b = [r.metric("valid_accuracy") for r in runs[3:]]
    assert values_a == [pytest.approx(0.6 + s / 500) for s in (7, 8, 9)]
    answer = run_cli("compare", "1", "4", "--json", store=store)
    assert answer.returncode == 0, answer.stderr
    data = json.loads(answer.stdout)
    assert data["metric"] == "valid_accuracy" and data["a"]["runs"] == [1, 2, 3]
    assert data["b"]["runs"] == [4, 5, 6]
    reference = scipy_stats.ttest_ind(values_b, values_a, equal_var=False)
    assert data["p_value"] == pytest.approx(reference.pvalue)
    assert data["difference"] == pytest.approx(np.mean(values_b) - np.mean(values_a))
    assert data["distinguishable"] is True
    table = run_cli("compare", "1", "4", store=store)
    shown = " ".join(table.stdout.split())  # Rich wraps at the terminal's width
    assert f"B - A: {np.mean(values_b) - np.mean(values_a):+.4g}" in shown
    assert "distinguishable (95% interval excludes 0" in shown
    exact = run_cli("compare", "1", "4", "--exact", store=store)
    assert NOISE_UNKNOWN in exact.stdout
    missing = run_cli("compare", "1", "4", "--metric", "nope", store=store)
    assert missing.returncode == 1
    assert missing.stderr == "error: run(s) #1, #2, #3 have no metric 'nope'\n"


@pytest.mark.slow
def test_experiment_commands(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    made = run_cli("experiment", "new", "What's the ideal sequence length?", "--hypothesis",
                   "longer sequences help", store=store)  # fmt: skip
    assert made.returncode == 0, made.stderr
    again = run_cli("experiment", "new", "What's the ideal sequence length?", store=store)
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "exists" in again.stderr
    tracker = expbook.Tracker(store)
    for length, acc in ((128, 0.51), (256, 0.55)):
        with tracker.start_run(f"len{length}", params={"seq_len": length}, capture=False,
                               experiment="What's the ideal sequence length?") as run:  # fmt: skip
            run.log({"valid/acc": acc}, step=0)
    with tracker.start_run("stray", params={"seq_len": 64}, capture=False) as run:
        run.log({"valid/acc": 0.4}, step=0)
    listed = run_cli("experiment", "ls", "--json", store=store)
    [entry] = json.loads(listed.stdout)
    assert entry["run_count"] == 2 and entry["hypothesis"] == "longer sequences help"
    moved = run_cli("experiment", "move", "3", "--to", "What's the ideal sequence length?",
                    store=store)  # fmt: skip
    assert moved.returncode == 0 and "moved #3" in moved.stdout
    shown = run_cli("experiment", "show", "What's the ideal sequence length?", "--json",
                    store=store)  # fmt: skip
    data = json.loads(shown.stdout)
    assert data["runs"] == [1, 2, 3] and data["best"] == 2 and data["metric"] == "valid/acc"
    text = run_cli("experiment", "show", "What's the ideal sequence length?", store=store)
    assert "best by valid/acc (highest): #2 len256 = 0.55" in text.stdout
    concluded = run_cli("experiment", "conclude", "What's the ideal sequence length?",
                        "256 beats 128 (n=1 each: repeat to be sure)", store=store)  # fmt: skip
    assert concluded.returncode == 0
    run_cli("experiment", "edit", "What's the ideal sequence length?", "--title", "seq len",
            store=store)  # fmt: skip
    record = expbook.open_store(store).get_experiment("seq len")
    assert record.conclusion == "256 beats 128 (n=1 each: repeat to be sure)"
    detached = run_cli("experiment", "move", "3", "--detach", store=store)
    assert detached.returncode == 0 and expbook.open_store(store).run(3).experiment is None
    unknown = run_cli("experiment", "show", "nope", store=store)
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1
    assert "nope" in unknown.stderr
    both = run_cli("experiment", "move", "3", store=store)
    assert both.returncode == 1 and "--to EXPERIMENT or --detach" in both.stderr


def test_runs_without_a_seed_are_not_repeats(tracker: expbook.Tracker) -> None:
    for params in (
        {"lr": 0.1},
        {"lr": 0.1},
        {},
        {},
        {"lr": 0.1, "seed": 1},
        {"lr": 0.1, "seed": 2},
    ):
        with tracker.start_run(params=params, capture=False):
            pass
    runs = tracker.store().runs(sort="number")
    groups = [[r.number for r in g.runs] for g in group_repeats(runs)]
    assert groups == [[1], [2], [3], [4], [5, 6]]


def test_compare_of_two_runs_that_differ_in_nothing_says_noise_is_unknown(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    tracker = expbook.Tracker(store)
    for _ in range(2):  # the same deterministic program twice: echo "loss=0.1 acc=0.9"
        with tracker.start_run("echo", capture=False) as run:
            run.log({"acc": 0.9, "loss": 0.1}, step=0)
    data = json.loads(run_cli("compare", "1", "2", "--json", store=store).stdout)
    assert (data["a"]["runs"], data["b"]["runs"]) == ([1], [2])
    assert data["a"]["n"] == data["b"]["n"] == 1
    assert data["verdict"] == NOISE_UNKNOWN
    text = run_cli("compare", "1", "2", store=store).stdout
    assert NOISE_UNKNOWN in text and "± 0" not in text


def test_estimate_columns_equals_estimate_over_random_inputs() -> None:
    """The vectorised estimate (the compare page's bands) is :func:`estimate` per column: random
    matrices with missing values, columns of n = 0 and n = 1, NaN and infinities."""
    from expbook.report.stats import estimate_columns

    rng = np.random.default_rng(15)
    columns_seen = {"n0": 0, "n1": 0, "nan": 0, "inf": 0}
    for trial in range(300):
        rows, cols = int(rng.integers(0, 7)), int(rng.integers(1, 12))
        matrix = rng.normal(rng.uniform(-5, 5), rng.uniform(1e-3, 10), (rows, cols))
        present = rng.random((rows, cols)) < rng.uniform(0.2, 1.0)
        specials = rng.random((rows, cols))
        matrix[specials < 0.04] = math.nan
        matrix[(specials >= 0.04) & (specials < 0.06)] = math.inf
        matrix[(specials >= 0.06) & (specials < 0.07)] = -math.inf
        confidence = (0.5, 0.9, 0.95, 0.99)[trial % 4]
        found = estimate_columns(matrix, present, confidence)
        assert found.confidence == confidence
        for column in range(cols):
            values = [float(v) for v, there in zip(matrix[:, column], present[:, column],
                                                   strict=True) if there]  # fmt: skip
            one = estimate(values, confidence)
            got = [found.n[column], found.mean[column], found.std[column], found.low[column],
                   found.high[column]]  # fmt: skip
            expected = [one.n, one.mean, one.std, one.low, one.high]
            assert got[0] == expected[0]
            for a, b in zip(got[1:], expected[1:], strict=True):
                assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12), (
                    values, got, expected)  # fmt: skip
            columns_seen["n0"] += one.n == 0
            columns_seen["n1"] += one.n == 1
            columns_seen["nan"] += any(math.isnan(v) for v in values)
            columns_seen["inf"] += any(math.isinf(v) for v in values)
    assert min(columns_seen.values()) >= 20, columns_seen  # every case was met
    every = estimate_columns([[1.0, 2.0], [3.0, 5.0]])  # no mask: every value counts
    assert every.n.tolist() == [2, 2] and every.mean.tolist() == [2.0, 3.5]
    assert estimate([math.inf, -math.inf]).n == 2  # no ValueError from math.fsum
    assert math.isnan(estimate([math.inf, -math.inf]).mean)
    with pytest.raises(ValueError, match="2-d"):
        estimate_columns([1.0, 2.0])


def test_best_is_one_rule_for_the_table_its_sort_the_export_and_the_statistics(
    tracker: expbook.Tracker,
) -> None:
    """``best`` is the min of an error-like metric, else the max: decided by
    :func:`resolve_value` alone, which the runs table's sort, the export's columns and
    :func:`metric_value` all follow."""
    from expbook.exports import run_rows
    from expbook.report.stats import metric_value, resolve_value
    from expbook.server.api import sort_by_value

    keys = ["valid/loss", "valid/acc", "test_mae", "train/err_rate", "lr_final"]
    run = tracker.start_run(system_metrics=False, capture=False)
    for step, factor in enumerate((3.0, 1.0, 2.0)):
        run.log({key: factor * (index + 1) for index, key in enumerate(keys)}, step=step)
    run.finish()
    record = tracker.store().run(run.id)
    assert [resolve_value(key, "best") for key in keys] == ["min", "max", "min", "min", "max"]
    assert [resolve_value("valid/loss", w) for w in ("last", "min", "max", None)] == [
        "last", "min", "max", None,
    ]  # fmt: skip
    for index, key in enumerate(keys):
        which = resolve_value(key, "best")
        assert metric_value(record, key, "best") == (index + 1) * (1.0 if which == "min" else 3.0)
        columns, _ = run_rows([record], params=[], metrics=[key], value="best")
        assert columns[-1] == f"{which}(metrics.{key})"
        assert sort_by_value(f"-metrics.{key}", "best") == f"-{which}(metrics.'{key}')"
