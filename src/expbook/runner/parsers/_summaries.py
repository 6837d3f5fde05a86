"""Whole-line summaries: ``Test accuracy: 94.2%``."""

from __future__ import annotations

import re

from expbook.runner.parsers._common import (
    _NUM,
    Event,
    Summary,
    _CurrentLine,
    _LineParser,
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
_COUNTER_IN_NAME = re.compile(
    r"(?<![\w./@-])(?:epoch|ep|step|global_step|iter|iteration|it|batch)\s*[:=#]?\s*\[?\d",
    re.IGNORECASE,
)


class _SummaryLineParser(_LineParser):
    """A whole line ``Name: number[%]`` or ``Name = number[%]`` (the name may have spaces).

    Not when the name, as a key, is one of the settings programs print at start-up
    (:data:`_SETTING_KEYS`: ``Seed: 42``, ``Batch size: 32``, ``world size: 8``, ``Epochs: 10``),
    an exact match: longer names (``Num examples = 25,000``, burn's ``Total Epochs: 16``, ``Total
    params: 1,234``) still count, as facts about the run.
    """

    def __init__(self, current: _CurrentLine) -> None:
        self._current = current

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
        value = match["val"]
        if "," in value:
            self._current.value_dependent = True  # 1,512 is a number, 0,512 none: one shape
            if _zero_thousands(value):
                return None
        return [Summary(key, _to_float(value), "%" if match["pct"] else None)]
