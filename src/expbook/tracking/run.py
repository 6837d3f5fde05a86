"""``Run``: the live handle user code logs to.

``log()`` is the hot path: it checks each key once per run (a set lookup afterwards), accepts
plain ``float``/``int`` values without a call, copies the dict and appends one tuple to the
writer's deque. No I/O, no lock, no thread switch. Everything else is queued for the writer too.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from expbook.errors import InvalidValueError, RunFinishedError, Terminated
from expbook.model import ArtifactRecord, RunRecord, RunStatus
from expbook.store.base import (
    Store,
    SummaryValue,
    WriteBatch,
    check_note,
    check_tag,
    parse_status,
)
from expbook.validation import (
    MAX_STEP,
    check_attachment,
    check_epoch,
    check_key,
    check_name,
    check_run_fields,
    check_step,
    check_text,
    coerce_metric,
    flatten_params,
)

if TYPE_CHECKING:
    from expbook.tracking.tracker import Tracker
    from expbook.tracking.writer import Writer


class Run:
    """A run being recorded. Use it as a context manager, or call ``finish()``.

    Created by ``expbook.start_run`` (or ``Tracker.start_run``); do not instantiate directly.
    """

    def __init__(
        self,
        tracker: Tracker,
        store: Store,
        record: RunRecord,
        writer: Writer,
        *,
        owner: bool = True,
    ) -> None:
        self._tracker = tracker
        self._owner = owner  # False under `expbook run`: the wrapper records how the run ends
        self._store = store
        self._record = record
        self._writer = writer
        self._points = writer.points
        self._high_water = writer.high_water
        self._known: set[str] = set()
        self._next_step = 0
        self._status: RunStatus | None = None
        self._signal: str | None = None  # a signal the program chose to handle itself
        self._sampler: Any = None  # expbook.system.sampler.SystemSampler, while it samples
        self.summary = Summary(self)

    def __repr__(self) -> str:
        state = self._status or "running"
        return f"<expbook.Run #{self.number} {self.name!r} ({state}) in {self._store!r}>"

    # --- identity -------------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The run's UUID (32 hex characters)."""
        return self._record.id

    @property
    def number(self) -> int:
        """The run's sequential number in its store (``#12``)."""
        return self._record.number

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def experiment(self) -> str | None:
        return self._record.experiment

    @property
    def store(self) -> Store:
        return self._store

    @property
    def status(self) -> RunStatus:
        return self._status or RunStatus.RUNNING

    # --- logging --------------------------------------------------------------------------------

    def log(
        self, metrics: Mapping[str, Any], step: int | None = None, *, epoch: float | None = None
    ) -> None:
        """Record metric values at ``step`` (default: one more than the previous step).

        Values are numbers (NaN and infinities included); keys look like ``train/loss``.

        Raises:
            InvalidKeyError: a key is not a valid metric key.
            InvalidValueError: a value is not a number, or ``epoch`` is not.
            InvalidStepError: ``step`` is negative or not an integer.
            RunFinishedError: the run has finished.
        """
        if self._status is not None:
            raise RunFinishedError(f"run #{self.number} has finished ({self._status}); "
                                   "start a new run to log more")  # fmt: skip
        if step is None:
            step = self._next_step
        elif type(step) is not int or step < 0 or step > MAX_STEP:
            step = check_step(step)
        if epoch is not None:
            epoch = check_epoch(epoch)
        known = self._known
        try:
            values = dict(metrics)
        except (TypeError, ValueError):
            raise InvalidValueError(
                f"log() takes a mapping of metric keys to numbers, not {type(metrics).__name__}"
            ) from None
        for key, value in values.items():
            if key not in known:
                known.add(check_key(key))
            if type(value) is not float:
                values[key] = coerce_metric(key, value)  # ints too: 10**400 must fail here
        self._next_step = step + 1
        points = self._points
        points.append((step, epoch, time.time(), values))
        if len(points) >= self._high_water:
            self._writer.wake()

    def log_params(self, params: Mapping[str, Any] | Any) -> None:
        """Add or change params (nested mappings are flattened to dotted keys).

        Raises:
            InvalidKeyError, InvalidValueError: a param key or value cannot be stored (text
                with NUL or lone surrogates, a number a float cannot hold).
        """
        self._submit(WriteBatch(params=flatten_params(params)))

    def note(self, text: str) -> None:
        """Add a timestamped markdown note.

        Raises:
            InvalidValueError: ``text`` is empty or holds NUL or lone surrogates.
        """
        self._submit(WriteBatch(notes=[(time.time(), check_note(text))]))

    def tag(self, *tags: str) -> None:
        self._submit(WriteBatch(tags_add={check_tag(t) for t in tags}))

    def untag(self, *tags: str) -> None:
        self._submit(WriteBatch(tags_remove={check_text(t, "tag") for t in tags}))

    def set_name(self, name: str) -> None:
        check_run_fields(name=name)
        self._submit(WriteBatch(update={"name": name}))

    def attach(self, name: str, data: bytes | str) -> None:
        """Store a small file with the run (kept compressed in the database).

        Raises:
            InvalidValueError: ``name`` is not a one-line name, or ``data`` is text with lone
                surrogates.
        """
        payload = check_attachment(name, data)
        self._submit(WriteBatch(attachments={name: payload}))

    def log_artifact(
        self, path: str | os.PathLike[str], name: str | None = None
    ) -> list[ArtifactRecord]:
        """Keep a file, or every file under a folder, with the run (docs/artifacts.md).

        The content is copied into the store's artifact location before this returns (the
        file may be overwritten or deleted right after: ``last.pt`` each epoch keeps each
        version); identical content is stored once across all runs. ``name`` is the path
        inside the run (default: the file's or folder's name); a folder's files are
        ``NAME/<path inside it>``. Logging a name again replaces it.

        Returns:
            The artifacts kept, one per file.

        Raises:
            InvalidValueError: the path does not exist, or the name is absolute or has ``..``.
            StoreError: the artifact location cannot be written.
            RunFinishedError: the run has finished.
        """
        from expbook import artifacts

        if self._status is not None:
            raise RunFinishedError(f"run #{self.number} has finished ({self._status})")
        records = artifacts.store_files(self._store, artifacts.local_files(path, name))
        self._submit(WriteBatch(artifacts=records))
        return list(records.values())

    def submit(self, batch: WriteBatch) -> None:
        """Queue any change to the run as a ``WriteBatch`` (see ``expbook.store.base``); the
        writer stores it with the next flush, in one transaction with whatever else is queued.
        A low-level method for tools that record runs (``expbook run``'s recorder); user code
        has ``log``, ``note``, ``tag``...

        Raises:
            RunFinishedError: the run has finished.
        """
        if self._status is not None:
            raise RunFinishedError(f"run #{self.number} has finished ({self._status})")
        self._writer.submit(batch)

    _submit = submit

    def sample_system(self, interval: float = 10.0, *, tree: Any = None) -> None:
        """Start recording system metrics (``system/`` keys, docs/system.md) every ``interval``
        seconds until the run ends, on a thread of their own. ``start_run`` calls it (unless
        ``system_metrics=False``); ``tree`` (an ``expbook.system.readings.ProcessTree``) is the
        processes to follow, by default this process and its children: ``expbook run``'s
        recorder passes the program's. A low-level method; calling it again does nothing.

        Raises:
            InvalidValueError: ``interval`` is not a number of seconds of at least 1.
        """
        from expbook.system.sampler import SystemSampler

        if self._sampler is None and self._status is None:
            sampler = SystemSampler(
                self._writer.submit, started=self._record.started_at, interval=interval, tree=tree
            )
            self._sampler = sampler
            sampler.start()

    def _stop_sampler(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None:
            sampler.stop()  # its last sample goes to the writer before the run's ending

    # --- life cycle -----------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything logged so far is in the store (True), or ``timeout`` passed."""
        if not self._writer.is_alive():
            return self._status is not None
        return self._writer.flush(timeout)

    def record(self) -> RunRecord:
        """The run as the store has it now (after a flush)."""
        self.flush()
        return self._store.run(self.id)

    def finish(
        self,
        status: RunStatus | str = RunStatus.FINISHED,
        *,
        error: str | None = None,
        exit_code: int | None = None,
        ended_at: float | None = None,
        timeout: float | None = None,
    ) -> None:
        """Flush everything and mark the run ended with ``status`` (``finished``, ``failed`` or
        ``interrupted``) at ``ended_at`` (default: now). Calling it again waits for the first
        call's flush; it changes nothing.

        Raises:
            InvalidValueError: ``status`` is not one a run can be finished with.
        """
        if self._status is None:
            self._stop_sampler()
            final = parse_status(status, terminal=True)
            if final is RunStatus.FINISHED and self._signal is not None:
                final, error = RunStatus.INTERRUPTED, error or f"received {self._signal}"
            self._status = final
            update: dict[str, Any] = {"status": final.value, "ended_at": ended_at or time.time()}
            if exit_code is not None:
                update["exit_code"] = exit_code
            if not self._owner:  # the wrapper writes the status; a traceback still helps
                update = {}
            if error is not None and final is not RunStatus.FINISHED:
                update["error"] = error
            self._writer.submit(WriteBatch(update=update))
        # Closing may wait on the store; the run stays known to the signal and exit hooks
        # until its data is written, so a second Ctrl-C or a SIGTERM meanwhile still waits.
        self._writer.close(timeout)
        if not self._writer.is_alive():
            self._tracker._forget(self)

    def abandon(self, timeout: float | None = None) -> None:
        """Store what is queued, then stop recording without saying how the run ended: it reads
        as crashed once its heartbeat is stale. A low-level method: ``expbook run``'s recorder
        uses it when the launcher was killed before the program ended, or when its own
        recording failed (the program's status is then not known here)."""
        self._stop_sampler()
        self._status = RunStatus.CRASHED
        self._writer.close(timeout)
        self._tracker._forget(self)

    def detach(self) -> None:
        """Stop recording in this process without touching the store or the writer thread: for
        the copy of a live handle that a forked child inherits (the parent goes on recording;
        the child could not flush it)."""
        from expbook.tracking.tracker import detached_writer

        self._writer = detached_writer()
        self._points = self._writer.points
        self._sampler = None  # its thread is the parent's

    def _note_signal(self, name: str) -> None:
        """The program received signal ``name`` and handles it itself: the run ends as
        interrupted whenever it ends. Called from a signal handler: takes no lock."""
        self._signal = name

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status, error, code = outcome(exc_type, exc, tb)
        self.finish(status, error=error, exit_code=code)


def outcome(
    exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
) -> tuple[RunStatus, str | None, int | None]:
    """The status, error text and exit code that an exception (or none) means for a run."""
    if exc_type is None:
        return RunStatus.FINISHED, None, None
    if issubclass(exc_type, KeyboardInterrupt):
        return RunStatus.INTERRUPTED, "KeyboardInterrupt", None
    if issubclass(exc_type, Terminated):
        return RunStatus.INTERRUPTED, str(exc), None
    if issubclass(exc_type, SystemExit):
        code = getattr(exc, "code", None)
        if code is None or code == 0:
            return RunStatus.FINISHED, None, 0
        if isinstance(code, int):
            return RunStatus.FAILED, f"SystemExit({code})", code
        return RunStatus.FAILED, f"SystemExit({code!r})", 1
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    return RunStatus.FAILED, text, None


class Summary:
    """Summary values set directly: ``run.summary["inference_accuracy"] = 0.2614``.

    A value set here becomes the key's latest value (``expbook ls`` shows it) without being a
    point of the series. Reading returns values set through this object in this process.
    """

    def __init__(self, run: Run) -> None:
        self._run = run
        self._values: dict[str, float] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __repr__(self) -> str:
        return f"Summary({self._values!r})"

    def set(self, key: str, value: Any, *, unit: str | None = None) -> None:
        """Set ``key`` to ``value`` (a number), optionally with a unit such as ``"%"``."""
        check_key(key)
        number = coerce_metric(key, value)
        if unit is not None:
            check_name(unit, "unit", "e.g. '%' or 'ms'")
        self._values[key] = number
        self._run._submit(WriteBatch(summary={key: SummaryValue(number, unit, time.time())}))

    def update(
        self, values: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), **more: Any
    ) -> None:
        for key, value in dict(values, **more).items():
            self.set(key, value)
