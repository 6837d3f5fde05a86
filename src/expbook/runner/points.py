"""Points parsed from a program's output, gathered per key the way the store takes them.

The recorder could hand each parsed point to ``Run.log``, and the run's writer would regroup the
points per key. For output that is mostly metric lines that per-point work is a good part of
the recorder's time, so :class:`PointBuffer` does both at once: it checks a point as
``Run.log`` does (the automatic step included) and appends it to the columns of each of its
keys, the columns of the ``Points`` a ``WriteBatch`` carries (``expbook.store.chunks``); a
``PointRows`` (many points of the same keys, column by column) is appended with one ``extend``
per column. Standard library only: the recorder's reading half uses it
(``expbook.runner.follow``) and does not import the store.

Why columns per key, not per run of points with the same keys regrouped when taken (as until
2026-11-22): real logs alternate lines of different keys (a train line, a validation line, a
dict of the learning rate), and one run per point made taking them cost more than parsing.
"""

from __future__ import annotations

import math
from array import array

from expbook.validation import MAX_STEP, check_epoch, check_key, check_step

TYPE_CHECKING = False  # not typing's: the reading half starts faster without it
if TYPE_CHECKING:
    from collections.abc import Iterable

    from expbook.runner.parsers import PointRows

_NAN = math.nan
_INFINITIES = (math.inf, -math.inf)
_isfinite = math.isfinite

Columns = tuple[array, array, array, array]
"""Steps (``q``), values, times and epochs (``d``; NaN for none) of points of one key."""


def _new_columns() -> Columns:
    return array("q"), array("d"), array("d"), array("d")


class PointBuffer:
    """Parsed points of one run, checked as ``Run.log`` checks them, until :meth:`take`.

    Values must be floats (the parsers make them so). Not thread-safe.
    """

    def __init__(self) -> None:
        self.next_step = 0  # the step of the next point without one, as Run.log counts
        self.count = 0  # points added (ever)
        self.keys: set[str] = set()  # keys seen (ever)
        self._series: dict[str, Columns] = {}

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
        if not self.keys.issuperset(values):
            self._check_keys(values)
        series = self._series
        for key, value in values.items():
            columns = series.get(key)
            if columns is None:
                columns = series[key] = _new_columns()
            steps, column, times, epochs = columns
            steps.append(step)
            column.append(value)
            times.append(at)
            epochs.append(epoch)
        self.next_step = step + 1
        self.count += 1

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
        if not self.keys.issuperset(rows.keys):
            self._check_keys(rows.keys)
        times = array("d", [at]) * count
        series = self._series
        for key, values in zip(rows.keys, rows.values, strict=True):
            columns = series.get(key)
            if columns is None:
                columns = series[key] = _new_columns()
            for column, more in zip(columns, (steps, values, times, rows.epochs), strict=True):
                column.extend(more)
        self.next_step = steps[-1] + 1
        self.count += count

    def _check_keys(self, keys: Iterable[str]) -> None:
        new = [check_key(key) for key in keys if key not in self.keys]
        self.keys.update(new)

    def take(self) -> dict[str, Columns]:
        """The points added since the last call, per key, in the order they were added."""
        series, self._series = self._series, {}
        return series
