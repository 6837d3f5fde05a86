"""The notebook's sweep section (``expbook report``): for an experiment whose runs are trials of
a sweep, or with ``--sweep``; what it says and draws, from a sweep made with the store's methods
and real runs (tests/sweepdata.py)."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

import expbook
from expbook.errors import SweepNotFoundError
from expbook.report.markdown import render
from expbook.report.notebook import build_notebook
from expbook.report.sweeps import (
    BestSoFarFigure,
    ImportanceFigure,
    TrialCurvesFigure,
    nice_ticks,
    sweep_view,
)
from expbook.report.write import write_report
from tests.helpers import EXPBOOK
from tests.sweepdata import (
    EXPERIMENT,
    STEPS,
    TRIALS,
    best_so_far,
    finished_trials,
    loss,
    make_sweep,
)


@pytest.fixture
def made(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = tmp_path / "s.db"
    return store, make_sweep(store)


def section_text(markdown: str) -> str:
    match = re.search(r"^### Sweep `mlp-lr`\n(.*?)(?=^### )", markdown, re.S | re.M)
    assert match, "the notebook has no sweep section"
    return match.group(1)


def test_an_experiment_of_sweep_trials_gets_the_sweep_section(made, tmp_path: Path) -> None:
    store, sweep = made
    with expbook.open_store(str(store)) as opened:
        text = section_text(render(build_notebook(opened), "nb_files"))
    assert "- **Search:** random over `lr` 0.0001..0.1 (log_uniform_values), `layers` one of " \
           "2, 3, `dropout` = 0.1; minimize `valid/loss`; pruner hyperband" in text  # fmt: skip
    assert "- **Trials:** 9 (6 finished, 1 failed, 2 pruned); sweep finished" in text
    best = min((sweep.values[n], n) for n in finished_trials())
    assert best[1] == 7
    assert (f"- **Best trial:** 7 (#{sweep.runs[7]}): `valid/loss` {best[0]:.4g} with "
            "`lr` = 0.002, `layers` = 2") in text  # fmt: skip
    assert re.search(r"- \*\*Parameter importance\*\* \(PED-ANOVA over 6 configurations, "
                     r"rough below 10\): `lr` 0\.\d+, `layers` 0\.\d+", text)  # fmt: skip
    rows = [line for line in text.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(rows) == len(TRIALS)
    first = f"| 7 | #{sweep.runs[7]} | finished | 0.002 | 2 | **{best[0]:.4g}** |"
    assert rows[0].startswith(first)
    states = {int(row.split("|")[1]): row.split("|")[3].strip() for row in rows}
    assert states == {n: state.value for n, (_, _, state, _) in enumerate(TRIALS)}
    pruned = {int(row.split("|")[1]): row.split("|")[7].strip() for row in rows}
    assert pruned[1] == "3" and pruned[4] == "5" and pruned[0] == "—"


def test_the_sweep_figures_are_drawn_numbered_and_the_same_bytes_every_time(
    made, tmp_path: Path
) -> None:
    store, _ = made
    with expbook.open_store(str(store)) as opened:
        written = write_report(opened, tmp_path / "nb.md", html=True)
        again = write_report(opened, tmp_path / "again" / "nb.md")
    assert again.markdown.read_bytes() == written.markdown.read_bytes()
    for one, two in zip(written.figures, again.figures, strict=True):
        assert one.read_bytes() == two.read_bytes(), one.name
    names = {path.name: path for path in written.figures}
    for part, size in [("best", (800, 450)), ("parallel", (1000, 500)),
                       ("importance", (800, 350)), ("curves", (900, 450))]:  # fmt: skip
        path = names[f"tune-the-mlp-sweep-mlp-lr-{part}.png"]
        with Image.open(path) as image:
            assert image.size == size
            assert len(image.convert("RGB").getcolors(1 << 20) or ()) > 50  # drawn, not blank
    markdown = written.markdown.read_text()
    numbers = [int(n) for n in re.findall(r"_Figure (\d+):", markdown)]
    assert numbers == list(range(1, len(written.figures) + 1))  # in order, the sweep's too
    for name in names:
        assert f"nb_files/{name}" in markdown
    assert "data:image/png;base64," in written.html.read_text()  # type: ignore[union-attr]


def test_the_figures_hold_the_sweep_exactly(made) -> None:
    store, sweep = made
    with expbook.open_store(str(store)) as opened:
        book = build_notebook(opened)
    figures = {type(f): f for f in book.sections[0].sweep_figures}
    best = figures[BestSoFarFigure]
    ended = [n for n in sorted(sweep.values) if sweep.values[n] is not None]  # in end order
    assert ended == [0, 1, 2, 3, 5, 7, 8]  # trial 1 was pruned with a value; 4 without, 6 failed
    assert [p.number for p in best.points] == ended
    assert [p.value for p in best.points] == pytest.approx([sweep.values[n] for n in ended])
    assert [p.best for p in best.points] == pytest.approx(best_so_far(sweep.values, ended))
    assert [p.count for p in best.points] == list(range(1, len(ended) + 1))
    importance = figures[ImportanceFigure]
    assert [name for name, _ in importance.items] == ["lr", "layers"]
    assert math.isclose(sum(v for _, v in importance.items), 1.0)
    curves = figures[TrialCurvesFigure]
    assert [c.trial for c in curves.curves] == [n for n in sweep.values if n != 6]  # 6 logged none
    for curve in curves.curves:
        lr, layers, state, pruned = TRIALS[curve.trial]
        steps = STEPS if pruned is None else pruned + 1
        assert curve.x == tuple(range(steps))
        assert curve.y == pytest.approx([loss(lr, layers, s) for s in range(steps)])
        assert curve.best == (curve.trial == 7)
        if state.value == "pruned":
            assert curve.stop == pytest.approx((pruned, loss(lr, layers, pruned)))
        else:
            assert curve.stop is None


def test_parallel_axes_are_log_for_log_distributed_params(made) -> None:
    store, _ = made
    with expbook.open_store(str(store)) as opened:
        view = sweep_view(opened, opened.get_sweep("mlp-lr"))
    parallel = view.parallel
    assert parallel.trials == (0, 1, 2, 3, 4, 5, 7, 8)  # the failed trial has no value
    assert "1 trial without a value not drawn" in (parallel.note or "")
    lr, layers, metric = parallel.axes
    assert (lr.name, lr.log, lr.categorical) == ("lr", True, False)
    assert lr.values == pytest.approx([math.log10(TRIALS[n][0]) for n in parallel.trials])
    assert (lr.low, lr.high) == pytest.approx((-4.0, -1.0))  # the spec's bounds
    ticks = {label: at for at, label in lr.ticks}  # ticked in the user's values
    assert ticks["0.001"] == pytest.approx(-3.0)
    assert ticks["0.002"] == pytest.approx(math.log10(0.002))
    assert set(ticks) == {"0.0001", "0.0003", "0.001", "0.002", "0.003", "0.01", "0.02", "0.03"}
    assert layers.categorical and layers.ticks == ((0.0, "2"), (1.0, "3"))
    assert layers.values == tuple(float(TRIALS[n][1] == 3) for n in parallel.trials)
    assert metric.name == "valid/loss" and not metric.log
    # a pruned trial is drawn at the value it stopped at, recorded (1) or its run's last (4)
    for number in (1, 4):
        stopped = parallel.values[parallel.trials.index(number)]
        assert stopped == pytest.approx(loss(*TRIALS[number][:2], TRIALS[number][3]))


def test_nice_ticks() -> None:
    assert nice_ticks(0.267, 0.827) == [0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert nice_ticks(0.0001, 0.0009) == [0.0002, 0.0004, 0.0006, 0.0008]
    assert nice_ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert nice_ticks(3.0, 3.0) == [3.0]


def test_repeats_give_the_noise_verdict(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    make_sweep(store, "rep", repeats=2)
    with expbook.open_store(str(store)) as opened:
        text = render(build_notebook(opened), "nb_files")  # the text only: no figures drawn
        view = sweep_view(opened, opened.get_sweep("rep"))
    assert "- **Beyond noise?** the best is better than the runner-up beyond noise: " \
           "distinguishable" in text  # fmt: skip
    assert "seed" not in [axis.name for axis in view.parallel.axes]  # not a searched param
    assert view.noise and view.noise.startswith("the best is better")


def test_sweep_option_selects_the_trial_runs(made, tmp_path: Path) -> None:
    store, _ = made
    with expbook.start_run("not-a-trial", store=str(store), experiment=EXPERIMENT) as run:
        run.log({"valid/loss": 9.0})
    with expbook.start_run("elsewhere", store=str(store)) as run:
        run.log({"valid/loss": 9.0})
    with expbook.open_store(str(store)) as opened:
        everything = build_notebook(opened)
        only = build_notebook(opened, sweeps=["mlp-lr"])
        with pytest.raises(SweepNotFoundError):
            build_notebook(opened, sweeps=["nope"])
    assert everything.run_count == len(TRIALS) + 2
    assert [s.title for s in only.sections] == [EXPERIMENT]
    assert only.run_count == len(TRIALS)
    assert [s.view.sweep.name for s in only.sections[0].sweeps] == ["mlp-lr"]
    assert not any(s.sweeps for s in everything.sections if s.experiment != EXPERIMENT)
    shown = subprocess.run(
        [EXPBOOK, "report", "--store", str(store), "--sweep", "mlp-lr", "-o",
         str(tmp_path / "only.md")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"wrote {tmp_path / 'only.md'}: 1 section, 9 runs, ")
    missing = subprocess.run(
        [EXPBOOK, "report", "--store", str(store), "--sweep", "nope", "-o",
         str(tmp_path / "nope.md")], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "error: no sweep matches 'nope' (use its name or a prefix of its UUID; 'expbook sweep "
        "ls' lists them)"
    ]
    assert not (tmp_path / "nope.md").exists()
