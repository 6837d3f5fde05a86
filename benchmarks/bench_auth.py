"""What a token check costs, and what the Guard's token cache saves per request (docs/design.md,
"The team server: tokens").

    python benchmarks/bench_auth.py sqlite 2000
    python benchmarks/bench_auth.py postgresql://postgres@127.0.0.1:5432/postgres 2000

1. ``Store.check_token`` alone, in this process: the database query per uncached request.
2. ``GET /api/whoami`` against a real ``expbook server`` (one worker, loopback, one keep-alive
   connection, requests one after the other), three servers on the same store, taking turns in
   blocks of 200 requests: with the cache (the default), with it off (``EXPBOOK_TOKEN_CACHE=0``:
   every request queries the database), and without auth (``--no-auth``). Median per request.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack

import httpx

import expbook

url, count = sys.argv[1], int(sys.argv[2])
BLOCK = 200
if url == "sqlite":
    url = tempfile.mkdtemp() + "/s.db"
else:
    import sqlalchemy as sa

    name = "bench_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    url = str(sa.make_url(url).set(database=name).render_as_string(hide_password=False))

store = expbook.open_store(url)
_, secret = store.create_token("bench")
store.check_token(secret)  # last_used_at written: later checks only read
times = []
for _ in range(count):
    started = time.perf_counter()
    store.check_token(secret)
    times.append(time.perf_counter() - started)
print(f"check_token: median {statistics.median(times) * 1e6:.0f} us over {count}")


async def guard_alone() -> None:
    """The Guard around an app that answers at once, called directly (no socket, no HTTP)."""
    from expbook.server.security import Guard

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, object]) -> None:
        pass

    headers = [(b"host", b"127.0.0.1:5005"), (b"authorization", f"Bearer {secret}".encode())]
    scope = {"type": "http", "method": "GET", "path": "/api/whoami", "headers": headers}
    os.environ["EXPBOOK_TOKEN_CACHE"] = "0"
    guards = {"cache": Guard(app, tokens=store), "no cache": Guard(app, tokens=store),
              "no auth": Guard(app)}  # fmt: skip
    guards["cache"].tokens.seconds = 5.0  # type: ignore[union-attr]
    del os.environ["EXPBOOK_TOKEN_CACHE"]
    for mode, guard in guards.items():
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await guard(dict(scope), receive, send)
            times.append(time.perf_counter() - started)
        print(f"Guard alone, {mode}: median {statistics.median(times) * 1e6:.0f} us")


import anyio  # noqa: E402

anyio.run(guard_alone)
store.close()

EXPBOOK = os.path.join(os.path.dirname(sys.executable), "expbook")


def start(stack: ExitStack, port: int, *options: str, env: dict[str, str] | None = None) -> str:
    command = [EXPBOOK, "server", "--store", url, "--port", str(port), *options]
    process = subprocess.Popen(
        command, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    stack.callback(process.wait)
    stack.callback(process.terminate)
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(base + "/api/whoami", timeout=1)
            return base
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{command} did not start")


with ExitStack() as stack:
    servers = {
        "cache": start(stack, 5941),
        "no cache": start(stack, 5942, env={"EXPBOOK_TOKEN_CACHE": "0"}),
        "no auth": start(stack, 5943, "--no-auth"),
    }
    clients = {
        mode: stack.enter_context(
            httpx.Client(base_url=base, headers={"authorization": f"Bearer {secret}"})
        )
        for mode, base in servers.items()
    }
    per_request: dict[str, list[float]] = {mode: [] for mode in servers}
    for client in clients.values():  # warm up
        for _ in range(50):
            assert client.get("/api/whoami").status_code == 200
    for _ in range(max(1, count // BLOCK)):
        for mode, client in clients.items():
            started = time.perf_counter()
            for _ in range(BLOCK):
                client.get("/api/whoami")
            per_request[mode].append((time.perf_counter() - started) / BLOCK)
    for mode, values in per_request.items():
        print(f"GET /api/whoami, {mode}: median {statistics.median(values) * 1e3:.3f} ms/request")

if url.startswith("postgresql"):
    with admin.connect() as connection:  # the servers have stopped
        connection.exec_driver_sql(f"DROP DATABASE {name}")
