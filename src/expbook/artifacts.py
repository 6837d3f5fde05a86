"""Artifacts: files a run keeps (checkpoints, plots, predictions), see docs/artifacts.md.

The database holds each artifact's name, size and sha256 (``artifacts`` table, written through
``WriteBatch.artifacts`` like everything else of a run); the bytes are blobs in the store's
artifact location (``expbook.store.blobs``), once per distinct content. This module turns local
files and folders into artifacts and back:

- names are paths inside the run (``checkpoints/best.pt``): relative, ``/``-separated, without
  ``..``, ``.`` or empty parts, so no name can point outside the run when it is fetched;
- a folder becomes one artifact per file under it, ``NAME/<path inside the folder>``;
- fetching a name gives that file, or every artifact under ``NAME/`` (a logged folder).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from expbook.errors import ArtifactNotFoundError, InvalidValueError
from expbook.model import ArtifactRecord
from expbook.store.base import Store, WriteBatch
from expbook.validation import check_name, shorten

MAX_NAME_LENGTH = 1024
_HINT = "a path inside the run, such as 'checkpoints/best.pt'"


def check_artifact_name(name: object) -> str:
    """Return ``name`` if it is a valid artifact name, else raise InvalidValueError (one line
    naming the bad name)."""
    text = check_name(name, "artifact name", _HINT)
    assert isinstance(name, str)
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidValueError(f"artifact name {shorten(name)} is longer than 1024 characters")
    if text.startswith(("/", "~")) or (len(text) > 1 and text[1] == ":"):
        raise InvalidValueError(f"artifact name {name!r} is absolute: use {_HINT}")
    if "\\" in text:
        raise InvalidValueError(f"artifact name {name!r} has a backslash: separate parts with '/'")
    parts = text.split("/")
    if ".." in parts:
        raise InvalidValueError(f"artifact name {name!r} escapes its run ('..'): use {_HINT}")
    if any(part in ("", ".") or part != part.strip() for part in parts):
        raise InvalidValueError(
            f"artifact name {name!r} has an empty, '.' or space-padded part: use {_HINT}"
        )
    return text


def local_files(path: str | os.PathLike[str], name: str | None = None) -> list[tuple[str, str]]:
    """(artifact name, local file) for a file, or for every file under a folder (names
    ``NAME/<path inside it>``); ``name`` defaults to the file's or folder's own name.

    Raises:
        InvalidValueError: the path does not exist or holds no file, or the name is invalid.
    """
    source = os.fspath(path)
    if not os.path.exists(source):
        raise InvalidValueError(f"cannot keep artifact {source!r}: no such file or folder")
    base = check_artifact_name(os.path.basename(os.path.abspath(source)) if name is None else name)
    if not os.path.isdir(source):
        return [(base, source)]
    found = []
    for folder, folders, names in os.walk(source):
        folders.sort()
        for file in sorted(names):
            full = os.path.join(folder, file)
            inner = os.path.relpath(full, source).replace(os.sep, "/")
            found.append((check_artifact_name(f"{base}/{inner}"), full))
    if not found:
        raise InvalidValueError(f"cannot keep artifact {source!r}: the folder holds no file")
    return found


def store_files(store: Store, files: Iterable[tuple[str, str]]) -> dict[str, ArtifactRecord]:
    """Copy local files into the store's artifact location (content already there is not
    copied again); returns the records to write. Does not touch the database."""
    blobs = store.blobs()
    records = {}
    for name, path in files:
        sha256, size = blobs.put_file(path)
        records[name] = ArtifactRecord(name, sha256, size, time.time())
    return records


def store_bytes(store: Store, name: str, data: bytes) -> ArtifactRecord:
    """Keep ``data`` as artifact content; returns the record to write."""
    sha256, size = store.blobs().put_bytes(data)
    return ArtifactRecord(check_artifact_name(name), sha256, size, time.time())


def put(
    store: Store, run_id: str, path: str | os.PathLike[str], name: str | None = None
) -> list[ArtifactRecord]:
    """Add a file or folder to any run (a finished one too): ``expbook artifact put``."""
    records = store_files(store, local_files(path, name))
    store.write(run_id, WriteBatch(artifacts=records))
    return list(records.values())


def find(store: Store, run_id: str, name: str) -> list[ArtifactRecord]:
    """The artifact ``name`` of the run, or every artifact under ``name/`` (a folder).

    Raises:
        ArtifactNotFoundError: neither exists (the message lists a few names the run has).
    """
    every = store.list_artifacts(run_id)
    folder = name.rstrip("/") + "/"
    found = [a for a in every if a.name == name] or [
        a for a in every if a.name.startswith(folder) or name in ("", ".", "/")
    ]
    if not found:
        known = ", ".join(a.name for a in every[:5]) + (", ..." if len(every) > 5 else "")
        has = f"it has {known}" if every else "it has none"
        number = store.run(run_id).number
        raise ArtifactNotFoundError(f"run #{number} has no artifact {name!r} ({has})")
    return found


def fetch(
    store: Store, run_id: str, name: str, target: str | os.PathLike[str] | None = None
) -> list[str]:
    """Copy the artifact ``name`` (a file, or a folder's files) to local files; returns them.

    A file goes to ``target`` (default: its own file name here; into ``target`` when that is a
    folder). A folder's files go under ``target`` (default: the folder's name here) with their
    paths inside the folder.

    Raises:
        ArtifactNotFoundError: the run has no such artifact.
        StoreError: a blob cannot be read.
    """
    found = find(store, run_id, name)
    blobs = store.blobs()
    if len(found) == 1 and found[0].name == name:
        destination = os.fspath(target) if target is not None else name.rsplit("/", 1)[-1]
        if os.path.isdir(destination):
            destination = os.path.join(destination, name.rsplit("/", 1)[-1])
        blobs.get_file(found[0].sha256, destination)
        return [destination]
    prefix = name.strip("/")
    root = os.fspath(target) if target is not None else (prefix.rsplit("/", 1)[-1] or ".")
    written = []
    for artifact in found:
        inner = artifact.name[len(prefix) :].lstrip("/") if prefix else artifact.name
        destination = os.path.join(root, *inner.split("/"))
        blobs.get_file(artifact.sha256, destination)
        written.append(destination)
    return written


def read(store: Store, run_id: str, name: str) -> tuple[ArtifactRecord, bytes]:
    """One artifact and its bytes (for previews and embedding: small files).

    Raises:
        ArtifactNotFoundError: the run has no artifact of exactly that name.
    """
    for artifact in store.list_artifacts(run_id):
        if artifact.name == name:
            return artifact, store.blobs().read(artifact.sha256)
    raise ArtifactNotFoundError(f"run #{store.run(run_id).number} has no artifact {name!r}")


def image_names(artifacts: Sequence[ArtifactRecord]) -> list[ArtifactRecord]:
    """The artifacts that are images a browser shows (by their name's extension)."""
    return [a for a in artifacts if media_type(a.name).startswith("image/")]


_MEDIA = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
    ".webp": "image/webp", ".svg": "image/svg+xml", ".txt": "text/plain", ".log": "text/plain",
    ".md": "text/markdown", ".csv": "text/csv", ".tsv": "text/tab-separated-values",
    ".json": "application/json", ".jsonl": "application/json", ".yaml": "text/plain",
    ".yml": "text/plain", ".toml": "text/plain", ".py": "text/plain", ".diff": "text/plain",
}  # fmt: skip


def media_type(name: str) -> str:
    """The media type of an artifact by its name; ``application/octet-stream`` if unknown."""
    extension = os.path.splitext(name)[1].lower()
    return _MEDIA.get(extension, "application/octet-stream")


def is_text(name: str) -> bool:
    kind = media_type(name)
    return kind.startswith("text/") or kind == "application/json"


GC_MIN_AGE = 3600.0
"""Blobs younger than this are never collected: a run may have copied one in and not yet
committed the row that holds it (its writer flushes about every second)."""


@dataclass(frozen=True, slots=True)
class Garbage:
    """What ``collect_garbage`` found: blobs no run holds (removed unless a dry run), their
    bytes, blobs kept because runs hold them, and unheld blobs too young to remove."""

    removed: int
    removed_bytes: int
    held: int
    young: int


def collect_garbage(
    store: Store, *, min_age: float = GC_MIN_AGE, dry_run: bool = False, now: float | None = None
) -> Garbage:
    """Remove the artifact blobs no run holds: the older versions of a name logged again
    (``last.pt`` every epoch), blobs left by a run deleted while the location was unreachable.

    Raises:
        StoreError: the artifact location cannot be read or written.
        InvalidValueError: ``min_age`` is negative.
    """
    if not min_age >= 0:
        raise InvalidValueError(f"min_age {min_age!r}: give a number of seconds >= 0")
    now = time.time() if now is None else now
    blobs = store.blobs()
    found = list(blobs.list_blobs())
    held: set[str] = set()
    for start in range(0, len(found), 1000):
        held |= store.artifact_references([sha for sha, _, _ in found[start : start + 1000]])
    removed = removed_bytes = young = 0
    for sha256, size, modified in found:
        if sha256 in held:
            continue
        if modified is None or now - modified < min_age:
            young += 1
            continue
        if not dry_run:
            blobs.delete(sha256)
        removed += 1
        removed_bytes += size
    return Garbage(removed, removed_bytes, len(held), young)
