"""Which params and metrics a set of runs is best shown with: shared by the CLI, the web UI and
the reports, so ``expbook ls`` and the runs page pick the same columns."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from expbook.model import RunRecord

DEFAULT_METRIC_COLUMNS = 6
MISSING: Any = object()
"""Marks a param a run does not have (distinct from any value, None included)."""

_LOWER_IS_BETTER = ("loss", "err", "error", "perplexity", "ppl", "mae", "mse", "rmse", "mape",
                    "wer", "cer", "time", "runtime", "latency", "duration")  # fmt: skip


def canonical(value: Any) -> str:
    """A param value as comparable text: 1 and 1.0 or true and 1 differ, NaN equals NaN, and
    :data:`MISSING` has its own."""
    return "\0missing" if value is MISSING else json.dumps(value, sort_keys=True)


def varying_params(runs: Sequence[RunRecord]) -> list[str]:
    """Param keys whose value differs between the runs (or is missing in some), sorted."""
    keys = sorted({key for run in runs for key in run.params})
    return [
        key for key in keys if len({canonical(run.params.get(key, MISSING)) for run in runs}) > 1
    ]


def common_metrics(runs: Sequence[RunRecord], limit: int = DEFAULT_METRIC_COLUMNS) -> list[str]:
    """The metric keys most runs have (system metrics left out), alphabetically."""
    counts = Counter(key for run in runs for key in run.metrics if not key.startswith("system/"))
    chosen = [key for key, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]
    return sorted(chosen)


def lower_is_better(key: str) -> bool:
    """Whether a metric is an error to minimise (``valid/loss``, ``test_mae``) rather than a
    score to maximise (``valid/acc``), judged by its last name part."""
    name = key.rsplit("/", 1)[-1].lower()
    return any(word in name for word in _LOWER_IS_BETTER)


_SPLITS = ("train", "training", "valid", "validation", "val", "eval", "test", "dev")


def split_key(key: str) -> tuple[str | None, str]:
    """(split, metric) of a key: ``valid/loss`` and ``val_loss`` → (``valid``/``val``,
    ``loss``); a key without a data-split prefix → (None, key)."""
    for separator in ("/", "_"):
        head, sep, rest = key.partition(separator)
        if sep and rest and head.lower() in _SPLITS:
            return head, rest
    return None, key


def metric_groups(keys: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Keys grouped for plotting, one chart per metric with its splits overlaid:
    ``train/loss`` and ``valid/loss`` → (``loss``, [both]); sorted by metric, then key."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        groups.setdefault(split_key(key)[1], []).append(key)
    return sorted(groups.items())


def key_metric(keys: Sequence[str]) -> str | None:
    """The metric that ranks runs when none is named: a validation metric if there is one,
    else a test metric, else the first key."""
    for splits in (("valid", "validation", "val", "eval", "dev"), ("test",)):
        chosen = [key for key in keys if (split_key(key)[0] or "").lower() in splits]
        if chosen:
            return chosen[0]
    return keys[0] if keys else None
