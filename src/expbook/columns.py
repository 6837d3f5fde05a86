"""Which params and metrics a set of runs is best shown with: shared by the CLI, the web UI and
the reports, so ``expbook ls`` and the runs page pick the same columns."""

from __future__ import annotations

import difflib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from expbook.model import RunRecord

if TYPE_CHECKING:
    from expbook.store.base import Store

DEFAULT_METRIC_COLUMNS = 6
MISSING: Any = object()
"""Marks a param a run does not have (distinct from any value, None included)."""

_LOWER_IS_BETTER = ("loss", "err", "error", "perplexity", "ppl", "mae", "mse", "rmse", "mape",
                    "wer", "cer", "time", "runtime", "latency", "duration")  # fmt: skip


def canonical(value: Any) -> str:
    """A param value as comparable text: 1 and 1.0 or true and 1 differ, NaN equals NaN, and
    :data:`MISSING` has its own."""
    return "\0missing" if value is MISSING else json.dumps(value, sort_keys=True)


def words(value: Any) -> list[str] | None:
    """The elements of a list-like param — a list of scalars (``["cli", "ml_train"]``, a
    repeated flag), or a string of two or more words separated by spaces or commas (Cargo's
    ``--features "cli ml_train"``) — else None."""
    if (
        isinstance(value, list)
        and value
        and all(type(item) in (str, int, float) for item in value)
    ):
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    if isinstance(value, str):
        found = [word for word in value.replace(",", " ").split() if word]
        if len(found) >= 2:
            return found
    return None


def list_change(old: Any, new: Any) -> tuple[list[str], list[str], int] | None:
    """For two list-like values of one param, what changed element-wise: (removed, added,
    number in common), in their order; None unless both are list-like and share an element
    (two sentences are not lists of options)."""
    before, after = words(old), words(new)
    if before is None or after is None:
        return None
    common = set(before) & set(after)
    if not common:
        return None
    removed = [word for word in before if word not in set(after)]
    added = [word for word in after if word not in set(before)]
    return removed, added, len(common)


def describe_change(old: Any, new: Any) -> str | None:
    """``-ml_loader_note_binned_convolution +ml_loader_frequency_pooled`` for list-like values
    that differ element-wise (None for other values)."""
    change = list_change(old, new)
    if change is None:
        return None
    removed, added, _ = change
    return " ".join([*(f"-{word}" for word in removed), *(f"+{word}" for word in added)]) or (
        "same elements, reordered"
    )


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


def closest(name: str, candidates: Iterable[str], count: int = 3) -> list[str]:
    """The candidates most like ``name`` (a typo's likely meaning), best first: flattened keys
    that end with it (``lr`` → ``optimizer.lr``), then the closest spellings."""
    pool = sorted(set(candidates))
    ends = [c for c in pool if c.endswith((f".{name}", f"/{name}"))]
    near = difflib.get_close_matches(name, pool, n=count, cutoff=0.6)
    return list(dict.fromkeys(ends + near))[:count]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'valid/acc'?)`` for the closest candidates, else ``""``."""
    found = closest(name, candidates)
    return f" (did you mean {' or '.join(repr(c) for c in found)}?)" if found else ""


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """A param or metric key that a command names but no run in the store has."""

    scope: str  # "param" or "metric"
    key: str
    suggestions: tuple[str, ...]

    def message(self) -> str:
        hint = f" (did you mean {' or '.join(map(repr, self.suggestions))}?)"
        return f"no run has {self.scope} {self.key!r}" + (hint if self.suggestions else "")


def unknown_keys(
    store: Store, wanted: Iterable[tuple[str, str]], seen: Sequence[RunRecord] = ()
) -> list[UnknownKey]:
    """The ``(scope, key)`` pairs in ``wanted`` that no run in ``store`` has, with the closest
    keys that runs do have. ``seen``: runs already read (a key one of them has is known); the
    store is asked only about the others, and read whole only when one is unknown."""
    from expbook.store.base import RunQuery

    known = {"param": set(), "metric": set()}  # type: dict[str, set[str]]
    for run in seen:
        known["param"].update(run.params)
        known["metric"].update(run.metrics)
    missing = []
    for scope, key in dict.fromkeys(wanted):
        if key in known[scope]:
            continue
        field = f"{scope}s.'" + key.replace("\\", "\\\\").replace("'", "\\'") + "'"
        if store.count_runs(RunQuery(where=f"{field} is not null", limit=1)):
            known[scope].add(key)
        else:
            missing.append((scope, key))
    if not missing:
        return []
    every = {"param": set(), "metric": set()}  # type: dict[str, set[str]]
    for run in store.find_runs(RunQuery()):
        every["param"].update(run.params)
        every["metric"].update(run.metrics)
    return [UnknownKey(scope, key, tuple(closest(key, every[scope]))) for scope, key in missing]


def filter_keys(where: str | None, sort: str | None) -> tuple[list[tuple[str, str]], ...]:
    """The ``(scope, key)`` of every param and metric a filter and a sort expression name."""
    from expbook.query import And, Not, Or, parse_filter, parse_sort

    def walk(node: Any) -> Iterator[tuple[str, str]]:
        if isinstance(node, And | Or):
            for item in node.items:
                yield from walk(item)
        elif isinstance(node, Not):
            yield from walk(node.item)
        elif getattr(node, "field", None) is not None and node.field.scope in _SCOPES:
            yield node.field.scope, node.field.name

    in_where = list(walk(parse_filter(where))) if where else []
    in_sort = [(k.field.scope, k.field.name) for k in parse_sort(sort) if k.field.scope in _SCOPES]
    return in_where, in_sort


_SCOPES = ("param", "metric")
