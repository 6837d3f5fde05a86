"""The worker behind one call of ``expbook.sweep`` (``expbook.sweep.api``): it opens the sweep
(creating it, or bringing a stored one to the call's options and resuming it), takes trials,
runs the objective on each in this process (``workers`` threads), records how each ended, and
renews its trials' leases from a thread of its own, as ``expbook.sweep.agent`` does for
programs.

Taking a trial: a queued one (``Store.claim_trial``: a crashed trial re-queued), else, for a
typed space, the engine's next configuration added by compare-and-set on the sweep's version
(re-read and asked again on a conflict); for a define-by-run objective, an Optuna trial asked
from the engine's rebuilt study, added later by ``Worker.add`` with the params the objective
asked for. How a trial ends:

- the objective returns a number: ``finished`` with it as the value (None: the run's last
  logged value of the metric; NaN or not a number: ``failed``);
- it raises ``expbook.TrialPruned`` or ``optuna.TrialPruned``: ``pruned`` (its run too, with a
  note saying at which step and value);
- it raises an exception of ``catch``: ``failed`` (the run with the traceback), and the sweep
  goes on, unless the call's first ``FAIL_FAST`` trials all failed: then the exception
  propagates; any other exception propagates at once, the trial ``failed``;
- KeyboardInterrupt or SIGTERM (``Terminated``): the run ``interrupted``, the trial
  ``stopped`` (it does not count toward the budget), and the exception propagates; with several
  worker threads the others get a KeyboardInterrupt too;
- the sweep stopped (``expbook sweep stop``), or the trial's lease lost: the trial is stopped at
  its next ``report``/``should_prune``.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import dataclasses
import logging
import math
import os
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from expbook.errors import ExpbookError, InvalidValueError, SweepExistsError
from expbook.model import RunStatus, SweepState, TrialRecord, TrialState
from expbook.store.base import WriteBatch
from expbook.sweep import engine as _engine
from expbook.sweep import pyspace
from expbook.sweep.api import SweepResult, Trial, TrialPruned, TrialResult
from expbook.sweep.spec import SAMPLERS, parse_spec

if TYPE_CHECKING:
    import optuna

    from expbook.model import SweepRecord
    from expbook.sweep.spec import SweepSpec
    from expbook.tracking import Run

logger = logging.getLogger("expbook.sweep")

FAIL_FAST = 3
"""A call whose first trials all failed, this many, raises the last one's exception."""
_METHODS = {"tpe": "bayes", "cmaes": "bayes", "gp": "bayes", "random": "random",
            "qmc": "random", "grid": "grid"}  # fmt: skip


class _NoTrial(BaseException):
    """The trial cannot be added: the sweep ended (its budget used by other workers, stopped)
    while the objective asked for its params. Nothing is recorded."""


class _Stop(BaseException):
    """Stop the running trial: the sweep was stopped, or this worker lost the trial's lease."""


class Worker:
    """One call of ``expbook.sweep`` (see the module docstring)."""

    def __init__(
        self, objective: Callable[..., Any], *, typed: pyspace.TypedSpace | None,
        takes_trial: bool, metric: str, goal: str, workers: int, timeout: float | None,
        catch: Any, **options: Any,
    ) -> None:  # fmt: skip
        from expbook import default_tracker
        from expbook.sweep.agent import Settings

        self.objective = objective
        self.options = options
        self.typed = typed
        self.takes_trial = takes_trial
        self.metric, self.goal = metric, goal
        self.workers = workers
        self.timeout = timeout
        self.catch = catch
        self.tracker = default_tracker()
        self.store = self.tracker.store(options["store"])
        self.name = options["name"] or _default_name(objective)
        self.settings = Settings.from_env()
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.record: SweepRecord | None = None
        self.reason = ""
        self._live: dict[int, Trial] = {}
        self._lock = threading.Lock()
        self._take_lock = threading.Lock()
        self._stopping = threading.Event()
        self._ended = threading.Event()
        self._errors: list[BaseException] = []
        self._failures = 0
        self._succeeded = False
        self._attrs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._captured: WriteBatch | None = None
        self._open()

    # --- the spec and the sweep -----------------------------------------------------------------

    def _desired(self, stored: Mapping[str, Any] | None) -> dict[str, Any]:
        """The spec this call asks for: the stored one (or a new one) with its options."""
        o = self.options
        raw = copy.deepcopy(dict(stored)) if stored else {
            "description": f"expbook.sweep({_qualname(self.objective)})",
            "parameters": {},
        }  # fmt: skip
        ext = raw.setdefault("expbook", {})
        sampler = o["sampler"] or (None if stored else "tpe")
        if sampler is not None:
            if sampler not in SAMPLERS:
                raise InvalidValueError(f"sampler {sampler!r}: one of {', '.join(SAMPLERS)}")
            if sampler == "grid" and self.typed is None:
                raise InvalidValueError("sampler 'grid' needs a space= to enumerate")
            raw["method"] = _METHODS[sampler]
            ext["sampler"] = sampler
        if not stored:  # a stored sweep has this metric and goal (``_check_same``)
            raw["metric"] = {"name": self.metric, "goal": self.goal}
        if o["pruner"] or not stored:
            ext["pruner"] = o["pruner"] or "median"
        if self.typed is not None:
            raw["parameters"] = self.typed.parameters
        if o["trials"] is not None:
            budget = ext.get("budget")
            (budget if isinstance(budget, dict) else ext)["trials"] = o["trials"]
        for key in ("sampler_options", "pruner_options"):
            if o[key] is not None:
                ext[key] = dict(o[key])
        if o["seed"] is not None:
            ext["sampler_options"] = {**ext.get("sampler_options", {}), "seed": o["seed"]}
        if o["experiment"] is not None and not stored:
            ext["experiment"] = o["experiment"]
        return raw

    def _parse(self, raw: Mapping[str, Any]) -> SweepSpec:
        """The parsed spec; a define-by-run spec before any parameter is parsed with none."""
        if raw.get("parameters"):
            return parse_spec(raw)
        spec = parse_spec({**raw, "parameters": {"_": {"value": 0}}})
        return dataclasses.replace(spec, parameters=())

    def _open(self) -> None:
        """Find the sweep and bring its spec to this call's options (resuming a stopped or
        finished one that has work left), or check the options for a new one. A typed space's
        sweep is created now; a define-by-run one with its first trial."""
        from expbook.errors import SweepNotFoundError

        try:
            sweep = self.store.get_sweep(self.name)
        except SweepNotFoundError:
            sweep = None
        if sweep is None:
            raw = self._desired(None)
            self._adopt(None, raw)
            if self.typed is not None:
                self._create(raw)
            return
        self._check_same(sweep)
        for _ in range(50):
            raw = self._desired(sweep.spec)
            spec = self._parse(raw)
            trials = self.store.list_trials(sweep.id)
            resume = sweep.state != SweepState.RUNNING and _engine.why_done(
                spec, sweep, trials) is None  # fmt: skip
            if raw == dict(sweep.spec) and not resume:
                break
            changed = self.store.update_sweep(
                sweep.id, spec=raw if raw != dict(sweep.spec) else None,
                state="running" if resume else None, expected_version=sweep.version,
            )  # fmt: skip
            if changed is not None:
                sweep = changed
                break
            sweep = self.store.get_sweep(sweep.id)
        self._adopt(sweep, sweep.spec)

    def _check_same(self, sweep: SweepRecord) -> None:
        stored = parse_spec(sweep.spec).metric
        if stored is None or (stored.name, stored.goal) != (self.metric, self.goal):
            what = "no metric" if stored is None else f"{stored.name} ({stored.goal})"
            raise InvalidValueError(
                f"sweep {self.name!r} optimizes {what}, not {self.metric} ({self.goal}): "
                "give its metric and goal, or another name for a new sweep"
            )
        given = self.options["experiment"]
        if given is not None and given != sweep.experiment:
            raise InvalidValueError(
                f"sweep {self.name!r} belongs to experiment {sweep.experiment!r}, not {given!r}"
            )

    def _create(self, raw: Mapping[str, Any]) -> SweepRecord:
        """Create the sweep, or find the one another worker just created."""
        _engine.Engine(self._parse(raw)).check_sampler()  # a missing package: before it exists
        try:
            sweep = self.store.create_sweep(self.name, raw, experiment=self.options["experiment"])
        except SweepExistsError:
            sweep = self.store.get_sweep(self.name)
            self._check_same(sweep)
        self._adopt(sweep, sweep.spec)
        return sweep

    def _adopt(self, sweep: SweepRecord | None, raw: Mapping[str, Any]) -> None:
        """Use ``sweep`` (None: not created yet) with spec ``raw``: the parsed spec, and an
        engine for it when the spec changed."""
        self.record = sweep
        if (
            getattr(self, "raw", None) == raw
            and sweep is not None
            and self._engine_for == sweep.id
        ):
            return
        self.raw = copy.deepcopy(dict(raw))
        self.spec = self._parse(raw)
        dists = None if self.typed is not None else pyspace.asked_distributions(self.spec)
        self._engine_for = sweep.id if sweep is not None else None
        self.engine = _engine.Engine(
            self.spec, study_name=sweep.id if sweep else self.name, distributions=dists
        )
        for params, attrs in self._attrs:
            self.engine.remember(params, attrs)
        self.curves = self.engine.curves(self.store)

    def _refresh(self) -> SweepRecord | None:
        if self.record is None:
            return None
        sweep = self.store.get_sweep(self.record.id)
        self._adopt(sweep, sweep.spec)
        return sweep

    # --- running ---------------------------------------------------------------------------------

    def run(self) -> SweepResult:
        self._started = time.monotonic()
        beats = threading.Thread(target=self._beat, name="expbook-sweep-heartbeat", daemon=True)
        beats.start()
        try:
            if self.workers == 1:
                self._work()
            else:
                self._run_threads()
        finally:
            self._ended.set()
        if self._errors:
            raise self._errors[0]
        return self._result()

    def _run_threads(self) -> None:
        ended = [threading.Event() for _ in range(self.workers)]
        threads = [threading.Thread(target=self._work_in_thread, args=(done,), daemon=True,
                                    name=f"expbook-sweep-worker-{i}")
                   for i, done in enumerate(ended)]  # fmt: skip
        for thread in threads:
            thread.start()
        try:  # not Thread.join: a join interrupted by Ctrl-C marks the thread ended (3.11)
            for done in ended:
                while not done.wait(0.2):
                    pass
        except BaseException:  # Ctrl-C or SIGTERM in the main thread: stop the trials
            self.reason = self.reason or "interrupted"
            self._stopping.set()
            for thread, done in zip(threads, ended, strict=True):
                if not done.is_set() and thread.ident is not None:
                    _raise_in(thread.ident, KeyboardInterrupt)
            deadline = time.monotonic() + self.settings.grace
            while time.monotonic() < deadline and not all(e.is_set() for e in ended):
                time.sleep(0.02)
            with self._lock:  # threads still in a long C call: stop their trials from here
                stuck = list(self._live.values())
            for trial in stuck:
                with contextlib.suppress(Exception):
                    why = f"KeyboardInterrupt (its thread went on for {self.settings.grace:g} s)"
                    self._stopped(trial, why, "KeyboardInterrupt")
            raise

    def _work_in_thread(self, done: threading.Event) -> None:
        try:
            self._work()
        except BaseException as error:
            with self._lock:
                self._errors.append(error)
            self._stopping.set()
        finally:
            done.set()

    def _work(self) -> None:
        while not self._stopping.is_set():
            trial = self._take()
            if trial is None:
                return
            if trial is _WAIT:
                self._stopping.wait(self.settings.poll)
                continue
            self._run_trial(trial)  # type: ignore[arg-type]

    def _take(self) -> Trial | object | None:
        """The next trial for this worker, ``_WAIT`` while others run and none can start, or
        None when this call is done (``reason`` says why)."""
        with self._take_lock:
            retry = 0
            while not self._stopping.is_set():
                if self.timeout is not None and time.monotonic() - self._started >= self.timeout:
                    self.reason = self.reason or f"the timeout of {self.timeout:g} s passed"
                    return None
                sweep = self._refresh()
                trials: list[TrialRecord] = []
                reason = None
                if sweep is not None:
                    if sweep.state != SweepState.RUNNING:
                        self.reason = self.reason or f"the sweep is {sweep.state}"
                        return None
                    claimed = self.store.claim_trial(sweep.id, self.worker)
                    if claimed is not None:
                        return self._trial(record=claimed)
                    trials = self.store.list_trials(sweep.id)
                    reason = _engine.why_done(self.spec, sweep, trials)
                if reason is None:
                    curves = self.curves.all(trials) if self.engine.prunes else {}
                    if self.typed is None:
                        study = self.engine.study(trials, curves)
                        return self._trial(live=study.ask())
                    proposal = self.engine.next_configuration(trials, curves, retry=retry)
                    if proposal is not None:
                        added = self._add_proposal(sweep, proposal)
                        if added is not None:
                            return self._trial(record=added)
                        retry += 1  # another worker added a trial since we read: ask again
                        continue
                    reason = "the grid is done"
                if any(t.state in (TrialState.RUNNING, TrialState.QUEUED) for t in trials):
                    return _WAIT  # they may crash and be re-queued
                self._finish(sweep, reason)
                return None
            return None

    def _trial(self, **given: Any) -> Trial:
        trial = Trial(self, **given)
        if self.typed is not None and trial._record is not None:
            trial.config = self.typed.build(trial._record.params, self.spec)
        return trial

    def _add_proposal(self, sweep: SweepRecord | None, proposal: Any) -> TrialRecord | None:
        assert sweep is not None
        return self.store.add_trial(
            sweep.id, expected_version=sweep.version, params=proposal.params,
            config_key=proposal.config_key, config=proposal.config, repeat=proposal.repeat,
            worker=self.worker,
        )  # fmt: skip

    def _finish(self, sweep: SweepRecord | None, reason: str) -> None:
        """Mark the sweep finished (once: whoever gets there first)."""
        self.reason = self.reason or f"the sweep is finished: {reason}"
        if sweep is not None and sweep.state == SweepState.RUNNING:
            self.store.update_sweep(sweep.id, state="finished", expected_version=sweep.version)

    # --- adding a define-by-run trial -----------------------------------------------------------

    def check_asked(self, name: str, d: optuna.distributions.BaseDistribution) -> None:
        """Raise now when the sweep cannot hold ``name`` asked as ``d`` (another kind)."""
        pyspace.spec_parameters(self.raw.get("parameters") or {}, {name: d})

    def add(self, trial: Trial) -> TrialRecord:
        """Add a define-by-run trial with the params it asked for: the spec's parameters
        widened first (compare-and-set), then the trial (compare-and-set).

        Raises:
            _NoTrial: the sweep ended meanwhile (budget, stopped).
            InvalidValueError: the objective asked for no parameter yet.
        """
        if not trial._params:
            raise InvalidValueError(
                "the objective asked for no parameter before using the trial: call "
                "trial.suggest_* first (the store records a trial's params when it starts)"
            )
        with self._take_lock:
            for _ in range(1000):
                sweep = self._refresh()
                if sweep is None:
                    raw = self._desired(None)
                    raw["parameters"] = pyspace.spec_parameters({}, trial._asked)
                    sweep = self._create(raw)
                if sweep.state != SweepState.RUNNING:
                    raise _NoTrial(f"the sweep is {sweep.state}")
                reason = _engine.why_done(self.spec, sweep, self.store.list_trials(sweep.id))
                if reason is not None:
                    raise _NoTrial(reason)
                params = pyspace.spec_parameters(sweep.spec.get("parameters") or {}, trial._asked)
                if params != sweep.spec.get("parameters"):
                    changed = self.store.update_sweep(
                        sweep.id, spec={**sweep.spec, "parameters": params},
                        expected_version=sweep.version,
                    )  # fmt: skip
                    if changed is None:
                        continue
                    sweep = changed
                    self._adopt(sweep, sweep.spec)
                added = self.store.add_trial(
                    sweep.id, expected_version=sweep.version, params=trial._params,
                    config_key=_config_key(trial._params), worker=self.worker,
                )  # fmt: skip
                if added is not None:
                    self._remember(trial)
                    return added
            raise ExpbookError(f"sweep {self.name!r}: could not add a trial in 1000 attempts")

    def _remember(self, trial: Trial) -> None:
        live = trial._live
        if live is None:
            return
        attrs = live.study.get_trials(deepcopy=False)[live.number].system_attrs
        if attrs:
            self._attrs.append((dict(trial._params), dict(attrs)))
            self.engine.remember(trial._params, attrs)

    # --- a trial's run ---------------------------------------------------------------------------

    def start_run(self, trial: Trial) -> Run:
        """Start the trial's run (kind ``sweep-trial``, tag ``sweep:NAME``) and link it."""
        from expbook.store import RunSpec, resolve_url
        from expbook.system.sampler import system_settings

        record = trial._record
        assert record is not None and self.record is not None
        wrapper = os.environ.get("EXPBOOK_RUN_ID")  # under `expbook run`: its run is the parent
        parent = wrapper if wrapper and self.store.url == resolve_url(None) else None
        spec = RunSpec(
            name=f"{self.name}-{record.number}", experiment=self._experiment(), parent=parent,
            kind="sweep-trial", params=dict(record.params), tags=[f"sweep:{self.name}"],
            command=list(getattr(sys, "orig_argv", sys.argv)), cwd=os.getcwd(),
            pid=os.getpid(), hostname=socket.gethostname(),
        )  # fmt: skip
        run = self.tracker.begin(spec, store=self.store, capture=False)
        run.submit(copy.deepcopy(self._context()))
        interval = system_settings(None, None)
        if interval is not None:
            run.sample_system(interval)
        with self._lock:
            self._live[record.number] = trial
        if not self.store.update_trial(self.record.id, record.number, worker=self.worker,
                                       run_id=run.id):  # fmt: skip
            trial.lost = True
        return run

    def _context(self) -> WriteBatch:
        """Git state, host and packages, captured once per call: every trial runs this
        process's code (capturing them for each run cost 100-300 ms a trial)."""
        with self._lock:
            if self._captured is None:
                from expbook.storedir import store_files
                from expbook.tracking.tracker import capture_context

                exclude = store_files(self.store.url)
                self._captured = capture_context(os.getcwd(), exclude=exclude)
            return self._captured

    def _experiment(self) -> str | None:
        return self.spec.experiment or (self.record.experiment if self.record else None)

    def log_points(self, run: Run, points: Mapping[int, float]) -> None:
        """Add reported values to the run's series of the metric (without moving the step the
        run's next ``log`` takes by default)."""
        from expbook.store.chunks import Points

        series = Points()
        now = time.time()
        for step, value in sorted(points.items()):
            series.append(step, value, now, None)
        run.submit(WriteBatch(points={self.metric: series}))
        run.flush()

    # --- pruning and stopping --------------------------------------------------------------------

    def check_stop(self, trial: Trial) -> None:
        """Raise ``_Stop`` when the trial must stop: its lease lost, the sweep stopped."""
        if trial.lost:
            raise _Stop("its worker lost the trial's lease (heartbeats came late)")
        if self._stopping.is_set():
            raise _Stop(self.reason or "the sweep was stopped")

    def decide(self, trial: Trial, curve: dict[int, float]) -> bool:
        """Whether the engine's pruner stops ``trial`` now, given its curve."""
        record = trial._record
        if not self.engine.prunes or not curve or record is None or self.record is None:
            return False
        trials = self.store.list_trials(self.record.id)
        curves = self.curves.all(trials)
        curves[record.number] = curve
        decision = self.engine.decide(trials, curves, record.number, after=trial._checked)
        trial._checked = max(curve)
        if decision.prune:
            trial._pruned_at = (decision.step, decision.value)  # type: ignore[assignment]
        return decision.prune

    # --- one trial -------------------------------------------------------------------------------

    def _run_trial(self, trial: Trial) -> None:
        try:
            self._call(trial)
        finally:
            if trial._record is not None:
                with self._lock:
                    self._live.pop(trial._record.number, None)

    def _call(self, trial: Trial) -> None:
        import optuna

        try:
            if self.typed is not None:
                trial._ensure()  # the run exists when the objective starts
                args = (trial.config, trial) if self.takes_trial else (trial.config,)
                result = self.objective(*args)
            else:
                result = self.objective(trial)
            trial._ensure()
        except _NoTrial as stop:
            self.reason = self.reason or f"the sweep is finished: {stop}"
            return
        except _Stop as stop:
            self._stopped(trial, str(stop), "stopped")
            return
        except (TrialPruned, optuna.TrialPruned):
            self._pruned(trial)
            return
        except Exception as error:
            self._failed(trial, error)
            if not isinstance(error, self.catch):
                raise
            self._fail_fast(error)
            return
        except BaseException as error:  # KeyboardInterrupt, Terminated, SystemExit
            self._stopped(trial, f"{type(error).__name__} {error}".strip(), type(error).__name__)
            raise
        self._finished(trial, result)

    def _finished(self, trial: Trial, result: Any) -> None:
        run = trial._run
        assert run is not None and trial._record is not None
        if trial._pending:
            trial._sync()
        run.finish(RunStatus.FINISHED)
        logged = _engine.objective(self.spec, self.store.run(run.id).metrics)[0]
        value, error = _value(result, logged, self.metric)
        if error is not None:
            self.store.update_run(run.id, status=RunStatus.FAILED.value, error=error)
            self._failed(trial, None, error)
            self._fail_fast(InvalidValueError(error))
            return
        if logged is None:  # the run shows the value it returned
            self.store.set_metric(run.id, self.metric, value)
        self._succeeded = True
        self._update(trial, state=TrialState.FINISHED, values=[value])
        logger.info("trial %d finished: %s = %.6g (run #%d)", trial._record.number,
                    self.metric, value, run.number)  # fmt: skip

    def _failed(self, trial: Trial, error: BaseException | None, text: str | None = None) -> None:
        with self._lock:
            self._failures += 1
        if trial._record is None:  # failed while asking for its params: record it if we can
            with contextlib.suppress(_NoTrial, InvalidValueError):
                trial._ensure()
        line = text or _one_line(error)
        if trial._run is None:
            logger.warning("a trial failed before it started: %s", line)
            return
        if trial._pending:
            with contextlib.suppress(ExpbookError):
                trial._sync()
        full = text if error is None else "".join(traceback.format_exception(error))
        trial._run.finish(RunStatus.FAILED, error=full)  # nothing, when _finished did
        self._update(trial, state=TrialState.FAILED, error=line, values=_last(trial))
        logger.warning("trial %d failed: %s (run #%d)", trial.number, line, trial._run.number)

    def _fail_fast(self, error: BaseException) -> None:
        with self._lock:
            broken = self._failures == FAIL_FAST and not self._succeeded
        if broken:
            error.add_note(f"expbook.sweep: the first {FAIL_FAST} trials of sweep {self.name!r} "
                           "failed; fix the objective and call it again to go on")  # fmt: skip
            raise error

    def _pruned(self, trial: Trial) -> None:
        with contextlib.suppress(_NoTrial):
            trial._ensure()
        run = trial._run
        if run is None:
            return
        curve = trial._sync() if trial._pending or trial._pruned_at is None else {}
        step: int | None = None
        got: float | None = None
        if trial._pruned_at is not None:
            step, got = trial._pruned_at
        elif curve:
            step = max(curve)
            got = curve[step]
        by = self.engine.pruner_name if trial._pruned_at else "the objective"
        at = "" if step is None else f" at step {step}: {self.metric} = {got:.6g}"
        run.note(f"pruned by {by}{at}")
        run.finish(RunStatus.PRUNED)
        self._update(trial, state=TrialState.PRUNED, pruned_step=step,
                     values=None if got is None else [got])  # fmt: skip

    def _stopped(self, trial: Trial, why: str, error: str) -> None:
        run = trial._run
        if run is None:
            return
        with contextlib.suppress(ExpbookError):
            run.note(f"stopped: {why}")
        run.finish(RunStatus.INTERRUPTED, error=error)
        if not trial.lost:
            self._update(trial, state=TrialState.STOPPED, values=_last(trial))

    def _update(self, trial: Trial, **fields: Any) -> None:
        assert trial._record is not None and self.record is not None
        if not self.store.update_trial(self.record.id, trial._record.number, worker=self.worker,
                                       **fields):  # fmt: skip
            logger.warning("trial %d: this worker lost its lease; its result is not recorded",
                           trial._record.number)  # fmt: skip

    # --- the heartbeat thread --------------------------------------------------------------------

    def _beat(self) -> None:
        while not self._ended.wait(self.settings.heartbeat):
            try:
                self._beat_once()
            except ExpbookError as error:  # the store is away: keep trying
                logger.warning("sweep %r: heartbeat: %s", self.name, error)

    def _beat_once(self) -> None:
        sweep = self.record
        if sweep is None:
            return
        with self._lock:
            held = {n: t for n, t in self._live.items() if not t.lost}
        if held:
            alive = self.store.heartbeat_trials(sweep.id, sorted(held), self.worker)
            for number in set(held) - alive:
                held[number].lost = True
        for crashed in self.store.expire_trials(
            sweep.id, stale_after=self.settings.stale_after, max_attempts=self.spec.max_attempts
        ):
            logger.warning("trial %d crashed: %s", crashed.number, crashed.error)
        if self.store.get_sweep(sweep.id).state == SweepState.STOPPED:
            self.reason = self.reason or "the sweep was stopped"
            self._stopping.set()

    # --- the result ------------------------------------------------------------------------------

    def _result(self) -> SweepResult:
        sweep = self._refresh()
        if sweep is None:  # no trial was ever added
            return SweepResult(self.name, "", SweepState.RUNNING, self.metric, self.goal,
                               self.reason, (), None)  # fmt: skip
        records = self.store.list_trials(sweep.id)
        results = tuple(self._trial_result(t) for t in records)
        found = _engine.best(self.spec, records)
        best = None if found is None else next(r for r in results if r.number == found[0].number)
        return SweepResult(sweep.name, sweep.id, sweep.state, self.metric, self.goal,
                           self.reason or "done", results, best)  # fmt: skip

    def _trial_result(self, t: TrialRecord) -> TrialResult:
        config = None
        if self.typed is not None:
            with contextlib.suppress(ExpbookError, TypeError, ValueError):
                config = self.typed.build(t.params, self.spec)
        return TrialResult(t.number, t.state, dict(t.params), _engine.value(t), t.run_id,
                           t.run_number, config, t.pruned_step, t.error, self.store)  # fmt: skip


_WAIT = object()


def _qualname(objective: Any) -> str:
    module = getattr(objective, "__module__", None) or ""
    name = getattr(objective, "__qualname__", None) or type(objective).__name__
    return f"{module}.{name}" if module and module != "__main__" else name


def _default_name(objective: Any) -> str:
    base = getattr(objective, "__name__", None) or "sweep"
    base = base if pyspace._NAME.match(base) and base != "<lambda>" else "sweep"
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"


def _config_key(params: Mapping[str, Any]) -> str:
    from expbook.sweep.space import config_key

    return config_key(params)


def _value(result: Any, logged: float | None, metric: str) -> tuple[float, str | None]:
    """A finished trial's value: what the objective returned, else the run's last logged value
    of the metric; or the reason the trial failed."""
    if result is None:
        if logged is None:
            return 0.0, f"the objective returned None and its run logged no {metric!r}"
        return logged, None
    if isinstance(result, bool | str | bytes):
        return 0.0, f"the objective returned {result!r}, not a number"
    try:
        number = float(result)
    except (TypeError, ValueError):
        return 0.0, f"the objective returned {result!r}, not a number"
    if math.isnan(number):
        return 0.0, "the objective returned nan"
    return number, None


def _last(trial: Trial) -> list[float] | None:
    curve = trial._curve
    return [curve[max(curve)]] if curve else None


def _one_line(error: BaseException | None) -> str:
    if error is None:
        return "failed"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__


def _raise_in(thread_id: int, exception: type[BaseException]) -> None:
    """Raise ``exception`` in another thread at its next bytecode (CPython)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                               ctypes.py_object(exception))  # fmt: skip
