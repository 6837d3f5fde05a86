"""Write a notebook to disk: ``NOTEBOOK.md``, its figures in ``NOTEBOOK_files/`` beside it, and
optionally ``NOTEBOOK.html`` with the figures embedded.

The figures folder belongs to the notebook: PNG files in it that this render did not write
(figures of runs since deleted) are removed, so the folder always matches the notebook.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from expbook.errors import ExpbookError
from expbook.report.notebook import Notebook, build_notebook
from expbook.store.base import Store

ASSETS_SUFFIX = "_files"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"})


@dataclass(frozen=True, slots=True)
class Written:
    """What a render wrote."""

    notebook: Notebook
    markdown: Path
    assets: Path
    figures: tuple[Path, ...]
    html: Path | None


def assets_dir(markdown: Path) -> Path:
    """``notebook.md`` → ``notebook_files`` (beside it)."""
    return markdown.with_name(markdown.stem + ASSETS_SUFFIX)


def html_path(markdown: Path) -> Path:
    """``notebook.md`` → ``notebook.html``.

    Raises:
        ExpbookError: the markdown file already ends in ``.html``.
    """
    target = markdown.with_suffix(".html")
    if target == markdown:
        raise ExpbookError(f"{markdown} is where the markdown goes; name it NOTEBOOK.md")
    return target


def write_report(
    store: Store,
    out: str | Path,
    *,
    experiments: Sequence[str] = (),
    where: str | None = None,
    html: bool = False,
    sweeps: Sequence[str] = (),
) -> Written:
    """Build the notebook of the matching runs and write it (see the module docstring).

    Args:
        sweeps: only the trial runs of these sweeps (names or UUID prefixes).

    Raises:
        ExperimentNotFoundError: a name in ``experiments`` is not an experiment.
        SweepNotFoundError: a name in ``sweeps`` is not a sweep.
        FilterSyntaxError: ``where`` cannot be parsed.
        ExpbookError: no runs match, or a file cannot be written.
    """
    markdown = Path(out)
    page = html_path(markdown) if html else None
    book = build_notebook(store, experiments=experiments, where=where, sweeps=sweeps)
    if book.run_count == 0:
        raise ExpbookError(_nothing_matches(experiments, where, sweeps))
    try:
        return write_notebook(book, markdown, page, _images(store, book))
    except OSError as exc:
        raise ExpbookError(f"cannot write the notebook: {exc.strerror}: {exc.filename}") from None


def write_notebook(
    book: Notebook, markdown: Path, page: Path | None, extra: dict[str, bytes] | None = None
) -> Written:
    """Draw the figures and write the files (``extra``: image artifacts, by file name)."""
    from expbook.report import markdown as render_md
    from expbook.report.plots import render

    folder = assets_dir(markdown)
    images = {figure.filename: render(figure) for figure in book.figures}
    images.update(extra or {})
    if images:
        folder.mkdir(parents=True, exist_ok=True)
    written = tuple(_write(folder / name, data) for name, data in sorted(images.items()))
    _remove_stale(folder, set(images))
    text = render_md.render(book, folder.name)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    _write(markdown, text.encode("utf-8"))
    if page is not None:
        from expbook.report.html import render_html

        links = {f"{folder.name}/{name}": data for name, data in images.items()}
        _write(page, render_html(text, links, book.title).encode("utf-8"))
    return Written(book, markdown, folder, written, page)


def _images(store: Store, book: Notebook) -> dict[str, bytes]:
    """The bytes of the image artifacts the notebook embeds, by their file name there."""
    from expbook.report.notebook import artifact_file

    found = {artifact_file(image): image.sha256 for image in book.images}
    return {name: store.blobs().read(sha256) for name, sha256 in found.items()}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _remove_stale(folder: Path, keep: set[str]) -> None:
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.glob("*") if p.suffix in IMAGE_SUFFIXES):
        if path.name not in keep and path.is_file():
            path.unlink()


def _nothing_matches(
    experiments: Sequence[str], where: str | None, sweeps: Sequence[str] = ()
) -> str:
    scope = []
    if sweeps:
        names = ", ".join(repr(name) for name in sweeps)
        scope.append(f"among the trials of sweep{'s' if len(sweeps) > 1 else ''} {names}")
    if experiments:
        names = ", ".join(repr(name) for name in experiments)
        scope.append(f"in experiment{'s' if len(experiments) > 1 else ''} {names}")
    if where:
        scope.append(f"for --where {where!r}")
    return "no runs match" + (" " + " ".join(scope) if scope else " (the store has no runs)")
