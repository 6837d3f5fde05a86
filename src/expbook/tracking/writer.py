"""The background writer: the only thread that writes a run's data to the store.

``Run.log`` appends ``(step, epoch, time, metrics)`` tuples to a deque and returns; everything else
(params, notes, tags, summary values, the final status) goes through ``submit`` as a
``WriteBatch``. The writer wakes every ``flush_interval`` seconds (or when asked), drains both,
and writes one batch per wake-up in one transaction, with a heartbeat at least every
``heartbeat_interval``.

What happens when a write fails:

- the store is busy or unreachable: the batch is kept, later data is merged into it, and the
  write is retried with backoff, so a slow store delays data but does not drop it;
- one part of the batch cannot be stored (say, text the database refuses): the points and the
  heartbeat are written on their own, and only the part that fails is dropped, with a message;
- the run was deleted: recording stops at once, with a message.

The thread never dies of an error: anything unexpected is reported once on stderr and the loop
goes on.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any

from expbook.errors import RunNotFoundError
from expbook.store.base import Store, WriteBatch
from expbook.store.chunks import Points

Item = tuple[int, float | None, float, dict[str, float]]

STOP_ATTEMPTS = 5
"""Writes tried after the run ended before giving up (backoff 0.5 s, 1 s, 2 s, 4 s, 8 s)."""
WRITE_TIMEOUT = 10.0
"""How long one write may wait on a busy store before the writer regains control."""


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
                pending.merge(self._drain())
                now = time.time()
                if now - last_heartbeat >= self._heartbeat_interval or not pending.is_empty():
                    pending.heartbeat = now
                if not pending.is_empty():
                    if self._write(pending):
                        pending = WriteBatch()
                        last_heartbeat = now
                        failures = 0
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

    def _write(self, batch: WriteBatch) -> bool:
        """Write ``batch``; True when it no longer needs retrying."""
        if self._try(batch):
            return True
        if self._deleted:
            return False
        core, rest = _split(batch)
        # Is it the store, or something in this batch? The points alone tell.
        if not core.is_empty() and not rest.is_empty() and self._try(core):
            self._warn(
                f"dropped {_describe(rest)}",
                f"could not save {_describe(rest)} of run {self.run_id[:8]} ({self.error}); "
                "metrics are saved, this part is dropped",
            )
            return True
        self._warn(
            "store",
            f"cannot write run {self.run_id[:8]} to the store yet ({self.error}); keeping "
            f"{batch.point_count()} points in memory and retrying",
        )
        return False

    def _try(self, batch: WriteBatch) -> bool:
        try:
            self.store.write(self.run_id, batch, timeout=WRITE_TIMEOUT)
            return True
        except RunNotFoundError as exc:  # deleted while running: retrying cannot help
            self.error = exc
            self._deleted = True
        except Exception as exc:
            self.error = exc
        return False

    def _give_up(self, batch: WriteBatch) -> None:
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


def _split(batch: WriteBatch) -> tuple[WriteBatch, WriteBatch]:
    """(points and heartbeat, everything else): the part that is only numbers, and the rest."""
    core = WriteBatch(points=batch.points, heartbeat=batch.heartbeat)
    rest = WriteBatch(
        params=batch.params, tags_add=batch.tags_add, tags_remove=batch.tags_remove,
        notes=batch.notes, summary=batch.summary, attachments=batch.attachments,
        output=batch.output, update=batch.update,
    )  # fmt: skip
    return core, rest


def _describe(batch: WriteBatch) -> str:
    parts = {
        "params": batch.params, "tags": batch.tags_add or batch.tags_remove,
        "notes": batch.notes, "summary values": batch.summary,
        "attachments": batch.attachments, "output": batch.output, "run fields": batch.update,
    }  # fmt: skip
    return ", ".join(name for name, value in parts.items() if value) or "changes"
