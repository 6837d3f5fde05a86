"""Sweep agents with real processes: ``expbook run`` with a run UUID chosen beforehand, agents
on SQLite and PostgreSQL, one of them killed with SIGKILL mid-trial, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import expbook
from expbook.model import RunStatus, TrialState
from tests.helpers import EXPBOOK, run_cli
from tests.sweepdata import PRUNE_PROGRAM
from tests.test_run import recorded

pytestmark = pytest.mark.slow


# --- EXPBOOK_RUN_UUID: the launcher's part ---------------------------------------------------


def test_expbook_run_takes_the_uuid_its_starter_chose(tmp_path: Path) -> None:
    """The agent must know a trial's run before it exists: EXPBOOK_RUN_UUID gives it; the
    program does not see the variable, so an ``expbook run`` inside it gets a run of its own."""
    store = str(tmp_path / "store.db")
    chosen = uuid.uuid4()
    inner = "import os; print('inner', os.environ['EXPBOOK_RUN_ID'])"
    outer = textwrap.dedent(f"""
        import os, subprocess
        print('outer', os.environ['EXPBOOK_RUN_ID'], os.environ.get('EXPBOOK_RUN_UUID'))
        subprocess.run([{EXPBOOK!r}, 'run', '--quiet', '--', {sys.executable!r}, '-c',
                        {inner!r}], check=True)
    """)
    result = run_cli(
        "run", "--quiet", "--", sys.executable, "-c", outer,
        store=store, env={"EXPBOOK_RUN_UUID": str(chosen)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    words = dict((line.split()[0], line.split()[1:]) for line in result.stdout.splitlines())
    assert words["outer"] == [chosen.hex, "None"]
    assert words["inner"][0] != chosen.hex
    assert recorded(store, chosen.hex).id == chosen.hex
    assert recorded(store, words["inner"][0]).id == words["inner"][0]


@pytest.mark.parametrize("value", ["12", "not-a-uuid-at-all-not-a-uuid-at-z"])
def test_a_bad_run_uuid_is_one_line(tmp_path: Path, value: str) -> None:
    result = run_cli(
        "run", "--", "true", store=str(tmp_path / "s.db"), env={"EXPBOOK_RUN_UUID": value}
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "EXPBOOK_RUN_UUID" in result.stderr


def test_one_run_uuid_cannot_name_repeats(tmp_path: Path) -> None:
    result = run_cli(
        "run", "--repeat", "2", "--", "true",
        store=str(tmp_path / "s.db"), env={"EXPBOOK_RUN_UUID": uuid.uuid4().hex},
    )  # fmt: skip
    assert result.returncode == 2 and "--repeat" in result.stderr


# --- sweeps with real processes ---------------------------------------------------------------

FAST = {"EXPBOOK_SWEEP_POLL": "0.1", "EXPBOOK_SWEEP_HEARTBEAT": "0.3"}


def write(path: Path, text: str, executable: bool = False) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    if executable:
        path.chmod(0o755)
    return path


def spec_file(tmp_path: Path, text: str, name: str = "sweep.yaml") -> str:
    return str(write(tmp_path / name, text))


def sweep_cli(*args: str, cwd: Path, store: str, timeout: float = 240) -> Any:
    return run_cli("sweep", *args, "--store", store, cwd=cwd, env=FAST, timeout=timeout)


def trials_of(store: str, sweep: str) -> list[Any]:
    opened = expbook.open_store(store)
    try:
        return opened.list_trials(opened.get_sweep(sweep).id)
    finally:
        opened.close()


def test_a_grid_sweep_of_a_shell_program_runs_exactly_the_grid(tmp_path: Path) -> None:
    """Any language: a shell script takes the flags; each trial is an ordinary run."""
    write(tmp_path / "train.sh", """
        #!/bin/sh
        # --depth=N --act=NAME
        for arg in "$@"; do case $arg in --depth=*) d=${arg#*=};; --act=*) a=${arg#*=};; esac; done
        for step in 1 2 3; do echo "step=$step loss=$(( d * 10 + step ))"; done
    """, executable=True)  # fmt: skip
    spec = spec_file(tmp_path, """
        program: ./train.sh
        command: ["${program}", "${args}"]
        method: grid
        metric: {name: loss, goal: minimize}
        parameters:
          depth: {values: [1, 2]}
          act: {values: [relu, tanh]}
        expbook: {experiment: depth search}
    """)  # fmt: skip
    store = str(tmp_path / "store.db")
    result = sweep_cli("run", spec, "--name", "grid", "--workers", "2", cwd=tmp_path, store=store)
    assert result.returncode == 0, result.stderr
    assert "sweep grid: the sweep is finished: all 4 trials of the budget were started" in (
        result.stdout
    )
    trials = trials_of(store, "grid")
    assert sorted((t.params["act"], t.params["depth"]) for t in trials) == [
        ("relu", 1), ("relu", 2), ("tanh", 1), ("tanh", 2)
    ]  # fmt: skip
    assert {t.state for t in trials} == {TrialState.FINISHED}
    opened = expbook.open_store(store)
    for trial in trials:
        run = opened.run(trial.run_id)
        assert run.kind == "sweep-trial" and "sweep:grid" in run.tags
        assert run.experiment == "depth search" and run.status == RunStatus.FINISHED
        assert run.params["depth"] == trial.params["depth"]  # from its flags, as expbook run
        assert trial.values == (trial.params["depth"] * 10 + 3,)  # the last value logged
    assert opened.get_sweep("grid").state == "finished"


def test_workers_run_trials_at_once(tmp_path: Path) -> None:
    write(tmp_path / "train.py", """
        import sys, time
        start = time.time()
        time.sleep(1.5)
        with open("spans.txt", "a") as f:
            f.write(f"{start} {time.time()}\\n")
        print("loss=1.0")
    """)  # fmt: skip
    spec = spec_file(tmp_path, """
        program: train.py
        method: grid
        metric: {name: loss}
        parameters: {i: {values: [1, 2, 3, 4]}}
    """)  # fmt: skip
    store = str(tmp_path / "store.db")
    result = sweep_cli("run", spec, "--workers", "4", cwd=tmp_path, store=store)
    assert result.returncode == 0, result.stderr
    spans = [tuple(map(float, line.split())) for line in (tmp_path / "spans.txt").read_text()
             .splitlines()]  # fmt: skip
    assert len(spans) == 4
    latest_start = max(start for start, _ in spans)
    earliest_end = min(end for _, end in spans)
    assert latest_start < earliest_end  # all four ran at the same time


def test_the_pruner_stops_a_hopeless_trial_and_lets_the_good_ones_finish(
    tmp_path: Path,
) -> None:
    """A known-bad configuration prints a high loss slowly (40 steps, 20 s unpruned)."""
    write(tmp_path / "train.py", PRUNE_PROGRAM)
    spec = spec_file(tmp_path, """
        program: train.py
        method: grid
        metric: {name: loss, goal: minimize}
        parameters: {quality: {values: [good, better, best, bad]}}
        expbook:
          pruner: median
          pruner_options: {n_startup_trials: 2, n_warmup_steps: 2}
    """)  # fmt: skip
    store = str(tmp_path / "store.db")
    started = time.monotonic()
    result = sweep_cli("run", spec, "--name", "p", "--grace", "5", cwd=tmp_path, store=store)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20
    by_quality = {t.params["quality"]: t for t in trials_of(store, "p")}
    assert [by_quality[q].state for q in ("good", "better", "best")] == [TrialState.FINISHED] * 3
    bad = by_quality["bad"]
    assert bad.state == TrialState.PRUNED and bad.pruned_step is not None
    assert 2 <= bad.pruned_step < 40  # n_warmup_steps: 2
    run = recorded(store, bad.run_id)
    assert run.status == RunStatus.PRUNED
    assert any(
        n.text == f"pruned by median at step {bad.pruned_step}: loss = 10" for n in run.notes
    ), [n.text for n in run.notes]
    assert f"trial 3 pruned (run #{run.number}): pruned by median at step" in result.stdout


def test_a_wandb_config_from_the_real_world_runs_unchanged(tmp_path: Path) -> None:
    """W&B's documentation example (tests/data/sweeps/wandb-docs-example.yaml) with a tiny
    train.py that takes its flags; no budget in it, so --count ends the agent."""
    source = Path(__file__).parent / "data" / "sweeps" / "wandb-docs-example.yaml"
    spec = tmp_path / "sweep.yaml"
    spec.write_text(source.read_text())
    write(tmp_path / "train.py", """
        import argparse
        parser = argparse.ArgumentParser()
        for flag in ("batch_size", "epochs", "fc_layer_size"):
            parser.add_argument(f"--{flag}", type=int)
        for flag in ("dropout", "learning_rate"):
            parser.add_argument(f"--{flag}", type=float)
        parser.add_argument("--optimizer")
        args = parser.parse_args()
        for epoch in range(args.epochs):
            print(f"epoch={epoch} loss={args.dropout + args.learning_rate:.5f}")
    """)  # fmt: skip
    store = str(tmp_path / "store.db")
    result = sweep_cli("run", str(spec), "--count", "3", "--name", "docs", cwd=tmp_path,
                       store=store)  # fmt: skip
    assert result.returncode == 0, result.stderr
    trials = trials_of(store, "docs")
    assert len(trials) == 3 and {t.state for t in trials} == {TrialState.FINISHED}
    opened = expbook.open_store(store)
    for trial in trials:
        run = opened.run(trial.run_id)
        assert 32 <= run.params["batch_size"] <= 256 and run.params["batch_size"] % 8 == 0
        assert run.params["optimizer"] in ("adam", "sgd")
        expected = round(trial.params["dropout"] + trial.params["learning_rate"], 5)
        assert trial.values == (pytest.approx(expected, abs=1e-5),)


def test_failing_trials_are_failed_and_three_stop_the_agent(tmp_path: Path) -> None:
    write(tmp_path / "train.py", """
        import sys
        print("loading data", flush=True)
        sys.exit("no such file: data.csv")
    """)  # fmt: skip
    spec = spec_file(tmp_path, """
        program: train.py
        method: random
        metric: {name: loss}
        parameters: {x: {min: 0.0, max: 1.0}}
    """)  # fmt: skip
    store = str(tmp_path / "store.db")
    result = sweep_cli("run", spec, "--name", "broken", cwd=tmp_path, store=store)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "error: the first 3 trials failed, the last with exit status 1: no such file: " in (
        result.stderr
    )
    trials = trials_of(store, "broken")
    assert len(trials) == 3
    assert all(t.state == TrialState.FAILED for t in trials)
    assert all(t.error == "exit status 1: no such file: data.csv" for t in trials)


def test_a_metric_no_trial_logs_is_one_warning(tmp_path: Path) -> None:
    write(tmp_path / "train.py", 'print("step=1 acc=0.5 val_acc=0.4")\n')
    spec = spec_file(tmp_path, """
        program: train.py
        method: random
        metric: {name: val_loss}
        parameters: {x: {min: 0.0, max: 1.0}}
        expbook: {trials: 3}
    """)  # fmt: skip
    result = sweep_cli("run", spec, "-w", "3", cwd=tmp_path, store=str(tmp_path / "store.db"))
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: 3 trials finished without logging the metric 'val_loss' (the sweep optimizes "
        "nothing); they logged: acc, val_acc"
    ]


LONG_PROGRAM = """
    import os, time
    open(os.path.join({pids!r}, str(os.getpid())), "w").close()
    for step in range(1, 10000):
        print(f"step={{step}} loss={{1 / step}}", flush=True)
        time.sleep(0.1)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Any, timeout: float = 60, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"waited {timeout} s for {what}")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_stops_the_running_trials_as_stopped(
    tmp_path: Path, signum: int, status: int
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    write(tmp_path / "train.py", LONG_PROGRAM.format(pids=str(pids)))
    spec = spec_file(tmp_path, """
        program: train.py
        method: random
        metric: {name: loss}
        parameters: {x: {min: 0.0, max: 1.0}}
    """)  # fmt: skip
    store = str(tmp_path / "store.db")
    agent = subprocess.Popen(
        [EXPBOOK, "sweep", "run", spec, "--workers", "2", "--name", "s", "--store", store],
        cwd=tmp_path, env={**os.environ, **FAST}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_for(lambda: len(list(pids.iterdir())) == 2, what="two trials")
    agent.send_signal(signum)
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == status, err
    assert f"sweep s: interrupted ({signal.Signals(signum).name})" in out
    trials = trials_of(store, "s")
    assert [t.state for t in trials] == [TrialState.STOPPED] * 2
    assert not any(alive(int(p.name)) for p in pids.iterdir())
    for trial in trials:
        assert recorded(store, trial.run_id).status == RunStatus.INTERRUPTED


def test_three_agents_on_postgresql_one_killed_mid_trial(
    tmp_path: Path, postgres_url: str
) -> None:
    """3 agent processes share a 30-trial sweep; one is killed with SIGKILL while its trial
    runs: that trial becomes crashed and is re-queued (max_attempts 2), its program gets
    SIGTERM (PR_SET_PDEATHSIG), the sweep finishes with no duplicate and no lost trial."""
    pids = tmp_path / "pids"
    pids.mkdir()
    write(tmp_path / "train.py", """
        import argparse, os, time
        open(os.path.join(os.environ["PIDS"], str(os.getpid())), "w").close()
        parser = argparse.ArgumentParser()
        parser.add_argument("--x", type=float)
        x = parser.parse_args().x
        for step in range(1, 4):
            print(f"step={step} loss={(x - 0.3) ** 2 + 1 / step:.6f}", flush=True)
            time.sleep(0.1)
    """)  # fmt: skip
    spec = spec_file(tmp_path, """
        program: train.py
        method: random
        metric: {name: loss}
        parameters: {x: {min: 0.0, max: 1.0}}
        expbook: {trials: 30, max_attempts: 2}
    """)  # fmt: skip
    created = sweep_cli("create", spec, "--name", "many", cwd=tmp_path, store=postgres_url)
    assert created.returncode == 0, created.stderr
    assert "expbook sweep agent many" in created.stdout
    env = {**os.environ, **FAST, "PIDS": str(pids)}
    command = [EXPBOOK, "sweep", "agent", "many", "--store", postgres_url]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    agents = [subprocess.Popen(command, cwd=tmp_path, env=env, **pipes) for _ in range(3)]
    victim = agents[0]

    def victim_running() -> Any:
        return [t for t in trials_of(postgres_url, "many") if t.state == TrialState.RUNNING
                and t.worker and f":{victim.pid}:" in t.worker and t.run_id]  # fmt: skip

    held = wait_for(victim_running, what="a trial of the first agent")[0]
    before = set(pids.iterdir())
    victim.kill()
    victim.wait()
    outputs = [a.communicate(timeout=300) for a in agents[1:]]
    assert [a.returncode for a in agents[1:]] == [0, 0], outputs
    trials = trials_of(postgres_url, "many")
    store = expbook.open_store(postgres_url)
    assert store.get_sweep("many").state == "finished"
    crashed = next(t for t in trials if t.number == held.number)
    assert crashed.state == TrialState.CRASHED
    retried = [t for t in trials if t.config == crashed.config and t.attempt == 2]
    assert len(retried) == 1 and retried[0].state == TrialState.FINISHED
    final = [t for t in trials if t.state != TrialState.CRASHED]
    assert len(final) == 30 and all(t.state == TrialState.FINISHED for t in final)
    assert len({(t.config, t.repeat) for t in final}) == 30  # no duplicate, none lost
    assert len({t.config_key for t in final}) == 30
    assert sorted({t.config for t in trials}) == list(range(30))
    assert len({t.run_id for t in final}) == 30
    for path in before:  # the killed agent's trial did not run on unsupervised
        wait_for(lambda p=path: not alive(int(p.name)), timeout=10, what=f"pid {path.name}")
    runs = {r.id: r for r in store.runs(limit=None)}
    assert all(runs[t.run_id].status == RunStatus.FINISHED for t in final)


def test_an_agent_that_lost_its_lease_stops_the_trial_and_records_nothing(
    tmp_path: Path,
) -> None:
    """Another agent marked the trial crashed (its heartbeats looked stale): the agent learns
    it at its next heartbeat, stops the program and leaves the trial as the other recorded it."""
    pids = tmp_path / "pids"
    pids.mkdir()
    write(tmp_path / "train.py", LONG_PROGRAM.format(pids=str(pids)))
    spec = spec_file(tmp_path, """
        program: train.py
        method: random
        metric: {name: loss}
        parameters: {x: {min: 0.0, max: 1.0}}
        expbook: {trials: 1}
    """)  # fmt: skip
    store = str(tmp_path / "store.db")
    agent = subprocess.Popen(
        [EXPBOOK, "sweep", "run", spec, "--name", "lease", "--store", store, "--grace", "3"],
        cwd=tmp_path, env={**os.environ, **FAST}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    wait_for(lambda: list(pids.iterdir()), what="the trial")
    program = int(next(pids.iterdir()).name)
    opened = expbook.open_store(store)
    sweep = opened.get_sweep("lease")
    wait_for(lambda: opened.list_trials(sweep.id)[0].run_id, what="the trial's run")
    crashed = opened.expire_trials(sweep.id, stale_after=-1.0)  # as if its heartbeats were late
    assert [t.state for t in crashed] == [TrialState.CRASHED]
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 0, err
    assert "trial 0: lease lost" in out
    assert not alive(program)
    [trial] = opened.list_trials(sweep.id)
    assert trial.state == TrialState.CRASHED and trial.error == crashed[0].error
    assert trial.run_id is not None
    run = recorded(store, trial.run_id)
    assert run.status == RunStatus.INTERRUPTED
    assert any("lost the trial's lease" in n.text for n in run.notes)


def test_create_says_the_spec_warnings_and_ignored_keys_and_agent_refuses_a_python_sweep(
    tmp_path: Path,
) -> None:
    store = str(tmp_path / "runs.db")
    spec = spec_file(tmp_path, """
        project: mnist
        entity: me
        program: train.py
        method: random
        metric: {name: loss, goal: minimize}
        parameters:
          lr: {distribution: log_uniform, min: -9, max: 0}
    """)  # fmt: skip
    created = sweep_cli("create", spec, "--name", "exps", cwd=tmp_path, store=store)
    assert created.returncode == 0, created.stderr
    assert created.stderr.splitlines() == [
        f"expbook: {spec}: parameters.lr: log_uniform takes natural-log exponents, so its "
        "values run from 0.00012341 to 1; log_uniform_values takes the values themselves",
        f"expbook: {spec}: ignored (W&B settings expbook has no use for): project, entity",
    ]
    opened = expbook.open_store(store)
    opened.create_sweep("api", {"description": "expbook.sweep(f)", "method": "random",
                                "parameters": {"x": {"min": 0.0, "max": 1.0}}})  # fmt: skip
    opened.close()
    refused = sweep_cli("agent", "api", cwd=tmp_path, store=store)
    assert refused.returncode == 1 and refused.stderr == (
        "error: sweep 'api' searches a Python function (expbook.sweep(f)) and has no command "
        "to run: continue it from Python, with expbook.sweep(objective, name='api', ...)\n"
    )


def test_a_sampler_whose_package_is_missing_stops_before_the_sweep_exists(tmp_path: Path) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("torch is installed: the gp sampler would run")
    store = str(tmp_path / "runs.db")
    spec = spec_file(tmp_path, """
        program: train.py
        method: bayes
        metric: {name: loss, goal: minimize}
        parameters:
          x: {min: 0.0, max: 1.0}
        expbook: {sampler: gp}
    """)  # fmt: skip
    refused = sweep_cli("run", spec, cwd=tmp_path, store=store)
    assert refused.returncode == 1 and refused.stderr == (
        "error: sweep spec: expbook.sampler: gp needs the torch package (pip install torch)\n"
    )
    opened = expbook.open_store(store)
    assert opened.list_sweeps() == []
    opened.close()
