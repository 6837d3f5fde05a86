"""The sweeps' JSON API: ``GET /api/sweeps`` and ``GET /api/sweeps/{ref}``.

What a sweep page shows is computed in the library (``expbook.report.sweeps.sweep_view``, on
``expbook.sweep.analysis``), so the page, the notebook and the CLI agree on the best trial and
the parameters' importance; this module only turns it into JSON.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path

from expbook.errors import AmbiguousSweepError, SweepNotFoundError
from expbook.model import SweepRecord
from expbook.server import schemas
from expbook.server.api import StoreDep, errors
from expbook.server.encoding import ApiJSON

router = APIRouter(prefix="/api", default_response_class=ApiJSON, responses=errors(400, 422, 503))
SweepRef = Annotated[
    str, Path(description="a sweep: its name, its UUID or a unique prefix of it", examples=["lr"])
]


@router.get("/sweeps", response_model=list[schemas.SweepRow], summary="All sweeps")
def list_sweeps(store: StoreDep) -> list[dict[str, Any]]:
    """Each sweep with its state, search method, first metric, trials per state and best trial,
    oldest first."""
    from expbook.report.sweeps import sweep_view

    return [sweep_row(sweep_view(store, sweep, importance=False)) for sweep in store.list_sweeps()]


@router.get("/sweeps/{ref}", response_model=schemas.SweepDetail, responses=errors(404, 409),
            summary="A sweep: its spec, trials, best trial and parameter importance")  # fmt: skip
def get_sweep(ref: SweepRef, store: StoreDep) -> dict[str, Any]:
    """Everything the sweep page draws: the trials (each with its run), the best trial, the best
    value so far as trials ended, the parameters' importance (Optuna's fANOVA over the finished
    trials), the noise verdict when configurations were repeated, and the axes of the parallel
    coordinates (log10 coordinates for log-distributed parameters, ticked in their values)."""
    from expbook.report.sweeps import sweep_view

    view = sweep_view(store, store.get_sweep(ref))
    detail = sweep_row(view)
    detail.update(
        spec=dict(view.sweep.spec),
        spec_error=view.spec_error,
        metrics=[{"name": m.name, "goal": m.goal} for m in view.metrics],
        parameters=[_param(p) for p in view.parameters],
        trials=[asdict(trial) for trial in view.trials],
        best=asdict(view.best) if view.best else None,
        best_so_far=[asdict(point) for point in view.best_so_far],
        importance=[{"param": k, "importance": v} for k, v in view.importance],
        importance_note=view.importance_note,
        noise=view.noise,
        parallel=asdict(view.parallel),
    )
    return detail


def sweep_row(view: Any) -> dict[str, Any]:
    sweep: SweepRecord = view.sweep
    best = view.best
    return {
        "id": sweep.id,
        "name": sweep.name,
        "state": sweep.state.value,
        "experiment": sweep.experiment,
        "method": view.spec.method if view.spec else None,
        "metric": {"name": view.metric.name, "goal": view.metric.goal} if view.metric else None,
        "created_at": sweep.created_at,
        "updated_at": sweep.updated_at,
        "ended_at": sweep.ended_at,
        "version": sweep.version,
        "trial_count": len(view.trials),
        "counts": dict(view.counts),
        "best": {"number": best.number, "run_number": best.run_number, "value": best.value}
        if best
        else None,
    }


def _param(param: Any) -> dict[str, Any]:
    values = list(param.values) if param.kind != "constant" else [param.value]
    return {
        "name": param.name, "kind": param.kind, "distribution": param.distribution,
        "log": param.log, "low": param.low, "high": param.high, "values": values,
    }  # fmt: skip


def install(app: FastAPI) -> None:
    """Serve the sweeps' API on ``app``: an unknown sweep is 404, an ambiguous prefix 409."""
    app.include_router(router)

    def error(status: int) -> Any:
        return lambda request, exc: ApiJSON({"detail": str(exc)}, status_code=status)

    app.add_exception_handler(SweepNotFoundError, error(404))
    app.add_exception_handler(AmbiguousSweepError, error(409))


__all__ = ["install", "router"]
