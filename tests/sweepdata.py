"""A small finished sweep on a real store, for the sweep page's and the notebook's tests: made
with the store's sweep methods and ``expbook.start_run`` (no agent), so it is known exactly.

Nine trials of ``lr`` (log-uniform, 1e-4..1e-1) x ``layers`` (2 or 3), each a run that logs
``valid/loss`` per step: six run 12 steps and finish, two are pruned (stopped at steps 3 and 5):
trial 1 with its last value, as the agent records it, trial 4 without one (as an older writer
might), and one trial fails without a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import expbook
from expbook.model import TrialState
from expbook.store.base import Store

SPEC = {
    "method": "random",
    "metric": {"name": "valid/loss", "goal": "minimize"},
    "parameters": {
        "lr": {"min": 1e-4, "max": 0.1, "distribution": "log_uniform_values"},
        "layers": {"values": [2, 3]},
        "dropout": {"value": 0.1},
    },
    "early_terminate": {"type": "hyperband", "min_iter": 3},
}
EXPERIMENT = "tune the mlp"
STEPS = 12
# (lr, layers, state, pruned step): the trials in order
TRIALS = [
    (0.03, 2, TrialState.FINISHED, None),
    (0.0003, 3, TrialState.PRUNED, 3),
    (0.003, 2, TrialState.FINISHED, None),
    (0.01, 3, TrialState.FINISHED, None),
    (0.0001, 2, TrialState.PRUNED, 5),
    (0.001, 3, TrialState.FINISHED, None),
    (0.05, 2, TrialState.FAILED, None),
    (0.002, 2, TrialState.FINISHED, None),
    (0.02, 3, TrialState.FINISHED, None),
]
PRUNED_WITHOUT_VALUE = 4


def loss(lr: float, layers: int, step: int) -> float:
    """A curve that falls fastest near lr = 2e-3, a little better with 3 layers."""
    floor = 0.1 + 0.3 * abs(math.log10(lr) - math.log10(2e-3)) - 0.02 * (layers - 2)
    return floor + 2.0 / (step + 1)


@dataclass(frozen=True)
class Made:
    sweep_id: str
    name: str
    runs: dict[int, int]  # trial number -> run number
    values: dict[int, float | None]  # trial number -> value


def make_sweep(location: str | Path, name: str = "mlp-lr", *, repeats: int = 1) -> Made:
    """The sweep of the module docstring in the store at ``location``; with ``repeats``, each
    configuration's trial is repeated that many times (seed 0, 1, ...; the values differ by a
    little noise) and the spec says so."""
    runs: dict[int, int] = {}
    values: dict[int, float | None] = {}
    extension = {"expbook": {"repeats": repeats, "seed_param": "seed"}}
    spec = SPEC if repeats == 1 else {**SPEC, **extension}
    plan = [(trial, seed) for trial in TRIALS for seed in range(repeats)]
    with expbook.open_store(str(location)) as store:
        sweep = store.create_sweep(name, spec, experiment=EXPERIMENT)
        for number, ((lr, layers, state, pruned), seed) in enumerate(plan):
            params = {"lr": lr, "layers": layers, "dropout": 0.1}
            if repeats > 1:
                params["seed"] = seed
            version = store.get_sweep(sweep.id).version
            key = f"layers={layers},lr={lr}"
            trial = store.add_trial(sweep.id, expected_version=version, params=params,
                                    config_key=key, config=number // repeats,
                                    repeat=seed, worker="w1")  # fmt: skip
            assert trial is not None and trial.number == number
            run_number, value = _run(store, name, number, params, state, pruned)
            if number // repeats == PRUNED_WITHOUT_VALUE:
                value = None
            runs[number], values[number] = run_number, value
            run_id = store.run(str(run_number)).id
            error = "exit status 1" if state == TrialState.FAILED else None
            store.update_trial(sweep.id, number, worker="w1", state=state, run_id=run_id,
                               values=None if value is None else [value], pruned_step=pruned,
                               error=error)  # fmt: skip
        store.update_sweep(sweep.id, state="finished")
    return Made(sweep.id, name, runs, values)


def _run(
    store: Store, sweep: str, number: int, params: dict, state: TrialState, pruned: int | None
) -> tuple[int, float | None]:
    steps = STEPS if pruned is None else pruned + 1
    status = {"finished": "finished", "pruned": "pruned", "failed": "failed"}[state.value]
    with expbook.start_run(f"{sweep}-{number}", store=store, experiment=EXPERIMENT, params=params,
                           kind="sweep-trial", system_metrics=False) as run:  # fmt: skip
        if state == TrialState.FAILED:
            run.finish("failed", error="RuntimeError: diverged")
            return run.number, None
        noise = 0.004 * params.get("seed", 0)
        for step in range(steps):
            run.log({"valid/loss": loss(params["lr"], params["layers"], step) + noise}, step=step)
        run.finish(status)
    last = loss(params["lr"], params["layers"], steps - 1) + noise
    return run.number, last


def finished_trials() -> list[int]:
    return [n for n, (_, _, state, _) in enumerate(TRIALS) if state == TrialState.FINISHED]


def best_so_far(values: dict[int, float | None], ended: list[int]) -> list[float]:
    """The best finished value up to each of the ``ended`` trials (lowest: minimised)."""
    finished = set(finished_trials())
    return [min(values[m] for m in ended[: i + 1] if m in finished) for i in range(len(ended))]  # type: ignore[type-var]


# A program for pruning tests (tests/test_sweep_agents.py, tests/test_sweep_ray.py): "bad" trials
# print a flat, high loss slowly, others a falling one quickly (dedent it).
PRUNE_PROGRAM = """
    import argparse, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--quality")
    quality = parser.parse_args().quality
    for step in range(1, 41):
        print(f"step={step} loss={10.0 if quality == 'bad' else 1.0 / step:.4f}", flush=True)
        time.sleep(0.5 if quality == "bad" else 0.01)
"""
