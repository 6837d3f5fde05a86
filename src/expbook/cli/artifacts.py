"""``expbook artifact ls|get|put|location``: a run's files (see docs/artifacts.md)."""

from __future__ import annotations

from dataclasses import asdict

from rich import box
from rich.table import Table

from expbook import artifacts
from expbook.cli.common import existing_store_url, open_cli_store
from expbook.cli.output import console, fmt_bytes, fmt_time, print_json, to_json
from expbook.store.base import ARTIFACTS_SETTING


def ls(*, run: str, as_json: bool, store: str | None) -> None:
    with open_cli_store(store) as opened:
        record = opened.run(run)
        found = opened.list_artifacts(record.id)
    if as_json:
        print_json(to_json([asdict(a) for a in found]))
        return
    out = console()
    if not found:
        out.print(f"run #{record.number} has no artifacts; add one with: "
                  f"expbook artifact put {record.number} PATH", highlight=False)  # fmt: skip
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("name", "size", "sha256", "logged"):
        table.add_column(column, justify="right" if column == "size" else "left",
                         no_wrap=column != "name")  # fmt: skip
    for a in found:
        table.add_row(a.name, fmt_bytes(a.size), a.sha256[:12], fmt_time(a.logged_at))
    out.print(table)
    total = sum(a.size for a in found)
    out.print(f"{len(found)} file{'s' if len(found) != 1 else ''}, {fmt_bytes(total)}",
              highlight=False)  # fmt: skip


def get(*, run: str, name: str, out: str | None, store: str | None) -> None:
    with open_cli_store(store) as opened:
        record = opened.run(run)
        written = artifacts.fetch(opened, record.id, name, out)
    where = written[0] if len(written) == 1 else f"{len(written)} files"
    console(stderr=True).print(f"run #{record.number}: {name} -> {where}", highlight=False)


def put(*, run: str, path: str, name: str | None, store: str | None) -> None:
    with open_cli_store(store) as opened:
        record = opened.run(run)
        kept = artifacts.put(opened, record.id, path, name)
    size = fmt_bytes(sum(a.size for a in kept))
    what = kept[0].name if len(kept) == 1 else f"{len(kept)} files under {name or path}"
    console().print(f"run #{record.number}: kept {what} ({size})", highlight=False)


def location(*, url: str | None, unset: bool, store: str | None) -> None:
    from expbook.store import is_remote, open_store

    resolved = existing_store_url(store)
    with open_store(resolved) as opened:
        if unset:
            opened.set_setting(ARTIFACTS_SETTING, None)
        elif url is not None:
            from expbook.store.blobs import BlobStore

            if not is_remote(resolved):  # a server's store is reached with the server's keys
                # an unknown protocol, a missing driver, credentials or bucket fail here
                BlobStore(url).check()
            opened.set_setting(ARTIFACTS_SETTING, url)
        where, source = opened.artifact_location()
    console().print(f"{where} ({source})", highlight=False)


def gc(*, dry_run: bool, min_age: float, store: str | None) -> None:
    with open_cli_store(store) as opened:
        found = artifacts.collect_garbage(opened, min_age=min_age, dry_run=dry_run)
        where, _ = opened.artifact_location()
    verb = "would remove" if dry_run else "removed"
    plural = "s" if found.removed != 1 else ""
    line = (
        f"{verb} {found.removed} blob{plural} no run holds "
        f"({fmt_bytes(found.removed_bytes)}) from {where}; {found.held} held by runs"
    )
    if found.young:
        line += f", {found.young} unheld but newer than {min_age:g} s (kept)"
    console().print(line, highlight=False)
