"""Uploading a 100 MB artifact through the server's blob proxy vs straight to S3 (moto) or a
folder (docs/design.md, "Artifacts through the team server").

    python benchmarks/bench_blob_proxy.py [MB] [repeats]

Starts a local S3 server (moto_server, its own process) and an expbook server (uvicorn, its own
process, create_app with API tokens on a SQLite store) whose artifacts go to a bucket or to a
folder. Each repeat uses new content (no upload is skipped). Times the client's whole
``put_file`` (hash pass + upload) and ``get_file``:

- direct:    BlobStore(location) in this process (what a client with the location's
             credentials does; for S3, a multipart upload straight to the bucket)
- presigned: HEAD + one PUT of the file to a pre-signed S3 URL with httpx (what the client would
             do if the server handed out URLs instead of proxying)
- proxy:     HttpBlobStore(server) (HEAD, then one streamed PUT to the server, which writes to
             the location while hashing)
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from tests.s3server import S3Server
from tests.test_blob_proxy import BlobServer

from expbook.remote.blobs import HttpBlobStore
from expbook.store.blobs import BlobStore, file_digest

MB = int(sys.argv[1]) if len(sys.argv) > 1 else 100
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def fresh_file(folder: Path) -> Path:
    path = folder / f"model-{time.monotonic_ns()}.pt"
    with open(path, "wb") as out:
        for _ in range(MB):
            out.write(os.urandom(1 << 20))
    return path


def timed(action) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def presigned_put(s3: S3Server, bucket: str, path: Path) -> None:
    """What a client handed a pre-signed URL would do: hash, ask, send the file in one PUT."""
    sha256, size = file_digest(path)
    key = f"presigned/sha256/{sha256[:2]}/{sha256}"
    client = s3.client()
    url = client.generate_presigned_url(  # type: ignore[attr-defined]
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=600
    )
    with open(path, "rb") as handle:
        chunks = iter(lambda: handle.read(1 << 20), b"")
        answer = httpx.put(url, content=chunks, headers={"Content-Length": str(size)},
                           timeout=300)  # fmt: skip
    answer.raise_for_status()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-blob-proxy-"))
    s3 = S3Server()
    os.environ.update(s3.env)
    bucket = s3.create_bucket()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        for kind, location in (("s3", f"s3://{bucket}/expbook"), ("folder", str(work / "blobs"))):
            server_dir = work / f"server-{kind}"
            server_dir.mkdir()
            server = BlobServer(server_dir, location)
            try:
                direct, proxy = BlobStore(location), server.blobs()
                proxy.put_bytes(b"warm")  # the server's client of the location is made
                direct.exists("0" * 64)
                ways: dict[str, object] = {"direct": direct, "proxy": proxy}
                if kind == "s3":
                    ways["presigned"] = None
                for _ in range(REPEATS):
                    for way, blobs in ways.items():
                        path = fresh_file(work)
                        if blobs is None:
                            took = timed(lambda: presigned_put(s3, bucket, path))  # noqa: B023
                            results.setdefault(f"{kind} {way}", {}).setdefault("put", []).append(
                                took
                            )
                            path.unlink()
                            continue
                        assert isinstance(blobs, BlobStore | HttpBlobStore)
                        put = timed(lambda: blobs.put_file(path))  # noqa: B023
                        sha256 = file_digest(path)[0]
                        back = work / "back.pt"
                        get = timed(lambda: blobs.get_file(sha256, back))  # noqa: B023
                        entry = results.setdefault(f"{kind} {way}", {})
                        entry.setdefault("put", []).append(put)
                        entry.setdefault("get", []).append(get)
                        path.unlink()
                        back.unlink()
            finally:
                server.stop()
    finally:
        s3.close()
    hash_only = fresh_file(work)
    hashing = statistics.median(timed(lambda: file_digest(hash_only)) for _ in range(3))
    print(f"{MB} MB, {REPEATS} repeats, median seconds (MB/s); sha256 pass alone "
          f"{hashing:.2f} s ({MB / hashing:.0f} MB/s)")  # fmt: skip
    summary = {}
    for name, entry in results.items():
        shown = []
        for what, times in entry.items():
            median = statistics.median(times)
            shown.append(f"{what} {median:.2f} s ({MB / median:.0f} MB/s)")
            summary[f"{name} {what}"] = [round(t, 3) for t in times]
        print(f"  {name:16} " + ", ".join(shown))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
