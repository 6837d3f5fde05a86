"""``BlobStore``: artifact contents by sha256, in any fsspec location.

A blob is the bytes of one file, at ``<location>/sha256/<first two hex digits>/<sha256>``; the
database says which runs hold it under which names (``artifacts`` table). Identical files are
stored once. A blob is written to a temporary name and moved into place, so a blob that exists
is whole; its name is the hash of what was copied (a file that changes while it is copied is
stored as the bytes read, under their own hash), so a blob's content always matches its name.

fsspec is imported when a ``BlobStore`` is made, never by ``import expbook``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from typing import IO, Any

from expbook.errors import StoreError

CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """The sha256 (hex) and size of a local file, read in 1 MiB chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


class BlobStore:
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
        self._local = "file" in _protocols(self.fs)

    def path(self, sha256: str) -> str:
        return f"{self.root}/sha256/{sha256[:2]}/{sha256}"

    def exists(self, sha256: str) -> bool:
        return bool(self._call(self.fs.exists, self.path(sha256)))

    def put_file(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Store a local file; returns its (sha256, size). A blob already there is not written
        again (one read of the file to hash it)."""
        sha256, size = file_digest(source)
        if self.exists(sha256):
            return sha256, size
        with open(source, "rb") as handle:
            return self._copy_in(iter(lambda: handle.read(CHUNK), b""))

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        sha256 = hashlib.sha256(data).hexdigest()
        if not self.exists(sha256):
            self._copy_in(iter([data]))
        return sha256, len(data)

    def _copy_in(self, chunks: Iterator[bytes]) -> tuple[str, int]:
        temporary = f"{self.root}/tmp/{uuid.uuid4().hex}"
        digest, size = hashlib.sha256(), 0
        try:
            self._call(self.fs.makedirs, f"{self.root}/tmp", exist_ok=True)
            with self._call(self.fs.open, temporary, "wb") as out:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            sha256 = digest.hexdigest()
            target = self.path(sha256)
            if self._call(self.fs.exists, target):
                self._call(self.fs.rm, temporary)
            else:
                self._call(self.fs.makedirs, target.rsplit("/", 1)[0], exist_ok=True)
                if self._local:
                    os.replace(temporary, target)  # atomic: a reader sees all of it or nothing
                else:
                    self._call(self.fs.mv, temporary, target)
        except BaseException:
            if self._call(self.fs.exists, temporary):
                self._call(self.fs.rm, temporary)
            raise
        return sha256, size

    def open(self, sha256: str) -> IO[bytes]:
        """The blob for reading.

        Raises:
            StoreError: the blob is missing (the message names the hash and the location).
        """
        if not self.exists(sha256):
            raise StoreError(f"artifact blob {sha256[:12]}… is missing from {self.url}")
        return self._call(self.fs.open, self.path(sha256), "rb")

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

    def list_blobs(self) -> Iterator[tuple[str, int, float | None]]:
        """Every blob as ``(sha256, size, modified)``; ``modified`` is Unix time, or None where
        the filesystem does not say."""
        top = f"{self.root}/sha256"
        if not self._call(self.fs.exists, top):
            return
        found = self._call(self.fs.find, top, detail=True)
        for path, info in sorted(found.items()):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if len(name) == 64 and all(c in "0123456789abcdef" for c in name):
                yield name, int(info.get("size") or 0), _modified(info)

    def delete(self, sha256: str) -> None:
        if self.exists(sha256):
            self._call(self.fs.rm, self.path(sha256))

    def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except OSError as exc:
            raise StoreError(f"artifact location {self.url}: {exc}") from exc


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
