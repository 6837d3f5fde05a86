"""Tests of expbook.tracking.capture against real git repositories and the real interpreter."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from expbook.tracking.capture import (
    GitState,
    capture_git,
    capture_gpus,
    capture_host,
    capture_packages,
    sanitize_url,
)
from tests.helpers import isolate_git

requires_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

HOST_KEYS = {
    "hostname",
    "os",
    "system",
    "machine",
    "python",
    "python_implementation",
    "python_executable",
    "cpu",
    "cpus",
    "cpus_physical",
    "ram_bytes",
    "gpus",
    "cuda_visible_devices",
}
GPU_KEYS = {"index", "name", "memory_bytes", "uuid", "driver"}
TRUNCATION_MARKER = re.compile(r"\n\[expbook: diff truncated at 5 MiB of (\d+) bytes\]\n\Z")


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give git an identity and keep the user's and the system's git configuration out."""
    isolate_git(tmp_path, monkeypatch)


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo`` and return its stdout."""
    result = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return result.stdout


def make_repo(tmp_path: Path, *, commit: bool = True) -> Path:
    """Create a repository on branch ``main`` with ``train.py`` (committed unless told not)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("lr = 0.1\nepochs = 10\n")
    if commit:
        git(repo, "add", "train.py")
        git(repo, "commit", "-q", "-m", "first")
    return repo


# --- git ------------------------------------------------------------------------------------


@requires_git
def test_clean_repo(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)

    state = capture_git(repo)

    head = git(repo, "rev-parse", "HEAD").strip()
    assert state == GitState(
        commit=head, branch="main", remote=None, dirty=False, diff="", untracked=()
    )
    assert re.fullmatch(r"[0-9a-f]{40}", head)


@requires_git
def test_modified_tracked_file_is_dirty_with_diff(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "train.py").write_text("lr = 0.01\nepochs = 10\n")

    state = capture_git(repo)

    assert state is not None
    assert state.dirty is True
    assert "diff --git a/train.py b/train.py" in state.diff
    assert "-lr = 0.1\n" in state.diff
    assert "+lr = 0.01\n" in state.diff
    assert state.untracked == ()


@requires_git
def test_staged_only_change_is_dirty(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "model.py").write_text("layers = 3\n")
    git(repo, "add", "model.py")

    state = capture_git(repo)

    assert state is not None
    assert state.dirty is True
    assert "+layers = 3" in state.diff
    assert state.untracked == ()


@requires_git
def test_staged_then_reverted_in_work_tree_is_dirty_without_diff_against_head(
    tmp_path: Path,
) -> None:
    repo = make_repo(tmp_path)
    (repo / "train.py").write_text("lr = 0.5\nepochs = 10\n")
    git(repo, "add", "train.py")
    (repo / "train.py").write_text("lr = 0.1\nepochs = 10\n")

    state = capture_git(repo)

    assert state is not None
    assert state.dirty is True  # the index differs from HEAD
    assert state.diff == ""  # but the work tree equals HEAD, which is what `git diff HEAD` shows


@requires_git
def test_untracked_file_is_listed_but_not_dirty(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "notes.txt").write_text("try a smaller lr\n")

    state = capture_git(repo)

    assert state is not None
    assert state.dirty is False
    assert state.diff == ""
    assert state.untracked == ("notes.txt",)


@requires_git
def test_ignored_files_are_not_listed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore logs")
    (repo / "train.log").write_text("epoch 1\n")
    (repo / "data.csv").write_text("x\n")

    state = capture_git(repo)

    assert state is not None
    assert state.untracked == ("data.csv",)


@requires_git
def test_untracked_list_is_capped_at_1000(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    for i in range(1005):
        (repo / f"u{i:04d}.txt").write_text("")

    state = capture_git(repo)

    assert state is not None
    assert len(state.untracked) == 1000
    assert len(set(state.untracked)) == 1000
    assert all(re.fullmatch(r"u\d{4}\.txt", path) for path in state.untracked)


@requires_git
def test_subdirectory_as_cwd_reports_paths_from_repo_root(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    pkg = repo / "pkg"
    pkg.mkdir()
    (pkg / "model.py").write_text("layers = 3\n")
    git(repo, "add", "pkg/model.py")
    git(repo, "commit", "-q", "-m", "pkg")
    (pkg / "extra.py").write_text("")
    (repo / "top.txt").write_text("")

    state = capture_git(str(pkg))

    assert state is not None
    assert state.commit == git(repo, "rev-parse", "HEAD").strip()
    assert state.branch == "main"
    assert state.untracked == ("pkg/extra.py", "top.txt")


@requires_git
def test_default_cwd_is_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path)
    monkeypatch.chdir(repo)

    state = capture_git()

    assert state is not None
    assert state.commit == git(repo, "rev-parse", "HEAD").strip()


@requires_git
def test_detached_head_has_no_branch(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    head = git(repo, "rev-parse", "HEAD").strip()
    git(repo, "checkout", "-q", "--detach")

    state = capture_git(repo)

    assert state is not None
    assert state.branch is None
    assert state.commit == head


@requires_git
def test_repo_without_commits(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, commit=False)

    state = capture_git(repo)

    assert state == GitState(
        commit=None, branch="main", remote=None, dirty=False, diff="", untracked=("train.py",)
    )


@requires_git
def test_repo_without_commits_with_staged_file_diffs_against_empty_tree(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, commit=False)
    git(repo, "add", "train.py")
    (repo / "train.py").write_text("lr = 0.2\nepochs = 10\n")

    state = capture_git(repo)

    assert state is not None
    assert state.commit is None
    assert state.dirty is True
    assert "new file mode" in state.diff
    assert "+lr = 0.2\n" in state.diff  # the work tree, not only the index


@requires_git
def test_origin_remote_with_credentials_is_stripped(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "remote", "add", "backup", "git@example.com:team/backup.git")
    git(repo, "remote", "add", "origin", "https://user:s3cret@github.com/team/proj.git")

    state = capture_git(repo)

    assert state is not None
    assert state.remote == "https://github.com/team/proj.git"


@requires_git
def test_first_remote_is_used_without_origin(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    git(repo, "remote", "add", "upstream", "https://ghp_token123@github.com/team/proj.git")
    git(repo, "remote", "add", "zeta", "https://example.com/other.git")

    state = capture_git(repo)

    assert state is not None
    assert state.remote == "https://github.com/team/proj.git"


@requires_git
def test_non_repo_directory_returns_none(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()

    assert capture_git(plain) is None


def test_missing_directory_returns_none(tmp_path: Path) -> None:
    assert capture_git(tmp_path / "does-not-exist") is None


@requires_git
def test_git_missing_from_path_returns_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path)
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))

    assert capture_git(repo) is None


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs a POSIX shell script as fake git")
def test_hanging_git_is_killed_after_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleep = shutil.which("sleep")
    assert sleep is not None
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    fake_git = fake_bin / "git"
    fake_git.write_text(f"#!/bin/sh\nexec {sleep} 60\n")
    fake_git.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_bin))

    started = time.monotonic()
    state = capture_git(tmp_path)

    assert state is None
    assert time.monotonic() - started < 10


@requires_git
def test_large_diff_is_truncated_with_marker(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    line = "x" * 99 + "\n"
    (repo / "big.txt").write_text("")
    git(repo, "add", "big.txt")
    git(repo, "commit", "-q", "-m", "empty big file")
    (repo / "big.txt").write_text(line * 60_000)  # about 6 MB of added lines

    state = capture_git(repo)

    assert state is not None
    match = TRUNCATION_MARKER.search(state.diff)
    assert match is not None
    full_size = len(git(repo, "diff", "HEAD").encode())
    assert int(match[1]) == full_size
    assert full_size > 5 * 1024 * 1024
    kept = state.diff[: match.start()]
    assert len(kept.encode()) == 5 * 1024 * 1024
    assert kept.startswith("diff --git a/big.txt b/big.txt")


@requires_git
def test_diff_just_under_the_cap_is_not_truncated(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "train.py").write_text("lr = 0.1\nepochs = 10\n" + "# pad\n" * 100_000)

    state = capture_git(repo)

    assert state is not None
    assert state.diff == git(repo, "diff", "HEAD")
    assert "[expbook:" not in state.diff


@requires_git
def test_binary_change_is_captured_as_text(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    (repo / "weights.bin").write_bytes(bytes(range(256)))
    git(repo, "add", "weights.bin")
    git(repo, "commit", "-q", "-m", "weights")
    (repo / "weights.bin").write_bytes(bytes(range(255, -1, -1)))

    state = capture_git(repo)

    assert state is not None
    assert state.dirty is True
    assert "Binary files a/weights.bin and b/weights.bin differ" in state.diff


@requires_git
def test_capture_does_not_rewrite_the_index(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    index = repo / ".git" / "index"
    future = time.time() + 3600
    os.utime(repo / "train.py", (future, future))  # stale stat data tempts git to refresh
    before = index.read_bytes()

    state = capture_git(repo)

    assert state is not None
    assert state.dirty is False
    assert index.read_bytes() == before
    assert not (repo / ".git" / "index.lock").exists()


def test_git_state_is_frozen() -> None:
    state = GitState(commit=None, branch=None, remote=None, dirty=False, diff="", untracked=())

    with pytest.raises(AttributeError):
        state.dirty = True  # type: ignore[misc]


# --- sanitize_url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:token@github.com/a/b.git", "https://github.com/a/b.git"),
        ("https://ghp_abc123@github.com/a/b.git", "https://github.com/a/b.git"),
        ("http://u:p@ss@host:8080/r.git", "http://host:8080/r.git"),
        ("https://github.com/a/b.git", "https://github.com/a/b.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),
        ("ssh://git@github.com/a/b.git", "ssh://git@github.com/a/b.git"),
        ("ssh://git:pw@github.com/a/b.git", "ssh://git@github.com/a/b.git"),
        ("https://github.com/a/b@v1.git", "https://github.com/a/b@v1.git"),
        ("/srv/git/project.git", "/srv/git/project.git"),
        ("", ""),
    ],
)
def test_sanitize_url(url: str, expected: str) -> None:
    assert sanitize_url(url) == expected


# --- host and GPUs --------------------------------------------------------------------------


def test_capture_host_keys_and_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")

    host = capture_host()

    assert set(host) == HOST_KEYS
    json.dumps(host)
    assert isinstance(host["hostname"], str) and host["hostname"]
    assert host["python"] == platform.python_version()
    assert host["python_implementation"] == platform.python_implementation()
    assert host["python_executable"] == sys.executable
    assert host["system"] == platform.system()
    assert host["machine"] == platform.machine()
    assert isinstance(host["os"], str) and host["os"]
    assert host["cpu"] is None or (isinstance(host["cpu"], str) and host["cpu"])
    assert host["cpus"] == os.cpu_count()
    assert host["cpus"] >= 1
    assert host["cpus_physical"] is None or 1 <= host["cpus_physical"] <= host["cpus"]
    assert isinstance(host["ram_bytes"], int) and host["ram_bytes"] > 0
    assert isinstance(host["gpus"], list)
    assert host["cuda_visible_devices"] == "0,1"


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="needs Linux /proc/cpuinfo")
def test_capture_host_reads_cpu_model_from_proc() -> None:
    models = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.split(":", 1)[0].strip() == "model name"
    ]
    if not models:
        pytest.skip("this /proc/cpuinfo has no model name")

    assert capture_host()["cpu"] == models[0]


def test_capture_host_without_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    assert capture_host()["cuda_visible_devices"] is None


@pytest.mark.skipif(not hasattr(os, "sysconf"), reason="the fallback needs os.sysconf")
def test_capture_host_without_psutil_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # makes `import psutil` fail

    host = capture_host()

    assert host["ram_bytes"] == os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert host["cpus_physical"] is None
    assert host["cpus"] >= 1


def test_capture_gpus_returns_list_of_device_dicts() -> None:
    started = time.monotonic()
    gpus = capture_gpus()

    assert time.monotonic() - started < 5
    assert isinstance(gpus, list)
    json.dumps(gpus)
    for index, gpu in enumerate(gpus):
        assert set(gpu) == GPU_KEYS
        assert gpu["index"] == index


def test_capture_gpus_without_pynvml_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)

    assert capture_gpus() == []


# --- packages -------------------------------------------------------------------------------


def test_capture_packages_lists_installed_distributions() -> None:
    packages = capture_packages()

    assert f"sqlalchemy=={importlib.metadata.version('sqlalchemy')}" in packages
    assert packages == sorted(packages)
    assert len(packages) == len(set(packages))
    names = [entry.split("==", 1)[0] for entry in packages]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name) for name in names)


def write_dist(site: Path, dir_name: str, name: str | None, version: str, body: str = "") -> None:
    """Write a minimal ``.dist-info`` directory into ``site``; ``name=None`` leaves Name out."""
    dist_info = site / dir_name
    dist_info.mkdir(parents=True)
    name_field = "" if name is None else f"Name: {name}\n"
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\n{name_field}Version: {version}\n\n{body}"
    )


def test_capture_packages_normalises_dedupes_and_skips_nameless(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "site1", tmp_path / "site2"
    write_dist(first, "Foo_Bar-1.0.dist-info", "Foo_Bar", "1.0")
    write_dist(first, "a.b-2.0.dist-info", "A..B--c", "2.0")
    write_dist(second, "foo.bar-9.0.dist-info", "foo.bar", "9.0")
    write_dist(second, "nameless-1.0.dist-info", None, "1.0")
    monkeypatch.syspath_prepend(str(second))
    monkeypatch.syspath_prepend(str(first))

    packages = capture_packages()

    assert "foo-bar==1.0" in packages
    assert "foo-bar==9.0" not in packages  # shadowed by the first one on sys.path
    assert "a-b-c==2.0" in packages
    assert not any(entry.startswith(("nameless", "None", "none")) for entry in packages)


def test_capture_packages_is_fast_for_hundreds_of_distributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    description = "A long description.\n" * 500  # about 10 KB, like a typical README
    for i in range(400):
        write_dist(site, f"pkg_{i:03d}-1.{i}.dist-info", f"pkg_{i:03d}", f"1.{i}", description)
    monkeypatch.syspath_prepend(str(site))

    started = time.perf_counter()
    packages = capture_packages()
    elapsed = time.perf_counter() - started

    assert sum(entry.startswith("pkg-") for entry in packages) == 400
    assert "pkg-042==1.42" in packages
    assert elapsed < 1.0  # the budget is 300 ms; leave room for slow CI machines
