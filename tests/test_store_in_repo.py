"""A store inside the user's git work tree does not pollute it: ``.expbook/`` hides itself from
``git status``, and a run's captured git state never counts the store as untracked or dirty."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import expbook
from tests.helpers import isolate_git, run_cli, run_python

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

RECORD = """
import expbook
with expbook.start_run(name="t", store={store!r}) as run:
    run.log({{"loss": 0.5}}, step=0)
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_git(tmp_path, monkeypatch)
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "train.py").write_text("print('loss=0.5')\n")
    git(root, "add", "train.py")
    git(root, "commit", "-q", "-m", "first")
    return root


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def untracked(store: str, run: int = 1) -> str:
    opened = expbook.open_store(store)
    try:
        record = opened.run(run)
        assert record.git.commit is not None  # git state was captured
        assert record.git.dirty is False
        return (opened.get_attachment(record.id, "git.untracked") or b"").decode()
    finally:
        opened.close()


def test_the_default_store_directory_hides_itself_from_git(repo: Path) -> None:
    result = run_python(RECORD.format(store=None), cwd=repo / "src")
    assert result.returncode == 0, result.stderr
    assert (repo / ".expbook" / ".gitignore").read_text() == "*\n"
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert untracked(str(repo / ".expbook" / "expbook.db")) == ""


def test_expbook_run_leaves_git_status_clean(repo: Path) -> None:
    result = run_cli("run", "--", "sh", "-c", "echo loss=0.5", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert (repo / ".expbook" / ".gitignore").read_text() == "*\n"


def test_a_store_file_in_the_work_tree_is_not_untracked_state_of_its_runs(repo: Path) -> None:
    (repo / "notes.txt").write_text("mine\n")
    result = run_python(RECORD.format(store="runs.db"), cwd=repo)
    assert result.returncode == 0, result.stderr
    assert untracked(str(repo / "runs.db")) == "notes.txt"
    # a second run, with the store's -wal and -shm files and a backup beside it
    (repo / "runs.db.bak-0001").write_bytes(b"")
    result = run_python(RECORD.format(store=str(repo / "runs.db")), cwd=repo / "src")
    assert result.returncode == 0, result.stderr
    assert untracked(str(repo / "runs.db"), run=2) == "notes.txt"


def test_a_tracked_store_file_does_not_make_runs_dirty(repo: Path) -> None:
    store = str(repo / "results" / "runs.db")
    assert run_python(RECORD.format(store=store), cwd=repo).returncode == 0
    git(repo, "add", "-f", "results/runs.db")
    git(repo, "commit", "-q", "-m", "the runs so far")
    result = run_python(RECORD.format(store=store), cwd=repo)
    assert result.returncode == 0, result.stderr
    assert untracked(store, run=2) == ""  # dirty is False (checked there), and no diff
    opened = expbook.open_store(store)
    assert opened.get_attachment(opened.run(2).id, "git.diff") is None
    opened.close()
