"""Tables printed at the end of training, model blocks and parameter counts."""

from __future__ import annotations

import re

from expbook.runner.parsers._common import (
    _HAS_DIGIT,
    Event,
    Point,
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


# Facts a model summary states after its parameter counts (Lightning's): model.* keys.
_MODEL_FACT = re.compile(r"\s*([A-Za-z][A-Za-z ()/-]*?)\s*:\s*(\d+(?:\.\d+)?)\s*")
_MODEL_FACT_KEYS = {
    "total_estimated_model_params_size_mb": "model.size_mb",
    "modules_in_train_mode": "model.train_modules",
    "modules_in_eval_mode": "model.eval_modules",
    "total_flops": "model.flops",
}


def _model_fact(line: str) -> Summary | None:
    """A ``Name: number`` line right after a model summary's parameter counts, as a fact about
    the model (``Modules in train mode: 4``, ``Total FLOPs: 0``); None for any other line."""
    match = _MODEL_FACT.fullmatch(line)
    if match is None or _COLUMN_RESULT.search(match[1]):  # a result is no fact of the model
        return None
    key = normalize_key(match[1])
    if key is None:
        return None
    return Summary(_MODEL_FACT_KEYS.get(key, f"model.{key}"), float(match[2]))


# A fixed-width table (scikit-learn's GradientBoosting with verbose=1):
#       Iter       Train Loss   Remaining Time
#          1           1.3061            0.88s
_COLUMN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_./%()-]*(?: [A-Za-z0-9_./%()-]+)*")
_COLUMN_COUNTERS = {"iter": "step", "iteration": "step", "step": "step", "round": "step",
                    "epoch": "epoch"}  # fmt: skip
_COLUMN_RESULT = re.compile(r"(?i:loss|acc|accuracy|error|score|auc|f1|ppl|mse|mae|rmse|reward)")
_NOT_COLUMNS = re.compile(r"(?:remaining|eta|time_left|elapsed)")  # times to go, not results
_CELL_NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:s|ms|m|h|%)?")


def _column_header(line: str) -> list[tuple[str, str | None]] | None:
    """The columns of a fixed-width table's header (names apart by two spaces or more, one a
    counter or a result): (key, counter kind) each, the key "" for a column to skip."""
    names = re.split(r"\s{2,}", line.strip())
    if len(names) < 2 or not all(_COLUMN_NAME.fullmatch(name) for name in names):
        return None
    columns: list[tuple[str, str | None]] = []
    for name in names:
        key = normalize_key(name) or ""
        kind = _COLUMN_COUNTERS.get(key)
        columns.append(("" if _NOT_COLUMNS.match(key) else key, kind))
    if not any(kind for _, kind in columns) or not any(_COLUMN_RESULT.search(n) for n in names):
        return None
    return columns


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
    """burn's "Learner Summary" table and model block; parameter counts of model summaries,
    and the ``Name: number`` facts right after them (``model.size_mb``, ``model.flops``...).

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
        self._facts = False  # after parameter counts: more facts about the model may follow
        self._fixed: list[tuple[str, str | None]] | None = None  # columns of a fixed-width table
        self._fixed_rows = 0

    def parse(self, line: str) -> list[Event] | None:
        if self._columns:
            return self._table_line(line)
        if self._fixed is not None:
            found = self._fixed_row(line)
            if found is not None:
                return found
            self._fixed = None
        if "  " in line and not _HAS_DIGIT.search(line):
            header = _column_header(line)
            if header is not None:
                self._fixed = header
                self._fixed_rows = 0
                return []
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
            if summary is not None:
                self._facts = True  # Lightning's summary goes on with more facts
                return [summary]
        if self._facts:
            fact = _model_fact(line)
            if fact is not None:
                return [fact]
            self._facts = False
        if "params" in line:
            return None
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
        return not (self._columns or self._in_model or self._facts or self._fixed is not None)

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

    def _fixed_row(self, line: str) -> list[Event] | None:
        """A row of numbers under a fixed-width header: a point (its counter column the step or
        epoch); None when the line is no such row (the table has ended)."""
        columns = self._fixed
        assert columns is not None
        cells = line.split()
        if len(cells) != len(columns):
            return None
        values: dict[str, float] = {}
        step: int | None = None
        epoch: float | None = None
        for (key, kind), cell in zip(columns, cells, strict=True):
            match = _CELL_NUMBER.fullmatch(cell)
            if match is None:
                return None
            number = float(match[1])
            if kind == "epoch":
                epoch = number
            elif kind == "step":
                step = int(number) if number.is_integer() else None
            elif key:
                values[key] = number
        self._fixed_rows += 1
        if epoch is not None and step is None and epoch.is_integer():
            step = int(epoch)
        return [Point(values, step, epoch)] if values else []

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
