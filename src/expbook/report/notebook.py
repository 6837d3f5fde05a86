"""What the lab notebook says, computed from the store.

:func:`build_notebook` reads the runs and returns a plain data model: one :class:`Section` per
experiment (the question, its setup, the runs table, repeats and the best configuration, a log
of what changed from run to run, the conclusion) with the figures to draw. ``markdown.py``
renders it and ``plots.py`` draws its figures; nothing here formats numbers or draws.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from expbook.columns import (
    MISSING,
    Factor,
    ListSpread,
    canonical,
    common_metrics,
    describe_change,
    factors,
    list_spread,
    lower_is_better,
    split_key,
    varying_params,
)
from expbook.model import ArtifactRecord, ExperimentRecord, Note, RunRecord, Series
from expbook.report.figures import Figure, KeyMetric, curve_figures, param_figure, unit_of
from expbook.report.stats import (
    Difference,
    Estimate,
    Group,
    compare_values,
    estimate,
    group_repeats,
    is_seed,
)
from expbook.report.sweeps import SweepIndex, SweepSection
from expbook.report.text import anchor, file_slug, fmt_value
from expbook.store.base import RunQuery, Store

TITLE = "Lab notebook"
NO_EXPERIMENT = "Runs without an experiment"
MAX_PARAM_COLUMNS = 10
MAX_CHANGES = 8
MAX_CURVE_RUNS = 20
MAX_IMAGES = 8
"""Image artifacts embedded per run in the log (the first by name)."""
MAX_IMAGE_BYTES = 10 << 20
"""Learning curves overlay at most this many runs of a section: the best by the key metric."""
VALID_SPLITS = frozenset({"valid", "validation", "val", "eval", "dev"})
TEST_SPLITS = frozenset({"test"})


@dataclass(frozen=True, slots=True)
class Host:
    """A machine the runs ran on: ``gpus`` as (name, memory in bytes, count)."""

    name: str
    runs: int
    gpus: tuple[tuple[str, int | None, int], ...]
    cpu: str | None
    cpus: int | None
    ram_bytes: int | None


@dataclass(frozen=True, slots=True)
class Setup:
    """What the runs of a section share: params, code, machines, dates."""

    count: int
    first: str
    last: str
    started: float
    ended: float | None
    total_duration: float
    shared: tuple[tuple[str, Any], ...]
    commits: tuple[str, ...]
    first_commit: str | None
    last_commit: str | None
    dirty: tuple[str, ...]
    branches: tuple[str, ...]
    hosts: tuple[Host, ...]
    system: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    """Per run with system metrics or a pace (up to ``SYSTEM_RUNS``): its ref and the lines
    of ``expbook.system.summary`` ("GPU 0: util 21 % mean / 64 % peak, ...")."""


@dataclass(frozen=True, slots=True)
class RunRow:
    ref: str
    name: str
    params: tuple[Any, ...]
    metrics: tuple[float | None, ...]
    duration: float | None
    commit: str | None
    dirty: bool | None
    status: str


@dataclass(frozen=True, slots=True)
class RunsTable:
    params: tuple[str, ...]
    hidden_params: int
    metrics: tuple[str, ...]
    units: tuple[str | None, ...]
    rows: tuple[RunRow, ...]


@dataclass(frozen=True, slots=True)
class ConfigRow:
    """One configuration (a group of repeats) with an estimate per metric column."""

    label: str
    params: tuple[Any, ...]
    estimates: tuple[Estimate, ...]


@dataclass(frozen=True, slots=True)
class ConfigTable:
    params: tuple[str, ...]
    metrics: tuple[str, ...]
    units: tuple[str | None, ...]
    key: str | None
    rows: tuple[ConfigRow, ...]


@dataclass(frozen=True, slots=True)
class Choice:
    """A configuration ranked by the key metric."""

    label: str
    refs: tuple[str, ...]
    name: str
    params: tuple[tuple[str, Any], ...]
    estimate: Estimate


@dataclass(frozen=True, slots=True)
class Best:
    """The best configuration, the runner-up and the difference best - runner-up."""

    key: KeyMetric
    best: Choice
    runner_up: Choice | None
    difference: Difference | None
    configurations: int


@dataclass(frozen=True, slots=True)
class LogEntry:
    """A run in the log: what changed from the run it is compared with, notes, the error."""

    ref: str
    name: str
    status: str
    started_at: float
    duration: float | None
    change: str
    notes: tuple[Note, ...]
    error: str | None
    tags: tuple[str, ...]
    images: tuple[ArtifactRecord, ...] = ()
    """Image artifacts the run logged (embedded under the entry: ``artifact_file``)."""


@dataclass(frozen=True, slots=True)
class Section:
    """One experiment (or the runs without one)."""

    title: str
    anchor: str
    experiment: str | None
    description: str | None
    hypothesis: str | None
    conclusion: str | None
    run_count: int
    setup: Setup | None = None
    table: RunsTable | None = None
    key: KeyMetric | None = None
    configs: ConfigTable | None = None
    best: Best | None = None
    figures: tuple[Figure, ...] = ()
    log: tuple[LogEntry, ...] = ()
    lists: tuple[tuple[str, ListSpread], ...] = ()
    """The varying params that are lists of words, with what varies in them (``columns``)."""
    factors: tuple[Factor, ...] = ()
    """What the key metric is charted against: varying params, or their varying elements."""
    sweeps: tuple[SweepSection, ...] = ()
    """The sweeps some of whose trials are among the runs (``report/sweeps.py``)."""

    def spread(self, param: str) -> ListSpread | None:
        return dict(self.lists).get(param)

    @property
    def sweep_figures(self) -> tuple[Any, ...]:
        return tuple(figure for sweep in self.sweeps for figure in sweep.figures)


@dataclass(frozen=True, slots=True)
class Notebook:
    title: str
    where: str | None
    sections: tuple[Section, ...]

    @property
    def run_count(self) -> int:
        return sum(section.run_count for section in self.sections)

    @property
    def figures(self) -> tuple[Figure, ...]:
        return tuple(figure for section in self.sections
                     for figure in (*section.figures, *section.sweep_figures))  # fmt: skip

    @property
    def images(self) -> tuple[ArtifactRecord, ...]:
        """The image artifacts the log embeds."""
        return tuple(i for section in self.sections for entry in section.log for i in entry.images)


# --- the notebook -------------------------------------------------------------------------------


def build_notebook(
    store: Store,
    *,
    experiments: Sequence[str] = (),
    where: str | None = None,
    sweeps: Sequence[str] = (),
) -> Notebook:
    """The notebook of the runs matching ``where``: one section per experiment in
    ``experiments`` (in that order), or without ``experiments``, per experiment that has
    matching runs (oldest first) and one for matching runs without an experiment. With
    ``sweeps``, only those sweeps' trial runs; a section shows each sweep its runs are trials of.

    Raises:
        ExperimentNotFoundError: a name in ``experiments`` is not an experiment.
        FilterSyntaxError: ``where`` cannot be parsed.
        SweepNotFoundError: a name in ``sweeps`` is not a sweep.
    """
    index = SweepIndex(store, sweeps)
    selected = select_runs(store, experiments, where)
    if sweeps:
        trials = index.run_ids()
        selected = [(record, title, [run for run in runs if run.id in trials])
                    for record, title, runs in selected]  # fmt: skip
        selected = [item for item in selected if item[2] or experiments]
    prefixes: set[str] = set()
    sections = []
    for record, title, runs in selected:
        prefix = _unique(file_slug(title), prefixes)
        sections.append(build_section(store, record, title, runs, prefix, index))
    return Notebook(TITLE, where, tuple(sections))


def select_runs(
    store: Store, experiments: Sequence[str], where: str | None
) -> list[tuple[ExperimentRecord | None, str, list[RunRecord]]]:
    """(experiment, section title, runs in number order) per section."""
    if experiments:
        records = [store.get_experiment(name) for name in dict.fromkeys(experiments)]
        runs = store.runs(where, experiment=[r.name for r in records], sort="number")
        return [(r, r.name, [run for run in runs if run.experiment == r.name]) for r in records]
    by_name: dict[str | None, list[RunRecord]] = {}
    for run in store.runs(where, sort="number"):
        by_name.setdefault(run.experiment, []).append(run)
    known = {record.name: record for record in store.list_experiments()}
    order = [name for name in known if name in by_name]
    order += sorted(name for name in by_name if name is not None and name not in known)
    found: list[tuple[ExperimentRecord | None, str, list[RunRecord]]] = [
        (known.get(name), name, by_name[name]) for name in order if name is not None
    ]
    if None in by_name:
        found.append((None, NO_EXPERIMENT, by_name[None]))
    return found


def _unique(slug: str, taken: set[str]) -> str:
    candidate, number = slug, 2
    while candidate in taken:
        candidate, number = f"{slug}-{number}", number + 1
    taken.add(candidate)
    return candidate


# --- one section --------------------------------------------------------------------------------


def build_section(
    store: Store,
    record: ExperimentRecord | None,
    title: str,
    runs: Sequence[RunRecord],
    prefix: str,
    sweeps: SweepIndex | None = None,
) -> Section:
    """The section of one experiment's runs (given in number order), with the ``sweeps`` their
    runs are trials of."""
    base = Section(
        title,
        anchor(title),
        record.name if record else None,
        description=record.description if record else None,
        hypothesis=record.hypothesis if record else None,
        conclusion=record.conclusion if record else None,
        run_count=len(runs),
    )
    if not runs:
        return base
    key = choose_key_metric(runs)
    params = [p for p in varying_params(runs) if not is_seed(p)]
    groups = group_repeats(runs)
    metrics = metric_columns(runs, key)
    first = "First run of the experiment." if record else "First run in this section."
    found = factors(runs, params)
    return dataclasses.replace(
        base,
        setup=build_setup(runs, store),
        table=runs_table(runs, varying_params(runs), metrics),
        key=key,
        configs=config_table(groups, params, metrics, runs, key),
        best=find_best(groups, params, key) if key else None,
        figures=tuple(_figures(store, prefix, title, runs, groups, found, key)),
        log=tuple(build_log(store, runs, first)),
        lists=list_params(runs, varying_params(runs)),
        factors=tuple(found),
        sweeps=sweeps.sections(runs, prefix) if sweeps else (),
    )


def list_params(
    runs: Sequence[RunRecord], params: Sequence[str]
) -> tuple[tuple[str, ListSpread], ...]:
    """The params among ``params`` that are lists of words, with what varies in them."""
    spreads = [(k, list_spread([run.params.get(k, MISSING) for run in runs])) for k in params]
    return tuple((key, spread) for key, spread in spreads if spread is not None)


def choose_key_metric(runs: Sequence[RunRecord]) -> KeyMetric | None:
    """A validation metric if any, else a test metric, else the first common metric; among
    several, a score (``valid/acc``) before an error (``valid/loss``), then alphabetically.
    Only metrics at least half as many runs have as the most common one are candidates."""
    counts = Counter(k for run in runs for k in run.metrics if not k.startswith("system/"))
    if not counts:
        return None
    most = max(counts.values())
    candidates = sorted(k for k, count in counts.items() if count * 2 >= most)
    for splits in (VALID_SPLITS, TEST_SPLITS):
        found = [k for k in candidates if (split_key(k)[0] or "").lower() in splits]
        if found:
            return _key_metric(runs, min(found, key=lambda k: (lower_is_better(k), k)))
    return _key_metric(runs, common_metrics(runs)[0])


def _key_metric(runs: Sequence[RunRecord], key: str) -> KeyMetric:
    return KeyMetric(key, unit_of(runs, key), lower_is_better(key))


def metric_columns(runs: Sequence[RunRecord], key: KeyMetric | None) -> list[str]:
    """The common metrics (as ``expbook ls`` shows them), with the key metric always in."""
    columns = common_metrics(runs)
    if key is not None and key.key not in columns:
        columns = sorted([*columns, key.key])
    return columns


SYSTEM_RUNS = 12
"""Runs whose system lines the setup states (the last ones of the section, when more)."""


def build_setup(runs: Sequence[RunRecord], store: Store | None = None) -> Setup:
    ended = [run.ended_at for run in runs if run.ended_at is not None]
    durations = [run.duration or 0.0 for run in runs if run.status.is_terminal()]
    commits = [run.git.short_commit for run in runs if run.git.short_commit]
    return Setup(
        count=len(runs),
        first=runs[0].ref,
        last=runs[-1].ref,
        started=min(run.started_at for run in runs),
        ended=max(ended) if ended else None,
        total_duration=math.fsum(durations),
        shared=shared_params(runs),
        commits=tuple(dict.fromkeys(commits)),
        first_commit=commits[0] if commits else None,
        last_commit=commits[-1] if commits else None,
        dirty=tuple(run.ref for run in runs if run.git.dirty),
        branches=tuple(sorted({run.git.branch for run in runs if run.git.branch})),
        hosts=hosts(runs),
        system=_system(store, runs) if store is not None else (),
    )


def _system(
    store: Store, runs: Sequence[RunRecord]
) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    from expbook.system.summary import system_lines

    found = ((run.ref, tuple(system_lines(store, run))) for run in runs[-SYSTEM_RUNS:])
    return tuple((ref, lines) for ref, lines in found if lines)


def shared_params(runs: Sequence[RunRecord]) -> tuple[tuple[str, Any], ...]:
    """Params every run has with the same value, sorted by key."""
    first = runs[0].params
    same = [
        key for key in sorted(first)
        if all(canonical(run.params.get(key, MISSING)) == canonical(first[key]) for run in runs)
    ]  # fmt: skip
    return tuple((key, first[key]) for key in same)


def hosts(runs: Sequence[RunRecord]) -> tuple[Host, ...]:
    """The machines, by name, each described by its latest run."""
    latest: dict[str, RunRecord] = {}
    counts: Counter[str] = Counter()
    for run in runs:
        name = run.hostname or run.host.get("hostname") or "unknown host"
        latest[name] = run
        counts[name] += 1
    return tuple(_host(name, counts[name], latest[name].host) for name in sorted(latest))


def _host(name: str, runs: int, host: Any) -> Host:
    gpus: Counter[tuple[str, int | None]] = Counter()
    for gpu in host.get("gpus") or []:
        gpus[(str(gpu.get("name") or "GPU"), gpu.get("memory_bytes"))] += 1
    listed = tuple((gpu, memory, count) for (gpu, memory), count in sorted(
        gpus.items(), key=lambda item: (item[0][0], item[0][1] or 0)))  # fmt: skip
    return Host(name, runs, listed, host.get("cpu"), host.get("cpus"), host.get("ram_bytes"))


def runs_table(
    runs: Sequence[RunRecord], params: Sequence[str], metrics: Sequence[str]
) -> RunsTable:
    shown = list(params[:MAX_PARAM_COLUMNS])
    rows = tuple(
        RunRow(
            ref=run.ref,
            name=run.name,
            params=tuple(run.params.get(key, MISSING) for key in shown),
            metrics=tuple(run.metric(key) for key in metrics),
            duration=run.duration if run.status.is_terminal() else None,
            commit=run.git.short_commit,
            dirty=run.git.dirty,
            status=run.status.value,
        )
        for run in runs
    )
    units = tuple(unit_of(runs, key) for key in metrics)
    return RunsTable(tuple(shown), len(params) - len(shown), tuple(metrics), units, rows)


def config_table(
    groups: Sequence[Group],
    params: Sequence[str],
    metrics: Sequence[str],
    runs: Sequence[RunRecord],
    key: KeyMetric | None,
) -> ConfigTable | None:
    """Mean ± std per configuration, when some configuration was repeated."""
    if not any(len(group.runs) > 1 for group in groups):
        return None
    rows = tuple(
        ConfigRow(
            label=group.label,
            params=tuple(group.params.get(p, MISSING) for p in params[:MAX_PARAM_COLUMNS]),
            estimates=tuple(estimate(group.values(m)) for m in metrics),
        )
        for group in groups
    )
    units = tuple(unit_of(runs, m) for m in metrics)
    return ConfigTable(tuple(params[:MAX_PARAM_COLUMNS]), tuple(metrics), units,
                       key.key if key else None, rows)  # fmt: skip


def find_best(groups: Sequence[Group], params: Sequence[str], key: KeyMetric) -> Best | None:
    """The configuration with the best mean of the key metric (NaN ranks last; ties go to the
    earlier configuration) and whether it is distinguishable from the runner-up."""
    scored = [(group, estimate(group.values(key.key))) for group in groups]
    scored = [(group, found) for group, found in scored if found.n]
    if not scored:
        return None
    scored.sort(key=lambda item: _rank(item[1].mean, key.minimise))
    best = _choice(*scored[0], params)
    if len(scored) == 1:
        return Best(key, best, None, None, 1)
    runner_up = _choice(*scored[1], params)
    difference = compare_values(scored[1][0].values(key.key), scored[0][0].values(key.key))
    return Best(key, best, runner_up, difference, len(scored))


def _rank(mean: float, minimise: bool) -> tuple[bool, float]:
    if math.isnan(mean):
        return (True, 0.0)
    return (False, mean if minimise else -mean)


def _choice(group: Group, found: Estimate, params: Sequence[str]) -> Choice:
    shown = tuple((p, group.params.get(p, MISSING)) for p in params)
    refs = tuple(run.ref for run in group.runs)
    return Choice(group.label, refs, group.runs[0].name, shown, found)


# --- the log: what changed from run to run ------------------------------------------------------


def build_log(store: Store, runs: Sequence[RunRecord], first: str) -> list[LogEntry]:
    """Each run compared with its parent (when it has one) or else the previous run."""
    by_id = {run.id: run for run in runs}
    entries = []
    previous: RunRecord | None = None
    for run in runs:
        parent = _parent(store, run, by_id)
        if parent is not None:
            change = what_changed(run, parent, parent=True)
        else:
            change = what_changed(run, previous) if previous else first
        entries.append(_entry(run, change, _images(store, run)))
        previous = run
    return entries


def _parent(store: Store, run: RunRecord, by_id: dict[str, RunRecord]) -> RunRecord | None:
    if run.parent_id is None:
        return None
    if run.parent_id in by_id:
        return by_id[run.parent_id]
    found = store.find_runs(RunQuery(ids=(run.parent_id,)))
    return found[0] if found else None


def _images(store: Store, run: RunRecord) -> tuple[ArtifactRecord, ...]:
    """The run's image artifacts to embed: up to ``MAX_IMAGES``, each up to 10 MiB."""
    from expbook.artifacts import image_names

    found = [a for a in image_names(store.list_artifacts(run.id)) if a.size <= MAX_IMAGE_BYTES]
    return tuple(found[:MAX_IMAGES])


def artifact_file(artifact: ArtifactRecord) -> str:
    """An embedded image artifact's file name in the notebook's folder (by content)."""
    extension = artifact.name.rsplit(".", 1)[-1].lower()
    return f"artifact-{artifact.sha256[:16]}.{extension}"


def _entry(run: RunRecord, change: str, images: tuple[ArtifactRecord, ...] = ()) -> LogEntry:
    error = None
    if run.error:
        lines = [line.strip() for line in run.error.strip().splitlines() if line.strip()]
        error = lines[-1] if lines else None
    notes = tuple(sorted(run.notes, key=lambda note: (note.created_at, note.id)))
    duration = run.duration if run.status.is_terminal() else None
    return LogEntry(run.ref, run.name, run.status.value, run.started_at, duration, change,
                    notes, error, tuple(run.tags), images)  # fmt: skip


def what_changed(run: RunRecord, reference: RunRecord, *, parent: bool = False) -> str:
    """``Same as #4 except lr_schedule: cosine → exponential.`` (``parent #4`` when
    ``reference`` is the run's parent); a run that changed only seeds is called a repeat."""
    keys = sorted(set(run.params) | set(reference.params))
    changed = [
        key for key in keys
        if canonical(run.params.get(key, MISSING)) != canonical(reference.params.get(key, MISSING))
    ]  # fmt: skip
    who = f"parent {reference.ref}" if parent else reference.ref
    if not changed:
        return f"Same params as {who}."
    parts = [_change(key, reference.params.get(key, MISSING), run.params.get(key, MISSING))
             for key in changed[:MAX_CHANGES]]  # fmt: skip
    if len(changed) > MAX_CHANGES:
        parts.append(f"and {len(changed) - MAX_CHANGES} more")
    repeat = " (a repeat: only the seed changed)" if all(map(is_seed, changed)) else ""
    return f"Same as {who} except {', '.join(parts)}{repeat}."


def _change(key: str, before: Any, after: Any) -> str:
    """``lr: 0.001 → 0.0003``; for list-like params (Cargo features, repeated flags) what
    changed element-wise: ``features: -ml_target_full +ml_target_folded``."""
    elements = describe_change(before, after)
    if elements is not None:
        return f"{key}: {elements}"
    return f"{key}: {fmt_value(before)} → {fmt_value(after)}"


# --- figures ------------------------------------------------------------------------------------


def _figures(
    store: Store,
    prefix: str,
    title: str,
    runs: Sequence[RunRecord],
    groups: Sequence[Group],
    params: Sequence[Factor],
    key: KeyMetric | None,
) -> list[Figure]:
    found: list[Figure] = []
    if key is not None:
        figure = param_figure(prefix, title, groups, params, key)
        if figure is not None:
            found.append(figure)
    shown = curve_runs(runs, key)
    found += curve_figures(prefix, title, shown, read_series(store, shown), key, len(runs))
    return found


def curve_runs(runs: Sequence[RunRecord], key: KeyMetric | None) -> list[RunRecord]:
    """All runs, or the best :data:`MAX_CURVE_RUNS` by the key metric, in number order."""
    if len(runs) <= MAX_CURVE_RUNS or key is None:
        return list(runs[:MAX_CURVE_RUNS])
    ranked = sorted(runs, key=lambda run: _rank(_value(run, key.key), key.minimise))
    return sorted(ranked[:MAX_CURVE_RUNS], key=lambda run: run.number)


def _value(run: RunRecord, key: str) -> float:
    value = run.metric(key)
    return math.nan if value is None else value


def read_series(store: Store, runs: Sequence[RunRecord]) -> dict[str, dict[str, Series]]:
    """The logged series (system metrics left out) of the runs: run id → key → series."""
    keys = sorted({key for run in runs for key, summary in run.metrics.items()
                   if summary.count and not key.startswith("system/")})  # fmt: skip
    found: dict[str, dict[str, Series]] = {run.id: {} for run in runs}
    if keys:
        for series in store.iter_series([run.id for run in runs], keys):
            found[series.run_id][series.key] = _for_plotting(series)
    return found


PLOT_POINTS = 3000
"""A figure is ~900 px wide: longer series are reduced to each bucket's first, min and max."""


def _for_plotting(series: Series) -> Series:
    if len(series) <= PLOT_POINTS:
        return series
    from array import array

    from expbook.downsample import downsample

    kept = downsample(series, PLOT_POINTS)
    return Series(series.run_id, series.key, array("q", kept.steps.tolist()),
                  array("d", kept.values.tolist()), array("d", kept.times.tolist()),
                  array("d", kept.epochs.tolist()))  # fmt: skip
