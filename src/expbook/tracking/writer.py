"""The background writer: the only thread that writes a run's data to the store.

``Run.log`` appends ``(step, epoch, time, metrics)`` tuples to a deque and returns; everything else
(params, notes, tags, summary values, the final status) goes through ``submit`` as a
``WriteBatch``. The writer wakes every ``flush_interval`` seconds (or when asked), drains both,
and writes one batch per wake-up in one transaction, with a heartbeat every
``heartbeat_interval``. A write that fails keeps its data and is retried with the next wake-up, so
a slow or briefly unavailable store delays data but does not drop it.
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
        self._warned = False
        self._deleted = False
        self.dropped_points = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=f"expbook-writer-{run_id[:8]}")
        self._thread.daemon = True  # the atexit hook stops it; never keep a dying process alive

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Ask for a flush now (the buffer is large). If the thread has stopped (it gave up on
        the store), drop what is buffered instead, so memory stays bounded."""
        if self._thread.is_alive():
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
            return self._flushed.wait_for(lambda: self._completed >= target, timeout=timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Write everything (including batches submitted before) and stop the thread."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    # --- the thread -----------------------------------------------------------------------------

    def _loop(self) -> None:
        pending = WriteBatch()
        if self._prepare is not None:
            pending.merge(self._safely(self._prepare) or WriteBatch())
        last_heartbeat = time.time()
        failures = 0
        while True:
            with self._flushed:
                target = self._requested
            stopping = self._stopping
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
            if pending.is_empty():
                with self._flushed:
                    self._completed = max(self._completed, target)
                    self._flushed.notify_all()
                if stopping and not self.points and not self._ops:
                    return
            elif self._deleted or (stopping and failures >= STOP_ATTEMPTS):
                self._give_up(pending)
                return
            delay = min(self._flush_interval * (2**failures), 30.0)
            self._wake.wait(delay)
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
        try:
            self.store.write(self.run_id, batch)
            return True
        except RunNotFoundError as exc:  # deleted while running: retrying cannot help
            self.error = exc
            self._deleted = True
            return False
        except Exception as exc:
            self.error = exc
            if not self._warned:
                self._warned = True
                print(
                    f"expbook: cannot write run {self.run_id[:8]} to the store yet "
                    f"({exc}); keeping {batch.point_count()} points in memory and retrying",
                    file=sys.stderr,
                )
            return False

    def _give_up(self, batch: WriteBatch) -> None:
        self.dropped_points = batch.point_count()
        print(
            f"expbook: giving up on run {self.run_id[:8]}: {self.error}; "
            f"{self.dropped_points} points and other changes were not saved",
            file=sys.stderr,
        )
        with self._flushed:
            self._completed = self._requested
            self._flushed.notify_all()

    def _safely(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception:
            print("expbook: capturing the run context failed:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return None
