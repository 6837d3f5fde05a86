"""What ``expbook ls`` prints, read from the real console script: piped (no padding), and on a
terminal of 80 and 120 columns (low-priority columns dropped and named, dates on one line)."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

import expbook
from expbook.store import RunSpec, WriteBatch
from expbook.store.chunks import Points
from tests.helpers import EXPBOOK, run_cli

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")


def run_on_terminal(*args: str, store: str, columns: int) -> str:
    """Run the console script with stdout and stderr on a pseudo-terminal ``columns`` wide;
    return what it printed, without colours."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "EXPBOOK_STORE": store, "TERM": "xterm"}
    for name in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [EXPBOOK, *args], stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the program closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def wide_store(location: str) -> None:
    """Runs with long names, six metrics and four params that vary: wider than 120 columns."""
    store = expbook.open_store(location)
    for index in range(3):
        run = store.create_run(
            RunSpec(
                name=f"regnet-bs{16 << index}-cosine-warmup",
                params={"batch_size": 16 << index, "lr": 0.1 / (index + 1),
                        "optimizer.momentum": 0.9 - index / 10, "warmup": 5 + index},
            )
        )  # fmt: skip
        points = {}
        for key in ("train/loss", "train/acc", "valid/loss", "valid/acc", "test/acc", "lr"):
            series = Points()
            series.append(0, 0.5 + index / 10, time.time(), 1.0)
            points[key] = series
        update = {"status": "finished", "ended_at": time.time() + 90}
        store.write(run.id, WriteBatch(points=points, update=update))
    store.close()


@pytest.fixture
def wide(tmp_path: Path) -> str:
    location = str(tmp_path / "s.db")
    wide_store(location)
    return location


def test_piped_output_has_no_trailing_padding(wide: str) -> None:
    result = run_cli("ls", store=wide)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line for line in lines if line != line.rstrip()] == []
    assert "regnet-bs64-cosine-warmup" in result.stdout  # whole, never cut
    header = next(line for line in lines if "name" in line)
    for column in ("started", "duration", "batch_size", "optimizer.momentum", "valid/loss"):
        assert column in header  # piped: every column
    for command in (("show", "1"), ("diff", "1", "2"), ("experiment", "ls")):
        out = run_cli(*command, store=wide).stdout
        assert [line for line in out.splitlines() if line != line.rstrip()] == [], command


@pytest.mark.parametrize("columns", [80, 120])
def test_tables_fit_the_terminal_by_dropping_columns(wide: str, columns: int) -> None:
    out = run_on_terminal("ls", store=wide, columns=columns)
    lines = out.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= columns, out
    rows = [line for line in lines if line.strip()[:1].isdigit()]
    assert len(rows) == 3, out  # one line per run: nothing wraps
    for row in rows:
        assert DATE.search(row), row  # the date on one line, whole
        assert "regnet-bs" in row
    header = next(line for line in lines if " name " in f" {line} ")
    assert re.search(r"\w…", out) is None, out  # no column cut to a few characters
    footer = next(line for line in lines if line.startswith("not shown"))
    hidden = footer.split(":", 1)[1].split("(")[0].replace(",", " ").split()
    assert hidden, footer
    assert not set(hidden) & set(header.split())
    assert set(hidden) | set(header.split()) >= {"valid/acc", "batch_size", "duration"}
    assert "valid/acc" in header  # a key metric stays


def test_a_param_and_a_metric_with_one_name_get_distinct_headers(tmp_path: Path) -> None:
    location = str(tmp_path / "s.db")
    store = expbook.open_store(location)
    for index in range(2):
        run = store.create_run(RunSpec(name=f"r{index}", params={"lr": 0.1 * (index + 1)}))
        series = Points()
        series.append(0, 0.01 * (index + 1), time.time(), None)
        store.write(run.id, WriteBatch(points={"lr": series}))
    store.close()
    header = next(line for line in run_cli("ls", store=location).stdout.splitlines()
                  if "name" in line)  # fmt: skip
    assert "params.lr" in header.split() and "metrics.lr" in header.split()


def test_the_experiments_table_keeps_dates_whole(tmp_path: Path) -> None:
    location = str(tmp_path / "s.db")
    store = expbook.open_store(location)
    for index in range(3):
        store.create_experiment(f"Batch size {index} with RegNet on the long audio clips?",
                                hypothesis="smaller batches generalise better " * 3)  # fmt: skip
    store.close()
    out = run_on_terminal("experiment", "ls", store=location, columns=60)
    assert len(DATE.findall(out)) == 3, out
