"""The search: an in-memory Optuna study rebuilt from the store's trials, asked for the next
configuration and for pruning decisions.

The store holds the sweep (the spec, its trials and their runs' metric series); Optuna does all
the sampling and pruning (no sampler or pruner is written here). Before each decision the engine
builds a study with ``optuna.create_study(storage=InMemoryStorage())`` from the store's trials:

- one Optuna trial per configuration (its repeats are one trial whose value is the mean of the
  finished repeats), params through ``expbook.sweep.space.to_optuna``, the configuration's
  metric curve as intermediate values, and a state: COMPLETE (a finished repeat with a value),
  RUNNING (queued or running: TPE's ``constant_liar`` counts them), PRUNED, or FAIL;
- pruners that keep state in the study (successive halving, ASHA, Hyperband: the value each
  trial had at each rung) get it back by replay: each trial's curve is reported to the pruner
  point by point, as if the trial had called ``trial.should_prune()`` after every report, so a
  rung holds the value at the first step that reached it. Replays are cached per trial;
- samplers that keep state in the system attrs of the trials they sample (CMA-ES) get back the
  attrs of the trials this engine asked; QMC's sequence is advanced past the configurations
  already sampled. Seeded samplers are re-seeded from the seed and the number of
  configurations, so a fresh study does not repeat its first suggestion.

A trial's curve is the series of the spec's metric in its run: by step for expbook's pruners,
by the index of each logged value (0, 1, 2...) for W&B's ``early_terminate``: W&B's hyperband
compares runs at the band-th value each logged, whatever its step. A trial's value is the
run's summary value of the metric: the last one logged, as in W&B.

optuna is imported inside the methods that need it.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from expbook.errors import MetricNotFoundError, RunNotFoundError
from expbook.model import SweepRecord, TrialRecord, TrialState
from expbook.sweep import space
from expbook.sweep.spec import SweepSpec, SweepSpecError, violated_constraint

if TYPE_CHECKING:
    import optuna

    from expbook.store import Store

Curve = Mapping[int, float]
"""A trial's intermediate values: resource (step, or index of the logged value) -> value."""

MAX_CONSTRAINT_TRIES = 1000
"""How many configurations a sweep may reject by its constraints before asking one more."""
_SEED_STRIDE = 7919  # a prime: seeded samplers get seed + stride * configurations + retries

_FINAL = {
    TrialState.FINISHED,
    TrialState.FAILED,
    TrialState.PRUNED,
    TrialState.CRASHED,
    TrialState.STOPPED,
}


@dataclass(frozen=True)
class Proposal:
    """The next trial to add: its params (flat names, the seed parameter included), its config
    key (without the seed), the configuration it repeats (None: a new one) and its repeat."""

    params: dict[str, Any]
    config_key: str
    config: int | None = None
    repeat: int = 0


@dataclass(frozen=True)
class Decision:
    """Whether to prune a running trial: at which step (resource) and the value there."""

    prune: bool
    step: int | None = None
    value: float | None = None


@dataclass
class _Replay:
    """What replaying a trial's curve into a stateful pruner left: the system attrs it set,
    the resource replayed through, and the first step at which it said "prune"."""

    attrs: dict[str, Any] = field(default_factory=dict)
    through: int | None = None
    pruned_at: int | None = None


# ---------------------------------------------------------------------------------------------
# Budget


def slots(trials: Sequence[TrialRecord]) -> dict[tuple[int, int], TrialRecord]:
    """The latest attempt of each (configuration, repeat) that counts toward the budget: every
    one but those ``stopped`` (a stopped sweep's running trials, run again when it resumes)."""
    latest: dict[tuple[int, int], TrialRecord] = {}
    for trial in sorted(trials, key=lambda t: (t.attempt, t.number)):
        latest[(trial.config, trial.repeat)] = trial
    return {k: t for k, t in latest.items() if t.state != TrialState.STOPPED}


def value(trial: TrialRecord, index: int = 0) -> float | None:
    """The trial's value of metric ``index``, None when it has none (or NaN)."""
    if not trial.values or index >= len(trial.values) or trial.values[index] is None:
        return None
    number = float(trial.values[index])  # type: ignore[arg-type]
    return None if math.isnan(number) else number


def better(a: float, b: float, goal: str) -> bool:
    return a < b if goal == "minimize" else a > b


def reached(spec: SweepSpec, trial: TrialRecord) -> bool:
    """Whether a finished trial reached the target of the spec's metric."""
    metric = spec.metric
    if metric is None or metric.target is None or trial.state != TrialState.FINISHED:
        return False
    got = value(trial)
    if got is None:
        return False
    return got <= metric.target if metric.goal == "minimize" else got >= metric.target


def why_done(
    spec: SweepSpec, sweep: SweepRecord, trials: Sequence[TrialRecord], now: float | None = None
) -> str | None:
    """Why no more trials may start (one line), or None while the sweep may start more: the
    target reached, the budget (trials, run_cap, the grid) used up, the timeout passed."""
    metric = spec.metric
    for trial in trials:
        if reached(spec, trial):
            assert metric is not None
            return (
                f"trial {trial.number} reached the target {metric.name} = {metric.target} "
                f"({value(trial):.6g})"
            )
    budget = spec.budget()
    used = len(slots(trials))
    if budget is not None and used >= budget:
        return f"all {budget} trials of the budget were started"
    if spec.timeout is not None and (now or time.time()) - sweep.created_at >= spec.timeout:
        return f"the timeout of {spec.timeout:g} s has passed"
    return None


def best(spec: SweepSpec, trials: Sequence[TrialRecord]) -> tuple[TrialRecord, float] | None:
    """The finished trial with the best value of the first metric, and that value."""
    metric = spec.metric
    if metric is None:
        return None
    found = None
    for trial in trials:
        got = value(trial) if trial.state == TrialState.FINISHED else None
        if got is not None and (found is None or better(got, found[1], metric.goal)):
            found = (trial, got)
    return found


# ---------------------------------------------------------------------------------------------
# Curves from the store


class Curves:
    """The metric curves of a sweep's trials, read from their runs' series and cached: a
    finished trial's once, a running trial's new points only. Thread-safe."""

    def __init__(self, store: Store, key: str | None, *, by_count: bool = False) -> None:
        self.store = store
        self.key = key
        self.by_count = by_count
        self._cache: dict[str, tuple[list[int], list[float], bool]] = {}
        self._lock = threading.Lock()

    def get(self, trial: TrialRecord, run_id: str | None = None) -> dict[int, float]:
        """The trial's curve (resource -> value); empty when it has no run or no points."""
        run_id = run_id or trial.run_id
        if self.key is None or run_id is None:
            return {}
        with self._lock:
            steps, values, final = self._cache.get(run_id, ([], [], False))
            if not final:
                after = steps[-1] + 1 if steps else None
                try:
                    series = self.store.get_series(run_id, self.key, step_min=after)
                    steps = steps + list(series.steps)
                    values = values + list(series.values)
                except (MetricNotFoundError, RunNotFoundError):
                    pass
                self._cache[run_id] = (steps, values, trial.state in _FINAL)
        if self.by_count:  # W&B's hyperband: the band-th value logged, counted from 0
            return dict(enumerate(values))
        return dict(zip(steps, values, strict=True))

    def all(self, trials: Sequence[TrialRecord]) -> dict[int, dict[int, float]]:
        """Curves of the trials that have a run, by trial number."""
        return {t.number: self.get(t) for t in trials if t.run_id is not None}


# ---------------------------------------------------------------------------------------------
# The engine


class Engine:
    """Asks Optuna for configurations and pruning decisions for one sweep (see the module
    docstring). Thread-safe: one engine can serve every worker of an agent.

    Args:
        spec: the sweep's parsed spec.
        study_name: the name of the rebuilt studies (the sweep's UUID: Hyperband assigns
            trials to brackets by it, so every agent agrees).
        distributions: a define-by-run space (``expbook.sweep.api``): the Optuna
            distribution of each parameter an objective asked for, by name. A trial's params
            are then Optuna's values as they are, and a trial may lack some (conditional
            parameters); without it, the spec's parameters through ``expbook.sweep.space``.
    """

    def __init__(
        self, spec: SweepSpec, *, study_name: str = "sweep",
        distributions: Mapping[str, optuna.distributions.BaseDistribution] | None = None,
    ) -> None:  # fmt: skip
        self.spec = spec
        self.study_name = study_name
        self.distributions = None if distributions is None else dict(distributions)
        self._lock = threading.RLock()
        self._attrs: dict[str, dict[str, Any]] = {}  # config key -> the sampler's system attrs
        self._replays: dict[tuple[Any, int], _Replay] = {}
        self._grid: list[dict[str, Any]] | None = None

    # --- what the spec asks for --------------------------------------------------------------

    @property
    def pruner_name(self) -> str:
        """The pruner in words, for notes: ``hyperband (W&B early_terminate)``, ``median``..."""
        name = self.spec.effective_pruner
        return f"{name} (early_terminate)" if self.spec.early_terminate else name

    @property
    def prunes(self) -> bool:
        return self.spec.effective_pruner != "none" and self.spec.metric is not None

    @property
    def by_count(self) -> bool:
        """W&B's hyperband indexes logged values; expbook's pruners use the step."""
        return self.spec.early_terminate is not None and self.spec.pruner is None

    def curves(self, store: Store) -> Curves:
        """A curve cache for this sweep's metric on ``store``."""
        metric = self.spec.metric
        return Curves(store, metric.name if metric else None, by_count=self.by_count)

    # --- the next configuration --------------------------------------------------------------

    def next_configuration(
        self, trials: Sequence[TrialRecord], curves: Mapping[int, Curve] | None = None, *,
        retry: int = 0,
    ) -> Proposal | None:  # fmt: skip
        """The next configuration to run given the sweep's trials: a missing repeat of a
        configuration first, then the grid's next configuration or a new one from Optuna.
        None when the grid has no configuration left. Does not check the budget (``why_done``).

        Args:
            retry: how many times the caller asked already for this state of the store (after
                a conflict): seeded samplers then suggest something else.

        Raises:
            SweepSpecError: the constraints rejected ``MAX_CONSTRAINT_TRIES`` configurations.
        """
        with self._lock:
            repeat = self._missing_repeat(trials)
            if repeat is not None:
                return repeat
            if self.spec.effective_sampler == "grid":
                return self._next_in_grid(trials)
            return self._ask(trials, curves or {}, retry)

    def _with_seed(self, params: Mapping[str, Any], repeat: int) -> dict[str, Any]:
        out = dict(params)
        if self.spec.seed_param:
            out[self.spec.seed_param] = repeat
        return out

    def _key(self, params: Mapping[str, Any]) -> str:
        seed = self.spec.seed_param
        return space.config_key({k: v for k, v in params.items() if k != seed})

    def _missing_repeat(self, trials: Sequence[TrialRecord]) -> Proposal | None:
        """The first configuration started but not repeated ``repeats`` times (not one that
        was pruned: its curve was hopeless)."""
        if self.spec.repeats <= 1:
            return None
        taken = slots(trials)
        by_config: dict[int, list[TrialRecord]] = {}
        for (config, _), trial in sorted(taken.items()):
            by_config.setdefault(config, []).append(trial)
        for config, members in sorted(by_config.items()):
            if any(t.state == TrialState.PRUNED for t in members):
                continue
            have = {t.repeat for t in members}
            for r in range(self.spec.repeats):
                if r not in have:
                    first = members[0]
                    return Proposal(
                        self._with_seed(self._without_seed(first.params), r),
                        first.config_key, config, r,
                    )  # fmt: skip
        return None

    def _without_seed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if k != self.spec.seed_param}

    def _next_in_grid(self, trials: Sequence[TrialRecord]) -> Proposal | None:
        if self._grid is None:
            self._grid = space.grid(self.spec)
        taken = slots(trials)
        used = {trial.config_key for trial in taken.values()}
        configs = {t.config_key: t.config for t in trials}
        for params in self._grid:
            key = self._key(params)
            if key not in used:
                return Proposal(self._with_seed(params, 0), key, configs.get(key), 0)
        return None

    def _ask(
        self, trials: Sequence[TrialRecord], curves: Mapping[int, Curve], retry: int
    ) -> Proposal:
        import optuna

        # Random search ignores the trials: a study without them asks the same, in less time.
        known = [] if self.spec.effective_sampler == "random" else trials
        study, _, _ = self._study(known, curves, retry=retry, configs=len(trials))
        for _ in range(MAX_CONSTRAINT_TRIES):
            trial = study.ask()
            params = space.suggest(trial, self.spec)
            if self.spec.constraints and violated_constraint(self.spec, params) is not None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)  # infeasible: ask again
                continue
            key = self._key(params)
            attrs = study.get_trials(deepcopy=False)[trial.number].system_attrs
            if attrs:
                self._attrs[key] = dict(attrs)
            return Proposal(self._with_seed(params, 0), key, None, 0)
        raise SweepSpecError(
            "expbook.constraints",
            f"the constraints rejected {MAX_CONSTRAINT_TRIES} configurations in a row; "
            "loosen them or narrow the parameters",
        )

    def study(
        self, trials: Sequence[TrialRecord], curves: Mapping[int, Curve] | None = None, *,
        retry: int = 0,
    ) -> optuna.Study:  # fmt: skip
        """The sweep's trials as a fresh in-memory study, for a caller that asks it for a trial
        and lets the trial's ``suggest_*`` calls sample (a define-by-run objective). Pass the
        asked trial's system attrs to ``remember`` once its params are known."""
        with self._lock:
            return self._study(trials, curves or {}, retry=retry)[0]

    def remember(self, params: Mapping[str, Any], attrs: Mapping[str, Any]) -> None:
        """Keep the sampler's system attrs of a trial asked from ``study`` (CMA-ES finds its
        generations in them), for the studies rebuilt later."""
        if attrs:
            with self._lock:
                self._attrs[self._key(params)] = dict(attrs)

    # --- pruning ------------------------------------------------------------------------------

    def decide(
        self, trials: Sequence[TrialRecord], curves: Mapping[int, Curve], number: int,
        *, after: int | None = None,
    ) -> Decision:  # fmt: skip
        """Whether Optuna's pruner stops running trial ``number`` now, given every trial's
        curve (by trial number). A stateful pruner (successive halving, Hyperband) decides at
        each step the trial reached; only decisions at steps beyond ``after`` (those checked
        before) count."""
        curve = curves.get(number) or {}
        if not self.prunes or not curve:
            return Decision(False)
        with self._lock:
            study, numbers, signature = self._study(trials, curves, deciding=number)
            if number not in numbers:
                return Decision(False)  # outside an edited space: nothing to compare with
            if signature is not None:  # stateful: replay the trial's curve, step by step
                key = self._key(next(t.params for t in trials if t.number == number))
                replay = self._replay(study, numbers[number], curve, set(self._attrs.get(key, {})),
                                      after=after)  # fmt: skip
                if replay.pruned_at is None:
                    return Decision(False)
                return Decision(True, replay.pruned_at, curve[replay.pruned_at])
            last = max(curve)
            if after is not None and last <= after:
                return Decision(False)
            frozen = study.get_trials(deepcopy=False)[numbers[number]]
            if study.pruner.prune(study, frozen):
                return Decision(True, last, curve[last])
            return Decision(False)

    # --- the rebuilt study --------------------------------------------------------------------

    def _study(
        self, trials: Sequence[TrialRecord], curves: Mapping[int, Curve], *,
        deciding: int | None = None, retry: int = 0, configs: int | None = None,
    ) -> tuple[optuna.Study, dict[int, int], tuple[Any, ...] | None]:  # fmt: skip
        """A fresh in-memory study holding one trial per configuration; returns it, for each
        store trial number the number of its Optuna trial, and the stateful pruner's signature
        (None for a stateless pruner). The trial ``deciding`` is a RUNNING Optuna trial of its
        own at its configuration's place, with its own curve, not replayed."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        groups = _configurations(trials, deciding)
        group_curves = {config: _mean_curve(members, curves) for config, members in groups}
        pruner, signature = self._pruner(groups, group_curves)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study = optuna.create_study(
                storage=optuna.storages.InMemoryStorage(),
                sampler=self._sampler(len(groups) if configs is None else configs, retry),
                pruner=pruner,
                study_name=self.study_name,
                directions=[m.goal for m in self.spec.metrics] or ["minimize"],
            )
        distributions = self._distributions()
        numbers: dict[int, int] = {}
        for config, members in groups:
            params = self._optuna_params(members[0])
            if params is None:
                continue  # outside an edited space: Optuna cannot hold it
            state, values = self._state(members)
            curve = group_curves[config]
            sampler_attrs = self._attrs.get(members[0].config_key, {})
            live = deciding is not None and members[0].number == deciding
            cached = None if signature is None or live else self._replays.get((signature, config))
            last = max(curve) if curve else None
            if signature is None or live or (cached is not None and cached.through == last):
                attrs = {**sampler_attrs, **(cached.attrs if cached else {})}
                final = "RUNNING" if live else state
                study.add_trial(_frozen(final, values, params, distributions, curve, attrs))
                number = len(study.get_trials(deepcopy=False)) - 1
            else:  # replay the new part of the curve into the pruner, then finish the trial
                attrs = {**sampler_attrs, **(cached.attrs if cached else {})}
                study.add_trial(_frozen("RUNNING", None, params, distributions, curve, attrs))
                number = len(study.get_trials(deepcopy=False)) - 1
                replay = self._replay(study, number, curve, set(sampler_attrs), start=cached)
                self._replays[(signature, config)] = replay
                if state != "RUNNING":
                    study.tell(number, values, state=_optuna_state(state))
            for member in members:
                numbers[member.number] = number
        if self.spec.effective_sampler == "qmc":
            self._advance_qmc(study, len(groups))
        return study, numbers, signature

    def _advance_qmc(self, study: optuna.Study, sampled: int) -> None:
        """QMC counts its samples in the study: draw (and discard) as many as there are
        configurations, so the next one is new (the same for every agent)."""
        import optuna

        distributions = self._distributions()
        for _ in range(sampled):
            trial = study.ask(distributions)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)

    def _distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        if self.distributions is not None:
            return self.distributions
        return space.distributions(self.spec)

    def _optuna_params(self, trial: TrialRecord) -> dict[str, Any] | None:
        if self.distributions is not None:  # define-by-run: Optuna's values, any subset
            return _in_space(self.distributions, trial.params)
        try:
            return space.to_optuna(self.spec, self._without_seed(trial.params))
        except SweepSpecError:
            return None

    def _state(self, members: Sequence[TrialRecord]) -> tuple[str, list[float] | None]:
        """A configuration's Optuna state and values from its trials."""
        finished = [t for t in members if t.state == TrialState.FINISHED]
        if not self.spec.metrics:
            return ("COMPLETE", [0.0]) if finished else (self._unfinished(members), None)
        means = []
        for i in range(len(self.spec.metrics)):
            got = [v for t in finished if (v := value(t, i)) is not None]
            means.append(math.fsum(got) / len(got) if got else None)
        if finished and all(m is not None for m in means):
            return "COMPLETE", means  # type: ignore[return-value]
        return self._unfinished(members), None

    @staticmethod
    def _unfinished(members: Sequence[TrialRecord]) -> str:
        if any(t.state in (TrialState.RUNNING, TrialState.QUEUED) for t in members):
            return "RUNNING"
        if any(t.state == TrialState.PRUNED for t in members):
            return "PRUNED"
        return "FAIL"

    def _replay(
        self, study: optuna.Study, number: int, curve: Curve, sampler_attrs: set[str], *,
        start: _Replay | None = None, after: int | None = None,
    ) -> _Replay:  # fmt: skip
        """Report ``curve`` to the study's stateful pruner point by point (from where ``start``
        left off), as a trial that calls ``should_prune`` after every report; remember the
        attrs the pruner set and the first step beyond ``after`` at which it said prune.

        The probe handed to ``pruner.prune`` holds only the newest point: successive halving
        reads the last step and its value, and the rungs the trial passed (its system attrs).
        """
        import optuna

        through = start.through if start else None
        pruned_at = start.pruned_at if start else None
        for step in sorted(curve):
            if through is not None and step <= through:
                continue
            base = study.get_trials(deepcopy=False)[number]
            probe = optuna.trial.FrozenTrial(
                number=base.number, state=base.state, value=None,
                datetime_start=base.datetime_start, datetime_complete=None,
                params=base.params, distributions=base.distributions, user_attrs={},
                system_attrs=base.system_attrs, intermediate_values={step: curve[step]},
                trial_id=base._trial_id,
            )  # fmt: skip
            says = study.pruner.prune(study, probe)
            if says and pruned_at is None and (after is None or step > after):
                pruned_at = step
            through = step
        attrs = study.get_trials(deepcopy=False)[number].system_attrs
        kept = {k: v for k, v in attrs.items() if k not in sampler_attrs}
        return _Replay(kept, through, pruned_at)

    # --- Optuna's sampler and pruner ------------------------------------------------------------

    def check_sampler(self) -> None:
        """Make the spec's sampler once, before a sweep is created: a sampler whose package is
        missing (``cmaes``, ``gp``) is a one-line ``SweepSpecError`` then, not a failed sweep."""
        self._sampler(0, 0)

    def _sampler(self, configs: int, retry: int) -> optuna.samplers.BaseSampler:
        import optuna

        name = self.spec.effective_sampler
        options = dict(self.spec.sampler_options)
        given = options.pop("seed", None)
        seed = None if given is None else (int(given) + _SEED_STRIDE * configs + retry) % 2**32
        try:
            if name in ("random", "grid"):
                return optuna.samplers.RandomSampler(seed=seed)
            if name == "tpe":
                options.setdefault("multivariate", True)
                options.setdefault("constant_liar", True)
                return optuna.samplers.TPESampler(seed=seed, **options)
            if name == "qmc":  # one sequence for the whole sweep, whoever asks
                seed = _sweep_seed(self.study_name, given)
                return optuna.samplers.QMCSampler(seed=seed, **options)
            if name == "cmaes":
                import cmaes  # noqa: F401 - Optuna's CMA-ES needs it

                return optuna.samplers.CmaEsSampler(seed=seed, **options)
            if name == "gp":
                import torch  # noqa: F401 - Optuna's GP sampler needs it

                return optuna.samplers.GPSampler(seed=seed, **options)
        except ImportError:
            package = {"cmaes": "cmaes", "gp": "torch"}.get(name, name)
            raise SweepSpecError(
                "expbook.sampler", f"{name} needs the {package} package (pip install {package})"
            ) from None
        except (TypeError, ValueError) as exc:
            raise SweepSpecError("expbook.sampler_options", str(exc)) from None
        raise SweepSpecError("expbook.sampler", f"unknown sampler {name!r}")

    def _pruner(
        self, groups: Sequence[tuple[int, list[TrialRecord]]], curves: Mapping[int, Curve]
    ) -> tuple[optuna.pruners.BasePruner, tuple[Any, ...] | None]:
        """The spec's pruner and, for a stateful one, its signature (what cached replays
        depend on). Optuna's "auto" resources are resolved here from the finished
        configurations' curves, by Optuna's own rules, because a fresh study would resolve them
        at its first decision, before replayed trials finish."""
        import optuna

        if not self.prunes:
            return optuna.pruners.NopPruner(), None
        last = [max(curves[c]) for c, m in groups
                if curves.get(c) and self._state(m)[0] == "COMPLETE"]  # fmt: skip
        name, options = self._pruner_options(last)
        if options is None:
            return optuna.pruners.NopPruner(), None
        classes = {
            "median": optuna.pruners.MedianPruner,
            "percentile": optuna.pruners.PercentilePruner,
            "wilcoxon": optuna.pruners.WilcoxonPruner,
            "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
            "hyperband": optuna.pruners.HyperbandPruner,
        }
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                pruner = classes[name](**options)
        except (TypeError, ValueError) as exc:
            where = "early_terminate" if self.by_count else "expbook.pruner_options"
            raise SweepSpecError(where, f"{name}: {exc}") from None
        stateful = name in ("successive_halving", "hyperband")
        return pruner, (name, *sorted(options.items())) if stateful else None

    def _pruner_options(self, last: list[int]) -> tuple[str, dict[str, Any] | None]:
        """The Optuna pruner's name and arguments; None while "auto" cannot be resolved yet."""
        early = self.spec.early_terminate
        if early is not None and self.by_count:
            eta = max(2, int(early.eta))
            if early.max_iter is not None:
                low = max(1, int(early.max_iter / eta ** (early.s or 0)))
                high = int(early.max_iter)
            else:
                low = int(early.min_iter or 1)
                high = low * eta ** int(early.s) if early.s else (max(last) + 1 if last else 0)
            if high <= low:
                return "hyperband", None
            return "hyperband", {"min_resource": low, "max_resource": high,
                                 "reduction_factor": eta}  # fmt: skip
        name = self.spec.effective_pruner
        options = dict(self.spec.pruner_options)
        name = "successive_halving" if name == "asha" else name
        if name == "percentile":
            options.setdefault("percentile", 25.0)
        if name == "successive_halving" and options.get("min_resource", "auto") == "auto":
            if not last:
                return name, None
            options["min_resource"] = max(max(last) // 100, 1)
        if name == "hyperband" and options.get("max_resource", "auto") == "auto":
            if not last:
                return name, None
            options["max_resource"] = max(last) + 1
        return name, options


# ---------------------------------------------------------------------------------------------
# Helpers


def _configurations(
    trials: Sequence[TrialRecord], deciding: int | None
) -> list[tuple[int, list[TrialRecord]]]:
    """The trials grouped by configuration, in configuration order (Hyperband assigns an
    Optuna trial to a bracket by its number: keeping the order keeps the bracket). The trial
    being decided (``deciding``) takes its configuration's place alone, so the pruner judges
    its own curve; the configuration's other repeats go last."""
    groups: dict[int, list[TrialRecord]] = {}
    alone = None
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.number == deciding:
            alone = trial
        else:
            groups.setdefault(trial.config, []).append(trial)
    if alone is None:
        return sorted(groups.items())
    rest = groups.pop(alone.config, None)
    groups[alone.config] = [alone]
    ordered = sorted(groups.items())
    if rest:
        ordered.append((-1 - alone.config, rest))
    return ordered


def _mean_curve(members: Sequence[TrialRecord], curves: Mapping[int, Curve]) -> dict[int, float]:
    """A configuration's curve: its one trial's, or at each step the mean over its repeats
    (that logged that step; pruned repeats too, as far as they went)."""
    found = [curves.get(t.number) or {} for t in members]
    found = [c for c in found if c]
    if len(found) <= 1:
        return dict(found[0]) if found else {}
    steps = sorted({s for c in found for s in c})
    return {s: math.fsum(c[s] for c in found if s in c) / sum(s in c for c in found)
            for s in steps}  # fmt: skip


def _frozen(
    state: str, values: list[float] | None, params: Mapping[str, Any],
    distributions: Mapping[str, Any], curve: Curve, attrs: Mapping[str, Any],
) -> optuna.trial.FrozenTrial:  # fmt: skip
    import optuna

    points = {int(s): float(v) for s, v in curve.items()}  # NaN too: pruners prune on it
    return optuna.trial.create_trial(
        state=_optuna_state(state),
        values=values,
        params=dict(params),
        distributions={k: distributions[k] for k in params},
        intermediate_values=points,
        system_attrs=dict(attrs),
    )


def _in_space(
    distributions: Mapping[str, Any], params: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The params a define-by-run space holds (the others: a parameter no longer asked);
    None when a value lies outside its distribution (an edited space)."""
    out = {}
    for name, given in params.items():
        d = distributions.get(name)
        if d is None:
            continue
        try:
            if hasattr(d, "choices"):
                d.to_internal_repr(given)  # ValueError: not one of the choices
            elif not d.low <= float(given) <= d.high:
                return None
        except (ValueError, TypeError):
            return None
        out[name] = given
    return out


def _optuna_state(name: str) -> optuna.trial.TrialState:
    import optuna

    return getattr(optuna.trial.TrialState, name)


def _sweep_seed(name: str, given: Any) -> int:
    """A seed fixed for the sweep: the one given, else from its name (its UUID)."""
    if given is not None:
        return int(given) % 2**32
    import hashlib

    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:4], "big")


def objective(spec: SweepSpec, metrics: Mapping[str, Any]) -> tuple[float | None, ...]:
    """A finished run's values of the spec's metrics: each metric's summary value (the last
    one logged, as in W&B); None for a metric the run did not log."""
    out: list[float | None] = []
    for metric in spec.metrics:
        summary = metrics.get(metric.name)
        got = getattr(summary, "value", None) if summary is not None else None
        out.append(None if got is None else float(got))
    return tuple(out)
