"""Which samples become stored points: full resolution for the first hour, then coarser.

The store never rewrites a point once written (a series only grows), so the bound on a long
run's points is kept as the samples arrive: the first ``FULL_SAMPLES`` samples (an hour at the
default 10 s) are stored as they are; after that, samples are merged into buckets whose width
doubles each time the run's age doubles. Between ages ``A`` and ``2A`` (``A`` = one hour at the
default interval) the width is 2 intervals, between ``2A`` and ``4A`` it is 4 intervals, and so
on: ``FULL_SAMPLES / 2`` points per doubling. A run of age ``T`` keeps at most
``FULL_SAMPLES + FULL_SAMPLES / 2 * ceil(log2(T / A))`` points per key: 360 for an hour, 1,260 for
a day, 1,800 for a week, 2,880 for a year (at 10 s).

A bucket's point is the mean of its samples, except for the keys in ``PEAK_KEYS`` (memory and
temperature), whose point is the largest sample: the peak memory of a run stays exact however
long it runs; a utilization peak shorter than its bucket is averaged away. A point is written
when its bucket is complete (or the run ends), at the time and age of its last sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

FULL_SAMPLES = 360
"""Samples stored as they are before coarsening starts (an hour at the default 10 s)."""
PEAK_SUFFIXES = ("_gib", "_c")
"""Keys ending so (memory in GiB, temperature in °C) keep a bucket's largest sample."""

Point = tuple[int, float, dict[str, float]]
"""A stored point: step (whole seconds since the run started), time, values by key."""


def keeps_peak(key: str) -> bool:
    return key.endswith(PEAK_SUFFIXES)


def bucket_of(age: float, interval: float, full: int = FULL_SAMPLES) -> tuple[int, int]:
    """The bucket holding a sample taken ``age`` seconds into the run: ``(level, index)``.
    Level 0 holds one sample per bucket; level ``k`` covers ages ``[A·2^(k-1), A·2^k)``
    (``A = full · interval``) in buckets ``interval · 2^k`` wide."""
    span = full * interval
    if age < span:
        return 0, math.floor(age / interval)
    level = math.floor(math.log2(age / span)) + 1
    start = span * 2 ** (level - 1)
    return level, math.floor((age - start) / (interval * 2**level))


def bucket_width(age: float, interval: float, full: int = FULL_SAMPLES) -> float:
    """Seconds between stored points for samples ``age`` seconds into the run."""
    return interval * 2 ** bucket_of(age, interval, full)[0]


def point_bound(age: float, interval: float, full: int = FULL_SAMPLES) -> int:
    """The most points a run of ``age`` seconds keeps per key (see the module docstring)."""
    span = full * interval
    if age < span:
        return full
    return full + full // 2 * math.ceil(math.log2(age / span) + 1e-12)


class Coarsener:
    """Turns samples, as they come, into the points to store (see the module docstring).

    Args:
        started: the run's start (Unix time): steps are whole seconds since then.
        interval: seconds between samples.
    """

    def __init__(self, started: float, interval: float, full: int = FULL_SAMPLES) -> None:
        self.started = started
        self.interval = interval
        self.full = full
        self._bucket: tuple[int, int] | None = None
        self._time = 0.0
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._last_step = -1

    def add(self, at: float, values: Mapping[str, float]) -> list[Point]:
        """Take a sample taken at ``at``; returns the points now complete (zero or one)."""
        bucket = bucket_of(max(at - self.started, 0.0), self.interval, self.full)
        done = self.close() if bucket != self._bucket else []
        self._bucket, self._time = bucket, at
        for key, value in values.items():
            if math.isnan(value):
                continue
            if key not in self._counts:
                self._sums[key], self._counts[key] = value, 1
            elif keeps_peak(key):
                self._sums[key] = max(self._sums[key], value)
            else:
                self._sums[key] += value
                self._counts[key] += 1
        if bucket[0] == 0:  # full resolution: stored at once
            done += self.close()
        return done

    def close(self) -> list[Point]:
        """The open bucket's point, if any (at the run's end, or when a bucket is complete)."""
        if not self._counts:
            self._bucket = None
            return []
        values = {key: total / self._counts[key] for key, total in self._sums.items()}
        step = max(int(self._time - self.started), self._last_step + 1)
        self._last_step = step
        self._sums, self._counts, self._bucket = {}, {}, None
        return [(step, self._time, values)]


def coarsen(
    samples: Iterable[tuple[float, Mapping[str, float]]],
    started: float,
    interval: float,
    full: int = FULL_SAMPLES,
) -> list[Point]:
    """All the points a run that took ``samples`` (time, values) keeps, the last included."""
    coarsener = Coarsener(started, interval, full)
    points = [point for at, values in samples for point in coarsener.add(at, values)]
    return points + coarsener.close()
