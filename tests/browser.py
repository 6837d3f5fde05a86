"""Browser tests' machinery: a real ``expbook ui`` process and a real Chromium (Debian's, driven
by Playwright) that records every console error and uncaught exception of the pages.

Without ``/usr/bin/chromium`` the browser tests are skipped, except with ``CI=true`` where that
is a failure (``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EXPBOOK

CHROMIUM = "/usr/bin/chromium"
STARTUP_SECONDS = 30


def require_chromium() -> None:
    """Skip (or, with CI=true, fail) when Debian's Chromium is not installed."""
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is missing (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true: the browser tests are required")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def ui_server(
    store: Path, *, read_only: bool = False, extra: list[str] | None = None
) -> Iterator[str]:
    """Run ``expbook ui`` on ``store`` (with ``extra`` options) and yield its base URL
    (``http://127.0.0.1:PORT``)."""
    port = free_port()
    command = [EXPBOOK, "ui", "--store", str(store), "--host", "127.0.0.1", "--port", str(port)]
    if read_only:
        command.append("--read-only")
    command.extend(extra or ())
    env = {**os.environ, "EXPBOOK_STORE": str(store)}
    log = store.with_name(f"ui-{port}.log")  # a file: a full pipe would block the server
    with log.open("w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(process, base, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"expbook ui exited with {process.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{base}/api/info", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"expbook ui did not answer on {base} within {STARTUP_SECONDS} s")


@dataclass
class UiPage:
    """A browser tab on the UI that remembers the page's errors and saves screenshots."""

    page: Any  # playwright.sync_api.Page
    base: str
    shots: Path
    errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> Any:
        """Go to ``path`` and wait until its script has drawn the page (``body[data-ready]``)."""
        self.page.goto(self.base + path)
        self.page.wait_for_selector("body[data-ready]", state="attached", timeout=15_000)
        return self.page

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.evaluate("window.scrollTo(0, 0)")  # the sticky header where it belongs
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def assert_no_errors(self, *allowed: str) -> None:
        """No console error and no uncaught exception, except messages containing ``allowed``."""
        unexpected = [e for e in self.errors if not any(part in e for part in allowed)]
        assert unexpected == [], f"the page reported errors: {unexpected}"


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's; never one downloaded by Playwright)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def ui_page(browser: Any, base: str, shots: Path) -> Iterator[UiPage]:
    """A fresh browser context and tab on ``base``, recording errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    tab = UiPage(page=page, base=base, shots=shots)
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: tab.errors.append(f"uncaught: {exc}"))
    try:
        yield tab
    finally:
        context.close()
