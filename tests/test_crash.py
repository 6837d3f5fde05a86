"""Real child processes ended by real signals: what was flushed survives, the status is right."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import expbook
from expbook import RunStatus

pytestmark = pytest.mark.slow

CHILD = """
import faulthandler, signal, sys, expbook
faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks on demand, if it ever hangs
store, mode = sys.argv[1], sys.argv[2]
run = expbook.start_run(name="child", store=store, capture=False)
print("RUN", run.id, flush=True)
step = 0
def loop():
    global step
    while True:
        run.log({"loss": 1.0 / (step + 1), "acc": step / 1e6}, step=step)
        if step % 2000 == 0:
            run.flush()
            print("FLUSHED", step, flush=True)
        step += 1
if mode == "with":
    with run:
        loop()
elif mode == "raise":
    for step in range(500):
        run.log({"loss": 1.0}, step=step)
    raise RuntimeError("diverged at step 500")
elif mode == "exit":
    for step in range(300):
        run.log({"loss": 1.0}, step=step)
    print("DONE", flush=True)  # no finish(): the atexit hook must do it
else:
    loop()
"""


def start_child(store: str, mode: str, heartbeat: float = 0.2) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "EXPBOOK_HEARTBEAT_INTERVAL": str(heartbeat),
        "EXPBOOK_FLUSH_INTERVAL": "0.2",
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, store, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait(child: subprocess.Popen[str], timeout: float = 30) -> int:
    """The child's exit status; if it hangs, fail with the stacks of all its threads."""
    try:
        return child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGUSR1)
        time.sleep(1)
        child.kill()
        stacks = child.stderr.read() if child.stderr else ""
        pytest.fail(f"child still running after {timeout} s; its threads:\n{stacks}")


def wait_for_flushes(child: subprocess.Popen[str], count: int) -> tuple[str, int]:
    """Read the child's run id and the last step it confirmed flushed after ``count`` flushes."""
    run_id, flushed, seen = "", -1, 0
    assert child.stdout is not None
    while seen < count:
        line = child.stdout.readline()
        assert line, f"child ended early: {child.stderr.read() if child.stderr else ''}"
        kind, value = line.split()
        if kind == "RUN":
            run_id = value
        elif kind == "FLUSHED":
            flushed, seen = int(value), seen + 1
    return run_id, flushed


def assert_contiguous(store: expbook.Store, run_id: str, key: str, at_least: int) -> int:
    series = store.series(run_id, key)
    steps = list(series.steps)
    assert steps == list(range(len(steps))), "points lost or duplicated"
    assert len(steps) >= at_least + 1
    return len(steps)


def test_sigkill_keeps_flushed_points_and_reads_as_crashed(tmp_path: Path) -> None:
    location = str(tmp_path / "crash.db")
    child = start_child(location, "loop", heartbeat=0.2)
    run_id, flushed = wait_for_flushes(child, 3)
    child.send_signal(signal.SIGKILL)
    assert wait(child) == -signal.SIGKILL
    store = expbook.open_store(location)
    assert_contiguous(store, run_id, "loss", flushed)
    assert_contiguous(store, run_id, "acc", flushed)
    deadline = time.monotonic() + 10
    while store.run(run_id).status is RunStatus.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    record = store.run(run_id)
    assert record.status is RunStatus.CRASHED
    assert record.ended_at is None and record.duration is not None


@pytest.mark.parametrize("mode", ["loop", "with"])
def test_sigterm_flushes_everything_and_marks_interrupted(tmp_path: Path, mode: str) -> None:
    location = str(tmp_path / "term.db")
    child = start_child(location, mode)
    run_id, flushed = wait_for_flushes(child, 2)
    child.send_signal(signal.SIGTERM)
    code = wait(child)
    assert code == -signal.SIGTERM  # the process still dies by SIGTERM, as without expbook
    store = expbook.open_store(location)
    record = store.run(run_id)
    assert record.status is RunStatus.INTERRUPTED
    assert record.error == "received SIGTERM"
    total = assert_contiguous(store, run_id, "loss", flushed)
    assert record.metrics["loss"].count == total
    assert record.metrics["acc"].count == total  # both keys of every step logged


def test_sigint_in_a_with_block_marks_interrupted(tmp_path: Path) -> None:
    location = str(tmp_path / "int.db")
    child = start_child(location, "with")
    run_id, flushed = wait_for_flushes(child, 2)
    child.send_signal(signal.SIGINT)
    assert wait(child) != 0
    store = expbook.open_store(location)
    assert store.run(run_id).status is RunStatus.INTERRUPTED
    assert_contiguous(store, run_id, "loss", flushed)


def test_sigint_without_a_with_block_marks_interrupted(tmp_path: Path) -> None:
    location = str(tmp_path / "int2.db")
    child = start_child(location, "loop")
    run_id, flushed = wait_for_flushes(child, 2)
    child.send_signal(signal.SIGINT)
    wait(child)
    store = expbook.open_store(location)
    assert store.run(run_id).status is RunStatus.INTERRUPTED
    assert_contiguous(store, run_id, "loss", flushed)


def test_uncaught_exception_without_with_marks_failed(tmp_path: Path) -> None:
    location = str(tmp_path / "raise.db")
    child = start_child(location, "raise")
    _, err = child.communicate(timeout=60)
    assert child.returncode == 1 and "diverged at step 500" in err
    store = expbook.open_store(location)
    record = store.runs()[0]
    assert record.status is RunStatus.FAILED
    assert "RuntimeError: diverged at step 500" in record.error
    assert record.metrics["loss"].count == 500


def test_normal_exit_without_finish_is_finished(tmp_path: Path) -> None:
    location = str(tmp_path / "exit.db")
    child = start_child(location, "exit")
    _, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    record = expbook.open_store(location).runs()[0]
    assert record.status is RunStatus.FINISHED
    assert record.metrics["loss"].count == 300


def test_a_previous_sigterm_handler_still_runs(tmp_path: Path) -> None:
    code = """
import signal, sys, time, expbook
def handler(signum, frame):
    print("user handler ran", flush=True)
    sys.exit(7)
signal.signal(signal.SIGTERM, handler)
run = expbook.start_run(store=sys.argv[1], capture=False)
run.log({"x": 1.0})
print("READY", flush=True)
time.sleep(60)
"""
    location = str(tmp_path / "chain.db")
    child = subprocess.Popen(
        [sys.executable, "-c", code, location], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "READY"
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == 7
    assert child.stdout.read().strip() == "user handler ran"
    record = expbook.open_store(location).runs()[0]
    assert record.status is RunStatus.INTERRUPTED and record.metrics["x"].count == 1


def test_forked_children_do_not_end_the_parents_run(tmp_path: Path) -> None:
    code = """
import os, sys, expbook
run = expbook.start_run(store=sys.argv[1], capture=False)
run.log({"x": 1.0}, step=0)
pid = os.fork()
if pid == 0:
    run.log({"x": 99.0}, step=1)  # dropped: the child cannot flush the parent's run
    sys.exit(0)                     # and its exit must not finish the parent's run
os.waitpid(pid, 0)
print(expbook.open_store(sys.argv[1]).run(run.id).status, flush=True)
run.log({"x": 2.0}, step=1)
run.finish()
"""
    location = str(tmp_path / "fork.db")
    result = subprocess.run(
        [sys.executable, "-c", code, location], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "running"
    store = expbook.open_store(location)
    record = store.runs()[0]
    assert record.status is RunStatus.FINISHED
    assert list(store.series(record.id, "x").values) == [1.0, 2.0]


LOCKER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
connection.execute("BEGIN IMMEDIATE")
print("LOCKED", flush=True)
sys.stdin.readline()
connection.execute("COMMIT")
"""


def test_sigterm_while_a_ctrl_c_flush_waits_for_the_store(tmp_path: Path) -> None:
    location = str(tmp_path / "busy.db")
    child = start_child(location, "with")
    run_id, flushed = wait_for_flushes(child, 2)
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, location], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert locker.stdout is not None and locker.stdout.readline().strip() == "LOCKED"
    child.send_signal(signal.SIGINT)  # the run finishes; its final flush waits for the lock
    time.sleep(0.5)
    child.send_signal(signal.SIGTERM)  # must wait for that flush too, not drop it
    time.sleep(0.5)
    assert child.poll() is None  # still flushing, not killed half-way
    locker.communicate("go\n", timeout=30)
    assert wait(child) == -signal.SIGTERM
    store = expbook.open_store(location)
    record = store.run(run_id)
    assert record.status is RunStatus.INTERRUPTED
    total = assert_contiguous(store, run_id, "loss", flushed)
    assert record.metrics["loss"].count == total


def test_a_program_that_handles_sigterm_itself_keeps_logging(tmp_path: Path) -> None:
    code = """
import signal, sys, time, expbook
stop = []
signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
with expbook.start_run(store=sys.argv[1], capture=False) as run:
    step = 0
    print("READY", flush=True)
    while not stop:
        run.log({"loss": 1.0}, step=step)
        step += 1
        time.sleep(0.001)
    run.log({"loss": 0.5}, step=step)          # the last epoch's metrics after the signal
    run.summary["checkpoint_step"] = step      # and a checkpoint
print("CLEAN EXIT", flush=True)
"""
    location = str(tmp_path / "preempt.db")
    child = subprocess.Popen(
        [sys.executable, "-c", code, location], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdout.readline().strip() == "READY"
    time.sleep(0.3)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out.strip() == "CLEAN EXIT"
    store = expbook.open_store(location)
    record = store.runs()[0]
    assert record.status is RunStatus.INTERRUPTED and record.error == "received SIGTERM"
    last = int(record.metrics["checkpoint_step"].value)
    assert record.metrics["loss"].value == 0.5 and record.metrics["loss"].step == last
    assert list(store.series(record.id, "loss").steps) == list(range(last + 1))
