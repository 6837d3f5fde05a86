"""The web UI in a real browser: Chromium (through Playwright) on a real ``expbook ui`` process
serving a store filled by a real ``expbook demo`` run.

The pages' Content-Security-Policy forbids evaluating strings, so waits are written as
functions (``"() => ..."``), which Playwright calls instead of evaluating.

Every test saves a screenshot of each page it looks at (under its ``tmp_path``) and requires
that the pages logged no console error and raised no exception.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import expbook
from tests.browser import UiPage, require_chromium, ui_page, ui_server
from tests.helpers import run_cli

pytestmark = pytest.mark.slow

ROW_NUMBERS = "rows => rows.map(row => Number(row.dataset.number))"
CHART_TRACES = """() => [...document.querySelectorAll('.chart-card .chart')].flatMap(
    gd => gd.data.map(t => ({key: t.meta.key, run: t.meta.run, x: t.x, y: t.y, name: t.name})))"""


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_chromium()  # don't spend time on the demo when the tests are skipped
    folder = tmp_path_factory.mktemp("ui")
    store = folder / "expbook.db"
    result = run_cli("demo", "--epochs", "8", store=str(store), cwd=folder)
    assert result.returncode == 0, result.stderr
    return store


@pytest.fixture(scope="module")
def server(demo_store: Path) -> Iterator[str]:
    with ui_server(demo_store) as base:
        yield base


def shown_rows(page: Any) -> list[int]:
    return page.eval_on_selector_all("tbody tr[data-number]", ROW_NUMBERS)


def open_store(path: Path) -> expbook.Store:
    return expbook.open_store(str(path))


# --- runs page ----------------------------------------------------------------------------------


def test_runs_page_lists_the_demo_runs(ui: UiPage, demo_store: Path) -> None:
    with open_store(demo_store) as store:
        runs = store.runs()
    page = ui.open("/")
    assert shown_rows(page) == [run.number for run in runs]  # newest first
    for run in runs:
        row = page.locator(f'tr[data-number="{run.number}"]')
        assert run.name in row.locator("td.name").inner_text()
        assert row.locator(".badge").inner_text() == "finished"
        assert row.locator(f'a[href="/runs/{run.number}"]').count() == 2  # number and name
    # the demo's grid varies hidden size and learning rate: those are the param columns
    for key in ("params.model.hidden", "params.optimizer.lr", "metrics.valid/acc"):
        assert page.locator(f'th[data-sort="{key}"]').count() == 1
    assert page.inner_text("#range") == f"1\u2013{len(runs)} of {len(runs)}"  # an en dash
    assert "expbook.db" in page.inner_text("#store-info")
    ui.screenshot("runs")
    ui.assert_no_errors()


def test_sorting_by_a_column_header_toggles_and_lives_in_the_url(
    ui: UiPage, demo_store: Path
) -> None:
    page = ui.open("/")
    newest_first = shown_rows(page)
    page.click('th[data-sort="number"]')  # the default order is -number: now ascending
    page.wait_for_url("**/?sort=number")
    page.wait_for_function("() => document.querySelector('tbody tr').dataset.number === '1'")
    assert shown_rows(page) == sorted(newest_first)
    page.click('th[data-sort="metrics.valid/acc"]')  # metrics: best (highest) first
    page.wait_for_url("**/?sort=-metrics.valid%2Facc")
    with open_store(demo_store) as store:
        expected = [run.number for run in store.runs(sort="-metrics.valid/acc")]
    first_row = "document.querySelector('tbody tr').dataset.number"
    page.wait_for_function(f"() => {first_row} === '{expected[0]}'")
    assert shown_rows(page) == expected
    page.go_back()  # history: back to ascending numbers
    page.wait_for_function(f"() => {first_row} === '1'")
    ui.assert_no_errors()


def test_a_filter_shows_only_the_matching_runs(ui: UiPage, demo_store: Path) -> None:
    where = "params.optimizer.lr = 0.01"
    with open_store(demo_store) as store:
        expected = [run.number for run in store.runs(where)]
    assert 0 < len(expected) < len(store.runs())
    page = ui.open("/")
    page.fill("#where", where)
    page.press("#where", "Enter")
    page.wait_for_url("**/?where=*")
    page.wait_for_function(
        f"() => document.querySelectorAll('tbody tr').length === {len(expected)}"
    )
    assert shown_rows(page) == expected
    page.reload()  # the state is in the URL
    page.wait_for_selector("body[data-ready]", state="attached")
    assert shown_rows(page) == expected
    assert page.input_value("#where") == where
    ui.screenshot("runs-filtered")
    ui.assert_no_errors()


def test_a_malformed_filter_is_shown_inline_at_its_position(ui: UiPage, demo_store: Path) -> None:
    bad = "params.optimizer.lr < and metrics.valid/acc > 0.9"
    with open_store(demo_store) as store, pytest.raises(expbook.FilterSyntaxError) as caught:
        store.runs(bad)
    position = caught.value.position
    page = ui.open("/")
    before = shown_rows(page)
    page.fill("#where", bad)
    page.press("#where", "Enter")
    error = page.locator("#filter-error")
    error.wait_for(state="visible")
    text = error.inner_text()
    assert caught.value.reason in text
    assert f"column {position + 1}" in text
    assert page.inner_text("#filter-error mark") == bad[position]
    assert page.inner_text("#filter-error pre").splitlines()[1] == " " * position + "^"
    assert shown_rows(page) == before  # the old table stays
    assert "where=" not in page.evaluate("() => location.href")
    ui.screenshot("runs-filter-error")
    # the refused request itself is the one expected error (Chromium logs failed loads)
    ui.assert_no_errors("status of 400")


# --- run page -----------------------------------------------------------------------------------


def test_run_page_draws_every_series_with_all_its_points(ui: UiPage, demo_store: Path) -> None:
    with open_store(demo_store) as store:
        run = store.runs(sort="-metrics.valid/acc")[0]
        keys = store.series_keys(run.id)
        series = {key: store.series(run.number, key) for key in keys}
    page = ui.open(f"/runs/{run.number}")
    assert page.inner_text("#run-name") == run.name
    assert page.inner_text("#run-head .badge") == "finished"
    traces = page.evaluate(CHART_TRACES)
    assert sorted(trace["key"] for trace in traces) == sorted(keys)
    for trace in traces:
        stored = series[trace["key"]]
        assert len(trace["x"]) == len(trace["y"]) == len(stored)
        assert trace["x"] == list(stored.steps)
        assert trace["y"] == pytest.approx(list(stored.values))
    params = page.inner_text("#params")
    for key, value in run.params.items():
        assert key in params and str(value) in params
    summary = page.inner_text("#summary")
    assert all(key in summary for key in run.metrics)
    ui.screenshot("run")
    ui.assert_no_errors()


def test_a_note_added_and_edited_in_the_ui_is_in_the_store(ui: UiPage, demo_store: Path) -> None:
    number = 2
    page = ui.open(f"/runs/{number}")
    text = "Added from the **web UI**: lr 0.01 <looks> best"
    page.fill("#new-note", text)
    page.click("#add-note")
    page.locator("#notes .note-body strong", has_text="web UI").wait_for()
    assert "<looks>" in page.inner_text("#notes")  # shown as text, not as a tag
    with open_store(demo_store) as store:
        notes = store.run(number).notes
    added = [note for note in notes if note.text == text]
    assert len(added) == 1

    note = page.locator(f'#notes .note[data-id="{added[0].id}"]')
    note.locator(".edit-note").click()
    note.locator("textarea").fill("Edited in the UI")
    note.locator(".editor-save").click()
    page.locator("#notes .note-body", has_text="Edited in the UI").wait_for()
    with open_store(demo_store) as store:
        texts = {n.id: n.text for n in store.run(number).notes}
    assert texts[added[0].id] == "Edited in the UI"
    ui.screenshot("run-notes")
    ui.assert_no_errors()


# --- compare page -------------------------------------------------------------------------------


def test_selected_runs_open_in_compare_with_a_parcoords_chart(
    ui: UiPage, demo_store: Path
) -> None:
    with open_store(demo_store) as store:
        runs = store.runs(sort="number")
    first, last = runs[0], runs[-1]  # differ in both hidden size and learning rate
    page = ui.open("/")
    page.check(f'tr[data-number="{first.number}"] input.select')
    page.check(f'tr[data-number="{last.number}"] input.select')
    assert page.inner_text("#compare") == "Compare (2)"
    page.click("#compare")
    page.wait_for_url(f"**/compare?runs={first.number},{last.number}")
    page.wait_for_selector("body[data-ready]", state="attached")

    page.locator("#parcoords").scroll_into_view_if_needed()  # drawn when seen (WebGL)
    page.wait_for_function("() => document.querySelector('#parcoords').data")
    parcoords = page.evaluate(
        """() => { const trace = document.querySelector('#parcoords').data[0];
        return {type: trace.type, dims: trace.dimensions.map(d => [d.label, d.values.length])} }"""
    )
    assert parcoords["type"] == "parcoords"
    labels = [label for label, _ in parcoords["dims"]]
    assert "model.hidden" in labels and any(label.startswith("optimizer.lr") for label in labels)
    assert all(count == 2 for _, count in parcoords["dims"])

    traces = page.evaluate(CHART_TRACES)
    keys = sorted(set(first.metrics) & {t["key"] for t in traces})
    assert keys, "one chart per series key"
    for key in keys:
        names = sorted(t["name"] for t in traces if t["key"] == key)  # tooltips name the key too
        assert names == sorted(f"#{run.number} {run.name} · {key}" for run in (first, last))
    legend = page.eval_on_selector_all(
        ".chart-legend .legend-entry", "es => es.map(e => e.textContent)"
    )
    assert legend == [f"#{run.number} {run.name}" for run in (first, last)]  # one per page

    differing = page.eval_on_selector_all(
        "#params-table tr.differs th", "cells => cells.map(cell => cell.textContent)"
    )
    assert sorted(differing) == ["model.hidden", "optimizer.lr"]
    page.check("#only-differing")
    assert page.locator("#params-table tbody tr").count() == 2
    assert page.evaluate("document.querySelector('#scatter').data[0].x.length") == 2
    ui.screenshot("compare")
    ui.assert_no_errors()


# --- experiments --------------------------------------------------------------------------------


def test_an_experiment_conclusion_edited_in_the_ui_is_in_the_store(
    ui: UiPage, demo_store: Path
) -> None:
    page = ui.open("/experiments")
    ui.screenshot("experiments")
    link = page.locator("tbody a").first
    name = link.inner_text()
    link.click()
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.inner_text("#exp-name") == name
    assert "best by max valid/acc" in page.inner_text("#best")
    assert page.locator("tbody tr.best").count() == 1

    text = "Wider is better; **lr 0.01** converges within 8 epochs."
    page.click("#field-conclusion .edit-field")
    page.fill("#field-conclusion textarea", text)
    page.click("#field-conclusion .editor-save")
    page.locator("#field-conclusion .markdown strong", has_text="lr 0.01").wait_for()
    with open_store(demo_store) as store:
        assert store.get_experiment(name).conclusion == text
    ui.screenshot("experiment")
    ui.assert_no_errors()


def test_read_only_server_hides_edit_controls(
    browser: Any, demo_store: Path, tmp_path: Path
) -> None:
    with ui_server(demo_store, read_only=True) as base, ui_page(browser, base, tmp_path) as tab:
        page = tab.open("/runs/1")
        assert "read-only" in page.inner_text("#store-info")
        for control in ("#add-note", "#rename", "#new-tag", ".edit-note"):
            assert not page.locator(control).first.is_visible()
        with open_store(demo_store) as store:
            experiment = store.runs()[0].experiment
        page = tab.open(f"/experiments/{experiment}")
        assert not page.locator(".edit-field").first.is_visible()
        tab.screenshot("run-read-only")
        tab.assert_no_errors()


# --- live updates -------------------------------------------------------------------------------


def _points(steps: range, value: float) -> Any:
    from expbook.store.chunks import Points

    points = Points()
    now = time.time()
    for step in steps:
        points.append(step, value, now, None)
    return points


def test_a_running_run_updates_without_reloading(browser: Any, tmp_path: Path) -> None:
    from expbook.store.base import OutputText, RunSpec, WriteBatch

    path = tmp_path / "live.db"
    with open_store(path) as store:
        run = store.create_run(RunSpec(name="live", params={"lr": 0.1}, heartbeat_interval=60))
        batch = WriteBatch(points={"loss": _points(range(5), 0.5)}, heartbeat=time.time())
        store.write(run.id, batch)
        with ui_server(path) as base, ui_page(browser, base, tmp_path) as tab:
            page = tab.open("/")
            row = page.locator('tr[data-number="1"]')
            assert row.locator(".badge").inner_text() == "running"
            assert row.locator("td").last.inner_text() == "0.5"
            page.evaluate("window.notReloaded = true")
            page.check('tr[data-number="1"] input.select')
            page.click("#where")
            page.keyboard.type("half typed")

            batch = WriteBatch(points={"loss": _points(range(5, 10), 0.25)}, heartbeat=time.time())
            store.write(run.id, batch)
            last_cell = "document.querySelector('tr[data-number=\"1\"] td:last-child')"
            page.wait_for_function(f"() => {last_cell}.textContent === '0.25'")
            assert page.evaluate("window.notReloaded") is True
            assert page.is_checked('tr[data-number="1"] input.select')
            assert page.evaluate("document.activeElement.id") == "where"
            assert page.input_value("#where") == "half typed"
            tab.screenshot("runs-live")

            page = tab.open("/runs/1")
            assert page.evaluate(CHART_TRACES)[0]["x"] == list(range(10))
            output = [OutputText("stdout", time.time(), "epoch 1 done\nepoch 2 done\n")]
            store.write(
                run.id,
                WriteBatch(points={"loss": _points(range(10, 12), 0.2)}, output=output,
                           heartbeat=time.time()),
            )  # fmt: skip
            page.wait_for_function(
                "() => document.querySelector('.chart-card .chart').data[0].x.length === 12"
            )
            page.locator("#output", has_text="epoch 2 done").wait_for()
            store.update_run(run.id, status="finished", ended_at=time.time())
            page.locator("#run-head .badge", has_text="finished").wait_for()
            tab.screenshot("run-live")
            tab.assert_no_errors()


# --- speed --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 runs of 4 metrics of 10,000 steps."""
    require_chromium()
    from expbook.store.base import RunSpec, WriteBatch
    from expbook.store.chunks import Points

    path = tmp_path_factory.mktemp("long") / "long.db"
    steps = array("q", range(10_000))
    times = array("d", (1_700_000_000 + 0.1 * s for s in steps))
    epochs = array("d", (s / 1000 for s in steps))
    with open_store(path) as store:
        for i in range(20):
            run = store.create_run(RunSpec(name=f"long-{i}", params={"lr": 10 ** -(i % 4 + 1)}))
            points = {}
            for k, key in enumerate(("train/loss", "valid/loss", "valid/acc", "lr")):
                values = array("d", (math.exp(-s / (1000 + 50 * i + k)) for s in steps))
                columns = (array("q", steps), values, array("d", times), array("d", epochs))
                points[key] = Points(*columns)
            update = {"status": "finished", "ended_at": time.time()}
            store.write(run.id, WriteBatch(points=points, update=update))
    return path


def test_compare_draws_20_runs_of_4_long_metrics_quickly(
    browser: Any, long_runs: Path, tmp_path: Path
) -> None:
    """20 runs x 4 metrics x 10,000 steps, downsampled by the server, all drawn. The issue's
    target is 2 s after navigation (about 1.4 s on a quiet 2-core machine; benchmarks/bench_ui.py
    measures it); here, on test machines shared with other work, the bound only catches a
    regression of a different order (the page's own mark, best of three loads)."""
    compare = "/compare?runs=" + ",".join(str(n) for n in range(1, 21))
    with ui_server(long_runs) as base, ui_page(browser, base, tmp_path) as tab:
        tab.open("/runs/1")  # caches are warm, as for a person coming from a run's page
        timings = []
        for _ in range(3):
            page = tab.open(compare)
            timings.append(
                page.evaluate("performance.getEntriesByName('expbook:curves-drawn')[0].startTime")
            )
        traces = page.evaluate(CHART_TRACES)
        assert len(traces) == 20 * 4
        assert all(500 <= len(t["x"]) <= 1500 for t in traces)  # downsampled by the server
        tab.screenshot("compare-long")
        tab.assert_no_errors()
    assert min(timings) <= 3 * 2000, f"curves drawn {timings} ms after navigation"


def test_zooming_a_chart_fetches_the_visible_steps_in_full(
    browser: Any, long_runs: Path, tmp_path: Path
) -> None:
    with ui_server(long_runs) as base, ui_page(browser, base, tmp_path) as tab:
        page = tab.open("/runs/1")
        first_chart = "document.querySelector('.chart-card .chart')"
        assert page.evaluate(f"{first_chart}.data[0].x.length") < 10_000
        page.evaluate(f"Plotly.relayout({first_chart}, {{'xaxis.range': [1000, 1100]}})")
        page.wait_for_function(f"() => {first_chart}.data[0].x.length === 101")
        assert page.evaluate(f"{first_chart}.data[0].x[0]") == 1000
        page.evaluate(f"Plotly.relayout({first_chart}, {{'xaxis.autorange': true}})")
        page.wait_for_function(f"() => {first_chart}.data[0].x[0] === 0")
        tab.screenshot("run-long")
        tab.assert_no_errors()
