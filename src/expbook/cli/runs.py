"""``expbook ls``, ``show`` and ``diff``."""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import zip_longest
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from expbook.cli.common import (
    check_experiments,
    open_cli_store,
    selection_query,
    warn_orphans,
    warn_unknown_keys,
)
from expbook.cli.output import (
    console,
    dim,
    fmt_bytes,
    fmt_duration,
    fmt_metric,
    fmt_number,
    fmt_time,
    fmt_value,
    print_json,
    status_text,
    to_json,
)
from expbook.columns import (
    MISSING,
    ListSpread,
    canonical,
    common_metrics,
    key_metric,
    list_cell,
    list_change,
    list_spread,
    split_key,
    varying_params,
)
from expbook.model import RunRecord

MAX_PARAM_COLUMNS = 10


# --- ls -----------------------------------------------------------------------------------------


def ls(
    *,
    experiments: tuple[str, ...],
    statuses: tuple[str, ...],
    where: str | None,
    sort: str | None,
    limit: int,
    metric_keys: tuple[str, ...],
    param_keys: tuple[str, ...],
    as_json: bool,
    store: str | None,
) -> None:
    with open_cli_store(store) as opened:
        check_experiments(opened, experiments)
        query = selection_query(
            experiments=experiments, statuses=statuses, where=where, sort=sort, limit=limit
        )
        found = opened.find_runs(query)
        total = len(found)
        if query.limit is not None and len(found) == query.limit:
            total = opened.count_runs(query)
        warn_unknown_keys(opened, found, _split(metric_keys), _split(param_keys), where, sort)
        warn_orphans(opened.url)
    out = console()
    if as_json:
        print_json(to_json([run.to_dict() for run in found]))
        return
    if not found:
        filtered = experiments or statuses or where
        out.print("no runs match" if filtered else "no runs yet")
        return
    print_runs(out, found, metric_keys=_split(metric_keys), param_keys=_split(param_keys),
               hint=" (choose with -m/-p)")  # fmt: skip
    if total > len(found):
        out.print(dim(f"{len(found)} of {total} runs shown; use --limit 0 to see all"))


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@dataclasses.dataclass
class _Column:
    header: str
    cells: list[Any]
    justify: Literal["left", "right"] = "left"
    style: str = ""
    wrap: bool = False  # only the name wraps (and then only when even it is too wide)


def runs_table(
    runs: Sequence[RunRecord],
    *,
    metric_keys: Sequence[str] = (),
    param_keys: Sequence[str] = (),
    title: str | None = None,
) -> Table:
    """The whole runs table of ``expbook ls``: every column (`print_runs` fits a terminal)."""
    columns, _ = _runs_columns(runs, metric_keys, param_keys)
    return _table(columns, range(len(columns)), title)


def print_runs(
    out: Console,
    runs: Sequence[RunRecord],
    *,
    metric_keys: Sequence[str] = (),
    param_keys: Sequence[str] = (),
    title: str | None = None,
    hint: str = "",
) -> None:
    """Print the runs table at the console's width: on a terminal too narrow for it, the
    columns of lowest priority are left out (named in a line below it, followed by ``hint``)
    rather than every column cut to a few characters; piped output has them all."""
    columns, rank = _runs_columns(runs, metric_keys, param_keys)
    shown = set(range(len(columns)))
    table = _table(columns, shown, title)
    if _width(out, table) > out.width:
        table = _table(columns, shown, title, name_width=NAME_WIDTH)
        for index in reversed(rank[_REQUIRED:]):
            if _width(out, table) <= out.width:
                break
            shown.discard(index)
            table = _table(columns, shown, title, name_width=NAME_WIDTH)
    out.print(table)
    for key, spread in _list_params(runs, param_keys):
        out.print(dim(f"{key}: every run has {', '.join(spread.common) or 'no element in common'};"
                      " the column shows the elements that vary"))  # fmt: skip
    hidden = [column.header for index, column in enumerate(columns) if index not in shown]
    if hidden:
        out.print(dim(f"not shown at {out.width} columns: {', '.join(hidden)}{hint}"))


def _list_params(
    runs: Sequence[RunRecord], param_keys: Sequence[str]
) -> list[tuple[str, ListSpread]]:
    """The param columns that are lists of words (Cargo features, repeated flags)."""
    keys = list(param_keys) or varying_params(runs)[:MAX_PARAM_COLUMNS]
    spreads = [(key, list_spread([run.params.get(key, MISSING) for run in runs])) for key in keys]
    return [(key, spread) for key, spread in spreads if spread is not None]


_REQUIRED = 3  # number, name, status: never left out
NAME_WIDTH = 32  # names are cut to this before columns are left out


def _runs_columns(
    runs: Sequence[RunRecord], metric_keys: Sequence[str], param_keys: Sequence[str]
) -> tuple[list[_Column], list[int]]:
    """The columns in display order, and their indexes by priority, highest first: number,
    name, status, the key metric, the start time, then params and metrics alternately, the
    duration, the experiment and the kind. Named columns (``-m``/``-p``) all come before the
    start time."""
    params = list(param_keys) or varying_params(runs)[:MAX_PARAM_COLUMNS]
    metrics = list(metric_keys) or common_metrics(runs)
    both = set(params) & set(metrics)
    columns = [
        _Column("#", [str(run.number) for run in runs], "right", "bold"),
        _Column("name", [run.name for run in runs], wrap=True),
        _Column("status", [status_text(run.status.value) for run in runs]),
        _Column("started", [fmt_time(run.started_at) for run in runs]),
        _Column("duration", [fmt_duration(run.duration) for run in runs], "right"),
    ]
    late = [4]
    if len({run.experiment for run in runs}) > 1:
        late.append(len(columns))
        columns.append(_Column("experiment", [run.experiment or "—" for run in runs]))
    if any(run.kind != "train" for run in runs):
        late.append(len(columns))
        columns.append(_Column("kind", [run.kind for run in runs]))
    param_columns = list(range(len(columns), len(columns) + len(params)))
    for key in params:
        spread = list_spread([run.params.get(key, MISSING) for run in runs])
        cells = [
            ("—" if key not in run.params
             else list_cell(spread, run.params[key]) if spread
             else fmt_value(run.params[key], width=24))
            for run in runs
        ]  # fmt: skip
        columns.append(_Column(f"params.{key}" if key in both else key, cells, "right", "cyan"))
    metric_columns = list(range(len(columns), len(columns) + len(metrics)))
    for key in metrics:
        cells = [_metric_cell(run, key) for run in runs]
        columns.append(_Column(f"metrics.{key}" if key in both else key, cells, "right",
                               "magenta"))  # fmt: skip
    if not metric_keys:  # the key metric first, then validation, test and other metrics
        key = key_metric(metrics)
        order = {metric: _split_rank(metric, key) for metric in metrics}
        metric_columns = [
            metric_columns[i] for i in sorted(range(len(metrics)), key=lambda i: order[metrics[i]])
        ]
    alternate = [
        i for pair in zip_longest(metric_columns, param_columns) for i in pair if i is not None
    ]
    if metric_keys or param_keys:
        rank = [0, 1, 2, *alternate, 3, *late]
    else:
        rank = [0, 1, 2, *alternate[:1], 3, *alternate[1:], *late]
    return columns, rank


def _split_rank(metric: str, key: str | None) -> int:
    if metric == key:
        return 0
    split = (split_key(metric)[0] or "").lower()
    return (
        1
        if split in ("valid", "validation", "val", "eval", "dev")
        else 2
        if split == "test"
        else 3
    )


def _metric_cell(run: RunRecord, key: str) -> str:
    summary = run.metrics.get(key)
    return "—" if summary is None else fmt_metric(summary.value, summary.unit)


def _table(
    columns: Sequence[_Column],
    shown: Iterable[int],
    title: str | None,
    name_width: int | None = None,
) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False)
    chosen = sorted(shown)
    for index in chosen:
        column = columns[index]
        table.add_column(
            column.header,
            justify=column.justify,
            style=column.style,
            no_wrap=not column.wrap,
            max_width=name_width if column.wrap else None,
            overflow="ellipsis" if column.wrap and name_width else "fold",
        )
    rows = len(columns[0].cells) if columns else 0
    for row in range(rows):
        table.add_row(*(columns[index].cells[row] for index in chosen))
    return table


def _width(out: Console, table: Table) -> int:
    """The table's natural width (a measurement at the console's width is capped to it)."""
    return Measurement.get(out, out.options.update_width(1_000_000), table).maximum


# --- show ---------------------------------------------------------------------------------------


def show(
    *, run: str, show_diff: bool, show_packages: bool, as_json: bool, store: str | None
) -> None:
    from expbook.system.summary import system_lines

    with open_cli_store(store) as opened:
        record = opened.run(run)
        files = opened.list_attachments(record.id)
        diff_text = opened.get_attachment(record.id, "git.diff") if show_diff else None
        packages = opened.get_attachment(record.id, "packages.txt") if show_packages else None
        system = system_lines(opened, record)
    out = console()
    if as_json:
        data = record.to_dict()
        data["attachments"] = files
        data["system"] = [{"label": label, "text": text} for label, text in system]
        if diff_text is not None:
            data["git"]["diff"] = diff_text.decode("utf-8", "replace")
        if packages is not None:
            data["packages"] = packages.decode().splitlines()
        print_json(to_json(data))
        return
    out.print(_header(record))
    out.print(_facts(record, files))
    if record.params:
        out.print(_params_table(record))
    if any(not key.startswith("system/") for key in record.metrics):
        out.print(summary_table(record, hide="system/"))  # summed up under System
    if system:
        out.print(Text("System", style="bold"))
        for label, text in system:
            out.print(Text.assemble("  ", (f"{label}: ", "dim"), text))
    if record.notes:
        out.print(Text("Notes", style="bold"))
        for note in record.notes:
            out.print(Text.assemble("  ", dim(fmt_time(note.created_at)), "  ", note.text))
    if record.error:
        out.print(Text("Error", style="bold red"))
        out.print(Text(record.error.rstrip()))
    if record.recording_error:
        out.print(Text("Recording error (expbook's, not the program's)", style="bold yellow"))
        out.print(Text(record.recording_error.rstrip()))
    if show_diff:
        out.print(Text("Git diff", style="bold"))
        out.print(Text(diff_text.decode("utf-8", "replace") if diff_text else "(clean)"))
    if show_packages:
        out.print(Text("Packages", style="bold"))
        out.print(Text(packages.decode() if packages else "(not captured)"))


def _header(run: RunRecord) -> Text:
    text = Text()
    text.append(f"Run #{run.number} ", style="bold")
    text.append(run.name, style="bold cyan")
    text.append("  ")
    text.append_text(status_text(run.status.value))
    return text


def _facts(run: RunRecord, files: dict[str, int]) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="dim")
    table.add_column()
    rows: list[tuple[str, str]] = [("id", run.id)]
    if run.experiment:
        rows.append(("experiment", run.experiment))
    kind = run.kind + (f"  (parent #{run.parent_number})" if run.parent_number else "")
    rows.append(("kind", kind))
    rows.append(("started", fmt_time(run.started_at, seconds=True)))
    ended = fmt_time(run.ended_at, seconds=True) if run.ended_at else "—"
    rows.append(("ended", f"{ended}  (duration {fmt_duration(run.duration)})"))
    if run.exit_code is not None:
        rows.append(("exit code", str(run.exit_code)))
    if run.command:
        rows.append(("command", shlex.join(run.command)))
    if run.cwd:
        rows.append(("cwd", run.cwd))
    rows.append(("host", describe_host(run)))
    rows.append(("git", describe_git(run)))
    if run.tags:
        rows.append(("tags", ", ".join(run.tags)))
    if files:
        rows.append(("attached", ", ".join(f"{n} ({fmt_bytes(s)})" for n, s in files.items())))
    for key, value in rows:
        table.add_row(key, Text(value))
    return table


def describe_host(run: RunRecord) -> str:
    host = run.host or {}
    parts = [run.hostname or host.get("hostname") or "—"]
    if host.get("os"):
        parts.append(str(host["os"]))
    if host.get("python"):
        parts.append(f"Python {host['python']}")
    if host.get("cpus"):
        parts.append(f"{host['cpus']} CPUs")
    if host.get("ram_bytes"):
        parts.append(f"{fmt_bytes(host['ram_bytes'])} RAM")
    gpus = host.get("gpus") or []
    if gpus:
        names = Counter(str(gpu.get("name", "GPU")) for gpu in gpus)
        parts.append("GPUs: " + ", ".join(f"{n} x {name}" for name, n in names.items()))
    return " · ".join(parts)


def describe_git(run: RunRecord) -> str:
    git = run.git
    if not git.commit and not git.branch:
        return "—"
    text = git.short_commit or "(no commit)"
    if git.branch:
        text += f" ({git.branch})"
    if git.dirty:
        text += " dirty"
    if git.remote:
        text += f" · {git.remote}"
    return text


def _params_table(run: RunRecord) -> Table:
    table = Table(box=box.SIMPLE_HEAD, title="Params", title_justify="left", pad_edge=False)
    table.add_column("param")
    table.add_column("value", style="cyan")
    for key, value in run.params.items():
        table.add_row(key, fmt_value(value, width=80))
    return table


def summary_table(run: RunRecord, *, hide: str | None = None) -> Table:
    """The per-metric summary: last value, min and max with their step, count (without the
    keys starting with ``hide``)."""
    table = Table(box=box.SIMPLE_HEAD, title="Metrics", title_justify="left", pad_edge=False)
    for name in ("metric", "last", "step", "min", "step ", "max", "step  ", "points"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for key, s in run.metrics.items():
        if hide and key.startswith(hide):
            continue
        table.add_row(
            key,
            fmt_metric(s.value, s.unit, digits=6),
            _step(s.step, s.epoch),
            fmt_metric(s.min, s.unit, digits=6),
            _step(s.min_step, s.min_epoch),
            fmt_metric(s.max, s.unit, digits=6),
            _step(s.max_step, s.max_epoch),
            str(s.count) if s.count else "set",
        )
    return table


def _step(step: int | None, epoch: float | None) -> str:
    if step is None:
        return "—"
    return f"{step} (ep {fmt_number(epoch)})" if epoch is not None else str(step)


# --- diff ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunDiff:
    params: list[tuple[str, Any, Any]]
    equal_params: list[tuple[str, Any]]
    metrics: list[tuple[str, float | None, float | None]]
    fields: list[tuple[str, str, str]]


def compare_runs(a: RunRecord, b: RunRecord) -> RunDiff:
    params, equal = [], []
    for key in sorted(set(a.params) | set(b.params)):
        va, vb = a.params.get(key, MISSING), b.params.get(key, MISSING)
        if _same(va, vb):
            equal.append((key, va))
        else:
            params.append((key, None if va is MISSING else va, None if vb is MISSING else vb))
    metrics = []
    for key in sorted(set(a.metrics) | set(b.metrics)):
        ma, mb = a.metrics.get(key), b.metrics.get(key)
        metrics.append((key, ma.value if ma else None, mb.value if mb else None))
    fields = []
    for label, va, vb in (
        ("name", a.name, b.name),
        ("experiment", a.experiment or "—", b.experiment or "—"),
        ("status", a.status.value, b.status.value),
        ("commit", a.git.short_commit or "—", b.git.short_commit or "—"),
        ("dirty", _yes_no(a.git.dirty), _yes_no(b.git.dirty)),
        ("branch", a.git.branch or "—", b.git.branch or "—"),
        ("command", shlex.join(a.command) or "—", shlex.join(b.command) or "—"),
        ("host", a.hostname or "—", b.hostname or "—"),
        ("duration", fmt_duration(a.duration), fmt_duration(b.duration)),
    ):
        fields.append((label, va, vb))
    return RunDiff(params, equal, metrics, fields)


def _same(a: Any, b: Any) -> bool:
    """Equal as stored: same JSON text, so 1 and 1.0 or true and 1 differ, and NaN equals NaN."""
    return canonical(a) == canonical(b)


def _yes_no(value: bool | None) -> str:
    return "—" if value is None else ("yes" if value else "no")


def diff(*, run_a: str, run_b: str, show_all: bool, as_json: bool, store: str | None) -> None:
    with open_cli_store(store) as opened:
        a, b = opened.run(run_a), opened.run(run_b)
    result = compare_runs(a, b)
    out = console()
    if as_json:
        print_json(
            to_json(
                {
                    "a": {"id": a.id, "number": a.number},
                    "b": {"id": b.id, "number": b.number},
                    "params": [_param_json(k, va, vb) for k, va, vb in result.params],
                    "fields": [{"field": f, "a": va, "b": vb} for f, va, vb in result.fields],
                    "metrics": [
                        {"key": k, "a": va, "b": vb, "delta": _delta(va, vb)}
                        for k, va, vb in result.metrics
                    ],
                }
            )
        )
        return
    out.print(Text(f"#{a.number} {a.name}  →  #{b.number} {b.name}", style="bold"))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("")
    table.add_column(f"#{a.number}")
    table.add_column(f"#{b.number}")
    for label, va, vb in result.fields:
        style = "" if va == vb else "yellow"
        table.add_row(label, Text(va, style=style), Text(vb, style=style))
    out.print(table)
    if result.params or show_all:
        params = Table(box=box.SIMPLE_HEAD, title="Params", title_justify="left", pad_edge=False)
        params.add_column("param")
        params.add_column(f"#{a.number}", style="cyan")
        params.add_column(f"#{b.number}", style="cyan")
        for key, va, vb in result.params:
            change = list_change(va, vb) if key in a.params and key in b.params else None
            if change is not None:  # list-like: what differs, element-wise
                removed, added, common = change
                params.add_row(key, Text(" ".join(f"-{w}" for w in removed) or "—", style="red"),
                               Text(" ".join(f"+{w}" for w in added) or "—", style="green")
                               + Text(f"  ({common} in common)", style="dim"))  # fmt: skip
                continue
            params.add_row(key, _param_cell(va, key in a.params), _param_cell(vb, key in b.params))
        if show_all:
            for key, value in result.equal_params:
                params.add_row(Text(key, style="dim"), Text(fmt_value(value), style="dim"),
                               Text(fmt_value(value), style="dim"))  # fmt: skip
        out.print(params)
    else:
        out.print(dim("params: identical"))
    if result.metrics:
        metrics = Table(box=box.SIMPLE_HEAD, title="Metrics (last value)", title_justify="left",
                        pad_edge=False)  # fmt: skip
        for name in ("metric", f"#{a.number}", f"#{b.number}", "Δ", "Δ%"):
            metrics.add_column(name, justify="left" if name == "metric" else "right")
        for key, va, vb in result.metrics:
            delta = _delta(va, vb)
            relative = _relative(va, vb)
            metrics.add_row(
                key,
                fmt_number(va, 6),
                fmt_number(vb, 6),
                "—" if delta is None else f"{delta:+.4g}",
                "—" if relative is None else f"{relative:+.1f}%",
            )
        out.print(metrics)


def _param_json(key: str, a: Any, b: Any) -> dict[str, Any]:
    """A differing param in ``diff --json``; list-like ones also say what was removed and
    added, element-wise."""
    row = {"key": key, "a": a, "b": b}
    change = list_change(a, b)
    if change is not None:
        row["removed"], row["added"] = change[0], change[1]
    return row


def _param_cell(value: Any, present: bool) -> Text:
    return Text(fmt_value(value, width=60)) if present else Text("(not set)", style="dim")


def _delta(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return None
    return b - a


def _relative(a: float | None, b: float | None) -> float | None:
    delta = _delta(a, b)
    if delta is None or a == 0:
        return None
    return 100.0 * delta / abs(a)
