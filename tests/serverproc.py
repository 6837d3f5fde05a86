"""A real ``expbook`` server process on loopback, for the tests of remote stores."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.helpers import EXPBOOK


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """``expbook server`` (or ``expbook ui`` when ``command="ui"``) on ``store_url``, started by
    ``start`` and stopped by ``kill`` (SIGKILL) or ``stop``; the port stays the same across
    restarts, so clients reconnect to the same address."""

    def __init__(
        self, store_url: str, log: Path, *, args: tuple[str, ...] = (), command: str = "server",
        env: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.store_url = store_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        self.command = command
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        import expbook

        expbook.open_store(self.store_url).close()  # made with the current schema
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [EXPBOOK, self.command, "--store", self.store_url, "--port", str(self.port),
                 *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/api/openapi.json", timeout=1.0)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not start: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL the server and every worker it started."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
