"""Changes to many runs at once and the runs table as a file: ``POST /api/runs/bulk`` (tag,
untag, move to an experiment, delete the runs selected in the runs table) and
``GET /api/export/runs`` (the "Download CSV / Parquet" links).

A bulk change checks everything it was given before it changes anything: an unknown run is 404
and a bad action, tag or experiment name 400, each naming the value, and then no run has
changed. It does what the CLI does for one run (``expbook tag``, ``expbook experiment move``,
``expbook rm``), through the same store methods: tag, untag and move change one run at a time
(a store failure midway leaves the runs before it changed, and the error names them), delete
removes the runs in one transaction. The export writes the table ``expbook export`` writes,
with the code it uses (``expbook.exports``), for the query ``GET /api/runs`` takes; cells are
written as they are (not escaped for spreadsheets).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from expbook.errors import ExpbookError, StoreError
from expbook.model import RunRecord, RunStatus
from expbook.server.api import INT64_MAX, StoreDep, errors
from expbook.server.encoding import ApiJSON
from expbook.server.schemas import Error
from expbook.store.base import RunQuery, parse_status

ACTIONS = ("tag", "untag", "move", "delete")
MAX_BULK_RUNS = 10_000
PARQUET_TYPE = "application/vnd.apache.parquet"

router = APIRouter(prefix="/api", default_response_class=ApiJSON, responses=errors(400, 422, 503))

RunNumber = Annotated[int, Field(ge=1, le=INT64_MAX)]


class BulkChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    runs: list[RunNumber | str] = Field(
        min_length=1, max_length=MAX_BULK_RUNS,
        description="the runs: numbers (3), or refs as elsewhere (a UUID prefix, a unique name)",
        examples=[[3, 7]],
    )  # fmt: skip
    action: str = Field(
        description="tag | untag | move | delete", examples=["tag"],
        json_schema_extra={"enum": list(ACTIONS)},
    )  # fmt: skip
    tags: list[str] | None = Field(
        default=None, description="tag, untag: the tags to add or remove", examples=[["best"]]
    )
    experiment: str | None = Field(
        default=None,
        description="move: the experiment's name (created if no experiment has it, as `expbook "
        "experiment move --to` does); null takes the runs out of their experiment",
    )


class BulkResult(BaseModel):
    action: str
    changed: int = Field(
        description="how many of the runs the action changed (a run that had the tag already, "
        "or was in the experiment already, is not counted)"
    )
    runs: list[int] = Field(description="the numbers of the runs named, each once, in order")


@router.post(
    "/runs/bulk", response_model=BulkResult, summary="Tag, untag, move or delete many runs",
    responses=errors(403, 404, 409, 413),
)  # fmt: skip
def bulk_change(change: BulkChange, store: StoreDep, request: Request) -> dict[str, Any]:
    """Every run is looked up and every value checked before anything changes (a bad request
    changes nothing). Then tag, untag and move change one run at a time, in order: a store
    failure midway (503; 404 for a run deleted meanwhile) leaves the runs before it changed,
    and its detail names them and the run it stopped at. ``delete`` removes the runs in one
    transaction, as ``expbook rm`` does (their notes, series, attachments, and the artifact
    files no other run holds), and refuses a run that is still running (409), as ``expbook
    rm`` does without ``--force``."""
    if request.app.state.read_only:  # the Guard refuses it first; this is the second lock
        raise HTTPException(403, "this server is read-only (started with --read-only)")
    tags, experiment = _check(change)
    ids = list(dict.fromkeys(store.resolve_run(ref) for ref in change.runs))  # 404 names it
    by_id = {run.id: run for run in store.find_runs(RunQuery(ids=tuple(ids)))}
    found = [by_id[run_id] for run_id in ids if run_id in by_id]
    if change.action == "tag":
        changed = [r for r in found if not set(tags) <= set(r.tags)]
        _each("tag", changed, lambda record: store.add_tags(record.id, *tags))
    elif change.action == "untag":
        changed = [r for r in found if set(tags) & set(r.tags)]
        _each("untag", changed, lambda record: store.remove_tags(record.id, *tags))
    elif change.action == "move":
        changed = [r for r in found if r.experiment != experiment]
        _each("move", changed, lambda record: store.update_run(record.id, experiment=experiment))
    else:
        running = [f"#{r.number}" for r in found if r.status is RunStatus.RUNNING]
        if running:
            raise HTTPException(
                409, f"{', '.join(running)} {'is' if len(running) == 1 else 'are'} still "
                "running: stop it first (or use expbook rm --force)",
            )  # fmt: skip
        count = store.delete_runs([r.id for r in found])
        return {"action": "delete", "changed": count, "runs": [r.number for r in found]}
    return {"action": change.action, "changed": len(changed), "runs": [r.number for r in found]}


def _each(action: str, records: list[RunRecord], change: Callable[[RunRecord], None]) -> None:
    """``change`` each run in order; an error midway is an HTTPException naming the runs
    changed before it (they stay changed) and the run it stopped at."""
    done: list[str] = []
    for record in records:
        try:
            change(record)
        except ExpbookError as exc:
            status = 400  # as the app answers each: the store failed, a run deleted meanwhile
            if isinstance(exc, StoreError | LookupError):
                status = 503 if isinstance(exc, StoreError) else 404
            before = f"changed before it: {', '.join(done)}" if done else "no run was changed"
            reason = " ".join(str(exc).split())  # one line
            raise HTTPException(
                status, f"{action} stopped at #{record.number} ({reason}); {before}"
            ) from None
        done.append(f"#{record.number}")


def _check(change: BulkChange) -> tuple[list[str], str | None]:
    """The tags and the experiment of a bulk change, checked; 400 naming a bad value."""
    from expbook.store.base import check_run_fields
    from expbook.validation import check_tag, check_text, shorten

    action = change.action
    if action not in ACTIONS:
        raise HTTPException(400, f"unknown action {shorten(action)}: one of {', '.join(ACTIONS)}")
    given = change.model_fields_set
    if action in ("tag", "untag"):
        if not change.tags:
            raise HTTPException(400, f"{action} needs 'tags': a list of one or more tags")
        if "experiment" in given:
            raise HTTPException(400, f"{action} takes no 'experiment' (that is for move)")
        check = check_tag if action == "tag" else (lambda tag: check_text(tag, "tag"))
        return [check(tag) for tag in change.tags], None
    if "tags" in given:
        raise HTTPException(400, f"{action} takes no 'tags' (they are for tag and untag)")
    if action == "move":
        if "experiment" not in given:
            raise HTTPException(
                400, "move needs 'experiment': its name, or null to take the runs out of theirs"
            )
        if change.experiment is not None:
            check_run_fields(experiment=change.experiment)  # InvalidValueError: 400 naming it
        return [], change.experiment
    if "experiment" in given:
        raise HTTPException(400, "delete takes no 'experiment'")
    return [], None


# --- export -------------------------------------------------------------------------------------

EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    **errors(404),
    200: {
        "description": "The runs table as `expbook export` writes it: number, id, name, "
        "experiment, status, kind, parent, started_at, ended_at, duration_s, commit, branch, "
        "dirty, host, tags, then params.KEY and metrics.KEY, min(metrics.KEY), "
        "max(metrics.KEY); as a download (Content-Disposition: attachment). Cells are "
        "written as they are: a name, tag or param starting with = + - @ is not escaped for "
        "spreadsheets (import the file as text)",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            PARQUET_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    },
    501: {
        "model": Error,
        "description": "Parquet asked for, and pyarrow is not installed on the server "
        "(pip install 'expbook[parquet]')",
    },
}


@router.get("/export/runs", response_class=Response, responses=EXPORT_RESPONSES,
            summary="Every run the query selects, as a CSV or Parquet file")  # fmt: skip
def export_runs(
    store: StoreDep,
    format: Annotated[Literal["csv", "parquet"], Query(description="the file's format")] = "csv",
    where: Annotated[str | None, Query(description="filter expression (docs/filter.md)")] = None,
    sort: Annotated[str | None, Query(description="sort expression: '-metrics.valid/acc'")] = None,
    experiment: Annotated[list[str], Query(description="only these experiments")] = [],  # noqa: B006
    status: Annotated[list[str], Query(description="only runs of these statuses")] = [],  # noqa: B006
    params: Annotated[str | None, Query(description="comma-separated param keys: "
                      "only these param columns, in this order (default: every param)")] = None,
    metrics: Annotated[str | None, Query(description="comma-separated metric keys: "
                       "only these metric columns, in this order (default: every metric)")] = None,
    value: Annotated[
        Literal["last", "min", "max", "best"] | None,
        Query(description="one column per metric: its last, min, max or best value (min for "
              "an error like loss, else max), named metrics.KEY, min(metrics.KEY) or "
              "max(metrics.KEY) as it is; default: all three"),
    ] = None,
) -> Response:  # fmt: skip
    """Every run the query selects (not a page; ``GET /api/runs``'s query: ``where``,
    ``sort``, ``experiment``, ``status``, ``params``, ``metrics``, ``value``), as the file
    ``expbook export --format csv|parquet`` writes for the same selection. An experiment no
    experiment has is 404, as in ``expbook export -e``; a param or metric key no run in the
    store has is 400 naming it (with the closest keys runs have)."""
    from expbook.columns import unknown_keys
    from expbook.exports import (
        MissingDependencyError,
        parquet_table,
        pyarrow_module,
        run_rows,
        write_csv,
    )

    if format == "parquet":
        try:
            pyarrow = pyarrow_module()
        except MissingDependencyError as exc:
            raise HTTPException(501, str(exc)) from None
    for name in experiment:  # a typo would export nothing, silently (as expbook export -e)
        store.get_experiment(name)  # ExperimentNotFoundError: 404 naming it
    query = RunQuery(
        where=where or None,
        sort=sort or None,
        experiments=tuple(experiment),
        statuses=tuple(parse_status(s) for s in status),
    )
    runs = store.find_runs(query)
    param_keys, metric_keys = _keys(params), _keys(metrics)
    wanted = [("param", key) for key in param_keys or ()]
    wanted += [("metric", key) for key in metric_keys or ()]
    unknown = unknown_keys(store, wanted, seen=runs)  # a typo would be an empty column
    if unknown:
        raise HTTPException(400, "; ".join(problem.message() for problem in unknown))
    columns, rows = run_rows(runs, params=param_keys, metrics=metric_keys, value=value)
    if format == "csv":
        text = io.StringIO(newline="")
        write_csv(text, columns, rows)
        content, media = text.getvalue().encode(), "text/csv; charset=utf-8"
    else:
        buffer = io.BytesIO()
        pyarrow.parquet.write_table(parquet_table(columns, rows), buffer)
        content, media = buffer.getvalue(), PARQUET_TYPE
    headers = {"Content-Disposition": f'attachment; filename="runs.{format}"'}
    return Response(content, media_type=media, headers=headers)


def _keys(value: str | None) -> list[str] | None:
    """A comma-separated list of keys; None when not given (every key)."""
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


def install(app: FastAPI) -> None:
    """Serve the bulk changes and the export on ``app``."""
    app.include_router(router)


__all__ = ["install", "router"]
