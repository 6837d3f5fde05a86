"""The wire side of the MLflow REST API (``expbook.server.mlflow``): MLflow's error JSON and
codes, the fields of a request (proto3 JSON, as the ``mlflow`` client sends them), and the
wrapper that turns a plain function into an endpoint.

Every answer is what the ``mlflow`` client expects: JSON with int64 numbers as numbers and
non-finite floats as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; every error is
``{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "..."}`` with the HTTP status MLflow's
own server gives that code, so the client raises its usual ``MlflowException``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from expbook.errors import (
    AmbiguousRunError,
    ArtifactNotFoundError,
    ExpbookError,
    ExperimentNotFoundError,
    MetricNotFoundError,
    RunNotFoundError,
    StoreError,
    StoreRefusedError,
    StoreUnavailableError,
)
from expbook.server.encoding import json_safe
from expbook.store.base import Store

STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "RESOURCE_CONFLICT": 409,
    "INTERNAL_ERROR": 500,
    "NOT_IMPLEMENTED": 501,
    "TEMPORARILY_UNAVAILABLE": 503,
}
"""MLflow's error codes and their HTTP status (``mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS``)."""

_log = logging.getLogger("expbook.server.mlflow")


class MlflowApiError(Exception):
    """An error answered as MLflow's error JSON: ``code`` is one of ``STATUS``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> MlflowApiError:
    return MlflowApiError("INVALID_PARAMETER_VALUE", message)


def not_found(message: str) -> MlflowApiError:
    return MlflowApiError("RESOURCE_DOES_NOT_EXIST", message)


def mlflow_json(content: Any, status: int = 200) -> Response:
    """``content`` as the client parses it (non-finite floats as proto3 JSON strings)."""
    try:
        text = json.dumps(content, allow_nan=False, separators=(",", ":"))
    except ValueError:
        text = json.dumps(json_safe(content), allow_nan=False, separators=(",", ":"))
    return Response(text, status_code=status, media_type="application/json")


def error_response(code: str, message: str) -> Response:
    return mlflow_json({"error_code": code, "message": message}, STATUS[code])


def as_api_error(exc: Exception) -> MlflowApiError | None:
    """The MLflow error for an expbook exception (None: not one of ours, a bug)."""
    if isinstance(exc, MlflowApiError):
        return exc
    if isinstance(exc, RunNotFoundError | ExperimentNotFoundError | ArtifactNotFoundError):
        return not_found(str(exc))
    if isinstance(exc, MetricNotFoundError):
        return not_found(str(exc))
    if isinstance(exc, StoreUnavailableError):
        return MlflowApiError("TEMPORARILY_UNAVAILABLE", str(exc))
    if isinstance(exc, StoreRefusedError):
        return invalid(str(exc))
    if isinstance(exc, StoreError):
        if _is_conflict(exc):  # a unique name taken by a concurrent write
            return MlflowApiError("RESOURCE_ALREADY_EXISTS", f"a name is taken already: {exc}")
        return MlflowApiError("INTERNAL_ERROR", str(exc))
    if isinstance(exc, AmbiguousRunError | ExpbookError):
        return invalid(str(exc))
    return None


def _is_conflict(exc: StoreError) -> bool:
    from sqlalchemy.exc import IntegrityError

    return isinstance(exc.__cause__, IntegrityError)


@dataclass(slots=True)
class Call:
    """One request to an MLflow endpoint: the store, the request's fields (the JSON body, or
    the query string of a GET) and who sent it."""

    store: Store
    fields: Args
    caller: str | None = None
    """The token's name when the server runs with auth, else None."""


Handler = Callable[[Call], dict[str, Any]]


def endpoint(handler: Handler, *, writes: bool) -> Callable[[Request], Any]:
    """An ASGI endpoint that reads the request's fields, runs ``handler`` on a worker thread
    (store calls block) and answers its dict as JSON, or MLflow's error JSON."""

    async def answer(request: Request) -> Response:
        try:
            if writes and request.app.state.read_only:
                raise MlflowApiError(
                    "PERMISSION_DENIED", "this server is read-only (started with --read-only)"
                )
            fields = await read_fields(request)
            call = Call(request.app.state.store, fields, caller_name(request))
            return mlflow_json(await run_in_threadpool(handler, call))
        except Exception as exc:
            return failure(exc, request)

    answer.__name__ = handler.__name__
    return answer


def failure(exc: Exception, request: Request) -> Response:
    """MLflow's error JSON for an exception raised while answering ``request``."""
    error = as_api_error(exc)
    if error is None:
        _log.exception("MLflow API %s %s failed", request.method, request.url.path)
        error = MlflowApiError("INTERNAL_ERROR", f"{type(exc).__name__}: {exc}")
    return error_response(error.code, error.message)


def caller_name(request: Request) -> str | None:
    token = request.scope.get("expbook.token")
    return getattr(token, "name", None)


async def read_fields(request: Request) -> Args:
    """A GET's query string, or a JSON object body (an empty body is ``{}``), with the path's
    parameters (``logged-models/{model_id}``)."""
    fields = await _read_fields(request)
    fields.data.update(request.path_params)
    return fields


async def _read_fields(request: Request) -> Args:
    if request.method == "GET":
        data: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in data:
                existing = data[key]
                data[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
            else:
                data[key] = value
        return Args(data)
    raw = await request.body()
    if not raw.strip():
        return Args({})
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise invalid(f"the request body must be a JSON object, not {type(data).__name__}")
    return Args(data)


_NONFINITE = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf,
              "-inf": -math.inf}  # fmt: skip
INT64 = 2**63 - 1


class Args:
    """The fields of a request, read by type; a missing or malformed field raises
    INVALID_PARAMETER_VALUE naming it (as MLflow's own server words it)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def has(self, key: str) -> bool:
        return self.data.get(key) not in (None, "")

    def text(self, *keys: str, required: bool = False, default: str | None = None) -> str | None:
        """The first of ``keys`` present (``run_id`` or its old name ``run_uuid``)."""
        for key in keys:
            value = self.data.get(key)
            if value is None:
                continue
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if not isinstance(value, str):
                raise invalid(f"{key} must be a string, not {_shown(value)}")
            if value or not required:
                return value
        if required:
            raise _missing(keys[0])
        return default

    def required(self, *keys: str) -> str:
        value = self.text(*keys, required=True)
        assert value is not None
        return value

    def integer(
        self, key: str, default: int | None = None, *, required: bool = False
    ) -> int | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise _missing(key)
            return default
        if isinstance(value, bool):
            raise invalid(f"{key} must be an integer, not {_shown(value)}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise invalid(f"{key} must be an integer, not {_shown(value)}") from None
        if not isinstance(value, int):
            raise invalid(f"{key} must be an integer, not {_shown(value)}")
        if not -INT64 - 1 <= value <= INT64:
            raise invalid(f"{key} {value} is out of the 64-bit integer range")
        return value

    def number(self, key: str, *, required: bool = True) -> float | None:
        value = self.data.get(key)
        if value is None:
            if required:
                raise _missing(key)
            return None
        return to_number(value, key)

    def items(self, key: str) -> list[Args]:
        """A repeated message field (``tags``, ``metrics``...): each item's fields."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise invalid(f"{key} must be a list of objects, not {_shown(value)}")
        return [Args(item) for item in value]

    def texts(self, key: str) -> list[str]:
        """A repeated string field (``experiment_ids``, ``order_by``)."""
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise invalid(f"{key} must be a list of strings, not {_shown(value)}")
        return list(value)

    def pairs(self, key: str) -> dict[str, str]:
        """A repeated ``{key, value}`` field (tags) as a dict; a missing value is ``""``."""
        found: dict[str, str] = {}
        for item in self.items(key):
            name = item.required("key")
            found[name] = item.text("value", default="") or ""
        return found


def to_number(value: Any, key: str) -> float:
    """A double field: a JSON number, or a numeric string (proto3 JSON writes NaN and the
    infinities as ``"NaN"``, ``"Infinity"``, ``"-Infinity"``)."""
    if isinstance(value, bool):
        raise invalid(f"{key} must be a number, not {_shown(value)}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _NONFINITE:
            return _NONFINITE[lowered]
        try:
            return float(value)
        except ValueError:
            pass
    raise invalid(f"{key} must be a number, not {_shown(value)}")


def _missing(key: str) -> MlflowApiError:
    return invalid(
        f"Missing value for required parameter '{key}'. See the API docs for more information "
        "about request parameters."
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
