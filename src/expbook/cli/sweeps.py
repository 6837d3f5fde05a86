"""``expbook sweep ls|show|stop|resume|edit|attach|rm``: the implementations.

Each command opens the store, calls the library (``expbook.sweep.analysis`` for what a sweep
found, ``expbook.sweep.edit`` for edits and attachments) and prints the result, or the same
content as JSON with ``--json``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from expbook.cli.common import open_cli_store
from expbook.cli.output import (
    console,
    dim,
    fmt_duration,
    fmt_number,
    fmt_time,
    fmt_value,
    print_json,
    status_text,
    to_json,
)
from expbook.errors import ExpbookError
from expbook.model import SweepRecord, SweepState, TrialRecord
from expbook.sweep import analysis
from expbook.sweep.spec import SweepSpec, SweepSpecError, parse_spec

SWEEP_STATE_STYLES = {"running": "bold blue", "stopped": "yellow", "finished": "green"}
MAX_PARAM_COLUMNS = 8
BAR_WIDTH = 24


def _spec(sweep: SweepRecord) -> tuple[SweepSpec | None, str | None]:
    """The parsed spec, or (None, why) when this expbook cannot read it."""
    try:
        return parse_spec(sweep.spec), None
    except SweepSpecError as error:
        return None, str(error)


# ---------------------------------------------------------------------------------------------
# ls


def ls(*, as_json: bool, store: str | None) -> None:
    with open_cli_store(store) as opened:
        found = [(sweep, opened.list_trials(sweep.id)) for sweep in opened.list_sweeps()]
    rows = [_ls_row(sweep, trials) for sweep, trials in found]
    if as_json:
        print_json(to_json(rows))
        return
    out = console()
    if not rows:
        out.print("no sweeps yet; start one with: expbook sweep run SPEC.yaml")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    columns = (
        "sweep",
        "state",
        "method",
        "metric",
        "done",
        "running",
        "pruned",
        "failed",
        "crashed",
        "budget",
        "best",
        "created",
    )
    for column in columns:
        right = column in ("done", "running", "pruned", "failed", "crashed", "budget", "best")
        table.add_column(column, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        counts = row["trials"]
        table.add_row(
            row["name"],
            Text(row["state"], style=SWEEP_STATE_STYLES.get(row["state"], "")),
            row["method"] or "?",
            _metric_label(row["metric"]),
            *(
                str(counts[state])
                for state in ("finished", "running", "pruned", "failed", "crashed")
            ),
            "—" if row["budget"] is None else str(row["budget"]),
            fmt_number(row["best"]),
            fmt_time(row["created_at"]),
        )
    out.print(table)


def _ls_row(sweep: SweepRecord, trials: Sequence[TrialRecord]) -> dict[str, Any]:
    spec, problem = _spec(sweep)
    ranked = analysis.configurations(spec, trials) if spec is not None else []
    metric = spec.metric if spec is not None else None
    best = analysis.best_configuration(ranked)
    return {
        "id": sweep.id,
        "name": sweep.name,
        "state": str(sweep.state),
        "experiment": sweep.experiment,
        "version": sweep.version,
        "method": spec.method if spec else None,
        "metric": {"name": metric.name, "goal": metric.goal} if metric else None,
        "trials": analysis.counts(trials),
        "budget": spec.budget() if spec else None,
        "best": best.mean if best and metric else None,
        "best_trial": best.best_trial.number if best and metric else None,
        "created_at": sweep.created_at,
        "updated_at": sweep.updated_at,
        "ended_at": sweep.ended_at,
        "spec_error": problem,
    }


def _metric_label(metric: Mapping[str, Any] | None) -> str:
    if not metric:
        return "—"
    return f"{metric['name']} ({'min' if metric['goal'] == 'minimize' else 'max'})"


# ---------------------------------------------------------------------------------------------
# show


def show(*, sweep: str, limit: int, show_history: bool, as_json: bool, store: str | None) -> None:
    from expbook.sweep.edit import history

    with open_cli_store(store) as opened:
        record = opened.get_sweep(sweep)
        trials = opened.list_trials(record.id)
        edits = history(opened, record)
    spec, problem = _spec(record)
    if spec is None:
        raise ExpbookError(f"sweep {record.name!r}: its stored spec cannot be read: {problem}")
    data = _show_data(record, spec, trials, limit, edits, show_history)
    if as_json:
        print_json(to_json(data))
        return
    _print_show(console(), record, spec, data, edits if show_history else None)


def _show_data(
    record: SweepRecord,
    spec: SweepSpec,
    trials: Sequence[TrialRecord],
    limit: int,
    edits: Sequence[Any],
    with_specs: bool,
) -> dict[str, Any]:
    ranked = analysis.configurations(spec, trials)
    best = analysis.best_configuration(ranked)
    rows = analysis.trial_rows(spec, trials)
    importance = analysis.importance(spec, ranked)
    check = analysis.noise_check(spec, ranked)
    data = {**_ls_row(record, trials), "spec": dict(record.spec)}
    data.update(
        metrics=[{"name": m.name, "goal": m.goal, "target": m.target} for m in spec.metrics],
        parameters=[
            {
                "name": p.name,
                "kind": p.kind,
                "distribution": p.distribution,
                "description": analysis.describe_param(p),
            }
            for p in spec.parameters
        ],
        sampler=spec.effective_sampler,
        pruner=spec.effective_pruner,
        repeats=spec.repeats,
        best=_best_dict(best) if best is not None and spec.metric else None,
        pareto=[
            {
                "trial": t.number,
                "run": t.run_number,
                "params": dict(t.params),
                "values": {m.name: analysis.value_of(t, i) for i, m in enumerate(spec.metrics)},
            }
            for t in analysis.pareto_front(spec, trials)
        ],
        trial_count=len(rows),
        trials_shown=len(rows[: limit or None]),
        trial_rows=[_row_dict(row) for row in rows[: limit or None]],
        importance={
            "evaluator": importance.evaluator,
            "configurations": importance.configurations,
            "params": dict(importance.values),
            "rough": importance.rough,
            "reason": importance.reason,
        },
        noise=_noise_dict(check, spec) if check is not None else None,
        edits=[
            {
                "version": e.version,
                "replaced_at": e.replaced_at,
                **({"spec": dict(e.spec)} if with_specs else {}),
            }
            for e in edits
        ],
    )
    return data


def _best_dict(config: analysis.Configuration) -> dict[str, Any]:
    trial = config.best_trial
    runs, values = _paired(config)
    return {
        "trial": trial.number,
        "run": trial.run_number,
        "value": analysis.value_of(trial),
        "params": dict(config.params),
        "config": trial.config,
        "mean": config.mean,
        "values": values,
        "runs": runs,
    }


def _paired(config: analysis.Configuration) -> tuple[list[int], list[float | None]]:
    """The configuration's run numbers (ascending) and its values in the same order (a trial
    whose run was deleted last, with no run number)."""
    pairs = sorted(
        ((t.run_number, analysis.value_of(t)) for t in config.trials),
        key=lambda pair: (pair[0] is None, pair[0] or 0),
    )
    return [run for run, _ in pairs if run is not None], [value for _, value in pairs]


def _row_dict(row: analysis.TrialRow) -> dict[str, Any]:
    return {
        "number": row.number,
        "run": row.run_number,
        "state": row.state,
        "config": row.config,
        "repeat": row.repeat,
        "params": dict(row.params),
        "value": row.value,
        "pruned_step": row.pruned_step,
        "duration": row.duration,
        "error": row.error,
    }


def _noise_dict(check: analysis.NoiseCheck, spec: SweepSpec) -> dict[str, Any]:
    metric = spec.metric
    assert metric is not None  # noise_check needs ranked configurations, hence a metric

    def side(config: analysis.Configuration | None, est: Any) -> dict[str, Any] | None:
        if config is None:
            return None
        runs, values = _paired(config)
        found = {
            "runs": runs,
            "values": values,
            "n": len(config.values),
            "params": dict(config.params),
        }
        if est is not None:
            found.update(mean=est.mean, std=est.std, ci=[est.low, est.high])
        return found

    diff = check.difference
    data: dict[str, Any] = {
        "metric": metric.name,
        "goal": metric.goal,
        "best": side(check.best, diff.b if diff else None),
        "runner_up": side(check.runner_up, diff.a if diff else None),
        "reason": check.reason,
        "verdict": analysis.noise_verdict(check, metric),
    }
    if diff is not None:
        data.update(
            difference=diff.diff,
            ci=[diff.low, diff.high],
            confidence=diff.a.confidence,
            t=diff.t,
            df=diff.df,
            p_value=diff.p_value,
            distinguishable=diff.distinguishable,
            compare=_compare_command(check, metric.name),
        )
    return data


def _compare_command(check: analysis.NoiseCheck, metric: str) -> str | None:
    """The ``expbook compare`` command that prints the same numbers (A = runner-up, B = best)."""
    if check.best is None or check.runner_up is None:
        return None
    sides = [check.runner_up, check.best]
    if any(len(c.runs) != len(c.values) for c in sides):  # a trial's run was deleted
        return None
    refs = [",".join(str(n) for n in sorted(c.runs)) for c in sides]
    exact = " --exact" if any(len(c.runs) == 1 for c in sides) else ""
    return f"expbook compare {refs[0]} {refs[1]} --metric {metric}{exact}"


def _print_show(
    out: Console,
    record: SweepRecord,
    spec: SweepSpec,
    data: Mapping[str, Any],
    edits: Sequence[Any] | None,
) -> None:
    _print_header(out, record, spec, data)
    out.print()
    _print_best(out, spec, data["best"])
    _print_pareto(out, spec, data["pareto"])
    _print_trials(out, spec, data)
    _print_importance(out, data["importance"])
    if data["noise"] is not None:
        out.print()
        _print_noise(out, data["noise"])
    if edits is not None:
        out.print()
        _print_history(out, record, edits)
    elif data["edits"]:
        n = len(data["edits"])
        out.print(
            dim(
                f"the spec was edited {n} time{'s' if n != 1 else ''}; see them with "
                f"expbook sweep show {record.name} --history"
            )
        )


def _print_header(
    out: Console, record: SweepRecord, spec: SweepSpec, data: Mapping[str, Any]
) -> None:
    state = str(record.state)
    head = Text(record.name, style="bold")
    head.append("  ")
    head.append(state, style=SWEEP_STATE_STYLES.get(state, ""))
    head.append(dim(f"  version {record.version}, created {fmt_time(record.created_at)}"))
    out.print(head)
    if record.experiment:
        out.print(Text.assemble(("experiment: ", "bold"), record.experiment))
    metrics = ", ".join(f"{m.name} ({m.goal})" for m in spec.metrics) or "none"
    search = f"{spec.method} (sampler {spec.effective_sampler}, pruner {spec.effective_pruner})"
    out.print(Text.assemble(("search: ", "bold"), search, ("  metric: ", "bold"), metrics))
    counts = data["trials"]
    done = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no trials yet"
    budget = "no trial budget" if data["budget"] is None else f"budget {data['budget']} trials"
    extra = [f"timeout {fmt_duration(spec.timeout)}"] if spec.timeout else []
    extra += [f"{spec.repeats} repeats per configuration"] if spec.repeats > 1 else []
    out.print(Text.assemble(("trials: ", "bold"), done, f"; {budget}", *(f"; {e}" for e in extra)))
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True)
    table.add_column()
    for param in data["parameters"]:
        table.add_row(f"  {param['name']}", param["description"])
    out.print(Text("parameters:", style="bold"))
    out.print(table)


def _print_pareto(out: Console, spec: SweepSpec, front: Sequence[Mapping[str, Any]]) -> None:
    """Several metrics: the trials no other trial beats on all of them (the first metric alone
    ranks the table and names "best")."""
    if len(spec.metrics) < 2:
        return
    names = ", ".join(m.name for m in spec.metrics)
    if not front:
        out.print(dim(f"Pareto front ({names}): no finished trial has every metric yet"))
        return
    count = f"{len(front)} trial{'s' if len(front) != 1 else ''}"
    out.print(Text(f"Pareto front ({names}): {count} no other trial beats on every metric",
                   style="bold"))  # fmt: skip
    for point in front:
        run = f"run #{point['run']}" if point["run"] is not None else "run deleted"
        values = ", ".join(f"{k} = {fmt_number(v)}" for k, v in point["values"].items())
        params = "  ".join(f"{k}={fmt_value(v)}" for k, v in point["params"].items())
        out.print(f"  trial {point['trial']} ({run}): {values}   {params}", highlight=False)


def _print_best(out: Console, spec: SweepSpec, best: Mapping[str, Any] | None) -> None:
    metric = spec.metric
    if metric is None:
        out.print(dim("best: the spec names no metric"))
        return
    if best is None:
        out.print(dim(f"best: no finished trial with {metric.name} yet"))
        return
    run = f"run #{best['run']}" if best["run"] is not None else "its run was deleted"
    line = Text("best: ", style="bold")
    line.append(f"trial {best['trial']} ({run}): {metric.name} = {fmt_number(best['value'])}")
    if len(best["values"]) > 1:
        from expbook.report.stats import estimate

        runs = ", ".join(f"#{n}" for n in sorted(best["runs"]))
        line.append(f"; configuration mean {estimate(best['values']).format()} over {runs}")
    out.print(line)
    params = "  ".join(f"{k}={fmt_value(v)}" for k, v in best["params"].items())
    out.print(f"  {params}", highlight=False)


def _print_trials(out: Console, spec: SweepSpec, data: Mapping[str, Any]) -> None:
    rows = data["trial_rows"]
    if not rows:
        return
    names = list(dict.fromkeys(k for row in rows for k in row["params"]))[:MAX_PARAM_COLUMNS]
    metric = spec.metric.name if spec.metric else "value"
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    repeats = spec.repeats > 1
    headers = [
        "trial",
        "run",
        "state",
        *(["config"] if repeats else []),
        *names,
        metric,
        "pruned at",
        "duration",
    ]
    for header in headers:
        left = header in ("state",) or (header in names and not _numeric(rows, header))
        table.add_column(header, justify="left" if left else "right", no_wrap=True)
    for row in rows:
        cells = [
            str(row["number"]),
            "—" if row["run"] is None else f"#{row['run']}",
            status_text(row["state"]),
            *([str(row["config"])] if repeats else []),
            *(fmt_value(row["params"].get(k), 16) if k in row["params"] else "—" for k in names),
            fmt_number(row["value"]),
            "—" if row["pruned_step"] is None else str(row["pruned_step"]),
            fmt_duration(row["duration"]),
        ]
        table.add_row(*cells)
    out.print(table)
    hidden = data["trial_count"] - data["trials_shown"]
    if hidden:
        out.print(dim(f"{hidden} more trial{'s' if hidden != 1 else ''} (--limit 0 shows all)"))


def _numeric(rows: Sequence[Mapping[str, Any]], key: str) -> bool:
    values = [row["params"].get(key) for row in rows if key in row["params"]]
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _print_importance(out: Console, importance: Mapping[str, Any]) -> None:
    if not importance["params"]:
        out.print(dim(f"parameter importance: {importance['reason']}"))
        return
    n = importance["configurations"]
    out.print(
        Text.assemble(
            ("parameter importance", "bold"), dim(f" (Optuna's PED-ANOVA over {n} configurations)")
        )
    )
    width = max(len(name) for name in importance["params"])
    for name, value in importance["params"].items():
        bar = "█" * max(0, round(value * BAR_WIDTH))
        out.print(f"  {name:<{width}}  {value:5.2f}  {bar}", highlight=False)
    if importance["rough"]:
        out.print(
            dim(
                f"  rough: only {n} configurations (importance settles with "
                f"{analysis.ROUGH_IMPORTANCE_CONFIGS} or more)"
            )
        )


def _print_noise(out: Console, noise: Mapping[str, Any]) -> None:
    best, runner = noise["best"], noise["runner_up"]
    title = Text("beyond noise? ", style="bold")
    if best is not None and runner is not None:
        title.append(
            f"best ({_runs(best)}) against runner-up ({_runs(runner)}) on {noise['metric']}"
        )
    out.print(title)
    if "difference" in noise and not math.isnan(noise["ci"][0]):
        line = f"  best - runner-up: {noise['difference']:+.4g}  "
        line += f"{noise['confidence']:.0%} CI [{fmt_number(noise['ci'][0])}, "
        line += f"{fmt_number(noise['ci'][1])}]"
        if not math.isnan(noise["df"]):
            line += f"  (Welch's t = {noise['t']:.3g}, df = {noise['df']:.3g}, "
            line += f"p = {noise['p_value']:.3g})"
        out.print(line, highlight=False)
    style = "bold green" if noise.get("distinguishable") and noise["reason"] is None else "yellow"
    out.print(Text(f"  {noise['verdict']}", style=style))
    if noise.get("compare"):
        out.print(dim(f"  the same test: {noise['compare']}"))


def _runs(side: Mapping[str, Any]) -> str:
    runs = ", ".join(f"#{n}" for n in side["runs"]) or "runs deleted"
    return f"{runs}, n={side['n']}"


def _print_history(out: Console, record: SweepRecord, edits: Sequence[Any]) -> None:
    from expbook.sweep.edit import spec_diff

    if not edits:
        out.print(dim("the spec was never edited"))
        return
    specs = [e.spec for e in edits] + [record.spec]
    for i, e in enumerate(edits):
        out.print(
            Text(
                f"edit {i + 1}, {fmt_time(e.replaced_at, seconds=True)} "
                f"(replaced version {e.version}):",
                style="bold",
            )
        )
        _print_diff(out, spec_diff(specs[i], specs[i + 1], "before", "after"))


def _print_diff(out: Console, lines: Sequence[str]) -> None:
    styles = {"+": "green", "-": "red", "@": "cyan"}
    for line in lines:
        head = line[:1] if not line.startswith(("+++", "---")) else ""
        out.print(Text(line, style=styles.get(head, "")))


# ---------------------------------------------------------------------------------------------
# stop, resume


def set_state(*, sweep: str, state: str, store: str | None) -> None:
    """Stop or resume a sweep. Agents read the state before each trial and at each heartbeat:
    on ``stopped`` they stop their running trials (SIGTERM, marked ``stopped``: such trials do
    not count toward the budget) and exit."""
    with open_cli_store(store) as opened:
        record = opened.get_sweep(sweep)
        if str(record.state) == state:
            console().print(f"sweep {record.name!r} is {state} already", highlight=False)
            return
        if state == SweepState.STOPPED and record.state == SweepState.FINISHED:
            console().print(f"sweep {record.name!r} is finished: nothing to stop", highlight=False)
            return
        changed = opened.update_sweep(record.id, state=state)
        trials = opened.list_trials(record.id)
    out = console()
    if state == SweepState.STOPPED:
        running = analysis.counts(trials)["running"]
        extra = (
            f"; its agents stop the {running} running trial{'s' if running != 1 else ''} "
            "(marked stopped, not counted toward the budget) and exit"
            if running
            else ""
        )
        out.print(
            f"stopped sweep {record.name!r}: agents start no new trial{extra}; continue "
            f"it with: expbook sweep resume {record.name}",
            highlight=False,
        )
        return
    out.print(
        f"resumed sweep {record.name!r} (was {record.state}); start agents with: "
        f"expbook sweep agent {record.name}",
        highlight=False,
    )
    _why_done(out, changed or record, trials)


def _why_done(out: Console, record: SweepRecord, trials: Sequence[TrialRecord]) -> None:
    """A line when agents would find the sweep done at once (budget, timeout, target)."""
    from expbook.sweep.engine import why_done

    spec, _ = _spec(record)
    reason = why_done(spec, record, trials) if spec is not None else None
    if reason is not None:
        out.print(
            dim(
                f"agents will find it done: {reason}; raise the budget with expbook "
                f"sweep edit {record.name} --trials N (or --timeout)"
            )
        )


# ---------------------------------------------------------------------------------------------
# edit


def edit(
    *,
    sweep: str,
    params: tuple[str, ...],
    add_values: tuple[str, ...],
    sets: tuple[str, ...],
    trials: int | None,
    run_cap: int | None,
    timeout: str | None,
    spec_file: str | None,
    dry_run: bool,
    store: str | None,
) -> None:
    from expbook.sweep import edit as editing

    edits: list[editing.Edit] = []
    if spec_file is not None:
        from expbook.sweep.spec import load_spec

        edits.append(editing.replace_spec(load_spec(spec_file).raw))
    edits += [editing.set_path(text) for text in sets]
    edits += [editing.set_param_key(text) for text in params]
    edits += [editing.add_values(text) for text in add_values]
    if trials is not None or run_cap is not None or timeout is not None:
        edits.append(editing.set_budget(trials=trials, run_cap=run_cap, timeout=timeout))
    if not edits:
        raise ExpbookError(
            "nothing to change: give --param, --add-values, --set, --trials, "
            "--run-cap, --timeout or --spec"
        )
    with open_cli_store(store) as opened:
        result = editing.apply_edit(opened, sweep, edits, dry_run=dry_run)
    out = console()
    _print_diff(out, result.diff)
    name = result.before.name
    if dry_run:
        out.print(dim(f"dry run: sweep {name!r} not changed"))
        return
    assert result.after is not None
    tries = (
        f" (after {result.attempts} attempts: agents kept adding trials)"
        if (result.attempts > 1)
        else ""
    )
    after = result.after
    if after.state == SweepState.RUNNING:
        then = "running agents use the new spec for their next trial"
    else:
        then = f"the sweep is {after.state}: continue it with expbook sweep resume {name}"
    out.print(
        f"edited sweep {name!r}: version {result.before.version} -> {after.version}{tries}; "
        f"{then}",
        highlight=False,
    )


# ---------------------------------------------------------------------------------------------
# attach


def attach(*, sweep: str, runs: tuple[str, ...], store: str | None) -> None:
    from expbook.sweep.edit import attach_runs

    with open_cli_store(store) as opened:
        added = attach_runs(opened, sweep, runs)
        record = opened.get_sweep(sweep)
    spec, _ = _spec(record)
    metric = spec.metric if spec is not None else None
    out = console()
    for trial in added:
        value = f": {metric.name} = {fmt_number(analysis.value_of(trial))}" if metric else ""
        out.print(
            f"attached run #{trial.run_number} to sweep {record.name!r} as trial "
            f"{trial.number}{value}",
            highlight=False,
        )


# ---------------------------------------------------------------------------------------------
# rm


def rm(*, sweep: str, yes: bool, force: bool, store: str | None) -> None:
    import click

    with open_cli_store(store) as opened:
        record = opened.get_sweep(sweep)
        if record.state == SweepState.RUNNING and not force:
            raise ExpbookError(
                f"sweep {record.name!r} is running; stop it first (expbook sweep "
                f"stop {record.name}), or pass --force"
            )
        count = len(opened.list_trials(record.id))
        what = f"sweep {record.name!r} and its {count} trial{'s' if count != 1 else ''}"
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    f"refusing to delete {what} without --yes (no terminal to ask)"
                )
            click.confirm(f"Delete {what} (their runs stay)?", abort=True)
        opened.delete_sweep(record.id)  # its history goes with it
    console().print(f"deleted {what}; their runs stay", highlight=False)
