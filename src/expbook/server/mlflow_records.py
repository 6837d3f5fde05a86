"""MLflow's runs and experiments as expbook's, and back (``expbook.server.mlflow``).

An MLflow run *is* an expbook run: the run id is the run's UUID, the experiment id is the
expbook experiment's id as text (``"0"``, MLflow's "Default", is "no experiment"). What MLflow
holds maps to the run's own fields wherever expbook has one (docs/mlflow.md has the table):

- params: MLflow sends text; a number or boolean is stored as one (so expbook filters compare
  it as a number) when its text is exactly how Python writes that value (``"0.001"``, ``"32"``,
  ``"True"``), else the text is kept as it is (``"1e-3"``, ``"007"``): reading gives back the
  very text that was logged;
- user tags ``key=value``: the expbook tag ``key=value`` (``key`` alone for an empty value);
- system tags with a run field: ``mlflow.runName`` (name), ``mlflow.parentRunId`` (parent),
  ``mlflow.source.name`` (command), ``mlflow.source.git.commit/branch/repoURL`` (git);
- every other tag (the other ``mlflow.*`` tags, a value over several lines), the datasets of
  ``log-inputs`` and the logged models of MLflow 3 are kept in the run's ``mlflow.json``
  attachment, the file the MLflow importer also writes (its ``tags`` and ``datasets``).
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from expbook.errors import InvalidValueError
from expbook.importers.mlflow import COLUMN_TAGS, parse_param
from expbook.model import ExperimentRecord, RunRecord, RunStatus
from expbook.server.mlflow_wire import invalid, not_found
from expbook.store.base import Store
from expbook.validation import check_tag

ATTACHMENT = "mlflow.json"
DEFAULT_ID = "0"
DEFAULT_NAME = "Default"
RUN_NAME = "mlflow.runName"
PARENT = "mlflow.parentRunId"
SOURCE = "mlflow.source.name"
USER = "mlflow.user"
NOTE = "mlflow.note.content"

STATUS_TO_MLFLOW = {
    RunStatus.RUNNING: "RUNNING",
    RunStatus.FINISHED: "FINISHED",
    RunStatus.FAILED: "FAILED",
    RunStatus.INTERRUPTED: "KILLED",
    RunStatus.CRASHED: "FAILED",  # the process died without saying so
    RunStatus.PRUNED: "KILLED",  # stopped by its sweep
}
STATUS_FROM_MLFLOW = {
    "RUNNING": RunStatus.RUNNING,
    "SCHEDULED": RunStatus.RUNNING,
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.INTERRUPTED,
}
EXPERIMENT_FIELDS = {
    NOTE: "description",
    "expbook.hypothesis": "hypothesis",
    "expbook.conclusion": "conclusion",
}
"""Experiment tags that are fields of the expbook experiment."""

HEARTBEAT_INTERVAL = 900.0
"""The heartbeat interval of runs created through MLflow: every write is a heartbeat, so a run
whose client went silent (a killed script: MLflow keeps it RUNNING for ever) shows as crashed
(FAILED to MLflow) an hour after its last write."""

_LOCKS = tuple(threading.Lock() for _ in range(64))


def run_lock(run_id: str) -> threading.Lock:
    """The lock serializing this server's read-modify-writes of one run's ``mlflow.json``."""
    return _LOCKS[zlib.crc32(run_id.encode()) % len(_LOCKS)]


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def seconds(milliseconds: int) -> float:
    return milliseconds / 1000


# --- params and tags ----------------------------------------------------------------------------


def param_text(value: Any) -> str:
    """A param as MLflow shows it: the text ``mlflow.log_param`` sends for that Python value."""
    return value if isinstance(value, str) else str(value)


def param_value(text: str) -> Any:
    """The value stored for an MLflow param's text: a number or boolean when ``param_text``
    gives exactly this text back, else the text."""
    value = parse_param(text)
    return value if not isinstance(value, str) and param_text(value) == text else text


def split_tag(tag: str) -> tuple[str, str]:
    """An expbook tag as an MLflow tag: ``key=value``, or ``key`` with an empty value."""
    key, _, value = tag.partition("=")
    return key, value


def join_tag(key: str, value: str) -> str:
    return f"{key}={value}" if value else key


def is_run_tag(key: str, value: str) -> bool:
    """Whether an MLflow tag is kept as an expbook tag (user tags that fit one line)."""
    if key.startswith("mlflow.") or "=" in key:
        return False
    try:
        check_tag(join_tag(key, value))
    except InvalidValueError:
        return False
    return True


@dataclass(slots=True)
class Extras:
    """The run's ``mlflow.json``: what MLflow holds that has no run field."""

    tags: dict[str, str] = field(default_factory=dict)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    rest: dict[str, Any] = field(default_factory=dict)
    """Other keys (the importer's provenance: tracking URI, original ids), kept as they are."""

    @classmethod
    def load(cls, data: bytes | None) -> Extras:
        try:
            content = json.loads(data) if data else {}
        except ValueError:
            content = {}
        if not isinstance(content, dict):
            content = {}
        tags = content.pop("tags", None)
        datasets = content.pop("datasets", None)
        models = content.pop("models", None)
        return cls(
            tags=dict(tags) if isinstance(tags, dict) else {},
            datasets=list(datasets) if isinstance(datasets, list) else [],
            models=dict(models) if isinstance(models, dict) else {},
            rest=content,
        )

    @classmethod
    def read(cls, store: Store, run_id: str) -> Extras:
        return cls.load(store.get_attachment(run_id, ATTACHMENT))

    def dump(self) -> bytes:
        content = {**self.rest, "tags": dict(sorted(self.tags.items()))}
        if self.datasets:
            content["datasets"] = self.datasets
        if self.models:
            content["models"] = self.models
        return json.dumps(content, indent=2).encode()

    def visible_tags(self) -> dict[str, str]:
        """The tags kept here that MLflow shows: system tags and values an expbook tag cannot
        hold (an imported run's file also lists its user tags, which are expbook tags)."""
        return {k: v for k, v in self.tags.items() if not is_run_tag(k, v)}


@dataclass(slots=True)
class TagChanges:
    """What setting MLflow tags changes on a run."""

    update: dict[str, Any] = field(default_factory=dict)
    add: set[str] = field(default_factory=set)
    remove: set[str] = field(default_factory=set)
    extras_changed: bool = False


def plan_tags(
    store: Store, record: RunRecord | None, extras: Extras, tags: Mapping[str, str]
) -> TagChanges:
    """The changes that set ``tags`` on a run (``record`` None: a run being created).
    ``extras`` is changed in place."""
    changes = TagChanges()
    current = set(record.tags) if record is not None else set()
    for key, value in tags.items():
        check_tag_key(key)
        column = _column_change(store, key, value)
        if column is not None:
            changes.update.update(column)
            continue
        same_key = {tag for tag in current | changes.add if split_tag(tag)[0] == key}
        if is_run_tag(key, value):
            new = join_tag(key, value)
            changes.add = (changes.add - same_key) | {new}
            changes.remove |= same_key - {new}
            changes.remove.discard(new)
            if extras.tags.pop(key, None) is not None:
                changes.extras_changed = True
        else:
            changes.add -= same_key
            changes.remove |= same_key & current
            if extras.tags.get(key) != value:
                extras.tags[key] = value
                changes.extras_changed = True
    return changes


def _column_change(store: Store, key: str, value: str) -> dict[str, Any] | None:
    """The run field an MLflow system tag sets, or None when it has none (or the value does
    not fit it: a parent that is not a run here is kept as a tag)."""
    if key == RUN_NAME:
        return {"name": value} if value.strip() and "\n" not in value else None
    if key == PARENT:
        if not value:
            return {"parent": None}
        return {"parent": value} if _run_exists(store, value) else None
    if key == SOURCE:
        return {"command": [value] if value else []}
    if key in COLUMN_TAGS:
        return {COLUMN_TAGS[key]: value or None}
    return None


def _run_exists(store: Store, run_id: str) -> bool:
    from expbook.store.base import RunQuery

    return bool(store.find_runs(RunQuery(ids=(run_id,))))


def check_tag_key(key: str) -> None:
    if not key or key != key.strip() or any(ord(c) < 32 for c in key):
        raise invalid(f"Invalid tag name: {key!r}: names are non-empty one-line text")


def default_run_name(tags: Mapping[str, str]) -> str:
    """A run created without a name is named after its script, like expbook's own runs."""
    source = tags.get(SOURCE, "")
    stem = PurePosixPath(source.replace("\\", "/")).stem if source else ""
    return stem if stem and stem not in ("__main__", "ipykernel_launcher") else "run"


# --- experiments --------------------------------------------------------------------------------


class Experiments:
    """The store's experiments as MLflow numbers them, read once per request."""

    def __init__(self, store: Store) -> None:
        self.records = store.list_experiments()
        self.by_name = {e.name: e for e in self.records}
        self.by_id = {str(e.id): e for e in self.records}

    def id_of(self, name: str | None) -> str:
        if name is None:
            return DEFAULT_ID
        record = self.by_name.get(name)
        return str(record.id) if record is not None else DEFAULT_ID

    def name_of(self, experiment_id: str) -> str | None:
        """The experiment name for an MLflow experiment id (None: the default experiment).

        Raises:
            MlflowApiError: RESOURCE_DOES_NOT_EXIST for an unknown id.
        """
        if experiment_id == DEFAULT_ID:
            return None
        record = self.by_id.get(experiment_id)
        if record is None:
            raise not_found(f"No Experiment with id={experiment_id} exists")
        return record.name


def experiment_json(record: ExperimentRecord | None, tags: Mapping[str, str]) -> dict[str, Any]:
    """An MLflow Experiment; ``record`` None is the default experiment ("0")."""
    if record is None:
        return {
            "experiment_id": DEFAULT_ID,
            "name": DEFAULT_NAME,
            "artifact_location": f"mlflow-artifacts:/{DEFAULT_ID}",
            "lifecycle_stage": "active",
            "creation_time": 0,
            "last_update_time": 0,
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        }
    shown = dict(tags)
    for tag, name in EXPERIMENT_FIELDS.items():
        value = getattr(record, name)
        if value:
            shown[tag] = value
    return {
        "experiment_id": str(record.id),
        "name": record.name,
        "artifact_location": f"mlflow-artifacts:/{record.id}",
        "lifecycle_stage": "active",
        "creation_time": ms(record.created_at),
        "last_update_time": ms(record.updated_at),
        "tags": [{"key": k, "value": v} for k, v in sorted(shown.items())],
    }


# --- runs ---------------------------------------------------------------------------------------


def artifact_uri(experiment_id: str, run_id: str) -> str:
    """Where the client sends the run's artifacts: the server's artifact proxy."""
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


def run_tags(record: RunRecord, extras: Extras) -> dict[str, str]:
    """The run's MLflow tags: those kept in ``mlflow.json``, its fields, its expbook tags."""
    tags = extras.visible_tags()
    tags[RUN_NAME] = record.name
    if record.parent_id:
        tags[PARENT] = record.parent_id
    if record.command:
        import shlex

        command = record.command
        tags[SOURCE] = command[0] if len(command) == 1 else shlex.join(command)
    for tag, value in (
        ("mlflow.source.git.commit", record.git.commit),
        ("mlflow.source.git.branch", record.git.branch),
        ("mlflow.source.git.repoURL", record.git.remote),
    ):
        if value:
            tags[tag] = value
    for tag in record.tags:
        key, value = split_tag(tag)
        tags[key] = value
    return tags


def run_info(record: RunRecord, experiment_id: str, tags: Mapping[str, str]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": record.id,
        "run_uuid": record.id,
        "run_name": record.name,
        "experiment_id": experiment_id,
        "user_id": tags.get(USER, ""),
        "status": STATUS_TO_MLFLOW[record.status],
        "start_time": ms(record.started_at),
        "artifact_uri": artifact_uri(experiment_id, record.id),
        "lifecycle_stage": "active",
    }
    if record.ended_at is not None:
        info["end_time"] = ms(record.ended_at)
    return info


def run_json(record: RunRecord, extras: Extras, experiments: Experiments) -> dict[str, Any]:
    """An MLflow Run: info, data (latest metrics, params, tags), inputs and outputs."""
    experiment_id = experiments.id_of(record.experiment)
    tags = run_tags(record, extras)
    metrics = [
        {
            "key": key,
            "value": summary.value,
            "timestamp": ms(summary.time if summary.time is not None else record.started_at),
            "step": summary.step or 0,
        }
        for key, summary in sorted(record.metrics.items())
    ]
    run: dict[str, Any] = {
        "info": run_info(record, experiment_id, tags),
        "data": {
            "metrics": metrics,
            "params": [
                {"key": key, "value": param_text(value)}
                for key, value in sorted(record.params.items())
            ],
            "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        },
        "inputs": {"dataset_inputs": extras.datasets},
    }
    outputs = [
        {"model_id": model_id, "step": model.get("step", 0)}
        for model_id, model in extras.models.items()
    ]
    if outputs:
        run["outputs"] = {"model_outputs": outputs}
    return run
