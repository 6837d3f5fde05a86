"""``expbook compare A B``: is B better than A, beyond run-to-run noise?"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from expbook.cli.common import open_cli_store
from expbook.cli.output import console, dim, fmt_number, print_json, to_json
from expbook.columns import common_metrics, key_metric, lower_is_better
from expbook.errors import ExpbookError
from expbook.model import RunRecord, RunStatus
from expbook.store import Store


def compare(
    *,
    side_a: str,
    side_b: str,
    metric: str | None,
    exact: bool,
    seed_params: tuple[str, ...],
    confidence: float,
    as_json: bool,
    store: str | None,
) -> None:
    from expbook.report.stats import compare_values

    with open_cli_store(store) as opened:
        runs_a = _side(opened, side_a, exact, seed_params)
        runs_b = _side(opened, side_b, exact, seed_params)
    metric = metric or key_metric(common_metrics([*runs_a, *runs_b]))
    if metric is None:
        raise ExpbookError("the runs have no metric in common; name one with --metric")
    values_a, values_b = _values(runs_a, metric), _values(runs_b, metric)
    result = compare_values(values_a, values_b, confidence)
    if as_json:
        print_json(to_json(_as_dict(metric, runs_a, runs_b, values_a, values_b, result)))
        return
    out = console()
    out.print(_table(metric, runs_a, runs_b, result))
    out.print(_difference_line(metric, result))
    out.print(Text(result.verdict, style=_verdict_style(result.distinguishable)))


def _side(store: Store, text: str, exact: bool, seed_params: Sequence[str]) -> list[RunRecord]:
    """A comma-separated list of runs, or one run with (unless ``exact``) the finished runs
    that repeat its configuration: same experiment, same kind, same params but the seed."""
    from expbook.report.stats import group_repeats

    refs = [part.strip() for part in text.split(",") if part.strip()]
    if not refs:
        raise ExpbookError(f"no run in {text!r}")
    named = [store.run(ref) for ref in refs]
    if exact or len(named) > 1:
        return named
    run = named[0]
    candidates = store.runs(experiment=run.experiment) if run.experiment else store.runs()
    pool = [run] + [
        r for r in candidates
        if r.id != run.id and r.experiment == run.experiment and r.kind == run.kind
        and r.status is RunStatus.FINISHED
    ]  # fmt: skip
    for group in group_repeats(pool, seed_params):
        if any(member.id == run.id for member in group.runs):
            return sorted(group.runs, key=lambda r: r.number)
    return [run]  # pragma: no cover - the run is always in a group


def _values(runs: Sequence[RunRecord], metric: str) -> list[float]:
    missing = [run.ref for run in runs if run.metric(metric) is None]
    if missing:
        raise ExpbookError(f"run(s) {', '.join(missing)} have no metric {metric!r}")
    return [run.metric(metric) for run in runs]  # type: ignore[misc]


def _table(metric: str, runs_a: Any, runs_b: Any, result: Any) -> Table:
    better = "lower is better" if lower_is_better(metric) else "higher is better"
    table = Table(box=box.SIMPLE_HEAD, title=f"{metric} ({better})", title_justify="left")
    for column in ("", "runs", "n", "mean", "std", f"{result.a.confidence:.0%} CI"):
        table.add_column(column, justify="left" if column in ("", "runs") else "right")
    for label, runs, est in (("A", runs_a, result.a), ("B", runs_b, result.b)):
        table.add_row(
            label, ", ".join(r.ref for r in runs), str(est.n), fmt_number(est.mean),
            _or_dash(est.std), _interval(est.low, est.high),
        )  # fmt: skip
    return table


def _difference_line(metric: str, result: Any) -> Text:
    text = Text("B - A: ", style="bold")
    text.append(f"{result.diff:+.4g}")
    if not math.isnan(result.low):
        level = f"{result.a.confidence:.0%}"
        text.append(f"  {level} CI {_interval(result.low, result.high)}")
        if not math.isnan(result.df):
            text.append(dim(f"  (Welch's t = {result.t:.3g}, df = {result.df:.3g}, "
                            f"p = {result.p_value:.3g})"))  # fmt: skip
    return text


def _verdict_style(distinguishable: bool | None) -> str:
    return {True: "bold green", False: "yellow", None: "yellow"}[distinguishable]


def _or_dash(value: float) -> str:
    return "—" if math.isnan(value) else fmt_number(value)


def _interval(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "—"
    return f"[{fmt_number(low)}, {fmt_number(high)}]"


def _as_dict(
    metric: str, runs_a: Any, runs_b: Any, values_a: Any, values_b: Any, result: Any
) -> dict[str, Any]:
    def side(runs: Any, values: Any, est: Any) -> dict[str, Any]:
        return {
            "runs": [r.number for r in runs], "values": list(values), "n": est.n,
            "mean": est.mean, "std": est.std, "ci": [est.low, est.high],
        }  # fmt: skip

    return {
        "metric": metric,
        "lower_is_better": lower_is_better(metric),
        "a": side(runs_a, values_a, result.a),
        "b": side(runs_b, values_b, result.b),
        "difference": result.diff,
        "ci": [result.low, result.high],
        "confidence": result.a.confidence,
        "t": result.t,
        "df": result.df,
        "p_value": result.p_value,
        "distinguishable": result.distinguishable,
        "verdict": result.verdict,
    }
