"""The JSON API under ``/api/``: runs, series, output, experiments; the UI's writes.

Every endpoint is a thin layer over the :class:`~expbook.store.base.Store` of the app (read
through the same query layer as the CLI). Errors are JSON ``{"detail": ...}`` with a 4xx status
that names the offending value; a filter's syntax error carries its position.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from expbook.columns import (
    MISSING,
    common_metrics,
    key_metric,
    list_spread,
    lower_is_better,
    metric_groups,
    varying_params,
)
from expbook.errors import MetricNotFoundError
from expbook.model import ArtifactRecord, ExperimentRecord, RunRecord, RunStatus
from expbook.server import schemas
from expbook.server.encoding import ApiJSON, float_list
from expbook.server.markdown import render_markdown
from expbook.server.security import MAX_BODY_BYTES
from expbook.store.base import RunQuery, Store, parse_status

MAX_PAGE = 1000
MAX_SERIES = 400
MAX_PARAM_COLUMNS = 12
OUTPUT_TAIL_CHUNKS = 8
OUTPUT_MAX_CHUNKS = 512

ERRORS = {
    400: "A bad value, named (a filter's syntax error with its position); or a Host header "
    "this server does not answer to (see --allowed-hosts)",
    403: "A change on a --read-only server, or one sent by another site's page",
    404: "No such run, experiment, metric, note, attachment or artifact",
    409: "An ambiguous run reference, or a name that is taken",
    413: f"A request body over the limit ({MAX_BODY_BYTES:,} bytes)",
    422: "A malformed request: a parameter or field missing or of the wrong type",
    503: "The store cannot be reached",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each ``{"detail": ...}``."""
    return {code: {"model": schemas.Error, "description": ERRORS[code]} for code in codes}


ATTACHMENT = {
    "description": "The attachment's bytes (text files as UTF-8 text)",
    "content": {"application/octet-stream": {}, "text/plain": {}},
}
ARTIFACT = {
    "description": "The artifact's bytes, with its media type by name (images, text as UTF-8); "
    "`download=true` asks the browser to save it",
    "content": {"application/octet-stream": {}, "text/plain": {}, "image/png": {}},
}
ARTIFACT_TEXT_PREVIEW = 256 << 10
"""Text artifacts up to this size are previewed on the run page; larger ones are downloads."""
READ = errors(404, 409)  # an operation on a run or an experiment named by the client
WRITE = errors(403, 404, 409, 413)

router = APIRouter(prefix="/api", default_response_class=ApiJSON, responses=errors(400, 422, 503))


def get_store(request: Request) -> Store:
    return request.app.state.store


StoreDep = Annotated[Store, Depends(get_store)]
CsvQuery = Annotated[str | None, Query(description="comma-separated keys")]
INT64_MAX = 2**63 - 1  # the stores' integers are 64-bit
NoteId = Annotated[int, Path(ge=1, le=INT64_MAX)]
Step = Annotated[int | None, Query(ge=-INT64_MAX, le=INT64_MAX)]
RunRef = Annotated[
    str, Path(description="a run: its number (12), a UUID prefix or a unique name", examples=["1"])
]


def _csv(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


# --- runs ---------------------------------------------------------------------------------------


@router.get("/info", response_model=schemas.Info, summary="The store being served")
def info(request: Request, store: StoreDep) -> dict[str, Any]:
    from expbook import __version__
    from expbook.store.engine import display_url

    return {
        "store": display_url(store.url),
        "version": __version__,
        "schema": store.schema_version(),
        "runs": store.count_runs(RunQuery()),
        "read_only": _read_only(request),
    }


@router.get("/whoami", response_model=schemas.WhoAmI, summary="Who the server takes you for")
def whoami(request: Request) -> dict[str, Any]:
    """The API token the request carries (``expbook server``; none under ``expbook ui``)."""
    token = request.scope.get("expbook.token")
    return {
        "name": None if token is None else token.name,
        "read_only": _read_only(request),
        "auth": token is not None,
    }


def _read_only(request: Request) -> bool:
    token = request.scope.get("expbook.token")
    return bool(request.app.state.read_only or (token is not None and token.read_only))


GroupBy = Annotated[
    list[str],
    Query(description="group the selected runs by these params (repeat it): params.KEY, or * "
          "for every param but the seeds (repeats of a configuration); the answer is then a "
          "GroupPage: per group n, and per metric mean, std and the 95 % CI, as expbook "
          "compare computes them; limit and offset page the groups"),
]  # fmt: skip
MetricValue = Annotated[
    Literal["last", "min", "max", "best"],
    Query(description="which value of each run's metric is shown (grouped: used): its latest, "
          "min, max, or best (min for an error like loss, else max); a sort on metrics.KEY "
          "sorts by that value"),
]  # fmt: skip


@router.get("/runs", response_model=schemas.RunPage | schemas.GroupPage,
            summary="Runs, filtered, sorted and paged; or grouped")  # fmt: skip
def list_runs(
    store: StoreDep,
    where: Annotated[str | None, Query(description="filter expression (docs/filter.md)")] = None,
    sort: Annotated[str | None, Query(description="sort expression: '-metrics.valid/acc'")] = None,
    experiment: Annotated[list[str], Query(description="only these experiments")] = [],  # noqa: B006
    status: Annotated[list[str], Query(description="only runs of these statuses")] = [],  # noqa: B006
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    metrics: CsvQuery = None,
    params: CsvQuery = None,
    group: Annotated[str | None, Query(pattern="^experiment$")] = None,
    group_by: GroupBy = [],  # noqa: B006
    value: MetricValue = "last",
) -> dict[str, Any] | ApiJSON:
    """A page of runs with the columns to show: the params that vary among them (or
    ``params``) and the metrics most of them have (or ``metrics``), each metric's ``value``
    (latest, min, max or best; a sort on ``metrics.KEY`` sorts by it: :func:`sort_by_value`).
    With ``group=experiment`` the runs come ordered by experiment first. With ``group_by``, every
    run the query selects is grouped (see ``server/groups.py``) and a page of groups comes
    back."""
    if value != "last" and sort:
        sort = sort_by_value(sort, value)
    if group == "experiment":
        sort = "experiment, " + (sort or "-number")
    query = RunQuery(
        where=where or None,
        sort=sort or None,
        experiments=tuple(experiment),
        statuses=tuple(parse_status(s) for s in status),
        limit=limit,
        offset=offset,
    )
    if group_by:
        from expbook.server.groups import grouped_page

        page = grouped_page(store, query, group_by, _csv(metrics), value, limit, offset)
        return ApiJSON(page)  # not re-validated: it may list 10,000 runs' ids and values
    found = store.find_runs(query)
    total = len(found) + offset
    if len(found) == limit or offset:
        total = store.count_runs(query)
    param_keys = _csv(params) or varying_params(found)[:MAX_PARAM_COLUMNS]
    metric_keys = _csv(metrics) or common_metrics(found)
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "params": param_keys,
        "metrics": metric_keys,
        "runs": [run_row(run, param_keys, metric_keys, value) for run in found],
        "lists": list_params(found, param_keys),
    }


def sort_by_value(sort: str, value: str) -> str:
    """``sort`` with each ``metrics.KEY`` term sorting by the value the table shows: with
    ``value`` min or max ``min(metrics.KEY)``/``max(metrics.KEY)``, with best the min of an
    error like loss, else the max (:func:`expbook.report.stats.resolve_value`).

    Raises:
        FilterSyntaxError: ``sort`` does not parse.
    """
    from expbook.query import parse_sort
    from expbook.report.stats import resolve_value

    terms = []
    for key in parse_sort(sort):
        field = key.field
        text = field.label()
        if field.scope in ("param", "metric"):
            which = field.aggregate
            if field.scope == "metric" and which == "last":
                which = resolve_value(field.name, value)
            quoted = field.name.replace("\\", "\\\\").replace("'", "\\'")
            text = f"{field.scope}s.'{quoted}'"
            text = text if which == "last" else f"{which}({text})"
        terms.append(("-" if key.descending else "") + text)
    return ", ".join(terms)


def list_params(runs: list[RunRecord], keys: list[str]) -> list[dict[str, Any]]:
    """The params among ``keys`` that are lists of words, element-wise
    (:func:`expbook.columns.list_spread`): what all runs share and what each has of the rest;
    for two runs also what the second removed and added."""
    found = []
    for key in keys:
        spread = list_spread([run.params.get(key, MISSING) for run in runs])
        if spread is None:
            continue
        row: dict[str, Any] = {
            "key": key,
            "common": list(spread.common),
            "varying": list(spread.varying),
            "runs": {
                str(run.number): None if has is None else list(has)
                for run, has in zip(runs, spread.present, strict=True)
            },
        }
        if len(runs) == 2 and None not in spread.present:
            first, second = (set(has or ()) for has in spread.present)
            row["removed"] = [e for e in spread.present[0] or () if e not in second]
            row["added"] = [e for e in spread.present[1] or () if e not in first]
        found.append(row)
    return found


@router.get("/list-params", response_model=schemas.ListParams, responses=READ,
            summary="Params that are lists of words, element-wise, across runs")  # fmt: skip
def get_list_params(
    store: StoreDep,
    run: Annotated[list[str], Query(description="run refs (repeat the parameter)")],
) -> dict[str, Any]:
    """For the runs named (in that order; the compare page's), each param that is a list of
    words in them (Cargo ``--features``, a repeated ``--tag``) and differs: the elements all
    share, those that vary and which each run has; for two runs, the elements the second
    removed and added, as ``expbook diff`` shows them."""
    if len(run) > MAX_SERIES:
        raise HTTPException(400, f"at most {MAX_SERIES} runs per request")
    records = list({record.id: record for record in map(store.run, run)}.values())
    keys = sorted({key for record in records for key in record.params})
    return {"lists": list_params(records, keys)}


def run_row(
    run: RunRecord, param_keys: list[str], metric_keys: list[str], value: str = "last"
) -> dict[str, Any]:
    """One line of the runs table: identity, status, times and the chosen columns; each metric's
    ``value`` is its latest, or (``value``: min, max, best) that of its summary, as the grouped
    table and ``expbook compare`` read it (:func:`expbook.report.stats.metric_value`)."""
    from expbook.report.stats import metric_value

    return {
        "id": run.id,
        "number": run.number,
        "name": run.name,
        "status": run.status.value,
        "experiment": run.experiment,
        "kind": run.kind,
        "parent_number": run.parent_number,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration": run.duration,
        "tags": list(run.tags),
        "commit": run.git.short_commit,
        "dirty": run.git.dirty,
        "params": {key: run.params[key] for key in param_keys if key in run.params},
        "metrics": {
            key: {"value": metric_value(run, key, value), "unit": run.metrics[key].unit}
            for key in metric_keys
            if key in run.metrics
        },
    }


@router.get("/runs/{ref}", response_model=schemas.RunDetail, summary="Everything about one run",
            responses=READ)  # fmt: skip
def get_run(ref: RunRef, store: StoreDep) -> dict[str, Any]:
    """``ref`` is a number (``12``), a UUID prefix or a unique name."""
    return run_detail(store, store.run(ref))


def run_detail(store: Store, run: RunRecord) -> dict[str, Any]:
    data = run.to_dict()
    for note in data["notes"]:
        note["html"] = render_markdown(note["text"])
    from expbook.system.summary import PREFIX, system_charts, system_lines

    keys = store.series_keys(run.id)
    data["series_keys"] = keys
    metrics = [key for key in keys if not key.startswith(PREFIX)]
    data["charts"] = [{"title": title, "keys": group} for title, group in metric_groups(metrics)]
    data["system"] = [{"label": label, "text": text} for label, text in system_lines(store, run)]
    data["system_charts"] = [{"title": t, "keys": group} for t, group in system_charts(keys)]
    data["attachments"] = store.list_attachments(run.id)
    data["children"] = [
        {"number": child.number, "name": child.name, "kind": child.kind}
        for child in store.find_runs(RunQuery(where=f"parent = {run.number}", sort="number"))
    ]
    data["artifacts"] = [artifact_out(a) for a in store.list_artifacts(run.id)]
    return data


def artifact_out(artifact: ArtifactRecord) -> dict[str, Any]:
    """An artifact as the API gives it: with its media type and what the page can preview."""
    from expbook import artifacts

    kind = artifacts.media_type(artifact.name)
    text = artifacts.is_text(artifact.name)
    preview = "image" if kind.startswith("image/") else "text" if text else None
    if preview == "text" and artifact.size > ARTIFACT_TEXT_PREVIEW:
        preview = None
    return {
        "name": artifact.name, "sha256": artifact.sha256, "size": artifact.size,
        "logged_at": artifact.logged_at, "media_type": kind, "preview": preview,
    }  # fmt: skip


@router.patch("/runs/{ref}", response_model=schemas.RunDetail, summary="Rename or move a run",
              responses=WRITE)  # fmt: skip
def update_run(ref: RunRef, change: schemas.RunChange, store: StoreDep, request: Request) -> Any:
    _writable(request)
    fields = change.model_dump(exclude_unset=True)
    if fields:
        store.update_run(ref, **fields)
    return get_run(fields.get("name") or ref, store)


@router.post("/runs/{ref}/notes", response_model=schemas.RunDetail, summary="Add a note",
             responses=WRITE)  # fmt: skip
def add_note(ref: RunRef, note: schemas.NoteText, store: StoreDep, request: Request) -> Any:
    _writable(request)
    store.add_note(ref, note.text)
    return get_run(ref, store)


@router.put("/runs/{ref}/notes/{note_id}", response_model=schemas.RunDetail,
            summary="Replace a note's text", responses=WRITE)  # fmt: skip
def edit_note(
    ref: RunRef, note_id: NoteId, note: schemas.NoteText, store: StoreDep, request: Request
) -> Any:
    _writable(request)
    store.edit_note(ref, note_id, note.text)
    return get_run(ref, store)


@router.delete("/runs/{ref}/notes/{note_id}", response_model=schemas.RunDetail,
               summary="Delete a note", responses=WRITE)  # fmt: skip
def delete_note(ref: RunRef, note_id: NoteId, store: StoreDep, request: Request) -> Any:
    _writable(request)
    store.edit_note(ref, note_id, None)
    return get_run(ref, store)


@router.post("/runs/{ref}/tags", response_model=schemas.RunDetail, summary="Add tags",
             responses=WRITE)  # fmt: skip
def add_tags(ref: RunRef, tags: schemas.Tags, store: StoreDep, request: Request) -> Any:
    _writable(request)
    store.add_tags(ref, *tags.tags)
    return get_run(ref, store)


@router.delete("/runs/{ref}/tags/{tag}", response_model=schemas.RunDetail,
               summary="Remove a tag", responses=WRITE)  # fmt: skip
def remove_tag(ref: RunRef, tag: str, store: StoreDep, request: Request) -> Any:
    _writable(request)
    store.remove_tags(ref, tag)
    return get_run(ref, store)


@router.get("/runs/{ref}/output", response_model=schemas.Output,
            summary="What the run's program printed", responses=READ)  # fmt: skip
def get_output(
    ref: RunRef,
    store: StoreDep,
    tail: Annotated[int, Query(ge=1, le=100_000, description="at most this many lines")] = 200,
    after: Annotated[
        int, Query(ge=0, le=INT64_MAX, description="only chunks after this cursor")
    ] = 0,
) -> dict[str, Any]:
    """The last ``tail`` lines (of what came after ``after``, a cursor from an earlier
    answer: poll with it to follow a running program)."""
    run_id = store.resolve_run(ref)
    wanted = OUTPUT_TAIL_CHUNKS
    while True:  # a chunk is one flush (0.5 s) of output: read more until `tail` lines
        chunks = store.get_output(run_id, after=after, last=wanted)
        lines = "".join(chunk.text for chunk in chunks).splitlines()
        older = len(chunks) == wanted  # there may be more before these
        if len(lines) >= tail or not older or wanted >= OUTPUT_MAX_CHUNKS:
            break
        wanted *= 4
    return {
        "lines": lines[-tail:],
        "truncated": len(lines) > tail or older,
        "cursor": chunks[-1].id if chunks else after,
    }


@router.get("/runs/{ref}/attachments/{name:path}", summary="Download an attachment",
            response_class=Response, responses={**READ, 200: ATTACHMENT})  # fmt: skip
def get_attachment(ref: RunRef, name: str, store: StoreDep) -> Response:
    content = store.get_attachment(store.resolve_run(ref), name)
    if content is None:
        raise HTTPException(404, f"run {ref} has no attachment {name!r}")
    textual = name.endswith((".diff", ".txt", ".log", ".json", ".yaml", ".toml", ".md"))
    media = "text/plain; charset=utf-8" if textual else "application/octet-stream"
    return Response(content, media_type=media)


@router.get("/runs/{ref}/artifacts/{name:path}", summary="Download an artifact",
            response_class=Response, responses={**READ, 200: ARTIFACT})  # fmt: skip
def get_artifact(ref: RunRef, name: str, store: StoreDep, download: bool = False) -> Response:
    from expbook import artifacts

    found = [a for a in store.list_artifacts(store.resolve_run(ref)) if a.name == name]
    if not found:
        raise HTTPException(404, f"run {ref} has no artifact {name!r}")
    blob = store.blobs().open(found[0].sha256)
    kind = artifacts.media_type(name)
    if artifacts.is_text(name):
        kind += "; charset=utf-8"
    filename = quote(name.rsplit("/", 1)[-1])
    headers = {
        "Content-Length": str(found[0].size),
        "ETag": f'"{found[0].sha256}"',
        "Content-Security-Policy": "sandbox",  # an SVG or HTML opened alone runs nothing
        "Content-Disposition": f"{'attachment' if download else 'inline'}; "
        f"filename*=UTF-8''{filename}",
    }

    def chunks() -> Iterator[bytes]:
        with blob:
            while chunk := blob.read(1 << 20):
                yield chunk

    return StreamingResponse(chunks(), media_type=kind, headers=headers)


# --- series -------------------------------------------------------------------------------------


@router.get("/series", response_model=schemas.SeriesList,
            summary="Metric series, downsampled for display", responses=READ)  # fmt: skip
def get_series(
    store: StoreDep,
    run: Annotated[list[str], Query(description="run refs (repeat the parameter)")],
    key: Annotated[list[str], Query(description="metric keys (repeat the parameter)")],
    points: Annotated[int, Query(ge=4, le=1_000_000, description="budget per series")] = 1500,
    step_min: Step = None,
    step_max: Step = None,
) -> ApiJSON:
    """Each (run, key) series that exists, within the step range, reduced to about
    ``points`` points that draw like the whole (each bucket's first, min and max point). A
    chart asks again with the visible step range when zoomed, for finer data."""
    from expbook.downsample import downsample

    if len(run) * len(key) > MAX_SERIES:
        raise HTTPException(400, f"at most {MAX_SERIES} series per request (runs x keys)")
    found = []
    for ref in run:
        record = store.run(ref)
        for name in key:
            try:
                series = store.get_series(record.id, name, step_min=step_min, step_max=step_max)
            except MetricNotFoundError:
                continue
            shown = downsample(series, points)
            found.append(
                {
                    "run": record.number,
                    "name": record.name,
                    "key": name,
                    "total": shown.total,
                    "reduced": shown.reduced,
                    "steps": shown.steps.tolist(),
                    "values": float_list(shown.values),
                    "epochs": float_list(shown.epochs),
                    "times": float_list(shown.times),
                }
            )
    return ApiJSON({"series": found})  # not re-validated: it may hold a million numbers


# --- experiments --------------------------------------------------------------------------------


@router.get("/experiments", response_model=list[schemas.Experiment], summary="All experiments")
def list_experiments(store: StoreDep) -> list[dict[str, Any]]:
    return [experiment_dict(e) for e in store.list_experiments()]


def experiment_dict(experiment: ExperimentRecord) -> dict[str, Any]:
    return {
        "id": experiment.id,
        "name": experiment.name,
        "description": experiment.description,
        "hypothesis": experiment.hypothesis,
        "conclusion": experiment.conclusion,
        "created_at": experiment.created_at,
        "updated_at": experiment.updated_at,
        "run_count": experiment.run_count,
        "html": {
            field: render_markdown(getattr(experiment, field) or "")
            for field in ("description", "hypothesis", "conclusion")
        },
    }


@router.get("/experiments/{name:path}", response_model=schemas.ExperimentDetail,
            summary="An experiment, its runs and its best run", responses=READ)  # fmt: skip
def get_experiment(
    name: str,
    store: StoreDep,
    metric: Annotated[str | None, Query(description="the metric that ranks runs")] = None,
    mode: Annotated[str | None, Query(pattern="^(min|max)$")] = None,
) -> dict[str, Any]:
    """The best run is the finished run with the lowest (``mode=min``) or highest latest value
    of ``metric``; by default the first of the runs' common metrics, minimised when its name
    says it is an error (``loss``, ``err``, ``mae``...)."""
    data = experiment_dict(store.get_experiment(name))
    found = store.find_runs(RunQuery(experiments=(name,), sort="number"))
    param_keys = varying_params(found)[:MAX_PARAM_COLUMNS]
    metric_keys = common_metrics(found)
    metric = metric or key_metric(metric_keys)
    if metric and metric not in metric_keys:
        metric_keys.append(metric)
    mode = mode or ("min" if metric and lower_is_better(metric) else "max")
    data.update(
        params=param_keys,
        metrics=metric_keys,
        runs=[run_row(run, param_keys, metric_keys) for run in found],
        lists=list_params(found, param_keys),
        metric=metric,
        mode=mode,
        best=_best(found, metric, mode),
    )
    return data


def _best(runs: Any, metric: str | None, mode: str) -> int | None:
    import math

    scored = [
        (value, run.number)
        for run in runs
        if metric
        and run.status is RunStatus.FINISHED
        and (value := run.metric(metric)) is not None
        and not math.isnan(value)
    ]
    if not scored:
        return None
    chosen = min(scored) if mode == "min" else max(scored, key=lambda item: (item[0], -item[1]))
    return chosen[1]


@router.patch("/experiments/{name:path}", response_model=schemas.Experiment,
              summary="Edit an experiment's question, hypothesis or conclusion",
              responses=WRITE)  # fmt: skip
def update_experiment(
    name: str,
    change: Annotated[schemas.ExperimentChange, Body()],
    store: StoreDep,
    request: Request,
) -> dict[str, Any]:
    _writable(request)
    fields = change.model_dump(exclude_unset=True)
    new_name = fields.get("name")
    if new_name and new_name != name and new_name in {e.name for e in store.list_experiments()}:
        raise HTTPException(409, f"an experiment named {new_name!r} exists already")
    record = store.update_experiment(name, **fields) if fields else store.get_experiment(name)
    return experiment_dict(record)


def _writable(request: Request) -> None:
    if request.app.state.read_only:
        raise HTTPException(403, "this server is read-only (started with --read-only)")
