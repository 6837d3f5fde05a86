"""The compare page's statistics: ``GET /api/compare`` and ``GET /api/compare/series``.

``/api/compare`` groups some runs (by params, by every param but the seeds, or as the client
lists them) and compares every group with a baseline group exactly as ``expbook compare A B``
does: each side summarised by :func:`expbook.report.stats.estimate`, the difference by
:func:`expbook.report.stats.compare_values` (Welch's t-test), with the same JSON fields as
``expbook compare --json``. ``/api/compare/series`` gives, per group and metric key, the mean
curve with its band at each step: the Student's t confidence interval of the mean (the interval
:func:`~expbook.report.stats.estimate` gives, computed for all steps at once) and the min-max
range. The page draws what these compute; it computes no statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from expbook.columns import canonical, common_metrics, lower_is_better, unknown_keys
from expbook.errors import MetricNotFoundError
from expbook.model import RunRecord
from expbook.server import schemas
from expbook.server.api import READ, StoreDep, errors
from expbook.server.encoding import ApiJSON, float_list
from expbook.server.groups import differing_keys, estimate_fields
from expbook.store.base import Store

MAX_RUNS = 400
MAX_KEYS = 50
Number = schemas.Number

router = APIRouter(prefix="/api", default_response_class=ApiJSON, responses=errors(400, 422, 503))

# --- parameters ---------------------------------------------------------------------------------

RunsQuery = Annotated[
    str | None,
    Query(description="the runs to group, comma-separated refs in order: 3,7,9 (or use group)",
          examples=["1,2,3"]),
]  # fmt: skip
GroupQuery = Annotated[
    list[str],
    Query(description="an explicit group of runs, comma-separated (repeat it for each group; "
          "instead of runs and group_by): group=1,2,3&group=4,5,6"),
]  # fmt: skip
GroupByQuery = Annotated[
    list[str],
    Query(description="group the runs by these params (repeat it): params.KEY, or * for every "
          "param but the seeds (repeats of a configuration, as expbook compare finds them); "
          "none: each run is a group of its own"),
]  # fmt: skip
SeedQuery = Annotated[
    list[str],
    Query(description="with group_by=*: another param that is a seed (repeatable), as "
          "expbook compare --seed-param"),
]  # fmt: skip
ConfidenceQuery = Annotated[
    float, Query(ge=0.5, le=0.999, description="the confidence level of the intervals")
]
MetricsQuery = Annotated[
    str | None, Query(description="comma-separated metric keys [default: those the runs share]")
]
ValueQuery = Annotated[
    Literal["last", "min", "max", "best"],
    Query(description="which value of each run's metric counts (best: min for an error like "
          "loss, else max); expbook compare uses last"),
]  # fmt: skip
BaselineQuery = Annotated[
    int,
    Query(ge=0, le=MAX_RUNS, description="the index of the group the others are compared with"),
]
PointsQuery = Annotated[
    int,
    Query(ge=4, le=100_000, description="at most this many steps per curve; beyond, steps are "
          "bucketed"),
]  # fmt: skip


# --- responses ----------------------------------------------------------------------------------


class GroupMetric(schemas.MetricEstimate):
    noise_unknown: bool = Field(
        description="n < 2 for this metric (the group's other runs lack it, or the group has "
        "one run): nothing to estimate run-to-run noise from"
    )


class CompareGroup(BaseModel):
    label: str = Field(description="the group's params as text (hidden=128), or its run")
    params: dict[str, Any] = Field(description="the params its runs share (the grouping keys)")
    n: int = Field(description="runs in the group")
    noise_unknown: bool = Field(description="n = 1: nothing to estimate run-to-run noise from "
                                "(per metric: metrics.KEY.noise_unknown)")  # fmt: skip
    runs: list[int] = Field(description="the group's run numbers")
    metrics: dict[str, GroupMetric] = Field(description="per metric")


class Comparison(BaseModel):
    """One group (B) against the baseline group (A) on one metric: the fields of
    ``expbook compare A B --json``."""

    group: int = Field(description="the index of group B in groups")
    baseline: int = Field(description="the index of group A (the baseline)")
    metric: str
    lower_is_better: bool
    a: dict[str, Any] = Field(description="the baseline: runs, values, n, mean, std, ci")
    b: dict[str, Any] = Field(description="this group: runs, values, n, mean, std, ci")
    difference: Number = Field(description="mean of B minus mean of A")
    ci: list[Number] = Field(description="the difference's Welch confidence interval")
    confidence: float
    t: Number = Field(description="Welch's t (NaN when a side has n < 2)")
    df: Number = Field(description="Welch-Satterthwaite degrees of freedom")
    p_value: Number = Field(description="two-sided p-value of Welch's t-test")
    distinguishable: bool | None = Field(description="the interval excludes 0; null: unknown")
    verdict: str = Field(description="what expbook compare prints")


class CompareAnswer(BaseModel):
    """``GET /api/compare``: groups of runs and each compared with the baseline group."""

    group_by: list[str] | None = Field(description="params.KEY or ['*']; [] each run alone; "
                                       "null for explicit groups")  # fmt: skip
    value: Literal["last", "min", "max", "best"]
    confidence: float
    baseline: int = Field(description="the index of the baseline group")
    params: list[str] = Field(description="params whose value differs between the groups")
    metrics: list[str]
    lower_is_better: dict[str, bool] = Field(description="per metric: min is best (loss, err)")
    groups: list[CompareGroup]
    comparisons: dict[str, list[Comparison]] = Field(
        description="per metric, each group but the baseline against it, in group order"
    )


class GroupSeries(BaseModel):
    group: int = Field(description="the index of the group")
    key: str
    steps: list[int] = Field(
        description="steps where one of the group's runs logged (with more than points, each "
        "bucket's first)"
    )
    n: list[int] = Field(description="runs with a value at each step")
    mean: list[Number]
    std: list[Number] = Field(description="null where n < 2")
    low: list[Number] = Field(description="the mean's confidence interval (t); null where n < 2")
    high: list[Number]
    min: list[Number]
    max: list[Number]


class SeriesAnswer(BaseModel):
    """``GET /api/compare/series``: each group's mean curve with its bands."""

    confidence: float
    groups: list[dict[str, Any]] = Field(description="[{label, n, runs}] in order")
    series: list[GroupSeries]


# --- grouping -----------------------------------------------------------------------------------


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _label(params: dict[str, Any], keys: Sequence[str], runs: Sequence[RunRecord]) -> str:
    from expbook.server.encoding import json_safe

    shown = [f"{key}={_text(json_safe(params[key]))}" for key in keys if key in params]
    return " ".join(shown) or ", ".join(f"#{run.number}" for run in runs)


def _labels(
    answer: list[str] | None, groups: Sequence[tuple[dict[str, Any], Sequence[RunRecord]]],
    differing: list[str],
) -> list[str]:  # fmt: skip
    """Each group's label: its grouping params' values (``hidden=128 lr=0.01``), or for a run
    alone (no group_by) ``#3 name``."""
    if answer == []:
        return [f"#{members[0].number} {members[0].name}" for _, members in groups]
    keys = differing if answer is None or answer == ["*"] else [
        key.removeprefix("params.") for key in answer
    ]  # fmt: skip
    return [_label(params, keys, members) for params, members in groups]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else canonical(value)


Groups = list[tuple[dict[str, Any], tuple[RunRecord, ...]]]
"""Each group's shared params and its runs."""


def resolve_groups(
    store: Store, runs: str | None, group: Sequence[str], group_by: Sequence[str],
    seed_param: Sequence[str],
) -> tuple[list[str] | None, Groups, list[str]]:  # fmt: skip
    """(group_by as answered, [(params, runs)] per group, the params that differ).

    Raises:
        HTTPException: 400 naming what is wrong with the request.
    """
    from expbook.report.stats import group_by_params, group_repeats
    from expbook.server.groups import group_keys

    if group and (runs or group_by):
        raise HTTPException(400, "give either group (explicit groups) or runs and group_by")
    if group:
        sides = [_csv(text) for text in group]
        empty = [text for text, refs in zip(group, sides, strict=True) if not refs]
        if empty:
            raise HTTPException(400, f"group {empty[0]!r} names no run")
        if sum(map(len, sides)) > MAX_RUNS:
            raise HTTPException(400, f"at most {MAX_RUNS} runs per request")
        read = {run.id: run for run in _read_runs(store, [ref for refs in sides for ref in refs])}
        found = [
            tuple({r.id: r for r in (read[store.resolve_run(ref)] for ref in refs)}.values())
            for refs in sides
        ]
        params = [_shared([run.params for run in members]) for members in found]
        differing = differing_keys(params)
        return None, list(zip(params, found, strict=True)), differing
    refs = _csv(runs or "")
    if not refs:
        raise HTTPException(400, "name the runs: runs=1,2,3 (or group=1,2,3, repeated)")
    if len(refs) > MAX_RUNS:
        raise HTTPException(400, f"at most {MAX_RUNS} runs per request")
    records = _read_runs(store, refs)
    if not group_by:
        every = differing_keys([run.params for run in records])
        return [], [({}, (run,)) for run in records], every
    keys = group_keys(group_by)
    if keys is None:
        grouped = group_repeats(records, seed_param)
        params = [group.params for group in grouped]
        answer = ["*"]
    else:
        unknown = [key for key in keys if not any(key in run.params for run in records)]
        if unknown:
            named = ", ".join(f"#{run.number}" for run in records)
            raise HTTPException(400, f"no run among {named} has param {unknown[0]!r}")
        grouped = group_by_params(records, keys)
        params = [group.params for group in grouped]
        answer = [f"params.{key}" for key in keys]
    pairs = [(p, g.runs) for p, g in zip(params, grouped, strict=True)]
    return answer, pairs, differing_keys(params)


def _read_runs(store: Store, refs: Sequence[str]) -> list[RunRecord]:
    """The runs ``refs`` name, each once, in their order, read in one query (a run at a time
    was 1.2 s of a 400-run comparison's 1.2 s; RunNotFoundError: 404 naming the ref)."""
    from expbook.store.base import RunQuery

    ids = list(dict.fromkeys(store.resolve_run(ref) for ref in refs))
    found = {run.id: run for run in store.find_runs(RunQuery(ids=tuple(ids)))}
    return [found[run_id] for run_id in ids]


def _shared(params: list[dict[str, Any]]) -> dict[str, Any]:
    """The params every one of these runs has with the same value."""
    first, *rest = params
    return {
        key: value for key, value in first.items()
        if all(key in other and canonical(other[key]) == canonical(value) for other in rest)
    }  # fmt: skip


def _metric_keys(store: Store, metrics: str | None, records: Sequence[RunRecord]) -> list[str]:
    keys = _csv(metrics or "") or common_metrics(list(records))
    if len(keys) > MAX_KEYS:
        raise HTTPException(400, f"at most {MAX_KEYS} metrics per request")
    unknown = unknown_keys(store, [("metric", key) for key in keys], seen=records)
    if unknown:
        raise HTTPException(400, "; ".join(problem.message() for problem in unknown))
    return keys


# --- GET /api/compare ---------------------------------------------------------------------------


@router.get("/compare", response_model=CompareAnswer, responses=READ,
            summary="Groups of runs compared with a baseline group (Welch's t-test)")  # fmt: skip
def compare_groups(
    store: StoreDep,
    runs: RunsQuery = None,
    group: GroupQuery = [],  # noqa: B006
    group_by: GroupByQuery = [],  # noqa: B006
    seed_param: SeedQuery = [],  # noqa: B006
    metrics: MetricsQuery = None,
    value: ValueQuery = "last",
    baseline: BaselineQuery = 0,
    confidence: ConfidenceQuery = 0.95,
) -> ApiJSON:
    """Each group's n, mean, std and confidence interval per metric, and every other group
    compared with the baseline group by Welch's t-test: the numbers (and verdict) of
    ``expbook compare BASELINE_RUNS GROUP_RUNS --metric KEY --json``."""
    from expbook.report.stats import compare_values, estimate, metric_value

    answer, groups, differing = resolve_groups(store, runs, group, group_by, seed_param)
    if baseline >= len(groups):
        raise HTTPException(400, f"baseline {baseline} is not a group: there are {len(groups)}")
    records = [run for _, members in groups for run in members]
    keys = _metric_keys(store, metrics, records)
    out_groups = []
    values: list[dict[str, tuple[list[float], list[int]]]] = []
    for label, (params, members) in zip(_labels(answer, groups, differing), groups, strict=True):
        per_key = {}
        summaries = {}
        for key in keys:
            found = [(metric_value(run, key, value), run.number) for run in members]
            kept = [(v, n) for v, n in found if v is not None]
            numbers = [v for v, _ in kept]
            per_key[key] = (numbers, [n for _, n in kept])
            est = estimate(numbers, confidence)
            summaries[key] = _side(est, numbers, per_key[key][1])
        values.append(per_key)
        out_groups.append({
            "label": label,
            "params": params,
            "n": len(members),
            "noise_unknown": len(members) < 2,
            "runs": [run.number for run in members],
            "metrics": summaries,
        })  # fmt: skip
    comparisons: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        rows = comparisons[key] = []
        base_values, base_runs = values[baseline][key]
        for index, per_key in enumerate(values):
            if index == baseline:
                continue
            numbers, numbers_runs = per_key[key]
            result = compare_values(base_values, numbers, confidence)
            rows.append({
                "group": index, "baseline": baseline, "metric": key,
                "lower_is_better": lower_is_better(key),
                "a": _cli_side(base_runs, base_values, result.a),
                "b": _cli_side(numbers_runs, numbers, result.b),
                "difference": result.diff, "ci": [result.low, result.high],
                "confidence": result.a.confidence, "t": result.t, "df": result.df,
                "p_value": result.p_value, "distinguishable": result.distinguishable,
                "verdict": result.verdict,
            })  # fmt: skip
    return ApiJSON({
        "group_by": answer, "value": value, "confidence": confidence, "baseline": baseline,
        "params": differing, "metrics": keys,
        "lower_is_better": {key: lower_is_better(key) for key in keys},
        "groups": out_groups, "comparisons": comparisons,
    })  # fmt: skip


def _side(est: Any, values: list[float], runs: list[int]) -> dict[str, Any]:
    return {**estimate_fields(est, values, runs), "noise_unknown": est.n < 2}


def _cli_side(runs: list[int], values: list[float], est: Any) -> dict[str, Any]:
    """A side as ``expbook compare --json`` writes it."""
    return {"runs": runs, "values": values, "n": est.n, "mean": est.mean, "std": est.std,
            "ci": [est.low, est.high]}  # fmt: skip


# --- GET /api/compare/series --------------------------------------------------------------------


@router.get("/compare/series", response_model=SeriesAnswer, responses=READ,
            summary="Each group's mean curve with its confidence and min-max bands")  # fmt: skip
def compare_series(
    store: StoreDep,
    key: Annotated[list[str], Query(description="metric keys (repeat the parameter)")],
    runs: RunsQuery = None,
    group: GroupQuery = [],  # noqa: B006
    group_by: GroupByQuery = [],  # noqa: B006
    seed_param: SeedQuery = [],  # noqa: B006
    points: PointsQuery = 1000,
    confidence: ConfidenceQuery = 0.95,
) -> ApiJSON:
    """For each group and key, at each step where its runs logged: n, the mean, the sample std,
    the confidence interval of the mean (Student's t with n - 1 degrees of freedom, as
    ``expbook compare`` computes it for one value per run) and the min and max. Runs are
    aligned by step; with more distinct steps than ``points``, steps are bucketed into
    ``points`` equal ranges and each run stands in a bucket by the mean of its values there."""
    keys = list(dict.fromkeys(key))
    if not keys:
        raise HTTPException(400, "name a metric: key=valid/loss")
    if len(keys) > MAX_KEYS:
        raise HTTPException(400, f"at most {MAX_KEYS} keys per request")
    answer, groups, differing = resolve_groups(store, runs, group, group_by, seed_param)
    records = [run for _, members in groups for run in members]
    if len(records) * len(keys) > MAX_RUNS:
        raise HTTPException(400, f"at most {MAX_RUNS} series per request (runs x keys)")
    _metric_keys(store, ",".join(keys), records)
    found = []
    for index, (_, members) in enumerate(groups):
        for name in keys:
            band = step_band(store, members, name, points, confidence)
            if band is not None:
                found.append({"group": index, "key": name, **band})
    return ApiJSON({
        "confidence": confidence,
        "groups": [
            {"label": label, "n": len(members), "runs": [run.number for run in members]}
            for label, (_, members) in zip(_labels(answer, groups, differing), groups, strict=True)
        ],
        "series": found,
    })  # fmt: skip


def step_band(
    store: Store, runs: Sequence[RunRecord], key: str, points: int, confidence: float
) -> dict[str, Any] | None:
    """The runs' series of ``key`` aligned by step: per step n, mean, std, the t interval of the
    mean (:func:`expbook.report.stats.estimate_columns`, :func:`~expbook.report.stats.estimate`
    for every step at once) and min/max; None when no run logged ``key``."""
    import numpy as np

    from expbook.report.stats import estimate_columns

    curves = []
    for run in runs:
        try:
            series = store.get_series(run.id, key)
        except MetricNotFoundError:
            continue
        if len(series):
            curves.append((np.asarray(series.steps), np.asarray(series.values, dtype=float)))
    if not curves:
        return None
    grid = np.unique(np.concatenate([steps for steps, _ in curves]))
    bucketed = len(grid) > points
    if bucketed:
        edges = np.linspace(grid[0], grid[-1], points + 1)
        slot_of_grid = np.clip(np.searchsorted(edges, grid, side="right") - 1, 0, points - 1)
        firsts = np.full(points, -1, dtype=np.int64)
        for slot, step in zip(slot_of_grid[::-1], grid[::-1], strict=True):
            firsts[slot] = step  # the smallest step of each bucket
        used = firsts >= 0
        x = firsts[used]
        renumber = np.cumsum(used) - 1
    else:
        x = grid
    total = np.zeros((len(curves), len(x)))
    count = np.zeros((len(curves), len(x)))
    for row, (steps, values) in enumerate(curves):
        if bucketed:
            slots = np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, points - 1)
            at = renumber[slots]
            np.add.at(total[row], at, values)
            np.add.at(count[row], at, 1)
        else:
            at = np.searchsorted(x, steps)
            total[row, at] = values  # a step logged twice: its last value
            count[row, at] = 1
    present = count > 0
    matrix = np.where(present, total / np.where(present, count, 1), 0.0)
    found = estimate_columns(matrix, present, confidence)  # the statistics module's numbers
    n = found.n
    spread = n >= 2
    lowest = np.where(present, matrix, np.inf).min(axis=0)
    highest = np.where(present, matrix, -np.inf).max(axis=0)
    nan_seen = (np.isnan(matrix) & present).any(axis=0)  # a diverged run: no min or max
    lowest = np.where(nan_seen, np.nan, lowest)
    highest = np.where(nan_seen, np.nan, highest)
    return {
        "steps": [int(s) for s in x],
        "n": n.astype(int).tolist(),
        "mean": float_list(found.mean),
        "std": _nullable(found.std, spread),
        "low": _nullable(found.low, spread),
        "high": _nullable(found.high, spread),
        "min": float_list(lowest),
        "max": float_list(highest),
    }


def _nullable(values: Any, known: Any) -> list[Any]:
    """Values where ``known``, null elsewhere (n < 2: nothing to estimate a spread from)."""
    listed = float_list(values)
    return [v if k else None for v, k in zip(listed, known.tolist(), strict=True)]


def install(app: FastAPI) -> None:
    """Serve the compare page's API on ``app``."""
    app.include_router(router)


__all__ = ["install", "router", "step_band"]
