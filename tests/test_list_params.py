"""Params that are lists of words (Cargo features, repeated flags) are compared element-wise
(issue 11, section 4): the Rust user's 2 x 2 of loader x target features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import expbook
from expbook.columns import describe_change, list_change, words
from expbook.report.notebook import what_changed
from tests.helpers import run_cli

BASE = "cli ml_train ml_remote"
A = f"{BASE} ml_loader_note_binned_convolution ml_target_full"
B = f"{BASE} ml_loader_frequency_pooled ml_target_folded"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["cli", "ml_train"], ["cli", "ml_train"]),
        ([1, 2.5], ["1", "2.5"]),
        ("cli ml_train", ["cli", "ml_train"]),
        ("cli,ml_train", ["cli", "ml_train"]),
        ("cli", None),
        ([{"a": 1}], None),
        ([True, False], None),
        (0.001, None),
    ],
)
def test_words_of_list_like_values(value: object, expected: list[str] | None) -> None:
    assert words(value) == expected


def test_list_change_is_element_wise_and_only_for_lists_with_something_in_common() -> None:
    assert list_change(A, B) == (
        ["ml_loader_note_binned_convolution", "ml_target_full"],
        ["ml_loader_frequency_pooled", "ml_target_folded"],
        3,
    )
    assert describe_change(A.split(), B.split()) == (
        "-ml_loader_note_binned_convolution -ml_target_full "
        "+ml_loader_frequency_pooled +ml_target_folded"
    )
    assert list_change("a red fox", "one blue whale") is None  # two sentences, not options
    assert list_change(0.1, 0.2) is None


@pytest.fixture
def four_runs(tmp_path: Path) -> str:
    """The 2 x 2 of loader x target features, recorded by expbook run from the command line."""
    store = str(tmp_path / "s.db")
    program = tmp_path / "train.sh"
    program.write_text('#!/bin/sh\necho "loss=0.5"\n')
    program.chmod(0o755)
    for loader in ("ml_loader_note_binned_convolution", "ml_loader_frequency_pooled"):
        for target in ("ml_target_full", "ml_target_folded"):
            features = f"{BASE} {loader} {target}"
            result = run_cli("run", "-q", "--", str(program), "--features", features, store=store)
            assert result.returncode == 0, result.stderr
    return store


def test_diff_shows_list_params_element_wise(four_runs: str) -> None:
    result = run_cli("diff", "1", "4", store=four_runs)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("features"))
    assert "-ml_loader_note_binned_convolution -ml_target_full" in row
    assert "+ml_loader_frequency_pooled +ml_target_folded" in row
    assert "(3 in common)" in row
    data = json.loads(run_cli("diff", "1", "4", "--json", store=four_runs).stdout)
    (features,) = data["params"]
    assert features["removed"] == ["ml_loader_note_binned_convolution", "ml_target_full"]
    assert features["added"] == ["ml_loader_frequency_pooled", "ml_target_folded"]


def test_what_changed_in_the_report_is_element_wise(four_runs: str) -> None:
    with expbook.open_store(four_runs) as store:
        first, second = store.run(1), store.run(2)
    assert what_changed(second, first) == (
        "Same as #1 except features: -ml_target_full +ml_target_folded."
    )
