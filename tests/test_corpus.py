"""The capture corpus (tests/corpus/): well-formed, replayed as the recorder reads it, and no
parser change may lower a program's score below the one recorded in ``scores.json``.

The captures are real output of real frameworks (see tests/corpus/README.md), so this runs in CI
without installing any framework: ``make corpus`` re-trains them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import expbook
from expbook.runner.replay import read_capture, replay
from tests.helpers import run_cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench_capture

CORPUS = Path(__file__).parent / "corpus"
PROGRAMS = bench_capture.programs()
SCORES = CORPUS / "scores.json"


@pytest.mark.parametrize("folder", PROGRAMS, ids=lambda p: p.name)
def test_every_program_has_its_captures_and_truth(folder: Path) -> None:
    spec = json.loads((folder / "corpus.json").read_text())
    assert spec["command"] and spec["description"] and spec["frameworks"]
    for mode in bench_capture.MODES:
        assert read_capture(folder / f"{mode}.jsonl"), f"{mode}.jsonl is empty"
        truth = json.loads((folder / f"{mode}.truth.json").read_text())
        assert truth["points"], "no truth points"
        for point in truth["points"]:
            assert set(point) >= {"key", "step", "epoch", "value", "printed"}, point
        assert any(point["printed"] for point in truth["points"])


def test_replay_is_what_expbook_run_stores(tmp_path: Path) -> None:
    """The scorer's replay and a real `expbook run` of the same program store the same points."""
    folder = CORPUS / "shell_awk_sgd"
    store = str(tmp_path / "s.db")
    spec = json.loads((folder / "corpus.json").read_text())
    # (system metrics are sampled, not printed: the replay has none)
    result = run_cli("run", "--no-system-metrics", "--", *spec["command"], store=store, cwd=folder)
    assert result.returncode == 0, result.stderr
    replayed = replay(read_capture(folder / "pipe.jsonl"))
    with expbook.open_store(store) as opened:
        run = opened.run("last")
        stored = {
            key: list(zip(series.steps, series.values, strict=True))
            for key in opened.series_keys(run.id)
            for series in [opened.series(run, key)]
        }
    expected: dict[str, list[tuple[int, float]]] = {}
    for point in replayed.points:
        expected.setdefault(point.key, []).append((point.step, point.value))
    assert stored == expected


def test_no_program_scores_below_its_recorded_score() -> None:
    """A ratchet: raise ``scores.json`` when the parsers get better
    (``python benchmarks/bench_capture.py --scores tests/corpus/scores.json``)."""
    recorded = json.loads(SCORES.read_text())
    results = bench_capture.score_corpus()
    worse = []
    for name, modes in results.items():
        for mode, score in modes.items():
            floor = recorded.get(name, {}).get(mode)
            if floor is None:
                worse.append(f"{name} ({mode}): no recorded score")
                continue
            for metric in ("recall", "placed", "precision"):
                now = getattr(score, "place" if metric == "placed" else metric)
                if now < floor[metric] - 1e-6:  # the file keeps 6 decimals
                    worse.append(f"{name} ({mode}): {metric} {now:.3f} < {floor[metric]:.3f}")
    assert worse == []
