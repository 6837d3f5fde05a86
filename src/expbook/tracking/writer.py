"""The background writer: the only thread that writes a run's data to the store.

``Run.log`` appends ``(step, epoch, time, metrics)`` tuples to a deque and returns; everything else
(params, notes, tags, summary values, the final status) goes through ``submit`` as a
``WriteBatch``. The writer wakes every ``flush_interval`` seconds (or when asked), drains both,
and writes one batch per wake-up in one transaction, with a heartbeat at least every
``heartbeat_interval``.

What happens when a write fails (the store says which kind of failure it is):

- the store is busy or unreachable (``StoreUnavailableError``: a lost connection, a file locked
  by another process, a full disk): the whole batch is kept and retried alone, with the same
  ``batch_id``, with backoff for as long as the run is live, and later data waits in the queue
  (the failed write may have been applied: the store skips a batch id it has applied, but could
  not tell the earlier part of a merged batch from the later); nothing is printed unless the
  outage lasts ``OUTAGE_WARNING`` seconds;
- the database refuses something in the batch (``StoreRefusedError`` and other errors): if a
  heartbeat alone is refused too, the store refuses everything and the batch is kept as for an
  outage; otherwise the batch is split in halves until the one item that fails on its own is
  found, and only that item is dropped, with a message naming it. The run's status, end time
  and exit code are never dropped;
- the run was deleted, or the store file deleted or replaced (``StoreReplacedError``):
  recording stops at once, with one message.

The thread never dies of an error: anything unexpected is reported once on stderr and the loop
goes on.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from expbook.errors import RunNotFoundError, StoreReplacedError, StoreUnavailableError
from expbook.store.base import RUN_END, Store, WriteBatch
from expbook.store.chunks import Points

Item = tuple[int, float | None, float, dict[str, float]]

STOP_ATTEMPTS = 5
"""Writes tried after the run ended before giving up (backoff 0.5 s, 1 s, 2 s, 4 s, 8 s)."""
WRITE_TIMEOUT = 10.0
"""How long one write may wait on a busy store before the writer regains control."""
OUTAGE_WARNING = 60.0
"""Seconds the store may stay unavailable before the writer says so (once per outage)."""


class Writer:
    """Flushes one run's buffered data to a store from a daemon thread."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        flush_interval: float,
        heartbeat_interval: float,
        prepare: Callable[[], WriteBatch | None] | None = None,
        high_water: int = 100_000,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.points: deque[Item] = deque()
        self.high_water = high_water
        self._ops: deque[WriteBatch] = deque()
        self._flush_interval = flush_interval
        self._heartbeat_interval = heartbeat_interval
        self._prepare = prepare
        self._wake = threading.Event()
        self._stopping = False
        self._flushed = threading.Condition()
        self._requested = 0
        self._completed = 0
        self._warned: set[str] = set()
        self._deleted = False
        self._outage: float | None = None  # when the store became unavailable (monotonic)
        self.dropped_points = 0
        self.error: BaseException | None = None
        # Waiting for the thread uses this event, not Thread.join: when an exception from a
        # signal handler (Terminated, KeyboardInterrupt) interrupts join(), CPython marks the
        # still-running thread as stopped, and every later join() returns at once.
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"expbook-writer-{run_id[:8]}")
        self._thread.daemon = True  # the atexit hook stops it; never keep a dying process alive

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Ask for a flush now (the buffer is large). If the thread has stopped (it gave up on
        the store), drop what is buffered instead, so memory stays bounded."""
        if self.is_alive():
            self._wake.set()
        else:
            self.dropped_points += len(self.points)
            self.points.clear()

    def submit(self, batch: WriteBatch) -> None:
        """Queue non-point changes; they are written with the next flush."""
        self._ops.append(batch)

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far; True when it was written within ``timeout``."""
        with self._flushed:
            self._requested += 1
            target = self._requested
        self._wake.set()
        with self._flushed:
            return self._flushed.wait_for(
                lambda: self._completed >= target or self._done.is_set(), timeout
            )

    def close(self, timeout: float | None = None) -> bool:
        """Write everything (including batches submitted before) and stop the thread."""
        self._stopping = True
        self._wake.set()
        return self._done.wait(timeout)

    def is_alive(self) -> bool:
        return self._thread.ident is not None and not self._done.is_set()

    # --- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._done.set()
            with self._flushed:
                self._flushed.notify_all()

    def _loop(self) -> None:
        pending = WriteBatch()
        last_heartbeat = 0.0  # the first wake-up writes a heartbeat at once
        failures = 0
        while True:
            with self._flushed:
                target = self._requested
            stopping = self._stopping
            try:
                retried = not pending.is_empty()
                if not retried:  # else it may have been applied: retry it alone, with its id
                    pending = self._drain()
                    pending.batch_id = uuid.uuid4().hex
                now = time.time()
                if now - last_heartbeat >= self._heartbeat_interval or not pending.is_empty():
                    pending.heartbeat = now
                if not pending.is_empty():
                    pending = self._write(pending)
                    if pending.is_empty():
                        last_heartbeat = now
                        failures = 0
                        if retried:
                            continue  # now what was queued meanwhile
                    else:
                        failures += 1
                if self._prepare is not None:  # after the first heartbeat: it may take a while
                    prepare, self._prepare = self._prepare, None
                    self.submit(self._safely(prepare) or WriteBatch())
                    continue
            except Exception as exc:  # a bug: report it, keep the thread and the data alive
                self._warn("bug", f"internal error in the writer: {exc!r}", with_traceback=True)
                failures += 1
            if pending.is_empty():
                with self._flushed:
                    self._completed = max(self._completed, target)
                    self._flushed.notify_all()
                if stopping and not self.points and not self._ops:
                    return
            elif self._deleted or (stopping and failures >= STOP_ATTEMPTS):
                self._give_up(pending)
                return
            wait = min(self._flush_interval, self._heartbeat_interval / 2)
            self._wake.wait(min(wait * (2**failures), 30.0))
            self._wake.clear()

    def _drain(self) -> WriteBatch:
        batch = WriteBatch()
        ops = self._ops
        while ops:
            batch.merge(ops.popleft())
        series: dict[str, Points] = {}
        popleft = self.points.popleft
        while True:
            try:
                step, epoch, at, metrics = popleft()
            except IndexError:
                break
            for key, value in metrics.items():
                points = series.get(key)
                if points is None:
                    points = series[key] = Points()
                points.append(step, value, at, epoch)
        if series:
            batch.merge(WriteBatch(points=series))
        return batch

    def _write(self, batch: WriteBatch) -> WriteBatch:
        """Write ``batch``; returns what still needs writing (empty when all is done)."""
        error = self._try(batch)
        if error is None:
            self._store_is_back()
            return WriteBatch()
        if self._deleted:
            return batch
        if _store_down(error):
            self._note_outage(error, batch)
            return batch
        # Is it the store, or something in this batch? A heartbeat alone tells.
        probe = self._try(WriteBatch(heartbeat=batch.heartbeat or time.time()))
        if probe is not None:
            if not self._deleted:
                self._note_outage(probe, batch)
            return batch
        return self._write_parts(batch.parts())

    def _write_parts(self, parts: list[tuple[str, WriteBatch]]) -> WriteBatch:
        """Write ``parts`` in halves, down to single items; drop an item only when it fails on
        its own and the store is fine. Returns what is left to retry (empty when done)."""
        todo = [parts[len(parts) // 2 :], parts[: len(parts) // 2]]  # the whole just failed
        while todo:
            group = todo.pop()
            batch = _merged(group)
            batch.batch_id = uuid.uuid4().hex
            error = self._try(batch) if group else None
            if error is None:
                continue
            if len(group) > 1 and not (self._deleted or _store_down(error)):
                todo += [group[len(group) // 2 :], group[: len(group) // 2]]
            elif not self._drop(*group[0], batch, error):
                # ``batch`` may have been applied: it is retried alone, with its id; the parts
                # not tried yet go back to the queue, first, to be written after it.
                rest = [item for later in reversed(todo) for item in later]
                if rest:
                    self._ops.appendleft(_merged(rest))
                return batch
        self._store_is_back()
        return WriteBatch()

    def _drop(self, what: str, item: WriteBatch, batch: WriteBatch, error: Exception) -> bool:
        """Drop ``item``, which failed on its own with ``error``; False when it must be kept
        (the store became unavailable, or it is the run's ending)."""
        if self._deleted:
            return False
        if _store_down(error):
            self._note_outage(error, batch)
            return False
        if set(item.update) & set(RUN_END):
            self._warn("ending", f"cannot save {what} of run {self.run_id[:8]} yet: "
                       f"{_reason(error)}; retrying")  # fmt: skip
            return False
        self._warn(f"dropped {what}", f"dropped {what} of run {self.run_id[:8]}: "
                   f"{_reason(error)}")  # fmt: skip
        return True

    def _try(self, batch: WriteBatch) -> Exception | None:
        """Write ``batch``; the error when it failed."""
        try:
            self.store.write(self.run_id, batch, timeout=WRITE_TIMEOUT, deferred=True)
            return None
        except (RunNotFoundError, StoreReplacedError) as exc:  # retrying cannot help
            self.error = exc
            self._deleted = True
            return exc
        except Exception as exc:
            self.error = exc
            return exc

    def _note_outage(self, error: Exception, batch: WriteBatch) -> None:
        """The store cannot take the batch now: say so once the outage lasts."""
        now = time.monotonic()
        if self._outage is None:
            self._outage = now
        if now - self._outage >= OUTAGE_WARNING or not _store_down(error):
            self._warn(
                "store",
                f"cannot write run {self.run_id[:8]} to the store yet ({error}); keeping "
                f"{batch.point_count()} points in memory and retrying",
            )

    def _store_is_back(self) -> None:
        if self._outage is not None and "store" in self._warned:
            self._warned.discard("store")
            print(f"expbook: run {self.run_id[:8]}: the store is back, nothing was lost",
                  file=sys.stderr)  # fmt: skip
        self._outage = None

    def _give_up(self, batch: WriteBatch) -> None:
        batch.merge(self._drain())  # what waited behind it is lost too
        self.dropped_points = batch.point_count()
        self._warn(
            "give up",
            f"giving up on run {self.run_id[:8]}: {self.error}; "
            f"{self.dropped_points} points and other changes were not saved",
        )
        with self._flushed:
            self._completed = self._requested
            self._flushed.notify_all()

    def _warn(self, kind: str, message: str, *, with_traceback: bool = False) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        print(f"expbook: {message}", file=sys.stderr)
        if with_traceback:
            traceback.print_exc(file=sys.stderr)

    def _safely(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception:
            self._warn("capture", "capturing the run context failed:", with_traceback=True)
            return None


def _merged(parts: list[tuple[str, WriteBatch]]) -> WriteBatch:
    merged = WriteBatch()
    for _, part in parts:
        merged.merge(part)
    return merged


def _store_down(error: Exception) -> bool:
    """The store cannot be written now, whatever the batch (retry it all later)."""
    return isinstance(error, StoreUnavailableError)


def _reason(error: Exception) -> str:
    """The database's own words when it refused a change, else the error's message."""
    return getattr(error, "reason", None) or str(error) or type(error).__name__
