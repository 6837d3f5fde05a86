"""``expbook server``'s API tokens and limits: in-process (the app with ``auth=True``) for each
rule, and against real ``expbook server`` processes on loopback for what only a real server
shows (the token cache across processes, several workers, the command's refusals)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi import Request

import expbook
from expbook.server import create_app, security
from expbook.server.security import MAX_BODY_BYTES, Guard
from expbook.store import Store

LOCAL = "http://127.0.0.1:5005"


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
            ("POST", "/api/test/searching-for-trouble/../upload", {}),
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
