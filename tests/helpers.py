"""Helpers for tests that run real processes: a fresh interpreter, the console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
