"""Which params and metrics a set of runs is best shown with: shared by the CLI, the web UI and
the reports, so ``expbook ls`` and the runs page pick the same columns."""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
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


def elements(value: Any) -> list[str] | None:
    """The elements of a value as a list param's member: :func:`words`, or a single word
    (``--tag a`` alone is the one-element list of ``--tag a --tag b``)."""
    found = words(value)
    if found is None and isinstance(value, str) and value.strip() and len(value.split()) == 1:
        return [value.strip()]
    return found


@dataclass(frozen=True, slots=True)
class ListSpread:
    """What varies in one list-like param across runs (:func:`list_spread`).

    ``common``: the elements every run with the param has; ``varying``: those some have and
    others do not; ``present``: per value, its varying elements (None where the run does not
    have the param). All in the order of first appearance."""

    common: tuple[str, ...]
    varying: tuple[str, ...]
    present: tuple[tuple[str, ...] | None, ...]

    def varying_of(self, value: Any) -> tuple[str, ...] | None:
        """The varying elements a value has (None when it is not list-like)."""
        found = elements(value)
        return None if found is None else tuple(e for e in found if e in set(self.varying))


def list_spread(values: Sequence[Any]) -> ListSpread | None:
    """What varies in one param across runs, element-wise, when it is a list of words in every
    run that has it (``values``: one per run, :data:`MISSING` where a run lacks it): the
    elements all share, once, and those that vary. None for other params, for values that are
    all equal, and for text that is not a list of options (strings with no word in common).
    The CLI, the report and the web UI all show list params with it."""
    present = [value for value in values if value is not MISSING]
    found = [elements(value) for value in present]
    if len(present) < 2 or any(f is None for f in found):
        return None
    if len({canonical(value) for value in values}) < 2:
        return None
    sets = [set(f or ()) for f in found]
    multi = [v for v, f in zip(present, found, strict=True) if words(v) is not None]
    if not multi:
        return None  # single words only: a plain text param ("adam" vs "sgd")
    common_set = set.intersection(*sets)
    if not common_set and not all(isinstance(v, list) for v in multi):
        return None  # two sentences are not lists of options
    order = list(dict.fromkeys(e for f in found for e in f or ()))
    varying = tuple(e for e in order if e not in common_set)
    spread = ListSpread(tuple(e for e in order if e in common_set), varying, ())
    shown = tuple(None if value is MISSING else spread.varying_of(value) for value in values)
    return dataclasses.replace(spread, present=shown)


def list_cell(spread: ListSpread, value: Any) -> str:
    """A list param's cell in a table with its common elements stated once above:
    ``+ml_loader_frequency_pooled +ml_target_folded`` (``—`` when it has none of the varying
    elements)."""
    present = spread.varying_of(value)
    if present is None:
        return json.dumps(value) if not isinstance(value, str) else value
    return " ".join(f"+{e}" for e in present) or "—"


# --- factors: what varies between runs, for grids and charts ------------------------------------

FACTOR_SEARCH_LIMIT = 2000
"""Nodes the search for a factor's exact cover of the runs visits at most."""


@dataclass(frozen=True, slots=True)
class Factor:
    """One thing that varies between runs: a param (``key`` is None; a run's level is the
    param's value) or a set of mutually exclusive elements of list param ``param`` (each
    ``levels[i]`` a tuple of elements that always occur together; a run's level is the label
    of the one it has). A level of one element with ``presence`` set is a yes/no factor:
    ``+gpu`` or ``-gpu``."""

    name: str
    param: str
    levels: tuple[tuple[str, ...], ...] = ()
    labels: tuple[str, ...] = ()
    presence: bool = False

    @property
    def is_param(self) -> bool:
        return not self.levels

    def value(self, params: Any) -> Any:
        """This factor's level for a run's params (:data:`MISSING` when it has not the param)."""
        value = params.get(self.param, MISSING)
        if self.is_param or value is MISSING:
            return value
        found = set(elements(value) or ())
        if self.presence:
            element = self.levels[0][0]
            return f"+{element}" if element in found else f"-{element}"
        for level, label in zip(self.levels, self.labels, strict=True):
            if set(level) <= found:
                return label
        return MISSING


def factors(runs: Sequence[RunRecord], params: Sequence[str]) -> list[Factor]:
    """The factors of the runs' differences, from the varying ``params``: each scalar param is
    one; a list param (:func:`list_spread`) gives one factor per set of mutually exclusive
    elements whose presence partitions the runs (``ml_loader_a`` / ``ml_loader_b`` and
    ``ml_target_full`` / ``ml_target_folded``: a 2 x 2 of two factors), and a yes/no factor
    per element that varies alone."""
    found: list[Factor] = []
    for key in params:
        values = [run.params.get(key, MISSING) for run in runs]
        spread = list_spread(values)
        if spread is None or not spread.varying:
            found.append(Factor(key, key))
            continue
        found += _element_factors(key, spread)
    return found


def _element_factors(key: str, spread: ListSpread) -> list[Factor]:
    with_param = [i for i, p in enumerate(spread.present) if p is not None]
    blocks: dict[frozenset[int], list[str]] = {}
    for element in spread.varying:
        has = frozenset(i for i in with_param if element in (spread.present[i] or ()))
        blocks.setdefault(has, []).append(element)
    remaining = [(runs, tuple(elems)) for runs, elems in blocks.items()]
    everyone = frozenset(with_param)
    result = []
    while remaining:
        first = remaining[0]
        covers = _covers(first, remaining[1:], everyone)
        if covers:
            cover = max(covers, key=lambda c: (len(_prefix(c)), -len(c)))
            result.append(_factor(key, [elems for _, elems in cover]))
            remaining = [block for block in remaining if block not in cover]
        else:
            result.append(_factor(key, [first[1]], presence=len(first[1]) == 1))
            remaining = remaining[1:]
    return result


Block = tuple[frozenset[int], tuple[str, ...]]


def _covers(first: Block, others: Sequence[Block], everyone: frozenset[int]) -> list[list[Block]]:
    """The exact covers of ``everyone`` by ``first`` and some of ``others`` (disjoint blocks)."""
    found: list[list[Block]] = []
    budget = [FACTOR_SEARCH_LIMIT]

    def search(chosen: list[Block], covered: frozenset[int]) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            return
        if covered == everyone:
            found.append(list(chosen))
            return
        gap = min(everyone - covered)
        for block in others:
            if gap in block[0] and not block[0] & covered:
                search([*chosen, block], covered | block[0])

    search([first], first[0])
    return [cover for cover in found if len(cover) >= 2]


def _prefix(cover: Sequence[Block]) -> str:
    """The common prefix of the cover's elements, cut after its last ``_ - . : /``."""
    names = [element for _, elems in cover for element in elems]
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    cut = max(prefix.rfind(sep) for sep in "_-.:/")
    return prefix[: cut + 1] if cut >= 1 else ""


def _factor(key: str, levels: list[tuple[str, ...]], *, presence: bool = False) -> Factor:
    if presence:
        return Factor(f"{key}: {levels[0][0]}", key, tuple(levels), (), presence=True)
    prefix = _prefix([(frozenset(), level) for level in levels])
    labels = tuple(
        " + ".join(e[len(prefix) :] if len(e) > len(prefix) else e for e in level)
        for level in levels
    )
    if prefix:
        return Factor(f"{key}: {prefix}…", key, tuple(levels), labels)
    name = " | ".join(labels)
    name = name if len(name) <= 40 else name[:39] + "…"
    return Factor(f"{key}: {name}", key, tuple(levels), labels)


def varying_params(runs: Sequence[RunRecord]) -> list[str]:
    """Param keys whose value differs between the runs (or is missing in some), sorted."""
    keys = sorted({key for run in runs for key in run.params})
    return [
        key for key in keys if len({canonical(run.params.get(key, MISSING)) for run in runs}) > 1
    ]


def common_metrics(runs: Sequence[RunRecord], limit: int = DEFAULT_METRIC_COLUMNS) -> list[str]:
    """The metric keys most runs have (system metrics left out), alphabetically."""
    return most_common_metrics(Counter(key for run in runs for key in run.metrics), limit)


def most_common_metrics(
    counts: Mapping[str, int], limit: int = DEFAULT_METRIC_COLUMNS
) -> list[str]:
    """:func:`common_metrics` from how many runs have each metric key
    (:meth:`expbook.store.base.Store.key_counts`)."""
    counted = [(key, n) for key, n in counts.items() if not key.startswith("system/")]
    chosen = [key for key, _ in sorted(counted, key=lambda kv: (-kv[1], kv[0]))[:limit]]
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
