"""What a sweep found: its trial counts, the best configuration, the trials table, parameter
importance, and whether the best configuration beats the runner-up beyond run-to-run noise.

Everything here reads a parsed spec and the sweep's ``TrialRecord``s; nothing writes. The
objective is the spec's first metric (``spec.metric``): a trial's value is ``values[0]``, and only
``finished`` trials with a value rank (a pruned trial stopped before it could finish; a NaN is a
result, but ranks last).

Trials that share a configuration (``config_key``: the spec's ``repeats``, or an attached run of
a configuration the sweep also ran) are one :class:`Configuration`, ranked by its mean. With
repeats, the best and the runner-up are compared with Welch's t-test from
``expbook.report.stats`` — the very numbers ``expbook compare RUNNER_UP BEST --exact`` prints for
the same runs.

Parameter importance is Optuna's PED-ANOVA (``PedAnovaImportanceEvaluator``, Optuna's default
evaluator, which needs only numpy and scipy; fANOVA and mean decrease impurity need
scikit-learn). It is computed on an in-memory study of one trial per configuration (its mean),
params translated with ``expbook.sweep.space.to_optuna``; configurations that no longer lie in
an edited space are left out (``space.contains``). optuna is imported inside the functions that
need it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from expbook.columns import canonical
from expbook.model import TrialRecord, TrialState
from expbook.sweep.spec import Metric, SweepSpec

IMPORTANCE_EVALUATOR = "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)"
MIN_IMPORTANCE_CONFIGS = 2
"""Importance needs at least this many finished configurations (with a value)."""
ROUGH_IMPORTANCE_CONFIGS = 10
"""Below this many configurations, importances are printed with a warning that they are rough."""


@dataclass(frozen=True)
class Configuration:
    """One configuration's finished trials (its repeats) and their values of the objective."""

    key: str
    params: Mapping[str, Any]
    trials: tuple[TrialRecord, ...]
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def runs(self) -> tuple[int, ...]:
        """The run numbers of its trials (those whose run still exists)."""
        return tuple(t.run_number for t in self.trials if t.run_number is not None)

    @property
    def best_trial(self) -> TrialRecord:
        """The first trial: trials are kept best value first."""
        return self.trials[0]


@dataclass(frozen=True)
class Importance:
    """Parameter importances (summing to 1, most important first), or why there are none."""

    evaluator: str
    values: Mapping[str, float] = field(default_factory=dict)
    configurations: int = 0
    reason: str | None = None

    @property
    def rough(self) -> bool:
        return bool(self.values) and self.configurations < ROUGH_IMPORTANCE_CONFIGS


@dataclass(frozen=True)
class NoiseCheck:
    """The best configuration against the runner-up (``difference`` is best minus runner-up,
    an ``expbook.report.stats.Difference``), or why they cannot be compared."""

    best: Configuration | None = None
    runner_up: Configuration | None = None
    difference: Any = None
    reason: str | None = None


@dataclass(frozen=True)
class TrialRow:
    """One row of the trials table."""

    number: int
    run_number: int | None
    state: str
    config: int
    repeat: int
    params: Mapping[str, Any]
    value: float | None
    pruned_step: int | None
    duration: float | None
    error: str | None


# ---------------------------------------------------------------------------------------------
# The spec in a few words


def describe_param(p: Any) -> str:
    """A parameter in a few words: ``0.001..0.1 (log_uniform_values)``, ``one of 64, 128``,
    ``= 2``."""
    if p.is_constant:
        return f"= {_short(p.value)}"
    if p.kind == "categorical":
        weights = " (weighted)" if p.probabilities else ""
        return "one of " + ", ".join(_short(v) for v in p.values) + weights
    if p.low is not None and p.high is not None:
        step = f" step {_short(p.q)}" if p.q is not None else ""
        return f"{_short(p.low)}..{_short(p.high)}{step} ({p.distribution})"
    shape = ", ".join(
        f"{k} {_short(getattr(p, k))}"
        for k in ("mu", "sigma", "a", "b")
        if getattr(p, k) is not None
    )
    return f"{p.distribution} ({shape})"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value)


# ---------------------------------------------------------------------------------------------
# Counts and values


def counts(trials: Sequence[TrialRecord]) -> dict[str, int]:
    """How many trials are in each state (every state listed, zeros included)."""
    found = {state.value: 0 for state in TrialState}
    for trial in trials:
        found[TrialState(trial.state).value] += 1
    return found


def value_of(trial: TrialRecord, index: int = 0) -> float | None:
    """The trial's value of metric ``index`` (None when not recorded)."""
    if not trial.values or index >= len(trial.values):
        return None
    value = trial.values[index]
    return None if value is None else float(value)


def lower_is_better(metric: Metric | None) -> bool:
    return metric is None or metric.goal == "minimize"


def _rank(value: float | None, metric: Metric | None) -> tuple[int, float]:
    """Sort key: best value first, NaN after every number, no value last."""
    if value is None:
        return (2, 0.0)
    if math.isnan(value):
        return (1, 0.0)
    return (0, value if lower_is_better(metric) else -value)


def duration(trial: TrialRecord, now: float | None = None) -> float | None:
    """Seconds the trial ran: to its end, or (still running) to now."""
    if trial.started_at is None:
        return None
    end = trial.ended_at
    if end is None:
        end = (now or time.time()) if trial.state == TrialState.RUNNING else trial.heartbeat_at
    return None if end is None else max(0.0, end - trial.started_at)


# ---------------------------------------------------------------------------------------------
# Configurations and the best one


def configurations(spec: SweepSpec, trials: Sequence[TrialRecord]) -> list[Configuration]:
    """The finished configurations (trials ``finished`` with a value, grouped by config key),
    best mean first; their params leave out the spec's ``seed_param``."""
    metric = spec.metric
    groups: dict[str, list[TrialRecord]] = {}
    for trial in trials:
        if trial.state == TrialState.FINISHED and value_of(trial) is not None:
            groups.setdefault(trial.config_key, []).append(trial)
    found = []
    for key, members in groups.items():
        members.sort(key=lambda t: (_rank(value_of(t), metric), t.number))
        values = tuple(value_of(t) for t in members)
        params = {k: v for k, v in members[0].params.items() if k != spec.seed_param}
        found.append(Configuration(key, params, tuple(members), values))  # type: ignore[arg-type]
    found.sort(key=lambda c: (_rank(c.mean, metric), c.trials[0].number))
    return found


def pareto_front(spec: SweepSpec, trials: Sequence[TrialRecord]) -> list[TrialRecord]:
    """With several metrics (``metrics:``), the finished trials no other finished trial beats
    on every metric at once — the trade-offs worth looking at — by trial number; [] with one
    metric. A trial missing a metric's value (or with NaN) is left out."""
    if len(spec.metrics) < 2:
        return []
    signs = [1.0 if m.goal == "minimize" else -1.0 for m in spec.metrics]
    points: list[tuple[TrialRecord, list[float]]] = []
    for trial in trials:
        if trial.state != TrialState.FINISHED:
            continue
        values = [value_of(trial, i) for i in range(len(signs))]
        if all(v is not None and not math.isnan(v) for v in values):
            points.append((trial, [s * v for s, v in zip(signs, values, strict=True)]))  # type: ignore[operator]

    def beats(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and a != b

    return [t for t, p in points if not any(beats(q, p) for _, q in points)]


def best_configuration(ranked: Sequence[Configuration]) -> Configuration | None:
    """The best of ``ranked`` (``configurations``' order), None when none has a number (no
    finished trial, or only NaN: a diverged run is a result, but not a best one)."""
    if not ranked or math.isnan(ranked[0].mean):
        return None
    return ranked[0]


def varying_params(trials: Sequence[TrialRecord]) -> list[str]:
    """Param names whose values differ between trials (in first-seen order); with a single
    configuration, all of them."""
    names: dict[str, set[str]] = {}
    for trial in trials:
        for name, value in trial.params.items():
            names.setdefault(name, set()).add(canonical(value))
    varying = [name for name, seen in names.items() if len(seen) > 1]
    if varying or len(trials) == 0:
        return varying
    return list(names)


def trial_rows(
    spec: SweepSpec, trials: Sequence[TrialRecord], now: float | None = None
) -> list[TrialRow]:
    """The trials table: best value first, then trials without a value by number; params are
    those that vary between trials."""
    shown = varying_params(trials)
    ordered = sorted(trials, key=lambda t: (_rank(value_of(t), spec.metric), t.number))
    return [
        TrialRow(
            number=t.number,
            run_number=t.run_number,
            state=TrialState(t.state).value,
            config=t.config,
            repeat=t.repeat,
            params={name: t.params[name] for name in shown if name in t.params},
            value=value_of(t),
            pruned_step=t.pruned_step,
            duration=duration(t, now),
            error=t.error,
        )
        for t in ordered
    ]


# ---------------------------------------------------------------------------------------------
# Beyond noise?


def noise_check(spec: SweepSpec, ranked: Sequence[Configuration]) -> NoiseCheck | None:
    """Whether the best configuration beats the runner-up beyond run-to-run noise: Welch's
    t-test on their repeats (``expbook.report.stats.compare_values(runner_up, best)``). None
    when the spec has no repeats (``expbook.repeats``): one run per configuration says nothing
    about noise."""
    if spec.repeats < 2:
        return None
    if len(ranked) < 2:
        count = "no configuration has" if not ranked else "only one configuration has"
        return NoiseCheck(
            best=ranked[0] if ranked else None,
            reason=f"{count} finished trials yet; the runner-up is needed",
        )
    from expbook.report.stats import compare_values

    best, runner_up = ranked[0], ranked[1]
    difference = compare_values(list(runner_up.values), list(best.values))
    reason = None
    if len(best.values) < 2 or len(runner_up.values) < 2:
        reason = (
            f"the best has {len(best.values)} finished repeat(s), the runner-up "
            f"{len(runner_up.values)}: run-to-run noise needs at least 2 of each"
        )
    return NoiseCheck(best, runner_up, difference, reason)


def noise_verdict(check: NoiseCheck, metric: Metric) -> str:
    """The check in words: whether the best is better than the runner-up beyond noise."""
    if check.reason is not None:
        return f"is the best better than the runner-up? unknown: {check.reason}"
    diff = check.difference
    better = diff.diff < 0 if lower_is_better(metric) else diff.diff > 0
    if diff.distinguishable:
        head = (
            "the best is better than the runner-up beyond noise"
            if better
            else ("the runner-up's repeats differ from the best's beyond noise")
        )
    elif diff.distinguishable is None:
        head = "the best and the runner-up cannot be told apart"
    else:
        head = "the best is not better than the runner-up beyond noise"
    return f"{head}: {diff.verdict}"


# ---------------------------------------------------------------------------------------------
# Parameter importance


def importance(spec: SweepSpec, ranked: Sequence[Configuration]) -> Importance:
    """Optuna's PED-ANOVA importance of each searched parameter for the objective, from one
    trial per finished configuration (its mean value). Configurations whose params lie outside
    the spec's current space (an edited sweep) are left out; NaN values too."""
    metric = spec.metric
    if metric is None:
        return Importance(IMPORTANCE_EVALUATOR, reason="the spec names no metric to explain")
    from expbook.sweep import space

    searched = space.distributions(spec)
    if not searched:
        return Importance(IMPORTANCE_EVALUATOR, reason="the spec searches no parameter")
    usable = [c for c in ranked if not math.isnan(c.mean) and space.contains(spec, c.params)]
    if len(usable) < MIN_IMPORTANCE_CONFIGS:
        left_out = len(ranked) - len(usable)
        extra = f" ({left_out} more outside the current space or NaN)" if left_out else ""
        return Importance(
            IMPORTANCE_EVALUATOR,
            configurations=len(usable),
            reason=f"needs at least {MIN_IMPORTANCE_CONFIGS} finished configurations in the "
            f"space, has {len(usable)}{extra}",
        )
    values = _ped_anova(spec, metric, searched, usable)
    return Importance(IMPORTANCE_EVALUATOR, values, configurations=len(usable))


def _ped_anova(
    spec: SweepSpec, metric: Metric, searched: Mapping[str, Any], usable: Sequence[Configuration]
) -> dict[str, float]:
    import warnings

    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    from expbook.sweep import space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=metric.goal)
    for config in usable:
        params = space.to_optuna(spec, config.params)
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=dict(searched), value=config.mean
            )
        )
    # Optuna advises >= 5 trials in the top quantile; keep it between 10 % and 50 %.
    quantile = min(0.5, max(0.1, 5 / len(usable)))
    evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = get_param_importances(study, evaluator=evaluator)
    return {
        name: float(found.get(name, 0.0)) for name in sorted(found, key=found.get, reverse=True)
    }  # type: ignore[arg-type]
