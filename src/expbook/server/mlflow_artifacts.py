"""MLflow's artifact proxy (``mlflow-artifacts:``) on expbook's run artifacts.

A run's ``artifact_uri`` is ``mlflow-artifacts:/<experiment id>/<run id>/artifacts``; the client
turns it into ``/api/2.0/mlflow-artifacts/artifacts/<experiment id>/<run id>/artifacts/<name>``
and PUTs each file there. Each file becomes the run's artifact ``<name>``: its bytes a
content-addressed blob in the store's artifact location (``store.blobs()``), its record written
with ``WriteBatch(artifacts=...)``, exactly as ``expbook artifact put`` does, so ``expbook
artifact ls/get`` and the UI show it. GET downloads a file; GET without a file path lists a
folder (``?path=``). The experiment id in the path is not used (a run moved to another
experiment keeps its artifacts); deleting artifacts is not supported (expbook keeps them).
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from expbook.artifacts import check_artifact_name, media_type
from expbook.errors import InvalidValueError
from expbook.model import ArtifactRecord
from expbook.server.mlflow_models import model_folder, run_id_of
from expbook.server.mlflow_records import Extras
from expbook.server.mlflow_wire import (
    MlflowApiError,
    failure,
    invalid,
    mlflow_json,
    not_found,
)
from expbook.store.base import RunQuery, Store, WriteBatch

PREFIX = "/api/2.0/mlflow-artifacts/artifacts"
SPOOL_BYTES = 8 << 20
"""Uploads up to this size are held in memory on their way to the blob store; larger ones are
spooled to a temporary file."""
MAX_UPLOAD_BYTES = 64 << 30
"""The largest file one upload may bring (the guard streams uploads here and cuts them off
past it)."""
_RUN_PATH = re.compile(r"[^/]+/([0-9a-f]{32})/artifacts(?:/(.*))?")
_MODEL_PATH = re.compile(r"[^/]+/models/(m-[^/]+)/artifacts(?:/(.*))?")


def install(app: FastAPI) -> None:
    app.add_api_route(PREFIX, list_artifacts, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{PREFIX}/{{path:path}}", download, methods=["GET"],
                      include_in_schema=False)  # fmt: skip
    app.add_api_route(f"{PREFIX}/{{path:path}}", upload, methods=["PUT"],
                      include_in_schema=False)  # fmt: skip
    app.add_api_route(f"{PREFIX}/{{path:path}}", delete, methods=["DELETE"],
                      include_in_schema=False)  # fmt: skip
    _declare_streamed()


def _declare_streamed() -> None:
    """Ask the guard to stream uploads here rather than buffer them (``security.STREAMED``,
    where it exists)."""
    from expbook.server import security

    streamed = getattr(security, "STREAMED", None)
    if isinstance(streamed, dict):
        streamed[PREFIX + "/"] = MAX_UPLOAD_BYTES


@dataclass(frozen=True, slots=True)
class Place:
    """Where an artifact path of the proxy leads: a run, the artifact name (or folder) in it,
    and the folders of the run's logged models, which its own listings leave out (MLflow 3
    keeps models apart from runs: listing a run's ``model`` folder would show them twice)."""

    run_id: str
    name: str
    models: tuple[str, ...] = ()


def locate(store: Store, path: str) -> Place:
    """The place of ``<experiment id>/<run id>/artifacts/<name>`` (a run's artifact) or
    ``<experiment id>/models/<model id>/artifacts/<name>`` (a logged model's file).

    Raises:
        MlflowApiError: RESOURCE_DOES_NOT_EXIST when the path names no run or model.
    """
    path = path.strip("/")
    run = _RUN_PATH.fullmatch(path)
    if run is not None:
        run_id = run.group(1)
        _check_run(store, run_id)
        folders = tuple(m["folder"] for m in Extras.read(store, run_id).models.values())
        return Place(run_id, (run.group(2) or "").strip("/"), folders)
    model = _MODEL_PATH.fullmatch(path)
    if model is not None:
        model_id = model.group(1)
        folder = model_folder(store, model_id)
        inner = (model.group(2) or "").strip("/")
        return Place(run_id_of(model_id), f"{folder}/{inner}" if inner else folder)
    raise not_found(
        f"{path!r} is not a run's artifact path (<experiment id>/<run id>/artifacts/<name>)"
    )


async def upload(request: Request, path: str) -> Response:
    try:
        store: Store = request.app.state.store
        if request.app.state.read_only:
            raise MlflowApiError("PERMISSION_DENIED", "this server is read-only")
        place = await run_in_threadpool(locate, store, path)
        try:
            check_artifact_name(place.name)
        except InvalidValueError as exc:
            raise invalid(str(exc)) from None
        with _Upload() as content:
            async for chunk in request.stream():
                content.write(chunk)
            await run_in_threadpool(_keep, store, place.run_id, place.name, content)
        return mlflow_json({})
    except Exception as exc:
        return failure(exc, request)


class _Upload:
    """An upload's bytes: in memory up to ``SPOOL_BYTES``, past that in a temporary file."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.file: Any = None

    def write(self, chunk: bytes) -> None:
        if self.file is None and self.size + len(chunk) > SPOOL_BYTES:
            self.file = tempfile.NamedTemporaryFile(prefix="expbook-mlflow-")  # noqa: SIM115
            self.file.writelines(self.parts)
            self.parts = []
        if self.file is not None:
            self.file.write(chunk)
        else:
            self.parts.append(chunk)
        self.size += len(chunk)

    def __enter__(self) -> _Upload:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


def _check_run(store: Store, run_id: str) -> None:
    if not store.find_runs(RunQuery(ids=(run_id,))):
        raise not_found(f"Run '{run_id}' not found")


def _keep(store: Store, run_id: str, name: str, content: _Upload) -> None:
    """Put the upload in the blob store and the artifact in the run."""
    blobs = store.blobs()
    if content.file is None:
        sha256, size = blobs.put_bytes(b"".join(content.parts))
    else:
        content.file.flush()
        sha256, size = blobs.put_file(content.file.name)
    record = ArtifactRecord(name, sha256, size, time.time())
    store.write(run_id, WriteBatch(artifacts={name: record}))


async def download(request: Request, path: str) -> Response:
    try:
        store: Store = request.app.state.store
        place = await run_in_threadpool(locate, store, path)
        if not place.name:
            return await _listing(store, path)
        name = place.name
        artifact = await run_in_threadpool(_artifact, store, place.run_id, name)
        handle = await run_in_threadpool(store.blobs().open, artifact.sha256)
        return StreamingResponse(
            _chunks(handle),
            media_type=media_type(name),
            headers={"Content-Length": str(artifact.size)},
        )
    except Exception as exc:
        return failure(exc, request)


def _chunks(handle: Any) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(1 << 20):
            yield chunk


def _artifact(store: Store, run_id: str, name: str) -> ArtifactRecord:
    for artifact in store.list_artifacts(run_id):
        if artifact.name == name:
            return artifact
    raise not_found(f"Run '{run_id}' has no artifact '{name}'")


async def list_artifacts(request: Request) -> Response:
    try:
        path = request.query_params.get("path", "")
        return await _listing(request.app.state.store, path)
    except Exception as exc:
        return failure(exc, request)


async def _listing(store: Store, path: str) -> Response:
    """The files and folders directly inside a folder of a run's artifacts (paths relative to
    it); nothing for a file, as MLflow's own stores answer."""
    if not path.strip("/") or path.strip("/").count("/") < 2:
        return mlflow_json({"files": []})  # above the runs: nothing to list
    place = await run_in_threadpool(locate, store, path)
    artifacts = await run_in_threadpool(store.list_artifacts, place.run_id)
    prefix = f"{place.name}/" if place.name else ""
    hidden = tuple(f"{folder}/" for folder in place.models)
    files: dict[str, dict[str, Any]] = {}
    for artifact in artifacts:
        if not artifact.name.startswith(prefix) or artifact.name.startswith(hidden):
            continue
        inner = artifact.name[len(prefix) :]
        head, slash, _ = inner.partition("/")
        if slash:
            files.setdefault(head, {"path": head, "is_dir": True})
        else:
            files[head] = {"path": head, "is_dir": False, "file_size": artifact.size}
    return mlflow_json({"files": [files[k] for k in sorted(files)]})


async def delete(request: Request, path: str) -> Response:
    return failure(
        MlflowApiError(
            "NOT_IMPLEMENTED",
            "expbook does not delete artifacts through MLflow: they stay with their run "
            "(expbook rm deletes a run with its artifacts)",
        ),
        request,
    )
