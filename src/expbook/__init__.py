"""expbook: an experiment tracker and lab notebook for machine-learning training runs.

    import expbook

    with expbook.start_run(name="gru-256", experiment="hidden size", params=cfg) as run:
        for epoch in range(epochs):
            run.log({"train/loss": tl, "valid/loss": vl, "valid/acc": va}, step=epoch)
        run.summary["inference_accuracy"] = 0.2614
        run.note("GPU utilization around 20%")

    store = expbook.open_store()
    best = store.runs("metrics.valid/acc > 0.9", sort="-metrics.valid/acc")

``import expbook`` is cheap: the store (SQLAlchemy) loads when the first run starts or the first
store opens. The module-level functions use one default ``Tracker``.
"""

from __future__ import annotations

import os

from expbook._version import __version__
from expbook.errors import (
    AmbiguousRunError,
    ExpbookError,
    ExperimentNotFoundError,
    FilterSyntaxError,
    InvalidKeyError,
    InvalidStepError,
    InvalidValueError,
    MetricNotFoundError,
    NoteNotFoundError,
    RunFinishedError,
    RunNotFoundError,
    SchemaVersionError,
    StoreError,
    Terminated,
)

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs 10 ms
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from expbook.model import (
        ExperimentRecord,
        GitInfo,
        MetricPoint,
        MetricSummary,
        Note,
        OutputChunk,
        RunList,
        RunRecord,
        RunStatus,
        Series,
    )
    from expbook.store import Store
    from expbook.sweep.api import SweepResult, Trial, TrialPruned, sweep
    from expbook.sweep.pyspace import Choice, LogUniform, Uniform
    from expbook.tracking import Run, Tracker

_LAZY = {
    "ExperimentRecord": "expbook.model",
    "GitInfo": "expbook.model",
    "MetricPoint": "expbook.model",
    "MetricSummary": "expbook.model",
    "Note": "expbook.model",
    "OutputChunk": "expbook.model",
    "RunList": "expbook.model",
    "RunRecord": "expbook.model",
    "RunStatus": "expbook.model",
    "Series": "expbook.model",
    "Run": "expbook.tracking",
    "Tracker": "expbook.tracking",
    "Store": "expbook.store.base",
    "Trial": "expbook.sweep.api",
    "TrialPruned": "expbook.sweep.api",
    "SweepResult": "expbook.sweep.api",
    "Uniform": "expbook.sweep.pyspace",
    "LogUniform": "expbook.sweep.pyspace",
    "Choice": "expbook.sweep.pyspace",
}
"""Public names loaded on first use, so ``import expbook`` costs almost nothing."""

__all__ = [
    "AmbiguousRunError",
    "Choice",
    "ExpbookError",
    "ExperimentNotFoundError",
    "ExperimentRecord",
    "FilterSyntaxError",
    "GitInfo",
    "InvalidKeyError",
    "InvalidStepError",
    "InvalidValueError",
    "LogUniform",
    "MetricNotFoundError",
    "MetricPoint",
    "MetricSummary",
    "Note",
    "NoteNotFoundError",
    "OutputChunk",
    "Run",
    "RunFinishedError",
    "RunList",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "SchemaVersionError",
    "Series",
    "Store",
    "StoreError",
    "SweepResult",
    "Terminated",
    "Tracker",
    "Trial",
    "TrialPruned",
    "Uniform",
    "__version__",
    "active_run",
    "autolog",
    "default_tracker",
    "open_store",
    "repeat",
    "start_run",
    "sweep",
]

_default: dict[str, Tracker] = {}


def default_tracker() -> Tracker:
    """The tracker behind ``expbook.start_run``; its store is ``EXPBOOK_STORE`` or the default."""
    tracker = _default.get("tracker")
    if tracker is None:
        from expbook.tracking import Tracker

        tracker = _default.setdefault("tracker", Tracker())
    return tracker


def start_run(
    name: str | None = None,
    *,
    experiment: str | None = None,
    params: Any = None,
    tags: list[str] | tuple[str, ...] = (),
    parent: Run | RunRecord | str | int | None = None,
    kind: str = "train",
    store: Store | str | os.PathLike[str] | None = None,
    capture: bool = True,
    system_metrics: bool | None = None,
    system_metrics_interval: float | None = None,
) -> Run:
    """Create a run and start recording it.

    Args:
        name: a label; defaults to the script's name. Names need not be unique.
        experiment: the experiment (a question under study) the run belongs to; created if new.
        params: the configuration: a mapping (nested ones are flattened to ``a.b`` keys), a
            dataclass, a pydantic model or an ``argparse.Namespace``.
        tags: labels to filter by (``tags has 'gru'``).
        parent: the run this one derives from (a baseline, the training run an evaluation
            belongs to): a ``Run``, a ``RunRecord``, a number, a UUID prefix or a name.
        kind: ``train``, ``eval``, ``sweep-trial``... free text.
        store: where to record (default: the default tracker's store).
        capture: record git state, host, GPUs and installed packages (on the writer thread).
        system_metrics: sample CPU, memory, disk, network and GPUs under ``system/`` keys on a
            thread of their own (docs/system.md); default on, unless ``EXPBOOK_SYSTEM_METRICS``
            is ``0``. Under ``expbook run`` the recorder samples the attached run instead.
        system_metrics_interval: seconds between samples (default 10, or
            ``EXPBOOK_SYSTEM_INTERVAL``; at least 1).

    Returns:
        The live ``Run``; use it as a context manager or call ``finish()``.

    Raises:
        InvalidKeyError, InvalidValueError: a param key or value cannot be stored.
        RunNotFoundError: ``parent`` names no run.
        StoreError: the store cannot be opened or written.
    """
    return default_tracker().start_run(
        name,
        experiment=experiment,
        params=params,
        tags=tags,
        parent=parent,
        kind=kind,
        store=store,
        capture=capture,
        system_metrics=system_metrics,
        system_metrics_interval=system_metrics_interval,
    )


def repeat(
    count: int,
    name: str | None = None,
    *,
    seed_param: str = "seed",
    first_seed: int | None = None,
    params: Any = None,
    **options: Any,
) -> Iterator[tuple[int, Run]]:
    """Run one configuration ``count`` times with different seeds, as repeats.

    Yields ``(seed, run)`` pairs, starting each run when the previous one is done (a run the
    loop body left open is finished). Every run has ``params`` with ``seed_param`` set to
    ``first_seed`` (default: the seed in ``params``, else 0), then +1, +2..., so
    ``expbook compare`` and reports treat them as repeats of one configuration::

        for seed, run in expbook.repeat(3, "gru-256", params=cfg, experiment="hidden size"):
            with run:
                train(cfg, seed=seed, log=run.log)

    Other keyword arguments are those of :func:`start_run`. A ``seed_param`` not named like a
    seed (``rng``) is declared with a ``seed:rng`` tag.

    Raises:
        InvalidValueError: ``count`` is not a positive integer, or the first seed is not one.
    """
    return default_tracker().repeat(
        count, name, seed_param=seed_param, first_seed=first_seed, params=params, **options
    )


def active_run() -> Run | None:
    """The most recent run started with ``start_run`` that has not finished."""
    return default_tracker().active_run()


def autolog(run: Run | None = None) -> None:
    """Record the frameworks the program uses — Hugging Face Trainer, PyTorch Lightning, Keras,
    XGBoost, LightGBM, scikit-learn's training curves, tqdm postfixes — into ``run`` (default:
    the run active when each value is recorded): their exact values, steps and epochs, their
    hyperparameters as params, the model's parameter count. Imports no framework; each hook is
    installed when the program imports its framework (see docs/autolog.md). Under
    ``expbook run`` the hooks are already there, recording into the wrapper's run.
    """
    from expbook.integrations import autolog as _autolog

    _autolog(run)


def open_store(
    location: str | os.PathLike[str] | None = None, *, auto_upgrade: bool | None = None
) -> Store:
    """Open a store for reading and editing runs. See ``expbook.store.open_store``."""
    from expbook.store import open_store as _open

    return _open(location, auto_upgrade=auto_upgrade)


def __getattr__(name: str) -> Any:
    if name == "sweep":  # the package expbook.sweep, callable as expbook.sweep(objective, ...)
        import expbook.sweep

        return expbook.sweep
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'expbook' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"sweep"})
