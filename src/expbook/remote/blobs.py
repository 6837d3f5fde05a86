"""``HttpBlobStore``: artifact contents through an expbook server's blob proxy (``/api/blobs``).

What ``HttpStore.blobs()`` gives: the methods and signatures of ``expbook.store.blobs.BlobStore``,
so ``log_artifact``, ``expbook artifact put/get`` and the report work against a server as
against a local store. Uploads and downloads are streamed in ``CHUNK`` pieces (a checkpoint is
never read whole into memory); an upload is skipped when ``HEAD`` says the server has the blob.
The server checks that the content hashes to its name; a file that changes while it is sent is
copied aside (hashed on the way) and that copy is sent, as ``BlobStore`` keeps a file as read.

Listing and deleting blobs are refused: collecting garbage needs the store's database and the
location together, so ``expbook artifact gc`` runs where the server's store is.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, Any

from expbook.errors import StoreError, StoreUnavailableError
from expbook.store.blobs import (
    CHUNK,
    ContentMismatchError,
    Reading,
    file_chunks,
    file_digest,
)


class HttpBlobStore(Reading):
    """Blobs on the server at ``base_url`` (``https://host:port``); ``headers`` carry the
    Authorization.

    Raises (every method):
        StoreUnavailableError: the server cannot be reached now, or answers 5xx or 429.
        StoreError: it refuses the request (the message is its own, with the status).
    """

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/api/blobs"
        self._client = httpx.Client(
            headers=dict(headers), timeout=httpx.Timeout(300.0, connect=10.0)
        )

    def path(self, sha256: str) -> str:
        return f"{self.url}/{sha256}"

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def size(self, sha256: str) -> int | None:
        """The blob's size in bytes; None when the server does not have it."""
        response = self._request("HEAD", sha256, missing_ok=True)
        if response.status_code == 404:
            return None
        return int(response.headers.get("content-length", 0))

    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Send a local file; returns its (sha256, size). Not sent when the server has it."""
        sha256, size = file_digest(source)
        if self.exists(sha256):
            return sha256, size
        try:
            with open(source, "rb") as handle:
                self._put(sha256, _exactly(handle, size), size)
            return sha256, size
        except (ContentMismatchError, _Changed):  # changed since it was hashed
            with open(source, "rb") as handle:
                return self.put_chunks(file_chunks(handle))

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.exists(sha256):
            self._put(sha256, data, len(data))
        return sha256, len(data)

    def put_chunks(
        self, chunks: Iterable[bytes], sha256: str | None = None, *, size: int | None = None
    ) -> tuple[str, int]:
        """Send content given in pieces; returns its (sha256, size). Without ``sha256`` (the
        name the server needs first), the pieces are copied to a temporary file while hashed.

        Raises:
            ContentMismatchError: the content does not hash to ``sha256``; nothing is stored.
        """
        if sha256 is not None:
            return sha256, self._put(sha256, chunks, size)
        with tempfile.TemporaryFile(prefix="expbook-blob-") as spool:
            digest, total = hashlib.sha256(), 0
            for chunk in chunks:
                digest.update(chunk)
                total += len(chunk)
                spool.write(chunk)
            spool.seek(0)
            sha256 = digest.hexdigest()
            if not self.exists(sha256):
                self._put(sha256, file_chunks(spool), total)
            return sha256, total

    def _put(self, sha256: str, content: bytes | Iterable[bytes], size: int | None) -> int:
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        response = self._request("PUT", sha256, content=content, headers=headers)
        return int(response.json().get("size", size or 0))

    def open(self, sha256: str) -> IO[bytes]:
        """The blob for reading, streamed from the server.

        Raises:
            StoreError: the blob is missing (the message names the hash and the server).
        """
        response = self._request("GET", sha256, stream=True)
        return _Download(response, self.url)  # type: ignore[return-value]

    def list_blobs(self) -> Iterator[tuple[str, int, float | None]]:
        raise StoreError(self._server_side("listing"))

    def delete(self, sha256: str) -> None:
        raise StoreError(self._server_side("deleting"))

    def close(self) -> None:
        self._client.close()

    def _server_side(self, what: str) -> str:
        return (
            f"{what} artifact blobs is done by the server's store, not through {self.base_url}: "
            "run 'expbook artifact gc' with --store set to the server's database"
        )

    def _request(
        self, method: str, sha256: str, *, missing_ok: bool = False, stream: bool = False,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        import httpx

        request = self._client.build_request(method, self.path(sha256), **kwargs)
        try:
            response = self._client.send(request, stream=stream)
        except _Changed:
            raise
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(
                f"artifact server {self.base_url}: {' '.join(str(exc).split()) or exc!r}"
            ) from None
        if response.status_code < 400 or (missing_ok and response.status_code == 404):
            return response
        if stream:
            response.read()
            response.close()
        raise _failure(response, sha256, self.url)


class _Changed(Exception):
    """The file became shorter than when it was hashed, while it was being sent."""


def _exactly(handle: IO[bytes], size: int) -> Iterator[bytes]:
    """``size`` bytes of the file in ``CHUNK`` pieces (what its Content-Length promised)."""
    left = size
    while left > 0:
        chunk = handle.read(min(CHUNK, left))
        if not chunk:
            raise _Changed
        left -= len(chunk)
        yield chunk


_UNSAID = {
    401: "no valid API token (set EXPBOOK_TOKEN, or run 'expbook login URL')",
    403: "the API token may not do this (a read-only token?)",
}
"""What a status means when the answer has no body to say it (the answer to HEAD)."""


def _failure(response: Any, sha256: str, url: str) -> StoreError:
    """The error for an answer of 400 and over, with the server's message."""
    status = response.status_code
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    message = " ".join(str(detail or _UNSAID.get(status) or response.reason_phrase).split())
    if status == 404:
        return StoreError(f"artifact blob {sha256[:12]}… is missing from {url}")
    if status == 400 and "hashes to" in message:
        return ContentMismatchError(message)
    kind = StoreUnavailableError if status >= 500 or status == 429 else StoreError
    return kind(f"artifact server {url} answered {status}: {message}")


class _Download:
    """A blob being received: ``read`` in pieces as they arrive."""

    def __init__(self, response: Any, url: str) -> None:
        self._response = response
        self._url = url
        self._pieces = response.iter_bytes(CHUNK)
        self._buffer = bytearray()

    def read(self, size: int = -1) -> bytes:
        import httpx

        try:
            while size < 0 or len(self._buffer) < size:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._buffer += piece
        except httpx.HTTPError as exc:
            raise StoreUnavailableError(f"artifact server {self._url}: {exc}") from None
        taken = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:taken])
        del self._buffer[:taken]
        return data

    def close(self) -> None:
        self._response.close()

    def __enter__(self) -> _Download:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
