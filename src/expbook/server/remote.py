"""The store API that ``HttpStore`` clients use (``expbook.remote``).

- ``POST /api/store/read``: ``{"method", "args", "kwargs"}`` for a read of the Store contract;
  ``{"value"}`` back (``expbook.remote.wire``). A read-only token may call it.
- ``POST /api/store/call``: the same for changes that need an answer (experiments, settings,
  sweeps, deleting runs).
- ``POST /api/store/ingest``: journaled operations (a run created, a batch written) as wire
  frames, applied in order; ``{"results": [{"ok": value, "dropped": [...]} | {"error":
  {...}}, ...], "unavailable": reason | null}``. A write the database refuses is split into its
  items, and only those refused on their own are dropped (``dropped`` names them). Applying
  stops at the first operation the database cannot take *now* (the client sends it again
  later; batch ids and run UUIDs make that safe); an operation it refuses for good gets an
  error and the next one is applied.

Errors travel as ``{"error": {"type", "message", "attrs"}}`` with a 4xx status (503 when the
database is unavailable), so the client raises the same exception a local store would.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from expbook.errors import (
    AmbiguousRunError,
    AmbiguousSweepError,
    ExpbookError,
    RunNotFoundError,
    StoreRefusedError,
    StoreReplacedError,
    StoreUnavailableError,
    SweepExistsError,
)
from expbook.remote import wire
from expbook.remote.client import CALLS, READS
from expbook.server import security
from expbook.store.base import RUN_END, WriteBatch

INGEST_LIMIT = 64 << 20
"""The largest ingestion request (compressed), in bytes: 8 MiB is what a client sends."""
CALL_LIMIT = 16 << 20
"""Reads and calls carry small arguments, but an attachment or a sweep spec may be larger."""


def install(app: FastAPI) -> None:
    security.READ_POSTS.add("/api/store/read")
    for path, limit in (("ingest", INGEST_LIMIT), ("read", CALL_LIMIT), ("call", CALL_LIMIT)):
        security.BODY_LIMITS[f"/api/store/{path}"] = limit

    @app.post("/api/store/read", include_in_schema=False)
    async def store_read(request: Request) -> Response:
        return await _call(request, READS)

    @app.post("/api/store/call", include_in_schema=False)
    async def store_call(request: Request) -> Response:
        if request.app.state.read_only:
            return _error(403, "PermissionError", "this server is read-only")
        return await _call(request, CALLS)

    @app.post("/api/store/ingest", include_in_schema=False)
    async def store_ingest(request: Request) -> Response:
        if request.app.state.read_only:
            return _error(403, "PermissionError", "this server is read-only")
        body = await request.body()
        return await run_in_threadpool(_ingest, request.app.state.store, body)


async def _call(request: Request, allowed: frozenset[str]) -> Response:
    body = await request.body()
    try:
        data = json.loads(body)
        method = data["method"]
        args = wire.decode(data.get("args") or [])
        kwargs = wire.decode(data.get("kwargs") or {})
    except (ValueError, KeyError, TypeError, AttributeError, ExpbookError) as exc:
        return _error(400, "InvalidValueError", f"a malformed store request: {exc}")
    if method not in allowed or not isinstance(args, list) or not isinstance(kwargs, dict):
        return _error(400, "InvalidValueError", f"no store method {method!r} here")
    return await run_in_threadpool(_apply, request.app.state.store, method, args, kwargs)


def _apply(store: Any, method: str, args: list[Any], kwargs: dict[str, Any]) -> Response:
    try:
        value = getattr(store, method)(*args, **kwargs)
        if method == "iter_series":
            value = list(value)
    except ExpbookError as exc:
        return _failure(exc)
    except (TypeError, AttributeError, ValueError, KeyError) as exc:  # arguments that do not
        return _error(400, "InvalidValueError", f"{method}: bad arguments: {exc!r}")  # fit
    return Response(wire.dumps({"value": value}), media_type="application/json")


def _ingest(store: Any, body: bytes) -> Response:
    results: list[dict[str, Any]] = []
    unavailable = None
    try:
        for op in wire.unframe(body):
            try:
                if isinstance(op, Exception):
                    raise op
                results.append(_apply_op(store, op))
            except StoreUnavailableError as exc:
                unavailable = str(exc)
                break
            except Exception as exc:  # refused for good: the client keeps it aside
                results.append({"error": wire.encode_error(exc)})
    except ExpbookError as exc:  # a damaged request: what came before it is applied
        if not results:
            return _error(400, type(exc).__name__, str(exc))
        unavailable = str(exc)
    status = 503 if unavailable is not None and not results else 200
    content = json.dumps({"results": results, "unavailable": unavailable})
    return Response(content, status_code=status, media_type="application/json")


def _apply_op(store: Any, op: Any) -> dict[str, Any]:
    kind = op.get("op") if isinstance(op, dict) else None
    if kind == "create":
        return {"ok": wire.encode(store.create_run(op["spec"]))}
    if kind == "write" and not op.get("split"):  # the caller waits: it gets the error
        store.write(op["run"], op["batch"])
        return {"ok": None}
    if kind == "write":  # a run's writer went on: drop only what is refused, and say so
        dropped = _write(store, op["run"], op["batch"])
        return {"ok": None, "dropped": dropped} if dropped else {"ok": None}
    raise wire.WireError(f"unknown journaled operation {kind!r}")


def _write(store: Any, run_id: str, batch: WriteBatch) -> list[str]:
    """Apply ``batch``; when the database refuses it, split it into its items and apply them
    in halves, recursively, so that only the items refused on their own are dropped (what
    the run writer does for a local store: see docs/design.md, "When writes fail"). Returns
    the dropped items, each with the database's reason. The halves get ids derived from the
    batch's, so a retried request splits and skips them the same way.

    Raises:
        StoreUnavailableError: the store cannot take it now (nothing is dropped).
        RunNotFoundError: the run is gone.
        ExpbookError: the run's ending alone is refused (it is never dropped).
    """
    try:
        store.write(run_id, batch)
        return []
    except (StoreUnavailableError, RunNotFoundError, StoreReplacedError):
        raise
    except Exception as exc:
        parts = batch.parts()
        if len(parts) > 1:
            half = len(parts) // 2
            dropped = []
            for index, group in enumerate((parts[:half], parts[half:])):
                merged = WriteBatch()
                for _, part in group:
                    merged.merge(part)
                merged.batch_id = uuid.uuid5(uuid.NAMESPACE_OID, f"{batch.batch_id}/{index}").hex
                dropped += _write(store, run_id, merged)
            return dropped
        if not parts or set(parts[0][1].update) & set(RUN_END):
            raise
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        return [f"{parts[0][0]} of run {run_id[:8]}: {reason}"]


def _failure(exc: ExpbookError) -> Response:
    if isinstance(exc, StoreUnavailableError):
        status = 503
    elif isinstance(exc, AmbiguousRunError | AmbiguousSweepError | SweepExistsError):
        status = 409
    elif isinstance(exc, LookupError):
        status = 404
    elif isinstance(exc, StoreRefusedError):
        status = 422
    else:
        status = 400
    return Response(
        json.dumps({"error": wire.encode_error(exc)}), status_code=status,
        media_type="application/json",
    )  # fmt: skip


def _error(status: int, kind: str, message: str) -> Response:
    content = json.dumps({"error": {"type": kind, "message": message, "attrs": {}}})
    return Response(content, status_code=status, media_type="application/json")
