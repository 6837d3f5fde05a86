"""``GET /api/experiments-best``: each experiment's best run by one metric, for the experiments
list's "best" column (``GET /api/experiments`` gives the rest of each row).

The rule is the experiment page's (``GET /api/experiments/{name}``): only finished runs count,
the metric's value per run is its latest (or ``value``: min, max, best, as
:func:`expbook.report.stats.metric_value` reads it), and the best is the lowest for an error
(``loss``, ``err``... :func:`expbook.columns.lower_is_better`), else the highest; ties go to the
run with the lower number. NaN never wins. A metric no run in an experiment has is a 400
naming it (a typo would otherwise name no best run anywhere).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from expbook.columns import did_you_mean, key_metric, lower_is_better, most_common_metrics
from expbook.model import RunStatus
from expbook.server.api import StoreDep, errors
from expbook.server.encoding import ApiJSON
from expbook.store.base import RunQuery

router = APIRouter(prefix="/api", default_response_class=ApiJSON, responses=errors(400, 422, 503))


class BestRun(BaseModel):
    number: int
    name: str
    value: float | str = Field(description="the run's value of the metric (JSON numbers; "
                               "infinities as strings)")  # fmt: skip


class ExperimentBest(BaseModel):
    finished: int = Field(description="the experiment's finished runs")
    scored: int = Field(description="those that have the metric (NaN left out)")
    best: BestRun | None


class ExperimentsBest(BaseModel):
    metric: str | None = Field(description="the metric ranked by (default: a validation metric "
                               "most runs in experiments have)")  # fmt: skip
    mode: Literal["min", "max"]
    value: Literal["last", "min", "max", "best"]
    metrics: list[str] = Field(description="the metrics runs in experiments have (system/ "
                               "left out), to choose from")  # fmt: skip
    experiments: dict[str, ExperimentBest] = Field(description="by experiment name")


@router.get("/experiments-best", response_model=ExperimentsBest,
            summary="Each experiment's best finished run by a metric")  # fmt: skip
def experiments_best(
    store: StoreDep,
    metric: Annotated[str | None, Query(description="the metric that ranks runs")] = None,
    mode: Annotated[
        Literal["min", "max"] | None,
        Query(description="lowest or highest wins (default: min for an error like loss)"),
    ] = None,
    value: Annotated[
        Literal["last", "min", "max", "best"],
        Query(description="which value of each run's metric counts (default: its latest)"),
    ] = "last",
) -> dict[str, Any]:
    from expbook.report.stats import metric_value

    names = tuple(e.name for e in store.list_experiments())
    found: dict[str, dict[str, Any]] = {
        name: {"finished": 0, "scored": 0, "best": None} for name in names
    }
    in_experiments = RunQuery(experiments=names)
    counts = store.key_counts(in_experiments).metrics if names else {}  # counted, not read
    keys = sorted(key for key in counts if not key.startswith("system/"))
    if metric and metric not in counts:  # a typo would name no best run, silently
        hint = did_you_mean(metric, keys)
        raise HTTPException(400, f"no run in an experiment has metric {metric!r}{hint}")
    metric = metric or key_metric(most_common_metrics(counts))
    mode = mode or ("min" if metric and lower_is_better(metric) else "max")
    if not names:
        return {"metric": metric, "mode": mode, "value": value, "metrics": [], "experiments": {}}
    finished = replace(in_experiments, statuses=(RunStatus.FINISHED,), sort="number")
    runs = store.find_run_values(finished, params=[], metrics=[metric] if metric else [])
    chosen: dict[str, tuple[float, int, str]] = {}
    for run in runs:
        entry = found.setdefault(run.experiment, {"finished": 0, "scored": 0, "best": None})
        entry["finished"] += 1
        score = metric_value(run, metric, value) if metric else None
        if score is None or math.isnan(score):
            continue
        entry["scored"] += 1
        best = chosen.get(run.experiment)
        if best is None or (score < best[0] if mode == "min" else score > best[0]):
            chosen[run.experiment] = (score, run.number, run.name)  # runs come by number
    for name, (score, number, run_name) in chosen.items():
        found[name]["best"] = {"number": number, "name": run_name, "value": score}
    return {"metric": metric, "mode": mode, "value": value, "metrics": keys, "experiments": found}


def install(app: FastAPI) -> None:
    """Serve ``GET /api/experiments-best`` on ``app``."""
    app.include_router(router)


__all__ = ["install", "router"]
