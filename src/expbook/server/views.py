"""The runs table's saved views and column list: ``GET /api/views``, ``PUT`` and ``DELETE
/api/views/{name}``, ``GET /api/columns``.

A view is what the runs page shows, under a name: its filter, sort, columns (chosen, ordered,
pinned, hidden), metric value and grouping. The views of a store are kept in the store itself
(one JSON setting, ``ui.views``: ``{name: state}``), so everyone who opens the store sees them.
Every field of a view is checked when it is saved: a bad one is a 400 naming it.

Saving or deleting a view reads the setting, changes it and writes it back; a lock makes that
one step for the requests of one server process (they run in a thread pool), so concurrent
saves keep every view. The store has no compare-and-set for settings: two processes (``expbook
server --workers N``, or two servers on one store) saving views at the same moment can still
lose one of the two.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Body, FastAPI, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from expbook.errors import FilterSyntaxError
from expbook.server.api import WRITE, StoreDep, _writable, errors
from expbook.server.encoding import ApiJSON
from expbook.store.base import RunQuery, parse_status

SETTING = "ui.views"
MAX_VIEWS = 200
MAX_NAME = 100
MAX_TEXT = 4000
MAX_KEYS = 200
VALUES = ("last", "min", "max", "best")
FIXED_COLUMNS = ("status", "experiment", "started", "duration")
"""The run columns a view may hide (the number and the name always show)."""

router = APIRouter(prefix="/api", default_response_class=ApiJSON, responses=errors(400, 422, 503))

_CHANGING = threading.Lock()
"""Held while a request reads, changes and writes back the views setting."""


class ViewState(BaseModel):
    """What a view shows; every field may be left out (its default)."""

    where: str = Field("", description="the filter expression (docs/filter.md)")
    sort: str = Field("", description="the sort expression: '-metrics.valid/acc'")
    params: list[str] = Field([], description="param columns in order; [] chooses them")
    metrics: list[str] = Field([], description="metric columns in order; [] chooses them")
    pin: list[str] = Field([], description="pinned columns, shown first: params.KEY, metrics.KEY")
    hide: list[str] = Field([], description="hidden run columns: status, experiment, started, "
                            "duration")  # fmt: skip
    value: str = Field("last", description="each metric's value shown: last, min, max or best")
    group_by: list[str] = Field([], description="params grouped by (params.KEY), or ['*']")
    group: str | None = Field(None, description="'experiment': runs under their experiment")


class View(BaseModel):
    name: str
    state: ViewState


class ViewList(BaseModel):
    views: list[View] = Field(description="every saved view of the store, by name")


class ColumnKey(BaseModel):
    key: str
    runs: int = Field(description="how many of the runs have it")


class ColumnList(BaseModel):
    run_count: int = Field(description="the runs the query selects")
    params: list[ColumnKey] = Field(description="their param keys, alphabetically")
    metrics: list[ColumnKey] = Field(description="their metric keys, alphabetically")


ViewName = Annotated[
    str, Path(description="the view's name", min_length=1, max_length=MAX_NAME,
              examples=["best of the lr sweep"])
]  # fmt: skip
VIEW_EXAMPLE = {
    "where": "params.optimizer.lr < 0.01",
    "sort": "-metrics.valid/acc",
    "metrics": ["valid/acc", "valid/loss"],
    "pin": ["metrics.valid/acc"],
    "value": "best",
    "group_by": ["params.model.hidden"],
}


def read_views(store: Any) -> dict[str, dict[str, Any]]:
    """The store's saved views, ``{name: state}`` (none when the setting is missing or not a
    JSON object)."""
    text = store.get_setting(SETTING)
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def check_name(name: str) -> str:
    """A view's name, stripped; 400 for a blank one or one with control characters."""
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME:
        raise HTTPException(400, f"a view's name is 1 to {MAX_NAME} characters, not {name!r}")
    if any(ord(c) < 32 or ord(c) == 127 for c in stripped):
        raise HTTPException(400, f"a view's name has no control characters: {name!r}")
    return stripped


def check_state(state: Any) -> dict[str, Any]:
    """The view ``state`` as it is saved (every field, defaults filled in); a 400 naming the
    first field that is unknown or has a bad value."""
    from expbook.query import parse_filter, parse_sort
    from expbook.server.groups import group_keys

    if not isinstance(state, dict):
        raise HTTPException(400, f"a view is a JSON object of fields, not {_short(state)}")
    fields = ViewState.model_fields
    unknown = [key for key in state if key not in fields]
    if unknown:
        names = ", ".join(fields)
        raise HTTPException(400, f"unknown view field {unknown[0]!r} (fields: {names})")
    for key in ("where", "sort"):
        value = state.get(key, "")
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise HTTPException(400, f"view field {key!r} is text (at most {MAX_TEXT} "
                                f"characters), not {_short(value)}")  # fmt: skip
        try:
            (parse_filter if key == "where" else parse_sort)(value)
        except FilterSyntaxError as exc:
            raise HTTPException(400, f"view field {key!r}: {exc}") from None
    for key in ("params", "metrics", "pin", "hide", "group_by"):
        value = state.get(key, [])
        keys = isinstance(value, list) and len(value) <= MAX_KEYS
        if not keys or not all(_is_key(item) for item in value):
            raise HTTPException(400, f"view field {key!r} is a list of keys (at most "
                                f"{MAX_KEYS}), not {_short(value)}")  # fmt: skip
    for pin in state.get("pin", []):
        if not pin.startswith(("params.", "metrics.")):
            raise HTTPException(400, f"view field 'pin': {pin!r} is not params.KEY or metrics.KEY")
    for hidden in state.get("hide", []):
        if hidden not in FIXED_COLUMNS:
            raise HTTPException(400, f"view field 'hide': {hidden!r} is not one of "
                                f"{', '.join(FIXED_COLUMNS)}")  # fmt: skip
    if state.get("value", "last") not in VALUES:
        raise HTTPException(400, f"view field 'value' is one of {', '.join(VALUES)}, not "
                            f"{_short(state['value'])}")  # fmt: skip
    if state.get("group_by"):
        try:
            group_keys(state["group_by"])
        except FilterSyntaxError as exc:
            raise HTTPException(400, f"view field 'group_by': {exc}") from None
    if state.get("group") not in (None, "experiment"):
        raise HTTPException(400, f"view field 'group' is 'experiment' or null, not "
                            f"{_short(state['group'])}")  # fmt: skip
    return ViewState(**state).model_dump()


def _is_key(item: Any) -> bool:
    return isinstance(item, str) and bool(item.strip()) and len(item) <= MAX_TEXT


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


@router.get("/views", response_model=ViewList, summary="The store's saved views of the runs table")
def list_views(store: StoreDep) -> dict[str, Any]:
    views = read_views(store)
    return {
        "views": [
            {"name": name, "state": state}
            for name, state in sorted(views.items(), key=lambda item: item[0].lower())
            if isinstance(state, dict)
        ]
    }


@router.put("/views/{name}", response_model=View, summary="Save a view under a name",
            responses=errors(403, 409, 413))  # fmt: skip
def save_view(
    name: ViewName,
    store: StoreDep,
    request: Request,
    state: Annotated[Any, Body(description="the view's fields (ViewState)",
                               examples=[VIEW_EXAMPLE])],
) -> dict[str, Any]:  # fmt: skip
    """Save (or replace) the view ``name``: its filter, sort, columns, value and grouping. A bad
    field is a 400 naming it; a store holds at most 200 views (409 past that)."""
    _writable(request)
    name = check_name(name)
    saved = check_state(state)
    with _CHANGING:  # read, change, write back: one step (see the module's docstring)
        views = read_views(store)
        if name not in views and len(views) >= MAX_VIEWS:
            raise HTTPException(409, f"this store has {len(views)} views, the most it keeps: "
                                "delete one first")  # fmt: skip
        views[name] = saved
        store.set_setting(SETTING, json.dumps(views, sort_keys=True))
    return {"name": name, "state": saved}


@router.delete("/views/{name}", response_model=View, summary="Delete a saved view",
               responses=WRITE)  # fmt: skip
def delete_view(name: ViewName, store: StoreDep, request: Request) -> dict[str, Any]:
    """Delete the view ``name``; the answer is the view as it was (404: no such view)."""
    _writable(request)
    key = name.strip()
    with _CHANGING:  # read, change, write back: one step (see the module's docstring)
        views = read_views(store)
        if key not in views:
            raise HTTPException(404, f"no view named {name!r}")
        state = views.pop(key)
        store.set_setting(SETTING, json.dumps(views, sort_keys=True) if views else None)
    return {"name": key, "state": state}


@router.get("/columns", response_model=ColumnList,
            summary="The param and metric keys of the runs a query selects")  # fmt: skip
def list_columns(
    store: StoreDep,
    where: Annotated[str | None, Query(description="filter expression (docs/filter.md)")] = None,
    experiment: Annotated[list[str], Query(description="only these experiments")] = [],  # noqa: B006
    status: Annotated[list[str], Query(description="only runs of these statuses")] = [],  # noqa: B006
) -> dict[str, Any]:
    """Every param and metric key the selected runs have, with how many runs have each: what
    the runs table's column chooser and group-by control offer. Counted by the store
    (:meth:`~expbook.store.base.Store.key_counts`), without reading the runs."""
    query = RunQuery(
        where=where or None,
        experiments=tuple(experiment),
        statuses=tuple(parse_status(s) for s in status),
    )
    counts = store.key_counts(query)
    return {
        "run_count": counts.runs,
        "params": [{"key": k, "runs": n} for k, n in sorted(counts.params.items())],
        "metrics": [{"key": k, "runs": n} for k, n in sorted(counts.metrics.items())],
    }


def install(app: FastAPI) -> None:
    """Serve the views' and columns' API on ``app``."""
    app.include_router(router)


__all__ = ["install", "router"]
