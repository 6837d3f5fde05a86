"""Sweep agents with real processes: ``expbook run`` with a run UUID chosen beforehand, agents
on SQLite and PostgreSQL, one of them killed with SIGKILL mid-trial, Ctrl-C."""

from __future__ import annotations

import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import expbook
from tests.helpers import EXPBOOK, run_cli

pytestmark = pytest.mark.slow


def recorded(store: str, ref: str | int, timeout: float = 30) -> expbook.RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        try:
            run = expbook.open_store(store).run(ref)
            if run.status.is_terminal():
                return run
        except (expbook.RunNotFoundError, expbook.StoreError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"run {ref} was not recorded within {timeout} s")
        time.sleep(0.05)


# --- EXPBOOK_RUN_UUID: the launcher's part ---------------------------------------------------


def test_expbook_run_takes_the_uuid_its_starter_chose(tmp_path: Path) -> None:
    """The agent must know a trial's run before it exists: EXPBOOK_RUN_UUID gives it; the
    program does not see the variable, so an ``expbook run`` inside it gets a run of its own."""
    store = str(tmp_path / "store.db")
    chosen = uuid.uuid4()
    inner = "import os; print('inner', os.environ['EXPBOOK_RUN_ID'])"
    outer = textwrap.dedent(f"""
        import os, subprocess
        print('outer', os.environ['EXPBOOK_RUN_ID'], os.environ.get('EXPBOOK_RUN_UUID'))
        subprocess.run([{EXPBOOK!r}, 'run', '--quiet', '--', {sys.executable!r}, '-c',
                        {inner!r}], check=True)
    """)
    result = run_cli(
        "run", "--quiet", "--", sys.executable, "-c", outer,
        store=store, env={"EXPBOOK_RUN_UUID": str(chosen)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    words = dict((line.split()[0], line.split()[1:]) for line in result.stdout.splitlines())
    assert words["outer"] == [chosen.hex, "None"]
    assert words["inner"][0] != chosen.hex
    assert recorded(store, chosen.hex).id == chosen.hex
    assert recorded(store, words["inner"][0]).id == words["inner"][0]


@pytest.mark.parametrize("value", ["12", "not-a-uuid-at-all-not-a-uuid-at-z"])
def test_a_bad_run_uuid_is_one_line(tmp_path: Path, value: str) -> None:
    result = run_cli(
        "run", "--", "true", store=str(tmp_path / "s.db"), env={"EXPBOOK_RUN_UUID": value}
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "EXPBOOK_RUN_UUID" in result.stderr


def test_one_run_uuid_cannot_name_repeats(tmp_path: Path) -> None:
    result = run_cli(
        "run", "--repeat", "2", "--", "true",
        store=str(tmp_path / "s.db"), env={"EXPBOOK_RUN_UUID": uuid.uuid4().hex},
    )  # fmt: skip
    assert result.returncode == 2 and "--repeat" in result.stderr
