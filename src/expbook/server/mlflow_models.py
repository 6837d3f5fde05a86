"""MLflow 3's logged models, kept with the run that logged them (``expbook.server.mlflow``).

``mlflow.<flavor>.log_model`` and autolog create a LoggedModel, upload its files to the model's
artifact location, link it to the run and log the run's metrics again with the model's id. In
expbook a model belongs to its run: its files are the run's artifacts under a folder named after
the model (``model/MLmodel``, ``model/model.pkl``), its record (name, status, params, tags,
metrics) is in the run's ``mlflow.json``, and its id ``m-<run id>-<n>`` names the run, so every
model call reads one run. A model without a run (``log_model`` outside ``start_run``) is not
kept: expbook has nowhere to put it. The metrics logged again with the model's id are points
the run has already; only the ones it lacks are added.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from expbook.artifacts import check_artifact_name
from expbook.errors import InvalidValueError, MetricNotFoundError
from expbook.importers import missing_points
from expbook.server.mlflow_records import (
    ATTACHMENT,
    Experiments,
    Extras,
    ms,
    run_lock,
)
from expbook.server.mlflow_search import (
    matches,
    max_results,
    page_token,
    parse_filter,
    read_page_token,
)
from expbook.server.mlflow_wire import Args, Call, Handler, MlflowApiError, invalid, not_found
from expbook.store.base import RunQuery, Store, WriteBatch
from expbook.store.chunks import Points

_MODEL_ID = re.compile(r"m-([0-9a-f]{32})-(\d+)")
STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
HISTORY = "mlflow.log-model.history"


def create_logged_model(call: Call) -> dict[str, Any]:
    fields, store = call.fields, call.store
    run_id = fields.text("source_run_id")
    if not run_id:
        raise MlflowApiError(
            "NOT_IMPLEMENTED",
            "expbook keeps a model with the run that logs it: log it inside mlflow.start_run()",
        )
    name = fields.text("name") or "model"
    with run_lock(run_id):
        record = _run(store, run_id)
        extras = Extras.read(store, run_id)
        number = 1 + max((_number(m) for m in extras.models), default=0)
        model_id = f"m-{run_id}-{number}"
        now = ms(time.time())
        extras.models[model_id] = {
            "name": name,
            "folder": _folder(name, number, extras),
            "model_type": fields.text("model_type") or "",
            "status": "LOGGED_MODEL_PENDING",
            "status_message": "",
            "creation_timestamp_ms": now,
            "last_updated_timestamp_ms": now,
            "params": fields.pairs("params"),
            "tags": fields.pairs("tags"),
            "metrics": [],
        }
        _save(store, run_id, extras)
    experiment_id = Experiments(store).id_of(record.experiment)
    return {"model": _model_json(model_id, extras.models[model_id], run_id, experiment_id)}


def get_logged_model(call: Call) -> dict[str, Any]:
    model_id = call.fields.required("model_id")
    run_id = run_id_of(model_id)
    record = _run(call.store, run_id)
    model = _model(Extras.read(call.store, run_id), model_id)
    experiment_id = Experiments(call.store).id_of(record.experiment)
    return {"model": _model_json(model_id, model, run_id, experiment_id)}


def finalize_logged_model(call: Call) -> dict[str, Any]:
    status = call.fields.required("status")
    if status not in STATUSES:
        raise invalid(f"Invalid logged model status {status!r}: one of {', '.join(STATUSES)}")
    _change(call, lambda model: model.update(status=status))
    return get_logged_model(call)


def set_logged_model_tags(call: Call) -> dict[str, Any]:
    tags = call.fields.pairs("tags")
    _change(call, lambda model: model["tags"].update(tags))
    return {}


def delete_logged_model_tag(call: Call) -> dict[str, Any]:
    key = call.fields.required("tag_key")
    _change(call, lambda model: model["tags"].pop(key, None))
    return {}


def log_logged_model_params(call: Call) -> dict[str, Any]:
    params = call.fields.pairs("params")
    _change(call, lambda model: model["params"].update(params))
    return {}


def search_logged_models(call: Call) -> dict[str, Any]:
    """The models of the runs of these experiments, filtered on their name, model_id,
    source_run_id, status or model_type (newest first; no ordering, no datasets)."""
    fields, store = call.fields, call.store
    if fields.items("order_by") or fields.items("datasets"):
        raise invalid("expbook searches logged models without order_by or datasets")
    clauses = parse_filter(fields.text("filter"))
    for clause in clauses:
        if clause.kind != "attribute" or clause.key not in _SEARCHABLE:
            raise invalid(f"Invalid filter clause {clause.text!r}: logged models filter on "
                          + ", ".join(_SEARCHABLE))  # fmt: skip
    limit = max_results(fields.integer("max_results"), 100)
    offset = read_page_token(fields.text("page_token"))
    experiments = Experiments(store)
    wanted = set(fields.texts("experiment_ids"))
    models = []
    for record in store.find_runs(RunQuery()):
        experiment_id = experiments.id_of(record.experiment)
        if experiment_id not in wanted or ATTACHMENT not in store.list_attachments(record.id):
            continue
        for model_id, model in Extras.read(store, record.id).models.items():
            found = _model_json(model_id, model, record.id, experiment_id)
            if all(matches(found["info"].get(c.key), c) for c in clauses):
                models.append(found)
    models.sort(key=lambda m: -m["info"]["creation_timestamp_ms"])
    page: dict[str, Any] = {"models": models[offset : offset + limit]}
    if offset + limit < len(models):
        page["next_page_token"] = page_token(offset + limit)
    return page


_SEARCHABLE = ("name", "model_id", "source_run_id", "status", "model_type")


def log_outputs(call: Call) -> dict[str, Any]:
    """A run's output models (``log_model`` links each to its run and step)."""
    fields, store = call.fields, call.store
    run_id = fields.required("run_id")
    outputs = fields.items("models")
    with run_lock(run_id):
        _run(store, run_id)
        extras = Extras.read(store, run_id)
        for output in outputs:
            model_id = output.required("model_id")
            if model_id in extras.models:
                extras.models[model_id]["step"] = output.integer("step", 0)
        _save(store, run_id, extras)
    return {}


def record_logged_model(call: Call) -> dict[str, Any]:
    """MLflow 2's ``runs/log-model``: the model's description, added to the run's
    ``mlflow.log-model.history`` tag (a JSON list, as MLflow keeps it)."""
    fields, store = call.fields, call.store
    run_id = fields.required("run_id")
    try:
        model = json.loads(fields.required("model_json"))
    except ValueError:
        raise invalid("model_json is not JSON") from None
    with run_lock(run_id):
        _run(store, run_id)
        extras = Extras.read(store, run_id)
        try:
            history = json.loads(extras.tags.get(HISTORY, "[]"))
        except ValueError:
            history = []
        extras.tags[HISTORY] = json.dumps([*history, model])
        _save(store, run_id, extras)
    return {}


def model_metrics(
    store: Store,
    run_id: str,
    extras: Extras,
    metrics: list[Args],
    points: dict[str, Points],
    batch: WriteBatch,
) -> None:
    """Add metrics logged with a model's id to ``batch``: the points the run lacks (log_model
    logs the run's points again with the model's id), and each to its model's record."""
    for key, logged in points.items():
        try:
            stored = store.get_series(run_id, key)
        except MetricNotFoundError:
            stored = None
        new = missing_points(logged, stored) if stored is not None else logged
        if len(new):
            batch.points.setdefault(key, Points()).extend(new)
    changed = False
    for metric in metrics:
        model = extras.models.get(metric.required("model_id"))
        if model is not None:
            model["metrics"].append({k: metric.data.get(k) for k in ("key", "value", "timestamp",
                                                                     "step")})  # fmt: skip
            changed = True
    if changed:
        batch.attachments[ATTACHMENT] = extras.dump()


def _change(call: Call, change: Any) -> None:
    model_id = call.fields.required("model_id")
    run_id = run_id_of(model_id)
    with run_lock(run_id):
        extras = Extras.read(call.store, run_id)
        model = _model(extras, model_id)
        change(model)
        model["last_updated_timestamp_ms"] = ms(time.time())
        _save(call.store, run_id, extras)


def _save(store: Store, run_id: str, extras: Extras) -> None:
    store.write(run_id, WriteBatch(attachments={ATTACHMENT: extras.dump()}))


def _run(store: Store, run_id: str) -> Any:
    found = store.find_runs(RunQuery(ids=(run_id,)))
    if not found:
        raise not_found(f"Run '{run_id}' not found")
    return found[0]


def model_folder(store: Store, model_id: str) -> str:
    """The artifact folder of the run that holds a logged model's files.

    Raises:
        MlflowApiError: RESOURCE_DOES_NOT_EXIST for an unknown model.
    """
    return _model(Extras.read(store, run_id_of(model_id)), model_id)["folder"]


def run_id_of(model_id: str) -> str:
    match = _MODEL_ID.fullmatch(model_id)
    if match is None:
        raise not_found(f"Logged model with ID '{model_id}' not found")
    return match.group(1)


def _number(model_id: str) -> int:
    match = _MODEL_ID.fullmatch(model_id)
    return int(match.group(2)) if match else 0


def _model(extras: Extras, model_id: str) -> dict[str, Any]:
    model = extras.models.get(model_id)
    if model is None:
        raise not_found(f"Logged model with ID '{model_id}' not found")
    return model


def _folder(name: str, number: int, extras: Extras) -> str:
    """The artifact folder of a new model: its name, unless another model of the run has it."""
    try:
        folder = check_artifact_name(name)
    except InvalidValueError:
        folder = "model"
    taken = {model.get("folder") for model in extras.models.values()}
    return folder if folder not in taken else f"{folder}-{number}"


def _model_json(
    model_id: str, model: dict[str, Any], run_id: str, experiment_id: str
) -> dict[str, Any]:
    location = f"mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts"
    info = {
        "model_id": model_id,
        "experiment_id": experiment_id,
        "name": model["name"],
        "creation_timestamp_ms": model["creation_timestamp_ms"],
        "last_updated_timestamp_ms": model["last_updated_timestamp_ms"],
        "artifact_uri": location,
        "status": model["status"],
        "model_type": model.get("model_type", ""),
        "source_run_id": run_id,
        "status_message": model.get("status_message", ""),
        "tags": [{"key": k, "value": v} for k, v in sorted(model["tags"].items())],
    }
    data = {
        "params": [{"key": k, "value": v} for k, v in sorted(model["params"].items())],
        "metrics": [{**m, "run_id": run_id, "model_id": model_id} for m in model["metrics"]],
    }
    return {"info": info, "data": data}


ENDPOINTS: list[tuple[str, str, Handler, bool]] = [
    ("POST", "logged-models", create_logged_model, True),
    ("POST", "logged-models/search", search_logged_models, False),
    ("GET", "logged-models/{model_id}", get_logged_model, False),
    ("PATCH", "logged-models/{model_id}", finalize_logged_model, True),
    ("PATCH", "logged-models/{model_id}/tags", set_logged_model_tags, True),
    ("DELETE", "logged-models/{model_id}/tags/{tag_key}", delete_logged_model_tag, True),
    ("POST", "logged-models/{model_id}/params", log_logged_model_params, True),
    ("POST", "runs/outputs", log_outputs, True),
    ("POST", "runs/log-model", record_logged_model, True),
]
"""(method, path under /api/2.0/mlflow/, handler, whether it writes)."""
