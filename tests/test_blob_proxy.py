"""The server's blob proxy (``/api/blobs/{sha256}``) and its client, ``HttpBlobStore``.

The routes are tested in-process (TestClient); the client against a real uvicorn server process
(``create_app`` with API tokens on a SQLite store) whose artifacts go to a folder or to a local
S3 server (moto), as ``expbook server --artifacts`` sets them.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import expbook
from expbook.errors import StoreError, StoreUnavailableError
from expbook.remote.blobs import HttpBlobStore
from expbook.server import security
from expbook.server.app import create_app
from expbook.store.base import ARTIFACTS_SETTING
from expbook.store.blobs import ContentMismatchError
from tests.helpers import run_cli
from tests.serverproc import free_port
from tests.test_artifacts import Location

MiB = 1 << 20


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the routes, in-process ---------------------------------------------------------------------


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[tuple[TestClient, Location]]:
    store = expbook.open_store(tmp_path / "expbook.db")
    store.use_artifacts(str(tmp_path / "blobs"))
    with TestClient(create_app(store), base_url="http://127.0.0.1") as client:
        yield client, Location(str(tmp_path / "blobs"))
    store.close()


def test_put_get_and_head_a_blob_bigger_than_the_body_limit(
    proxy: tuple[TestClient, Location],
) -> None:
    client, location = proxy
    data = os.urandom(3 * MiB)  # over the 1 MiB of other requests: uploads are streamed
    sha = _sha(data)
    assert client.head(f"/api/blobs/{sha}").status_code == 404
    put = client.put(f"/api/blobs/{sha}", content=data)
    assert put.status_code == 201, put.text
    assert put.json() == {"sha256": sha, "size": len(data), "created": True}
    assert location.blobs() == [sha]
    head = client.head(f"/api/blobs/{sha}")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
    got = client.get(f"/api/blobs/{sha}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-length"] == str(len(data)) and got.headers["etag"] == f'"{sha}"'
    again = client.put(f"/api/blobs/{sha}", content=data)
    assert again.status_code == 200 and again.json()["created"] is False


def test_content_that_does_not_hash_to_its_name_is_refused(
    proxy: tuple[TestClient, Location],
) -> None:
    client, location = proxy
    claimed = _sha(b"what the client said")
    put = client.put(f"/api/blobs/{claimed}", content=b"what it sent")
    assert put.status_code == 400
    assert put.json()["detail"] == (
        f"the content sent for blob {claimed} hashes to {_sha(b'what it sent')}: it was not stored"
    )
    assert location.blobs() == [] and location.leftovers() == []
    client.put(f"/api/blobs/{_sha(b'x')}", content=b"x")
    assert client.put(f"/api/blobs/{_sha(b'x')}", content=b"y").status_code == 400  # there too


def test_bad_names_missing_blobs_and_cut_off_uploads(
    proxy: tuple[TestClient, Location], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, location = proxy
    assert client.put("/api/blobs/ABC", content=b"x").status_code == 422
    assert client.get("/api/blobs/" + "g" * 64).status_code == 422
    missing = client.get("/api/blobs/" + "0" * 64)
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"blob {'0' * 64} is not stored"
    monkeypatch.setitem(security.STREAMED, "/api/blobs/", 2 * MiB)
    big = os.urandom(3 * MiB)
    chunks = (big[i : i + MiB] for i in range(0, len(big), MiB))  # no length: cut off midway
    over = client.put(f"/api/blobs/{_sha(big)}", content=chunks)
    assert over.status_code == 413, over.text
    assert location.blobs() == [] and location.leftovers() == []


def test_the_upload_is_described_in_the_openapi_document(
    proxy: tuple[TestClient, Location],
) -> None:
    client, _ = proxy
    put = client.get("/api/openapi.json").json()["paths"]["/api/blobs/{sha256}"]["put"]
    assert "application/octet-stream" in put["requestBody"]["content"]


# --- HttpBlobStore against a real server process -------------------------------------------------

SERVE = """
import sys, uvicorn, expbook
from expbook.server.app import create_app
store = expbook.open_store(sys.argv[1])
store.use_artifacts(sys.argv[2])
uvicorn.run(create_app(store, auth=True), host="127.0.0.1", port=int(sys.argv[3]),
            log_level="warning")
"""


class BlobServer:
    """uvicorn with ``create_app(store, auth=True)``, its artifacts at ``location``; tokens
    ``writer`` and ``reader`` (read-only)."""

    def __init__(self, tmp_path: Path, location: str) -> None:
        self.store_path = str(tmp_path / "server.db")
        with expbook.open_store(self.store_path) as store:
            self.writer = store.create_token("writer")[1]
            self.reader = store.create_token("reader", read_only=True)[1]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "server.log"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, self.store_path, location, str(self.port)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                httpx.get(f"{self.url}/api/openapi.json", timeout=1.0)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not start: {self.log.read_text()}")

    def blobs(self, token: str | None = None) -> HttpBlobStore:
        return HttpBlobStore(self.url, {"Authorization": f"Bearer {token or self.writer}"})

    def peak_memory(self) -> int:
        """The server process's peak resident memory so far (bytes)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(params=["folder", "s3"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[BlobServer, Location]]:
    """A server whose artifact location (``use_artifacts``) is a folder or an S3 bucket."""
    if request.param == "s3":
        url = str(request.getfixturevalue("s3_url"))  # the server inherits the S3 variables
    else:
        url = str(tmp_path / "blobs")
    server = BlobServer(tmp_path, url)
    yield server, Location(url)
    server.stop()


def _write(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for index in range(mib):
            chunk = index.to_bytes(4, "big") * (MiB // 4) + b"x"  # no two files alike
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def test_a_big_file_through_the_proxy_is_streamed_both_ways(
    served: tuple[BlobServer, Location], tmp_path: Path
) -> None:
    server, location = served
    blobs = server.blobs()
    warm = tmp_path / "warm.pt"
    _write(warm, 32)  # the server's buffers and its client of the location (s3fs) are made
    blobs.get_file(blobs.put_file(warm)[0], tmp_path / "warm-back.pt")
    source = tmp_path / "model.pt"
    sha = _write(source, 128)
    size = source.stat().st_size
    before = server.peak_memory()
    tracemalloc.start()
    try:
        assert blobs.put_file(source) == (sha, size)
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        blobs.get_file(sha, tmp_path / "back.pt")
        get_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    grown = server.peak_memory() - before
    assert put_peak < 16 * MiB and get_peak < 16 * MiB, (put_peak / MiB, get_peak / MiB)
    # the server's memory is bounded by the pieces in flight, not by the file: its peak grew by
    # 55 + 30 MiB for a first 64 MiB file on S3, then by 0-16 MiB for 160 and 256 MiB ones
    assert grown < 48 * MiB, f"the server grew by {grown / MiB:.0f} MiB for a 128 MiB file"
    assert sorted(location.blobs()) == sorted([sha, _sha(warm.read_bytes())])
    assert location.leftovers() == []
    assert _sha((tmp_path / "back.pt").read_bytes()) == sha
    assert blobs.size(sha) == size and blobs.exists(sha) and not blobs.exists("0" * 64)
    assert blobs.put_bytes(b"small") == (_sha(b"small"), 5)
    assert blobs.read(_sha(b"small")) == b"small"
    with blobs.open(_sha(b"small")) as handle:
        assert handle.read(2) == b"sm" and handle.read() == b"all"


def test_content_known_to_the_server_is_not_sent_again(
    served: tuple[BlobServer, Location], tmp_path: Path
) -> None:
    server, _ = served
    (tmp_path / "known.pt").write_bytes(b"known")
    (tmp_path / "new.pt").write_bytes(b"new")
    server.blobs().put_file(tmp_path / "known.pt")
    reader = server.blobs(server.reader)  # may not PUT: only HEAD lets it "upload"
    assert reader.put_file(tmp_path / "known.pt") == (_sha(b"known"), 5)
    with pytest.raises(StoreError, match=r"answered 403: the API token 'reader' is read-only"):
        reader.put_file(tmp_path / "new.pt")


def test_the_clients_faults_are_one_line_errors(
    served: tuple[BlobServer, Location], tmp_path: Path
) -> None:
    server, location = served
    blobs = server.blobs()
    with pytest.raises(ContentMismatchError, match="hashes to"):
        blobs.put_chunks([b"a", b"b"], _sha(b"other"))
    assert blobs.put_chunks([b"a", b"b"]) == (_sha(b"ab"), 2)  # hashed on the way, then sent
    assert location.blobs() == [_sha(b"ab")]
    with pytest.raises(StoreError, match=f"blob {'0' * 12}… is missing from {server.url}"):
        blobs.read("0" * 64)
    with pytest.raises(StoreError, match="run 'expbook artifact gc' with --store"):
        list(blobs.list_blobs())
    with pytest.raises(StoreError, match="run 'expbook artifact gc' with --store"):
        blobs.delete(_sha(b"ab"))
    with pytest.raises(StoreError, match="answered 401: no valid API token"):
        server.blobs("ebk_wrong").exists(_sha(b"ab"))
    server.stop()
    with pytest.raises(StoreUnavailableError, match=f"artifact server {server.url}: "):
        blobs.put_bytes(b"while it is down")


def test_artifacts_logged_through_the_server_land_in_its_location(
    served: tuple[BlobServer, Location], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, location = served
    monkeypatch.setenv("EXPBOOK_TOKEN", server.writer)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_bytes(b"png")
    remote = expbook.open_store(server.url)
    try:
        with expbook.start_run(name="remote", store=remote) as run:
            run.log_artifact(tmp_path / "plots")
        assert location.blobs() == [_sha(b"png")]
        back = expbook.artifacts.fetch(remote, run.id, "plots/loss.png", tmp_path / "back.png")
        assert Path(back[0]).read_bytes() == b"png"
    finally:
        remote.close()
    with expbook.open_store(server.store_path) as store:
        [kept] = store.list_artifacts(run.id)
        assert (kept.name, kept.sha256) == ("plots/loss.png", _sha(b"png"))


def test_the_cli_on_a_client_of_the_server(tmp_path: Path) -> None:
    server = BlobServer(tmp_path, str(tmp_path / "blobs"))
    try:
        env = {"EXPBOOK_TOKEN": server.writer}
        shown = run_cli("artifact", "location", store=server.url, env=env)
        assert shown.stdout.strip() == f"{server.url}/api/blobs (server)", shown.stderr
        gc = run_cli("artifact", "gc", store=server.url, env=env)
        assert gc.returncode == 1 and gc.stderr.count("\n") == 1
        assert "run 'expbook artifact gc' with --store set to the server's database" in gc.stderr
        # set for the server's store, whose keys this client need not have (not checked here)
        set_ = run_cli("artifact", "location", "s3://team-bucket/x", store=server.url, env=env)
        assert set_.returncode == 0, set_.stderr
    finally:
        server.stop()
    with expbook.open_store(server.store_path) as store:
        assert store.get_setting(ARTIFACTS_SETTING) == "s3://team-bucket/x"
