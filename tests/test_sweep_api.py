"""``expbook.sweep(objective, ...)`` on real stores (SQLite files and the real PostgreSQL): the
same sweeps and trials as ``expbook sweep run`` makes, read back through the store, the engine
and ``expbook sweep show``; several processes on one PostgreSQL sweep; Ctrl-C in a real child
process."""

from __future__ import annotations

import contextlib
import enum
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest

import expbook
from expbook.cli.main import run_cli as cli_main
from expbook.errors import InvalidValueError
from expbook.model import RunStatus, SweepState, TrialState
from expbook.sweep.spec import SweepSpecError, parse_spec

ROOT = Path(__file__).parent.parent


def bowl(x: float, y: float) -> float:
    """A bowl with its minimum 0 at (3, -1)."""
    return (x - 3) ** 2 + (y + 1) ** 2


def define_by_run(trial: expbook.Trial) -> float:
    return bowl(trial.suggest_float("x", -10, 10), trial.suggest_float("y", -10, 10))


def runs_of(store: Any, name: str) -> dict[int, Any]:
    """The sweep's trials' runs, by trial number."""
    sweep = store.get_sweep(name)
    return {t.number: store.run(t.run_id) for t in store.list_trials(sweep.id) if t.run_id}


# ---------------------------------------------------------------------------------------------
# Define-by-run


def lr_and_width(trial: expbook.Trial) -> float:
    """A valley at lr = 1e-3, hidden = 16, both searched on the log scale."""
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    hidden = trial.suggest_int("hidden", 1, 64, log=True)
    return (math.log10(lr) + 3) ** 2 + (math.log2(hidden) - 4) ** 2


def near_optimum(params: dict[str, Any]) -> bool:
    """Within half a decade of lr's optimum and a factor 2 of hidden's: 1/4 * 2/6 of the
    space, so a random draw lands there with probability 1/12."""
    return abs(math.log10(params["lr"]) + 3) < 0.5 and abs(math.log2(params["hidden"]) - 4) < 1


def test_tpe_finds_the_optimum_region_within_the_budget(store_url: str) -> None:
    """TPE through the engine learns: of the 20 trials after its 10 random start-up trials, 7
    lie near the optimum (random search: 0 or 1 for each of seeds 0-5; 1.7 expected)."""
    result = expbook.sweep(lr_and_width, metric="loss", trials=30, name="valley", seed=0,
                           store=store_url, pruner="none")  # fmt: skip
    assert result.state == SweepState.FINISHED and len(result.trials) == 30
    assert [t.number for t in result.trials] == list(range(30))
    assert sum(near_optimum(t.params) for t in result.trials[10:]) >= 4
    assert near_optimum(result.best_params) and result.best_value < 0.25
    assert result.best.value == pytest.approx(lr_and_width(_Fixed(result.best_params)))
    store = expbook.open_store(store_url)
    spec = parse_spec(store.get_sweep("valley").spec)
    assert spec.effective_sampler == "tpe" and spec.budget() == 30
    assert {p.name: (p.low, p.high, p.distribution, p.log) for p in spec.parameters} == {
        "lr": (1e-5, 1e-1, "log_uniform_values", True),
        "hidden": (1, 64, "q_log_uniform_values", True),
    }
    run = result.best.run
    assert run.kind == "sweep-trial" and "sweep:valley" in run.tags
    assert run.params == result.best.params and run.name == f"valley-{result.best.number}"
    assert run.status == RunStatus.FINISHED
    assert run.metrics["loss"].value == pytest.approx(result.best_value)  # the returned value


class _Fixed:
    """Answers suggest_* with given params (to evaluate an objective at them)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params

    def suggest_float(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.params[name]

    suggest_int = suggest_float


def test_conditional_parameters_and_the_spec_growing_with_them(tmp_path: Path) -> None:
    def objective(trial: expbook.Trial) -> float:
        layers = trial.suggest_int("layers", 1, 3)
        units = [trial.suggest_int(f"units_l{i}", 4, 128, log=True) for i in range(layers)]
        act = trial.suggest_categorical("act", ["relu", "tanh"])
        step = trial.suggest_float("lr", 0.1, 0.9, step=0.2)  # 0.1 is no multiple of 0.2
        return sum(units) * step + (act == "tanh")

    store = str(tmp_path / "s.db")
    result = expbook.sweep(objective, trials=16, name="cond", store=store, sampler="tpe",
                           sampler_options={"n_startup_trials": 4}, seed=3)  # fmt: skip
    assert [t.state for t in result.trials] == [TrialState.FINISHED] * 16
    for t in result.trials:
        names = {f"units_l{i}" for i in range(t.params["layers"])}
        assert set(t.params) == {"layers", "act", "lr"} | names  # only what it asked for
        assert all(isinstance(t.params[n], int) and 4 <= t.params[n] <= 128 for n in names)
        assert round((t.params["lr"] - 0.1) / 0.2, 9) % 1 == 0
    raw = expbook.open_store(store).get_sweep("cond").spec["parameters"]
    seen = {n for t in result.trials for n in t.params}
    assert set(raw) == seen
    assert raw["units_l0"] == {"distribution": "q_log_uniform_values", "min": 4, "max": 128,
                               "q": 1}  # fmt: skip
    assert raw["lr"] == {"distribution": "uniform", "min": 0.1, "max": 0.9}
    assert raw["act"] == {"values": ["relu", "tanh"]}
    # A parameter asked with other bounds widens; with another kind it is an error, at once.
    widened = expbook.sweep(lambda t: t.suggest_int("layers", 0, 5), trials=17, name="cond",
                            store=store)  # fmt: skip
    assert widened.trials[-1].params == {"layers": widened.trials[-1].params["layers"]}
    raw = expbook.open_store(store).get_sweep("cond").spec["parameters"]
    assert raw["layers"] == {"distribution": "int_uniform", "min": 0, "max": 5}

    def wrong_kind(trial: expbook.Trial) -> float:
        return trial.suggest_float("layers", 1.0, 3.0)

    with pytest.raises(InvalidValueError, match=r"'layers' is asked as float 1.0..3.0, but"):
        expbook.sweep(wrong_kind, trials=30, name="cond", store=store, catch=())


def test_params_are_asked_before_the_trial_starts(tmp_path: Path) -> None:
    def late(trial: expbook.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        trial.run.log({"objective": x})
        return trial.suggest_float("y", 0, 1)

    with pytest.raises(InvalidValueError, match="'y' asked for after trial 0 started: ask for"):
        expbook.sweep(late, trials=3, name="late", store=str(tmp_path / "s.db"), catch=())
    trial = expbook.open_store(str(tmp_path / "s.db")).list_trials(
        expbook.open_store(str(tmp_path / "s.db")).get_sweep("late").id)[0]  # fmt: skip
    assert trial.state == TrialState.FAILED and trial.params == {"x": trial.params["x"]}
    with pytest.raises(InvalidValueError, match="parameter name 'a b'"):
        expbook.sweep(lambda t: t.suggest_int("a b", 0, 1), trials=1, store=str(tmp_path / "t"),
                      catch=())  # fmt: skip
    with pytest.raises(InvalidValueError, match=r"objective\(\): expbook.sweep calls it as"):
        expbook.sweep(lambda: 0.0, trials=1, store=str(tmp_path / "t"))


# ---------------------------------------------------------------------------------------------
# Typed spaces


class Act(enum.Enum):
    RELU = "relu"
    GELU = "gelu"


@dataclass
class Optimizer:
    lr: Annotated[float, expbook.LogUniform(1e-5, 1e-1)]
    momentum: float = 0.9


@dataclass
class Space:
    optimizer: Optimizer
    hidden: Annotated[int, expbook.Uniform(64, 256, step=64)]
    dropout: Annotated[float, expbook.Uniform(0.0, 0.3)]
    width: Annotated[int, expbook.LogUniform(1, 1024)]
    batch: Literal[32, 64]
    act: Act
    bias: bool
    schedule: Annotated[str, expbook.Choice("cosine", "step", probabilities=[0.8, 0.2])]
    name: str = "mlp"


def check_typed(result: expbook.SweepResult, cls: type) -> None:
    trials = result.trials
    assert len(trials) == 60 and all(t.state == TrialState.FINISHED for t in trials)
    for t in trials:
        c = t.config
        assert isinstance(c, cls) and isinstance(c.act, Act) and c.name == "mlp"
        assert 1e-5 <= c.optimizer.lr <= 1e-1 and c.optimizer.momentum == 0.9
        assert type(c.hidden) is int and c.hidden in (64, 128, 192, 256)
        assert 0 <= c.dropout <= 0.3 and type(c.width) is int and 1 <= c.width <= 1024
        assert c.batch in (32, 64) and c.bias in (True, False)
        assert t.params["optimizer.lr"] == c.optimizer.lr and t.params["act"] == c.act.value
        assert t.params["name"] == "mlp" and t.params["optimizer.momentum"] == 0.9
    # The log scale: as many draws below the geometric middle as above it (uniform: 1 %).
    below = sum(t.config.optimizer.lr < 1e-3 for t in trials)
    assert 18 <= below <= 42, below
    small = sum(t.config.width <= 32 for t in trials)
    assert 18 <= small <= 42, small
    assert sum(t.config.schedule == "cosine" for t in trials) >= 38  # 80 %: 48 expected


def test_a_dataclass_space_respects_bounds_scales_steps_and_choices(store_url: str) -> None:
    seen: list[Any] = []

    def objective(config: Space, trial: expbook.Trial) -> float:
        if not seen:
            seen.append(trial.run.record().params)
        assert expbook.active_run() is trial.run
        return config.optimizer.lr * config.hidden

    result = expbook.sweep(objective, space=Space, trials=60, sampler="random", seed=0,
                           name="typed", store=store_url)  # fmt: skip
    check_typed(result, Space)
    assert seen[0] == result.trials[0].params
    spec = parse_spec(expbook.open_store(store_url).get_sweep("typed").spec)
    kinds = {p.name: (p.distribution, p.log) for p in spec.parameters}
    assert kinds["optimizer.lr"] == ("log_uniform_values", True)
    assert kinds["hidden"] == ("q_uniform", False) and kinds["name"] == ("constant", False)


def test_a_pydantic_space(tmp_path: Path) -> None:
    pydantic = pytest.importorskip("pydantic")

    class PydanticOptimizer(pydantic.BaseModel):
        lr: Annotated[float, expbook.LogUniform(1e-5, 1e-1)]
        momentum: float = 0.9

    class PydanticSpace(pydantic.BaseModel):
        optimizer: PydanticOptimizer
        hidden: Annotated[int, expbook.Uniform(64, 256, step=64)]
        dropout: float = pydantic.Field(ge=0.0, le=0.3)  # bounds searched uniformly
        layers: int = pydantic.Field(gt=0, lt=4)  # exclusive: 1, 2 or 3
        width: Annotated[int, expbook.LogUniform(1, 1024)]
        batch: Literal[32, 64]
        act: Act
        bias: bool
        schedule: Annotated[str, expbook.Choice("cosine", "step", probabilities=[0.8, 0.2])]
        name: str = "mlp"

    def objective(config: PydanticSpace) -> float:  # one argument: the config only
        return config.dropout

    result = expbook.sweep(objective, space=PydanticSpace, trials=60, sampler="random",
                           seed=0, store=str(tmp_path / "s.db"))  # fmt: skip
    check_typed(result, PydanticSpace)
    assert all(0 <= t.config.dropout <= 0.3 for t in result.trials)
    assert {t.config.layers for t in result.trials} == {1, 2, 3}


def test_a_mapping_space_on_the_grid_runs_exactly_the_grid(tmp_path: Path) -> None:
    space = {"model": {"parameters": {"hidden": {"values": [64, 128]}}},
             "lr": {"distribution": "q_uniform", "min": 0.1, "max": 0.3, "q": 0.1},
             "layers": {"value": 2}}  # fmt: skip
    got: list[dict[str, Any]] = []

    def objective(config: dict[str, Any]) -> float:
        got.append(config)
        return config["lr"] * config["model"]["hidden"]

    result = expbook.sweep(objective, space=space, sampler="grid", store=str(tmp_path / "s.db"),
                           name="grid", trials=100)  # fmt: skip
    pairs = sorted((c["model"]["hidden"], c["lr"]) for c in got)
    assert pairs == [(h, lr) for h in (64, 128) for lr in (0.1, 0.2, 0.3)]
    assert all(c["layers"] == 2 for c in got)
    assert result.state == SweepState.FINISHED and len(result.trials) == 6
    assert result.best_params == {"model.hidden": 64, "lr": 0.1, "layers": 2}


def test_a_typed_space_that_says_nothing_is_an_error_naming_the_field(tmp_path: Path) -> None:
    @dataclass
    class Vague:
        lr: float

    @dataclass
    class Misaligned:
        hidden: Annotated[int, expbook.Uniform(10, 100, step=64)]

    @dataclass
    class FloatBounds:
        hidden: Annotated[int, expbook.Uniform(0.5, 10)]

    for space, message in (
        (Vague, "Vague.lr: say what to search"),
        (Misaligned, "Misaligned.hidden: Uniform.*low must be a multiple of step"),
        (FloatBounds, "FloatBounds.hidden: an int field takes integer bounds"),
        (42, "space=int: give a dataclass or a pydantic model"),
    ):
        with pytest.raises(InvalidValueError, match=message):
            expbook.sweep(lambda c: 0.0, space=space, trials=1, store=str(tmp_path / "s.db"))

    @dataclass
    class Good:
        lr: Annotated[float, expbook.Uniform(0, 1)]

    def asks(config: Good, trial: expbook.Trial) -> float:
        assert trial.suggest_float("lr", 0, 1) == config.lr  # in the space: its value
        return trial.suggest_float("other", 0, 1)

    with pytest.raises(InvalidValueError, match="'other' asked for after trial 0 started: a typ"):
        expbook.sweep(asks, space=Good, trials=1, store=str(tmp_path / "s.db"), catch=())


# ---------------------------------------------------------------------------------------------
# Pruning


@pytest.mark.parametrize("how", ["log", "report", "both"])
def test_the_pruner_stops_hopeless_trials_and_lets_good_ones_finish(
    tmp_path: Path, how: str
) -> None:
    """Trials with an even x are hopeless (a curve 10 above the others at every step): once 3
    trials finished, the median pruner stops them at their first step; the others finish."""

    def objective(trial: expbook.Trial) -> float:
        x = trial.suggest_int("x", 0, 1000)
        hopeless = x % 2 == 0
        for step in range(6):
            value = (10.0 if hopeless else 1.0) + 1.0 / (step + 1)
            if how in ("log", "both"):
                trial.run.log({"valid/loss": value}, step=step)
            if how in ("report", "both"):
                trial.report(value, step)
            if trial.should_prune():
                raise expbook.TrialPruned()
        return value

    store_path = str(tmp_path / "s.db")
    first = expbook.sweep(lambda t: objective(t) if t.suggest_int("x", 1, 1) else 0, trials=3,
                          name="prune", metric="valid/loss", store=store_path, sampler="random",
                          pruner_options={"n_startup_trials": 3})  # fmt: skip
    assert [t.state for t in first.trials] == [TrialState.FINISHED] * 3  # x = 1: good ones
    result = expbook.sweep(objective, trials=23, name="prune", metric="valid/loss",
                           store=store_path, sampler="random", seed=5)  # fmt: skip
    store = expbook.open_store(store_path)
    runs = runs_of(store, "prune")
    later = result.trials[3:]
    assert any(t.params["x"] % 2 == 0 for t in later) and any(t.params["x"] % 2 for t in later)
    for t in later:
        run = runs[t.number]
        series = store.get_series(run.id, "valid/loss")
        assert list(series.steps) == sorted(set(series.steps))  # one point per step
        if t.params["x"] % 2 == 0:
            assert t.state == TrialState.PRUNED and t.pruned_step == 0, t
            assert run.status == RunStatus.PRUNED and list(series.steps) == [0]
            assert run.notes[-1].text == "pruned by median at step 0: valid/loss = 11"
        else:
            assert t.state == TrialState.FINISHED and run.status == RunStatus.FINISHED
            assert list(series.steps) == list(range(6)) and t.value == pytest.approx(1 + 1 / 6)


# ---------------------------------------------------------------------------------------------
# Failures


def test_a_failing_objective_fails_its_trial_and_the_sweep_goes_on(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")

    def objective(trial: expbook.Trial) -> float | None:
        x = trial.suggest_int("x", 0, 10**6)
        n = trial.number
        if n in (1, 4):
            raise MemoryError(f"CUDA out of memory with x={x}")
        if n == 2:
            return math.nan
        if n == 3:
            trial.run.log({"objective": 7.0}, step=0)
            return None  # the value: the last logged
        return float(n)

    result = expbook.sweep(objective, trials=6, name="fails", store=store, sampler="random")
    states = [t.state for t in result.trials]
    assert states == ["finished", "failed", "failed", "finished", "failed", "finished"]
    assert result.trials[1].error.startswith("MemoryError: CUDA out of memory with x=")
    assert result.trials[2].error == "the objective returned nan"
    assert result.trials[3].value == 7.0 and result.best.number == 0
    runs = runs_of(expbook.open_store(store), "fails")
    assert runs[1].status == RunStatus.FAILED and "Traceback" in runs[1].error
    assert "raise MemoryError" in runs[1].error
    assert runs[2].status == RunStatus.FAILED
    assert runs[5].metrics["objective"].value == 5.0  # the returned value, as a summary

    def oom(trial: expbook.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        raise MemoryError("CUDA out of memory")

    # Not in catch: the first failure propagates, its trial recorded failed.
    with pytest.raises(MemoryError):
        expbook.sweep(oom, trials=10, name="strict", store=store, catch=(ValueError,))
    opened = expbook.open_store(store)
    (trial,) = opened.list_trials(opened.get_sweep("strict").id)
    assert trial.state == TrialState.FAILED and opened.run(trial.run_id).status == "failed"

    def broken(trial: expbook.Trial) -> float:
        trial.suggest_float("x", 0, 1)
        raise KeyError("no such column")

    with pytest.raises(KeyError) as raised:
        expbook.sweep(broken, trials=20, name="broken", store=store)
    assert "the first 3 trials of sweep 'broken' failed" in raised.value.__notes__[0]
    trials = opened.list_trials(opened.get_sweep("broken").id)
    assert [t.state for t in trials] == [TrialState.FAILED] * 3


# ---------------------------------------------------------------------------------------------
# Resuming, the CLI, import


def test_calling_again_with_the_name_resumes_the_sweep(store_url: str) -> None:
    first = expbook.sweep(define_by_run, trials=4, name="resumed", store=store_url, seed=2)
    assert first.state == SweepState.FINISHED and len(first.trials) == 4
    again = expbook.sweep(define_by_run, trials=4, name="resumed", store=store_url)
    assert len(again.trials) == 4 and again.reason.startswith("the sweep is finished")
    more = expbook.sweep(define_by_run, trials=7, name="resumed", store=store_url)
    assert [t.number for t in more.trials] == list(range(7))
    assert more.trials[:4] == first.trials and more.state == SweepState.FINISHED
    store = expbook.open_store(store_url)
    store.update_sweep(store.get_sweep("resumed").id, state="stopped")
    with pytest.raises(InvalidValueError, match=r"optimizes objective .minimize., not objective"):
        expbook.sweep(define_by_run, goal="maximize", trials=9, name="resumed", store=store_url)
    last = expbook.sweep(define_by_run, trials=9, name="resumed", store=store_url)
    assert len(last.trials) == 9 and last.state == SweepState.FINISHED


def test_expbook_sweep_show_and_ls_show_an_api_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.db")
    result = expbook.sweep(define_by_run, metric="valid/loss", trials=5, name="shown",
                           store=store, seed=0, experiment="bowls")  # fmt: skip
    assert cli_main(["sweep", "show", "shown", "--json", "--store", store]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["best"]["value"] == pytest.approx(result.best_value)
    assert shown["best"]["params"] == result.best_params
    assert len(shown["trial_rows"]) == 5
    assert cli_main(["sweep", "ls", "--store", store]) == 0
    listed = capsys.readouterr().out
    assert "shown" in listed and "valid/loss" in listed
    assert cli_main(["ls", "--store", store, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert {r["kind"] for r in runs} == {"sweep-trial"} and len(runs) == 5
    assert {r["experiment"] for r in runs} == {"bowls"}


def test_expbook_sweep_is_the_function_and_the_package() -> None:
    import expbook.sweep.engine  # rebinds expbook.sweep to the package: still callable

    assert callable(expbook.sweep) and expbook.sweep.engine.Engine is not None
    code = "import sys, expbook; expbook.sweep; expbook.TrialPruned; expbook.Uniform; " \
           "print('optuna' in sys.modules)"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_workers_run_trials_at_once_in_threads(tmp_path: Path) -> None:
    import threading

    lock = threading.Lock()
    now = {"running": 0, "most": 0}

    def objective(trial: expbook.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        trial.run.log({"objective": x}, step=0)
        with lock:
            now["running"] += 1
            now["most"] = max(now["most"], now["running"])
        time.sleep(0.3)
        with lock:
            now["running"] -= 1
        return x

    result = expbook.sweep(objective, trials=6, workers=2, store=str(tmp_path / "s.db"))
    assert [t.number for t in result.trials] == list(range(6)) and now["most"] == 2
    assert all(t.state == TrialState.FINISHED for t in result.trials)


# ---------------------------------------------------------------------------------------------
# Processes


SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import expbook

    def objective(trial):
        x = trial.suggest_float("x", -10, 10)
        y = trial.suggest_float("y", -10, 10)
        trial.run.log({"loss": (x - 3) ** 2 + (y + 1) ** 2}, step=0)
        if os.environ.get("MARK"):
            open(os.environ["MARK"], "w").close()
            for _ in range(600):  # Python code between sleeps, as a training loop has
                time.sleep(0.1)
        time.sleep(float(os.environ.get("NAP", "0")))
        return (x - 3) ** 2 + (y + 1) ** 2

    result = expbook.sweep(objective, metric="loss", trials=int(sys.argv[2]), name="shared",
                           store=sys.argv[1], workers=int(os.environ.get("WORKERS", "1")))
    print(len(result.trials), result.reason)
    """
)


def test_two_processes_share_one_sweep_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    script = tmp_path / "tune.py"
    script.write_text(SCRIPT)
    expbook.open_store(postgres_url).close()  # the schema first, not by two processes at once
    env = {**os.environ, "NAP": "0.2", "EXPBOOK_SWEEP_HEARTBEAT": "1"}
    command = [sys.executable, str(script), postgres_url, "16"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen(command, env=env, cwd=tmp_path, **pipes) for _ in range(2)]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    store = expbook.open_store(postgres_url)
    sweep = store.get_sweep("shared")
    trials = store.list_trials(sweep.id)
    assert [t.number for t in trials] == list(range(16))  # no duplicate, no gap
    assert all(t.state == TrialState.FINISHED for t in trials)
    pids = {store.run(t.run_id).pid for t in trials}
    assert len(pids) == 2  # both processes ran trials
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 16
    assert sweep.state == SweepState.FINISHED
    for out, _ in outs:
        assert out.split()[0] == "16"


def start_script(tmp_path: Path, store: str, trials: int, **env: str) -> subprocess.Popen[str]:
    script = tmp_path / "tune.py"
    script.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(script), store, str(trials)], cwd=tmp_path,
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_running(proc: subprocess.Popen[str], store: str, count: int) -> None:
    """Until ``count`` trials of sweep 'shared' run and have logged their point."""
    opened = expbook.open_store(store)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(expbook.ExpbookError):
            trials = opened.list_trials(opened.get_sweep("shared").id)
            running = [t for t in trials if t.state == TrialState.RUNNING and t.run_id]
            if len(running) == count and all(
                "loss" in opened.run(t.run_id).metrics for t in running
            ):
                return
        time.sleep(0.05)
    raise AssertionError(proc.communicate())


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_interrupts_the_running_trials_and_propagates(tmp_path: Path, workers: int) -> None:
    store = str(tmp_path / "s.db")
    proc = start_script(tmp_path, store, 5, MARK=str(tmp_path / "mark"), WORKERS=str(workers))
    wait_running(proc, store, workers)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGINT and err.rstrip().endswith("KeyboardInterrupt")
    opened = expbook.open_store(store)
    trials = opened.list_trials(opened.get_sweep("shared").id)
    assert len(trials) == workers
    for trial in trials:
        run = opened.run(trial.run_id)
        assert trial.state == TrialState.STOPPED and run.status == RunStatus.INTERRUPTED
        assert run.error == "KeyboardInterrupt" and run.metrics["loss"].count == 1
        assert run.notes[-1].text == "stopped: KeyboardInterrupt"


def test_a_killed_process_trial_crashes_and_the_sweep_goes_on(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    # Its run's heartbeat every 0.3 s: the store reports the run crashed 1.2 s after the kill.
    proc = start_script(tmp_path, store, 3, MARK=str(tmp_path / "mark"),
                        EXPBOOK_HEARTBEAT_INTERVAL="0.3")  # fmt: skip
    wait_running(proc, store, 1)
    proc.kill()
    proc.communicate()
    env = {"EXPBOOK_SWEEP_HEARTBEAT": "0.2"}  # stale after 6 heartbeats: 1.2 s
    again = subprocess.run([sys.executable, str(tmp_path / "tune.py"), store, "3"], cwd=tmp_path,
                           env={**os.environ, **env}, capture_output=True, text=True,
                           timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "trial 0 crashed: agent" in again.stderr
    opened = expbook.open_store(store)
    trials = opened.list_trials(opened.get_sweep("shared").id)
    assert [t.state for t in trials] == ["crashed", "finished", "finished"]
    assert opened.run(trials[0].run_id).status == RunStatus.CRASHED


def test_expbook_sweep_stop_stops_the_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXPBOOK_SWEEP_HEARTBEAT", "0.1")
    store = str(tmp_path / "s.db")

    def objective(trial: expbook.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        for step in range(200):
            trial.report(x, step)
            if trial.should_prune():
                raise expbook.TrialPruned()
            if trial.number == 1 and step == 2:
                opened = expbook.open_store(store)
                assert cli_main(["sweep", "stop", "stopping", "--store", store]) == 0
                opened.close()
            time.sleep(0.01)
        return x

    result = expbook.sweep(objective, trials=5, name="stopping", store=store, pruner="none")
    assert result.reason == "the sweep was stopped" and result.state == SweepState.STOPPED
    assert [t.state for t in result.trials] == ["finished", "stopped"]
    run = expbook.open_store(store).run(result.trials[1].run_id)
    assert run.status == RunStatus.INTERRUPTED and run.notes[-1].text.startswith("stopped: the")


def test_a_sampler_whose_package_is_missing_is_refused_before_the_sweep_exists(
    tmp_path: Path,
) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("torch is installed: the gp sampler would run")
    store = str(tmp_path / "runs.db")
    with pytest.raises(SweepSpecError, match="gp needs the torch package"):
        expbook.sweep(lambda trial: trial.suggest_float("x", 0, 1), metric="loss", trials=2,
                      name="gp", store=store, sampler="gp")  # fmt: skip
    assert expbook.open_store(store).list_sweeps() == []
