"""``BlobStore``: artifact contents by sha256, in any fsspec location.

A blob is the bytes of one file, at ``<location>/sha256/<first two hex digits>/<sha256>``; the
database says which runs hold it under which names (``artifacts`` table). Identical files are
stored once. A blob that exists is whole and its content hashes to its name:

- in a folder (or any filesystem of files), it is written to a temporary name and moved into
  place once its hash is known;
- in an object store (S3, GCS, Azure: ``OBJECT_STORES``), content whose hash is known in advance
  is written straight to its name as an upload that is committed only when the bytes sent hash
  to that name (an object appears whole when its upload completes, or never); a copy and a
  delete per blob are saved, which on S3 are a second pass over the bytes.

Big content is streamed in ``CHUNK`` pieces, never read whole; small files (up to ``SMALL``) are
read once and written in one request. Errors of the location (missing credentials, a missing
bucket, access denied, a server that does not answer) are ``StoreError`` in one line that names
the location.

fsspec is imported when a ``BlobStore`` is made, never by ``import expbook``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, Any

from expbook.errors import StoreError

CHUNK = 1 << 20
SMALL = 8 << 20
"""Files up to this size are read once into memory and stored in one write."""
BLOCK = 16 << 20
"""The piece an object store's upload or download sends at a time: with s3fs's default, 50 MiB,
an upload peaked at 170 MB of memory, with 16 MiB at 90 MB. Content of known size over 140 GiB
gets bigger pieces (S3 takes up to 10,000 per object)."""

OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl"})
"""Filesystems of objects: no folders (making one there creates a bucket, so none is made), and
a file opened with ``autocommit=False`` becomes visible only at ``commit()``."""


class ContentMismatchError(StoreError):
    """Content given for a sha256 does not hash to it (nothing was stored)."""


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The sha256 (hex) and size of a local file, read in 1 MiB chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    """An open file's content in ``CHUNK`` pieces."""
    return iter(lambda: handle.read(CHUNK), b"")


class Reading:
    """``read`` and ``get_file`` for any blob store, through its ``open``."""

    def open(self, sha256: str) -> IO[bytes]:
        raise NotImplementedError

    def read(self, sha256: str) -> bytes:
        with self.open(sha256) as handle:
            return handle.read()

    def get_file(self, sha256: str, target: str | os.PathLike[str]) -> None:
        """Copy the blob to the local file ``target`` (its folder is made)."""
        target = os.fspath(target)
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with self.open(sha256) as source, open(target, "wb") as out:
            while chunk := source.read(CHUNK):
                out.write(chunk)


class BlobStore(Reading):
    """Blobs under one fsspec URL (a local folder, ``memory://...``, ``s3://bucket/prefix``...).

    Raises (every method):
        StoreError: the location cannot be read or written (the message names it).
    """

    def __init__(self, url: str) -> None:
        import fsspec.core

        self.url = url
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ImportError, ValueError) as exc:  # an unknown protocol, a missing s3fs...
            raise StoreError(f"artifact location {url!r}: {exc}") from None
        self.root = root.rstrip("/") or "/"
        protocols = _protocols(self.fs)
        self._local = "file" in protocols
        self._objects = bool(OBJECT_STORES.intersection(protocols))
        self._errors = (OSError, *_client_errors(protocols))

    def path(self, sha256: str) -> str:
        return f"{self.root}/sha256/{sha256[:2]}/{sha256}"

    def exists(self, sha256: str) -> bool:
        return bool(self._call(self.fs.exists, self.path(sha256)))

    def size(self, sha256: str) -> int | None:
        """The blob's size in bytes; None when it is missing."""
        try:
            info = self._call(self.fs.info, self.path(sha256))
        except StoreError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):
                return None
            raise
        return int(info.get("size") or 0)

    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a local file; returns its (sha256, size). A blob already there is not written
        again (one read of the file to hash it). A file that changes while it is copied is
        stored as read, under that content's hash."""
        if os.path.getsize(source) <= SMALL:
            with open(source, "rb") as handle:
                return self.put_bytes(handle.read())
        sha256, size = file_digest(source)
        if self.exists(sha256):
            return sha256, size
        try:
            with open(source, "rb") as handle:
                return self.put_chunks(file_chunks(handle), sha256, size=size)
        except ContentMismatchError:  # changed since it was hashed: keep what is read now
            with open(source, "rb") as handle:
                return self.put_chunks(file_chunks(handle))

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        sha256 = hashlib.sha256(data).hexdigest()
        if self.exists(sha256):
            return sha256, len(data)
        if self._objects:  # one request, and the hash is of these very bytes
            self._call(self.fs.pipe_file, self.path(sha256), data)
            return sha256, len(data)
        return self._put_moved(iter([data]), sha256)

    def put_chunks(
        self, chunks: Iterable[bytes], sha256: str | None = None, *, size: int | None = None
    ) -> tuple[str, int]:
        """Store content given in pieces (read once, never held whole); returns its
        (sha256, size). With ``sha256``, the content must hash to it; ``size``, when known,
        lets an object store choose pieces big enough for it.

        Raises:
            ContentMismatchError: the content does not hash to ``sha256``; nothing is stored.
        """
        if sha256 is not None and self._objects:
            return self._put_committed(chunks, sha256, size or 0)
        return self._put_moved(chunks, sha256)

    def _put_committed(self, chunks: Iterable[bytes], sha256: str, size: int) -> tuple[str, int]:
        """Write straight to the blob's name; commit only if the content hashes to it."""
        block = max(BLOCK, -(-size // (9000 * CHUNK)) * CHUNK)
        out = self._call(self.fs.open, self.path(sha256), "wb", autocommit=False, block_size=block)
        try:
            digest, written = self._write(chunks, out)
            self._call(out.close)
            _check(sha256, digest)
            self._call(out.commit)
        except BaseException:
            with contextlib.suppress(Exception):
                out.discard()  # aborts the upload: no parts are left behind
            raise
        return sha256, written

    def _put_moved(self, chunks: Iterable[bytes], expected: str | None) -> tuple[str, int]:
        """Write to a temporary name, then move into place under the content's hash."""
        temporary = f"{self.root}/tmp/{uuid.uuid4().hex}"
        try:
            self._makedirs(f"{self.root}/tmp")
            with self._call(self.fs.open, temporary, "wb") as out:
                digest, size = self._write(chunks, out)
            if expected is not None:
                _check(expected, digest)
            target = self.path(digest)
            if self._call(self.fs.exists, target):
                self._call(self.fs.rm, temporary)
            else:
                self._makedirs(target.rsplit("/", 1)[0])
                if self._local:
                    os.replace(temporary, target)  # atomic: a reader sees all of it or nothing
                else:
                    self._call(self.fs.mv, temporary, target)
        except BaseException:
            with contextlib.suppress(Exception):
                if self.fs.exists(temporary):
                    self.fs.rm(temporary)
            raise
        return digest, size

    def _write(self, chunks: Iterable[bytes], out: IO[bytes]) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            self._call(out.write, chunk)
        return digest.hexdigest(), size

    def _makedirs(self, path: str) -> None:
        if not self._objects:
            self._call(self.fs.makedirs, path, exist_ok=True)

    def open(self, sha256: str) -> IO[bytes]:
        """The blob for reading (read in pieces from remote locations).

        Raises:
            StoreError: the blob is missing (the message names the hash and the location).
        """
        if not self.exists(sha256):
            self._check_bucket()
            raise StoreError(f"artifact blob {sha256[:12]}… is missing from {self.url}")
        handle = self._call(self.fs.open, self.path(sha256), "rb", block_size=BLOCK)
        return _Reading(handle, self._call)

    def list_blobs(self) -> Iterator[tuple[str, int, float | None]]:
        """Every blob as ``(sha256, size, modified)``; ``modified`` is Unix time, or None where
        the filesystem does not say."""
        top = f"{self.root}/sha256"
        if not self._call(self.fs.exists, top):
            self._check_bucket()
            return
        found = self._call(self.fs.find, top, detail=True)
        for path, info in sorted(found.items()):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                yield name, int(info.get("size") or 0), _modified(info)

    def delete(self, sha256: str) -> None:
        if self.exists(sha256):
            self._call(self.fs.rm, self.path(sha256))

    def check(self) -> None:
        """Fail now if the location cannot be reached: credentials missing or refused, a
        missing bucket, a server that does not answer. (A folder is made at the first write.)
        """
        self._call(self.fs.exists, f"{self.root}/sha256")
        self._check_bucket()

    def _check_bucket(self) -> None:
        """In an object store, fail when the bucket itself is missing (the reason nothing is
        found), rather than answer as if it were empty."""
        bucket = self.root.split("/", 1)[0]
        if self._objects and not self._call(self.fs.exists, bucket):
            raise StoreError(f"artifact location {self.url}: the bucket {bucket!r} does not exist")

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except self._errors as exc:
            raise StoreError(f"artifact location {self.url}: {self._problem(exc)}") from exc

    def _problem(self, exc: BaseException) -> str:
        """What went wrong, in one line that says what to do where it can."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        if type(exc).__name__ == "NoCredentialsError":
            return (
                "no credentials found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or "
                "AWS_PROFILE), see docs/artifacts.md"
            )
        if isinstance(exc, PermissionError):
            return f"access denied ({text}); check the credentials and their permissions there"
        if self._objects and isinstance(exc, FileNotFoundError) and "bucket" in text.lower():
            return f"the bucket {self.root.split('/', 1)[0]!r} does not exist"
        return text


class _Reading:
    """A blob open for reading whose errors are ``StoreError`` naming the location."""

    def __init__(self, handle: IO[bytes], call: Any) -> None:
        self._handle, self._call = handle, call

    def read(self, size: int = -1) -> bytes:
        return bytes(self._call(self._handle.read, size))

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _Reading:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check(expected: str, digest: str) -> None:
    if digest != expected:
        raise ContentMismatchError(
            f"the content sent for blob {expected} hashes to {digest}: it was not stored"
        )


def _client_errors(protocols: Iterable[str]) -> tuple[type[BaseException], ...]:
    """The errors of a filesystem's client library that are not OSError (botocore raises
    NoCredentialsError and EndpointConnectionError as they are)."""
    if {"s3", "s3a"}.intersection(protocols):
        from botocore.exceptions import BotoCoreError

        return (BotoCoreError,)
    return ()


def _modified(info: dict[str, Any]) -> float | None:
    """A file's modification time from fsspec's details: ``mtime`` (local), ``LastModified``
    (S3, a datetime), ``created``..."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
    return None


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
