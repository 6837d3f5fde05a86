"""The MLflow tracking REST API on expbook's server: ``MLFLOW_TRACKING_URI=http://host:port``
makes the ``mlflow`` client log into expbook, unchanged (docs/mlflow.md).

``install_mlflow(app)`` adds MLflow's endpoints under ``/api/2.0/mlflow/`` (experiments, runs,
metrics, as ``mlflow.store.tracking.rest_store`` calls them), the artifact proxy under
``/api/2.0/mlflow-artifacts/`` and MLflow 3's logged models. An MLflow run is an expbook run
(``expbook.server.mlflow_records`` has the mapping): what the client logs shows in ``expbook ls``,
``show`` and the UI, and every expbook run reads through ``mlflow.get_run``.

Each endpoint is a plain function of a ``Call`` (the store and the request's fields) returning
the response's dict; ``mlflow_wire.endpoint`` does the JSON, the worker thread and MLflow's
error JSON. Endpoints expbook does not have answer ENDPOINT_NOT_FOUND naming themselves.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from expbook.errors import MetricNotFoundError
from expbook.importers import check_experiment_name
from expbook.model import RunRecord, RunStatus
from expbook.server.mlflow_records import (
    ATTACHMENT,
    DEFAULT_ID,
    DEFAULT_NAME,
    EXPERIMENT_FIELDS,
    HEARTBEAT_INTERVAL,
    NOTE,
    PARENT,
    RUN_NAME,
    SOURCE,
    STATUS_FROM_MLFLOW,
    USER,
    Experiments,
    Extras,
    check_tag_key,
    default_run_name,
    experiment_json,
    param_text,
    param_value,
    plan_tags,
    run_info,
    run_json,
    run_lock,
    run_tags,
    seconds,
    split_tag,
)
from expbook.server.mlflow_search import (
    experiment_matches,
    experiments_sort,
    max_results,
    page_token,
    parse_filter,
    read_page_token,
    runs_filter,
    runs_sort,
)
from expbook.server.mlflow_wire import (
    Args,
    Call,
    Handler,
    MlflowApiError,
    endpoint,
    error_response,
    invalid,
    not_found,
    to_number,
)
from expbook.store.base import RunQuery, RunSpec, Store, WriteBatch
from expbook.store.chunks import Points
from expbook.validation import check_key, check_step

PREFIX = "/api/2.0/mlflow"
READ_POSTS = (f"{PREFIX}/runs/search", f"{PREFIX}/experiments/search",
              f"{PREFIX}/logged-models/search")  # fmt: skip
"""POST endpoints that only read: a read-only token may call them."""

_EXPERIMENT_TAGS = "mlflow.experiment.{}.tags"
"""The store setting holding an experiment's other MLflow tags (JSON), by experiment id."""


def install_mlflow(app: FastAPI) -> None:
    """Add the MLflow tracking API, its artifact proxy and logged models to ``app``."""
    from expbook.server import mlflow_artifacts, mlflow_models

    for method, path, handler, writes in TRACKING + mlflow_models.ENDPOINTS:
        app.add_api_route(
            f"{PREFIX}/{path}",
            endpoint(handler, writes=writes),
            methods=[method],
            include_in_schema=False,
        )
    mlflow_artifacts.install(app)
    app.add_api_route(
        f"{PREFIX}/{{rest:path}}",
        _unknown,
        methods=["GET", "POST", "PATCH", "DELETE", "PUT"],
        include_in_schema=False,
    )
    _declare_reads()


def _declare_reads() -> None:
    """Tell the auth guard which POSTs only read (``security.READ_POSTS``, where it exists)."""
    from expbook.server import security

    reads = getattr(security, "READ_POSTS", None)
    if isinstance(reads, set):
        reads.update(READ_POSTS)


async def _unknown(request: Request) -> Response:
    return error_response(
        "ENDPOINT_NOT_FOUND",
        f"expbook does not implement MLflow's {request.method} {request.url.path} "
        "(docs/mlflow.md lists what it does)",
    )


# --- experiments --------------------------------------------------------------------------------


def get_experiment_by_name(call: Call) -> dict[str, Any]:
    name = call.fields.required("experiment_name")
    experiments = Experiments(call.store)
    record = experiments.by_name.get(name)
    if record is None and name != DEFAULT_NAME:
        raise not_found(f"Could not find experiment with name '{name}'")
    return {"experiment": _experiment(call.store, record)}


def get_experiment(call: Call) -> dict[str, Any]:
    experiment_id = call.fields.required("experiment_id")
    experiments = Experiments(call.store)
    experiments.name_of(experiment_id)
    return {"experiment": _experiment(call.store, experiments.by_id.get(experiment_id))}


def create_experiment(call: Call) -> dict[str, Any]:
    name = call.fields.required("name")
    tags = call.fields.pairs("tags")
    check_experiment_name(name)
    store = call.store
    if name == DEFAULT_NAME or name in Experiments(store).by_name:
        raise MlflowApiError("RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.")
    record = store.create_experiment(name, description=tags.pop(NOTE, None) or None)
    _set_experiment_tags(store, str(record.id), record.name, tags)
    return {"experiment_id": str(record.id)}


def search_experiments(call: Call) -> dict[str, Any]:
    fields = call.fields
    limit = max_results(fields.integer("max_results"), 1000)
    offset = read_page_token(fields.text("page_token"))
    clauses = parse_filter(fields.text("filter"))
    sort = experiments_sort(fields.texts("order_by"))
    if str(fields.data.get("view_type", "ACTIVE_ONLY")).upper() in ("DELETED_ONLY", "2"):
        return {"experiments": []}
    experiments = Experiments(call.store)
    every = [_experiment(call.store, None)]
    every += [_experiment(call.store, record) for record in experiments.records]
    found = [e for e in every if experiment_matches(clauses, e)]
    sort(found)
    page: dict[str, Any] = {"experiments": found[offset : offset + limit]}
    if offset + limit < len(found):
        page["next_page_token"] = page_token(offset + limit)
    return page


def update_experiment(call: Call) -> dict[str, Any]:
    experiment_id = call.fields.required("experiment_id")
    new_name = call.fields.required("new_name")
    name = _experiment_name(call.store, experiment_id)
    check_experiment_name(new_name)
    call.store.update_experiment(name, name=new_name)
    return {}


def set_experiment_tag(call: Call) -> dict[str, Any]:
    experiment_id = call.fields.required("experiment_id")
    key = call.fields.required("key")
    value = call.fields.text("value", default="") or ""
    name = _experiment_name(call.store, experiment_id, default_ok=True)
    _set_experiment_tags(call.store, experiment_id, name, {key: value})
    return {}


def delete_experiment_tag(call: Call) -> dict[str, Any]:
    experiment_id = call.fields.required("experiment_id")
    key = call.fields.required("key")
    name = _experiment_name(call.store, experiment_id, default_ok=True)
    _set_experiment_tags(call.store, experiment_id, name, {key: None})
    return {}


def _no_experiment_deletion(call: Call) -> dict[str, Any]:
    raise MlflowApiError(
        "NOT_IMPLEMENTED",
        "expbook does not delete experiments through MLflow: move or delete their runs "
        "(expbook rm, mlflow.delete_run)",
    )


def _experiment_name(store: Store, experiment_id: str, *, default_ok: bool = False) -> str | None:
    name = Experiments(store).name_of(experiment_id)
    if name is None and not default_ok:
        raise invalid("the Default experiment (id 0) cannot be renamed: it is runs without one")
    return name


def _experiment(store: Store, record: Any) -> dict[str, Any]:
    experiment_id = DEFAULT_ID if record is None else str(record.id)
    return experiment_json(record, _experiment_tags(store, experiment_id))


def _experiment_tags(store: Store, experiment_id: str) -> dict[str, str]:
    import json

    text = store.get_setting(_EXPERIMENT_TAGS.format(experiment_id))
    try:
        tags = json.loads(text) if text else {}
    except ValueError:
        tags = {}
    return tags if isinstance(tags, dict) else {}


def _set_experiment_tags(
    store: Store, experiment_id: str, name: str | None, tags: Mapping[str, str | None]
) -> None:
    """Set (None: delete) experiment tags: the expbook fields (description...) on the
    experiment, the others in a store setting."""
    import json

    fields = {EXPERIMENT_FIELDS[k]: v or None for k, v in tags.items() if k in EXPERIMENT_FIELDS}
    others = {k: v for k, v in tags.items() if k not in EXPERIMENT_FIELDS}
    for key in others:
        check_tag_key(key)
    if fields:
        if name is None:
            raise invalid("the Default experiment (id 0) has no description: it is no experiment")
        store.update_experiment(name, **fields)
    if others:
        with run_lock(f"experiment {experiment_id}"):
            kept = _experiment_tags(store, experiment_id)
            for key, value in others.items():
                if value is None:
                    kept.pop(key, None)
                else:
                    kept[key] = value
            text = json.dumps(dict(sorted(kept.items()))) if kept else None
            store.set_setting(_EXPERIMENT_TAGS.format(experiment_id), text)


# --- runs ---------------------------------------------------------------------------------------


def create_run(call: Call) -> dict[str, Any]:
    fields, store = call.fields, call.store
    experiments = Experiments(store)
    experiment = experiments.name_of(fields.text("experiment_id") or DEFAULT_ID)
    tags = fields.pairs("tags")
    name = fields.text("run_name") or tags.pop(RUN_NAME, None) or default_run_name(tags)
    tags.pop(RUN_NAME, None)
    user = fields.text("user_id")
    if user and USER not in tags:
        tags[USER] = user
    start = fields.integer("start_time")
    extras = Extras()
    changes = plan_tags(store, None, extras, tags)
    changes.update.pop("name", None)
    record = store.create_run(
        RunSpec(
            name=name,
            experiment=experiment,
            tags=sorted(changes.add),
            started_at=seconds(start) if start else time.time(),
            heartbeat_interval=HEARTBEAT_INTERVAL,
        )
    )
    batch = WriteBatch(update=changes.update)
    if extras.tags:
        batch.attachments[ATTACHMENT] = extras.dump()
    if not batch.is_empty():
        store.write(record.id, batch)
    return {"run": _run(store, record.id)}


def get_run(call: Call) -> dict[str, Any]:
    return {"run": _run(call.store, call.fields.required("run_id", "run_uuid"))}


def update_run(call: Call) -> dict[str, Any]:
    fields, store = call.fields, call.store
    run_id = fields.required("run_id", "run_uuid")
    update: dict[str, Any] = {}
    status_name = fields.text("status")
    end_time = fields.integer("end_time")
    if status_name:
        status = STATUS_FROM_MLFLOW.get(status_name.upper())
        if status is None:
            raise invalid(f"Invalid run status {status_name!r}: one of "
                          + ", ".join(STATUS_FROM_MLFLOW))  # fmt: skip
        update["status"] = status.value
        if status is RunStatus.RUNNING:
            update["ended_at"] = None
        else:
            update["ended_at"] = seconds(end_time) if end_time else time.time()
    elif end_time:
        update["ended_at"] = seconds(end_time)
    run_name = fields.text("run_name")
    if run_name:
        update["name"] = run_name
    store.write(run_id, WriteBatch(update=update, heartbeat=time.time()))
    record = _record(store, run_id)
    experiment_id = Experiments(store).id_of(record.experiment)
    return {
        "run_info": run_info(record, experiment_id, run_tags(record, Extras.read(store, run_id)))
    }


def delete_run(call: Call) -> dict[str, Any]:
    run_id = call.fields.required("run_id")
    if not call.store.delete_runs([run_id]):
        raise not_found(f"Run with id={run_id} not found")
    return {}


def restore_run(call: Call) -> dict[str, Any]:
    run_id = call.fields.required("run_id")
    _record(call.store, run_id)  # a run that exists is active: nothing to restore
    return {}


def search_runs(call: Call) -> dict[str, Any]:
    fields, store = call.fields, call.store
    limit = max_results(fields.integer("max_results"), 1000)
    offset = read_page_token(fields.text("page_token"))
    view = str(fields.data.get("run_view_type", "ACTIVE_ONLY")).upper()
    clauses = parse_filter(fields.text("filter"))
    sort = runs_sort(fields.texts("order_by"))
    experiments = Experiments(store)
    scope = _experiment_scope(experiments, fields.texts("experiment_ids"))
    if scope is None or view in ("DELETED_ONLY", "2"):
        return {"runs": []}
    where = runs_filter(clauses, lambda run_id: _run_number(store, run_id))
    where = f"({scope}) and ({where})" if where else scope
    found = store.find_runs(RunQuery(where=where, sort=sort, limit=limit + 1, offset=offset))
    page: dict[str, Any] = {
        "runs": [run_json(r, Extras.read(store, r.id), experiments) for r in found[:limit]]
    }
    if len(found) > limit:
        page["next_page_token"] = page_token(offset + limit)
    return page


def _experiment_scope(experiments: Experiments, ids: list[str]) -> str | None:
    """The expbook filter for runs of these MLflow experiments (None: none of them exists)."""
    from expbook.server.mlflow_search import quote

    names = [experiments.by_id[i].name for i in ids if i in experiments.by_id]
    parts = [f"experiment in ({', '.join(quote(n) for n in names)})"] if names else []
    if DEFAULT_ID in ids:
        parts.append("experiment is null")
    return " or ".join(parts) or None


def _run_number(store: Store, run_id: str) -> int | None:
    found = store.find_runs(RunQuery(ids=(run_id,)))
    return found[0].number if found else None


# --- logging ------------------------------------------------------------------------------------


def log_metric(call: Call) -> dict[str, Any]:
    run_id = call.fields.required("run_id", "run_uuid")
    _log(call.store, run_id, metrics=[call.fields])
    return {}


def log_param(call: Call) -> dict[str, Any]:
    fields = call.fields
    run_id = fields.required("run_id", "run_uuid")
    _log(call.store, run_id, params={fields.required("key"): fields.text("value") or ""})
    return {}


def set_tag(call: Call) -> dict[str, Any]:
    fields = call.fields
    run_id = fields.required("run_id", "run_uuid")
    _log(call.store, run_id, tags={fields.required("key"): fields.text("value") or ""})
    return {}


def log_batch(call: Call) -> dict[str, Any]:
    fields = call.fields
    run_id = fields.required("run_id")
    params: dict[str, str] = {}
    for item in fields.items("params"):
        key, value = item.required("key"), item.text("value") or ""
        if params.get(key, value) != value:
            raise invalid(
                f"Duplicate parameter keys have been submitted: '{key}' with values "
                f"'{params[key]}' and '{value}'"
            )
        params[key] = value
    _log(call.store, run_id, metrics=fields.items("metrics"), params=params,
         tags=fields.pairs("tags"))  # fmt: skip
    return {}


def delete_tag(call: Call) -> dict[str, Any]:
    fields, store = call.fields, call.store
    run_id, key = fields.required("run_id"), fields.required("key")
    with run_lock(run_id):
        record = _record(store, run_id)
        extras = Extras.read(store, run_id)
        if key not in run_tags(record, extras):
            raise not_found(f"No tag with name: {key} in run with id {run_id}")
        if key == RUN_NAME:
            raise invalid("a run keeps its name: set mlflow.runName to rename it")
        batch = WriteBatch(heartbeat=time.time())
        batch.tags_remove = {tag for tag in record.tags if split_tag(tag)[0] == key}
        column = {PARENT: "parent", SOURCE: "command", "mlflow.source.git.commit": "git_commit",
                  "mlflow.source.git.branch": "git_branch",
                  "mlflow.source.git.repoURL": "git_remote"}.get(key)  # fmt: skip
        if column is not None:
            batch.update[column] = [] if column == "command" else None
        if extras.tags.pop(key, None) is not None:
            batch.attachments[ATTACHMENT] = extras.dump()
        store.write(run_id, batch)
    return {}


def log_inputs(call: Call) -> dict[str, Any]:
    fields, store = call.fields, call.store
    run_id = fields.required("run_id")
    datasets = fields.data.get("datasets") or []
    if not isinstance(datasets, list) or not all(isinstance(d, dict) for d in datasets):
        raise invalid("datasets must be a list of DatasetInput objects")
    if not datasets:
        return {}
    with run_lock(run_id):
        _record(store, run_id)
        extras = Extras.read(store, run_id)
        known = {_dataset_key(d) for d in extras.datasets}
        extras.datasets += [d for d in datasets if _dataset_key(d) not in known]
        batch = WriteBatch(attachments={ATTACHMENT: extras.dump()}, heartbeat=time.time())
        store.write(run_id, batch)
    return {}


def _dataset_key(dataset_input: dict[str, Any]) -> tuple[str, str, str]:
    dataset = dataset_input.get("dataset") or {}
    context = [t.get("value", "") for t in dataset_input.get("tags") or [] if isinstance(t, dict)]
    return str(dataset.get("name")), str(dataset.get("digest")), ",".join(map(str, context))


def _log(
    store: Store,
    run_id: str,
    *,
    metrics: list[Args] = (),  # type: ignore[assignment]
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Log MLflow metrics, params and tags to a run in one atomic write (a heartbeat too)."""
    from expbook.server.mlflow_models import model_metrics

    now = time.time()
    batch = WriteBatch(heartbeat=now)
    linked = [m for m in metrics if m.has("model_id")]
    batch.points = _points([m for m in metrics if not m.has("model_id")], now)
    if not params and not tags and not linked:
        store.write(run_id, batch)  # the hot path: no read
        return
    with run_lock(run_id):
        record = _record(store, run_id)
        extras = Extras.read(store, run_id)
        if params:
            batch.params = _params(record, params)
        if tags:
            changes = plan_tags(store, record, extras, tags)
            batch.update, batch.tags_add, batch.tags_remove = (
                changes.update, changes.add, changes.remove
            )  # fmt: skip
            if changes.extras_changed:
                batch.attachments[ATTACHMENT] = extras.dump()
        if linked:
            model_metrics(store, run_id, extras, linked, _points(linked, now), batch)
        store.write(run_id, batch)


def _points(metrics: list[Args], now: float) -> dict[str, Points]:
    points: dict[str, Points] = {}
    for metric in metrics:
        key = check_key(metric.required("key"))
        value = to_number(metric.data.get("value"), f"metric '{key}' value")
        step = check_step(metric.integer("step", 0))
        stamp = metric.integer("timestamp")
        points.setdefault(key, Points()).append(
            step, value, seconds(stamp) if stamp is not None else now, None
        )
    return points


def _params(record: RunRecord, params: Mapping[str, str]) -> dict[str, Any]:
    """The params to write; a param logged before with another value is refused, as MLflow
    does (params are the run's inputs)."""
    found = {}
    for key, text in params.items():
        check_key(key, "param")
        if key in record.params and param_text(record.params[key]) != text:
            raise invalid(
                f"Changing param values is not allowed. Param with key='{key}' was already "
                f"logged with value='{param_text(record.params[key])}' for run "
                f"ID='{record.id}'. Attempted logging new value '{text}'."
            )
        found[key] = param_value(text)
    return found


# --- metric history -----------------------------------------------------------------------------


def get_metric_history(call: Call) -> dict[str, Any]:
    fields, store = call.fields, call.store
    run_id = fields.required("run_id", "run_uuid")
    key = fields.required("metric_key")
    _record(store, run_id)
    try:
        series = store.get_series(run_id, key)
    except MetricNotFoundError:
        return {"metrics": []}
    from expbook.server.mlflow_records import ms

    points = [
        {"key": key, "value": value, "timestamp": ms(stamp), "step": step, "run_id": run_id}
        for step, value, stamp in zip(series.steps, series.values, series.times, strict=True)
    ]
    limit = fields.integer("max_results")
    if limit is None:
        return {"metrics": points}
    offset = read_page_token(fields.text("page_token"))
    page: dict[str, Any] = {"metrics": points[offset : offset + max_results(limit, limit)]}
    if offset + limit < len(points):
        page["next_page_token"] = page_token(offset + limit)
    return page


# --- shared -------------------------------------------------------------------------------------


def _record(store: Store, run_id: str) -> RunRecord:
    found = store.find_runs(RunQuery(ids=(run_id,))) if run_id else ()
    if not found:
        raise not_found(f"Run '{run_id}' not found")
    return found[0]


def _run(store: Store, run_id: str) -> dict[str, Any]:
    return run_json(_record(store, run_id), Extras.read(store, run_id), Experiments(store))


TRACKING: list[tuple[str, str, Handler, bool]] = [
    ("GET", "experiments/get-by-name", get_experiment_by_name, False),
    ("GET", "experiments/get", get_experiment, False),
    ("POST", "experiments/create", create_experiment, True),
    ("POST", "experiments/search", search_experiments, False),
    ("GET", "experiments/search", search_experiments, False),
    ("POST", "experiments/update", update_experiment, True),
    ("POST", "experiments/set-experiment-tag", set_experiment_tag, True),
    ("POST", "experiments/delete-experiment-tag", delete_experiment_tag, True),
    ("POST", "experiments/delete", _no_experiment_deletion, True),
    ("POST", "experiments/restore", _no_experiment_deletion, True),
    ("POST", "runs/create", create_run, True),
    ("GET", "runs/get", get_run, False),
    ("POST", "runs/update", update_run, True),
    ("POST", "runs/delete", delete_run, True),
    ("POST", "runs/restore", restore_run, True),
    ("POST", "runs/search", search_runs, False),
    ("POST", "runs/log-metric", log_metric, True),
    ("POST", "runs/log-parameter", log_param, True),
    ("POST", "runs/set-tag", set_tag, True),
    ("POST", "runs/delete-tag", delete_tag, True),
    ("POST", "runs/log-batch", log_batch, True),
    ("POST", "runs/log-inputs", log_inputs, True),
    ("GET", "metrics/get-history", get_metric_history, False),
]
"""(method, path under /api/2.0/mlflow/, handler, whether it writes)."""
