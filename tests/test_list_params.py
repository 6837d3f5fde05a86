"""Params that are lists of words (Cargo features, repeated flags) are compared element-wise
(issue 11, section 4): the Rust user's 2 x 2 of loader x target features."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import expbook
from expbook.columns import describe_change, factors, list_change, list_spread, words
from expbook.report.figures import CurvesFigure, HeatmapFigure, ParallelFigure, SweepFigure
from expbook.report.notebook import build_notebook, what_changed
from expbook.report.write import write_report
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


# --- the report: the varying elements are the factors of its figure and its table -------------

LOADERS = ("ml_loader_note_binned_convolution", "ml_loader_frequency_pooled")
TARGETS = ("ml_target_full", "ml_target_folded")
SCORES = {(0, 0): 0.80, (0, 1): 0.84, (1, 0): 0.88, (1, 1): 0.91}
"""valid_acc of each (loader, target) cell; a repeat (seed 1) adds 0.01."""


def _program(folder: Path) -> Path:
    program = folder / "train.py"
    program.write_text(
        "import sys\n"
        "args = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
        "features = args['--features'].split()\n"
        f"scores = {SCORES!r}\n"
        f"cell = ({LOADERS!r}.index(next(f for f in features if 'loader' in f)),\n"
        f"        {TARGETS!r}.index(next(f for f in features if 'target' in f)))\n"
        "print(f\"valid_acc={scores[cell] + 0.01 * int(args.get('--seed', 0)):.4f}\")\n"
    )
    return program


def _run(store: str, program: Path, *flags: str) -> None:
    result = run_cli("run", "-q", "--", sys.executable, str(program), *flags, store=store)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def grid_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The Rust user's 2 x 2 of loader x target, each cell run twice (seeds 0 and 1)."""
    folder = tmp_path_factory.mktemp("grid")
    store, program = str(folder / "s.db"), _program(folder)
    for loader in LOADERS:
        for target in TARGETS:
            for seed in ("0", "1"):
                _run(store, program, "--features", f"{BASE} {loader} {target}", "--seed", seed)
    return store


def test_factors_of_a_list_param_are_its_mutually_exclusive_elements(grid_store: str) -> None:
    with expbook.open_store(grid_store) as store:
        runs = store.runs(sort="number")
    loader, target = factors(runs, ["features"])
    assert loader.name == "features: ml_loader_…"
    assert loader.levels == tuple((element,) for element in LOADERS)
    assert loader.labels == ("note_binned_convolution", "frequency_pooled")
    assert target.name == "features: ml_target_…"
    assert target.labels == ("full", "folded")
    assert [loader.value(run.params) for run in runs] == [
        "note_binned_convolution"] * 4 + ["frequency_pooled"] * 4  # fmt: skip
    assert [target.value(run.params) for run in runs] == ["full"] * 2 + ["folded"] * 2 + [
        "full"] * 2 + ["folded"] * 2  # fmt: skip
    spread = list_spread([run.params["features"] for run in runs])
    assert spread is not None
    assert spread.common == ("cli", "ml_train", "ml_remote")
    assert set(spread.varying) == {*LOADERS, *TARGETS}


def test_the_report_draws_the_2x2_as_a_heatmap_with_repeats(
    grid_store: str, tmp_path: Path
) -> None:
    with expbook.open_store(grid_store) as store:
        written = write_report(store, tmp_path / "notebook.md")
    (section,) = written.notebook.sections
    (heatmap,) = [f for f in section.figures if not isinstance(f, CurvesFigure)]
    assert isinstance(heatmap, HeatmapFigure)
    assert (heatmap.y_param, heatmap.x_param) == ("features: ml_loader_…", "features: ml_target_…")
    assert heatmap.y_labels == ("frequency_pooled", "note_binned_convolution")
    assert heatmap.x_labels == ("folded", "full")
    expected = [[SCORES[(1, 1)], SCORES[(1, 0)]], [SCORES[(0, 1)], SCORES[(0, 0)]]]
    for row, means in zip(expected, heatmap.means, strict=True):
        assert means == pytest.approx([value + 0.005 for value in row])  # mean of seeds 0, 1
    assert heatmap.counts == ((2, 2), (2, 2))
    assert (written.assets / heatmap.filename).stat().st_size > 10_000
    text = written.markdown.read_text()
    assert f"]({written.assets.name}/{heatmap.filename})" in text
    assert "valid_acc by features: ml_loader\\_… and features: ml_target\\_…" in text


def test_the_runs_table_shows_the_elements_that_vary(grid_store: str, tmp_path: Path) -> None:
    with expbook.open_store(grid_store) as store:
        text = write_report(store, tmp_path / "notebook.md").markdown.read_text()
    assert "All runs have `features` cli, ml_train, ml_remote." in text
    rows = [line for line in text.splitlines() if line.startswith("| #")]
    assert len(rows) == 8 + 4  # the runs table, then the configurations
    assert "| #1 | train | +ml_loader_note_binned_convolution +ml_target_full | 0 |" in rows[0]
    assert "| #8 | train | +ml_loader_frequency_pooled +ml_target_folded | 1 |" in rows[7]
    assert '["cli"' not in text and "ml_loade…" not in text
    assert len({row.split(" | ")[2] for row in rows[:8]}) == 4  # four distinct cells


def test_one_varying_element_pair_is_a_bar_chart_labelled_by_the_element(tmp_path: Path) -> None:
    store, program = str(tmp_path / "s.db"), _program(tmp_path)
    for loader in LOADERS:
        _run(store, program, "--features", f"{BASE} {loader} ml_target_full")
    with expbook.open_store(store) as opened:
        book = build_notebook(opened)
    (sweep,) = [f for f in book.figures if not isinstance(f, CurvesFigure)]
    assert isinstance(sweep, SweepFigure)
    assert not sweep.numeric
    assert sweep.param == "features: ml_loader_…"
    assert [p.label for p in sweep.points] == ["frequency_pooled", "note_binned_convolution"]
    assert [p.mean for p in sweep.points] == pytest.approx([0.88, 0.80])


def test_three_factors_fall_back_to_parallel_axes_labelled_by_elements(tmp_path: Path) -> None:
    store, program = str(tmp_path / "s.db"), _program(tmp_path)
    for loader, target, extra in [(0, 0, ""), (1, 0, " gpu"), (0, 1, " gpu"), (1, 1, "")]:
        features = f"{BASE} {LOADERS[loader]} {TARGETS[target]}{extra}"
        _run(store, program, "--features", features)
    with expbook.open_store(store) as opened:
        book = build_notebook(opened)
    (parallel,) = [f for f in book.figures if not isinstance(f, CurvesFigure)]
    assert isinstance(parallel, ParallelFigure)
    names = [axis.name for axis in parallel.axes]
    assert names == ["features: ml_loader_…", "features: ml_target_…", "features: gpu",
                     "valid_acc"]  # fmt: skip
    ticks = [tuple(label for _, label in axis.ticks) for axis in parallel.axes[:3]]
    assert ticks == [("frequency_pooled", "note_binned_convolution"), ("folded", "full"),
                     ("+gpu", "-gpu")]  # fmt: skip


def test_repeated_flags_are_a_list_param_too(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    program = tmp_path / "t.py"
    program.write_text("import sys\nprint('valid_acc=' + str(0.5 + 0.1 * ('b' in sys.argv)))\n")
    _run(store, program, "--tag", "base", "--tag", "a")
    _run(store, program, "--tag", "base", "--tag", "b")
    with expbook.open_store(store) as opened:
        runs = opened.runs(sort="number")
        book = build_notebook(opened)
    assert [run.params["tag"] for run in runs] == [["base", "a"], ["base", "b"]]
    (factor,) = factors(runs, ["tag"])
    assert (factor.name, factor.labels) == ("tag: a | b", ("a", "b"))
    (sweep,) = [f for f in book.figures if not isinstance(f, CurvesFigure)]
    assert [p.label for p in sweep.points] == ["a", "b"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([["a", "x"], ["a", "y"]], (("a",), ("x", "y"))),
        (["cli ml", "cli ml gpu"], (("cli", "ml"), ("gpu",))),
        ([["a"], "b"], ((), ("a", "b"))),  # a repeated flag given once is a one-word string
        (["a red fox", "one blue whale"], None),  # sentences, not options
        (["adam", "sgd"], None),  # single words: a plain text param
        ([0.1, 0.2], None),
        ([["a", "b"], ["a", "b"]], None),  # nothing varies
    ],
)
def test_list_spread(values: list[object], expected: tuple[tuple[str, ...], ...] | None) -> None:
    spread = list_spread(values)
    assert (spread.common, spread.varying) == expected if spread else expected is None


def test_ls_shows_the_elements_that_vary(four_runs: str) -> None:
    result = run_cli("ls", store=four_runs, env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    lines = [line.split(maxsplit=1) for line in result.stdout.splitlines()]
    rows = {parts[0]: parts[1] for parts in lines if parts and parts[0] in ("1", "4")}
    assert "+ml_loader_note_binned_convolution +ml_target_full" in rows["1"]
    assert "+ml_loader_frequency_pooled +ml_target_folded" in rows["4"]
    assert '["cli"' not in result.stdout
    assert "features: every run has cli, ml_train, ml_remote" in result.stdout
