"""Sweep trials as Ray tasks: ``expbook sweep run|agent --ray [ADDRESS]`` (docs/sweeps.md).

The agent (``expbook.sweep.agent``) keeps deciding everything, in this process: which trial
runs, its lease and heartbeats, pruning from the series in the store, what its end means. Ray
only runs commands. ``RayLauncher.start`` submits one task per trial with the spec's
``resources``; the task, ``run_trial``, on whichever node Ray picks, starts the trial's
``expbook run`` as a local agent does (``expbook.sweep.launch.spawn``: the same arguments, the
trial's variables over the node's environment, a session of its own, ``PR_SET_PDEATHSIG``),
waits for it, and returns its exit status and error line. ``expbook run`` writes the run to the
store's URL from the node, so every node must reach the store: PostgreSQL. A SQLite file works
only where it is: on a node without it the trial fails saying so (``expbook run`` would create
an empty store of its own there).

Stopping a trial (pruned, the sweep stopped, its lease lost, Ctrl-C) is ``ray.cancel(ref)``.
What Ray 2.60 does with it (checked in tests/test_sweep_ray.py; docs/design.md): a queued task
is dropped (``ray.get`` raises TaskCancelledError; no run was made); for a running task Ray calls
``_thread.interrupt_main()`` in the worker, which raises KeyboardInterrupt in the task (tasks run
on the worker's main thread) at its next Python bytecode, never inside a blocking call (the task
waits for its child in steps of ``TICK`` seconds for that reason), and only while SIGINT has
Python's handler: a worker of a Ray started by a program run with ``nohup`` or ``&`` from a
script inherits SIGINT ignored, and the cancel would do nothing, so the task sets the handler
while its command runs. It then ignores further interrupts, sends SIGTERM to ``expbook run``'s
process group and SIGKILL to the trial's groups after the grace period
(``expbook.sweep.launch.stop_process``), and returns the exit status, which ``ray.get``
delivers. If it has not ended ``MARGIN`` seconds after the grace period,
``ray.cancel(ref, force=True)`` kills its worker process, and Ray SIGKILLs the worker's child
processes (``RAY_kill_child_processes_on_worker_exit``): the run, given no time to record its
end, turns ``crashed`` when its heartbeat goes stale.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import signal
import socket
from collections.abc import Iterator, Mapping
from typing import Any

from expbook.errors import ExpbookError
from expbook.locations import sqlite_path
from expbook.sweep.launch import Launch, ProcessExit, exit_text, spawn, stop_process

TICK = 0.2
"""Seconds between the task's looks for a cancel while its command runs."""
MARGIN = 15.0
"""Seconds, after the grace period, that a cancelled task has to end before it is killed."""
INSTALL = "pip install 'expbook[ray]'"


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ExpbookError: Ray is not installed (the line says how to install it).
    """
    try:
        import ray
    except ModuleNotFoundError as error:
        if error.name != "ray":
            raise ExpbookError(f"Ray is installed but does not import: {error}") from None
        raise ExpbookError(f"--ray needs Ray in the Python that runs expbook: {INSTALL}") from None
    return ray


def connect(address: str | None) -> Any:
    """``ray.init(address=address)``: ``auto`` (the cluster this machine belongs to),
    ``ray://host:10001`` (Ray Client), ``host:6379``, ``local`` (a new local Ray), or None (Ray's
    default: ``RAY_ADDRESS``, else the cluster ``ray start`` began on this machine, else a new
    local Ray for this run); the ``ray`` module.

    Raises:
        ExpbookError: Ray is missing, or cannot connect.
    """
    ray = import_ray()
    options: dict[str, Any] = {}
    if not (address or "").startswith("ray://"):  # Ray Client passes these on to the server
        options = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        ray.init(address=address, **options)
    except Exception as error:  # ConnectionError, RuntimeError, ValueError, grpc's ...
        where = f"at {address!r}" if address else "(a local one)"
        raise ExpbookError(f"cannot start or reach Ray {where}: {_line(error)}") from None
    return ray


def ray_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """Ray's task options for the spec's ``expbook.resources``: ``cpu`` -> ``num_cpus``,
    ``gpu`` -> ``num_gpus`` (either case), ``memory`` (bytes) -> ``memory``, any other key a
    custom resource (``{TPU: 4}``, ``{"accelerator_type:A100": 0.01}``). No retries: the agent
    decides about running a configuration again (leases, ``max_attempts``)."""
    options: dict[str, Any] = {"max_retries": 0, "retry_exceptions": False}
    custom = {}
    for key, amount in resources.items():
        name = key.lower()
        if name == "cpu":
            options["num_cpus"] = amount
        elif name == "gpu":
            options["num_gpus"] = amount
        elif name == "memory":
            options["memory"] = amount
        else:
            custom[key] = amount
    if custom:
        options["resources"] = custom
    return options


class RayLauncher:
    """Starts each trial's command as a Ray task (``expbook.sweep.launch.Launcher``).

    Args:
        ray: the connected ``ray`` module (``connect``).
        resources: one trial's resources (the spec's ``expbook.resources``).
        grace: seconds between SIGTERM and SIGKILL when a trial is stopped.
        store_url: the sweep's store; a SQLite file is checked for on each node.

    Raises:
        ExpbookError: Ray refuses the resources (the line names ``expbook.resources``).
    """

    def __init__(
        self, ray: Any, *, resources: Mapping[str, float], grace: float, store_url: str
    ) -> None:
        self.ray = ray
        self.options = ray_options(resources)
        self.grace = grace
        self.sqlite = sqlite_path(store_url)
        self.remote = ray.remote(run_trial)
        try:
            self.remote.options(**self.options)
        except (ValueError, TypeError) as error:
            raise ExpbookError(f"expbook.resources {dict(resources)}: {_line(error)}") from None

    def start(self, launch: Launch) -> RayTask:
        files = {
            str(path.relative_to(launch.workdir)): path.read_bytes()
            for path in sorted(launch.workdir.rglob("*"))
            if path.is_file()
        }
        task = self.remote.options(name=launch.name or "expbook-trial", **self.options)
        return RayTask(self.ray, task.remote(launch, files, self.grace, self.sqlite), self.grace)

    def trials_at_once(self) -> tuple[int, str | None]:
        """How many trials the cluster's resources hold at once now (at least 1), and a
        warning when it has none of a resource a trial needs."""
        total = self.ray.cluster_resources()
        options = self.options
        need = {"CPU": options.get("num_cpus", 1), "GPU": options.get("num_gpus", 0),
                "memory": options.get("memory", 0), **options.get("resources", {})}  # fmt: skip
        fits = {key: math.floor(total.get(key, 0) / amount + 1e-9)
                for key, amount in need.items() if amount}  # fmt: skip
        if not fits:
            return max(1, int(total.get("CPU", 1))), None
        lacking = sorted(key for key, count in fits.items() if count == 0)
        if lacking:
            return 1, (
                f"the Ray cluster has not enough {', '.join(lacking)} for one trial now: trials "
                "wait until nodes with it join"
            )
        return min(fits.values()), None

    def remote_nodes(self) -> list[str]:
        """The addresses of the cluster's live nodes that are not this machine."""
        here = self.ray.util.get_node_ip_address()
        return sorted({node["NodeManagerAddress"] for node in self.ray.nodes()
                       if node.get("Alive") and node["NodeManagerAddress"] != here})  # fmt: skip


class RayTask:
    """A trial's command running as a Ray task (``expbook.sweep.launch.Started``)."""

    def __init__(self, ray: Any, ref: Any, grace: float) -> None:
        self.ray = ray
        self.ref = ref
        self.grace = grace
        self.ran = True
        self.result: tuple[int, str] | None = None

    def wait(self, timeout: float) -> int | None:
        if self.result is None:
            ready, _ = self.ray.wait([self.ref], timeout=timeout)
            if not ready:
                return None
            self.result = self._collect()
        return self.result[0]

    def _collect(self) -> tuple[int, str]:
        from ray.exceptions import RayError, TaskCancelledError

        try:
            status, text, self.ran = self.ray.get(self.ref)
        except TaskCancelledError:  # cancelled before its command started
            self.ran = False
            return -signal.SIGTERM, "cancelled before it started"
        except RayError as error:  # its worker or node died, Ray's memory monitor killed it ...
            return 1, f"the Ray task failed: {_line(error)}"
        return status, text

    def stop(self, grace: float) -> int:
        """``ray.cancel``; ``force=True`` when the task outlives its grace period by
        ``MARGIN`` seconds. (The task applies the grace given when it was started.)"""
        if self.wait(0) is None:
            self.ray.cancel(self.ref)
            if self.wait(self.grace + MARGIN) is None:
                self.ray.cancel(self.ref, force=True)
                if self.wait(MARGIN) is None:
                    self.result = (-signal.SIGKILL, "the Ray task did not end when killed")
        assert self.result is not None
        return self.result[0]

    def error(self, status: int) -> str:
        return self.result[1] if self.result is not None else f"exit status {status}"

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# On the node


def run_trial(
    launch: Launch, files: Mapping[str, bytes], grace: float, sqlite: str | None
) -> tuple[int, str, bool]:
    """The Ray task: run the trial's command on this node; (exit status, error line, whether it
    ran). The trial's folder is made here when this node has not got it (another machine), in
    the directory the agent runs in when this node has it, else in the task's own (Ray's
    ``working_dir`` when the job has one)."""
    if sqlite is not None and not os.path.exists(sqlite):
        return 1, (
            f"the store {sqlite} is not on the Ray node {socket.gethostname()}: trials on other "
            "machines need a store they reach (--store postgresql://...)"
        ), False  # fmt: skip
    made = not launch.workdir.exists()
    try:
        for name, data in files.items():
            path = launch.workdir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if made or not path.exists():
                path.write_bytes(data)
        cwd = launch.cwd if os.path.isdir(launch.cwd) else os.getcwd()
        launch.workdir.mkdir(parents=True, exist_ok=True)
        return _run(dataclasses.replace(launch, cwd=cwd), grace)
    finally:
        if made:
            shutil.rmtree(launch.workdir, ignore_errors=True)


def _run(launch: Launch, grace: float) -> tuple[int, str, bool]:
    with _sigint(signal.default_int_handler):  # whatever the worker inherited (nohup, &)
        process = spawn(launch)
        try:
            exited = ProcessExit(process)
            try:
                while not exited.wait(TICK):  # a cancel's KeyboardInterrupt comes between looks
                    pass
            finally:
                exited.close()
        except KeyboardInterrupt:  # ray.cancel(ref)
            with _sigint(signal.SIG_IGN):  # a second cancel does not cut the grace short
                stop_process(process, grace)
    status = process.returncode
    return status, exit_text(status, launch.workdir / "stderr"), True


@contextlib.contextmanager
def _sigint(handler: Any) -> Iterator[None]:
    """SIGINT handled by ``handler`` for a while, then as before (the worker runs other tasks
    next). ``ray.cancel``'s ``interrupt_main`` raises KeyboardInterrupt only while SIGINT has
    Python's default handler: it does nothing where SIGINT is ignored, as in a worker of a Ray
    started by a program run with ``nohup`` or ``&`` from a script."""
    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: no interrupt reaches it anyway
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(error).__name__
