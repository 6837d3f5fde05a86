"""Remote logging under real faults: several client processes logging at once through a real
server process on PostgreSQL while the server is SIGKILLed and restarted, or stopped for a
minute. Every point, note, param and status must arrive exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import expbook
from expbook.model import RunStatus
from expbook.store import RunQuery
from tests.helpers import run_cli
from tests.serverproc import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CLIENT = textwrap.dedent("""
    import sys, time, expbook
    url, name, n, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    run = expbook.start_run(name=name, params={"client": name, "n": n}, store=url)
    for i in range(n):
        run.log({"loss": 1.0 / (i + 1), "i": i}, step=i)
        if i % 100 == 0:
            run.note(f"note {i}")
        if pause:
            time.sleep(pause)
    run.finish()
""")


def _start_clients(
    url: str, count: int, n: int, pause: float, tmp_path: Path, token: str = ""
) -> list:
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    return [
        subprocess.Popen(
            [sys.executable, str(script), url, f"client-{k}", str(n), str(pause)],
            env={**os.environ, "EXPBOOK_TOKEN": token},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(count)
    ]


def _check_exactly_once(store_url: str, count: int, n: int) -> None:
    with expbook.open_store(store_url) as store:
        runs = store.runs()
        assert sorted(r.name for r in runs) == [f"client-{k}" for k in range(count)]
        assert sorted(r.number for r in runs) == list(range(1, count + 1))
        for record in runs:
            assert record.status is RunStatus.FINISHED, record.name
            assert dict(record.params) == {"client": record.name, "n": n}
            assert [note.text for note in record.notes] == [
                f"note {i}" for i in range(0, n, 100)
            ], record.name
            series = store.series(record.id, "i")
            assert list(series.steps) == list(range(n)), record.name  # no gap, no duplicate
            assert list(series.values) == [float(i) for i in range(n)]
            assert record.metrics["loss"].count == n


def _wait_for_runs(
    store_url: str, count: int, clients: list, server_log: Path, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    with expbook.open_store(store_url) as store:
        while (found := store.count_runs(RunQuery())) < count:
            if time.monotonic() > deadline:  # what the clients and the server said, to see why
                for client in clients:
                    client.kill()
                said = [client.communicate()[1][-2000:] for client in clients]
                raise AssertionError(
                    f"{found} of {count} clients started in {timeout:.0f} s; clients said: "
                    f"{said}; the server said: {server_log.read_text()[-3000:]}"
                )
            time.sleep(0.1)


def _wait(clients: list, timeout: float) -> list[str]:
    errors = []
    for client in clients:
        _, err = client.communicate(timeout=timeout)
        assert client.returncode == 0, err
        errors.append(err)
    return errors


def test_eight_clients_while_the_server_is_killed_and_restarted(
    postgres_url: str, tmp_path: Path
) -> None:
    with expbook.open_store(postgres_url) as store:
        _, token = store.create_token("clients")
    server = ServerProcess(
        postgres_url, tmp_path / "server.log", args=("--workers", "2")
    ).start()  # with auth: every request of every client checks the token
    try:
        clients = _start_clients(server.url, 8, 3000, 0.003, tmp_path, token)
        _wait_for_runs(postgres_url, 8, clients, tmp_path / "server.log")  # all are logging
        time.sleep(1.0)
        server.kill()
        time.sleep(2.0)
        server.start()
        _wait(clients, timeout=240)
        # a client that ended while the server was down kept the rest in its journal (one
        # line); any command on the store sends it
        synced = run_cli("sync", store=server.url, env={"EXPBOOK_TOKEN": token})
        assert synced.returncode == 0, synced.stderr
    finally:
        server.stop()
    _check_exactly_once(postgres_url, 8, 3000)


def test_a_minute_without_the_server_is_replayed_by_the_running_clients(
    postgres_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(postgres_url, tmp_path / "server.log", args=("--no-auth",)).start()
    try:
        clients = _start_clients(server.url, 4, 7000, 0.01, tmp_path)  # ~75 s of logging
        _wait_for_runs(postgres_url, 4, clients, tmp_path / "server.log")
        server.stop()  # the network is cut: nothing answers at that address
        time.sleep(60.0)
        server.start()
        errors = _wait(clients, timeout=300)
    finally:
        server.stop()
    _check_exactly_once(postgres_url, 4, 7000)
    # each client said once that the server could not be reached, and once that it is back
    for err in errors:
        assert err.count("writes are kept in") == 1, err
        assert err.count("answers again") == 1, err
