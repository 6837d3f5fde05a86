"""Tables printed at the end of training, model blocks and parameter counts."""

from __future__ import annotations

import re

from expbook.runner.parsers._common import (
    Event,
    Summary,
    _LineParser,
    _parse_number,
    normalize_key,
)

_TABLE_WITH_SPLIT = ("split", "metric", "min", "epoch", "max", "epoch")
_TABLE_WITHOUT_SPLIT = _TABLE_WITH_SPLIT[1:]
_TABLE_RULE = re.compile(r"[\s|:+-]*-[\s|:+-]*")
_MODEL_START = re.compile(r"[A-Za-z_][\w:<>, ]*\s\{\s*")
_MODEL_PARAMS = re.compile(r"\s+params:\s*(\d+)\s*")
_PARAM_COUNT = re.compile(
    r"\s*(Total|Trainable|Non-trainable) params:\s*(\d{1,3}(?:,\d{3})+|\d+)(?:\s*\([^)]*\))?\s*",
    re.IGNORECASE,
)
_LIGHTNING_PARAM_COUNT = re.compile(
    r"\s*(\d+(?:\.\d+)?)\s*([KMBT]?)\s+(Total|Trainable|Non-trainable) params\s*"
)
_PARAM_KEYS = {
    "total": "model.params",
    "trainable": "model.trainable_params",
    "non-trainable": "model.non_trainable_params",
}
_SCALE = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _param_count(line: str) -> Summary | None:
    match = _PARAM_COUNT.fullmatch(line)
    if match:
        return Summary(_PARAM_KEYS[match[1].lower()], float(match[2].replace(",", "")))
    match = _LIGHTNING_PARAM_COUNT.fullmatch(line)
    if match:
        return Summary(_PARAM_KEYS[match[3].lower()], float(match[1]) * _SCALE[match[2]])
    return None


_BOX_CELLS = re.compile(r"\s*[│┃|]\s*")


def _key_value_row(line: str) -> Summary | None:
    """A row of a two-column table of names and values, box-drawn or ASCII:
    ``│ test_acc │ 0.6171875 │`` (Lightning's ``trainer.test`` table), ``| loss | 0.25 |``."""
    cells = [cell for cell in _BOX_CELLS.split(line.strip()) if cell]
    if len(cells) != 2 or line.strip()[-1:] not in "│┃|":
        return None
    number = _parse_number(cells[1])
    key = normalize_key(cells[0])
    if number is None or key is None or not any(c.isalpha() for c in cells[0]):
        return None
    return Summary(key, number[0], number[1])


def _table_row(cells: list[str], with_split: bool) -> Summary | None:
    """A "Split | Metric | Min. | Epoch | Max. | Epoch" row as a Summary; None if it is not one."""
    name = f"{cells[0]}/{cells[1]}" if with_split else cells[0]
    key = normalize_key(name)
    low, low_epoch, high, high_epoch = (_parse_number(cell) for cell in cells[-4:])
    if key is None or low is None or high is None or low_epoch is None or high_epoch is None:
        return None
    low_at, high_at = low_epoch[0], high_epoch[0]
    if not (low_at.is_integer() and high_at.is_integer()):
        return None
    value, at = (low[0], low_at) if low_at > high_at else (high[0], high_at)
    return Summary(
        key,
        value,
        step=int(at),
        epoch=at,
        min=low[0],
        min_step=int(low_at),
        min_epoch=low_at,
        max=high[0],
        max_step=int(high_at),
        max_epoch=high_at,
    )


class _TableParser(_LineParser):
    """burn's "Learner Summary" table and model block; parameter counts of model summaries.

    The table starts at a header row ``Split | Metric | Min. | Epoch | Max. | Epoch`` (the Split
    column is optional) and ends at a blank line or any row that is not a table row. Each row
    gives a Summary whose value is the entry (min or max) with the later epoch. A model block
    (``Name {`` ... ``}``) yields its top-level ``params: N`` line as ``model.params``; the lines
    inside it yield nothing (they are a model description, not metrics).
    """

    def __init__(self) -> None:
        self._columns = 0  # number of columns of the open table, 0 when none is open
        self._in_model = False
        self._model_params: float | None = None  # the previous line was "  params: N"

    def parse(self, line: str) -> list[Event] | None:
        if self._columns:
            return self._table_line(line)
        if self._in_model:
            return self._model_line(line)
        if "|" in line and ("etric" in line or "ETRIC" in line):
            return self._header(line)
        if "│" in line or "┃" in line or line.lstrip()[:1] == "|":
            summary = _key_value_row(line)
            if summary is not None:
                return [summary]
        if "params" in line:
            summary = _param_count(line)
            return [summary] if summary else None
        if line.endswith("{") and _MODEL_START.fullmatch(line):
            self._in_model = True
            return []
        return None

    def close(self) -> list[Event]:
        events = self._end_model()
        self._columns = 0
        return events

    def idle(self) -> bool:
        """Whether no table or model block is open (the next line needs no look unless it has
        a digit or could start one)."""
        return not (self._columns or self._in_model)

    def _header(self, line: str) -> list[Event] | None:
        names = tuple(cell.lower().rstrip(".") for cell in _cells(line))
        if names not in (_TABLE_WITH_SPLIT, _TABLE_WITHOUT_SPLIT):
            return None
        self._columns = len(names)
        return []

    def _table_line(self, line: str) -> list[Event] | None:
        if not line.strip() or _TABLE_RULE.fullmatch(line):
            if not line.strip():
                self._columns = 0
            return []
        cells = _cells(line)
        summary = None
        if "|" in line and len(cells) == self._columns:
            summary = _table_row(cells, with_split=self._columns == len(_TABLE_WITH_SPLIT))
        if summary is None:
            self._columns = 0
            return None
        return [summary]

    def _model_line(self, line: str) -> list[Event] | None:
        if line.rstrip() == "}":
            return self._end_model()
        if not line[:1].isspace():
            self._in_model = False
            self._model_params = None
            return None
        match = _MODEL_PARAMS.fullmatch(line)
        self._model_params = float(match[1]) if match else None
        return []

    def _end_model(self) -> list[Event]:
        params = self._model_params
        self._in_model = False
        self._model_params = None
        return [] if params is None else [Summary("model.params", params)]
