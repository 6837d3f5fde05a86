"""``expbook parse``: what expbook run reads in a log, line by line, and why."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_cli

CAPTURE = Path(__file__).parent / "corpus" / "shell_awk_sgd" / "pipe.jsonl"


def test_parse_shows_each_read_line_with_its_parser_and_steps() -> None:
    result = run_cli("parse", str(CAPTURE))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = lines.index("     2  epoch 1/20  train_loss=3.22440  w=0.1014  b=0.0336")
    assert lines[at + 1] == (
        "        -> progress: point at step 1, epoch 1: train_loss=3.2244 w=0.1014 b=0.0336"
    )
    assert "done: final" not in result.stdout  # read nothing: only with --all
    assert lines[-1] == "26 lines, 24 read: 24 points and 0 summary values of 4 keys"


def test_parse_all_shows_the_lines_that_gave_nothing(tmp_path: Path) -> None:
    result = run_cli("parse", "--all", str(CAPTURE), cwd=tmp_path)
    lines = result.stdout.splitlines()
    at = lines.index("    26  done: final train_loss 0.84694")
    assert lines[at + 1] == "        -> nothing"


def test_a_pattern_in_expbook_toml_fixes_a_miss(tmp_path: Path) -> None:
    """The workflow the command is for: see the miss, add a pattern, see it read."""
    settings = tmp_path / "expbook.toml"
    settings.write_text(
        '[run]\npatterns = [{regex = "validation: mse (?P<value>[0-9.]+)", key = "val/mse"}]\n'
    )
    result = run_cli("parse", "--json", "--settings", str(settings), str(CAPTURE))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    validation = next(row for row in rows if row["text"].strip().startswith("validation"))
    assert validation["parser"] == "user pattern"
    assert validation["points"][0]["values"] == {"val/mse": 2.156969}


def test_parse_reads_standard_input_and_refuses_a_missing_file(tmp_path: Path) -> None:
    result = run_cli("parse", "-", input="Test accuracy: 94.2%\n", cwd=tmp_path)
    assert result.returncode == 0
    assert "-> summary: summary value " in result.stdout and "=94.2%" in result.stdout
    missing = run_cli("parse", str(tmp_path / "nothing.log"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: cannot read")
    assert len(missing.stderr.splitlines()) == 1


def test_the_drawings_of_a_progress_bar_are_listed_apart_from_the_lines() -> None:
    """A tqdm bar's postfix, set after every batch: each drawing a \\r overwrote is read (with a
    ~ after its line number) but is not a line of the log."""
    capture = Path(__file__).parent / "corpus" / "tqdm_postfix" / "pipe.jsonl"
    result = run_cli("parse", str(capture))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("     1~ Epoch 1/5:   0%|")
    assert lines[1] == "        -> progress: point at step 1, epoch 1: acc=0.625 loss=0.68"
    assert lines[-1] == (
        "10 lines and 200 earlier drawings of bars, 205 read: 205 points and 0 summary values "
        "of 4 keys"
    )
