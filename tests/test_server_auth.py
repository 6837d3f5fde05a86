"""``expbook server``'s API tokens and limits: in-process (the app with ``auth=True``) for each
rule, and against real ``expbook server`` processes on loopback for what only a real server
shows (the token cache across processes, several workers, the command's refusals)."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import Request

import expbook
from expbook.server import create_app, security
from expbook.server.security import MAX_BODY_BYTES, Guard
from expbook.store import Store
from tests.browser import free_port
from tests.helpers import EXPBOOK, run_cli

LOCAL = "http://127.0.0.1:5005"
STARTUP_SECONDS = 60


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {pair}"}


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


@pytest.fixture
def served(store: Store) -> Store:
    """A store with a run (#1) to read and write."""
    with expbook.Tracker(store).start_run(name="r", params={"lr": 0.1}) as run:
        run.log({"loss": 1.0}, step=0)
    return store


@contextmanager
def app_client(store: Store, **options: object) -> Iterator[httpx.Client]:
    from fastapi.testclient import TestClient

    app = create_app(store, **options)  # type: ignore[arg-type]

    @app.post("/api/test/search")  # a POST that only reads, as MLflow's searches are
    def search(request: Request) -> dict[str, object]:
        return {"ok": True}

    @app.post("/api/test/upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    with TestClient(app, base_url=LOCAL) as client:
        yield client


# --- who: tokens --------------------------------------------------------------------------------


def test_without_a_valid_token_every_path_is_401_with_both_challenges(served: Store) -> None:
    _, secret = served.create_token("ana")
    with app_client(served, auth=True) as client:
        for path in ("/api/runs", "/", "/runs/1", "/static/common.js", "/api/openapi.json"):
            for headers in ({}, bearer("ebk_wrong"), bearer(""), basic("ana", "ebk_wrong"),
                            {"authorization": "Basic !!notbase64"},
                            {"authorization": f"Token {secret}"}):  # fmt: skip
                answer = client.get(path, headers=headers)
                assert answer.status_code == 401, (path, headers, answer.text)
                assert answer.headers.get_list("www-authenticate") == [
                    'Basic realm="expbook", charset="UTF-8"',
                    'Bearer realm="expbook"',
                ]
                assert "API token" in answer.json()["detail"]
        refused = client.post("/api/runs/1/notes", json={"text": "x"})
        assert refused.status_code == 401
    assert [note.text for note in served.run(1).notes] == []


def test_bearer_and_basic_with_any_user_name_are_accepted(served: Store) -> None:
    _, secret = served.create_token("ana")
    with app_client(served, auth=True) as client:
        for headers in (bearer(secret), {"authorization": f"bearer  {secret} "},
                        basic("ana", secret), basic("anything", secret),
                        basic("", secret), basic(secret, "")):  # fmt: skip
            answer = client.get("/api/whoami", headers=headers)
            assert answer.status_code == 200, (headers, answer.text)
            assert answer.json() == {"name": "ana", "read_only": False, "auth": True}
        page = client.get("/runs/1", headers=basic("me", secret))  # a browser's request
        assert page.status_code == 200 and "<html" in page.text
        assert client.post("/api/runs/1/notes", json={"text": "hi"},
                           headers=bearer(secret)).status_code == 200  # fmt: skip
    assert [note.text for note in served.run(1).notes] == ["hi"]


def test_without_auth_there_is_no_token(served: Store) -> None:
    with app_client(served) as client:
        assert client.get("/api/whoami").json() == {
            "name": None, "read_only": False, "auth": False
        }  # fmt: skip
    with app_client(served, read_only=True) as client:
        assert client.get("/api/whoami").json()["read_only"] is True


def test_a_revoked_token_is_refused_once_the_cache_lets_go(
    served: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPBOOK_TOKEN_CACHE", "0.5")
    _, secret = served.create_token("ana")
    with app_client(served, auth=True) as client:
        assert client.get("/api/whoami", headers=bearer(secret)).status_code == 200
        served.revoke_token("ana")
        cached = client.get("/api/whoami", headers=bearer(secret))
        assert cached.status_code == 200  # trusted for the cache's 0.5 s
        time.sleep(0.6)
        refused = client.get("/api/whoami", headers=bearer(secret))
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]


def test_with_the_cache_off_every_request_checks_the_database(
    served: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPBOOK_TOKEN_CACHE", "0")
    _, secret = served.create_token("ana")
    with app_client(served, auth=True) as client:
        assert client.get("/api/whoami", headers=bearer(secret)).status_code == 200
        served.revoke_token("ana")
        assert client.get("/api/whoami", headers=bearer(secret)).status_code == 401


# --- what: read-only ----------------------------------------------------------------------------


def test_a_read_only_token_reads_but_cannot_change_anything(
    served: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "READ_POSTS", {"/api/test/search"})
    _, secret = served.create_token("dash", read_only=True)
    auth = bearer(secret)
    with app_client(served, auth=True) as client:
        assert client.get("/api/runs", headers=auth).status_code == 200
        assert client.get("/runs/1", headers=auth).status_code == 200
        assert (
            client.get("/api/info", headers=auth).json()["read_only"] is True
        )  # the UI hides edits
        assert client.get("/api/whoami", headers=auth).json() == {
            "name": "dash", "read_only": True, "auth": True
        }  # fmt: skip
        for method, path, body in [
            ("POST", "/api/runs/1/notes", {"text": "x"}),
            ("POST", "/api/runs/1/tags", {"tags": ["x"]}),
            ("PATCH", "/api/runs/1", {"name": "renamed"}),
            ("DELETE", "/api/runs/1/tags/x", None),
            ("PUT", "/api/runs/1/notes/1", {"text": "y"}),
            ("POST", "/api/test/searchx", {}),  # not /api/test/search: another segment
        ]:
            answer = client.request(method, path, json=body, headers=auth)
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["detail"].startswith("the API token 'dash' is read-only: ")
        search = client.post("/api/test/search", json={}, headers=auth)  # READ_POSTS
        assert search.status_code == 200, search.text
    record = served.run(1)
    assert record.notes == () and record.tags == () and record.name == "r"


def test_a_read_only_server_refuses_every_change_but_read_posts(
    served: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "READ_POSTS", {"/api/test/search"})
    _, secret = served.create_token("ana")
    with app_client(served, auth=True, read_only=True) as client:
        refused = client.post("/api/test/upload", content=b"x", headers=bearer(secret))
        assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
        assert client.post("/api/test/search", headers=bearer(secret)).status_code == 200


# --- how much: body limits ----------------------------------------------------------------------


def test_body_limits_are_per_path(served: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    limits = {"/api/test/": 2 * MAX_BODY_BYTES, "/api/test/upload": 3 * MAX_BODY_BYTES}
    monkeypatch.setattr(security, "BODY_LIMITS", limits)
    _, secret = served.create_token("ana")
    with app_client(served, auth=True) as client:

        def post(path: str, size: int, streamed: bool = False) -> httpx.Response:
            body = b"x" * size
            content = (
                iter([body[i : i + 65536] for i in range(0, size, 65536)]) if streamed else body
            )
            return client.post(path, content=content, headers=bearer(secret))

        assert post("/api/test/upload", 3 * MAX_BODY_BYTES).json() == {"size": 3 * MAX_BODY_BYTES}
        assert post("/api/test/upload", 3 * MAX_BODY_BYTES, streamed=True).status_code == 200
        over = post("/api/test/upload", 3 * MAX_BODY_BYTES + 1)
        assert over.status_code == 413 and f"{3 * MAX_BODY_BYTES:,}" in over.json()["detail"]
        assert post("/api/test/upload", 3 * MAX_BODY_BYTES + 1, streamed=True).status_code == 413
        assert post("/api/test/search", 2 * MAX_BODY_BYTES).status_code == 200  # "/api/test/"
        assert post("/api/test/search", 2 * MAX_BODY_BYTES + 1).status_code == 413
        note = client.post("/api/runs/1/notes", json={"text": "x" * MAX_BODY_BYTES},
                           headers=bearer(secret))  # fmt: skip
        assert note.status_code == 413  # the default elsewhere


def test_unauthenticated_bodies_are_not_read(served: Store) -> None:
    """A 401 comes before the body is read: no one without a token makes the server buffer."""
    with app_client(served, auth=True) as client:

        def endless() -> Iterator[bytes]:
            for _ in range(10_000):
                yield b"y" * 65536

        answer = client.post("/api/test/upload", content=endless())
        assert answer.status_code == 401


async def _through_guard(
    path: str, chunks: list[bytes], length: int | None = None
) -> tuple[int, list[int], bytes]:
    """Send ``chunks`` to a bare app behind the Guard: the answer's status, how many chunks the
    Guard had taken from the client each time the app got one, and the app's answer body."""
    consumed = 0
    seen: list[int] = []
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> dict[str, object]:
        nonlocal consumed
        consumed += 1
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def app(scope, receive_, send) -> None:  # type: ignore[no-untyped-def]
        size = 0
        while True:
            message = await receive_()
            seen.append(consumed)
            if message["type"] == "http.disconnect":
                raise OSError("client went away")  # what Starlette's ClientDisconnect does
            size += len(message["body"])
            if not message.get("more_body"):
                break
        body = str(size).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    answers: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        answers.append(message)

    headers = [(b"host", b"127.0.0.1:5005")]
    if length is None:
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        headers.append((b"content-length", str(length).encode()))
    scope = {"type": "http", "method": "PUT", "path": path, "headers": headers}
    await Guard(app)(scope, receive, send)  # type: ignore[arg-type]
    return answers[0]["status"], seen, answers[-1]["body"]  # type: ignore[return-value]


def test_streamed_paths_reach_the_app_as_they_arrive_up_to_their_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import anyio

    monkeypatch.setattr(security, "STREAMED", {"/api/blobs/": 10 * MAX_BODY_BYTES})
    chunk = b"z" * MAX_BODY_BYTES
    status, seen, body = anyio.run(_through_guard, "/api/blobs/abc", [chunk] * 8)
    assert status == 200 and body == str(8 * MAX_BODY_BYTES).encode()
    assert seen == list(range(1, 9))  # one chunk in, one chunk to the app: nothing buffered
    status, seen, body = anyio.run(_through_guard, "/api/blobs/abc", [chunk] * 11)
    assert status == 413 and b"10,485,760" in body  # the app's own answer is dropped
    assert seen[:10] == list(range(1, 11)) and len(seen) == 11  # cut off at the cap
    status, seen, _ = anyio.run(_through_guard, "/api/blobs/abc", [chunk], 11 * MAX_BODY_BYTES)
    assert status == 413 and seen == []  # a declared length over the cap: not even started
    status, seen, _ = anyio.run(_through_guard, "/api/runs/1/notes", [chunk] * 2)
    assert status == 413 and seen == []  # buffered paths keep the 1 MiB default


# --- the real server ----------------------------------------------------------------------------


@contextmanager
def team_server(
    store: str, *options: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """``expbook server`` on a free loopback port; yields its base URL, process and log (the
    log's first lines: what the command printed)."""
    port = free_port()
    command = [EXPBOOK, "server", "--store", store, "--port", str(port), *options]
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"expbook-server-{port}-{os.getpid()}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, **(env or {})}
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "expbook server on" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"expbook server did not start: {log.read_text()}")
            time.sleep(0.05)
        yield base, process, log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.unlink(missing_ok=True)


@pytest.mark.slow
def test_expbook_server_refuses_what_it_must(store_url: str, tmp_path: Path) -> None:
    """Against a real server process on each backend: no token, a wrong one, a revoked one
    (through another process: refused within the cache time), a read-only one writing."""
    with expbook.open_store(store_url) as store:
        _, writer = store.create_token("ana")
        _, reader = store.create_token("dash", read_only=True)
        expbook.Tracker(store).start_run(name="r").finish()
    with team_server(store_url) as (base, _, log):
        assert "API tokens (2 active)" in log.read_text()
        with httpx.Client(base_url=base, timeout=30) as client:
            assert client.get("/api/runs").status_code == 401
            assert client.get("/api/runs", headers=bearer("ebk_" + "x" * 43)).status_code == 401
            assert client.get("/", headers=basic("me", writer)).status_code == 200
            assert client.get("/api/runs", headers=bearer(reader)).status_code == 200
            refused = client.post("/api/runs/1/notes", json={"text": "x"}, headers=bearer(reader))
            assert refused.status_code == 403, refused.text
            written = client.post("/api/runs/1/notes", json={"text": "y"}, headers=bearer(writer))
            assert written.status_code == 200, written.text
            assert client.get("/api/whoami", headers=bearer(writer)).status_code == 200  # cached
            revoked = run_cli("token", "revoke", "ana", "--store", store_url)
            assert revoked.returncode == 0, revoked.stderr
            started = time.monotonic()
            while client.get("/api/whoami", headers=bearer(writer)).status_code == 200:
                assert time.monotonic() - started < security.TOKEN_CACHE_SECONDS + 2
                time.sleep(0.1)
            assert client.get("/api/runs", headers=basic("me", writer)).status_code == 401
    with expbook.open_store(store_url) as store:
        assert [note.text for note in store.run(1).notes] == ["y"]
        assert {t.name: t.last_used_at is not None for t in store.list_tokens()} == {
            "ana": True, "dash": True
        }  # fmt: skip


@pytest.mark.slow
def test_expbook_server_without_tokens_says_how_to_make_one(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    expbook.open_store(store).close()
    with team_server(store) as (base, _, log):
        assert "no API tokens yet" in log.read_text()
        assert "expbook token create NAME" in log.read_text()
        assert httpx.get(f"{base}/api/runs").status_code == 401
        _, secret = expbook.open_store(store).create_token("late")  # no restart needed
        assert httpx.get(f"{base}/api/runs", headers=bearer(secret)).status_code == 200


@pytest.mark.slow
def test_expbook_server_no_auth_on_loopback(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    expbook.open_store(store).close()
    with team_server(store, "--no-auth", "--read-only") as (base, _, log):
        assert "no auth; read-only" in log.read_text()
        assert httpx.get(f"{base}/api/whoami").json() == {
            "name": None, "read_only": True, "auth": False
        }  # fmt: skip
        refused = httpx.patch(f"{base}/api/experiments/x", json={"name": "y"})
        assert refused.status_code == 403


@pytest.mark.parametrize(
    "options",
    [
        ["--host", "0.0.0.0", "--no-auth"],
        ["--host", "::", "--no-auth"],
        ["--host", "10.1.2.3", "--no-auth"],
        ["--host", "gpu-box.lab.example", "--no-auth"],
    ],
)
def test_expbook_server_refuses_no_auth_beyond_loopback(
    options: list[str], tmp_path: Path
) -> None:
    store = tmp_path / "s.db"
    expbook.open_store(store).close()
    result = run_cli("server", "--store", str(store), "--port", "0", *options, timeout=60)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: refusing --no-auth on {options[1]}: anyone who")


def test_expbook_server_refuses_another_server_as_its_store() -> None:
    result = run_cli("server", "--store", "https://expbook.lab.example", timeout=60)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "expbook server serves a database" in result.stderr


@pytest.mark.slow
def test_workers_are_processes_that_share_only_the_database(
    store_url: str, tmp_path: Path
) -> None:
    """--workers 2: a request reaches a second process when the first is stopped, and a token
    made after the start works in both."""
    psutil = pytest.importorskip("psutil")
    expbook.open_store(store_url).close()
    with team_server(store_url, "--workers", "2") as (base, process, _):
        port = int(base.rsplit(":", 1)[1])
        _, secret = expbook.open_store(store_url).create_token("late")
        workers = _workers(psutil, process.pid, 2)

        def served_by() -> int:
            """The pid of the worker that answers a request on a new connection."""
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("GET", "/api/whoami", headers=bearer(secret))
                answer = connection.getresponse()
                assert answer.status == 200 and b'"late"' in answer.read()
                mine = connection.sock.getsockname()[1]
                for worker in workers:
                    for held in worker.net_connections("tcp"):
                        if held.raddr and held.raddr.port == mine and held.laddr.port == port:
                            return worker.pid
            finally:
                connection.close()
            raise AssertionError("no worker holds the connection")

        first = served_by()
        os.kill(first, signal.SIGSTOP)
        try:
            second = served_by()
        finally:
            os.kill(first, signal.SIGCONT)
        assert {first, second} == {worker.pid for worker in workers}


def _workers(psutil, parent: int, count: int):  # type: ignore[no-untyped-def]
    """The server's worker processes (uvicorn's children that serve; not multiprocessing's
    resource tracker)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        children = psutil.Process(parent).children()
        serving = [c for c in children if "resource_tracker" not in " ".join(c.cmdline())]
        if len(serving) == count:
            return serving
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers, found {children}")


@pytest.mark.slow
def test_a_browser_asks_for_the_token_and_the_pages_work_with_it(tmp_path: Path) -> None:
    """Chromium on a real server: without credentials a page is 401 with the Basic challenge
    (the browser's password prompt); with any user name and the token as the password, the
    pages and their API calls work, and a read-only token gets the UI without edit controls."""
    from tests.browser import UiPage, chromium

    store = str(tmp_path / "s.db")
    with expbook.open_store(store) as opened:
        _, writer = opened.create_token("ana")
        _, reader = opened.create_token("dash", read_only=True)
        with expbook.Tracker(opened).start_run(name="seen-in-browser") as run:
            run.log({"loss": 0.5}, step=1)
    with team_server(store) as (base, _, _), chromium() as browser:
        from playwright.sync_api import Error as BrowserError

        anonymous = browser.new_context()
        answer = anonymous.request.get(base + "/")
        assert answer.status == 401
        assert answer.headers["www-authenticate"].startswith('Basic realm="expbook"')
        with pytest.raises(BrowserError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            anonymous.new_page().goto(base + "/")  # headless: the prompt, cancelled
        anonymous.close()
        for secret, read_only in ((writer, False), (reader, True)):
            context = browser.new_context(http_credentials={"username": "me", "password": secret})
            tab = UiPage(page=context.new_page(), base=base, shots=tmp_path)
            tab.page.on(
                "console", lambda m, tab=tab: m.type == "error" and tab.errors.append(m.text)
            )
            page = tab.open("/")
            assert "seen-in-browser" in page.inner_text("body")
            page = tab.open("/runs/1")
            assert ("read-only" in page.inner_text("#store-info")) is read_only
            assert page.locator("#add-note").first.is_visible() is not read_only
            tab.assert_no_errors()
            context.close()


@pytest.mark.slow
def test_expbook_server_artifacts_go_where_artifacts_says(tmp_path: Path) -> None:
    import hashlib

    store = str(tmp_path / "s.db")
    with expbook.open_store(store) as opened:
        _, secret = opened.create_token("ana")
    blobs = tmp_path / "team-artifacts"
    content = b"checkpoint bytes" * 1000
    digest = hashlib.sha256(content).hexdigest()
    with team_server(store, "--artifacts", str(blobs)) as (base, _, _):
        sent = httpx.put(f"{base}/api/blobs/{digest}", content=content, headers=bearer(secret))
        assert sent.status_code in (200, 201, 204), sent.text
    assert [path.read_bytes() for path in blobs.rglob(digest)] == [content]
    bad = run_cli("server", "--store", store, "--port", "0", "--artifacts", "nope://x/y")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr


@pytest.mark.slow
def test_under_auth_every_answer_is_documented(tmp_path: Path) -> None:
    """schemathesis over the whole API with a read-only token: the Guard's 403s for changes
    are answers the schema documents, and nothing fails the server."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    from tests.test_server_safety import few_runs

    with expbook.open_store(tmp_path / "s.db") as store:
        few_runs(store)
        _, secret = store.create_token("dash", read_only=True)
        headers = {"host": "127.0.0.1:5005", **bearer(secret)}
        app = create_app(store, auth=True)
        schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, headers=headers)
        problems = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 15  # whoami among them
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=10, deadline=None, database=None, derandomize=True,
                phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
            )  # fmt: skip
            def check(case) -> None:  # type: ignore[no-untyped-def]
                case.call_and_validate(headers=headers, excluded_checks=[
                    schemathesis.checks.positive_data_acceptance,
                ])  # fmt: skip

            try:
                check()
            except Unsatisfiable:
                continue
            except (Exception, BaseExceptionGroup) as exc:
                problems.append(f"{operation.label}: {exc}")
        assert not problems, "\n\n".join(problems)
