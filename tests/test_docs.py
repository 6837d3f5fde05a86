"""The docs keep up with the code: every command, option and public name is documented."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

import expbook
from expbook.cli.main import cli
from expbook.tracking import Run

ROOT = Path(__file__).parent.parent
CLI_DOC = (ROOT / "docs" / "cli.md").read_text()
TRACKING_DOC = (ROOT / "docs" / "tracking.md").read_text()


def commands(group: click.Group, prefix: str = "expbook") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            found += commands(command, path)
        else:
            found.append((path, command))
    return found


def section(path: str) -> str:
    match = re.search(rf"^## `{re.escape(path)}`\n(.*?)(?=^## |\Z)", CLI_DOC, re.S | re.M)
    assert match, f"docs/cli.md has no section '## `{path}`'"
    return match.group(1)


@pytest.mark.parametrize(("path", "command"), commands(cli), ids=lambda v: str(v))
def test_every_command_and_option_is_in_docs_cli(path: str, command: click.Command) -> None:
    text = section(path)
    assert "```console" in text, f"{path}: no example"
    for parameter in command.params:
        if not isinstance(parameter, click.Option) or parameter.name == "store":
            continue
        longest = max(parameter.opts, key=len)
        assert longest in text, f"{path}: option {longest} is not documented"


def test_store_option_is_documented_once_for_all() -> None:
    assert "--store PATH|URL" in CLI_DOC.split("## ")[0]


def test_every_run_method_is_in_the_tracking_guide() -> None:
    public = [name for name in dir(Run) if not name.startswith("_")]
    missing = [name for name in public if f"run.{name}" not in TRACKING_DOC]
    assert missing == []


def test_every_public_name_is_in_the_tracking_guide() -> None:
    missing = [
        name for name in expbook.__all__ if name != "__version__" and name not in TRACKING_DOC
    ]
    assert missing == []


def test_local_links_resolve() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_readme_quick_start_has_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\n+```console\n(.*?)```", readme, re.S)
    assert block, "README has no quick start block"
    lines = [line for line in block.group(1).splitlines() if line.strip()]
    assert [line.split("#")[0].strip() for line in lines] == ["make demo", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
