"""``expbook report``: the lab notebook as markdown (and HTML), its figures in a folder beside
it. The work is in ``expbook.report``; this module opens the store and says what was written."""

from __future__ import annotations

from pathlib import Path

import click

from expbook.cli.common import open_cli_store
from expbook.report.text import plural

DEFAULT_OUT = "notebook.md"


def report(
    *,
    experiments: tuple[str, ...],
    where: str | None,
    out: str | None,
    html: bool,
    store: str | None,
    sweeps: tuple[str, ...] = (),
) -> None:
    from expbook.report.write import write_report

    target = Path(out or DEFAULT_OUT)
    with open_cli_store(store) as opened:
        written = write_report(
            opened, target, experiments=experiments, where=where, html=html, sweeps=sweeps
        )
    book = written.notebook
    line = f"wrote {written.markdown}: {plural(len(book.sections), 'section')}, " + (
        f"{plural(book.run_count, 'run')}, {plural(len(written.figures), 'figure')}"
    )
    if written.figures:
        line += f" in {written.assets}/"
    if written.html is not None:
        line += f"; {written.html} (self-contained)"
    click.echo(line)
