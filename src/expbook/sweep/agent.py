"""Sweep agents: claim or add trials, run each through ``expbook run``, watch it, report it.

An ``Agent`` runs ``workers`` threads in one process; each thread supervises one trial at a time:

1. it takes the next trial: a queued one (``Store.claim_trial``: a crashed trial re-queued), else
   a new one from the engine, added by compare-and-set on the sweep's version (``add_trial``
   returns None when another agent added one since: re-read, ask again);
2. it starts ``expbook run`` on the trial's command (``expbook.sweep.command``) with the run's
   UUID chosen here (``EXPBOOK_RUN_UUID``) through its launcher (``expbook.sweep.launch``): by
   default a child process in a session of its own, with ``PR_SET_PDEATHSIG`` (Linux) so that
   the trial gets SIGTERM if the agent dies, even by SIGKILL; with ``--ray``, a Ray task that
   does the same on a node of a cluster (``expbook.sweep.ray``). The program's params, output,
   metrics, git state and host are recorded exactly as for ``expbook run``;
3. every ``poll`` seconds it reads the new points of the run's metric series and asks the
   engine's pruner; a pruned trial, a trial whose lease was lost (its heartbeats came late and
   another agent marked it crashed) and the trials of a stopped sweep are stopped by the
   launcher: SIGTERM to ``expbook run``'s process group (which forwards it to the program),
   SIGKILL to every process group of the trial after ``grace`` seconds;
4. it records the end: ``finished`` with the values of the spec's metrics (the run's summary:
   the last value logged, as W&B), ``failed`` with the exit status, ``pruned`` with the step
   (and the run's status set to ``pruned`` with a note), or ``stopped``.

One more thread renews the leases of the agent's trials every ``heartbeat`` seconds, marks other
agents' stale trials crashed (``expire_trials``; re-queued up to the spec's ``max_attempts``)
and notices a stopped sweep. An agent's own failure (the store unreachable, a bug) stops its
trials without recording anything on them: their leases expire and another agent re-queues them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expbook.errors import ExpbookError
from expbook.model import RunRecord, RunStatus, SweepState, TrialRecord, TrialState
from expbook.store.base import RunQuery
from expbook.sweep.command import check_command, trial_command
from expbook.sweep.engine import Engine, objective, why_done
from expbook.sweep.launch import Launch, Launcher, LocalLauncher, Started
from expbook.sweep.spec import SweepSpec, SweepSpecError, parse_spec

if TYPE_CHECKING:
    from expbook.model import SweepRecord
    from expbook.store import Store

WARN_AFTER = 3
"""Finished trials without the sweep's metric before one warning names the keys they logged."""
FAIL_FAST = 3
"""An agent whose first trials all failed, this many, stops (the command is broken)."""
WAIT_SECONDS = 0.5
"""How often an agent with nothing to start looks again while other agents' trials run."""


@dataclass(frozen=True)
class Settings:
    """How an agent paces itself. ``from_env`` reads ``EXPBOOK_SWEEP_HEARTBEAT`` and
    ``EXPBOOK_SWEEP_POLL`` (seconds)."""

    heartbeat: float = 5.0
    """Seconds between lease renewals; a lease is stale after ``stale_factor`` of them."""
    poll: float = 2.0
    """Seconds between looks at a running trial's series (pruning) and at its process."""
    grace: float = 10.0
    """Seconds between SIGTERM and SIGKILL when a trial is stopped."""
    stale_factor: float = 6.0
    quiet: bool = True
    """Trials' output goes to their runs only (``expbook logs``), not to this terminal."""

    @property
    def stale_after(self) -> float:
        return self.heartbeat * self.stale_factor

    @classmethod
    def from_env(cls, **given: Any) -> Settings:
        values = {k: v for k, v in given.items() if v is not None}
        for name, key in (("heartbeat", "EXPBOOK_SWEEP_HEARTBEAT"),
                          ("poll", "EXPBOOK_SWEEP_POLL")):  # fmt: skip
            text = os.environ.get(key)
            if text and name not in values:
                try:
                    seconds = float(text)
                except ValueError:
                    seconds = -1.0
                if not 0 < seconds < float("inf"):
                    raise ExpbookError(f"{key}={text!r}: give a positive number of seconds")
                values[name] = seconds
        return cls(**values)


@dataclass(frozen=True)
class Event:
    """Something an agent did, for displays: ``started``, ``finished``, ``failed``,
    ``pruned``, ``stopped``, ``lost``, ``crashed`` (another agent's trial, expired here),
    ``warning``, ``waiting``, ``done``."""

    kind: str
    trial: TrialRecord | None = None
    run_number: int | None = None
    message: str = ""
    values: tuple[float | None, ...] | None = None


@dataclass
class _Live:
    """A trial this agent runs."""

    trial: TrialRecord
    run_id: str
    process: Started | None = None
    lost: bool = False
    linked: bool = False
    checked: int | None = None  # the last step the pruner has seen
    stop: str | None = None  # why we stop it: pruned, stopped, lost
    pruned: tuple[int, float] | None = None


@dataclass
class Outcome:
    """How an agent ended: why, and what its trials became."""

    reason: str = ""
    started: int = 0
    states: dict[str, int] = field(default_factory=dict)
    interrupted: int | None = None  # the signal that stopped it


class Agent:
    """Runs a sweep's trials (see the module docstring).

    Args:
        store: the sweep's store.
        sweep: the sweep's name or UUID.
        workers: trials run at once (threads, each supervising one ``expbook run``).
        count: start at most this many trials, then end.
        settings: heartbeat, poll and grace periods.
        on_event: called (from any of the agent's threads) with each ``Event``.
        cwd: where trials run [default: the current directory].
        launcher: starts and stops trials' commands [default: child processes of this one].

    Raises:
        SweepNotFoundError: no such sweep.
        SweepSpecError: its spec is invalid.
    """

    def __init__(
        self,
        store: Store,
        sweep: str,
        *,
        workers: int = 1,
        count: int | None = None,
        settings: Settings | None = None,
        on_event: Callable[[Event], None] | None = None,
        cwd: str | None = None,
        launcher: Launcher | None = None,
    ) -> None:
        self.store = store
        self.record = store.get_sweep(sweep)
        self.spec = parse_spec(self.record.spec)
        check_command(self.spec)
        self.engine = Engine(self.spec, study_name=self.record.id)
        self.curves = self.engine.curves(store)
        self.workers = workers
        self.count = count
        self.settings = settings or Settings()
        self.on_event = on_event or (lambda event: None)
        self.cwd = cwd or os.getcwd()
        self.launcher = launcher or LocalLauncher()
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.outcome = Outcome()
        self._live: dict[int, _Live] = {}
        self._lock = threading.Lock()
        self._take_lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._ended = threading.Event()
        self._errors: list[BaseException] = []
        self._missing = 0
        self._warned = False
        self._failures = 0
        self._succeeded = False

    @property
    def sweep_id(self) -> str:
        return self.record.id

    # --- the agent's life ----------------------------------------------------------------------

    def run(self) -> Outcome:
        """Run trials until the sweep is finished or stopped, its budget used, ``count``
        trials started, or ``stop`` is called; return how it ended.

        Raises:
            ExpbookError (or any error of the agent's own): after stopping its trials.
        """
        beats = threading.Thread(target=self._beat, name="expbook-sweep-heartbeat", daemon=True)
        beats.start()
        threads = [
            threading.Thread(target=self._work, name=f"expbook-sweep-worker-{i}", daemon=True)
            for i in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
        self._ended.set()
        beats.join(self.settings.heartbeat + 5)
        if self._errors:
            raise self._errors[0]
        self.outcome.states = _states(self.store.list_trials(self.sweep_id))
        self.on_event(Event("done", message=self.outcome.reason))
        return self.outcome

    def stop(self, signum: int | None = None) -> None:
        """Stop: running trials are stopped (marked ``stopped``), no new one starts. Safe to
        call from a signal handler."""
        if self.outcome.interrupted is None and signum is not None:
            self.outcome.interrupted = signum
        if not self.outcome.reason:
            name = signal.Signals(signum).name if signum else "stop()"
            self.outcome.reason = f"interrupted ({name})"
        self._stopping.set()
        self._wake.set()

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)
        self.outcome.reason = self.outcome.reason or f"failed: {error}"
        self._stopping.set()

    # --- the workers ---------------------------------------------------------------------------

    def _work(self) -> None:
        try:
            while not self._stopping.is_set():
                trial = self._take()
                if trial is None:
                    return
                if trial is _WAIT:  # woken early when a trial of this agent ends
                    self._wake.wait(min(self.settings.poll, WAIT_SECONDS))
                    self._wake.clear()
                    continue
                self._run(trial)  # type: ignore[arg-type]
        except BaseException as error:  # an agent's failure: not the trial's
            self._fail(error)

    def _take(self) -> TrialRecord | object | None:
        """The next trial for this worker (leased to this agent), ``_WAIT`` while other trials
        run and none can start, or None when this agent is done."""
        with self._take_lock:
            retry = 0
            while not self._stopping.is_set():
                sweep = self._refresh()
                if sweep.state != SweepState.RUNNING:
                    self.outcome.reason = self.outcome.reason or f"the sweep is {sweep.state}"
                    return None
                if self.count is not None and self.outcome.started >= self.count:
                    self.outcome.reason = self.outcome.reason or f"{self.count} trials run"
                    return None
                trials = self.store.list_trials(self.sweep_id)
                if any(t.state == TrialState.QUEUED for t in trials):
                    claimed = self.store.claim_trial(self.sweep_id, self.worker)
                    if claimed is not None:
                        return self._started(claimed)
                    continue  # another agent took it: read again
                reason = why_done(self.spec, sweep, trials)
                proposal = None
                if reason is None:
                    curves = self.curves.all(trials) if self.engine.prunes else {}
                    proposal = self.engine.next_configuration(trials, curves, retry=retry)
                    reason = None if proposal is not None else "the grid is done"
                if proposal is None:
                    if any(t.state in (TrialState.RUNNING, TrialState.QUEUED) for t in trials):
                        return _WAIT  # they may crash and be re-queued
                    self._finish(sweep, reason or "done")
                    return None
                added = self.store.add_trial(
                    self.sweep_id, expected_version=sweep.version, params=proposal.params,
                    config_key=proposal.config_key, config=proposal.config,
                    repeat=proposal.repeat, worker=self.worker,
                )  # fmt: skip
                if added is not None:
                    return self._started(added)
                retry += 1  # another agent added a trial since we read: ask again
            return None

    def _refresh(self) -> SweepRecord:
        """The sweep as stored now; a spec edited since is parsed again."""
        sweep = self.store.get_sweep(self.sweep_id)
        if dict(sweep.spec) != dict(self.record.spec):
            self.spec = parse_spec(sweep.spec)
            self.engine = Engine(self.spec, study_name=sweep.id)
            self.curves = self.engine.curves(self.store)
        self.record = sweep
        return sweep

    def _started(self, trial: TrialRecord) -> TrialRecord:
        self.outcome.started += 1
        return trial

    def _finish(self, sweep: SweepRecord, reason: str) -> None:
        """Mark the sweep finished (once: whoever gets there first)."""
        self.outcome.reason = self.outcome.reason or f"the sweep is finished: {reason}"
        if sweep.state == SweepState.RUNNING:
            self.store.update_sweep(self.sweep_id, state="finished",
                                    expected_version=sweep.version)  # fmt: skip

    # --- one trial -----------------------------------------------------------------------------

    def _run(self, trial: TrialRecord) -> None:
        live = _Live(trial, uuid.uuid4().hex)
        workdir = Path(tempfile.mkdtemp(prefix=f"expbook-trial-{trial.number}-"))
        with self._lock:
            self._live[trial.number] = live
        try:
            try:
                argv = trial_command(self.spec, trial.params, workdir=workdir / "args")
            except SweepSpecError as error:  # an edited spec: every trial would fail so
                self._update(live, state=TrialState.FAILED, error=str(error))
                raise
            live.process = self._start(live, argv, workdir)
            self.on_event(Event("started", trial))
            status = self._supervise(live)
            self._report(live, status)
        finally:
            with self._lock:
                self._live.pop(trial.number, None)
            self._wake.set()
            if live.process is not None:
                if live.process.wait(0) is None:
                    live.process.stop(self.settings.grace)
                live.process.close()
            shutil.rmtree(workdir, ignore_errors=True)

    def _start(self, live: _Live, argv: list[str], workdir: Path) -> Started:
        trial = live.trial
        name = self.record.name
        command = ["run", "--name", f"{name}-{trial.number}", "--kind", "sweep-trial",
                   "--tag", f"sweep:{name}", "--quiet", "--store", self.store.url]  # fmt: skip
        experiment = self.spec.experiment or self.record.experiment
        if experiment:
            command += ["--experiment", experiment]
        params_file = workdir / "sweep-params.json"
        params_file.write_text(_wandb_config(self.spec, trial.params))
        env = {
            "EXPBOOK_RUN_UUID": live.run_id,
            "EXPBOOK_SWEEP": name,
            "EXPBOOK_SWEEP_ID": self.sweep_id,
            "EXPBOOK_SWEEP_TRIAL": str(trial.number),
            "WANDB_SWEEP_ID": self.sweep_id,
            "WANDB_SWEEP_PARAM_PATH": str(params_file),
        }
        launch = Launch((*command, "--", *argv), env, self.cwd, workdir,
                        quiet=self.settings.quiet, name=f"{name}-{trial.number}")  # fmt: skip
        return self.launcher.start(launch)

    def _supervise(self, live: _Live) -> int:
        """Wait for the trial's process, looking at its series and lease every ``poll``
        seconds; stop it when pruned, when its lease is lost, when the agent stops."""
        process = live.process
        assert process is not None
        while (status := process.wait(self.settings.poll)) is None:
            if live.stop is None:
                live.stop = self._why_stop(live)
            if live.stop is not None:
                return process.stop(self.settings.grace)
        return status

    def _why_stop(self, live: _Live) -> str | None:
        if live.lost:
            return "lost"
        if self._stopping.is_set():
            return "stopped"
        if self.record.state == SweepState.STOPPED:
            return "stopped"
        if not live.linked:
            live.linked = self._link(live)
        if live.linked and self.engine.prunes:
            return self._check_pruning(live)
        return None

    def _find_run(self, run_id: str) -> RunRecord | None:
        """The run, or None before ``expbook run``'s recorder has created it."""
        found = self.store.find_runs(RunQuery(ids=(run_id,)))
        return found[0] if found else None

    def _link(self, live: _Live) -> bool:
        """Link the trial to its run once the run exists."""
        if self._find_run(live.run_id) is None:
            return False
        if not self.store.update_trial(self.sweep_id, live.trial.number, worker=self.worker,
                                       run_id=live.run_id):  # fmt: skip
            live.lost = True
        return True

    def _check_pruning(self, live: _Live) -> str | None:
        trials = self.store.list_trials(self.sweep_id)
        curves = self.curves.all(trials)
        curves[live.trial.number] = self.curves.get(live.trial, live.run_id)
        decision = self.engine.decide(trials, curves, live.trial.number, after=live.checked)
        mine = curves[live.trial.number]
        if mine:
            live.checked = max(mine)
        if decision.prune:
            live.pruned = (decision.step, decision.value)  # type: ignore[assignment]
            return "pruned"
        return None

    # --- reporting a trial ---------------------------------------------------------------------

    def _report(self, live: _Live, status: int) -> None:
        trial = live.trial
        assert live.process is not None
        run = self._settled_run(live.run_id, timeout=30.0 if live.process.ran else 0.0)
        if run is not None and not live.linked:
            live.linked = True  # linked by the update that records its end
        run_number = run.number if run is not None else None
        values = objective(self.spec, run.metrics) if run is not None else None
        if live.lost or live.stop == "lost":
            self._note(live, "stopped: its agent lost the trial's lease (heartbeats were late)")
            self.on_event(Event("lost", trial, run_number))
            return
        if live.stop == "pruned" and live.pruned is not None:
            step, got = live.pruned
            metric = self.spec.metric.name if self.spec.metric else "metric"
            note = f"pruned by {self.engine.pruner_name} at step {step}: {metric} = {got:.6g}"
            if run is not None:
                with contextlib.suppress(ExpbookError):
                    self.store.update_run(live.run_id, status=RunStatus.PRUNED.value)
            self._note(live, note)
            self._update(live, state=TrialState.PRUNED, pruned_step=step, values=values)
            self.on_event(Event("pruned", trial, run_number, note, values))
            return
        if live.stop == "stopped":
            self._note(live, f"stopped: {self.outcome.reason or 'the sweep was stopped'}")
            self._update(live, state=TrialState.STOPPED, values=values)
            self.on_event(Event("stopped", trial, run_number))
            return
        if status == 0:
            self._succeeded = True
            self._update(live, state=TrialState.FINISHED, values=values)
            self.on_event(Event("finished", trial, run_number, values=values))
            self._check_metric(run)
            return
        error = live.process.error(status)
        self._update(live, state=TrialState.FAILED, values=values, error=error)
        self.on_event(Event("failed", trial, run_number, error, values))
        self._check_failures(error, run_number)

    def _check_failures(self, error: str, run_number: int | None) -> None:
        """Stop when the first ``FAIL_FAST`` trials of this agent all failed: the command is
        broken, and the budget would go to failures."""
        with self._lock:
            self._failures += 1
            broken = self._failures == FAIL_FAST and not self._succeeded
        if broken:
            logs = f" (see `expbook logs {run_number}`)" if run_number is not None else ""
            self._fail(ExpbookError(
                f"the first {self._failures} trials failed, the last with {error}{logs}; "
                "fix the command and run `expbook sweep agent` to go on"
            ))  # fmt: skip

    def _update(self, live: _Live, **fields: Any) -> None:
        if live.linked:
            fields["run_id"] = live.run_id
        if not self.store.update_trial(self.sweep_id, live.trial.number, worker=self.worker,
                                       **fields):  # fmt: skip
            self.on_event(Event("lost", live.trial))

    def _settled_run(self, run_id: str, timeout: float = 30.0) -> RunRecord | None:
        """The trial's run once ``expbook run`` has stored its end (it normally has when it
        returns; a recorder left in the background may take longer); None if there is none."""
        deadline = time.monotonic() + timeout
        while True:
            run = self._find_run(run_id)
            if run is not None and run.status.is_terminal():
                return run
            if time.monotonic() > deadline:
                return run
            time.sleep(0.05)

    def _note(self, live: _Live, text: str) -> None:
        with contextlib.suppress(ExpbookError):
            self.store.add_note(live.run_id, text)

    def _check_metric(self, run: Any) -> None:
        """One warning when ``WARN_AFTER`` finished trials logged none of the sweep's metric."""
        metric = self.spec.metric
        if metric is None or run is None or self._warned:
            return
        if metric.name in run.metrics:
            self._warned = True  # it is logged: never warn
            return
        self._missing += 1
        if self._missing >= WARN_AFTER:
            self._warned = True
            keys = ", ".join(sorted(run.metrics)) or "none"
            self.on_event(Event("warning", message=(
                f"{self._missing} trials finished without logging the metric {metric.name!r} "
                f"(the sweep optimizes nothing); they logged: {keys}"
            )))  # fmt: skip

    # --- the heartbeat thread --------------------------------------------------------------------

    def _beat(self) -> None:
        """Renew leases, expire stale trials, notice a stopped sweep, until the agent ends."""
        while not self._ended.wait(self.settings.heartbeat):
            try:
                self._beat_once()
            except ExpbookError as error:  # the store is away: keep trying, say it once
                self.on_event(Event("warning", message=f"heartbeat: {error}"))
            except BaseException as error:
                self._fail(error)
                return

    def _beat_once(self) -> None:
        with self._lock:
            held = {number: live for number, live in self._live.items() if not live.lost}
        if held:
            alive = self.store.heartbeat_trials(self.sweep_id, sorted(held), self.worker)
            for number in set(held) - alive:
                held[number].lost = True
        for crashed in self.store.expire_trials(
            self.sweep_id, stale_after=self.settings.stale_after,
            max_attempts=self.spec.max_attempts,
        ):  # fmt: skip
            self.on_event(Event("crashed", crashed, crashed.run_number, crashed.error or ""))
        sweep = self.store.get_sweep(self.sweep_id)
        if sweep.state == SweepState.STOPPED:
            self.outcome.reason = self.outcome.reason or "the sweep was stopped"
            self._stopping.set()


_WAIT = object()


def _wandb_config(spec: SweepSpec, params: dict[str, Any]) -> str:
    """The trial's params as W&B's agent hands them to ``wandb.init`` (WANDB_SWEEP_PARAM_PATH:
    ``{name: {"value": v}}``, nested parameters as one dict per top-level name; JSON is YAML);
    ``expbook.wandb.init`` reads it into ``wandb.config``."""
    import json

    from expbook.sweep.command import run_config

    config = run_config(spec, params)
    return json.dumps({name: {"value": value} for name, value in config.items()})


def _states(trials: list[TrialRecord]) -> dict[str, int]:
    found: dict[str, int] = {}
    for trial in trials:
        found[trial.state.value] = found.get(trial.state.value, 0) + 1
    return found


def spec_of(sweep: SweepRecord) -> SweepSpec:
    """The parsed spec of a stored sweep."""
    return parse_spec(sweep.spec)
