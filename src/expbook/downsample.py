"""Series downsampling for display: the min and max of each bucket, so spikes survive.

A chart is a few hundred to a few thousand pixels wide; drawing a million points into it costs
the browser seconds and shows nothing more than the lowest and highest value of each pixel
column. :func:`downsample` keeps, per bucket of consecutive points, the first point, the minimum
and the maximum (in step order), and the series' last point — the M4 idea, without the
per-bucket last point, which a line chart draws anyway as the next bucket's first. Unlike
averaging or LTTB, a loss spike of one step in a million stays visible; a bucket of NaN
only stays a gap in the line.

numpy is imported here, not by ``import expbook``.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    import numpy

    from expbook.model import Series


@dataclass(frozen=True, slots=True)
class Downsampled:
    """The points kept, as numpy arrays, and how many there were."""

    steps: numpy.ndarray
    values: numpy.ndarray
    times: numpy.ndarray
    epochs: numpy.ndarray
    total: int

    @property
    def reduced(self) -> bool:
        return len(self.steps) < self.total


def downsample(series: Series, points: int) -> Downsampled:
    """At most about ``points`` points of ``series`` that draw like all of them.

    Args:
        points: the budget (at least 4); a series that has no more points is returned whole.
    """
    import numpy as np

    steps = np.frombuffer(series.steps, dtype=np.int64) if len(series) else np.empty(0, np.int64)
    values = np.frombuffer(series.values, dtype=np.float64) if len(series) else np.empty(0)
    times = np.frombuffer(series.times, dtype=np.float64) if len(series) else np.empty(0)
    epochs = np.frombuffer(series.epochs, dtype=np.float64) if len(series) else np.empty(0)
    total = len(steps)
    points = max(4, int(points))
    if total <= points:
        return Downsampled(steps, values, times, epochs, total)
    keep = _bucket_extremes(values, points // 3)
    return Downsampled(steps[keep], values[keep], times[keep], epochs[keep], total)


def _bucket_extremes(values: numpy.ndarray, buckets: int) -> numpy.ndarray:
    """Sorted indices: each bucket's first point, minimum and maximum, and the last point.
    NaN is kept where a bucket holds nothing else (a gap in the line)."""
    import numpy as np

    total = len(values)
    size = -(-total // buckets)  # ceil
    buckets = -(-total // size)
    padded = np.full(buckets * size, np.nan)
    padded[:total] = values
    grid = padded.reshape(buckets, size)
    nan = np.isnan(grid)
    low = np.where(nan, np.inf, grid)
    high = np.where(nan, -np.inf, grid)
    base = np.arange(buckets) * size
    # argmin over [+inf, +inf] is 0: an all-NaN bucket keeps its first point (a gap), and a
    # bucket whose minimum is +inf keeps the first +inf
    mins = base + np.argmin(low, axis=1)
    maxs = base + np.argmax(high, axis=1)
    keep = np.concatenate([base, mins, maxs, [total - 1]])
    keep = np.unique(keep[keep < total])
    return keep
