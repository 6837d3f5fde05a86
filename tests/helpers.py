"""Helpers for tests that run real processes: a fresh interpreter, the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_python(
    code: str, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``code`` in a fresh interpreter of this environment."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


EXPBOOK = str(Path(sys.executable).with_name("expbook"))


def run_cli(
    *args: str, store: str | None = None, input: str | None = None, cwd: Path | None = None,
    env: dict[str, str] | None = None, timeout: float = 120,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run the real ``expbook`` console script."""
    full_env = {**os.environ, **(env or {})}
    if store is not None:
        full_env["EXPBOOK_STORE"] = store
    return subprocess.run(
        [EXPBOOK, *args],
        capture_output=True,
        text=True,
        input=input,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def isolate_git(tmp_path: Path, monkeypatch: Any) -> None:
    """Give git an identity and keep the user's and the system's git configuration (and any
    repository above ``tmp_path``) out of a test."""
    empty_config = tmp_path / "empty.gitconfig"
    empty_config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty_config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test User")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")
