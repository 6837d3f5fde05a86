"""``expbook ls``, ``show`` and ``diff``."""

from __future__ import annotations

import dataclasses
import math
import shlex
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from expbook.cli.common import open_cli_store, selection_query
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
from expbook.columns import MISSING, canonical, common_metrics, varying_params
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
        query = selection_query(
            experiments=experiments, statuses=statuses, where=where, sort=sort, limit=limit
        )
        found = opened.find_runs(query)
        total = len(found)
        if query.limit is not None and len(found) == query.limit:
            total = opened.count_runs(query)
    out = console()
    if as_json:
        print_json(to_json([run.to_dict() for run in found]))
        return
    if not found:
        filtered = experiments or statuses or where
        out.print("no runs match" if filtered else "no runs yet")
        return
    out.print(runs_table(found, metric_keys=_split(metric_keys), param_keys=_split(param_keys)))
    if total > len(found):
        out.print(dim(f"{len(found)} of {total} runs shown; use --limit 0 to see all"))


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def runs_table(
    runs: Sequence[RunRecord],
    *,
    metric_keys: Sequence[str] = (),
    param_keys: Sequence[str] = (),
    title: str | None = None,
) -> Table:
    """The runs table of ``expbook ls`` (also printed by the demo)."""
    params = list(param_keys) or varying_params(runs)[:MAX_PARAM_COLUMNS]
    metrics = list(metric_keys) or common_metrics(runs)
    show_experiment = len({run.experiment for run in runs}) > 1
    show_kind = any(run.kind != "train" for run in runs)
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False)
    table.add_column("#", justify="right", style="bold")
    table.add_column("name")
    if show_experiment:
        table.add_column("experiment")
    if show_kind:
        table.add_column("kind")
    table.add_column("status")
    table.add_column("started")
    table.add_column("duration", justify="right")
    for key in params:
        table.add_column(key, justify="right", style="cyan")
    for key in metrics:
        table.add_column(key, justify="right", style="magenta")
    for run in runs:
        cells: list[Any] = [str(run.number), run.name]
        if show_experiment:
            cells.append(run.experiment or "—")
        if show_kind:
            cells.append(run.kind)
        cells += [
            status_text(run.status.value),
            fmt_time(run.started_at),
            fmt_duration(run.duration),
        ]
        cells += [
            fmt_value(run.params.get(key), width=24) if key in run.params else "—"
            for key in params
        ]
        for key in metrics:
            summary = run.metrics.get(key)
            cells.append("—" if summary is None else fmt_metric(summary.value, summary.unit))
        table.add_row(*cells)
    return table


# --- show ---------------------------------------------------------------------------------------


def show(
    *, run: str, show_diff: bool, show_packages: bool, as_json: bool, store: str | None
) -> None:
    with open_cli_store(store) as opened:
        record = opened.run(run)
        files = opened.list_attachments(record.id)
        diff_text = opened.get_attachment(record.id, "git.diff") if show_diff else None
        packages = opened.get_attachment(record.id, "packages.txt") if show_packages else None
    out = console()
    if as_json:
        data = record.to_dict()
        data["attachments"] = files
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
    if record.metrics:
        out.print(summary_table(record))
    if record.notes:
        out.print(Text("Notes", style="bold"))
        for note in record.notes:
            out.print(Text.assemble("  ", dim(fmt_time(note.created_at)), "  ", note.text))
    if record.error:
        out.print(Text("Error", style="bold red"))
        out.print(Text(record.error.rstrip()))
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


def summary_table(run: RunRecord) -> Table:
    """The per-metric summary: last value, min and max with their step, count."""
    table = Table(box=box.SIMPLE_HEAD, title="Metrics", title_justify="left", pad_edge=False)
    for name in ("metric", "last", "step", "min", "step ", "max", "step  ", "points"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for key, s in run.metrics.items():
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
                    "params": [{"key": k, "a": va, "b": vb} for k, va, vb in result.params],
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
