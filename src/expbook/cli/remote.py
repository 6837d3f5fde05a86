"""``expbook sync`` and ``expbook login``."""

from __future__ import annotations

import json
import os

import click

from expbook.cli.output import console
from expbook.errors import StoreError, StoreUnavailableError
from expbook.locations import resolve_url


def _remote_url(store: str | None) -> str:
    from expbook.store import is_remote

    url = resolve_url(store)
    if not is_remote(url):
        raise click.ClickException(
            f"{url} is not an expbook server: sync and login are for https:// stores "
            "(--store URL or EXPBOOK_STORE=URL); local stores write directly"
        )
    return url


def sync(*, status_only: bool, timeout: float, as_json: bool, store: str | None) -> int:
    from expbook.remote.client import HttpStore

    url = _remote_url(store)
    remote = HttpStore(url)
    try:
        problem = None
        if not status_only:
            try:
                remote.sync(timeout=timeout)
            except StoreUnavailableError as exc:
                problem = str(exc)
        waiting = remote.journal.status()
        rejected = remote.journal.rejected()
        blobs = remote.journal.blobs()
    finally:
        remote.close()
    if as_json:
        print(json.dumps({
            "server": url, "journal": remote.journal.directory,
            "waiting": [
                {"producer": os.path.basename(d), "entries": n, "bytes": size, "alive": alive}
                for d, n, size, alive in waiting
            ],
            "artifact_files": [{"path": path, "bytes": size} for path, size in blobs],
            "rejected": rejected, "error": problem,
        }, indent=2))  # fmt: skip
    else:
        out = console()
        entries = sum(n for _, n, _, _ in waiting)
        size = sum(s for _, _, s, _ in waiting)
        if not waiting and not blobs:
            out.print(f"nothing waits for {url}: everything was sent", highlight=False)
        else:
            live = sum(n for _, n, _, alive in waiting if alive)
            still = f" ({live} of them from running processes, which send them)" if live else ""
            out.print(f"{entries} writes ({size:,} bytes) wait for {url} in "
                      f"{remote.journal.directory}{still}", highlight=False)  # fmt: skip
        if blobs:
            out.print(f"{len(blobs)} artifact files ({sum(s for _, s in blobs):,} bytes) wait "
                      f"in {remote.journal.blob_directory}", highlight=False)  # fmt: skip
        if rejected:
            out.print(f"{len(rejected)} writes the server refused are kept in "
                      f"{os.path.dirname(rejected[0])} (each with a .reason file)",
                      highlight=False)  # fmt: skip
        if problem:
            raise click.ClickException(f"{problem}; the writes stay in the journal")
    return 1 if blobs or any(not alive for _, _, _, alive in waiting) else 0


def login(*, url: str, token: str | None) -> None:
    import httpx

    from expbook.remote.credentials import normalized, save_token

    if not url.startswith(("http://", "https://")):
        raise click.ClickException(f"{url!r} is not a server address: give https://host:port")
    url = normalized(url)
    if not token:
        token = click.prompt("API token", hide_input=True).strip()
    try:
        response = httpx.get(f"{url}/api/whoami", headers={"Authorization": f"Bearer {token}"},
                             timeout=10.0)  # fmt: skip
    except httpx.HTTPError as exc:
        raise StoreError(f"cannot reach {url}: {exc}") from None
    if response.status_code == 401:
        raise click.ClickException(f"{url} refused this token (wrong, or revoked)")
    if response.status_code != 200:
        raise click.ClickException(f"{url} answered {response.status_code}: {response.text[:200]}")
    who = response.json()
    path = save_token(url, token)
    access = "read-only" if who.get("read_only") else "read and write"
    console().print(
        f"logged in to {url} as token {who.get('name')!r} ({access}); saved in {path}. "
        f"Use it: export EXPBOOK_STORE={url}",
        highlight=False,
    )
