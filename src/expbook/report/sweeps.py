"""What a sweep looks like, for the web UI's sweep page and the notebook's sweep section.

:func:`sweep_view` reads a sweep and its trials into plain data: the trials, the best trial,
the best value so far as trials completed, the parameters' importance and the noise verdict
(``expbook.sweep.analysis``, the one implementation the CLI uses too) and the axes of a
parallel-coordinates chart (log axes for log-distributed parameters: the log10 of the values,
ticked in the user's values). The UI's JSON API (``server/sweeps.py``) serves it as it is; the
notebook turns it into a section (:func:`sweep_sections`) whose figures are drawn here with
matplotlib, as the other figures of the notebook are in ``plots.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from expbook.columns import canonical
from expbook.model import SweepRecord, TrialRecord, TrialState
from expbook.report.figures import Axis, ParallelFigure, is_number, sort_key
from expbook.report.text import fmt_number, fmt_value, plural
from expbook.store.base import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from expbook.sweep.spec import Metric, Param, SweepSpec

MAX_TICKS = 8
"""An axis with at most this many distinct values is ticked at each of them."""
CURVE_POINTS = 300
"""Points per trial curve in the notebook's figure (min/max buckets keep the spikes)."""


# --- the view -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial as the views show it: ``value`` is its first objective's value."""

    number: int
    config: int
    repeat: int
    attempt: int
    state: str
    run_id: str | None
    run_number: int | None
    params: Mapping[str, Any]
    values: tuple[float | None, ...]
    value: float | None
    pruned_step: int | None
    worker: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    duration: float | None
    error: str | None


@dataclass(frozen=True, slots=True)
class BestPoint:
    """A trial that ended with a value, in the order trials ended: ``count`` trials had ended
    with a value by then, and ``best`` is the best finished trial's value so far (None before
    the first finished one)."""

    count: int
    number: int
    run_number: int | None
    state: str
    ended_at: float
    value: float
    best: float | None


@dataclass(frozen=True, slots=True)
class ParallelAxis:
    """One axis of the parallel coordinates: a coordinate per drawn trial (the log10 of the
    value on a ``log`` axis, the value's index on a ``categorical`` one), the axis' span
    ``low``..``high`` in coordinates and its ticks as (coordinate, label in the user's values)."""

    name: str
    log: bool
    categorical: bool
    values: tuple[float, ...]
    low: float
    high: float
    ticks: tuple[tuple[float, str], ...]

    def positions(self) -> tuple[float, ...]:
        """The coordinates scaled to 0..1 (the notebook's drawing)."""
        return tuple(self.position(v) for v in self.values)

    def position(self, value: float) -> float:
        return 0.5 if self.high == self.low else (value - self.low) / (self.high - self.low)


@dataclass(frozen=True, slots=True)
class Parallel:
    """The trials drawn (those with a finite value of the first objective), their values, the
    axes (the parameters that vary, then the objective) and what was left out."""

    trials: tuple[int, ...]
    values: tuple[float, ...]
    axes: tuple[ParallelAxis, ...]
    note: str | None


@dataclass(frozen=True, slots=True)
class SweepView:
    sweep: SweepRecord
    records: tuple[TrialRecord, ...]
    spec: SweepSpec | None
    spec_error: str | None
    metrics: tuple[Metric, ...]
    parameters: tuple[Param, ...]
    trials: tuple[Trial, ...]
    counts: Mapping[str, int]
    best: Trial | None
    best_so_far: tuple[BestPoint, ...]
    importance: tuple[tuple[str, float], ...]
    importance_note: str | None
    noise: str | None
    parallel: Parallel

    @property
    def metric(self) -> Metric | None:
        return self.metrics[0] if self.metrics else None

    @property
    def minimise(self) -> bool:
        return self.metric is None or self.metric.goal != "maximize"

    @property
    def varying(self) -> tuple[str, ...]:
        """The parameters the sweep searches (constants left out), then any other param a
        trial has (an attached run's, a parameter since removed from the spec) but the seed of
        the repeats."""
        seed = self.spec.seed_param if self.spec else None
        names = [p.name for p in self.parameters if p.kind != "constant"]
        for trial in self.trials:
            new = [key for key in trial.params if key not in names and key != seed]
            names += [key for key in new if not _constant(self, key)]
        return tuple(names)


def _constant(view: SweepView, key: str) -> bool:
    return any(p.name == key and p.kind == "constant" for p in view.parameters)


def sweep_view(store: Store, sweep: SweepRecord, *, importance: bool = True) -> SweepView:
    """The sweep and its trials as the UI and the notebook show them (without ``importance``:
    no parameter importance, which takes Optuna a moment per sweep)."""
    from expbook.sweep import analysis
    from expbook.sweep.spec import SweepSpecError, parse_spec

    try:
        spec: SweepSpec | None = parse_spec(sweep.spec)
        spec_error = None
    except SweepSpecError as error:  # stored by an older or newer expbook: show what we can
        spec, spec_error = None, str(error)
    records = store.list_trials(sweep.id)
    trials = tuple(_trial(record, analysis.duration(record)) for record in records)
    metrics = spec.metrics if spec else ()
    parameters = spec.parameters if spec else ()
    minimise = not metrics or metrics[0].goal != "maximize"
    best_number, found, importance_note, noise = _analysis(spec, records, importance=importance)
    best = next((t for t in trials if t.number == best_number), None)
    counts = {state: n for state, n in analysis.counts(records).items() if n}
    view = SweepView(
        sweep, tuple(records), spec, spec_error, metrics, parameters, trials, counts, best,
        best_so_far(trials, minimise), found, importance_note, noise,
        Parallel((), (), (), None),
    )  # fmt: skip
    return _with_parallel(view, _stopped_values(store, trials, view.metric))


def _trial(record: TrialRecord, duration: float | None) -> Trial:
    values = tuple(record.values or ())
    value = values[0] if values else None
    return Trial(
        record.number, record.config, record.repeat, record.attempt, record.state.value,
        record.run_id, record.run_number, dict(record.params), values, value, record.pruned_step,
        record.worker, record.created_at, record.started_at, record.ended_at,
        duration, record.error,
    )  # fmt: skip


def _finite(value: float | None) -> bool:
    return value is not None and is_number(value) and math.isfinite(value)


def best_so_far(trials: Iterable[Trial], minimise: bool) -> tuple[BestPoint, ...]:
    """The trials that ended with a finite value, in the order they ended, each with the best
    value of the finished trials up to it."""
    ended = sorted(
        (t for t in trials if t.ended_at is not None and _finite(t.value)),
        key=lambda t: (t.ended_at, t.number),
    )
    points, best = [], None
    for count, trial in enumerate(ended, start=1):
        value = float(trial.value)  # type: ignore[arg-type]
        if trial.state == TrialState.FINISHED and (
            best is None or (value < best if minimise else value > best)
        ):
            best = value
        points.append(BestPoint(count, trial.number, trial.run_number, trial.state,
                                trial.ended_at, value, best))  # type: ignore[arg-type]  # fmt: skip
    return tuple(points)


# --- analysis (expbook.sweep.analysis: one implementation for the CLI, the UI and the report) --


def _analysis(
    spec: SweepSpec | None, trials: Sequence[TrialRecord], *, importance: bool
) -> tuple[int | None, tuple[tuple[str, float], ...], str | None, str | None]:
    """(the best trial's number, importance by parameter, a note on it, the noise verdict)."""
    from expbook.sweep import analysis

    if spec is None or spec.metric is None:
        return None, (), "the sweep has no metric", None
    ranked = analysis.configurations(spec, trials)
    best = ranked[0].best_trial.number if ranked else None
    check = analysis.noise_check(spec, ranked)
    noise = analysis.noise_verdict(check, spec.metric) if check is not None else None
    if not importance:
        return best, (), None, noise
    found = analysis.importance(spec, ranked)
    if not found.values:
        return best, (), f"no importance: {found.reason}", noise
    note = f"{found.evaluator.split(' ')[0]} over {plural(found.configurations, 'configuration')}"
    if found.rough:
        note += f", rough below {analysis.ROUGH_IMPORTANCE_CONFIGS}"
    return best, tuple(found.values.items()), note, noise


# --- parallel coordinates -----------------------------------------------------------------------


def _stopped_values(
    store: Store, trials: Sequence[Trial], metric: Metric | None
) -> dict[int, float]:
    """The last logged value of the metric of each pruned trial: where the pruner stopped it."""
    from expbook.store.base import RunQuery

    pruned = {t.run_id: t.number for t in trials if t.state == TrialState.PRUNED and t.run_id}
    if metric is None or not pruned:
        return {}
    runs = store.find_runs(RunQuery(ids=tuple(pruned)))
    found = {pruned[run.id]: run.metric(metric.name) for run in runs}
    return {number: value for number, value in found.items() if _finite(value)}  # type: ignore[misc]


def _with_parallel(view: SweepView, stopped: Mapping[int, float]) -> SweepView:
    """Every trial with a value, and the pruned ones at the value where they stopped."""
    from dataclasses import replace

    metric = view.metric
    if metric is None:
        return replace(view, parallel=Parallel((), (), (), "the sweep has no metric"))
    values = {t.number: float(t.value) for t in view.trials if _finite(t.value)}  # type: ignore[arg-type]
    values.update({n: v for n, v in stopped.items() if n not in values})
    drawn = [t for t in view.trials if t.number in values]
    notes = [f"pruned trials at their last {metric.name}"] if stopped else []
    left = len(view.trials) - len(drawn)
    if left:
        notes.append(f"{plural(left, 'trial')} without a value not drawn")
    note = "; ".join(notes) or None
    if not drawn:
        return replace(view, parallel=Parallel((), (), (), note))
    specs = {p.name: p for p in view.parameters}
    axes = [param_axis(name, [t.params.get(name) for t in drawn], specs.get(name))
            for name in view.varying]  # fmt: skip
    shown = [values[t.number] for t in drawn]
    axes.append(_numeric_axis(metric.name, shown, log=False, nice=True))
    parallel = Parallel(tuple(t.number for t in drawn), tuple(shown), tuple(axes), note)
    return replace(view, parallel=parallel)


def param_axis(name: str, values: Sequence[Any], spec: Param | None) -> ParallelAxis:
    """The axis of one parameter: numeric (log when the spec draws it log-distributed and every
    value is positive) when every value is a finite number, else one tick per distinct value
    (in the spec's order of ``values`` when it lists them)."""
    numeric = all(is_number(v) and math.isfinite(v) for v in values)
    if numeric and (spec is None or spec.kind in ("int", "float")):
        log = spec is not None and spec.log and all(v > 0 for v in values)
        bounds = () if spec is None else (spec.low, spec.high)
        return _numeric_axis(name, [float(v) for v in values], log=log, bounds=bounds)
    return _categorical_axis(name, values, spec.values if spec is not None else ())


def _numeric_axis(
    name: str,
    values: Sequence[float],
    *,
    log: bool,
    bounds: Sequence[float | None] = (),
    nice: bool = False,
) -> ParallelAxis:
    """Spanning the values and the spec's bounds (where the search could have gone); ticked at
    each value when they are few (the values tried), else at round values (``nice``: always)."""
    scale = math.log10 if log else float
    span = [v for v in (*values, *bounds) if v is not None and math.isfinite(v)]
    if log:
        span = [v for v in span if v > 0]
    low, high = min(span), max(span)
    distinct = sorted(set(values))
    if len(distinct) <= (2 if nice else MAX_TICKS):
        shown = distinct
    elif log:
        shown = _decades(low, high) or nice_ticks(low, high)
    else:
        shown = nice_ticks(low, high)
    ticks = tuple((scale(v), fmt_number(v)) for v in shown)
    return ParallelAxis(name, log, False, tuple(scale(v) for v in values), scale(low),
                        scale(high), ticks)  # fmt: skip


def _decades(low: float, high: float) -> list[float]:
    first, last = math.ceil(math.log10(low) - 1e-9), math.floor(math.log10(high) + 1e-9)
    found = [10.0**k for k in range(first, last + 1)]
    return found if len(found) >= 2 else []


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round values (steps of 1, 2 or 5 times a power of ten) in low..high."""
    if high <= low:
        return [low]
    power = 10 ** math.floor(math.log10((high - low) / (count - 1)))

    def ticks(step: float) -> list[float]:
        first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
        return [round(k * step, 12) for k in range(first, last + 1)]

    candidates = [ticks(m * power) for m in (1, 2, 5, 10)]
    return min(candidates, key=lambda found: abs(len(found) - count))  # a tie: more ticks


def _categorical_axis(name: str, values: Sequence[Any], listed: Sequence[Any]) -> ParallelAxis:
    present = {canonical(v): v for v in values}
    order = [v for v in listed if canonical(v) in present]
    order += sorted((v for k, v in present.items() if k not in {canonical(o) for o in order}),
                    key=sort_key)  # fmt: skip
    index = {canonical(v): i for i, v in enumerate(order)}
    ticks = tuple((float(i), fmt_value(v, 24)) for i, v in enumerate(order))
    return ParallelAxis(name, False, True, tuple(float(index[canonical(v)]) for v in values),
                        0.0, float(len(order) - 1), ticks)  # fmt: skip


# --- the notebook's sweep section ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BestSoFarFigure:
    filename: str
    title: str
    caption: str
    metric: str
    minimise: bool
    points: tuple[BestPoint, ...]


@dataclass(frozen=True, slots=True)
class ImportanceFigure:
    filename: str
    title: str
    caption: str
    items: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class TrialCurve:
    """One trial's curve of the metric; ``stop`` is where a pruned trial was stopped."""

    trial: int
    state: str
    best: bool
    x: tuple[float, ...]
    y: tuple[float, ...]
    stop: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class TrialCurvesFigure:
    filename: str
    title: str
    caption: str
    metric: str
    curves: tuple[TrialCurve, ...]


SweepFigure = BestSoFarFigure | ImportanceFigure | TrialCurvesFigure | ParallelFigure


@dataclass(frozen=True, slots=True)
class SweepSection:
    """A sweep in a notebook section: the view, the trials table's rows
    (``expbook.sweep.analysis.trial_rows``: best first, as ``expbook sweep show``) and the
    figures."""

    view: SweepView
    rows: tuple[Any, ...]
    figures: tuple[SweepFigure, ...]


class SweepIndex:
    """The store's sweeps (or only ``names``), found once per notebook: which sweeps a
    section's runs are trials of.

    Raises:
        SweepNotFoundError: a name in ``names`` is not a sweep.
    """

    def __init__(self, store: Store, names: Sequence[str] = ()) -> None:
        self.store = store
        self.named = bool(names)
        sweeps = [store.get_sweep(name) for name in dict.fromkeys(names)] or store.list_sweeps()
        self.sweeps = list({sweep.id: sweep for sweep in sweeps}.values())
        self.runs = {sweep.id: {t.run_id for t in store.list_trials(sweep.id) if t.run_id}
                     for sweep in self.sweeps}  # fmt: skip

    def run_ids(self) -> set[str]:
        """Every run that is a trial of the sweeps."""
        return set().union(*self.runs.values()) if self.runs else set()

    def sections(self, runs: Sequence[Any], prefix: str) -> tuple[SweepSection, ...]:
        """A section per sweep with a trial among ``runs``, oldest sweep first."""
        ids = {run.id for run in runs}
        found = [sweep for sweep in self.sweeps if self.runs[sweep.id] & ids]
        return tuple(sweep_section(self.store, sweep, prefix) for sweep in found)


def sweep_section(store: Store, sweep: SweepRecord, prefix: str) -> SweepSection:
    from expbook.report.text import file_slug
    from expbook.sweep import analysis

    view = sweep_view(store, sweep)
    rows = tuple(analysis.trial_rows(view.spec, view.records)) if view.spec else ()
    base = f"{prefix}-sweep-{file_slug(sweep.name, 32)}"
    figures: list[Any] = []
    metric = view.metric
    if metric is not None and view.best_so_far:
        figures.append(BestSoFarFigure(
            f"{base}-best.png", f"Sweep {sweep.name}: best {metric.name} so far",
            f"{metric.name} of each trial as trials completed, and the best so far "
            f"({'lower' if view.minimise else 'higher'} is better)", metric.name, view.minimise,
            view.best_so_far,
        ))  # fmt: skip
    if metric is not None and len(view.parallel.trials) >= 2 and len(view.parallel.axes) >= 2:
        figures.append(_parallel_figure(view, base))
    if view.importance:
        figures.append(ImportanceFigure(
            f"{base}-importance.png", f"Sweep {sweep.name}: parameter importance",
            f"importance of each parameter for {metric.name if metric else 'the metric'}"
            f" ({view.importance_note})", view.importance,
        ))  # fmt: skip
    curves = _curves_figure(store, view, base)
    if curves is not None:
        figures.append(curves)
    return SweepSection(view, rows, tuple(figures))


def _parallel_figure(view: SweepView, base: str) -> ParallelFigure:
    parallel = view.parallel
    axes = tuple(
        Axis(f"{a.name} (log)" if a.log else a.name, a.positions(),
             tuple((a.position(at), label) for at, label in a.ticks))
        for a in parallel.axes
    )  # fmt: skip
    metric = view.metric.name  # type: ignore[union-attr]
    names = ", ".join(a.name for a in parallel.axes[:-1])
    note = f"; {parallel.note}" if parallel.note else ""
    return ParallelFigure(
        f"{base}-parallel.png", f"Sweep {view.sweep.name}: {metric} by {names}",
        f"one line per trial, coloured by {metric}; log axes for log-distributed "
        f"parameters{note}", metric, None, view.minimise, axes, parallel.values,
        tuple(f"trial {n}" for n in parallel.trials),
    )  # fmt: skip


def _curves_figure(store: Store, view: SweepView, base: str) -> TrialCurvesFigure | None:
    """The metric's series of each trial's run, the pruned ones ending in an x where they were
    stopped (their pruned step, else their last point)."""
    from expbook.downsample import downsample

    metric = view.metric
    by_run = {t.run_id: t for t in view.trials if t.run_id}
    if metric is None or not by_run:
        return None
    curves = []
    for series in view_series(store, list(by_run), metric.name):
        trial = by_run[series.run_id]
        points = downsample(series, CURVE_POINTS)
        x = tuple(float(v) for v in points.steps)
        y = tuple(float(v) for v in points.values)
        stop = _stop(x, y, trial.pruned_step) if trial.state == TrialState.PRUNED and x else None
        best = view.best is not None and view.best.number == trial.number
        curves.append(TrialCurve(trial.number, trial.state, best, x, y, stop))
    if not curves:
        return None
    curves.sort(key=lambda c: c.trial)
    pruned = sum(c.stop is not None for c in curves)
    ends = f"; {plural(pruned, 'pruned trial')} ending in an x where stopped" if pruned else ""
    return TrialCurvesFigure(
        f"{base}-curves.png", f"Sweep {view.sweep.name}: {metric.name} of every trial",
        f"{metric.name} by step, {plural(len(curves), 'trial')}, the best in orange{ends}",
        metric.name, tuple(curves),
    )  # fmt: skip


def view_series(store: Store, run_ids: Sequence[str], key: str) -> list[Any]:
    """The runs' series of ``key`` (those that logged it)."""
    return [series for series in store.iter_series(run_ids, [key]) if len(series)]


def _stop(x: Sequence[float], y: Sequence[float], step: int | None) -> tuple[float, float]:
    at = len(x) - 1
    if step is not None:
        at = max((i for i, v in enumerate(x) if v <= step), default=0)
    return x[at], y[at]


# --- markdown -----------------------------------------------------------------------------------


def render_markdown(section: SweepSection, assets: str, numbers: Mapping[str, int]) -> str:
    """The sweep as a part of a notebook section: what was searched, how its trials ended,
    the best trial, the importance, the trials table and the figures."""
    from expbook.report.markdown import _figure
    from expbook.report.text import code, escape

    view = section.view
    blocks = [f"### Sweep {code(view.sweep.name)}", "\n".join(_facts(view, code, escape))]
    if section.rows:
        blocks.append(_trials_table(view, section.rows, code, escape))
    blocks += [_figure(figure, assets, dict(numbers)) for figure in section.figures]  # type: ignore[arg-type]
    return "\n\n".join(blocks)


def _facts(view: SweepView, code: Any, escape: Any) -> list[str]:
    from expbook.report.markdown import _period
    from expbook.sweep import analysis

    sweep, spec, metric = view.sweep, view.spec, view.metric
    if spec is None:
        return [f"- **Spec:** cannot be read: {escape(view.spec_error or '')}"]
    space = ", ".join(f"{code(p.name)} {escape(analysis.describe_param(p))}"
                      for p in spec.parameters)  # fmt: skip
    goal = f"; {metric.goal} {code(metric.name)}" if metric else "; no metric"
    pruner = spec.effective_pruner
    lines = [f"- **Search:** {spec.method} over {space}{goal}"
             + (f"; pruner {pruner}" if pruner != "none" else "")]  # fmt: skip
    states = ", ".join(f"{n} {state}" for state, n in view.counts.items())
    lines.append(f"- **Trials:** {len(view.trials)} ({states or 'none yet'}); sweep "
                 f"{sweep.state.value}, {_period(sweep.created_at, sweep.ended_at)}")  # fmt: skip
    best = view.best
    if best is not None and metric is not None:
        run = f" ({'#' + str(best.run_number)})" if best.run_number is not None else ""
        params = ", ".join(f"{code(k)} = {escape(fmt_value(best.params[k]))}"
                           for k in view.varying if k in best.params)  # fmt: skip
        lines.append(f"- **Best trial:** {best.number}{run}: {code(metric.name)} "
                     f"{fmt_number(best.value)} with {params or 'no params'}")  # fmt: skip
    elif metric is not None:
        lines.append(f"- **Best trial:** none: no trial finished with {code(metric.name)}")
    if view.importance:
        found = ", ".join(f"{code(k)} {v:.2g}" for k, v in view.importance)
        lines.append(f"- **Parameter importance** ({escape(view.importance_note or '')}): {found}")
    elif view.importance_note:
        lines.append(f"- **Parameter importance:** {escape(view.importance_note)}")
    if view.noise:
        lines.append(f"- **Beyond noise?** {escape(view.noise)}")
    return lines


def _trials_table(view: SweepView, rows: Sequence[Any], code: Any, escape: Any) -> str:
    from expbook.report.markdown import _duration, _table

    params = list(dict.fromkeys(k for row in rows for k in row.params))
    metric = view.metric.name if view.metric else "value"
    header = ["trial", "run", "state", *(code(p) for p in params), code(metric),
              "pruned at", "duration"]  # fmt: skip
    align = ["right", "left", "left", *(["left"] * len(params)), "right", "right", "right"]
    best = view.best.number if view.best else None
    body = []
    for row in rows:
        value = fmt_number(row.value)
        body.append([
            str(row.number), f"#{row.run_number}" if row.run_number is not None else "—",
            row.state, *(escape(fmt_value(row.params[p])) if p in row.params else "—"
                         for p in params),
            f"**{value}**" if row.number == best else value,
            str(row.pruned_step) if row.pruned_step is not None else "—",
            _duration(row.duration, row.state),
        ])  # fmt: skip
    note = "Trials best first (as `expbook sweep show` lists them); the best in bold."
    return note + "\n\n" + _table(header, align, body)


# --- drawing (matplotlib, inside plots.render's fixed settings) ----------------------------------

STATE_COLORS = {"finished": "#8da4bf", "pruned": "#0e7490", "failed": "#dc2626",
                "crashed": "#7f1d1d", "stopped": "#9ca3af", "running": "#2563eb"}  # fmt: skip
BEST_COLOR = "#f59e0b"


def _draw_best_so_far(drawing: Any, spec: BestSoFarFigure) -> None:
    from matplotlib.ticker import MaxNLocator

    from expbook.report.plots import _maybe_log_y, _title

    axes = drawing.add_subplot()
    xs = [p.count for p in spec.points]
    colors = [STATE_COLORS.get(p.state, "#9ca3af") for p in spec.points]
    axes.scatter(xs, [p.value for p in spec.points], s=22, color=colors, zorder=3,
                 label="trial value")  # fmt: skip
    best = [(p.count, p.best) for p in spec.points if p.best is not None]
    if best:
        axes.step([x for x, _ in best], [y for _, y in best], where="post", color=BEST_COLOR,
                  linewidth=2.2, label="best so far", zorder=4)  # fmt: skip
    _maybe_log_y(axes, [p.value for p in spec.points])
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("trials completed")
    axes.set_ylabel(spec.metric)
    axes.set_title(_title(spec.title))
    axes.legend(loc="best", fontsize=8)


def _draw_importance(drawing: Any, spec: ImportanceFigure) -> None:
    from expbook.report.plots import _title

    axes = drawing.add_subplot()
    names = [name for name, _ in reversed(spec.items)]  # the most important at the top
    values = [value for _, value in reversed(spec.items)]
    bars = axes.barh(range(len(names)), values, color="#4e79a7", height=0.6)
    axes.bar_label(bars, labels=[fmt_number(v, 3) for v in values], padding=3, fontsize=8)
    axes.set_yticks(range(len(names)), labels=names)
    axes.set_xlim(0, max(1.0, max(values) * 1.12))
    axes.set_xlabel("importance (normalised: they sum to 1)")
    axes.grid(axis="y", visible=False)
    axes.set_title(_title(spec.title))


def _draw_trial_curves(drawing: Any, spec: TrialCurvesFigure) -> None:
    from matplotlib.lines import Line2D

    from expbook.report.plots import _finite, _maybe_log_y, _title

    axes = drawing.add_subplot()
    order = sorted(spec.curves, key=lambda c: (c.best, c.state == "pruned", c.trial))
    for curve in order:  # the pruned over the others, the best on top
        color = BEST_COLOR if curve.best else STATE_COLORS.get(curve.state, "#9ca3af")
        width = 2.2 if curve.best else 1.5 if curve.state == "pruned" else 1.0
        axes.plot(curve.x, _finite(curve.y), color=color, linewidth=width,
                  marker="o" if len(curve.x) == 1 else None, markersize=3)  # fmt: skip
        if curve.stop is not None:
            axes.plot([curve.stop[0]], [curve.stop[1]], marker="x", markersize=9,
                      markeredgewidth=2, color=STATE_COLORS["pruned"], zorder=5)  # fmt: skip
    _maybe_log_y(axes, [v for c in spec.curves for v in c.y])
    axes.set_xlabel("step")
    axes.set_ylabel(spec.metric)
    axes.set_title(_title(spec.title))
    states = sorted({c.state for c in spec.curves if not c.best})
    handles = [Line2D([], [], color=STATE_COLORS.get(s, "#9ca3af"), label=s) for s in states]
    if any(c.best for c in spec.curves):
        handles.append(Line2D([], [], color=BEST_COLOR, linewidth=2.2, label="best trial"))
    if any(c.stop for c in spec.curves):
        handles.append(Line2D([], [], color=STATE_COLORS["pruned"], marker="x", linestyle="none",
                              markeredgewidth=2, label="pruned here"))  # fmt: skip
    drawing.legend(handles=handles, loc="outside right upper", fontsize=8)


SIZES: dict[type, tuple[float, float]] = {
    BestSoFarFigure: (8.0, 4.5),
    ImportanceFigure: (8.0, 3.5),
    TrialCurvesFigure: (9.0, 4.5),
}
DRAW: dict[type, Any] = {
    BestSoFarFigure: _draw_best_so_far,
    ImportanceFigure: _draw_importance,
    TrialCurvesFigure: _draw_trial_curves,
}
