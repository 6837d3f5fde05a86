"""Hostile text in every place the web UI shows a store's names (issue 15's pages): a param value,
a param key, a metric key, a tag, an experiment name, a run name, a saved view's name and a tag
added in bulk are ``<img src=x onerror=window.__pwned=1>`` or ``<b>x</b>``. On the grouped runs
table (grouped by that param), the column chooser, the compare page grouped by it (groups
table, baseline select, legend, Plotly traces), the run page's chart panels, the saved views
and the bulk bar, no script runs, no element is made of the text, and the text shows as
written. A real ``expbook ui`` on a real SQLite store, driven by a real Chromium.

The same store holds a sweep of 101 configurations repeated 4 times (404 runs, more than
``GET /api/compare`` takes at once): its page compares the best configurations that fit and
says so, instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

import expbook
from expbook.model import TrialState
from expbook.store.base import RunSpec, WriteBatch
from expbook.store.chunks import Points
from tests.browser import UiPage, require_chromium, ui_server

pytestmark = pytest.mark.slow

IMG = "<img src=x onerror=window.__pwned=1>"
BOLD = "<b>x</b>"
RUNS = 6  # runs 1-6: arch = IMG (1-3) or BOLD (4-6), param BOLD = 0 or 1
CONFIGS = 101  # the sweep's configurations, each repeated 4 times: 404 runs
REPEATS = 4
FIT = 400 // REPEATS  # the configurations whose runs fit in one GET /api/compare
READY = "() => document.body.dataset.ready === 'true'"
# what a hostile text could have made: an <img src=x>, a <b>x</b>, a bold tspan in a chart
MADE = """() => ({
  pwned: window.__pwned === undefined ? null : String(window.__pwned),
  img: document.querySelectorAll('img[src="x"]').length,
  bold: [...document.querySelectorAll('b, strong')].filter(b => b.textContent === 'x').length,
  svgBold: [...document.querySelectorAll('.main-svg tspan')].filter(t =>
    /bold/.test(t.getAttribute('style') || '') && t.textContent === 'x').length,
})"""
TEXTS = "elements => elements.map(e => e.textContent)"
SELECTED = "select => select.selectedOptions[0].textContent"
NOTHING = {"pwned": None, "img": 0, "bold": 0, "svgBold": 0}


def _points(values: list[float]) -> Points:
    points = Points()
    now = time.time()
    for step, value in enumerate(values):
        points.append(step, value, now + step, None)
    return points


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_chromium()
    path = tmp_path_factory.mktemp("hostile") / "expbook.db"
    with expbook.open_store(str(path)) as store:
        for i in range(RUNS):
            name = f"{IMG if i % 2 else BOLD} {i + 1}"
            params = {"arch": IMG if i < 3 else BOLD, BOLD: i % 2, "seed": i}
            with expbook.start_run(name, store=store, experiment=IMG, params=params, tags=[IMG],
                                   system_metrics=False) as run:  # fmt: skip
                for step in range(5):
                    run.log({IMG: i + step / 10, BOLD: 1 / (step + 1) + i / 100,
                             "loss": 2 - step / 10 - i / 50}, step=step)  # fmt: skip
        _big_sweep(store)
    return path


def _big_sweep(store: expbook.Store) -> None:
    """101 configurations of lr x 4 repeats, each a finished run logging `loss` (lower is
    better: the higher the lr, the better), written straight to the store (fast)."""
    spec = {
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"values": [round(0.001 * (c + 1), 6) for c in range(CONFIGS)]}},
        "expbook": {"repeats": REPEATS, "seed_param": "seed"},
    }
    sweep = store.create_sweep("big", spec, experiment="sweeping")
    for config in range(CONFIGS):
        lr = spec["parameters"]["lr"]["values"][config]
        for seed in range(REPEATS):
            params = {"lr": lr, "seed": seed}
            run = store.create_run(RunSpec(name=f"big-{config}-{seed}", experiment="sweeping",
                                           kind="sweep-trial", params=params))  # fmt: skip
            values = [1.0, 0.9 - lr, 1 - lr - seed / 1000]
            update = {"status": "finished", "ended_at": time.time()}
            store.write(run.id, WriteBatch(points={"loss": _points(values)}, update=update))
            version = store.get_sweep(sweep.id).version
            trial = store.add_trial(sweep.id, expected_version=version, params=params,
                                    config_key=f"lr={lr}", config=config, repeat=seed,
                                    worker="w1")  # fmt: skip
            assert trial is not None
            store.update_trial(sweep.id, trial.number, worker="w1", state=TrialState.FINISHED,
                               run_id=run.id, values=[values[-1]])  # fmt: skip
    store.update_sweep(sweep.id, state="finished")


@pytest.fixture(scope="module")
def server(store_path: Path) -> Iterator[str]:
    with ui_server(store_path) as base:
        yield base


def harmless(page: Any) -> None:
    """Nothing the hostile texts could make exists, and no script of theirs ran."""
    assert page.evaluate(MADE) == NOTHING


def test_runs_table_grouped_by_a_hostile_param_and_its_tools(ui: UiPage) -> None:
    where = quote(f"experiment = '{IMG}'")
    group_by = f"&group_by=params.arch&group_by={quote(f'params.`{BOLD}`')}"  # a quoted key
    page = ui.open(f"/?where={where}{group_by}&metrics={quote(IMG)},loss")
    rows = page.locator("tr.stat-group")
    assert rows.count() == 4  # arch x the BOLD param
    text = page.inner_text("#table")
    assert IMG in text and BOLD in text  # the param values, the keys in the headers
    button = page.inner_text("#groupby-button")
    assert button == f"Group by: arch, {BOLD} \N{BLACK DOWN-POINTING SMALL TRIANGLE}"
    harmless(page)
    ui.screenshot("hostile-grouped-table")

    page.click("#columns-button")  # the column chooser lists the hostile keys as text
    page.locator("#columns-panel", has_text=IMG).wait_for()  # the keys come from the API
    assert BOLD in page.inner_text("#columns-panel")
    page.click("#groupby-button")
    page.locator("#groupby-panel", has_text=BOLD).wait_for()
    harmless(page)
    ui.screenshot("hostile-column-chooser")
    page.keyboard.press("Escape")

    # Compare from the grouped table carries its grouping (both keys)
    page.check("input.select-all")
    page.click("#compare")
    page.wait_for_url("**/compare?**")
    page.wait_for_function(READY)
    query = parse_qs(urlsplit(page.evaluate("() => location.href")).query)
    assert query["runs"] == [",".join(map(str, range(1, RUNS + 1)))]
    assert query["group_by"] == ["params.arch", f"params.`{BOLD}`"]
    assert page.eval_on_selector("#group-by", SELECTED) == f"arch, {BOLD}"
    assert page.locator("#groups-table tbody tr").count() == 4
    harmless(page)
    ui.assert_no_errors()


def test_compare_grouped_by_a_hostile_param(ui: UiPage) -> None:
    page = ui.open(f"/compare?runs=1,2,3,4,5,6&group_by=params.arch&metric={quote(IMG)}")
    labels = page.eval_on_selector_all("#groups-table tbody tr th", TEXTS)
    assert labels == [f"arch={BOLD}", f"arch={IMG}"] or labels == [f"arch={IMG}", f"arch={BOLD}"]
    options = page.eval_on_selector_all("#base-group option", TEXTS)
    assert options == labels
    legend = page.inner_text("#group-legend")
    assert f"arch={IMG} (n=3)" in legend and f"arch={BOLD} (n=3)" in legend
    chips = page.inner_text("#run-chips")
    assert f"#1 {BOLD} 1" in chips and f"#2 {IMG} 2" in chips
    titles = page.eval_on_selector_all(".chart-card h3", TEXTS)
    assert IMG in titles and BOLD in titles
    names = page.evaluate(
        """(key) => [...document.querySelectorAll('.chart-card')].find(c => c.dataset.key === key)
          .querySelector('.chart').data.filter(t => t.meta.role === 'mean').map(t => t.name)""",
        BOLD,
    )
    # Plotly reads tags in names: they go to it as entities, which it shows as the characters
    assert sorted(names) == sorted(f"arch={t} (n=3)".replace("<", "&lt;").replace(">", "&gt;")
                                   for t in (IMG, BOLD))  # fmt: skip
    page.hover(".group-chart .chart .nsewdrag")  # a tooltip, drawn by Plotly
    assert IMG in page.inner_text("#metrics-table") and IMG in page.inner_text("#params-table")
    harmless(page)
    ui.screenshot("hostile-compare")
    ui.assert_no_errors()


def test_run_page_panels_with_hostile_keys(ui: UiPage) -> None:
    page = ui.open("/runs/2")
    assert page.inner_text("h1").count(IMG) == 1
    titles = page.eval_on_selector_all(".chart-card h3", TEXTS)
    assert any(IMG in t for t in titles) and any(BOLD in t for t in titles)
    text = page.inner_text("#main")
    assert IMG in text and BOLD in text  # name, experiment, tag, params, metric keys
    harmless(page)
    ui.screenshot("hostile-run")
    ui.assert_no_errors()


def test_a_hostile_view_name_and_bulk_tag(ui: UiPage, store_path: Path) -> None:
    page = ui.open(f"/?where={quote(f'experiment = {chr(39)}{IMG}{chr(39)}')}&sort=number")
    page.click("#views-button")
    page.fill("#view-name", IMG)
    page.click("#view-save button[type=submit]")
    item = page.locator("#views-list li[data-name]").first
    item.wait_for()
    assert item.get_attribute("data-name") == IMG and IMG in item.inner_text()
    harmless(page)
    ui.screenshot("hostile-view")
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    item.locator(".view-delete").click()
    page.locator("#views-list", has_text="No saved views").wait_for()
    assert asked == [f"Delete the saved view \N{LEFT DOUBLE QUOTATION MARK}{IMG}\u201d?"]
    page.keyboard.press("Escape")

    page.check("tr[data-number='1'] input.select")
    page.check("tr[data-number='2'] input.select")
    page.fill("#bulk-tag", BOLD)
    page.click("#bulk-bar [data-bulk=tag]")
    page.locator("tr[data-number='1'] .tag", has_text=BOLD).wait_for()
    with expbook.open_store(str(store_path)) as store:
        assert {r.number for r in store.runs(f"tags has '{BOLD}'")} == {1, 2}
    harmless(page)
    ui.screenshot("hostile-bulk-tag")
    ui.assert_no_errors()


def test_a_sweep_too_big_for_one_comparison_compares_its_best_configurations(ui: UiPage) -> None:
    page = ui.open("/sweeps/big")
    page.wait_for_selector("#configs table")
    note = page.inner_text("#configs-note")
    assert note.startswith(f"best {FIT} of {CONFIGS} configurations")
    configs = page.eval_on_selector_all(
        "#configs tbody tr", "rs => rs.map(r => Number(r.dataset.config))"
    )
    assert configs == list(range(CONFIGS - FIT, CONFIGS))  # the worst (lowest lr) left out
    assert page.locator(f"#configs tbody tr[data-config='{CONFIGS - 1}'].best").count() == 1
    assert page.locator("#main .alert").count() == 0 and page.locator("#trials table").count() == 1
    page.select_option("#curves-mode", "ci")
    page.wait_for_function("() => document.body.dataset.curves === 'ci'")
    means = page.evaluate(
        "() => $('#curves').data.filter(t => t.meta.role === 'mean').length".replace(
            "$", "document.querySelector"
        )
    )
    assert means == FIT
    assert f"best {FIT} of {CONFIGS} configurations" in page.inner_text("#curves-note")
    option = page.eval_on_selector("#curves-mode option[value=ci]", "o => o.textContent")
    assert option == "configuration means, 95 % CI"  # the level of the API's answer
    ui.screenshot("sweep-best-configurations")
    ui.assert_no_errors()
