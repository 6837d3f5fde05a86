"""``GET /api/runs?group_by=...``: the runs a query selects, grouped, with each group's n,
mean, std and confidence interval per metric.

The statistics are those of :mod:`expbook.report.stats`, which ``expbook compare`` and the
report use: ``group_by=*`` groups repeats (:func:`~expbook.report.stats.group_repeats`: every
param but the seeds), ``group_by=params.X`` the runs that share X
(:func:`~expbook.report.stats.group_by_params`), and each metric is summarised by
:func:`~expbook.report.stats.estimate`. Only run summaries are read, never a series.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException

from expbook.columns import MISSING, canonical, common_metrics, unknown_keys
from expbook.store.base import RunQuery, Store, gc_paused

ALL_BUT_SEEDS = "*"


def group_keys(group_by: Sequence[str]) -> list[str] | None:
    """The param keys of ``group_by`` values (``params.X``, quoted as in filters when need be:
    ``params.'odd key'``), or None for ``*`` (every param but the seeds).

    Raises:
        HTTPException: 400 for a value that is not a param, or ``*`` with other values.
        FilterSyntaxError: a value that does not parse as a field.
    """
    from expbook.query import parse_field

    if ALL_BUT_SEEDS in group_by:
        if len(group_by) > 1:
            raise HTTPException(400, "group_by=* (every param but the seeds) goes alone")
        return None
    keys = []
    for text in group_by:
        field = parse_field(text)
        if field.scope != "param" or field.aggregate != "last":
            raise HTTPException(400, f"group_by {text!r} is not a param: use params.KEY or *")
        keys.append(field.name)
    return list(dict.fromkeys(keys))


def grouped_page(
    store: Store, query: RunQuery, group_by: Sequence[str], metrics: list[str], value: str,
    limit: int, offset: int,
) -> dict[str, Any]:  # fmt: skip
    """The page of groups of every run ``query`` selects (its limit and offset page the
    groups). Runs are read only in part (:meth:`~expbook.store.base.Store.find_run_values`):
    the group_by params (all with ``*``, for the seeds) and the metrics named (without
    ``metrics``, all, to choose the runs' common ones as the runs table does)."""
    keys = group_keys(group_by)
    query = dataclasses.replace(query, limit=None, offset=0)
    with gc_paused():
        return _grouped(store, query, keys, metrics, value, limit, offset)


def _grouped(
    store: Store, query: RunQuery, keys: list[str] | None, metrics: list[str], value: str,
    limit: int, offset: int,
) -> dict[str, Any]:  # fmt: skip
    from expbook.report.stats import CONFIDENCE, group_by_params, group_repeats

    found = store.find_run_values(query, keys, metrics or None)
    metric_keys = metrics or common_metrics(found)
    wanted = [("param", key) for key in keys or ()] + [("metric", key) for key in metric_keys]
    unknown = unknown_keys(store, wanted, seen=found)
    if unknown:
        raise HTTPException(400, "; ".join(problem.message() for problem in unknown))
    groups = group_repeats(found) if keys is None else group_by_params(found, keys)
    shown = groups[offset : offset + limit]
    return {
        "group_by": [ALL_BUT_SEEDS] if keys is None else [f"params.{key}" for key in keys],
        "total": len(groups),
        "run_count": len(found),
        "offset": offset,
        "limit": limit,
        "params": differing_keys([g.params for g in groups]) if keys is None else keys,
        "metrics": metric_keys,
        "value": value,
        "confidence": CONFIDENCE,
        "groups": [_group(group, metric_keys, value) for group in shown],
    }


def _group(group: Any, metrics: list[str], value: str) -> dict[str, Any]:
    return {
        "params": group.params,
        "n": len(group.runs),
        "noise_unknown": len(group.runs) < 2,
        "runs": [run.number for run in group.runs],
        "ids": [run.id for run in group.runs],
        "metrics": {key: _metric(group, key, value) for key in metrics},
    }


def _metric(group: Any, key: str, value: str) -> dict[str, Any]:
    from expbook.report.stats import estimate

    values = group.values(key, value)
    return estimate_fields(estimate(values), values, [run.number for run in group.having(key)])


def estimate_fields(found: Any, values: list[float], runs: list[int]) -> dict[str, Any]:
    """An :class:`~expbook.report.stats.Estimate` as the API answers it (also for
    ``/api/compare``): n and mean, and std and ci only with two values or more."""
    spread = found.n >= 2
    return {
        "n": found.n,
        "mean": found.mean if found.n else None,
        "std": found.std if spread else None,
        "ci": [found.low, found.high] if spread else None,
        "runs": runs,
        "values": values,
    }


def differing_keys(params: list[dict[str, Any]]) -> list[str]:
    """The keys whose value differs between these param sets (or is missing in some): the
    params that tell groups apart (also the compare page's, ``server/compare.py``)."""
    keys = sorted({key for each in params for key in each})
    return [k for k in keys if len({canonical(each.get(k, MISSING)) for each in params}) > 1]
