"""MLflow runs -> runs, read with the ``mlflow`` client (``MlflowClient``).

Every MLflow experiment becomes the expbook experiment of the same name (its note its
description); every active run becomes a run whose UUID is the MLflow run id, with its params
(numbers and booleans parsed from MLflow's strings), metric histories (step, timestamp), tags,
note (``mlflow.note.content``), status, start and end times, parent (``mlflow.parentRunId``,
once the parent is imported) and git commit/branch/remote. MLflow's other system tags, the
user, the artifact URI and the experiment id are kept in the run's ``mlflow.json`` attachment.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expbook.importers import ImportSourceError, SourceRun, require, run_uuid
from expbook.model import RunStatus
from expbook.store.chunks import Points

STATUSES = {
    "FINISHED": RunStatus.FINISHED,
    "FAILED": RunStatus.FAILED,
    "KILLED": RunStatus.INTERRUPTED,
    "RUNNING": RunStatus.RUNNING,
    "SCHEDULED": RunStatus.RUNNING,
}
NOTE = "mlflow.note.content"
COLUMN_TAGS = {
    "mlflow.source.git.commit": "git_commit",
    "mlflow.source.git.branch": "git_branch",
    "mlflow.source.git.repoURL": "git_remote",
}
USED_TAGS = {"mlflow.runName", NOTE, "mlflow.parentRunId", "mlflow.source.name", *COLUMN_TAGS}
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_HEX32 = re.compile(r"[0-9a-f]{32}")


@dataclass(slots=True)
class MlflowSource:
    """What was read: the runs, the experiments (name -> description) and what was left."""

    uri: str
    runs: list[SourceRun] = field(default_factory=list)
    experiments: dict[str, str | None] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)


def resolve_uri(uri: str | None) -> str:
    """The tracking URI to read: ``uri``, else ``$MLFLOW_TRACKING_URI``, else ``./mlruns`` or
    ``./mlflow.db`` when one exists. A path is a file store directory or a SQLite file.

    Raises:
        ImportSourceError: nothing to read there (MLflow would create an empty store).
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        for default in ("mlruns", "mlflow.db"):
            if Path(default).exists():
                return resolve_uri(default)
        raise ImportSourceError(
            "no MLflow tracking URI: give one (a directory such as ./mlruns, "
            "sqlite:///mlflow.db, http://host:5000) or set MLFLOW_TRACKING_URI"
        )
    scheme = urllib.parse.urlsplit(uri).scheme
    if scheme in ("", "file") or len(scheme) == 1:  # a path (C:\... included)
        path = Path(urllib.parse.urlsplit(uri).path if scheme == "file" else uri)
        if path.is_dir():
            return path.resolve().as_uri()
        if path.is_file():
            return f"sqlite:///{path.resolve()}"
        raise ImportSourceError(f"{uri} does not exist")
    if scheme == "sqlite":
        database = uri.removeprefix("sqlite:///")
        if not database or not Path(database).is_file():
            raise ImportSourceError(f"{uri}: no such SQLite file")
    return uri


def read_tracking(uri: str | None, experiments: Sequence[str] = ()) -> MlflowSource:
    """The active runs of the named experiments (default: every active experiment).

    Raises:
        ImportSourceError: the URI cannot be read or an experiment does not exist there.
    """
    require("mlflow", "mlflow")
    source = MlflowSource(uri=resolve_uri(uri))
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # reading old ./mlruns folders
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(source.uri)
        found = _experiments(client, experiments, source)
        for experiment in found:
            _read_experiment(client, experiment, source)
    except ImportSourceError:
        raise
    except Exception as exc:  # mlflow raises MlflowException, requests' and SQLAlchemy's
        raise ImportSourceError(
            f"cannot read MLflow at {_safe(source.uri)}: {_line(exc)}"
        ) from exc
    used = {run.experiment for run in source.runs}
    source.skipped["experiments without runs"] += len(set(source.experiments) - used)
    source.experiments = {k: v for k, v in source.experiments.items() if k in used}
    source.runs.sort(key=lambda run: run.started_at)  # parents before their children
    return source


def _experiments(client: Any, names: Sequence[str], source: MlflowSource) -> list[Any]:
    from mlflow.entities import ViewType

    if names:
        found = []
        for name in names:
            experiment = client.get_experiment_by_name(name)
            if experiment is None or experiment.lifecycle_stage != "active":
                known = [e.name for e in client.search_experiments()]
                raise ImportSourceError(
                    f"no MLflow experiment named {name!r} at {_safe(source.uri)} "
                    f"(it has: {', '.join(sorted(known)) or 'none'})"
                )
            found.append(experiment)
        return found
    every = client.search_experiments(view_type=ViewType.ALL)
    deleted = [e for e in every if e.lifecycle_stage != "active"]
    source.skipped["deleted experiments"] += len(deleted)
    return [e for e in every if e.lifecycle_stage == "active"]


def _read_experiment(client: Any, experiment: Any, source: MlflowSource) -> None:
    from mlflow.entities import ViewType

    source.experiments[experiment.name] = experiment.tags.get(NOTE) or None
    token = None
    while True:
        page = client.search_runs(
            [experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000,
            page_token=token,
        )  # fmt: skip
        for run in page:
            if run.info.lifecycle_stage != "active":
                source.skipped["deleted runs"] += 1
                continue
            source.runs.append(_run(client, run, experiment, source.uri))
        token = page.token
        if not token:
            return


def _run(client: Any, mlflow_run: Any, experiment: Any, uri: str) -> SourceRun:
    info, data = mlflow_run.info, mlflow_run.data
    tags = dict(data.tags)
    run = SourceRun(
        id=_uuid(info.run_id),
        name=info.run_name or tags.get("mlflow.runName") or info.run_id[:8],
        origin=f"{experiment.name}/{info.run_id}",
        started_at=(info.start_time or 0) / 1000,
        ended_at=info.end_time / 1000 if info.end_time else None,
        status=STATUSES.get(info.status, RunStatus.FINISHED),
        experiment=experiment.name,
    )
    run.add_params({key: parse_param(value) for key, value in data.params.items()})
    for key in sorted(data.metrics):
        history = client.get_metric_history(info.run_id, key)
        points = Points()
        for metric in history:
            points.append(
                int(metric.step or 0), float(metric.value), metric.timestamp / 1000, None
            )
        run.add_points(key, points)
    _tags(run, tags)
    if mlflow_run.inputs is not None and mlflow_run.inputs.dataset_inputs:
        run.skipped["dataset inputs (kept in mlflow.json)"] += len(
            mlflow_run.inputs.dataset_inputs
        )
    run.attachments["mlflow.json"] = _provenance(mlflow_run, experiment, uri)
    return run


def _tags(run: SourceRun, tags: dict[str, str]) -> None:
    if tags.get(NOTE, "").strip():
        run.notes.append((run.started_at, tags[NOTE]))
    if tags.get("mlflow.parentRunId"):
        run.parent = _uuid(tags["mlflow.parentRunId"])
    if tags.get("mlflow.source.name"):
        run.columns["command"] = (tags["mlflow.source.name"],)
    for tag, column in COLUMN_TAGS.items():
        if tags.get(tag):
            run.columns[column] = tags[tag]
    for key, value in sorted(tags.items()):
        if key.startswith("mlflow."):
            if key not in USED_TAGS:
                run.skipped["MLflow system tags (kept in mlflow.json)"] += 1
        elif value in ("", "true", "True"):
            run.add_tag(key)
        else:
            run.add_tag(f"{key}={value}")


def parse_param(text: str) -> Any:
    """An MLflow param (always a string) as the value it was: ints, floats and booleans are
    parsed, everything else stays text."""
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    if _NUMBER.fullmatch(text):
        number = float(text)
        if re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        return number
    return text


def _uuid(run_id: str) -> str:
    """MLflow run ids are UUIDs written as 32 hex characters: the expbook run takes it."""
    return run_id if _HEX32.fullmatch(run_id) else run_uuid(f"mlflow:{run_id}")


def _provenance(mlflow_run: Any, experiment: Any, uri: str) -> bytes:
    info = mlflow_run.info
    inputs = getattr(mlflow_run, "inputs", None)
    datasets = [
        {"name": d.dataset.name, "digest": d.dataset.digest, "source": d.dataset.source}
        for d in (inputs.dataset_inputs if inputs is not None else [])
    ]
    provenance = {
        "tracking_uri": _safe(uri),
        "experiment_id": experiment.experiment_id,
        "experiment": experiment.name,
        "run_id": info.run_id,
        "user_id": info.user_id,
        "artifact_uri": info.artifact_uri,
        "status": info.status,
        "tags": dict(sorted(mlflow_run.data.tags.items())),
        "datasets": datasets,
    }
    return json.dumps(provenance, indent=2).encode()


def _safe(uri: str) -> str:
    """The URI without a password."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc}"))


def _line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"
