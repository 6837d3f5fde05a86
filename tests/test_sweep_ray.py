"""Sweeps on Ray: ``expbook sweep run|agent --ray`` (``expbook.sweep.ray``).

The Ray task's own code (``run_trial``) is tested without Ray, so everywhere: in a fresh
interpreter, with ``_thread.interrupt_main()`` fired from a thread, which is what ``ray.cancel``
does in a Ray 2.60 worker (the sweeps below check that it stops a pruned trial). The sweeps run
for real on a local Ray started by ``expbook sweep run --ray local``, in a Python where Ray and
expbook both import: this one after ``pip install 'expbook[ray]'``, else ``.venv-frameworks``
(``make corpus`` builds it with Ray and installs expbook there); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import expbook
from expbook.model import RunStatus, TrialState
from expbook.sweep.launch import ENTRY, Launch
from expbook.sweep.ray import ray_options, run_trial
from tests.helpers import run_cli, run_python
from tests.sweepdata import PRUNE_PROGRAM

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS_PYTHON = ROOT / ".venv-frameworks" / "bin" / "python"
FAST = {"EXPBOOK_SWEEP_POLL": "0.2", "EXPBOOK_SWEEP_HEARTBEAT": "0.5"}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- the task, without Ray ---------------------------------------------------------------------


def test_resources_become_ray_options() -> None:
    assert ray_options({"cpu": 2, "GPU": 0.5, "memory": 4e9, "TPU": 4}) == {
        "max_retries": 0, "retry_exceptions": False, "num_cpus": 2, "num_gpus": 0.5,
        "memory": 4e9, "resources": {"TPU": 4},
    }  # fmt: skip
    assert ray_options({}) == {"max_retries": 0, "retry_exceptions": False}


PROGRAM = """
import os, signal, sys, time
if os.environ["ON_TERM"] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
assert open(os.environ["PARAMS"]).read() == '{"x": 1}'  # the file the agent wrote, shipped
open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
for step in range(1, 10000):
    print(f"step={step} loss={1 / step}", flush=True)
    time.sleep(0.05)
"""

TASK = """
import _thread, json, os, signal, sys, threading, time
from pathlib import Path
from expbook.sweep.launch import Launch
from expbook.sweep.ray import run_trial

store, program, pids, workdir, run_id, on_term, sigint = sys.argv[1:]
if sigint == "ignored":  # a worker of a Ray started under nohup, or with & from a script
    signal.signal(signal.SIGINT, signal.SIG_IGN)
before = signal.getsignal(signal.SIGINT)
env = {"EXPBOOK_RUN_UUID": run_id, "ON_TERM": on_term, "PARAMS": workdir + "/params.json"}
args = ("run", "--quiet", "--store", store, "--", sys.executable, "-c", program, pids)
launch = Launch(args, env, os.getcwd(), Path(workdir))


def cancel():  # what ray.cancel(ref) does in the worker running the task
    while not os.listdir(pids):
        time.sleep(0.05)
    time.sleep(0.5)
    _thread.interrupt_main()


threading.Thread(target=cancel, daemon=True).start()
started = time.monotonic()
status, error, ran = run_trial(launch, {"params.json": b'{"x": 1}'}, 1.0, None)
print(json.dumps({"status": status, "error": error, "ran": ran,
                  "seconds": time.monotonic() - started, "workdir": os.path.exists(workdir),
                  "sigint restored": signal.getsignal(signal.SIGINT) == before}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("on_term", "sigint", "status", "run_status"),
    [
        ("exit", "default", -signal.SIGTERM, RunStatus.INTERRUPTED),
        ("ignore", "ignored", -signal.SIGKILL, RunStatus.CRASHED),  # as with a local agent
    ],
)
def test_a_cancelled_task_stops_its_command_and_returns(
    tmp_path: Path, on_term: str, sigint: str, status: int, run_status: RunStatus
) -> None:
    """The KeyboardInterrupt of a cancel: SIGTERM to ``expbook run``'s group, which records the
    run's end; SIGKILL after the grace period (1 s) to a program that ignores SIGTERM (its run
    turns crashed when its heartbeat, every 0.2 s here, goes stale); also in a worker that
    inherited SIGINT ignored (``interrupt_main`` alone would do nothing there). The trial's
    folder, missing as on another node, is made with the shipped files and removed."""
    store, pids, run_id = str(tmp_path / "s.db"), tmp_path / "pids", uuid.uuid4().hex
    pids.mkdir()
    workdir = str(tmp_path / "elsewhere" / "expbook-trial-0-x")
    done = run_python(TASK, store, PROGRAM, str(pids), workdir, run_id, on_term, sigint,
                      cwd=tmp_path, env={"EXPBOOK_HEARTBEAT_INTERVAL": "0.2"},
                      timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["status"] == status, found
    assert found["ran"] and found["sigint restored"] and not found["workdir"]
    assert found["seconds"] < 20
    (pid,) = (int(p.name) for p in pids.iterdir())
    assert not alive(pid)
    assert settled(store, run_id).status == run_status


def settled(store: str, run_id: str, timeout: float = 30) -> expbook.RunRecord:
    """The run once its end is stored (the recorder of a SIGKILLed ``expbook run`` stores it
    after the process is gone)."""
    deadline = time.monotonic() + timeout
    with expbook.open_store(store) as opened:
        while not (run := opened.run(run_id)).status.is_terminal():
            assert time.monotonic() < deadline, f"run {run_id} still {run.status}"
            time.sleep(0.05)
    return run


def test_a_node_without_the_sqlite_store_fails_the_trial_saying_so(tmp_path: Path) -> None:
    """``expbook run`` there would make an empty store of its own; the trial fails instead."""
    launch = Launch(("run", "--", "true"), {}, str(tmp_path), tmp_path / "w")
    status, error, ran = run_trial(launch, {}, 1.0, str(tmp_path / "absent.db"))
    assert (status, ran) == (1, False)
    assert error.startswith(f"the store {tmp_path / 'absent.db'} is not on the Ray node ")
    assert "postgresql://" in error
    assert not (tmp_path / "absent.db").exists() and not (tmp_path / "w").exists()


def _ray_here() -> bool:
    done = subprocess.run([sys.executable, "-c", "import ray"], capture_output=True, check=False)
    return done.returncode == 0


@pytest.mark.skipif(_ray_here(), reason="Ray is installed in this environment")
def test_without_ray_the_option_is_one_line_saying_how_to_install_it(tmp_path: Path) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text("program: train.py\nmethod: grid\nparameters: {x: {values: [1]}}\n")
    store = str(tmp_path / "s.db")
    for args in (["run", str(spec), "--ray"], ["run", str(spec), "--ray=auto"]):
        done = run_cli("sweep", *args, store=store, cwd=tmp_path)
        assert done.returncode == 1
        assert done.stderr == (
            "error: --ray needs Ray in the Python that runs expbook: pip install 'expbook[ray]'\n"
        )
    assert run_cli("sweep", "ls", store=store).stdout.count("\n") <= 1  # no sweep was made


# --- sweeps on a local Ray -----------------------------------------------------------------------


def _python_with_ray() -> str | None:
    """A Python where Ray and expbook import (and expbook is this checkout's)."""
    check = "import ray, expbook, sys; sys.stdout.write(expbook.__file__)"
    for python in (sys.executable, str(FRAMEWORKS_PYTHON)):
        if not Path(python).exists():
            continue
        done = subprocess.run([python, "-c", check], capture_output=True, text=True,
                              timeout=120, check=False)  # fmt: skip
        if done.returncode == 0 and done.stdout == expbook.__file__:
            return python
    return None


RAY_PYTHON = _python_with_ray()
needs_ray = pytest.mark.skipif(
    RAY_PYTHON is None,
    reason="needs Ray and expbook in one Python: pip install 'expbook[ray]', or "
    ".venv-frameworks/bin/pip install -c .venv-frameworks/torch-constraint.txt -e .",
)


def _sweep(*args: str, cwd: Path, sigint_ignored: bool = False) -> subprocess.Popen[str]:
    """``expbook sweep ARGS`` in the Python with Ray; with SIGINT ignored as a program started
    with ``nohup`` or ``&`` from a script has it (the local Ray it starts inherits it)."""
    assert RAY_PYTHON is not None

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    return subprocess.Popen(
        [RAY_PYTHON, "-c", ENTRY, "sweep", *args], cwd=cwd, text=True,
        env={**os.environ, **FAST}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=ignore_sigint if sigint_ignored else None,
    )  # fmt: skip


@pytest.mark.slow
@needs_ray
def test_a_grid_runs_as_ray_tasks_and_the_pruned_trial_is_cancelled(tmp_path: Path) -> None:
    """Four trials of one CPU each on a local Ray; every trial is a run in the store with its
    params and metric; the hopeless one is pruned by the median pruner: ``ray.cancel`` stops
    it and its run records its end (``pruned``, with the note). The sweep's command has
    SIGINT ignored, as under ``nohup``: Ray's workers inherit it."""
    (tmp_path / "train.py").write_text(textwrap.dedent(PRUNE_PROGRAM))
    (tmp_path / "sweep.yaml").write_text(textwrap.dedent("""
        program: train.py
        method: grid
        metric: {name: loss, goal: minimize}
        parameters: {quality: {values: [good, better, best, bad]}}
        expbook:
          pruner: median
          pruner_options: {n_startup_trials: 2, n_warmup_steps: 2}
          resources: {cpu: 1}
    """))  # fmt: skip
    store = str(tmp_path / "store.db")
    started = time.monotonic()
    sweep = _sweep("run", "sweep.yaml", "--name", "p", "--grace", "5", "--store", store,
                   "--ray", "local", cwd=tmp_path, sigint_ignored=True)  # fmt: skip
    out, err = sweep.communicate(timeout=120)
    seconds = time.monotonic() - started
    assert sweep.returncode == 0, err[-3000:]
    assert "expbook: Ray: 1 node, " in err and "each trial takes cpu 1: " in err
    assert seconds < 60, seconds
    with expbook.open_store(store) as opened:
        trials = {t.params["quality"]: t for t in opened.list_trials(opened.get_sweep("p").id)}
        assert sorted(trials) == ["bad", "best", "better", "good"]
        for quality in ("good", "better", "best"):
            trial = trials[quality]
            assert trial.state == TrialState.FINISHED and trial.values == (0.025,)
            run = opened.run(trial.run_id)
            assert run.status == RunStatus.FINISHED and run.kind == "sweep-trial"
            assert run.params == {"quality": quality} and run.metrics["loss"].value == 0.025
            assert run.cwd == str(tmp_path)
        bad = trials["bad"]
        assert bad.state == TrialState.PRUNED and 2 <= (bad.pruned_step or 0) < 40
        run = opened.run(bad.run_id)
        assert run.status == RunStatus.PRUNED and run.ended_at is not None
        assert run.error == "killed by SIGTERM"  # stopped by the task, not SIGKILLed by Ray
        notes = [n.text for n in run.notes]
        assert f"pruned by median at step {bad.pruned_step}: loss = 10" in notes
    assert f"trial 3 pruned (run #{run.number}): pruned by median at step" in out


LONG_PROGRAM = """
    import os, sys, time
    open(os.path.join(sys.argv[1], str(os.getpid())), "w").close()
    for step in range(1, 10000):
        print(f"step={step} loss={1 / step}", flush=True)
        time.sleep(0.1)
"""


@pytest.mark.slow
@needs_ray
def test_ctrl_c_stops_an_agents_ray_tasks_as_stopped(tmp_path: Path) -> None:
    """``expbook sweep agent S --ray local``: as many trials at once as the local Ray holds
    (half a CPU each: at least 2; the budget is 2); Ctrl-C cancels them: the trials are
    ``stopped``, their runs ``interrupted`` (ended by the SIGTERM the task sent), no program is
    left."""
    pids = tmp_path / "pids"
    pids.mkdir()
    (tmp_path / "train.py").write_text(textwrap.dedent(LONG_PROGRAM))
    (tmp_path / "sweep.yaml").write_text(textwrap.dedent(f"""
        method: random
        metric: {{name: loss}}
        parameters: {{x: {{min: 0.0, max: 1.0}}}}
        command: ["${{interpreter}}", train.py, {str(pids)!r}]
        expbook: {{trials: 2, resources: {{cpu: 0.5}}}}
    """))  # fmt: skip
    store = str(tmp_path / "store.db")
    created = run_cli("sweep", "create", "sweep.yaml", "--name", "s", store=store, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    agent = _sweep("agent", "s", "--store", store, "--ray", "local", cwd=tmp_path)
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < 2:
        assert agent.poll() is None, agent.communicate()
        assert time.monotonic() < deadline, "two trials did not start within 60 s"
        time.sleep(0.1)
    agent.send_signal(signal.SIGINT)
    out, err = agent.communicate(timeout=60)
    assert agent.returncode == 130, err[-3000:]
    assert "sweep s: interrupted (SIGINT)" in out
    with expbook.open_store(store) as opened:
        trials = opened.list_trials(opened.get_sweep("s").id)
    assert [t.state for t in trials] == [TrialState.STOPPED] * 2
    for trial in trials:
        assert trial.run_id is not None
        assert settled(store, trial.run_id).status == RunStatus.INTERRUPTED
    assert not any(alive(int(p.name)) for p in pids.iterdir())


class _Cluster:
    """What ``RayLauncher`` asks of the ``ray`` module, for a cluster described by hand (the
    sweeps above run on a one-machine Ray only)."""

    def __init__(self, resources: dict[str, float], nodes: list[str]) -> None:
        self.resources, self.addresses = resources, nodes
        self.util = type("util", (), {"get_node_ip_address": staticmethod(lambda: "10.0.0.1")})

    def remote(self, function: object) -> object:
        return type("remote", (), {"options": lambda self, **options: self})()

    def cluster_resources(self) -> dict[str, float]:
        return self.resources

    def nodes(self) -> list[dict[str, object]]:
        return [{"NodeManagerAddress": a, "Alive": a != "10.0.0.9"} for a in self.addresses]


NO_TPU = (
    "the Ray cluster has not enough TPU for one trial now: trials wait until nodes with it join"
)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, (16, None)),  # one CPU each, as a Ray task
        ({"cpu": 0.5}, (32, None)),
        ({"cpu": 4, "gpu": 1}, (2, None)),  # 2 GPUs
        ({"slot": 0.1}, (3, None)),  # 0.3 / 0.1 is 2.9999999999999996
        ({"gpu": 1, "TPU": 1}, (1, NO_TPU)),
    ],
)
def test_the_default_workers_are_the_trials_the_cluster_holds(
    resources: dict[str, float], expected: tuple[int, str | None]
) -> None:
    from expbook.sweep.ray import RayLauncher

    cluster = _Cluster({"CPU": 16.0, "GPU": 2.0, "memory": 6.4e10, "slot": 0.3}, ["10.0.0.1"])
    launcher = RayLauncher(cluster, resources=resources, grace=1.0, store_url="sqlite:////x.db")
    assert launcher.trials_at_once() == expected


def test_nodes_on_other_machines_are_found() -> None:
    from expbook.sweep.ray import RayLauncher

    cluster = _Cluster({"CPU": 4.0}, ["10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.9"])
    launcher = RayLauncher(cluster, resources={}, grace=1.0, store_url="sqlite:////x.db")
    assert launcher.remote_nodes() == ["10.0.0.2"]  # 10.0.0.9 is dead
