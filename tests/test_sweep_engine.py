"""The sweep engine: Optuna studies rebuilt from trial records, asked for configurations and for
pruning decisions (the tests with real stores and processes are in test_sweep_agents.py)."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from expbook.model import SweepRecord, TrialRecord, TrialState
from expbook.sweep import space
from expbook.sweep.engine import Engine, Proposal, best, slots, why_done
from expbook.sweep.spec import SweepSpecError, parse_spec

UNIT_SQUARE = {"x": {"min": -5.0, "max": 5.0}, "y": {"min": -5.0, "max": 5.0}}


def spec_of(method: str = "random", parameters: Any = None, **extra: Any) -> Any:
    raw = {
        "method": method,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": parameters or UNIT_SQUARE,
        "program": "train.py",
        **{k: v for k, v in extra.items() if k != "expbook"},
    }
    if "expbook" in extra:
        raw["expbook"] = extra["expbook"]
    return parse_spec(raw)


def sweep(created: float | None = None) -> SweepRecord:
    now = time.time() if created is None else created
    return SweepRecord("s", "s", "running", {}, 0, None, now, now)  # type: ignore[arg-type]


def record(
    n: int, p: Proposal, state: TrialState = TrialState.FINISHED, loss: float | None = None,
    config: int | None = None, attempt: int = 1,
) -> TrialRecord:  # fmt: skip
    return TrialRecord(
        sweep_id="s", number=n, config=n if config is None else config, repeat=p.repeat,
        config_key=p.config_key, params=p.params, state=state, attempt=attempt,
        values=None if loss is None else (loss,),
    )  # fmt: skip


def quadratic(params: dict[str, Any]) -> float:
    return (params["x"] - 1) ** 2 + (params["y"] + 2) ** 2


def run_sweep(engine: Engine, spec: Any, limit: int = 500) -> list[TrialRecord]:
    """Add finished trials as the engine proposes them until the budget says stop."""
    trials: list[TrialRecord] = []
    config_of: dict[str, int] = {}
    while why_done(spec, sweep(), trials) is None and len(trials) < limit:
        p = engine.next_configuration(trials, {})
        if p is None:
            break
        config = p.config if p.config is not None else config_of.get(p.config_key, len(config_of))
        config_of.setdefault(p.config_key, config)
        loss = quadratic(p.params) if "x" in p.params else 1.0
        trials.append(record(len(trials), p, loss=loss, config=config))
    return trials


# --- the grid ---------------------------------------------------------------------------------


def test_the_grid_covers_exactly_the_grid_in_order_once() -> None:
    spec = spec_of("grid", {"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]},
                            "c": {"value": 7}})  # fmt: skip
    trials = run_sweep(Engine(spec), spec)
    assert [t.params for t in trials] == space.grid(spec)
    assert len({t.config_key for t in trials}) == 6
    assert why_done(spec, sweep(), trials) == "all 6 trials of the budget were started"
    assert Engine(spec).next_configuration(trials) is None


def test_the_grid_runs_each_configuration_repeats_times_with_seeds() -> None:
    spec = spec_of("grid", {"a": {"values": [1, 2]}},
                   expbook={"repeats": 3, "seed_param": "seed"})  # fmt: skip
    trials = run_sweep(Engine(spec), spec)
    assert [(t.params["a"], t.params["seed"], t.config, t.repeat) for t in trials] == [
        (1, 0, 0, 0), (1, 1, 0, 1), (1, 2, 0, 2), (2, 0, 1, 0), (2, 1, 1, 1), (2, 2, 1, 2),
    ]  # fmt: skip
    assert len({t.config_key for t in trials}) == 2  # the seed is not part of the key


def test_a_stopped_grid_trial_is_run_again_and_a_crashed_one_counts() -> None:
    spec = spec_of("grid", {"a": {"values": [1, 2, 3]}})
    engine = Engine(spec)
    first = engine.next_configuration([])
    assert first is not None
    stopped = [record(0, first, TrialState.STOPPED, config=0)]
    again = engine.next_configuration(stopped)
    assert again is not None and again.params == first.params and again.config == 0
    crashed = [record(0, first, TrialState.CRASHED, config=0)]
    after = engine.next_configuration(crashed)
    assert after is not None and after.params == {"a": 2} and after.config is None
    assert len(slots(stopped)) == 0 and len(slots(crashed)) == 1


# --- random and Bayesian search ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_search_respects_the_budget_and_the_space(method: str) -> None:
    spec = spec_of(method, expbook={"trials": 25})
    trials = run_sweep(Engine(spec), spec)
    assert len(trials) == 25
    assert all(-5 <= t.params["x"] <= 5 and -5 <= t.params["y"] <= 5 for t in trials)
    assert len({t.config_key for t in trials}) == 25


def test_run_cap_is_the_budget_when_lower() -> None:
    spec = spec_of("random", run_cap=7, expbook={"trials": 50})
    assert len(run_sweep(Engine(spec), spec)) == 7


def test_the_timeout_ends_the_sweep() -> None:
    spec = spec_of("random", expbook={"timeout": "1m"})
    assert why_done(spec, sweep(time.time() - 30), []) is None
    assert why_done(spec, sweep(time.time() - 61), []) == "the timeout of 60 s has passed"


def test_the_target_ends_the_sweep() -> None:
    spec = spec_of("random", metric={"name": "loss", "goal": "minimize", "target": 0.5})
    p = Engine(spec).next_configuration([])
    assert p is not None
    assert why_done(spec, sweep(), [record(0, p, loss=0.7)]) is None
    reason = why_done(spec, sweep(), [record(0, p, loss=0.7), record(1, p, loss=0.4)])
    assert reason is not None and "trial 1 reached the target loss = 0.5" in reason


def test_bayes_finds_the_minimum_better_than_random() -> None:
    found = {}
    for method in ("random", "bayes"):
        spec = spec_of(method, expbook={"trials": 40, "sampler_options": {"seed": 3}})
        trials = run_sweep(Engine(spec), spec)
        found[method] = min(t.values[0] for t in trials if t.values)  # type: ignore[index]
    assert found["bayes"] < found["random"]
    assert found["bayes"] < 0.5


def test_a_seeded_sampler_does_not_repeat_itself_on_rebuilt_studies() -> None:
    spec = spec_of("random", expbook={"trials": 5, "sampler_options": {"seed": 1}})
    trials = run_sweep(Engine(spec), spec)
    assert len({t.config_key for t in trials}) == 5
    # Another agent with the same state of the store suggests the same; a retry does not.
    again = [Engine(spec).next_configuration(trials[:2]) for _ in range(2)]
    assert again[0] == again[1]
    assert Engine(spec).next_configuration(trials[:2], retry=1) != again[0]


def test_tpe_with_running_trials_does_not_suggest_the_same_twice() -> None:
    spec = spec_of("bayes", {"x": {"values": [1, 2, 3, 4]}}, expbook={"trials": 4})
    engine = Engine(spec)
    trials: list[TrialRecord] = []
    for n in range(3):
        p = engine.next_configuration(trials)
        assert p is not None
        trials.append(record(n, p, TrialState.RUNNING))
    # constant_liar: running trials count; three distinct values out of four are likely but
    # not certain for a categorical, so only check that nothing failed and values are valid.
    assert all(t.params["x"] in (1, 2, 3, 4) for t in trials)


def test_constraints_are_never_violated() -> None:
    spec = spec_of("random", expbook={"trials": 30, "constraints": ["x + y <= 0"]})
    trials = run_sweep(Engine(spec), spec)
    assert len(trials) == 30
    assert all(t.params["x"] + t.params["y"] <= 0 for t in trials)


def test_constraints_that_nothing_meets_are_one_error() -> None:
    spec = spec_of("random", expbook={"constraints": ["x > 100"]})
    with pytest.raises(SweepSpecError, match=r"expbook\.constraints: the constraints rejected"):
        Engine(spec).next_configuration([])


def test_repeats_are_added_before_new_configurations_and_their_mean_counts() -> None:
    spec = spec_of("random", expbook={"trials": 6, "repeats": 2, "seed_param": "seed"})
    trials = run_sweep(Engine(spec), spec)
    assert [(t.config, t.repeat) for t in trials] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0),
                                                      (2, 1)]  # fmt: skip
    assert [t.params["seed"] for t in trials] == [0, 1] * 3
    found = best(spec, trials)
    assert found is not None and found[1] == min(t.values[0] for t in trials)  # type: ignore[index]


# --- pruning ----------------------------------------------------------------------------------


def curve(n: int, steps: int, bad: bool = False, offset: float = 0.0) -> dict[int, float]:
    return {s: 5.0 if bad else 1.0 / (s + 1) + 0.01 * n + offset for s in range(1, steps + 1)}


def pruning_case(finished: int, **extra: Any) -> tuple[Engine, list[TrialRecord], dict]:
    """``finished`` trials with decreasing curves over 27 steps, then two running ones at step
    12: a hopeless one (loss 5 throughout) and one better than all."""
    spec = spec_of("random", {"x": {"min": 0.0, "max": 1.0}}, **extra)
    engine = Engine(spec, study_name="3f2c")
    trials: list[TrialRecord] = []
    curves: dict[int, dict[int, float]] = {}
    for n in range(finished + 2):
        p = engine.next_configuration(trials, curves)
        assert p is not None
        running = n >= finished
        best_of_all = -0.01 * n - 0.05 if n == finished + 1 else 0.0
        full = curve(n, 27, bad=n == finished, offset=best_of_all)
        curves[n] = {s: v for s, v in full.items() if s <= 12} if running else full
        state = TrialState.RUNNING if running else TrialState.FINISHED
        trials.append(record(n, p, state, None if running else full[27]))
    return engine, trials, curves


@pytest.mark.parametrize(
    ("extra", "finished"),
    [
        ({"expbook": {"pruner": "median"}}, 5),
        ({"expbook": {"pruner": "percentile", "pruner_options": {"percentile": 50}}}, 5),
        ({"expbook": {"pruner": "asha", "pruner_options": {"min_resource": 1}}}, 5),
        ({"expbook": {"pruner": "hyperband", "pruner_options": {"max_resource": 27}}}, 40),
        ({"early_terminate": {"type": "hyperband", "min_iter": 3}}, 40),
        ({"early_terminate": {"type": "hyperband", "max_iter": 27, "s": 2}}, 40),
    ],
    ids=["median", "percentile", "asha", "hyperband", "wandb-min_iter", "wandb-max_iter"],
)
def test_the_pruner_stops_the_hopeless_trial_and_not_the_good_one(
    extra: dict[str, Any], finished: int
) -> None:
    engine, trials, curves = pruning_case(finished, **extra)
    hopeless = engine.decide(trials, curves, finished)
    assert hopeless.prune and hopeless.value == 5.0 and hopeless.step is not None
    assert not engine.decide(trials, curves, finished + 1).prune
    # A decision made at a step checked before is not made again.
    assert not engine.decide(trials, curves, finished, after=12).prune


def test_no_pruner_never_prunes() -> None:
    engine, trials, curves = pruning_case(5)
    assert not engine.decide(trials, curves, 5).prune


def test_a_pruned_configuration_is_not_repeated() -> None:
    spec = spec_of("random", expbook={"repeats": 2, "pruner": "median"})
    engine = Engine(spec)
    p = engine.next_configuration([])
    assert p is not None
    pruned = [record(0, p, TrialState.PRUNED)]
    q = engine.next_configuration(pruned)
    assert q is not None and q.config is None and q.config_key != p.config_key


def test_a_trial_value_is_nan_free() -> None:
    spec = spec_of("random")
    p = Engine(spec).next_configuration([])
    assert p is not None
    trials = [record(0, p, loss=math.nan), record(1, p, loss=2.0, config=1)]
    found = best(spec, trials)
    assert found is not None and found[1] == 2.0
    assert Engine(spec).next_configuration(trials) is not None


def test_a_diverged_trial_is_pruned() -> None:
    """NaN reaches Optuna's pruners: the median pruner prunes a trial with no number yet
    (it judges the best value so far), successive halving one that is NaN at a rung."""
    engine, trials, curves = pruning_case(5, expbook={"pruner": "median"})
    curves[6] = dict.fromkeys(curves[6], math.nan)
    decision = engine.decide(trials, curves, 6)
    assert decision.prune and decision.step == 12 and math.isnan(decision.value)  # type: ignore[arg-type]
    options = {"pruner": "asha", "pruner_options": {"min_resource": 1}}
    engine, trials, curves = pruning_case(5, expbook=options)
    curves[6] = {**curves[6], 1: math.nan}
    decision = engine.decide(trials, curves, 6)
    assert decision.prune and decision.step == 1


def test_curves_read_a_run_series_by_step_or_by_index(store: Any) -> None:
    """On SQLite and PostgreSQL: expbook's pruners see steps; W&B's hyperband the index of
    each logged value. A running trial's curve grows with new points only."""
    import expbook

    tracker = expbook.Tracker(store)
    with tracker.start_run("trial", params={"x": 1}) as run:
        for step in (10, 20, 30):
            run.log({"loss": 1.0 / step}, step=step)
    spec = spec_of("random")
    trial = TrialRecord("s", 0, 0, 0, "k", {}, TrialState.RUNNING, run_id=run.id)
    by_step = Engine(spec).curves(store)
    assert by_step.get(trial) == {10: 0.1, 20: 0.05, 30: 1 / 30}
    wandb = spec_of("random", early_terminate={"type": "hyperband", "min_iter": 1})
    assert Engine(wandb).curves(store).get(trial) == {0: 0.1, 1: 0.05, 2: 1 / 30}
    assert by_step.get(TrialRecord("s", 1, 1, 0, "k", {}, TrialState.RUNNING)) == {}
