"""``expbook report``: notebooks generated from stores filled by real training.

A small grid is trained here (numpy logistic regression on a synthetic problem: batch size x
learning rate x 2 seeds, every epoch logged through ``expbook.Tracker``), plus a run that
derives from another, and a run that fails; the slow tests train the real ``expbook demo``.
Every number the notebook shows is checked against the store, formatted the same way, and
means, standard deviations and intervals against numpy/scipy on the same values.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import expbook
from expbook.cli.main import run_cli as cli_in_process
from expbook.model import RunRecord
from expbook.report.figures import CurvesFigure, HeatmapFigure, SweepFigure
from expbook.report.plots import pixel_size
from expbook.report.stats import NOISE_UNKNOWN, compare_values
from expbook.report.text import fmt_number, fmt_value
from expbook.report.write import Written, write_report
from tests.helpers import run_cli

GRID = "batch size x learning rate"
SCHEDULE = "lr schedule"
EPOCHS = 6
HYPOTHESIS = "A larger learning rate makes up for a larger batch."
CONCLUSION = "Cosine is at least as good as exponential; keep cosine."


# --- a real, small training problem -------------------------------------------------------------


def make_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(2024)
    features = rng.normal(size=(3000, 8))
    weights = rng.normal(size=8)
    labels = (features @ weights + rng.normal(scale=2.0, size=3000) > 0).astype(float)
    return {
        "train": (features[:1000], labels[:1000]),
        "valid": (features[1000:2500], labels[1000:2500]),
        "test": (features[2500:], labels[2500:]),
    }


def evaluate(w: np.ndarray, b: float, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    p = np.clip(1 / (1 + np.exp(-(x @ w + b))), 1e-9, 1 - 1e-9)
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    return float(loss), float(np.mean((p > 0.5) == y))


def train(run, data, batch_size: int, lr: float, seed: int, decay: str = "none") -> None:
    """Mini-batch gradient descent, logging train/valid loss and accuracy every epoch."""
    x, y = data["train"]
    rng = np.random.default_rng(seed)
    w, b = rng.normal(scale=0.5, size=x.shape[1]), 0.0
    for epoch in range(EPOCHS):
        rate = lr * (0.5**epoch if decay == "exponential" else 1.0)
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch_size):
            rows = order[start : start + batch_size]
            error = 1 / (1 + np.exp(-(x[rows] @ w + b))) - y[rows]
            w = w - rate * x[rows].T @ error / len(rows)
            b -= rate * float(error.mean())
        values = {}
        for split in ("train", "valid"):
            loss, acc = evaluate(w, b, *data[split])
            values[f"{split}/loss"], values[f"{split}/acc"] = loss, acc
        run.log(values, step=epoch, epoch=epoch + 1)
    run.summary.set("test/acc", 100 * evaluate(w, b, *data["test"])[1], unit="%")


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("grid") / "runs.db"
    tracker = expbook.Tracker(str(path))
    data = make_data()
    for batch_size in (16, 128):
        for lr in (0.02, 0.3):
            for seed in (0, 1):
                params = {"batch_size": batch_size, "lr": lr, "seed": seed, "epochs": EPOCHS}
                name = f"bs{batch_size}-lr{lr:g}-s{seed}"
                with tracker.start_run(name, experiment=GRID, params=params, tags=["grid"]) as run:
                    train(run, data, batch_size, lr, seed)
    params = {"batch_size": 32, "lr": 0.3, "seed": 0, "lr_schedule": "cosine"}
    with tracker.start_run("cosine", experiment=SCHEDULE, params=params) as base:
        train(base, data, 32, 0.3, 0)
    params = {**params, "lr_schedule": "exponential"}
    with tracker.start_run("exp", experiment=SCHEDULE, params=params, parent=base) as run:
        train(run, data, 32, 0.3, 0, decay="exponential")
        run.note("Exponential decay stalls after epoch 3.\n\nSee the | loss | curve.")
    with (
        pytest.raises(ValueError, match="diverged"),
        tracker.start_run("too-fast", params={"lr": 30.0}) as run,
    ):
        run.log({"train/loss": 0.7}, step=0)
        run.log({"train/loss": math.nan}, step=1)
        raise ValueError("diverged: loss is nan")
    with expbook.open_store(path) as store:
        store.update_experiment(GRID, hypothesis=HYPOTHESIS, description="Digits-free toy task.")
        store.update_experiment(SCHEDULE, conclusion=CONCLUSION)
    return path


@pytest.fixture(scope="module")
def runs(store_path: Path) -> tuple[RunRecord, ...]:
    with expbook.open_store(store_path) as store:
        return tuple(store.runs(sort="number"))


@pytest.fixture(scope="module")
def written(store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Written:
    out = tmp_path_factory.mktemp("report") / "notebook.md"
    with expbook.open_store(store_path) as store:
        return write_report(store, out, html=True)


@pytest.fixture(scope="module")
def text(written: Written) -> str:
    return written.markdown.read_text()


# --- reading the markdown back ------------------------------------------------------------------


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"no section {title!r}"
    return match.group(1)


def table(text: str, first_header: str) -> list[dict[str, str]]:
    """The markdown table whose header starts with ``| first_header |``, as dicts."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row, strict=True)) for row in body]


def plain(cell: str) -> str:
    return cell.strip("*")


def grid_runs(runs: tuple[RunRecord, ...]) -> list[RunRecord]:
    return [run for run in runs if run.experiment == GRID]


def configurations(runs: tuple[RunRecord, ...]) -> dict[tuple[int, float], list[RunRecord]]:
    found: dict[tuple[int, float], list[RunRecord]] = {}
    for run in grid_runs(runs):
        found.setdefault((run.params["batch_size"], run.params["lr"]), []).append(run)
    return found


def mean_std(values: list[float]) -> str:
    array = np.array(values)
    return f"{array.mean():.4g} ± {array.std(ddof=1):.2g} (n={len(values)})"


# --- content ------------------------------------------------------------------------------------


def test_one_section_per_experiment_then_the_runs_without_one(text: str) -> None:
    headings = re.findall(r"^## (.*)$", text, re.M)
    assert headings == [GRID, SCHEDULE, "Runs without an experiment"]
    assert "from 11 runs (3 sections)" in text
    assert f"- [{GRID}](#batch-size-x-learning-rate): 8 runs; best " in text


def test_the_question_hypothesis_and_conclusion(text: str) -> None:
    grid = section(text, GRID)
    assert f"**Hypothesis:** {HYPOTHESIS}" in grid
    assert "Digits-free toy task." in grid
    assert grid.rstrip().endswith("### Conclusion\n\n_No conclusion yet._")
    assert section(text, SCHEDULE).rstrip().endswith(CONCLUSION)


def test_setup_shows_shared_params_code_and_hardware(text: str, runs) -> None:
    setup = section(text, GRID).split("### Setup")[1].split("###")[0]
    assert "- **Runs:** 8 (#1 to #8), " in setup
    assert "**Params shared by all runs:** `epochs` = 6" in setup
    commits = {run.git.short_commit for run in grid_runs(runs)}
    if None in commits:
        assert "no git commit recorded" in setup
    else:
        assert all(f"`{commit}`" in setup for commit in commits)
        dirty = [run.ref for run in grid_runs(runs) if run.git.dirty]
        assert (
            "(dirty work tree) in " + ", ".join(dirty) if dirty else "clean work tree"
        ) in setup
    assert f"**Hardware:** `{runs[0].hostname}` (8 runs): " in setup


def test_runs_table_has_the_varying_params_and_the_stores_numbers(text: str, runs) -> None:
    rows = table(section(text, GRID), "run")
    assert list(rows[0])[:5] == ["run", "name", "`batch_size`", "`lr`", "`seed`"]
    assert "`epochs`" not in rows[0]  # shared: shown in the setup, not as a column
    assert "`test/acc` (%)" in rows[0]
    assert [row["run"] for row in rows] == [run.ref for run in grid_runs(runs)]
    for row, run in zip(rows, grid_runs(runs), strict=True):
        assert row["name"] == run.name
        for key in ("batch_size", "lr", "seed"):
            assert row[f"`{key}`"] == fmt_value(run.params[key])
        for key in ("train/loss", "valid/acc", "valid/loss"):
            assert plain(row[f"`{key}`"]) == fmt_number(run.metric(key))
        assert plain(row["`test/acc` (%)"]) == fmt_number(run.metric("test/acc"))
        assert row["status"] == "finished"
        commit = run.git.short_commit
        assert row["commit"].startswith(f"`{commit}`" if commit else "—")


def test_what_changed_from_run_to_run(text: str, runs) -> None:
    grid = section(text, GRID)
    assert "- **#1 bs16-lr0.02-s0** (finished, " in grid
    assert "): First run of the experiment." in grid
    assert "): Same as #1 except seed: 0 → 1 (a repeat: only the seed changed)." in grid
    assert "): Same as #2 except lr: 0.02 → 0.3, seed: 1 → 0." in grid
    assert "): Same as #4 except batch_size: 16 → 128, lr: 0.3 → 0.02, seed: 1 → 0." in grid
    schedule = section(text, SCHEDULE)
    assert "): Same as parent #9 except lr_schedule: cosine → exponential." in schedule
    assert "Exponential decay stalls after epoch 3." in schedule


def test_repeats_are_mean_std_and_interval_as_numpy_and_scipy_compute_them(text, runs) -> None:
    from scipy import stats

    rows = table(section(text, GRID), "configuration")
    groups = configurations(runs)
    assert [row["configuration"] for row in rows] == [
        ", ".join(run.ref for run in members) for members in groups.values()
    ]
    for row, members in zip(rows, groups.values(), strict=True):
        for key in ("valid/acc", "valid/loss", "train/loss"):
            assert plain(row[f"`{key}`"]) == mean_std([run.metric(key) for run in members])
        values = np.array([run.metric("valid/acc") for run in members])
        low, high = stats.t.interval(0.95, len(values) - 1, values.mean(), stats.sem(values))
        assert row["95 % CI of `valid/acc`"] == f"[{fmt_number(low)}, {fmt_number(high)}]"


def test_the_best_configuration_and_whether_it_beats_the_runner_up(text: str, runs) -> None:
    groups = list(configurations(runs).values())
    means = [np.mean([run.metric("valid/acc") for run in members]) for members in groups]
    order = sorted(range(len(groups)), key=lambda i: -means[i])  # stable: ties keep order
    best, runner_up = groups[order[0]], groups[order[1]]
    values = [[run.metric("valid/acc") for run in members] for members in (best, runner_up)]
    params = f"`batch_size` = {best[0].params['batch_size']}, `lr` = {best[0].params['lr']:g}"
    refs = ", ".join(run.ref for run in best)
    grid = section(text, GRID)
    assert (
        f"**Best configuration** (of 4): {params} ({refs}): `valid/acc` {mean_std(values[0])}"
        in grid
    )
    verdict = compare_values(values[1], values[0]).verdict
    assert (
        f"**Best vs runner-up:** {np.mean(values[0]) - np.mean(values[1]):+.4g} (95 % CI" in grid
    )
    assert verdict in grid
    assert "distinguishable" in verdict
    # the best configuration's key metric is bold in both tables
    assert all(row["`valid/acc`"].startswith("**") == (row["run"] in refs)
               for row in table(grid, "run"))  # fmt: skip


def test_single_runs_say_that_the_noise_is_unknown(text: str) -> None:
    schedule = section(text, SCHEDULE)
    assert "**Best configuration** (of 2): `lr_schedule` = " in schedule
    assert f"; {NOISE_UNKNOWN}." in schedule
    assert "| configuration |" not in schedule  # no repeats, no table of them


def test_a_failed_run_shows_its_error_and_nan(text: str) -> None:
    loose = section(text, "Runs without an experiment")
    row = table(loose, "run")[0]
    assert (row["run"], row["name"], row["status"], row["`train/loss`"]) == (
        "#11", "too-fast", "failed", "nan",
    )  # fmt: skip
    assert "  - Error: `ValueError: diverged: loss is nan`" in loose
    assert "): First run in this section." in loose


# --- figures ------------------------------------------------------------------------------------


def test_every_figure_is_a_png_of_the_expected_size_linked_from_the_notebook(written, text):
    from PIL import Image

    folder = written.markdown.parent / "notebook_files"
    assert written.assets == folder
    names = sorted(path.name for path in folder.iterdir())
    assert names == sorted(figure.filename for figure in written.notebook.figures)
    for figure in written.notebook.figures:
        with Image.open(folder / figure.filename) as image:
            assert image.format == "PNG"
            assert image.size == pixel_size(figure)
        assert f"](notebook_files/{figure.filename})" in text
    kinds = {(f.filename.split("-")[0], type(f)) for f in written.notebook.figures}
    assert ("batch", HeatmapFigure) in kinds  # two params vary on a grid
    assert ("lr", SweepFigure) in kinds  # one categorical param: a bar chart
    curves = [f for f in written.notebook.figures if isinstance(f, CurvesFigure)]
    assert {f.metric for f in curves if f.filename.startswith("batch")} == {"acc", "loss"}


def test_matplotlib_reads_the_pngs_back(written) -> None:
    import matplotlib.image

    for figure in written.notebook.figures[:2]:
        pixels = matplotlib.image.imread(written.assets / figure.filename)
        width, height = pixel_size(figure)
        assert pixels.shape[:2] == (height, width)
        assert pixels.std() > 0.05  # something was drawn


def test_the_heatmap_holds_the_mean_over_repeats(written, runs) -> None:
    heatmap = next(f for f in written.notebook.figures if isinstance(f, HeatmapFigure))
    assert (heatmap.y_param, heatmap.x_param) == ("batch_size", "lr")
    assert (heatmap.y_labels, heatmap.x_labels) == (("16", "128"), ("0.02", "0.3"))
    groups = configurations(runs)
    for i, batch_size in enumerate((16, 128)):
        for j, lr in enumerate((0.02, 0.3)):
            values = [run.metric("valid/acc") for run in groups[(batch_size, lr)]]
            assert heatmap.means[i][j] == pytest.approx(np.mean(values), rel=1e-12)
            assert heatmap.counts[i][j] == 2


def test_learning_curves_have_every_epoch_of_every_run(written, runs) -> None:
    loss = next(f for f in written.notebook.figures
                if isinstance(f, CurvesFigure) and f.filename.startswith("batch") and
                f.metric == "loss")  # fmt: skip
    assert loss.x_label == "epoch"
    assert loss.runs == tuple(f"{run.ref} {run.name}" for run in grid_runs(runs))
    assert len(loss.lines) == 16  # 8 runs x train/valid
    for line in loss.lines:
        assert line.x == tuple(float(e) for e in range(1, EPOCHS + 1))


# --- HTML and determinism -----------------------------------------------------------------------


def test_html_is_one_file_with_the_figures_embedded(written) -> None:
    page = written.html.read_text()
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == len(written.notebook.figures)
    prefix = "data:image/png;base64,"
    assert all(source.startswith(prefix) for source in sources)
    embedded = sorted(base64.b64decode(source[len(prefix) :]) for source in sources)
    on_disk = sorted((written.assets / f.filename).read_bytes() for f in written.notebook.figures)
    assert embedded == on_disk
    assert "<script" not in page and 'href="http' not in page and "<link" not in page
    assert '<h2 id="batch-size-x-learning-rate">' in page
    assert 'href="#batch-size-x-learning-rate"' in page
    assert "See the | loss | curve." in page  # a note's text, shown as text


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def test_the_same_store_renders_to_the_same_bytes(written, store_path, tmp_path) -> None:
    with expbook.open_store(store_path) as store:
        write_report(store, tmp_path / "notebook.md", html=True)
    first, second = files(written.markdown.parent), files(tmp_path)
    assert len(first) == 2 + 7  # markdown, html and the figures folder's 7 PNGs
    assert first == second


@pytest.mark.slow
def test_separate_processes_render_the_same_bytes(store_path: Path, tmp_path: Path) -> None:
    for folder, seed in (("a", "1"), ("b", "2")):
        (tmp_path / folder).mkdir()
        result = run_cli("report", "--html", "--store", str(store_path), cwd=tmp_path / folder,
                         env={"PYTHONHASHSEED": seed, "TZ": f"UTC+{seed}"})  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("wrote notebook.md: 3 sections, 11 runs, 7 figures in ")
    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_figures_of_an_earlier_render_that_are_gone_are_removed(store_path, tmp_path) -> None:
    stale = tmp_path / "notebook_files" / "old-figure.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    keep = tmp_path / "notebook_files" / "notes.txt"
    keep.write_text("mine")
    with expbook.open_store(store_path) as store:
        write_report(store, tmp_path / "notebook.md", experiments=[SCHEDULE])
    assert not stale.exists() and keep.exists()


# --- the command --------------------------------------------------------------------------------


def cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_in_process(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_experiment_and_where_select_the_runs(store_path, tmp_path, capsys) -> None:
    out = tmp_path / "only.md"
    code, stdout, _ = cli("report", "-e", SCHEDULE, "-o", str(out), "--store", str(store_path),
                          capsys=capsys)  # fmt: skip
    assert code == 0
    assert stdout == f"wrote {out}: 1 section, 2 runs, 3 figures in {tmp_path / 'only_files'}/\n"
    assert re.findall(r"^## (.*)$", out.read_text(), re.M) == [SCHEDULE]
    code, _, _ = cli("report", "--where", "params.batch_size = 16", "--out", str(out),
                     "--store", str(store_path), capsys=capsys)  # fmt: skip
    assert code == 0
    rows = table(out.read_text(), "run")
    assert [row["run"] for row in rows] == ["#1", "#2", "#3", "#4"]
    assert "filter `params.batch_size = 16`" in out.read_text()


def test_default_output_is_notebook_md_here(store_path, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, _ = cli("report", "-e", SCHEDULE, "--store", str(store_path), capsys=capsys)
    assert code == 0 and stdout.startswith("wrote notebook.md: ")
    assert (tmp_path / "notebook.md").exists() and (tmp_path / "notebook_files").is_dir()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-e", "nope"], "error: no experiment named 'nope'"),
        (["--where", "params.lr > 100"], "error: no runs match for --where 'params.lr > 100'"),
        (["-e", GRID, "-w", "params.lr > 100"],
         f"error: no runs match in experiment '{GRID}' for --where 'params.lr > 100'"),
        (["--where", "params.lr <"], "error: expected a value"),
        (["--html", "--out", "x.html"], "error: x.html is where the markdown goes"),
    ],
)  # fmt: skip
def test_errors_are_one_line(store_path, tmp_path, monkeypatch, capsys, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = cli("report", *args, "--store", str(store_path), capsys=capsys)
    assert code == 1
    assert stdout == ""
    assert stderr.startswith(message) and stderr.count("\n") == 1, stderr
    assert not (tmp_path / "notebook.md").exists()


def test_a_missing_store_is_one_line(tmp_path, capsys) -> None:
    code, _, stderr = cli("report", "--store", str(tmp_path / "none.db"), capsys=capsys)
    assert code == 1 and stderr.startswith("error: no store at ") and stderr.count("\n") == 1


# --- the real demo ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    pytest.importorskip("sklearn")
    folder = tmp_path_factory.mktemp("demo")
    result = run_cli("demo", "--epochs", "6", cwd=folder, timeout=300)
    assert result.returncode == 0, result.stderr
    result = run_cli("report", "--html", cwd=folder)
    assert result.returncode == 0, result.stderr
    yield folder, result.stdout


@pytest.mark.slow
def test_the_demo_notebook(demo: tuple[Path, str]) -> None:
    folder, stdout = demo
    assert stdout == "wrote notebook.md: 1 section, 4 runs, 3 figures in notebook_files/; " \
        "notebook.html (self-contained)\n"  # fmt: skip
    text = (folder / "notebook.md").read_text()
    with expbook.open_store(folder / ".expbook" / "expbook.db") as store:
        runs = store.runs(sort="number")
    rows = table(text, "run")
    assert list(rows[0])[2:4] == ["`model.hidden`", "`optimizer.lr`"]
    for row, run in zip(rows, runs, strict=True):
        assert (row["run"], row["name"]) == (run.ref, run.name)
        assert row["`model.hidden`"] == fmt_value(run.params["model.hidden"])
        assert plain(row["`valid/acc`"]) == fmt_number(run.metric("valid/acc"))
        assert plain(row["`test/acc`"]) == fmt_number(run.metric("test/acc"))
    assert "): Same as #1 except optimizer.lr: 0.001 → 0.01." in text
    assert "): Same as #2 except model.hidden: 16 → 64, optimizer.lr: 0.01 → 0.001." in text
    best = max(runs, key=lambda run: run.metric("valid/acc"))
    hidden, lr = best.params["model.hidden"], best.params["optimizer.lr"]
    assert (f"**Best configuration** (of 4): `model.hidden` = {hidden}, `optimizer.lr` = {lr:g} "
            f"({best.ref} {best.name}): `valid/acc` {fmt_number(best.metric('valid/acc'))} (n=1)."
            ) in text  # fmt: skip
    assert NOISE_UNKNOWN in text
    assert f"  - _{runs[0].notes[0].text}" not in text  # notes carry their date
    assert runs[0].notes[0].text in text
    assert (folder / "notebook_files" / "demo-hidden-size-x-learning-rate-heatmap.png").exists()
    page = (folder / "notebook.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 3
