"""Which samples become stored points: the recent hour as sampled, older samples coarser.

Every sample is stored at once as a point of its own (a crash loses nothing already handed to
the writer). Every ``COMPACT_EVERY`` samples (half an hour at the default 10 s) the older part
is coarsened and the series rewritten in place (``WriteBatch.replaced``): a point whose age
(from now) is under ``A = FULL_SAMPLES · interval`` (an hour at 10 s) stays as sampled; between
``A`` and ``2A`` points are merged into buckets 2 intervals wide, between ``2A`` and ``4A`` into
buckets 4 intervals wide, and so on — ``FULL_SAMPLES / 2`` points per doubling of age. Bucket
``k`` is aligned to multiples of ``interval · 2^k`` from the run's start, so a bucket only ever
merges whole into the next level: points are never split, and a rewrite changes only the points
that crossed an age boundary.

A run of age ``T`` keeps at most ``point_bound(T)`` points per key: the recent hour, about
``FULL_SAMPLES / 2`` per doubling of age beyond it, and the samples since the last compaction.
At 10 s a day ends with 1,171 points (never more than 1,450 on the way) and a week with 1,678
(at most 1,996), against 8,641 and 60,481 samples; a run under an hour is never rewritten.

A bucket's point is the mean of its samples (weighted by how many samples each merged point
stands for), except for the keys in ``PEAK_SUFFIXES`` (memory and temperature), whose point is
the largest sample: the peak memory of a run stays exact however long it runs; a utilization
peak shorter than its bucket is averaged away. A merged point keeps the time and step of its
last sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

FULL_SAMPLES = 360
"""The most recent samples stored as they are (an hour at the default 10 s)."""
COMPACT_EVERY = FULL_SAMPLES // 2
"""Samples between two rewrites of the older part (half an hour at the default 10 s)."""
PEAK_SUFFIXES = ("_gib", "_c")
"""Keys ending so (memory in GiB, temperature in °C) keep a bucket's largest sample."""

Point = tuple[int, float, dict[str, float]]
"""A stored point: step (whole seconds since the run started), time, values by key."""


def keeps_peak(key: str) -> bool:
    return key.endswith(PEAK_SUFFIXES)


def level_of(age: float, interval: float, full: int = FULL_SAMPLES) -> int:
    """The level of a point ``age`` seconds old: 0 (as sampled) under ``A = full · interval``,
    else ``k`` for ages in ``[A·2^(k-1), A·2^k)``, whose buckets are ``interval · 2^k`` wide."""
    span = full * interval
    if age < span:
        return 0
    return math.floor(math.log2(age / span)) + 1


def bucket_width(age: float, interval: float, full: int = FULL_SAMPLES) -> float:
    """Seconds between stored points ``age`` seconds before the last sample."""
    return interval * 2 ** level_of(age, interval, full)


def point_bound(age: float, interval: float, full: int = FULL_SAMPLES) -> int:
    """The most points a run of ``age`` seconds keeps per key (see the module docstring)."""
    span = full * interval
    recent = full + full // 2  # the last hour, and the samples since the last compaction
    if age < span:
        return min(recent, math.floor(age / interval) + 1)
    levels = math.ceil(math.log2(age / span) + 1e-12)
    return recent + (full // 2 + 2) * levels


@dataclass(slots=True)
class _Bucket:
    """One stored point: the samples it stands for, as sums (or peaks) and counts per key."""

    level: int
    index: int
    step: int
    time: float
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def take(self, other: _Bucket) -> None:
        """Merge a later bucket into this one."""
        for key, count in other.counts.items():
            if key not in self.counts:
                self.sums[key], self.counts[key] = other.sums[key], count
            elif keeps_peak(key):
                self.sums[key] = max(self.sums[key], other.sums[key])
                self.counts[key] += count
            else:
                self.sums[key] += other.sums[key]
                self.counts[key] += count
        self.step, self.time = other.step, other.time

    def point(self) -> Point:
        values = {
            key: total if keeps_peak(key) else total / self.counts[key]
            for key, total in self.sums.items()
        }
        return self.step, self.time, values


class Coarsener:
    """Turns samples, as they come, into stored points and occasional rewrites.

    Args:
        started: the run's start (Unix time): steps are whole seconds since then.
        interval: seconds between samples.
    """

    def __init__(
        self,
        started: float,
        interval: float,
        full: int = FULL_SAMPLES,
        every: int | None = None,
    ) -> None:
        self.started = started
        self.interval = interval
        self.full = full
        self.every = every or max(full // 2, 1)
        self.buckets: list[_Bucket] = []
        self.rewrites = 0
        self._since = 0

    def add(
        self, at: float, values: Mapping[str, float]
    ) -> tuple[list[Point], list[Point] | None]:
        """Take a sample taken at ``at``. Returns ``(new, rewritten)``: points to append, or,
        when the older part was just coarsened, ``([], every point)``: the whole series as it
        now is (the new sample included)."""
        kept = {key: value for key, value in values.items() if not math.isnan(value)}
        if not kept:
            return [], None
        age = max(at - self.started, 0.0)
        step = int(age)
        if self.buckets:
            step = max(step, self.buckets[-1].step + 1)
        bucket = _Bucket(0, math.floor(age / self.interval), step, at)
        bucket.sums = dict(kept)
        bucket.counts = dict.fromkeys(kept, 1)
        self.buckets.append(bucket)
        self._since += 1
        if self._since >= self.every:
            rewritten = self.compact(at)
            if rewritten is not None:
                return [], rewritten
        return [bucket.point()], None

    def compact(self, now: float) -> list[Point] | None:
        """Coarsen what is old at ``now``; every point when something changed, else None."""
        self._since = 0
        merged: list[_Bucket] = []
        changed = False
        group: tuple[int, int] | None = None
        for bucket in self.buckets:
            level = max(bucket.level, level_of(now - bucket.time, self.interval, self.full))
            key = (level, bucket.index >> (level - bucket.level))
            if merged and key == group and level > 0:  # level 0: every sample as taken
                merged[-1].take(bucket)
                changed = True
                continue
            bucket.level, bucket.index = key
            merged.append(bucket)
            group = key
        self.buckets = merged
        if not changed:
            return None
        self.rewrites += 1
        return self.points()

    def close(self, now: float) -> list[Point] | None:
        """At the run's end: the last coarsening, as ``compact``."""
        return self.compact(now)

    def points(self) -> list[Point]:
        return [bucket.point() for bucket in self.buckets]


def coarsen(
    samples: Iterable[tuple[float, Mapping[str, float]]],
    started: float,
    interval: float,
    full: int = FULL_SAMPLES,
) -> list[Point]:
    """The points a run that took ``samples`` (time, values) keeps at its end, as the store
    holds them after every append and rewrite."""
    coarsener = Coarsener(started, interval, full)
    stored: list[Point] = []
    last = started
    for at, values in samples:
        new, rewritten = coarsener.add(at, values)
        stored = list(rewritten) if rewritten is not None else stored + new
        last = at
    final = coarsener.close(last)
    return list(final) if final is not None else stored
