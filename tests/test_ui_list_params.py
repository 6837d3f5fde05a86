"""List params (Cargo features, repeated flags) element-wise in the web UI (issue 11,
section 4): the JSON API says what all runs share and what varies, the runs table and the
compare page show only the varying elements, highlighted, and for two runs what changed, as
``expbook diff`` does. The pages are checked in a real Chromium on a real ``expbook ui``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser import UiPage, chromium, require_chromium, ui_server
from tests.helpers import run_cli

BASE = "cli ml_train ml_remote"
LOADERS = ("ml_loader_note_binned_convolution", "ml_loader_frequency_pooled")
TARGETS = ("ml_target_full", "ml_target_folded")
COMMON = ["cli", "ml_train", "ml_remote"]


@pytest.fixture(scope="module")
def cargo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four runs of the 2 x 2 of loader x target features, through ``expbook run``."""
    folder = tmp_path_factory.mktemp("ui-lists")
    store = folder / "s.db"
    program = folder / "train.py"
    program.write_text("import sys\nprint(f'valid_acc={0.5 + len(sys.argv[2]) / 1000:.4f}')\n")
    for loader in LOADERS:
        for target in TARGETS:
            features = f"{BASE} {loader} {target}"
            result = run_cli("run", "-q", "--", sys.executable, str(program), "--features",
                             features, store=str(store))  # fmt: skip
            assert result.returncode == 0, result.stderr
    return store


@pytest.fixture(scope="module")
def server(cargo_store: Path) -> Iterator[str]:
    with ui_server(cargo_store) as base:
        yield base


def test_the_api_gives_list_params_element_wise(server: str) -> None:
    page = httpx.get(f"{server}/api/runs", params={"sort": "number"}).json()
    assert page["params"] == ["features"]
    (features,) = page["lists"]
    assert features["common"] == COMMON
    assert features["runs"]["1"] == [LOADERS[0], TARGETS[0]]
    assert features["runs"]["4"] == [LOADERS[1], TARGETS[1]]
    answer = httpx.get(f"{server}/api/list-params", params={"run": ["1", "3"]})
    assert answer.status_code == 200, answer.text
    (pair,) = answer.json()["lists"]
    assert (pair["key"], pair["common"]) == ("features", [*COMMON, TARGETS[0]])
    assert (pair["removed"], pair["added"]) == ([LOADERS[0]], [LOADERS[1]])
    assert httpx.get(f"{server}/api/list-params", params={"run": "99"}).status_code == 404


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    with chromium() as launched:
        yield launched


ELEMENTS = (
    "cells => cells.map(cell => [...cell.querySelectorAll('.element')].map(e => e.textContent))"
)


@pytest.mark.slow
def test_the_runs_table_shows_the_varying_elements(ui: UiPage) -> None:
    page = ui.open("/?sort=number")
    header = page.locator("th.param").inner_text()
    assert "all: cli, ml_train, ml_remote" in header
    cells = page.eval_on_selector_all("tbody tr[data-number] td.param", ELEMENTS)
    assert cells == [[f"+{loader}", f"+{target}"] for loader in LOADERS for target in TARGETS]
    ui.screenshot("runs")
    ui.assert_no_errors()


@pytest.mark.slow
def test_compare_shows_what_changed_between_two_runs_element_wise(ui: UiPage) -> None:
    page = ui.open("/compare?runs=1,4")
    row = page.locator("tr.list-param")
    assert "all: cli, ml_train, ml_remote" in row.locator("th").inner_text()
    cells = page.eval_on_selector_all("tr.list-param td", ELEMENTS)
    assert cells == [[f"+{LOADERS[0]}", f"+{TARGETS[0]}"], [f"+{LOADERS[1]}", f"+{TARGETS[1]}"]]
    change = page.eval_on_selector_all("tr.list-change td", ELEMENTS)
    minus = "\N{MINUS SIGN}"
    assert change == [[f"{minus}{LOADERS[0]}", f"{minus}{TARGETS[0]}", f"+{LOADERS[1]}",
                       f"+{TARGETS[1]}"]]  # fmt: skip
    assert page.locator("tr.list-change .element.removed").count() == 2
    assert page.locator("tr.list-change .element.added").count() == 2
    ui.screenshot("compare-two")
    four = ui.open("/compare?runs=1,2,3,4")
    assert four.locator("tr.list-change").count() == 0
    cells = four.eval_on_selector_all("tr.list-param td", ELEMENTS)
    assert cells[1] == [f"+{LOADERS[0]}", f"+{TARGETS[1]}"]
    ui.screenshot("compare-four")
    ui.assert_no_errors()
