"""The sampler: a daemon thread that records system metrics into a run.

It loads psutil and NVML on its own thread (``start_run`` does not wait for them), samples at
once, every ``interval`` seconds and once more when stopped, and hands the points to the run's
writer as ``WriteBatch`` objects (a deque append: it never blocks ``run.log`` and never writes
to the store itself). What it found about GPUs goes into the run's ``system.json`` attachment.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from expbook.errors import InvalidValueError
from expbook.store.base import WriteBatch
from expbook.store.chunks import Points
from expbook.system.coarsen import FULL_SAMPLES, Coarsener, Point
from expbook.system.readings import ProcessTree, Readings

DEFAULT_INTERVAL = 10.0
MIN_INTERVAL = 1.0
STOP_TIMEOUT = 5.0
"""How long ``stop`` waits for the last sample (NVML can be slow on a busy machine)."""


def system_settings(enabled: bool | None, interval: float | None) -> float | None:
    """The interval to sample at, or None when system metrics are off: the arguments, else
    ``EXPBOOK_SYSTEM_METRICS`` (``0``/``false``/``off`` turns them off) and
    ``EXPBOOK_SYSTEM_INTERVAL``, else on at ``DEFAULT_INTERVAL``.

    Raises:
        InvalidValueError: the interval (or the variable) is not a number of seconds >= 1.
    """
    if enabled is None:
        text = os.environ.get("EXPBOOK_SYSTEM_METRICS", "").strip().lower()
        enabled = text not in ("0", "false", "off", "no")
    if not enabled:
        return None
    if interval is None:
        text = os.environ.get("EXPBOOK_SYSTEM_INTERVAL", "").strip()
        if not text:
            return DEFAULT_INTERVAL
        try:
            interval = float(text)
        except ValueError:
            raise InvalidValueError(
                f"EXPBOOK_SYSTEM_INTERVAL={text!r} is not a number of seconds"
            ) from None
    return check_interval(interval)


def check_interval(interval: Any) -> float:
    """``interval`` as seconds.

    Raises:
        InvalidValueError: not a number of seconds of at least ``MIN_INTERVAL``.
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float):
        raise InvalidValueError(f"system metrics interval {interval!r}: give a number of seconds")
    if not interval >= MIN_INTERVAL or interval != interval or interval == float("inf"):
        raise InvalidValueError(
            f"system metrics interval {interval!r}: give at least {MIN_INTERVAL:g} second"
        )
    return float(interval)


class SystemSampler:
    """Samples ``tree`` every ``interval`` seconds into a run through ``submit``.

    Args:
        submit: queues a ``WriteBatch`` for the run (the writer's ``submit``).
        started: the run's start (Unix time); steps are whole seconds since then.
        interval: seconds between samples (see ``check_interval``).
        tree: the processes to follow (default: this process and its descendants).
    """

    def __init__(
        self,
        submit: Callable[[WriteBatch], None],
        *,
        started: float,
        interval: float = DEFAULT_INTERVAL,
        tree: ProcessTree | None = None,
    ) -> None:
        self.interval = check_interval(interval)
        self.readings = Readings(tree or ProcessTree(os.getpid()))
        self.samples = 0
        self._submit = submit
        self._coarsener = Coarsener(started, self.interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="expbook-system", daemon=True)
        self._warned = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Take the last sample, hand over what is left and end the thread (waits up to
        ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.readings.open()
            self._describe()
            self.sample()
            while not self._stop.wait(self.interval):
                self.sample()
            self.sample()
            rewritten = self._coarsener.close(time.time())
            if rewritten is not None:
                self._hand_over([], rewritten)
            self._describe()
        except Exception as exc:  # never the program's problem: say it once and stop
            self._warn(exc)
        finally:
            self.readings.close()

    def sample(self) -> None:
        """Take one sample now and hand over the points it completes (the thread's work)."""
        try:
            values = self.readings.sample()
        except Exception as exc:
            self._warn(exc)
            return
        self.samples += 1
        self._hand_over(*self._coarsener.add(time.time(), values))

    def _hand_over(self, new: list[Point], rewritten: list[Point] | None) -> None:
        """Queue new points, or the whole coarsened series of every key (which replaces what
        the store holds, and what was queued before)."""
        points = rewritten if rewritten is not None else new
        if not points:
            return
        series: dict[str, Points] = {}
        for step, at, values in points:
            for key, value in values.items():
                series.setdefault(key, Points()).append(step, value, at, None)
        if rewritten is not None:
            self._submit(WriteBatch(replaced=series))
        else:
            self._submit(WriteBatch(points=series))

    def _describe(self) -> None:
        """What a reader of the run needs to interpret its system series: ``system.json``."""
        info = {
            "interval": self.interval,
            "full_resolution_samples": FULL_SAMPLES,
            "rewrites": self._coarsener.rewrites,
            "samples": self.samples,
            "gpu_status": self.readings.gpu_status,
            "gpus_used": sorted(self.readings.gpus.used),
            "cpus": os.cpu_count(),
        }
        payload = json.dumps(info, indent=1).encode()
        self._submit(WriteBatch(attachments={"system.json": payload}))

    def _warn(self, error: Exception) -> None:
        if not self._warned:
            self._warned = True
            print(f"expbook: system metrics: {error!r}", file=sys.stderr)
