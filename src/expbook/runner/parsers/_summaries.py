"""Whole-line summaries: ``Test accuracy: 94.2%``."""

from __future__ import annotations

import re

from expbook.runner.parsers._common import (
    _NUM,
    _RESULT_WORDS,
    Event,
    Point,
    Summary,
    _CurrentLine,
    _has_word,
    _LineParser,
    _short_text_cache,
    _StepContext,
    _to_float,
    _zero_thousands,
    normalize_key,
)

_SUMMARY_LINE = re.compile(
    rf"\s*(?P<name>[^\W\d_][^:=]*?)\s*(?::\s+|=\s*)(?P<val>{_NUM})\s*(?P<pct>%)?\s*"
)
_SUMMARY_END = frozenset("0123456789%yY")  # a number, a percentage, "infinity"
# "Name: number" lines that are settings, not results, by their exact key ("GPU: 85%" is a
# result: a utilisation).
_SETTING_KEYS = frozenset(
    {
        "seed", "random_seed", "global_seed", "manual_seed",
        "batch_size", "version",
        "downloading", "uploading", "extracting",
        "rank", "local_rank", "global_rank", "node_rank", "world_size",
        "workers", "num_workers", "threads", "num_threads",
        "nodes", "num_nodes", "processes", "num_processes", "num_proc",
        "epochs", "max_epochs",
        "gpus", "num_gpus", "n_gpu", "n_gpus", "device", "devices", "device_id",
        "pid", "port", "master_port", "job_id",
    }
)  # fmt: skip
_ASSIGNMENT = re.compile(r"[A-Za-z_][\w.]*")  # an identifier: "max_iters = 200" is code
_RESULT_WORD = re.compile(rf"(?:{_RESULT_WORDS}|runtime|throughput)\d*")


_FINAL_WORDS = ("test", "final", "best", "total", "overall", "average", "mean")  # summaries


@_short_text_cache(maxsize=4096)
def _is_result(key: str) -> bool:
    return _has_word(key, _RESULT_WORD) or key.endswith("per_second")


_COUNTER_IN_NAME = re.compile(
    r"(?<![\w./@-])(?:epoch|ep|step|global_step|iter|iteration|it|batch)\s*[:=#]?\s*\[?\d",
    re.IGNORECASE,
)


class _SummaryLineParser(_LineParser):
    """A whole line ``Name: number[%]`` or ``Name = number[%]`` (the name may have spaces).

    After a line with a step or epoch counter (lines that give and set nothing between them do
    not count), and after such a result, a result (a name with a result word) is a point at
    that step, not a summary value: programs print a step's validation result on a line of
    its own (scikit-learn's ``Validation score: 0.89`` after ``Iteration 3, ...``). Not a
    final one: a name starting with test, final, best, total, overall, average or mean stays a
    summary value.

    Not when the name, as a key, is one of the settings programs print at start-up
    (:data:`_SETTING_KEYS`: ``Seed: 42``, ``Batch size: 32``, ``world size: 8``, ``Epochs: 10``),
    an exact match: longer names (``Num examples = 25,000``, burn's ``Total Epochs: 16``, ``Total
    params: 1,234``) still count, as facts about the run.
    """

    def __init__(self, current: _CurrentLine, context: _StepContext) -> None:
        self._current = current
        self._context = context

    def parse(self, line: str) -> list[Event] | None:
        end = line.rstrip()[-3:]
        if not end or (end[-1] not in _SUMMARY_END and end.lower() not in ("nan", "inf")):
            return None
        if ": " not in line and ":\t" not in line and "=" not in line:
            return None
        match = _SUMMARY_LINE.fullmatch(self._current.message(line))
        if match is None or _COUNTER_IN_NAME.search(match["name"]):
            return None
        key = normalize_key(match["name"])
        if key is None or key in _SETTING_KEYS:
            return None
        if "=" in line and _ASSIGNMENT.fullmatch(match["name"]) and not _is_result(key):
            return None  # a configuration printed as code: "dropout = 0.1", "n_layer = 4"
        value = match["val"]
        if "," in value:
            self._current.value_dependent = True  # 1,512 is a number, 0,512 none: one shape
            if _zero_thousands(value):
                return None
        number = _to_float(value)
        context = self._context
        if (
            context.after_counter
            and context.step is not None
            and _is_result(key)
            and not key.startswith(_FINAL_WORDS)
        ):
            # a result right after a step's line is the step's: scikit-learn's "Iteration 3,
            # loss = 0.39" then "Validation score: 0.89"
            self._current.value_dependent = True
            context.counted = True  # the results printed with it are the step's too
            return [Point({key: number}, context.step, context.epoch)]
        return [Summary(key, number, "%" if match["pct"] else None)]
