"""``Tracker``: starts runs on a store and ends them however the process ends.

How each ending is recorded:

- the ``with`` block exits normally, or ``run.finish()``: ``finished``;
- an exception escapes the ``with`` block: ``failed`` with the traceback;
  ``KeyboardInterrupt`` (Ctrl-C, SIGINT): ``interrupted``; ``SystemExit(n)``: failed with exit
  code ``n`` (finished for 0);
- the interpreter exits with runs still open (no ``with``): an ``atexit`` hook finishes them,
  ``failed``/``interrupted`` if an uncaught exception is ending the process (a plain
  ``sys.exit(3)`` outside a ``with`` block is not seen: it reads as finished);
- SIGTERM or SIGHUP with the default action: ``Terminated`` is raised in the main thread (as
  Ctrl-C raises ``KeyboardInterrupt``); runs end ``interrupted`` as it unwinds, and at exit the
  process re-sends itself the signal, so it dies by it as it would have;
- SIGTERM or SIGHUP that the program handles itself (graceful preemption): the handler flushes
  and calls the program's handler; runs go on and end ``interrupted`` whenever they end;
- ``kill -9``, a power cut: whatever was flushed stays; the store reports the run as ``crashed``
  once its heartbeat is four intervals old.

A forked child (``multiprocessing``, ``DataLoader`` workers) inherits handles it cannot flush: its
copies stop recording instead of buffering forever. Start a run in the child to log from it.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import sys
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from expbook.errors import InvalidValueError, Terminated
from expbook.model import RunRecord, RunStatus
from expbook.runner.spool import Spool
from expbook.store import open_store, resolve_url
from expbook.store.base import RunSpec, Store, WriteBatch
from expbook.storedir import store_files
from expbook.tracking.run import Run, outcome
from expbook.tracking.writer import Writer
from expbook.validation import check_run_fields, flatten_params

DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_HEARTBEAT_INTERVAL = 5.0
SIGNAL_FLUSH_TIMEOUT = 10.0


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InvalidValueError(f"{name}={text!r} is not a number of seconds") from None
    if not value > 0:
        raise InvalidValueError(f"{name}={text!r} must be a positive number of seconds")
    return value


class Tracker:
    """Starts runs on one default store.

    Args:
        store: a ``Store``, or a location for ``expbook.open_store`` (default: ``EXPBOOK_STORE``
            or ``.expbook/expbook.db`` at the git root). Opened on first use.
    """

    def __init__(self, store: Store | str | os.PathLike[str] | None = None) -> None:
        self._location = None if isinstance(store, Store) else store
        self._stores: dict[str, Store] = {}
        if isinstance(store, Store):
            self._stores[store.url] = store
            self._location = store.url
        self._active: list[Run] = []
        # Re-entrant: the signal handler runs on the main thread and may need it while the
        # interrupted code holds it.
        self._lock = threading.RLock()
        _TRACKERS.add(self)

    def store(self, location: Store | str | os.PathLike[str] | None = None) -> Store:
        """The store at ``location`` (default: this tracker's), opened once and cached."""
        if isinstance(location, Store):
            return location
        url = resolve_url(location if location is not None else self._location)
        with self._lock:
            store = self._stores.get(url)
        if store is not None:
            return store
        opened = open_store(url)  # slow (a connection, maybe a migration): not under the lock
        with self._lock:
            store = self._stores.setdefault(url, opened)
        if store is not opened:
            opened.close()
        return store

    def active_run(self) -> Run | None:
        """The most recently started run that has not finished, or None."""
        with self._lock:
            return self._active[-1] if self._active else None

    def start_run(
        self,
        name: str | None = None,
        *,
        experiment: str | None = None,
        params: Any = None,
        tags: list[str] | tuple[str, ...] = (),
        parent: Run | RunRecord | str | int | None = None,
        kind: str = "train",
        store: Store | str | os.PathLike[str] | None = None,
        capture: bool = True,
        system_metrics: bool | None = None,
        system_metrics_interval: float | None = None,
    ) -> Run:
        """Create a run and start recording it. See ``expbook.start_run``.

        Under ``expbook run`` (``EXPBOOK_RUN_ID`` set), the first run started on the wrapper's
        store records into the wrapper's run instead of creating a second one (its recorder
        samples the system metrics); later ones get it as their default parent.
        """
        from expbook.system.sampler import system_settings

        check_run_fields(name=name, kind=kind, tags=tags)
        interval = system_settings(system_metrics, system_metrics_interval)
        flat = flatten_params(params) if params is not None else {}
        target = self.store(store)
        spec = RunSpec(
            name=name or default_run_name(),
            experiment=experiment,
            parent=_parent_id(target, parent),
            kind=kind,
            params=flat,
            tags=list(tags),
            command=list(getattr(sys, "orig_argv", sys.argv)),
            cwd=os.getcwd(),
            pid=os.getpid(),
            hostname=socket.gethostname(),
        )
        wrapper = _wrapper_run(target)
        if wrapper is None:
            if spec.parent is None:  # under expbook run, later runs derive from its run
                spec.parent = _state.get("attached") or _wrapper_id(target)
            run = self.begin(spec, store=target, capture=capture)
            if interval is not None:
                run.sample_system(interval)
            return run
        _state["attached"] = spec.id = wrapper
        run = self.begin(spec, store=target, capture=False, owner=False)
        run.submit(_fields_for_wrapper(spec, name=name, experiment=experiment, kind=kind))
        return run

    def repeat(
        self,
        count: int,
        name: str | None = None,
        *,
        seed_param: str = "seed",
        first_seed: int | None = None,
        params: Any = None,
        tags: list[str] | tuple[str, ...] = (),
        **options: Any,
    ) -> Iterator[tuple[int, Run]]:
        """Start ``count`` runs of one configuration, one after the other, each with the next
        seed in param ``seed_param``. See ``expbook.repeat``."""
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InvalidValueError(f"repeat count {count!r}: give a positive integer")
        flat = flatten_params(params) if params is not None else {}
        start = first_seed if first_seed is not None else flat.get(seed_param, 0)
        if not isinstance(start, int) or isinstance(start, bool):
            raise InvalidValueError(f"seed {seed_param}={start!r}: give an integer first_seed")
        from expbook.report.stats import is_seed

        extra = [] if is_seed(seed_param) else [f"seed:{seed_param}"]
        for seed in range(start, start + count):
            run = self.start_run(name, params={**flat, seed_param: seed},
                                 tags=[*tags, *extra], **options)  # fmt: skip
            try:
                yield seed, run
            finally:
                if run.status is RunStatus.RUNNING:  # the caller did not end it
                    run.finish()

    def begin(
        self,
        spec: RunSpec,
        *,
        store: Store | str | os.PathLike[str] | None = None,
        capture: bool = True,
        packages: bool = True,
        owner: bool = True,
    ) -> Run:
        """Start recording the run ``spec`` describes on ``store`` (default: this tracker's):
        created, or found if ``spec.id`` names an existing run. ``capture``: git state and
        host (and, with ``packages``, this interpreter's installed packages). With
        ``owner=False`` another process decides how the run ends (``expbook run``); this handle
        only adds data."""
        spec.heartbeat_interval = _env_seconds(
            "EXPBOOK_HEARTBEAT_INTERVAL", DEFAULT_HEARTBEAT_INTERVAL
        )
        flush = _env_seconds("EXPBOOK_FLUSH_INTERVAL", DEFAULT_FLUSH_INTERVAL)
        target = self.store(store)
        _install_process_hooks()
        record = target.create_run(spec)
        prepare = partial(
            capture_context, spec.cwd, packages=packages, exclude=store_files(target.url)
        )
        writer = Writer(
            target,
            record.id,
            flush_interval=flush,
            heartbeat_interval=spec.heartbeat_interval,
            prepare=prepare if capture else None,
        )
        run = Run(self, target, record, writer, owner=owner)
        with self._lock:
            self._active.append(run)
        _LIVE.append(run)
        writer.start()
        return run

    def _forget(self, run: Run) -> None:
        with self._lock:
            if run in self._active:
                self._active.remove(run)
        if run in _LIVE:
            _LIVE.remove(run)

    def _after_fork_in_child(self) -> None:
        self._active.clear()
        self._lock = threading.RLock()
        for store in self._stores.values():
            reset = getattr(store, "after_fork", None)
            if reset is not None:
                reset()


def _wrapper_id(store: Store) -> str | None:
    """The run of the ``expbook run`` this process runs under, if it records to ``store``."""
    run_id = os.environ.get("EXPBOOK_RUN_ID")
    return run_id if run_id and store.url == resolve_url(None) else None


def _wrapper_run(store: Store) -> str | None:
    """The wrapper's run, if this process may record into it: the first process of the
    program to start a run on that store claims it (an ``attached`` marker in the spool,
    created atomically); later runs, and other processes (an evaluation script the training
    script starts, the other ranks of a distributed job), get runs of their own."""
    run_id = _wrapper_id(store)
    if run_id is None or _state.get("attached"):
        return None
    spool = _wrapper_spool()
    if spool is not None and not spool.claim_attached():
        return None
    return run_id


def _wrapper_spool() -> Spool | None:
    path = os.environ.get("EXPBOOK_SPOOL")
    return Spool(path) if path else None


def _fields_for_wrapper(
    spec: RunSpec, *, name: str | None, experiment: str | None, kind: str
) -> WriteBatch:
    """What the program's ``start_run`` adds to the wrapper's run: its params and tags, and
    the name, experiment and kind it gives — unless ``expbook run``'s command line gave them
    (the command line wins)."""
    spool = _wrapper_spool()
    meta = spool.meta() if spool is not None else None
    given = (meta or {}).get("options", {})
    update: dict[str, Any] = {}
    if name and not given.get("name"):
        update["name"] = name
    if experiment and not given.get("experiment"):
        update["experiment"] = experiment
    if kind != "train" and not given.get("kind"):
        update["kind"] = kind
    return WriteBatch(params=dict(spec.params), tags_add=set(spec.tags), update=update)


def default_run_name() -> str:
    """The script's name: ``train`` for ``python train.py``, the package for ``python -m pkg``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if not argv0 or argv0 in ("-c", "-m", "-"):
        return "run"
    path = Path(argv0)
    if path.stem == "__main__":
        return path.parent.name or "run"
    if path.stem == "ipykernel_launcher":
        return "notebook"
    return path.stem or "run"


def _parent_id(store: Store, parent: Run | RunRecord | str | int | None) -> str | None:
    if parent is None:
        return None
    if isinstance(parent, Run | RunRecord):
        return parent.id
    return store.resolve_run(parent)


def capture_context(
    cwd: str | None = None, *, packages: bool = True, exclude: Sequence[str] = ()
) -> WriteBatch:
    """Git state (``exclude``: the store's own files, see `capture_git`), host, GPUs and
    installed packages, as a batch (run on the writer thread)."""
    from expbook.tracking.capture import capture_git, capture_host, capture_packages

    batch = WriteBatch()
    git = capture_git(cwd or os.getcwd(), exclude=exclude)
    if git is not None:
        batch.update.update(
            git_commit=git.commit, git_branch=git.branch, git_remote=git.remote,
            git_dirty=git.dirty,
        )  # fmt: skip
        if git.diff:
            batch.attachments["git.diff"] = git.diff.encode("utf-8", "replace")
        if git.untracked:
            batch.attachments["git.untracked"] = "\n".join(git.untracked).encode()
    batch.update["host"] = capture_host()
    if packages:
        batch.attachments["packages.txt"] = "\n".join(capture_packages()).encode()
    return batch


# --- process-wide hooks -------------------------------------------------------------------------

_LIVE: list[Run] = []
"""Open runs of every tracker in this process, oldest first (what the hooks must end)."""
_TRACKERS: weakref.WeakSet[Tracker] = weakref.WeakSet()
_state: dict[str, Any] = {"installed": False, "signals": False}
_uncaught: list[tuple[type[BaseException], BaseException, TracebackType | None]] = []
_previous: dict[int, Any] = {}


def _install_process_hooks() -> None:
    if not _state["installed"]:
        _state["installed"] = True
        atexit.register(_at_exit)
        previous_hook = sys.excepthook

        def excepthook(kind, value, tb):  # type: ignore[no-untyped-def]
            _uncaught.append((kind, value, tb))
            if not issubclass(kind, Terminated):  # dying by a signal prints nothing
                previous_hook(kind, value, tb)

        sys.excepthook = excepthook
        os.register_at_fork(after_in_child=_after_fork_in_child)
    if not _state["signals"] and threading.current_thread() is threading.main_thread():
        _state["signals"] = True
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue  # the process ignores it: so do we
            _previous[signum] = previous
            signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGHUP. A Python signal handler runs on the main thread between two bytecodes
    of whatever it interrupted — possibly inside a lock it would need — so it does no work
    itself: it raises ``Terminated`` (the code unwinds, releasing locks, and the run ends in
    ``__exit__`` or at exit), or notes the signal and calls the program's own handler."""
    name = signal.Signals(signum).name
    previous = _previous.get(signum)
    if callable(previous):
        # The program handles this signal itself (checkpoint, then exit; or stop at the end of
        # the epoch): its runs end as interrupted whenever they end.
        for run in list(_LIVE):
            run._note_signal(name)
        previous(signum, frame)
        return
    if _state.get("exiting"):
        _state["signal"] = signum  # already flushing at exit: die by it once that is done
        return
    if not _LIVE:
        _die(signum)
    raise Terminated(signum, name)


def _die(signum: int) -> None:
    """End the process by ``signum`` with its default action, as it would without expbook."""
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _at_exit() -> None:
    _state["exiting"] = True
    status, error, code = RunStatus.FINISHED, None, None
    if _uncaught:
        status, error, code = outcome(*_uncaught[-1])
        terminated = _uncaught[-1][1]
        if isinstance(terminated, Terminated):
            _state.setdefault("signal", terminated.signum)
    timeout = SIGNAL_FLUSH_TIMEOUT if "signal" in _state else None
    for run in list(reversed(_LIVE)):
        run.finish(status, error=error, exit_code=code, timeout=timeout)
    if "signal" in _state:
        _die(int(_state["signal"]))


class _Detached:
    """Stands in for the writer of a run inherited through fork: records nothing."""

    points: deque[Any] = deque(maxlen=0)
    high_water = 1 << 62

    def submit(self, batch: WriteBatch) -> None:
        pass

    def wake(self) -> None:
        pass

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> bool:
        return True

    def is_alive(self) -> bool:
        return False


def detached_writer() -> Any:
    """A writer that records nothing, for handles a forked child inherits."""
    return _Detached()


def _after_fork_in_child() -> None:
    for run in _LIVE:
        run.detach()
    _LIVE.clear()
    _uncaught.clear()
    for tracker in _TRACKERS:
        tracker._after_fork_in_child()
