"""The blob proxy: artifact contents through the server, for clients of ``expbook server``.

``PUT /api/blobs/{sha256}`` stores a body as the blob of that hash in the server store's artifact
location (``Store.blobs()``: a folder, S3 ...), ``GET`` streams it back with its length, ``HEAD``
says whether it is there. Clients (``expbook.remote.blobs.HttpBlobStore``) need no credentials
of the location; the server holds them (docs/design.md, "Artifacts through the team server").

An upload is never held whole in memory: the guard passes it on as it arrives
(``security.STREAMED``) and it is written to the location while it is hashed, in a worker
thread. Content that does not hash to its name is refused (400) and leaves nothing behind; a
blob already there is answered 200 (the body is read and checked, not stored again), a new one
201.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from expbook.server.api import StoreDep, errors
from expbook.server.encoding import ApiJSON
from expbook.store.blobs import CHUNK, ContentMismatchError

PREFIX = "/api/blobs"
MAX_BLOB_BYTES = 5 << 40
"""The largest upload: S3's largest object (5 TiB); the guard cuts off a longer body (413)."""

router = APIRouter(prefix=PREFIX, default_response_class=ApiJSON, responses=errors(400, 422, 503))
Sha256 = Annotated[
    str,
    Path(pattern="^[0-9a-f]{64}$", description="the sha256 of the content, 64 lower-case hex"),
]
BLOB = {
    "description": "The blob's bytes",
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
UPLOAD = {"requestBody": {"required": True, **BLOB}}


class BlobStored(BaseModel):
    """The answer to an upload."""

    sha256: str
    size: int
    created: bool  # False: the blob was there already


def install_blobs(app: FastAPI) -> None:
    """Add the blob routes, and ask the guard to stream their uploads."""
    from expbook.server import security

    security.STREAMED[PREFIX + "/"] = MAX_BLOB_BYTES
    app.include_router(router)


@router.head("/{sha256}", summary="Whether a blob is stored", response_class=Response,
             responses={200: {"description": "It is (Content-Length: its size)"},
                        404: {"description": "It is not"}})  # fmt: skip
def head_blob(sha256: Sha256, store: StoreDep) -> Response:
    size = store.blobs().size(sha256)
    if size is None:
        return Response(status_code=404)
    return Response(headers={"Content-Length": str(size), "ETag": f'"{sha256}"'})


@router.get("/{sha256}", summary="Download a blob", response_class=Response,
            responses={**errors(404), 200: BLOB})  # fmt: skip
def get_blob(sha256: Sha256, store: StoreDep) -> Response:
    blobs = store.blobs()
    size = blobs.size(sha256)
    if size is None:
        raise HTTPException(404, f"blob {sha256} is not stored")
    handle = blobs.open(sha256)

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    headers = {"Content-Length": str(size), "ETag": f'"{sha256}"'}
    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


THERE = {"model": BlobStored, "description": "It was there already"}


@router.put("/{sha256}", summary="Upload a blob", status_code=201, openapi_extra=UPLOAD,
            response_model=BlobStored, responses={**errors(403, 413), 200: THERE})  # fmt: skip
async def put_blob(sha256: Sha256, request: Request) -> ApiJSON:
    """Store the body as the blob ``sha256``, refused (400) unless it hashes to that."""
    blobs = await run_in_threadpool(request.app.state.store.blobs)
    length = request.headers.get("content-length", "")
    size = int(length) if length.isdigit() else None
    there = await run_in_threadpool(blobs.exists, sha256)
    pieces = _Pieces(_gathered(request.stream()))
    try:
        if there:
            digest, got = await run_in_threadpool(pieces.hash)
            if digest != sha256:
                raise ContentMismatchError(
                    f"the content sent for blob {sha256} hashes to {digest}: it was not stored"
                )
        else:
            _, got = await run_in_threadpool(blobs.put_chunks, pieces, sha256, size=size)
    except ContentMismatchError as exc:
        raise HTTPException(400, str(exc)) from None
    except ClientDisconnect:
        raise HTTPException(400, f"the upload of blob {sha256} was cut off") from None
    body = {"sha256": sha256, "size": got, "created": not there}
    return ApiJSON(body, status_code=200 if there else 201)


async def _gathered(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The body in pieces of at least ``CHUNK`` bytes (the server's are ~64 KiB): fewer hops
    between the event loop and the writing thread."""
    pending: list[bytes] = []
    size = 0
    async for chunk in stream:
        pending.append(chunk)
        size += len(chunk)
        if size >= CHUNK:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


class _Pieces:
    """An async stream read from a worker thread (started by ``run_in_threadpool``) as a plain
    iterator: each piece is awaited on the event loop."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[bytes]:
        from anyio.from_thread import run

        while True:
            try:
                yield run(self._next)
            except StopAsyncIteration:
                return

    async def _next(self) -> bytes:
        return await self.stream.__anext__()

    def hash(self) -> tuple[str, int]:
        import hashlib

        digest, size = hashlib.sha256(), 0
        for piece in self:
            digest.update(piece)
            size += len(piece)
        return digest.hexdigest(), size
