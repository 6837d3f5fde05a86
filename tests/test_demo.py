"""``expbook demo`` end to end, in a temporary directory, through the console script."""

from __future__ import annotations

from pathlib import Path

import pytest

import expbook
from expbook.demo import GRID
from tests.helpers import run_cli

pytestmark = pytest.mark.slow


def test_demo_trains_logs_and_prints_the_runs_table(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    result = run_cli("demo", "--epochs", "6", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Runs of 'demo: hidden size x learning rate'" in out
    for column in ("model.hidden", "optimizer.lr", "train/loss", "valid/acc", "test/acc"):
        assert column in out, column
    store_file = tmp_path / ".expbook" / "expbook.db"  # the default location, no git here
    assert store_file.exists()
    store = expbook.open_store(store_file)
    runs = store.runs()
    assert len(runs) == len(GRID)
    for run in runs:
        assert run.status is expbook.RunStatus.FINISHED
        assert run.experiment == "demo: hidden size x learning rate"
        assert set(run.metrics) == {
            "train/loss",
            "train/acc",
            "valid/loss",
            "valid/acc",
            "test/acc",
        }
        assert run.metrics["valid/acc"].count == 6
        assert list(store.series(run.id, "valid/loss").epochs) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        assert 0.0 <= run.metrics["test/acc"].value <= 1.0
        assert run.notes and "best valid/acc" in run.notes[0].text
        assert store.get_attachment(run.id, "packages.txt")
    # real learning happened: the best configuration clearly beats chance (10 classes)
    assert max(r.metrics["valid/acc"].value for r in runs) > 0.8
    table_rows = [line for line in out.splitlines() if line.strip().split(" ")[0].isdigit()]
    assert len(table_rows) == len(GRID)


def test_demo_with_seeds_trains_each_configuration_once_per_seed(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from expbook.report.stats import group_repeats

    result = run_cli("demo", "--epochs", "1", "--seeds", "2", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"{len(GRID)} configurations x 2 seeds x 1 epochs" in result.stdout
    assert "Next: expbook compare 1 3" in result.stdout
    runs = expbook.open_store(tmp_path / ".expbook" / "expbook.db").runs(sort="number")
    assert [run.params["seed"] for run in runs] == [0, 1] * len(GRID)
    groups = group_repeats(runs)
    assert [[run.number for run in group.runs] for group in groups] == [
        [1, 2],
        [3, 4],
        [5, 6],
        [7, 8],
    ]
    # the seed reaches the network: repeats of one configuration learn differently
    first, second = groups[0].runs
    assert first.metrics["valid/loss"].value != second.metrics["valid/loss"].value
