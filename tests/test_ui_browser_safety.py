"""The web UI in a real Chromium under its Content-Security-Policy, on a real store whose run
names and texts are hostile or unusual: the API docs render, names stay text, excerpts keep
their characters, parcoords axes span the data, an epoch axis without epochs says so.

Each test saves screenshots under its ``tmp_path`` and requires that the pages logged no
console error, raised no exception and broke no rule of the policy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import expbook
from tests.browser import UiPage, require_chromium, ui_page, ui_server

pytestmark = pytest.mark.slow

NAMES = [
    "<b>bold</b> baseline",
    '<a href="http://evil.example/">click me</a>',
    "x<br>y & <i>z</i>",
    "plain",
]
LEARNING_RATES = [1e-4, 3e-4, 1e-3, 3e-3]  # log-spaced, a 30x spread
HIDDEN = [16, 32, 48, 64]
DESCRIPTION = "Does `batch_size` matter? Compare lr_warmup * 2 with run #3 and **not** run 4."

# every Content-Security-Policy violation of the page, as the browser reports it
CSP_LISTENER = """window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(
  `${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));"""


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four runs of a sweep (log-spaced learning rates, hostile names; no epochs logged)."""
    require_chromium()
    path = tmp_path_factory.mktemp("safety") / "expbook.db"
    with expbook.open_store(str(path)) as store:
        tracker = expbook.Tracker(store)
        for name, lr, hidden in zip(NAMES, LEARNING_RATES, HIDDEN, strict=True):
            params = {"lr": lr, "hidden": hidden}
            with tracker.start_run(name=name, experiment="sweep", params=params) as run:
                for step in range(30):
                    loss = math.exp(-step * lr * 100) + hidden / 1000
                    run.log({"train/loss": loss, "valid/acc": 1 - loss / 2}, step=step)
        store.update_experiment("sweep", description=DESCRIPTION)
    return path


@pytest.fixture(scope="module")
def server(store_path: Path) -> Iterator[str]:
    with ui_server(store_path) as base:
        yield base


@pytest.fixture
def ui(browser: Any, server: str, tmp_path: Path) -> Iterator[UiPage]:
    with ui_page(browser, server, tmp_path) as tab:
        tab.page.add_init_script(CSP_LISTENER)
        yield tab


def assert_clean(ui: UiPage) -> None:
    assert ui.page.evaluate("window.cspViolations") == []
    ui.assert_no_errors()


# --- the policy and the API docs ----------------------------------------------------------------


def test_every_page_works_under_the_content_security_policy(ui: UiPage) -> None:
    for path, ready in [
        ("/", "tbody tr[data-number]"),
        ("/runs/1", ".chart-card .main-svg"),
        ("/compare?runs=1,2,3,4", ".chart-card .main-svg"),
        ("/experiments", "tbody tr"),
        ("/experiments/sweep", "tbody tr"),
    ]:
        answer = ui.page.goto(ui.base + path)
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
        ui.page.wait_for_selector("body[data-ready]", state="attached")
        ui.page.wait_for_selector(ready)
        if path.startswith("/compare"):
            ui.page.locator("#parcoords").scroll_into_view_if_needed()  # WebGL, drawn when seen
            ui.page.wait_for_function("() => document.querySelector('#parcoords').data")
            ui.page.wait_for_selector("#parcoords .y-axis .tick text")
        ui.screenshot(path.strip("/").replace("/", "-").split("?")[0] or "runs")
        assert_clean(ui)


def test_the_api_docs_list_every_operation(ui: UiPage) -> None:
    schema = ui.page.request.get(ui.base + "/api/openapi.json").json()
    expected = sorted(
        f"{method.upper()} {path}" for path, item in schema["paths"].items() for method in item
    )
    page = ui.page
    page.goto(ui.base + "/api/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    shown = page.eval_on_selector_all(
        ".opblock",
        """blocks => blocks.map(b => b.querySelector('.opblock-summary-method').textContent + ' '
            + b.querySelector('.opblock-summary-path').dataset.path)""",
    )
    assert sorted(shown) == expected
    assert "Unable to render" not in page.inner_text("body")
    runs = page.locator(".opblock-get", has=page.locator('[data-path="/api/runs"]'))
    runs.locator(".opblock-summary").click()  # open one: its parameters are listed
    runs.locator("tr[data-param-name='where']").wait_for()
    ui.screenshot("api-docs")
    assert_clean(ui)


# --- names and texts ----------------------------------------------------------------------------


def plot_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def test_run_names_are_shown_as_text_in_chart_legends(ui: UiPage) -> None:
    page = ui.open("/compare?runs=1,2,3,4")
    page.wait_for_selector(".chart-card .main-svg")
    # one legend for the page (HTML, the names as text), and the charts' tooltips name the runs
    legend = page.eval_on_selector_all(
        ".chart-legend .legend-entry", "es => es.map(e => e.textContent)"
    )
    expected = [f"#{number} {name}" for number, name in enumerate(NAMES, 1)]
    assert legend == expected
    assert page.locator(".chart-legend a, .chart-legend b").count() == 0  # no markup of a name
    names = page.eval_on_selector_all(
        ".chart-card .chart", "gds => gds.map(gd => gd.data.map(t => [t.name, t.meta.key]))"
    )
    plotted = [plot_text(f"{run} · ") for run in expected]  # Plotly reads entities as text
    assert names and all(
        sorted(name for name, _ in chart) == sorted(f"{run}{chart[0][1]}" for run in plotted)
        for chart in names
    ), names
    page.hover(".chart-card .chart .nsewdrag")  # a tooltip: names as text, not markup
    page.wait_for_selector(".chart-card .hoverlayer .legendtext")
    texts = page.eval_on_selector_all(
        ".chart-card .hoverlayer .legendtext", "ts => ts.map(t => t.textContent)"
    )
    assert texts and all(any(text.startswith(run) for run in expected) for text in texts), texts
    assert page.locator(".chart-card .hoverlayer a").count() == 0
    ui.screenshot("compare-names")
    assert_clean(ui)


def test_the_experiments_list_excerpt_keeps_the_texts_characters(ui: UiPage) -> None:
    page = ui.open("/experiments")
    about = page.inner_text('tr[data-name="sweep"] td.excerpt')
    # markdown's markup is gone (code spans, strong), the text's characters stay
    assert about == "Does batch_size matter? Compare lr_warmup * 2 with run #3 and not run 4."
    ui.screenshot("experiments")
    assert_clean(ui)


# --- charts -------------------------------------------------------------------------------------

PARCOORDS = """() => document.querySelector('#parcoords').data[0].dimensions.map(d => ({
    label: d.label, range: d.range, values: d.values, tickvals: d.tickvals ?? null,
    ticktext: d.ticktext ?? null}))"""
AXIS_TICKS = """() => [...document.querySelectorAll('#parcoords .y-axis')].map(axis => ({
    title: axis.querySelector('.axis-title').textContent,
    ticks: [...axis.querySelectorAll('.tick text')].map(t => t.textContent)}))"""


def _number(text: str) -> float:
    return float(text.replace("\u2212", "-"))  # plotly writes a minus sign


def test_parcoords_axes_span_the_data_on_a_log_axis_for_log_spaced_params(ui: UiPage) -> None:
    page = ui.open("/compare?runs=1,2,3,4")
    page.locator("#parcoords").scroll_into_view_if_needed()
    page.wait_for_selector("#parcoords .y-axis .tick text")
    dims = {dim["label"].split(" ")[0]: dim for dim in page.evaluate(PARCOORDS)}
    axes = {axis["title"].split(" ")[0]: axis["ticks"] for axis in page.evaluate(AXIS_TICKS)}

    lr = dims["lr"]
    assert "log" in lr["label"]
    assert lr["range"] == pytest.approx([math.log10(1e-4), math.log10(3e-3)])
    ticks = [_number(text) for text in axes["lr"]]
    assert ticks and all(1e-4 * 0.999 <= tick <= 3e-3 * 1.001 for tick in ticks), axes["lr"]

    hidden = dims["hidden"]
    assert "log" not in hidden["label"] and hidden["range"] == [16, 64]
    assert all(16 <= _number(text) <= 64 for text in axes["hidden"]), axes["hidden"]
    metric = next(dim for key, dim in dims.items() if key not in ("lr", "hidden"))
    assert metric["range"] == [min(metric["values"]), max(metric["values"])]
    ui.screenshot("parcoords")
    assert_clean(ui)


def test_the_epoch_axis_says_when_no_epochs_were_logged(ui: UiPage) -> None:
    page = ui.open("/runs/1")
    page.wait_for_selector(".chart-card .main-svg")
    page.select_option("#x-mode", "epoch")
    page.wait_for_selector(".chart-card .annotation-text")
    charts = page.eval_on_selector_all(
        ".chart-card .chart",
        """gds => gds.map(gd => ({
            notes: (gd.layout.annotations || []).map(a => a.text),
            drawn: gd.data.filter(t => t.x.some(x => x !== null)).length}))""",
    )
    assert charts
    for chart in charts:
        assert chart["drawn"] == 0
        assert chart["notes"] == ["No epochs were logged for these series: choose step or time"]
    page.select_option("#x-mode", "step")  # and back: the curves again
    page.wait_for_function(  # a function: the page's policy forbids evaluating strings
        "() => [...document.querySelectorAll('.chart-card .chart')].every(gd => gd.data.length"
        " && !(gd.layout.annotations || []).length)"
    )
    ui.screenshot("run-epoch-axis")
    assert_clean(ui)
