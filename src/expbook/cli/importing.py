"""``expbook import tensorboard|mlflow``: read the source, bring its runs into the store, and
report what was imported and what was skipped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.table import Table
from rich.text import Text

from expbook.cli.output import console, dim, status_text
from expbook.importers import ImportReport, SourceRun, check_experiment_name, import_runs
from expbook.locations import sqlite_path
from expbook.store import Store, open_store, resolve_url

STATES = {"new": "new", "updated": "updated", "unchanged": "up to date"}


def tensorboard(*, logdir: str, experiment: str | None, dry_run: bool, store: str | None) -> None:
    from expbook.importers.tensorboard import read_logdir

    if experiment is not None:
        check_experiment_name(experiment)
    runs = read_logdir(logdir, experiment)
    report = ImportReport(source=f"TensorBoard {logdir}")
    _import(report, runs, store, dry_run)


def mlflow(
    *, tracking_uri: str | None, experiments: tuple[str, ...], dry_run: bool, store: str | None
) -> None:
    from expbook.importers.mlflow import read_tracking

    source = read_tracking(tracking_uri, experiments)
    report = ImportReport(source=f"MLflow {source.uri}", skipped=source.skipped)
    report.experiments = sorted(source.experiments)

    def describe(opened: Store) -> None:
        for name, description in source.experiments.items():
            opened.create_experiment(name, description=description)

    _import(report, source.runs, store, dry_run, before=describe)


def _import(
    report: ImportReport,
    runs: list[SourceRun],
    location: str | None,
    dry_run: bool,
    before: Callable[[Store], None] | None = None,
) -> None:
    url = resolve_url(location)
    database = sqlite_path(url)
    if dry_run and database is not None and not Path(database).exists():
        import_runs(None, runs, report, dry_run=True)  # no store yet: every run is new
    else:
        with open_store(url) as opened:
            if before is not None and not dry_run:
                before(opened)
            import_runs(opened, runs, report, dry_run=dry_run)
    print_report(report)


def print_report(report: ImportReport) -> None:
    out = console()
    verb = "would import" if report.dry_run else "imported"
    if report.dry_run:
        out.print(dim("dry run: nothing is written"))
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("run", "name", "", "status", "points", "metrics", "params", "tags", "notes"):
        justify = "right" if column in ("points", "metrics", "params", "tags", "notes") else "left"
        table.add_column(column, justify=justify)
    for outcome in report.outcomes:
        run = outcome.source
        number = f"#{outcome.number}" if outcome.number is not None else "-"
        table.add_row(
            number, run.name, _state(outcome.state), status_text(run.status.value),
            _count(outcome.points), _count(outcome.keys), _count(outcome.params),
            _count(outcome.tags), _count(outcome.notes),
        )  # fmt: skip
    if report.outcomes:
        out.print(table)
    runs = len(report.outcomes)
    states = ", ".join(
        f"{report.count(state)} {label}" for state, label in STATES.items() if report.count(state)
    )
    totals = ", ".join(
        _plural(report.total(what + "s"), what) for what in ("point", "param", "tag", "note")
    )
    experiments = (
        f", {_plural(len(report.experiments), 'experiment')}" if report.experiments else ""
    )
    out.print(f"{verb} from {report.source}: {_plural(runs, 'run')} ({states or 'none'})"
              f"{experiments}; {totals}")  # fmt: skip
    if any(report.skipped.values()):
        skipped = "; ".join(f"{what}: {n:,}" for what, n in sorted(report.skipped.items()) if n)
        out.print(f"skipped: {skipped}")


def _state(state: str) -> Text:
    return Text(STATES[state], style={"new": "green", "updated": "yellow"}.get(state, "dim"))


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _count(value: int) -> str:
    return f"{value:,}" if value else "-"
