"""``expbook.sweep(objective, ...)``: a sweep driven from Python (docs/sweeps.md, "Python API").

Every trial is a run (kind ``sweep-trial``, tag ``sweep:NAME``, params: the trial's values) and
a row of the store's ``sweep_trials``, made through the same ``Store`` methods as ``expbook sweep
run`` makes them, so ``expbook sweep ls/show``, the UI and the report show an API sweep as any
other. The same call in several processes (one store: PostgreSQL for several machines) works on
one sweep, each process a worker; calling it again with the sweep's name continues the sweep.
Sampling, pruning decisions and the budget are the engine's (``expbook.sweep.engine``).

How a trial goes:

- **typed space** (``space=``): the engine proposes a configuration, added by compare-and-set on
  the sweep's version as agents add theirs; then the trial's run starts and the objective gets
  the config object (and the trial).
- **define-by-run** (no ``space``): the engine's rebuilt study is asked for an Optuna trial whose
  ``suggest_*`` calls sample lazily; the trial is added, and its run started, when the objective
  first needs them: ``trial.run``, ``trial.number``, ``report``, ``should_prune`` or its end,
  with the params asked so far (the store records a trial's params when it is added, so asking
  for a new parameter later is an error). The spec's ``parameters`` grow with the names trials
  ask for (``expbook.sweep.pyspace``), stored by compare-and-set before the trial is added; the
  sweep itself is created with its first trial. When other workers used the budget in between,
  the trial is dropped (``_NoTrial``) before its run exists.

A worker's trials are leased to it (heartbeats from a thread of its own, as agents do), so a
killed process's trial becomes ``crashed``; ``expbook sweep stop`` stops running trials at their
next ``report``/``should_prune``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from expbook.errors import InvalidValueError
from expbook.model import SweepState, TrialRecord, TrialState
from expbook.sweep import pyspace

if TYPE_CHECKING:
    import optuna

    from expbook.model import RunRecord
    from expbook.store import Store
    from expbook.sweep.worker import Worker
    from expbook.tracking import Run


class TrialPruned(Exception):
    """Raise it in an objective when ``trial.should_prune()`` says so; the trial ends
    ``pruned`` (its run too). ``optuna.TrialPruned`` works the same."""


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class TrialResult:
    """One trial as the sweep ended: its number, state, params (flat names), value, run."""

    number: int
    state: TrialState
    params: Mapping[str, Any]
    value: float | None
    run_id: str | None
    run_number: int | None
    config: Any = None
    """The config object of a typed space (``None`` for a define-by-run objective)."""
    pruned_step: int | None = None
    error: str | None = None
    _store: Any = field(default=None, repr=False, compare=False)

    @property
    def run(self) -> RunRecord | None:
        """The trial's run as the store has it now (None if it has none)."""
        return None if self.run_id is None else self._store.run(self.run_id)


@dataclass(frozen=True)
class SweepResult:
    """What ``expbook.sweep`` returns: the sweep's trials (all of them, every worker's) and the
    best finished one; ``reason`` says why this call ended."""

    name: str
    id: str
    state: SweepState
    metric: str
    goal: str
    reason: str
    trials: tuple[TrialResult, ...]
    best: TrialResult | None

    @property
    def best_params(self) -> dict[str, Any] | None:
        return None if self.best is None else dict(self.best.params)

    @property
    def best_value(self) -> float | None:
        return None if self.best is None else self.best.value

    def __repr__(self) -> str:
        best = "no finished trial" if self.best is None else (
            f"best trial {self.best.number}: {self.metric} = {self.best.value:.6g}"
        )  # fmt: skip
        return f"<SweepResult {self.name!r} ({self.state}): {len(self.trials)} trials, {best}>"


# ---------------------------------------------------------------------------------------------
# The trial an objective gets


class Trial:
    """A trial of ``expbook.sweep``, handed to the objective: Optuna's ``suggest_*``,
    ``report`` and ``should_prune``, and ``run``, the trial's expbook run (an ordinary ``Run``:
    log to it as to any run). Created by ``expbook.sweep``, not directly."""

    def __init__(
        self, worker: Worker, *, live: optuna.Trial | None = None,
        record: TrialRecord | None = None,
    ) -> None:  # fmt: skip
        self._worker = worker
        self._live = live
        self._record = record
        self._params: dict[str, Any] = dict(record.params) if record else {}
        self._asked: dict[str, optuna.distributions.BaseDistribution] = {}
        self._run: Run | None = None
        self._pending: dict[int, float] = {}  # reported, not yet in the run's series
        self._curve: dict[int, float] = {}
        self._checked: int | None = None
        self._pruned_at: tuple[int, float] | None = None
        self.config: Any = None
        """The config object, for a typed space."""
        self.lost = False

    def __repr__(self) -> str:
        number = "?" if self._record is None else self._record.number
        return f"<expbook.Trial {number} of sweep {self._worker.name!r} {self._params}>"

    @property
    def sweep(self) -> str:
        """The sweep's name."""
        return self._worker.name

    @property
    def params(self) -> dict[str, Any]:
        """The params asked for so far (flat names)."""
        return dict(self._params)

    @property
    def number(self) -> int:
        """The trial's number in the sweep (from 0). Adds the trial, with its params so far."""
        self._ensure()
        assert self._record is not None
        return self._record.number

    @property
    def run(self) -> Run:
        """The trial's run (kind ``sweep-trial``). Adds the trial, with its params so far."""
        self._ensure()
        assert self._run is not None
        return self._run

    # --- Optuna's suggest_* ---------------------------------------------------------------------

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        """A float in ``low..high`` (on the log scale with ``log``; multiples of ``step`` above
        ``low`` with ``step``), as Optuna's ``suggest_float``."""
        from optuna.distributions import FloatDistribution

        return self._suggest(
            name, FloatDistribution, "suggest_float", low=low, high=high, step=step, log=log
        )

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        """An int in ``low..high``, as Optuna's ``suggest_int``."""
        from optuna.distributions import IntDistribution

        return self._suggest(
            name, IntDistribution, "suggest_int", low=low, high=high, step=step, log=log
        )

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        """One of ``choices`` (None, bools, numbers or text), as Optuna's
        ``suggest_categorical``."""
        from optuna.distributions import CategoricalDistribution

        return self._suggest(name, CategoricalDistribution, "suggest_categorical", choices=choices)

    def _suggest(self, name: str, kind: type, method: str, **args: Any) -> Any:
        pyspace.check_name(name)
        try:
            d = kind(**args)
        except (ValueError, TypeError) as exc:
            raise InvalidValueError(f"parameter {name!r}: {exc}") from None
        if name in self._params:  # asked before, or fixed: Optuna returns the same value
            return self._params[name]
        if self._record is not None:
            raise InvalidValueError(
                f"parameter {name!r} asked for after trial {self._record.number} started: "
                f"{self._why_fixed()}"
            )
        self._worker.check_asked(name, d)
        try:
            value = getattr(self._live, method)(name, **args)
        except ValueError as exc:  # Optuna refuses a change of kind against the study
            raise InvalidValueError(f"parameter {name!r}: {exc}") from None
        self._params[name] = value
        self._asked[name] = d
        return value

    def _why_fixed(self) -> str:
        if self._worker.typed is not None:
            return "a typed space's params are fixed when the trial starts: add it to the space"
        if self._live is None:
            return f"the trial was queued with params {sorted(self._params)}"
        return (
            "ask for every parameter before using trial.run, trial.number, report or "
            "should_prune (the store records a trial's params when it starts)"
        )

    # --- intermediate values and pruning --------------------------------------------------------

    def report(self, value: float, step: int) -> None:
        """Report the metric's value at ``step`` (Optuna's ``report``). It goes into the run's
        series of the sweep's metric unless the objective logs that step itself."""
        self._ensure()
        self._worker.check_stop(self)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidValueError(f"report step {step!r}: give an integer >= 0")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidValueError(f"report value {value!r} is not a number") from None
        if step not in self._curve:
            self._pending.setdefault(step, number)

    def should_prune(self) -> bool:
        """Whether the sweep's pruner stops this trial now, from its curve: what it reported
        and what its run logged of the sweep's metric (Optuna's ``should_prune``). Raise
        ``expbook.TrialPruned`` when it says so."""
        self._ensure()
        self._worker.check_stop(self)
        return self._worker.decide(self, self._sync())

    def _sync(self) -> dict[int, float]:
        """Store the reported values the run has not logged; the trial's curve."""
        run = self._run
        if run is None:
            return dict(self._curve)
        run.flush()
        assert self._record is not None
        logged = self._worker.curves.get(self._record, run.id)
        self._curve.update(logged)
        missing = {s: v for s, v in sorted(self._pending.items()) if s not in self._curve}
        self._pending.clear()
        if missing:
            self._worker.log_points(run, missing)
            self._curve.update(missing)
        return dict(self._curve)

    def _ensure(self) -> None:
        if self._record is None:
            self._record = self._worker.add(self)
        if self._run is None:
            self._run = self._worker.start_run(self)


# ---------------------------------------------------------------------------------------------
# The sweep


def sweep(
    objective: Callable[..., Any],
    *,
    metric: str = "objective",
    goal: str = "minimize",
    trials: int | None = None,
    space: Any = None,
    name: str | None = None,
    experiment: str | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    workers: int = 1,
    store: Store | str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    seed: int | None = None,
    sampler_options: Mapping[str, Any] | None = None,
    pruner_options: Mapping[str, Any] | None = None,
    catch: type[BaseException] | tuple[type[BaseException], ...] = Exception,
) -> SweepResult:
    """Run a sweep of ``objective`` in this process; see docs/sweeps.md, "Python API".

    Without ``space``, ``objective(trial)`` asks for its params with ``trial.suggest_*``
    (define-by-run); with one, it is called as ``objective(config, trial)`` (or
    ``objective(config)``) with the config object the space describes. It returns the value of
    ``metric`` (None: the last value its ``trial.run`` logged of it).

    Args:
        metric: the objective's key, as the trials' runs show it (``valid/loss``).
        goal: ``minimize`` or ``maximize``.
        trials: the sweep's budget: how many trials it runs in all, over every call and
            process (a finished sweep called with more goes on); None: no limit.
        space: a dataclass or pydantic model class whose fields carry their ranges
            (``Annotated[float, expbook.LogUniform(1e-5, 0.1)]``, ``Literal[32, 64]``), or a
            mapping of W&B parameters; None: define-by-run.
        name: the sweep's name; a sweep of that name is continued (its trials count toward
            ``trials``, a stopped or finished one runs again if it has work left). Default:
            the objective's name and the time.
        experiment: the experiment of the sweep and its trials' runs.
        sampler: Optuna's sampler: ``tpe`` (default), ``random``, ``qmc``, ``cmaes``, ``gp``,
            or ``grid`` (a typed space).
        pruner: Optuna's pruner, for ``trial.should_prune``: ``median`` (default),
            ``percentile``, ``asha``/``successive_halving``, ``hyperband``, ``wilcoxon``,
            ``none``.
        workers: trials at once in this process (threads); run the same call in other
            processes for more.
        store: where the sweep and its runs go (default: the default store).
        timeout: seconds after which this call starts no new trial (running ones finish).
        seed: the sampler's seed (one worker's suggestions are then reproducible).
        sampler_options, pruner_options: keyword arguments of Optuna's sampler and pruner.
        catch: exceptions of the objective that fail the trial while the sweep goes on; any
            other fails it and propagates. The call's first 3 trials all failing propagates
            the third one's exception.

    Options left None keep, on a sweep that exists, what it has.

    Returns:
        The sweep's trials (every worker's) and the best finished one.

    Raises:
        InvalidValueError: a bad option or space (one line naming it), a sweep of that name
            with another metric or goal, or a parameter asked for with another kind.
        Exception: the objective's, when it is not one of ``catch``, or when the first
            ``FAIL_FAST`` trials of this call all failed.
        KeyboardInterrupt, Terminated: after the running trials were stopped.
    """
    from expbook.sweep.worker import Worker

    typed = pyspace.typed_space(space) if space is not None else None
    if trials is not None:
        _check_count(trials, "trials")
    worker = Worker(
        objective, typed=typed, takes_trial=_check_objective(objective, typed is not None),
        metric=_check_text(metric, "metric", "the metric's key, e.g. 'valid/loss'"),
        goal=_check_goal(goal), trials=trials, name=name, experiment=experiment,
        sampler=sampler, pruner=pruner, workers=_check_count(workers, "workers"), store=store,
        timeout=_check_timeout(timeout), seed=seed, sampler_options=sampler_options,
        pruner_options=pruner_options, catch=catch,
    )  # fmt: skip
    return worker.run()


# ---------------------------------------------------------------------------------------------
# Checking the options


def _check_objective(objective: Any, typed: bool) -> bool:
    """Whether a typed space's objective takes the trial too; raise when it cannot be called
    as the space asks."""
    if not callable(objective):
        raise InvalidValueError(f"objective {objective!r} is not callable")
    try:
        signature = inspect.signature(objective)
    except (TypeError, ValueError):
        return typed
    forms = [("config", "trial"), ("config",)] if typed else [("trial",)]
    for form in forms:
        try:
            signature.bind(*form)
        except TypeError:
            continue
        return len(form) == 2
    wanted = "objective(config, trial) or objective(config)" if typed else "objective(trial)"
    raise InvalidValueError(f"objective{signature}: expbook.sweep calls it as {wanted}")


def _check_text(value: Any, what: str, hint: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidValueError(f"{what} {value!r}: give {hint}")
    return value


def _check_goal(goal: Any) -> str:
    if goal not in ("minimize", "maximize"):
        raise InvalidValueError(f"goal {goal!r}: minimize or maximize")
    return goal


def _check_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidValueError(f"{what} {value!r}: give an integer >= 1")
    return value


def _check_timeout(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidValueError(f"timeout {value!r}: give a positive number of seconds")
    return float(value)


__all__ = ["SweepResult", "Trial", "TrialPruned", "TrialResult", "sweep"]
