"""``ExpbookTuneCallback``: a Ray Tune callback recording each trial as an expbook run.

    tuner = tune.Tuner(train_fn, param_space=space,
                       run_config=tune.RunConfig(callbacks=[ExpbookTuneCallback()]))
    with expbook.start_run(name="gru search") as search:
        results = tuner.fit()          # one child run of `search` per trial

Each trial becomes a run of kind ``sweep-trial`` named after the trial
(``train_fn_61aec_00001``), a child of the run that started the search: the ``run`` given, else
the run active when the search starts, else, under ``expbook run``, the wrapper's run (the
callback records into nothing else of it). Its params are the trial's config (flattened:
``model.hidden``); each reported result is a point at its ``training_iteration`` (every number
the trainable reported, plus Ray's ``time_this_iter_s`` and ``time_total_s``; nested results as
``a/b``). The run ends ``finished`` when the trial completes (also when a scheduler stops it
early), ``failed`` with the error when the trainable raised, and ``crashed`` when its worker
died (it stops recording without an ending, which the store reports as crashed); trials still
running when the search ends (Ctrl-C) end ``interrupted``. Checkpoints the trials save on the
local disk are kept as artifacts (``checkpoints=False`` to skip). Ray gives
callbacks no model, so no parameter count is logged.

Callbacks run in Tune's driver process, so the trainables need no expbook. Importing this module
imports Ray; ``import expbook`` does not import this module.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ray import tune

import expbook
from expbook.integrations import RunSink, hooks

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from expbook.store import Store
    from expbook.tracking import Run

FRAMEWORK = "ray"
NOT_METRICS = frozenset({
    "training_iteration", "timestamp", "date", "pid", "hostname", "node_ip", "config",
    "trial_id", "experiment_id", "experiment_tag", "done", "should_checkpoint",
    "checkpoint_dir_name", "time_since_restore", "iterations_since_restore",
    "timesteps_since_restore", "trial_resources",
})  # fmt: skip
"""Ray's bookkeeping in a result: the step, ids, hosts and times of day, not metrics."""


class ExpbookTuneCallback(tune.Callback):  # type: ignore[misc]
    """Record each Ray Tune trial as an expbook run (see the module's docstring).

    Args:
        run: The run that started the search: the trials' parent (default: the run active
            when the search starts; under ``expbook run``, the wrapper's run).
        store: Where the trials' runs go (default: the parent's store, else expbook's
            default store).
        checkpoints: Attach the files of the checkpoints trials save on the local disk.
        tags: Tags for every trial's run.
    """

    def __init__(
        self,
        run: Run | None = None,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        checkpoints: bool = True,
        tags: list[str] | tuple[str, ...] = (),
    ) -> None:
        self._given = run
        self._store = store
        self._checkpoints = checkpoints
        self._tags = list(tags)
        self._parent: Run | None = None
        self._search: Run | None = None  # the wrapper's run, claimed here under expbook run
        self._runs: dict[str, Run] = {}
        self._off = False

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its run config (``tuner.pkl``): the live runs stay out of it."""
        return {**self.__dict__, "_given": None, "_parent": None, "_search": None, "_runs": {}}

    # --- Tune's hooks ----------------------------------------------------------------------

    def setup(self, *args: Any, **info: Any) -> None:
        self._guard(self._find_parent)

    def on_trial_start(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._guard(self._trial_run, trial)

    def on_trial_result(
        self,
        iteration: int,
        trials: list[Trial],
        trial: Trial,
        result: dict[str, Any],
        **info: Any,
    ) -> None:
        self._guard(self._result, trial, result)

    def on_trial_recover(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._guard(self._recovered, trial)

    def on_trial_complete(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._guard(self._end, trial, "finished")

    def on_trial_error(
        self, iteration: int, trials: list[Trial], trial: Trial, **info: Any
    ) -> None:
        self._guard(self._error, trial)

    def on_checkpoint(
        self, iteration: int, trials: list[Trial], trial: Trial, checkpoint: Any, **info: Any
    ) -> None:
        if self._checkpoints:
            self._guard(self._attach, trial, checkpoint)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self._guard(self._close)

    # --- what they do ----------------------------------------------------------------------

    def _find_parent(self) -> None:
        parent = self._given or expbook.active_run()
        if parent is None and self._store is None and os.environ.get("EXPBOOK_RUN_ID"):
            # Under expbook run the first run started records into the wrapper's run: claim it
            # for the search, so that the trials get runs of their own as its children.
            parent = self._search = expbook.start_run(kind="sweep", capture=False)
        self._parent = parent

    def _trial_run(self, trial: Trial) -> Run:
        run = self._runs.get(trial.trial_id)
        if run is None:
            parent = self._parent
            run = expbook.start_run(
                name=str(trial),
                experiment=parent.experiment if parent is not None else None,
                params=hooks().flat(trial.config or {}),
                tags=self._tags,
                parent=parent,
                kind="sweep-trial",
                store=self._store if self._store is not None else _store_of(parent),
                capture=parent is None,  # the parent has the git state and host already
            )
            self._runs[trial.trial_id] = run
        return run

    def _result(self, trial: Trial, result: dict[str, Any]) -> None:
        values = metrics(result)
        if values:
            step = result.get("training_iteration")
            self._trial_run(trial).log(values, step=step if isinstance(step, int) else None)

    def _recovered(self, trial: Trial) -> None:
        run = self._runs.get(trial.trial_id)
        if run is not None:
            run.note(f"Ray Tune restarts the trial after a failure:\n\n```\n{_error(trial)}\n```")

    def _take(self, trial: Trial) -> Run:
        """The trial's run (started now if it ended before its first result), forgotten."""
        run = self._trial_run(trial)
        del self._runs[trial.trial_id]
        return run

    def _end(self, trial: Trial, status: str, error: str | None = None) -> None:
        self._take(trial).finish(status, error=error)

    def _error(self, trial: Trial) -> None:
        error = _error(trial)
        if not _worker_died(trial):
            self._end(trial, "failed", error)
            return
        run = self._take(trial)
        run.note(f"The trial's Ray worker died:\n\n```\n{error}\n```")
        run.abandon()  # no ending: the store reports it crashed once its heartbeat is stale

    def _attach(self, trial: Trial, checkpoint: Any) -> None:
        path = getattr(checkpoint, "path", None)
        if path and os.path.isdir(path):  # a checkpoint on the local disk
            RunSink(self._trial_run(trial)).attach(FRAMEWORK, path)

    def _close(self) -> None:
        for trial_id in list(self._runs):
            self._runs.pop(trial_id).finish("interrupted", error="the Ray Tune search ended")
        if self._search is not None:
            self._search.finish()
            self._search = None

    def _guard(self, function: Any, *args: Any) -> Any:
        """``function(*args)``; a failure turns the callback off with one warning and never
        reaches Tune (the search goes on)."""
        if self._off:
            return None
        try:
            return function(*args)
        except Exception as exc:
            self._off = True
            hooks().say(
                f"expbook: the Ray Tune callback failed ({type(exc).__name__}: "
                f"{str(exc)[:200]}) and records nothing more of this search"
            )
            return None


def metrics(result: dict[str, Any]) -> dict[str, float]:
    """The numbers of a Tune result, without Ray's bookkeeping; nested results as ``a/b``."""
    out: dict[str, float] = {}
    for key, value in result.items():
        if key in NOT_METRICS or isinstance(value, bool):
            continue
        if isinstance(value, dict):
            nested = metrics(value)
            out.update({f"{key}/{inner}": number for inner, number in nested.items()})
            continue
        number = hooks().number(value)
        if number is not None:
            out[str(key)] = number
    return out


def _store_of(run: Run | None) -> Store | None:
    return run.store if run is not None else None


def _error(trial: Trial) -> str:
    """The trial's error as Ray wrote it (its ``error.txt``), or a line saying there is none."""
    text = None
    try:
        path = trial.error_file  # written on the driver before the callbacks are told
        if path and os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        else:
            text = trial.get_error()  # from the experiment's storage
    except Exception:  # the trial's files may be gone
        text = None
    return str(text).strip()[-4000:] if text else "(Ray recorded no error text)"


def _worker_died(trial: Trial) -> bool:
    """Whether the trial failed because its worker process died (not an exception the
    trainable raised)."""
    from ray import cloudpickle
    from ray.exceptions import RayActorError

    try:
        path = trial.pickled_error_file
        if path and os.path.exists(path):
            with open(path, "rb") as handle:
                error = cloudpickle.load(handle)
        else:
            error = trial.get_pickled_error()
    except Exception:
        return False
    return isinstance(error, RayActorError)
