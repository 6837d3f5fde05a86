"""Artifacts on S3 through s3fs, against a real local S3 server (moto, tests/s3server.py):
big files streamed in pieces, uploads committed only when the content matches its name, the
endpoint variables a user sets for MinIO, and one-line errors for missing credentials, a missing
bucket and access denied. (The location-generic tests of test_artifacts.py run on S3 too.)"""

from __future__ import annotations

import hashlib
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import expbook
from expbook.errors import StoreError
from expbook.store.base import ARTIFACTS_SETTING
from expbook.store.blobs import BlobStore, ContentMismatchError
from tests.helpers import run_cli
from tests.s3server import S3Server

MiB = 1 << 20


def _big_file(path: Path, mib: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for index in range(mib):
            chunk = index.to_bytes(4, "big") * (MiB // 4)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def test_a_big_file_goes_up_and_down_in_pieces(s3_url: str, tmp_path: Path) -> None:
    source = tmp_path / "model.pt"
    sha256 = _big_file(source, 128)
    blobs = BlobStore(s3_url)
    blobs.exists(sha256)  # the client is made before measuring
    tracemalloc.start()
    try:
        assert blobs.put_file(source) == (sha256, 128 * MiB)
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        blobs.get_file(sha256, tmp_path / "back.pt")
        get_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert put_peak < 64 * MiB and get_peak < 64 * MiB, (put_peak / MiB, get_peak / MiB)
    assert hashlib.sha256((tmp_path / "back.pt").read_bytes()).hexdigest() == sha256
    assert blobs.size(sha256) == 128 * MiB and blobs.size("0" * 64) is None
    assert [(sha, size) for sha, size, _ in blobs.list_blobs()] == [(sha256, 128 * MiB)]
    assert blobs.put_file(source) == (sha256, 128 * MiB)  # there already: hashed, not sent


def test_content_that_does_not_match_its_name_is_never_stored(
    s3_server: S3Server, s3_url: str
) -> None:
    blobs = BlobStore(s3_url)
    wrong = "0" * 64
    pieces = (bytes([n]) * MiB for n in range(40))  # 40 MiB: parts are sent before the end
    with pytest.raises(ContentMismatchError, match=f"content sent for blob {wrong} hashes to"):
        blobs.put_chunks(pieces, wrong, size=40 * MiB)
    assert not blobs.exists(wrong) and list(blobs.list_blobs()) == []
    bucket = s3_url.removeprefix("s3://").split("/")[0]
    assert s3_server.pending_uploads(bucket) == []  # the multipart upload was aborted
    right = hashlib.sha256(b"abc" * 10).hexdigest()
    assert blobs.put_chunks([b"abc"] * 10, right) == (right, 30)
    assert blobs.read(right) == b"abc" * 10


def test_use_artifacts_wins_for_this_process(s3_url: str, tmp_path: Path) -> None:
    store = expbook.open_store(tmp_path / "expbook.db")
    store.set_setting(ARTIFACTS_SETTING, str(tmp_path / "team"))
    store.use_artifacts(s3_url)
    assert store.artifact_location() == (s3_url, "server --artifacts")
    (tmp_path / "a.txt").write_text("a")
    with expbook.Tracker(store).start_run(name="a") as run:
        [kept] = run.log_artifact(tmp_path / "a.txt")
    assert BlobStore(s3_url).read(kept.sha256) == b"a"
    assert not (tmp_path / "team").exists()
    store.use_artifacts(None)
    assert store.artifact_location() == (str(tmp_path / "team"), "store setting")
    with pytest.raises(StoreError, match="nosuchprotocol"):
        store.use_artifacts("nosuchprotocol://x")


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                                      "FSSPEC_S3_ENDPOINT_URL"])  # fmt: skip
def test_the_endpoint_variables_a_user_sets_for_minio(
    s3_server: S3Server, s3_url: str, tmp_path: Path, variable: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    store = str(tmp_path / "expbook.db")
    with expbook.open_store(store) as opened:
        opened.set_setting(ARTIFACTS_SETTING, s3_url)
        with expbook.Tracker(opened).start_run(name="a"):
            pass
    _clear_s3_variables(monkeypatch)
    env = {**s3_server.env, variable: s3_server.endpoint}
    if variable != "AWS_ENDPOINT_URL":
        del env["AWS_ENDPOINT_URL"]
    (tmp_path / "notes.txt").write_text("hello")
    put = run_cli("artifact", "put", "1", str(tmp_path / "notes.txt"), store=store, env=env)
    assert put.returncode == 0, put.stderr
    got = run_cli("artifact", "get", "1", "notes.txt", "-o", str(tmp_path / "back.txt"),
                  store=store, env=env)  # fmt: skip
    assert got.returncode == 0 and (tmp_path / "back.txt").read_text() == "hello"


@pytest.fixture(scope="module")
def locked_server() -> Iterator[tuple[S3Server, dict[str, str]]]:
    """An S3 server that checks every request's key (moto's IAM), with a bucket 'locked' and
    the key of a user allowed only to list it."""
    server = S3Server(unauthenticated=4)
    server.client().create_bucket(Bucket="locked")  # type: ignore[attr-defined]
    iam = server.client("iam")
    iam.create_user(UserName="lister")  # type: ignore[attr-defined]
    key = iam.create_access_key(UserName="lister")["AccessKey"]  # type: ignore[attr-defined]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": "*"}]}  # fmt: skip
    iam.put_user_policy(  # type: ignore[attr-defined]
        UserName="lister", PolicyName="list-only", PolicyDocument=json.dumps(policy)
    )
    yield server, {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                   "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}  # fmt: skip
    server.close()


def test_faults_of_the_location_are_one_line_errors(
    s3_server: S3Server,
    locked_server: tuple[S3Server, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = str(tmp_path / "expbook.db")
    with expbook.open_store(store) as opened, expbook.Tracker(opened).start_run(name="a"):
        pass
    (tmp_path / "model.pt").write_bytes(b"weights")
    locked, lister = locked_server
    _clear_s3_variables(monkeypatch)
    no_credentials = {**s3_server.env,
                      "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                      "AWS_CONFIG_FILE": str(tmp_path / "none")}  # fmt: skip
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        del no_credentials[variable]
    cases = {
        "no credentials": ("s3://any-bucket/x", no_credentials, "no credentials found; set "
                           "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"),
        "no bucket": ("s3://no-such-bucket/x", s3_server.env,
                      "the bucket 'no-such-bucket' does not exist"),
        "unknown key": ("s3://locked/x", locked.env, "access denied"),
        "not allowed": ("s3://locked/x", {**locked.env, **lister}, "access denied"),
    }  # fmt: skip
    for what, (url, env, message) in cases.items():
        with expbook.open_store(store) as opened:
            opened.set_setting(ARTIFACTS_SETTING, url)
        put = run_cli("artifact", "put", "1", str(tmp_path / "model.pt"), store=store, env=env)
        assert put.returncode == 1, (what, put.stdout)
        assert put.stderr.count("\n") == 1, (what, put.stderr)
        assert f"artifact location {url}: {message}" in put.stderr, (what, put.stderr)
        refused = run_cli("artifact", "location", url, store=store, env=env)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, (what, refused)
        assert message in refused.stderr, (what, refused.stderr)


def _clear_s3_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS or fsspec variable of the developer's (or of a fixture) reaches the CLI."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "FSSPEC_")):
            monkeypatch.delenv(name)
