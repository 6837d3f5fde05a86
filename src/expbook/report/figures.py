"""The figures of a notebook section as plain data: what to draw, not how (``plots.py`` draws).

* learning curves, one figure per metric group (``train/loss`` and ``valid/loss`` together),
  one colour per run;
* for the key metric against the params that vary (seeds left out): a line or bar chart when
  one param varies, a heatmap when two do and their values form a grid (at least half of the
  cells filled), parallel coordinates otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from expbook.columns import MISSING, Factor, canonical, metric_groups, split_key
from expbook.model import RunRecord, Series
from expbook.report.stats import Group, estimate
from expbook.report.text import file_slug, fmt_number, fmt_value, plural

MAX_POINTS = 1000
"""Points per line at most (min/max downsampling keeps the spikes)."""
MAX_CURVE_FIGURES = 8
LOG_RATIO = 10.0
"""A numeric axis whose positive values span this factor or more is drawn on a log scale."""


@dataclass(frozen=True, slots=True)
class Line:
    """One series of one run: ``run`` indexes ``CurvesFigure.runs`` (and picks the colour)."""

    run: int
    key: str
    split: str | None
    x: tuple[float, ...]
    y: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class CurvesFigure:
    filename: str
    title: str
    caption: str
    metric: str
    unit: str | None
    x_label: str
    runs: tuple[str, ...]
    lines: tuple[Line, ...]


@dataclass(frozen=True, slots=True)
class HeatmapFigure:
    """Key metric per cell (mean over repeats); rows are ``y_param``'s values."""

    filename: str
    title: str
    caption: str
    metric: str
    unit: str | None
    minimise: bool
    x_param: str
    y_param: str
    x_labels: tuple[str, ...]
    y_labels: tuple[str, ...]
    means: tuple[tuple[float | None, ...], ...]
    counts: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class Point:
    """One configuration of a one-param sweep; ``x`` is None on a categorical axis."""

    label: str
    x: float | None
    mean: float
    std: float
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class SweepFigure:
    filename: str
    title: str
    caption: str
    metric: str
    unit: str | None
    minimise: bool
    param: str
    numeric: bool
    log_x: bool
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Axis:
    """One vertical axis of a parallel-coordinates chart: each run's position in [0, 1]."""

    name: str
    positions: tuple[float, ...]
    ticks: tuple[tuple[float, str], ...]


@dataclass(frozen=True, slots=True)
class ParallelFigure:
    filename: str
    title: str
    caption: str
    metric: str
    unit: str | None
    minimise: bool
    axes: tuple[Axis, ...]
    values: tuple[float, ...]
    runs: tuple[str, ...]


Figure = CurvesFigure | HeatmapFigure | SweepFigure | ParallelFigure


@dataclass(frozen=True, slots=True)
class KeyMetric:
    """The metric a section's configurations are ranked by."""

    key: str
    unit: str | None
    minimise: bool

    @property
    def direction(self) -> str:
        return "lower is better" if self.minimise else "higher is better"


# --- values and axes ----------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def sort_key(value: Any) -> tuple[int, float, str]:
    """Numbers first (numerically, NaN last), then booleans, text, other values, unset."""
    if value is MISSING:
        return (4, 0.0, "")
    if is_number(value):
        number = float(value)
        return (1, 0.0, "") if math.isnan(number) else (0, number, "")
    rank = 2 if isinstance(value, bool) else 3
    return (rank, 0.0, canonical(value))


def distinct(values: Sequence[Any]) -> list[Any]:
    """The distinct values (by :func:`canonical`), sorted with :func:`sort_key`."""
    unique = {canonical(value): value for value in values}
    return sorted(unique.values(), key=sort_key)


def numeric_scale(values: Sequence[Any]) -> tuple[bool, bool]:
    """(numeric, log): whether the values are finite numbers and whether they span a factor
    of :data:`LOG_RATIO` or more while all positive."""
    if not values or not all(is_number(v) and math.isfinite(v) for v in values):
        return False, False
    low, high = min(values), max(values)
    return True, low > 0 and high / low >= LOG_RATIO


def _axis(name: str, values: Sequence[Any]) -> Axis:
    choices = distinct(values)
    numeric, log = numeric_scale(choices)
    if not numeric or len(choices) < 2:
        places = {canonical(v): (i / (len(choices) - 1) if len(choices) > 1 else 0.5)
                  for i, v in enumerate(choices)}  # fmt: skip
        ticks = tuple((places[canonical(v)], fmt_value(v, 24)) for v in choices)
        return Axis(name, tuple(places[canonical(v)] for v in values), ticks)

    def place(value: float) -> float:
        scaled = math.log10(value) if log else value
        low = math.log10(choices[0]) if log else choices[0]
        high = math.log10(choices[-1]) if log else choices[-1]
        return (scaled - low) / (high - low)

    shown = choices if len(choices) <= 8 else _spread(choices, 5)
    ticks = tuple((place(v), fmt_number(v)) for v in shown)
    return Axis(name, tuple(place(v) for v in values), ticks)


def _spread(choices: Sequence[Any], count: int) -> list[Any]:
    last = len(choices) - 1
    return [choices[round(i * last / (count - 1))] for i in range(count)]


# --- learning curves ----------------------------------------------------------------------------


def curve_figures(
    prefix: str,
    title: str,
    runs: Sequence[RunRecord],
    series: Mapping[str, Mapping[str, Series]],
    key: KeyMetric | None,
    total: int | None = None,
) -> list[CurvesFigure]:
    """One figure per metric group with at least one series of two points or more; the key
    metric's group first, then alphabetically; at most :data:`MAX_CURVE_FIGURES`. ``total``:
    how many runs the section has, when ``runs`` are only the best of them."""
    keys = sorted({k for per_run in series.values() for k, s in per_run.items() if len(s)})
    groups = metric_groups(keys)
    if key is not None:
        first = split_key(key.key)[1]
        groups.sort(key=lambda group: group[0] != first)
    labels = tuple(f"{run.ref} {run.name}" for run in runs)
    figures = []
    for metric, group_keys in groups:
        figure = _curves(prefix, title, metric, group_keys, runs, series, labels)
        if figure is not None and total is not None and total > len(runs) and key is not None:
            caption = f"{figure.caption}: the best {len(runs)} of {total} by {key.key}"
            figure = dataclasses.replace(figure, caption=caption)
        if figure is not None:
            figures.append(figure)
    return figures[:MAX_CURVE_FIGURES]


def _curves(
    prefix: str,
    title: str,
    metric: str,
    keys: Sequence[str],
    runs: Sequence[RunRecord],
    series: Mapping[str, Mapping[str, Series]],
    labels: tuple[str, ...],
) -> CurvesFigure | None:
    found = [(i, k, series[run.id][k]) for i, run in enumerate(runs) for k in keys
             if k in series.get(run.id, {})]  # fmt: skip
    if not any(len(s) >= 2 for _, _, s in found):
        return None
    by_epoch = all(not any(math.isnan(e) for e in s.epochs) for _, _, s in found)
    lines = tuple(_line(i, k, s, by_epoch) for i, k, s in found)
    unit = next((unit_of(runs, k) for k in keys if unit_of(runs, k)), None)
    x_label = "epoch" if by_epoch else "step"
    splits = ", ".join(keys)
    if any(not math.isfinite(v) for line in lines for v in line.y):
        splits += " (x at the top: NaN or infinite)"
    return CurvesFigure(
        filename=f"{prefix}-curves-{_file_part(metric)}.png",
        title=f"{title}: {metric}",
        caption=f"{splits} by {x_label}, {plural(len({i for i, _, _ in found}), 'run')}",
        metric=metric,
        unit=unit,
        x_label=x_label,
        runs=labels,
        lines=lines,
    )


def _line(run: int, key: str, series: Series, by_epoch: bool) -> Line:
    from expbook.downsample import downsample

    points = downsample(series, MAX_POINTS)
    x = points.epochs if by_epoch else points.steps
    return Line(run, key, split_key(key)[0], tuple(float(v) for v in x),
                tuple(float(v) for v in points.values))  # fmt: skip


def unit_of(runs: Sequence[RunRecord], key: str) -> str | None:
    """The unit set for ``key`` (``run.summary.set(..., unit=)``) in the first run that has one."""
    return next((run.metrics[key].unit for run in runs
                 if key in run.metrics and run.metrics[key].unit), None)  # fmt: skip


def _file_part(text: str) -> str:
    return file_slug(text, 32)


# --- the key metric against the params that vary ------------------------------------------------


def param_figure(
    prefix: str, title: str, groups: Sequence[Group], params: Sequence[Factor], key: KeyMetric
) -> Figure | None:
    """The chart of ``key`` against the factors that vary (``columns.factors``: each varying
    param, seeds left out, or for a list param each set of mutually exclusive elements)."""
    measured = [g for g in groups if g.values(key.key)]
    if not params or len(measured) < 2:
        return None
    if len(params) == 1:
        return _sweep(prefix, title, measured, params[0], key)
    if len(params) == 2 and _is_grid(measured, params):
        return _heatmap(prefix, title, measured, params, key)
    return _parallel(prefix, title, measured, params, key)


def _param_values(groups: Sequence[Group], factor: Factor) -> list[Any]:
    return [factor.value(group.params) for group in groups]


def _sweep(
    prefix: str, title: str, groups: Sequence[Group], factor: Factor, key: KeyMetric
) -> Figure:
    param = factor.name
    values = _param_values(groups, factor)
    numeric, log = numeric_scale(values)
    order = sorted(range(len(groups)), key=lambda i: sort_key(values[i]))
    points = tuple(_point(groups[i], values[i], numeric, key.key) for i in order)
    kind = "line" if numeric else "bar"
    return SweepFigure(
        filename=f"{prefix}-by-{_file_part(param)}.png",
        title=f"{title}: {key.key} by {param}",
        caption=f"{key.key} by {param} ({kind} chart; mean over repeats, error bars: std)",
        metric=key.key,
        unit=key.unit,
        minimise=key.minimise,
        param=param,
        numeric=numeric,
        log_x=log,
        points=points,
    )


def _point(group: Group, value: Any, numeric: bool, metric: str) -> Point:
    values = group.values(metric)
    found = estimate(values)
    x = float(value) if numeric else None
    return Point(fmt_value(value, 24), x, found.mean, found.std, tuple(values))


def _is_grid(groups: Sequence[Group], params: Sequence[Factor]) -> bool:
    rows = distinct(_param_values(groups, params[0]))
    columns = distinct(_param_values(groups, params[1]))
    return len(groups) * 2 >= len(rows) * len(columns)


def _heatmap(
    prefix: str, title: str, groups: Sequence[Group], params: Sequence[Factor], key: KeyMetric
) -> HeatmapFigure:
    y_factor, x_factor = params
    y_param, x_param = y_factor.name, x_factor.name
    rows = distinct(_param_values(groups, y_factor))
    columns = distinct(_param_values(groups, x_factor))
    cells = {(canonical(y_factor.value(g.params)), canonical(x_factor.value(g.params))): g
             for g in groups}  # fmt: skip
    means, counts = [], []
    for row in rows:
        found = [cells.get((canonical(row), canonical(column))) for column in columns]
        estimates = [estimate(g.values(key.key)) if g else None for g in found]
        means.append(tuple(e.mean if e and e.n else None for e in estimates))
        counts.append(tuple(e.n if e else 0 for e in estimates))
    return HeatmapFigure(
        filename=f"{prefix}-heatmap.png",
        title=f"{title}: {key.key}",
        caption=f"{key.key} by {y_param} and {x_param} (mean over repeats)",
        metric=key.key,
        unit=key.unit,
        minimise=key.minimise,
        x_param=x_param,
        y_param=y_param,
        x_labels=tuple(fmt_value(v, _label_width(columns, x_factor)) for v in columns),
        y_labels=tuple(fmt_value(v, _label_width(rows, y_factor)) for v in rows),
        means=tuple(means),
        counts=tuple(counts),
    )


def _label_width(values: Sequence[Any], factor: Factor) -> int:
    """Tick labels are cut to 16 characters, a list param's elements (few) to 28."""
    return 28 if not factor.is_param and len(values) <= 4 else 16


def _parallel(
    prefix: str, title: str, groups: Sequence[Group], params: Sequence[Factor], key: KeyMetric
) -> ParallelFigure | None:
    runs = [run for g in groups for run in g.runs if _finite(run.metric(key.key))]
    runs.sort(key=lambda run: run.number)
    if len(runs) < 2:
        return None
    values = tuple(float(run.metric(key.key)) for run in runs)  # type: ignore[arg-type]
    axes = [_axis(p.name, [p.value(run.params) for run in runs]) for p in params]
    axes.append(_axis(key.key, list(values)))
    names = ", ".join(p.name for p in params)
    return ParallelFigure(
        filename=f"{prefix}-parallel.png",
        title=f"{title}: {key.key} by {len(params)} params",
        caption=f"{names} and {key.key}, one line per run, coloured by {key.key}",
        metric=key.key,
        unit=key.unit,
        minimise=key.minimise,
        axes=tuple(axes),
        values=values,
        runs=tuple(run.ref for run in runs),
    )


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
