"""The experiments list in a real browser on a real ``expbook ui`` and a real SQLite store: the
best-metric column (equal to what the Python API and the experiment page's best run give),
sorting by any column with header buttons reached by Tab, the search box, and the state kept in
the page's address."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import expbook
from expbook.columns import lower_is_better
from expbook.report.stats import metric_value
from tests.browser import UiPage, require_chromium, ui_server

pytestmark = pytest.mark.slow

# experiment -> (description, [(status, valid/acc, valid/loss) per run]); None: no such metric
PLAN: dict[str, tuple[str | None, list[tuple[str, float | None, float | None]]]] = {
    "lr sweep": ("Does the **learning rate** matter?", [
        ("finished", 0.81, 0.52), ("finished", 0.86, 0.41), ("failed", 0.99, 0.01),
    ]),
    "width": ("Wider layers, `hidden` 64 to 512", [
        ("finished", 0.90, 0.38), ("finished", 0.88, 0.30), ("finished", math.nan, 0.2),
    ]),
    "dropout": ("Regularisation with batch_size fixed", [
        ("finished", 0.74, 0.61), ("finished", None, None),
    ]),
    "only failures": (None, [("failed", 0.95, 0.1)]),
}  # fmt: skip
EMPTY = "no runs yet"
BEST_CELLS = """() => Object.fromEntries([...document.querySelectorAll('tbody tr')].map(
    row => [row.dataset.experiment, row.querySelector('td.best-cell a')?.getAttribute('href')
            ?? null]))"""
ROW_NAMES = "rows => rows.map(row => row.dataset.experiment)"


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_chromium()
    path = tmp_path_factory.mktemp("experiments") / "expbook.db"
    with expbook.open_store(path) as store:
        tracker = expbook.Tracker(store)
        for experiment, (description, runs) in PLAN.items():
            store.create_experiment(experiment, description=description)
            for status, acc, loss in runs:
                run = tracker.start_run(experiment=experiment, system_metrics=False, capture=False)
                if acc is not None:
                    run.log({"valid/acc": acc - 0.1, "valid/loss": loss + 0.1}, step=0)
                    run.log({"valid/acc": acc, "valid/loss": loss}, step=1)
                else:
                    run.log({"train/loss": 1.0}, step=0)
                run.finish(status=status)
        store.create_experiment(EMPTY, description="A question for later")
    return path


@pytest.fixture(scope="module")
def server(store_path: Path) -> Iterator[str]:
    with ui_server(store_path) as base:
        yield base


def expected_best(store_path: Path, metric: str) -> dict[str, str | None]:
    """Each experiment's best finished run by ``metric`` from the Python API: its run page's
    address, as the list links it."""
    found: dict[str, str | None] = {}
    with expbook.open_store(store_path) as store:
        for experiment in [e.name for e in store.list_experiments()]:
            scored = [
                (value, run.number)
                for run in store.runs(experiment=experiment, status="finished", sort="number")
                if (value := metric_value(run, metric)) is not None and not math.isnan(value)
            ]
            pick = min if lower_is_better(metric) else max
            best = pick(scored, key=lambda item: (item[0], -item[1])) if scored else None
            found[experiment] = None if best is None else f"/runs/{best[1]}"
    return found


def address(page: Any) -> dict[str, list[str]]:
    """The page's query now (``page.url`` follows ``history.replaceState`` only a moment later)."""
    return parse_qs(urlsplit(page.evaluate("() => location.href")).query)


def test_the_best_column_follows_the_chosen_metric(ui: UiPage, store_path: Path) -> None:
    page = ui.open("/experiments")
    assert page.inner_text("thead button[data-sort=best]").startswith("Best valid/acc")
    shown = page.evaluate(BEST_CELLS)
    assert shown == expected_best(store_path, "valid/acc")
    assert shown["width"] == "/runs/4" and shown["only failures"] is None  # NaN never wins
    for name, href in shown.items():  # the experiment page ranks the same run first
        detail = httpx.get(f"{ui.base}/api/experiments/{name}", params={"metric": "valid/acc"})
        best = detail.json()["best"]
        assert href == (None if best is None else f"/runs/{best}")
    assert page.inner_text('tr[data-experiment="lr sweep"] td.best-cell a') == "0.86"
    ui.screenshot("experiments-best-acc")

    page.select_option("#best-metric", "valid/loss")
    page.locator("thead button[data-sort=best]", has_text="Best valid/loss").wait_for()
    assert address(page)["metric"] == ["valid/loss"]
    shown = page.evaluate(BEST_CELLS)
    assert shown == expected_best(store_path, "valid/loss")
    assert shown["width"] == "/runs/6"  # the lowest loss, the run whose acc is NaN
    assert "lowest wins" in page.inner_text("#best-mode")
    ui.screenshot("experiments-best-loss")

    # a slow answer for an older choice does not overwrite the newer one
    held: list[Any] = []

    def old(url: str) -> bool:
        return "/api/experiments-best?" in url and "valid%2Facc" in url

    page.route(old, lambda route: route.continue_() if held else held.append(route))
    page.select_option("#best-metric", "valid/acc")
    page.wait_for_function("() => !document.body.dataset.ready")
    while not held:
        page.wait_for_timeout(20)
    page.select_option("#best-metric", "valid/loss")
    page.wait_for_function("() => document.body.dataset.ready === 'true'")
    with page.expect_response(lambda response: "valid%2Facc" in response.url):
        held[0].continue_()
    page.unroute(old)
    page.wait_for_timeout(200)  # the old answer has arrived: it must change nothing
    assert page.inner_text("thead button[data-sort=best]").startswith("Best valid/loss")
    assert page.evaluate(BEST_CELLS) == expected_best(store_path, "valid/loss")

    # an error of the API is said, and the table and the select keep the metric they show
    page.evaluate("""() => { const o = document.createElement('option');
      o.value = o.textContent = 'no/such'; document.querySelector('#best-metric').append(o); }""")
    page.select_option("#best-metric", "no/such")
    page.locator("#notice", has_text="no run in an experiment has metric 'no/such'").wait_for()
    assert page.input_value("#best-metric") == "valid/loss"
    assert address(page)["metric"] == ["valid/loss"]
    assert page.inner_text("thead button[data-sort=best]").startswith("Best valid/loss")
    ui.assert_no_errors("status of 400")


def test_headers_sort_by_keyboard_and_the_search_and_sort_live_in_the_address(
    ui: UiPage, store_path: Path
) -> None:
    page = ui.open("/experiments")
    rows = page.locator("tbody tr")
    with expbook.open_store(store_path) as store:
        listed = store.list_experiments()
    newest_first = [e.name for e in sorted(listed, key=lambda e: -e.updated_at)]
    assert rows.evaluate_all(ROW_NAMES) == newest_first

    page.focus("#find")
    page.keyboard.press("Tab")  # from the search box to the first header
    assert page.evaluate("() => document.activeElement.dataset.sort") == "name"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Runs: the most first
    by_runs = sorted(listed, key=lambda e: (-e.run_count, e.name))
    assert rows.evaluate_all(ROW_NAMES) == [e.name for e in by_runs]
    assert address(page)["sort"] == ["-runs"]
    assert page.evaluate("() => document.activeElement.dataset.sort") == "runs"
    page.keyboard.press("Enter")  # again: the fewest first
    assert rows.evaluate_all(ROW_NAMES)[0] == EMPTY
    assert address(page)["sort"] == ["runs"]
    assert page.get_attribute("th:has(button[data-sort=runs])", "aria-sort") == "ascending"

    page.click("button[data-sort=best]")  # the best value first; no best run: last
    assert rows.evaluate_all(ROW_NAMES) == ["width", "lr sweep", "dropout", EMPTY,
                                            "only failures"]  # fmt: skip
    assert address(page)["sort"] == ["best"]
    ui.screenshot("experiments-sorted-by-best")

    page.fill("#find", "batch")  # words of a description, not of a name
    assert rows.evaluate_all(ROW_NAMES) == ["dropout"]
    page.fill("#find", "WID")
    assert rows.evaluate_all(ROW_NAMES) == ["width"]
    assert address(page) == {"q": ["WID"], "sort": ["best"]}
    assert page.inner_text("#exp-count") == "1 of 5"

    page.fill("#find", "")
    page.select_option("#best-metric", "valid/loss")
    page.locator("#best-mode", has_text="lowest wins").wait_for()
    page.fill("#find", "wi")
    shared = urlsplit(page.evaluate("() => location.href"))  # what a user would bookmark or send
    assert parse_qs(shared.query) == {"q": ["wi"], "sort": ["best"], "metric": ["valid/loss"]}
    page = ui.open(f"{shared.path}?{shared.query}")
    assert page.input_value("#find") == "wi"
    assert page.input_value("#best-metric") == "valid/loss"
    names = page.locator("tbody tr").evaluate_all(ROW_NAMES)
    assert names == ["width", "dropout"]  # the lowest loss first; "with batch_size" matches
    ui.screenshot("experiments-from-address")
    ui.assert_no_errors()


def test_the_api_ranks_as_the_python_api_for_each_value_and_mode(
    server: str, store_path: Path
) -> None:
    """``GET /api/experiments-best``: value and mode change the ranking; an unknown metric
    is a 400 naming it; the experiment without runs is listed with none."""
    with expbook.open_store(store_path) as store:
        finished = {
            e.name: store.runs(experiment=e.name, status="finished", sort="number")
            for e in store.list_experiments()
        }
    for query in ({"metric": "valid/loss", "value": "max"},
                  {"metric": "valid/acc", "mode": "min", "value": "min"}):  # fmt: skip
        answer = httpx.get(f"{server}/api/experiments-best", params=query).json()
        assert answer["mode"] == query.get("mode", "min" if "loss" in query["metric"] else "max")
        for name, runs in finished.items():
            scored = [
                (value, run.number)
                for run in runs
                if (value := metric_value(run, query["metric"], query["value"])) is not None
                and not math.isnan(value)
            ]
            pick = min if answer["mode"] == "min" else max
            best = pick(scored, key=lambda item: (item[0], -item[1])) if scored else None
            entry = answer["experiments"][name]
            assert entry["finished"] == len(runs) and entry["scored"] == len(scored)
            got = entry["best"]
            assert (got and (got["value"], got["number"])) == (best and tuple(best)), name
    assert answer["metrics"] == ["train/loss", "valid/acc", "valid/loss"]
    assert answer["experiments"][EMPTY] == {"finished": 0, "scored": 0, "best": None}
    # a metric no run has is a typo: named in one line, not a column of empty cells
    for typo, hint in (("throughput", ""),
                       ("valid/f1", " (did you mean 'valid/acc' or 'valid/loss'?)")):  # fmt: skip
        unknown = httpx.get(f"{server}/api/experiments-best", params={"metric": typo})
        assert unknown.status_code == 400, unknown.text
        assert unknown.json()["detail"] == f"no run in an experiment has metric {typo!r}{hint}"
    bad = httpx.get(f"{server}/api/experiments-best", params={"value": "median"})
    assert bad.status_code == 422 and "median" in bad.json()["detail"]
