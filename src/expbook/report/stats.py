"""Statistics people can trust: repeats of one configuration, their spread, and whether a
difference between two configurations is bigger than run-to-run noise.

Runs that share every param except their seed are *repeats* of one configuration
(:func:`group_repeats`); runs without a seed param are never repeats. A group's metric is
summarised as mean ± sample standard deviation with a 95 % confidence interval from Student's t
(:func:`estimate`). Two groups (or two runs) are compared with Welch's t-test, which does not
assume equal variances (:func:`compare_values`). With a single run on a side there is nothing to
estimate noise from, and the verdict says so instead of pretending.

scipy is imported inside the functions that need it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from expbook.columns import MISSING, canonical, lower_is_better
from expbook.model import RunRecord

SEED_NAMES = frozenset({"seed", "random_seed", "manual_seed", "global_seed", "rng_seed"})
"""Param names (the last part of a flattened key, ``-`` read as ``_``) that are a seed."""

CONFIDENCE = 0.95
NOISE_UNKNOWN = "n = 1: run-to-run noise unknown; repeat it with `--repeat`"


def is_seed(key: str, extra: Iterable[str] = ()) -> bool:
    """Whether param ``key`` (``seed``, ``training.seed``, ``--random-seed``) is a seed."""
    name = key.rsplit(".", 1)[-1].lstrip("-").replace("-", "_").lower()
    extras = {e.lstrip("-").replace("-", "_").lower() for e in extra}
    return name in SEED_NAMES or name in extras or key in extras


@dataclass(frozen=True, slots=True)
class Group:
    """Runs with the same params once seeds are left out: repeats of one configuration."""

    params: dict[str, object]
    runs: tuple[RunRecord, ...]

    @property
    def label(self) -> str:
        """``#4`` for one run, ``#4, #7, #9`` for repeats."""
        return ", ".join(run.ref for run in self.runs)

    def values(self, metric: str, which: str = "last") -> list[float]:
        """The metric's value in each run that has it (NaN included: a diverged run is a
        result): its latest value, or (``which``, see :func:`metric_value`) its min, max or
        best."""
        found = [metric_value(run, metric, which) for run in self.runs]
        return [value for value in found if value is not None]

    def having(self, metric: str) -> tuple[RunRecord, ...]:
        """The runs that have ``metric`` (those :meth:`values` reads, in the same order)."""
        return tuple(run for run in self.runs if metric in run.metrics)


VALUES = ("last", "min", "max", "best")
"""Which value of a run's metric stands for the run (:func:`metric_value`)."""


def resolve_value(key: str, which: str | None) -> str | None:
    """The value of metric ``key`` that ``which`` names: ``best`` is ``min`` for an error
    (``loss``, ``err``...; :func:`expbook.columns.lower_is_better`), else ``max``; any other
    ``which`` (``last``, ``min``, ``max``, None) is itself. The one place that rule lives: the
    runs table, its sort, the export and the statistics all ask here."""
    if which == "best":
        return "min" if lower_is_better(key) else "max"
    return which


def metric_value(run: RunRecord, key: str, which: str = "last") -> float | None:
    """A run's value of metric ``key`` from its summary (no series is read): ``last`` (the
    latest value), ``min``, ``max``, or ``best`` (min for an error such as ``loss``, else max;
    see :func:`expbook.columns.lower_is_better`). A metric without logged points (a value set
    directly) or only NaN points has no min/max: its latest value stands in. None when the run
    does not have the metric."""
    summary = run.metrics.get(key)
    if summary is None:
        return None
    which = resolve_value(key, which)
    if which == "min" and summary.min is not None:
        return summary.min
    if which == "max" and summary.max is not None:
        return summary.max
    return summary.value


def group_repeats(runs: Sequence[RunRecord], seed_params: Iterable[str] = ()) -> list[Group]:
    """Group runs whose params are equal except for seeds: params named like a seed (see
    :func:`is_seed`), the keys in ``seed_params``, and the params that runs name in a
    ``seed:PARAM`` tag (``expbook run --repeat --seed-flag`` adds it). Only runs that have a
    seed are repeats: two runs without one differ in nothing that is known to change the
    result (the same deterministic program twice), so each is a group of its own, and their
    run-to-run noise stays unknown instead of reading as 0. Groups keep the order of their
    first run; runs inside a group keep theirs."""
    extra = (*seed_params, *seed_tags(runs))
    groups: dict[object, list[RunRecord]] = {}
    shared: dict[object, dict[str, object]] = {}
    seeds: dict[str, bool] = {}  # is_seed per key, worked out once
    text = _CanonicalTexts()
    for run in runs:  # 10,021 runs: this loop is a third of a grouped table's time; kept lean
        kept = []
        seeded = False
        for k, v in sorted(run.params.items()):
            seed = seeds.get(k)
            if seed is None:
                seed = seeds[k] = is_seed(k, extra)
            if seed:
                seeded = True
            else:
                kept.append((k, v))
        key = tuple([(k, text(v)) for k, v in kept]) if seeded else run.id
        members = groups.get(key)
        if members is None:
            groups[key] = [run]
            shared[key] = dict(kept)
        else:
            members.append(run)
    return [Group(shared[key], tuple(members)) for key, members in groups.items()]


class _CanonicalTexts:
    """:func:`expbook.columns.canonical` of param values, worked out once per distinct
    value: scalars by type and value, lists and objects by identity (a store decodes equal
    texts once and shares the value, so 10,000 runs hold a few distinct objects). The values
    must stay alive while this is used: they are held here."""

    def __init__(self) -> None:
        self.scalars: dict[tuple[type, object], str] = {}
        self.objects: dict[int, tuple[object, str]] = {}

    def __call__(self, value: object) -> str:
        if value is MISSING:
            return canonical(value)
        if isinstance(value, list | dict):
            known = self.objects.get(id(value))
            if known is None:
                known = self.objects[id(value)] = (value, canonical(value))
            return known[1]
        found = self.scalars.get((type(value), value))
        if found is None:
            found = self.scalars[(type(value), value)] = canonical(value)
        return found


def group_by_params(runs: Sequence[RunRecord], keys: Sequence[str]) -> list[Group]:
    """Group runs by their values of the params ``keys`` (equal as
    :func:`expbook.columns.canonical` sees them; a run without one of the params groups under
    None for it). Unlike :func:`group_repeats`, every run belongs to a group of the runs that
    share those values, seeded or not. A group's ``params`` leave out the keys its runs do not
    have. Groups keep the order of their first run; runs inside a group keep theirs."""
    groups: dict[tuple[str, ...], list[RunRecord]] = {}
    shared: dict[tuple[str, ...], dict[str, object]] = {}
    text = _CanonicalTexts()
    for run in runs:
        key = tuple(text(run.params.get(k, MISSING)) for k in keys)
        groups.setdefault(key, []).append(run)
        shared.setdefault(key, {k: run.params[k] for k in keys if k in run.params})
    return [Group(shared[key], tuple(members)) for key, members in groups.items()]


def seed_tags(runs: Iterable[RunRecord]) -> set[str]:
    """Params the runs' ``seed:PARAM`` tags declare to be seeds."""
    return {tag[5:] for run in runs for tag in run.tags if tag.startswith("seed:") and tag[5:]}


def repeats_of(run: RunRecord, candidates: Sequence[RunRecord]) -> tuple[RunRecord, ...]:
    """The runs among ``candidates`` (``run`` included) that repeat ``run``'s configuration."""
    for group in group_repeats([run, *(c for c in candidates if c.id != run.id)]):
        if any(member.id == run.id for member in group.runs):
            return group.runs
    return (run,)  # pragma: no cover - run is always in a group


@dataclass(frozen=True, slots=True)
class Estimate:
    """A metric over ``n`` repeats: mean, sample standard deviation (NaN for n < 2) and the
    ``confidence`` interval of the mean from Student's t (NaN for n < 2)."""

    n: int
    mean: float
    std: float
    low: float
    high: float
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def format(self, digits: int = 4) -> str:
        """``0.9123 ± 0.0041 (n=3)``, or ``0.9123 (n=1)`` when the spread is unknown."""
        if self.n == 0:
            return "—"
        if self.n < 2 or math.isnan(self.std):
            return f"{self.mean:.{digits}g} (n={self.n})"
        return f"{self.mean:.{digits}g} ± {self.std:.2g} (n={self.n})"


def estimate(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Summarise repeated measurements (NaN values make the result NaN, as they should).

    The same numbers as :func:`estimate_columns` gives for one column (a test checks it); the
    sums here are exact (:func:`math.fsum`), and n < 2 needs neither numpy nor scipy."""
    n = len(values)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan, confidence)
    mean = _sum(values) / n
    if n < 2:
        return Estimate(1, mean, math.nan, math.nan, math.nan, confidence)
    std = math.sqrt(_sum([(v - mean) ** 2 for v in values]) / (n - 1))
    margin = t_quantile(n, confidence) * std / math.sqrt(n)
    return Estimate(n, mean, std, mean - margin, mean + margin, confidence)


def _sum(values: Sequence[float]) -> float:
    """The exact sum; inf - inf is NaN and an overflow is inf, as a plain sum has them."""
    try:
        return math.fsum(values)
    except (ValueError, OverflowError):
        return sum(values, 0.0)


def t_quantile(n: Any, confidence: float = CONFIDENCE) -> Any:
    """Student's t quantile that a ``confidence`` interval of the mean of ``n`` values spans
    (n - 1 degrees of freedom); NaN where n < 2. ``n`` is a count (a float comes back,
    remembered: a grouped table asks for the same few counts thousands of times) or an array
    of counts (an array)."""
    if isinstance(n, int):
        return _t_quantile(n, float(confidence))
    import numpy as np
    from scipy import stats

    counts = np.asarray(n)
    with np.errstate(invalid="ignore"):
        found = stats.t.ppf((1 + confidence) / 2, np.maximum(counts - 1, 1))
    return np.where(counts >= 2, found, np.nan)


@functools.lru_cache(maxsize=4096)
def _t_quantile(n: int, confidence: float) -> float:
    if n < 2:
        return math.nan
    from scipy import stats

    return float(stats.t.ppf((1 + confidence) / 2, n - 1))


@dataclass(frozen=True, slots=True)
class Estimates:
    """:class:`Estimate` for many columns at once (numpy arrays, one entry per column)."""

    n: Any
    mean: Any
    std: Any
    low: Any
    high: Any
    confidence: float = CONFIDENCE


def estimate_columns(
    matrix: Any, present: Any = None, confidence: float = CONFIDENCE
) -> Estimates:
    """:func:`estimate` of each column of ``matrix`` (rows: repeats, such as runs; columns:
    what is estimated, such as steps), vectorised. ``present`` (a boolean array of the same
    shape) marks the values there are; the others are left out (default: every value). As in
    :func:`estimate`, a NaN value that is present makes its column's results NaN; n = 0 gives
    NaN everywhere, n = 1 the mean only."""
    import numpy as np

    values = np.asarray(matrix, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"estimate_columns takes a 2-d matrix, not {values.ndim}-d")
    there = np.ones(values.shape, bool) if present is None else np.asarray(present, bool)
    n = there.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.where(there, values, 0.0).sum(axis=0) / n
        deviations = np.where(there, (values - mean) ** 2, 0.0).sum(axis=0)
        spread = n >= 2
        std = np.where(spread, np.sqrt(deviations / np.maximum(n - 1, 1)), np.nan)
        margin = t_quantile(n, confidence) * std / np.sqrt(n)
    mean = np.where(n > 0, mean, np.nan)
    return Estimates(n, mean, std, mean - margin, mean + margin, confidence)


@dataclass(frozen=True, slots=True)
class Difference:
    """B minus A on one metric: the difference of means with its Welch confidence interval,
    Welch's t statistic, degrees of freedom and two-sided p-value (NaN where noise is unknown),
    and a plain verdict."""

    a: Estimate
    b: Estimate
    diff: float
    low: float
    high: float
    t: float
    df: float
    p_value: float
    verdict: str

    @property
    def distinguishable(self) -> bool | None:
        """True when the interval excludes 0, False when it includes it, None when unknown."""
        if math.isnan(self.low) or math.isnan(self.high):
            return None
        return not (self.low <= 0 <= self.high)


def compare_values(
    a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
) -> Difference:
    """Compare two sets of repeats (each a list of the metric's values)."""
    first, second = estimate(a, confidence), estimate(b, confidence)
    diff = second.mean - first.mean
    if first.n < 2 or second.n < 2:
        nan = math.nan
        return Difference(first, second, diff, nan, nan, nan, nan, nan, NOISE_UNKNOWN)
    from scipy import stats

    va, vb = first.std**2 / first.n, second.std**2 / second.n
    se = math.sqrt(va + vb)
    if se == 0:  # identical repeats on both sides: no noise at all
        same = diff == 0
        verdict = "no difference (every repeat identical)" if same else "different (no noise)"
        return Difference(first, second, diff, diff, diff, math.inf, math.nan, float(same),
                          verdict)  # fmt: skip
    df = (va + vb) ** 2 / (va**2 / (first.n - 1) + vb**2 / (second.n - 1))
    t = diff / se
    margin = float(stats.t.ppf((1 + confidence) / 2, df)) * se
    p_value = float(2 * stats.t.sf(abs(t), df))
    low, high = diff - margin, diff + margin
    why = f"{confidence:.0%} interval {{}} 0, p = {p_value:.2g}"
    if low <= 0 <= high:
        verdict = f"not distinguishable from noise ({why.format('includes')})"
    else:
        verdict = f"distinguishable ({why.format('excludes')})"
    return Difference(first, second, diff, low, high, t, df, p_value, verdict)
