"""``expbook experiment new|ls|show|conclude|move``: experiments as questions."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.table import Table
from rich.text import Text

from expbook.cli.common import open_cli_store
from expbook.cli.output import console, dim, fmt_time, print_json, to_json
from expbook.columns import common_metrics, key_metric, lower_is_better
from expbook.errors import ExpbookError, ExperimentNotFoundError
from expbook.model import ExperimentRecord, RunStatus


def new(*, title: str, hypothesis: str | None, description: str | None, store: str | None) -> None:
    if not title.strip():
        raise ExpbookError("an experiment needs a title (the question it answers)")
    from expbook.store import open_store
    from expbook.store.engine import display_url

    with open_store(store) as opened:
        try:
            opened.get_experiment(title)
            raise ExpbookError(f"experiment {title!r} exists already")
        except ExperimentNotFoundError:
            pass
        opened.create_experiment(title, hypothesis=hypothesis, description=description)
        where = display_url(opened.url)
    console().print(f"created experiment {title!r} in {where}; record runs in it with "
                    f"--experiment {_quoted(title)}", highlight=False)  # fmt: skip


def ls(*, as_json: bool, store: str | None) -> None:
    with open_cli_store(store) as opened:
        found = opened.list_experiments()
    if as_json:
        print_json(to_json([_as_dict(e) for e in found]))
        return
    out = console()
    if not found:
        out.print("no experiments yet; create one with: expbook experiment new TITLE")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("experiment", "runs", "hypothesis", "conclusion", "updated"):
        table.add_column(column, justify="right" if column == "runs" else "left",
                         no_wrap=column in ("runs", "updated"))  # fmt: skip
    for e in found:
        table.add_row(e.name, str(e.run_count), _short(e.hypothesis), _short(e.conclusion),
                      fmt_time(e.updated_at))  # fmt: skip
    out.print(table)


def show(*, experiment: str, metric: str | None, as_json: bool, store: str | None) -> None:
    from expbook.cli.runs import print_runs

    with open_cli_store(store) as opened:
        record = opened.get_experiment(experiment)
        runs = opened.runs(experiment=record.name, sort="number")
    metric = metric or key_metric(common_metrics(runs))
    best = _best(runs, metric)
    if as_json:
        data = _as_dict(record)
        data.update(runs=[run.number for run in runs], metric=metric,
                    best=best.number if best else None)  # fmt: skip
        print_json(to_json(data))
        return
    out = console()
    out.print(Text(record.name, style="bold"))
    for label, text in (("Description", record.description), ("Hypothesis", record.hypothesis),
                        ("Conclusion", record.conclusion)):  # fmt: skip
        out.print(Text.assemble((f"{label}: ", "bold"), text or dim("—")))
    if not runs:
        out.print(dim("no runs yet"))
        return
    print_runs(out, runs)
    if best is not None:
        way = "lowest" if lower_is_better(metric or "") else "highest"
        out.print(f"best by {metric} ({way}): {best.ref} {best.name} = {best.metric(metric)}",
                  highlight=False)  # fmt: skip
        out.print(dim(f"is it better than noise? expbook compare {best.number} OTHER_RUN"))


def conclude(*, experiment: str, text: str, store: str | None) -> None:
    if not text.strip():
        raise ExpbookError("the conclusion is empty")
    with open_cli_store(store) as opened:
        opened.update_experiment(experiment, conclusion=text)
    console().print(f"concluded {experiment!r}", highlight=False)


def edit(
    *, experiment: str, hypothesis: str | None, description: str | None,
    title: str | None, store: str | None,
) -> None:  # fmt: skip
    fields = {k: v for k, v in (("hypothesis", hypothesis), ("description", description),
                                ("name", title)) if v is not None}  # fmt: skip
    if not fields:
        raise ExpbookError("nothing to change: give --hypothesis, --description or --title")
    with open_cli_store(store) as opened:
        opened.update_experiment(experiment, **fields)
    console().print(f"updated {experiment!r}: {', '.join(sorted(fields))}", highlight=False)


def move(*, runs: tuple[str, ...], to: str | None, detach: bool, store: str | None) -> None:
    if (to is None) == (not detach):
        raise ExpbookError("give either --to EXPERIMENT or --detach")
    with open_cli_store(store) as opened:
        records = [opened.run(ref) for ref in runs]
        for record in records:
            opened.update_run(record.id, experiment=None if detach else to)
    refs = " ".join(r.ref for r in records)
    target = "out of their experiment" if detach else f"to {to!r}"
    console().print(f"moved {refs} {target}", highlight=False)


def _best(runs: Any, metric: str | None) -> Any:
    if metric is None:
        return None
    scored = [
        r for r in runs
        if r.status is RunStatus.FINISHED and r.metric(metric) is not None
        and not math.isnan(r.metric(metric))
    ]  # fmt: skip
    if not scored:
        return None
    pick = min if lower_is_better(metric) else max
    return pick(scored, key=lambda r: r.metric(metric))


def _short(text: str | None, width: int = 48) -> str:
    if not text:
        return "—"
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _quoted(title: str) -> str:
    import shlex

    return shlex.quote(title)


def _as_dict(e: ExperimentRecord) -> dict[str, Any]:
    return {
        "name": e.name, "description": e.description, "hypothesis": e.hypothesis,
        "conclusion": e.conclusion, "run_count": e.run_count, "created_at": e.created_at,
        "updated_at": e.updated_at,
    }  # fmt: skip
