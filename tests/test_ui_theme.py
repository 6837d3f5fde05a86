"""Dark mode in a real browser on a real ``expbook ui``: every page follows the system's
``prefers-color-scheme`` (no stray light box left on a dark page), and the header's toggle
switches auto / light / dark, tells the page ("themechange"), and is remembered across reloads,
applied before the page's own script runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import expbook
from tests.browser import UiPage, require_chromium, ui_server
from tests.test_server_safety import few_runs

pytestmark = pytest.mark.slow

PAGES = [
    ("/", "runs"),
    ("/runs/1", "run"),
    ("/compare?runs=1,2,3", "compare"),
    ("/experiments", "experiments"),
    ("/experiments/sweep", "experiment"),
    ("/sweeps", "sweeps"),
    ("/sweeps/lr%20grid", "sweep"),
]
LIGHTNESS = """selector => {
    const [r, g, b] = getComputedStyle(document.querySelector(selector))
        .backgroundColor.match(/\\d+/g).map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}"""
# boxes of the page (not plotly's charts, which draw their own) with a light background
LIGHT_BOXES = """() => [...document.querySelectorAll('main *')]
    .filter(el => !el.closest('.js-plotly-plot') && el.getClientRects().length)
    .filter(el => {
        const m = getComputedStyle(el).backgroundColor.match(/[\\d.]+/g);
        if (!m || (m.length === 4 && Number(m[3]) === 0)) return false;
        const [r, g, b] = m.map(Number);
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 > 0.8;
    })
    .map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''))"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    store = tmp_path_factory.mktemp("theme") / "expbook.db"
    with expbook.open_store(store) as opened:
        few_runs(opened)  # 3 runs of an experiment, a failed one, a sweep over them
    with ui_server(store) as base:
        yield base


def tab(browser: Any, base: str, shots: Path, scheme: str) -> tuple[Any, UiPage]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(15_000)
    ui = UiPage(page=page, base=base, shots=shots)
    page.on("console", lambda m: ui.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: ui.errors.append(f"uncaught: {exc}"))
    return context, ui


def test_every_page_is_dark_when_the_system_is(browser: Any, server: str, tmp_path: Path) -> None:
    context, ui = tab(browser, server, tmp_path, "dark")
    try:
        for path, name in PAGES:
            page = ui.open(path)
            assert page.evaluate("() => document.documentElement.dataset.theme") == "auto"
            assert page.evaluate(LIGHTNESS, "body") < 0.1, name
            text = page.evaluate("() => getComputedStyle(document.body).color")
            assert text != "rgb(29, 35, 48)", name  # the light theme's text colour
            assert page.evaluate(LIGHT_BOXES) == [], name
            ui.screenshot(f"dark-{name}")
        ui.assert_no_errors()
    finally:
        context.close()


def test_the_toggle_switches_tells_the_page_and_is_remembered(
    browser: Any, server: str, tmp_path: Path
) -> None:
    context, ui = tab(browser, server, tmp_path, "dark")
    try:
        page = ui.open("/experiments")
        toggle = page.locator("#theme-toggle")
        assert toggle.inner_text() == "Auto"
        page.evaluate("""() => { window.themeChanges = 0;
            document.addEventListener('themechange', () => window.themeChanges++); }""")
        toggle.click()
        assert toggle.inner_text() == "Light"
        assert page.evaluate("() => document.documentElement.dataset.theme") == "light"
        assert page.evaluate(LIGHTNESS, "body") > 0.9  # light although the system is dark
        assert page.evaluate("() => localStorage.getItem('expbook.theme')") == "light"
        assert page.evaluate("() => window.themeChanges") == 1
        ui.screenshot("toggled-light")

        page = ui.open("/experiments")  # a reload keeps it
        assert page.locator("#theme-toggle").inner_text() == "Light"
        assert page.evaluate(LIGHTNESS, "body") > 0.9

        page.locator("#theme-toggle").click()
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        assert page.evaluate(LIGHTNESS, "body") < 0.1
        page.locator("#theme-toggle").click()  # back to auto: the system's (dark), forgotten
        assert page.locator("#theme-toggle").inner_text() == "Auto"
        assert page.evaluate("() => localStorage.getItem('expbook.theme')") is None
        assert page.evaluate(LIGHTNESS, "body") < 0.1
        ui.assert_no_errors()
    finally:
        context.close()

    context, ui = tab(browser, server, tmp_path, "light")
    try:
        page = ui.open("/")
        assert page.evaluate(LIGHTNESS, "body") > 0.9
        page.locator("#theme-toggle").click()
        page.locator("#theme-toggle").click()
        assert page.locator("#theme-toggle").inner_text() == "Dark"
        assert page.evaluate(LIGHTNESS, "body") < 0.1
        ui.screenshot("toggled-dark")
        # the choice is applied by static/theme.js from <head>, before (and without) the page's
        # own script: with runs.js blocked the page is dark all the same
        page.route("**/static/runs.js", lambda route: route.abort())
        page.goto(ui.base + "/")
        page.wait_for_load_state("load")
        assert page.evaluate("() => document.documentElement.dataset.theme") == "dark"
        assert page.evaluate(LIGHTNESS, "body") < 0.1
        ui.screenshot("dark-before-script")
        ui.assert_no_errors("Failed to load resource")  # the blocked script, on purpose
    finally:
        context.close()
