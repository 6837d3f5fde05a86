"""Points parsed from a program's output, gathered per key the way the store takes them.

The recorder could hand each parsed point to ``Run.log``, and the run's writer would regroup the
points per key. For output that is mostly metric lines that per-point work is a good part of
the recorder's time, so :class:`PointBuffer` does both at once: it checks a point as
``Run.log`` does (the automatic step included), keeps it with one append per column, and
regroups per key when taken, at C speed, into the columns of the ``Points`` a ``WriteBatch``
carries (``expbook.store.chunks``). Standard library only: the recorder's reading half uses it
(``expbook.runner.follow``) and does not import the store.
"""

from __future__ import annotations

import math
from array import array
from operator import itemgetter

from expbook.validation import MAX_STEP, check_epoch, check_key, check_step

TYPE_CHECKING = False  # not typing's: the reading half starts faster without it
if TYPE_CHECKING:
    from expbook.runner.parsers import PointRows

_NAN = math.nan
_INFINITIES = (math.inf, -math.inf)
_isfinite = math.isfinite

Columns = tuple[array, array, array, array]
"""Steps (``q``), values, times and epochs (``d``; NaN for none) of points of one key."""


class _Segment:
    """Consecutive points with the same keys: their columns, and their values per point."""

    __slots__ = ("epochs", "keys", "rows", "same", "steps", "times")

    def __len__(self) -> int:
        return len(self.steps)

    def __init__(self, values: dict[str, float]) -> None:
        self.keys = list(values)
        self.same = values.keys()  # a point belongs here if its keys equal these
        self.rows: list[dict[str, float]] = []
        self.steps = array("q")
        self.times = array("d")
        self.epochs = array("d")

    def columns(self, key: str) -> Columns:
        """The points of one key, as new arrays."""
        values = array("d", map(itemgetter(key), self.rows))
        return array("q", self.steps), values, array("d", self.times), array("d", self.epochs)


class _Columns:
    """Points with the same keys that came column by column (a ``PointRows``)."""

    __slots__ = ("epochs", "keys", "steps", "times", "values")

    def __init__(self, keys: tuple[str, ...], values: tuple[array, ...], steps: array,
                 times: array, epochs: array) -> None:  # fmt: skip
        self.keys = keys
        self.values = dict(zip(keys, values, strict=True))
        self.steps = steps
        self.times = times
        self.epochs = epochs

    def __len__(self) -> int:
        return len(self.steps)

    def columns(self, key: str) -> Columns:
        """The points of one key, as new arrays."""
        return (
            array("q", self.steps), array("d", self.values[key]), array("d", self.times),
            array("d", self.epochs),
        )  # fmt: skip


class PointBuffer:
    """Parsed points of one run, checked as ``Run.log`` checks them, until :meth:`take`.

    Values must be floats (the parsers make them so). Not thread-safe.
    """

    def __init__(self) -> None:
        self.next_step = 0  # the step of the next point without one, as Run.log counts
        self.taken = 0  # points taken so far
        self.keys: set[str] = set()  # keys seen (ever)
        self._segments: list[_Segment | _Columns] = []
        self._last: _Segment | None = None

    def add(
        self, values: dict[str, float], step: int | None, epoch: float | None, at: float
    ) -> None:
        """Keep one point logged at time ``at``.

        Raises:
            InvalidKeyError: a key is not a valid metric key (the point is not kept).
            InvalidStepError: ``step`` is too large for the store.
            InvalidValueError: ``epoch`` is not finite.
        """
        if step is None:
            step = self.next_step
        elif type(step) is not int or step < 0 or step > MAX_STEP:
            step = check_step(step)
        if epoch is None:
            epoch = _NAN
        elif type(epoch) is not float or not _isfinite(epoch):
            epoch = check_epoch(epoch)
        segment = self._last
        if segment is None or values.keys() != segment.same:
            segment = self._segment(values)
        segment.rows.append(values)
        segment.steps.append(step)
        segment.times.append(at)
        segment.epochs.append(epoch)
        self.next_step = step + 1

    def add_rows(self, rows: PointRows, at: float) -> None:
        """Keep the points of a ``PointRows``, all logged at time ``at``: as :meth:`add` of
        each, at C speed.

        Raises:
            InvalidKeyError: a key is not a valid metric key (no point is kept).
            InvalidStepError: a step is negative (likewise).
            InvalidValueError: an epoch is infinite (likewise).
        """
        count = len(rows)
        if not count:
            return
        steps = rows.steps
        if steps is None:
            steps = array("q", range(self.next_step, self.next_step + count))
        elif min(steps) < 0:  # (an array("q") holds no step above MAX_STEP)
            check_step(min(steps))
        for infinite in _INFINITIES:
            if infinite in rows.epochs:
                check_epoch(infinite)
        new = [check_key(key) for key in rows.keys if key not in self.keys]
        self.keys.update(new)
        times = array("d", [at]) * count
        self._segments.append(_Columns(rows.keys, rows.values, steps, times, rows.epochs))
        self._last = None
        self.next_step = steps[-1] + 1

    @property
    def count(self) -> int:
        """Points added (ever)."""
        return self.taken + sum(map(len, self._segments))

    def _segment(self, values: dict[str, float]) -> _Segment:
        new = [check_key(key) for key in values if key not in self.keys]
        self.keys.update(new)
        segment = self._last = _Segment(values)
        self._segments.append(segment)
        return segment

    def take(self) -> dict[str, Columns]:
        """The points added since the last call, per key, in the order they were added."""
        series: dict[str, Columns] = {}
        for segment in self._segments:
            self.taken += len(segment)
            for key in segment.keys:
                columns = segment.columns(key)
                if key in series:
                    for column, more in zip(series[key], columns, strict=True):
                        column.extend(more)
                else:
                    series[key] = columns
        self._segments = []
        self._last = None
        return series
