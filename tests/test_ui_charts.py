"""The charts of the run and compare pages in a real browser (Chromium) on a real ``expbook ui``
serving a store filled with the Python API: smoothing, log axes, x axis choices, the shared
legend, the run page's panels (sections by key prefix, search, pins), theme colours.

Numbers are checked against the store: the smoothed line against a debiased EMA computed here,
wall-time x values against the stored timestamps, a metric x axis against the values logged at
the same steps.
"""

from __future__ import annotations

import datetime
import itertools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import expbook
from tests.browser import UiPage, require_chromium, ui_server

pytestmark = pytest.mark.slow

STATIC = Path(__file__).parents[1] / "src" / "expbook" / "server" / "static"
LOG_X = '.chart-card[data-title="loss"] .chart-tool[data-axis="x"]'
LAYERS = [f"layer{i:02d}/grad_norm" for i in range(45)]

# every drawn chart's traces, by chart title
TRACES = """() => Object.fromEntries([...document.querySelectorAll('.chart-card')]
    .filter(card => card.querySelector('.chart').data)
    .map(card => [card.dataset.title ?? card.querySelector('h3').firstChild.textContent.trim(),
        card.querySelector('.chart').data.map(t => ({
            key: t.meta.key, legend: t.meta.legend ?? null, raw: Boolean(t.meta.raw),
            smoothed: t.meta.smoothed ?? null, name: t.name, x: t.x, y: t.y, steps: t.customdata,
            visible: t.visible, opacity: t.opacity ?? 1, color: t.line.color}))]))"""
LAYOUT = """title => { const gd = document.querySelector(
    `.chart-card[data-title="${title}"] .chart`);
    return {x: gd.layout.xaxis.type, y: gd.layout.yaxis.type, paper: gd.layout.paper_bgcolor,
            notes: (gd.layout.annotations || []).map(a => a.text)} }"""
PANELS = """() => [...document.querySelectorAll('.panel')].filter(p => !p.hidden).map(p => ({
    name: p.dataset.section, open: p.querySelector('.panel-toggle').getAttribute('aria-expanded'),
    count: p.querySelector('.panel-count').textContent,
    titles: [...p.querySelectorAll('.chart-card')].filter(c => !c.hidden)
        .map(c => c.dataset.title),
    drawn: [...p.querySelectorAll('.chart-card .chart')].filter(gd => gd.data).length}))"""
TEXTS = "es => es.map(e => e.textContent)"
VISIBLE_TITLES = """() => [...document.querySelectorAll('.chart-card')]
    .filter(c => c.offsetParent !== null).map(c => c.dataset.title)"""


def ema(values: list[float], weight: float) -> list[float]:
    """TensorBoard's debiased exponential moving average."""
    out, last = [], 0.0
    for n, value in enumerate(values, 1):
        last = last * weight + (1 - weight) * value
        out.append(last / (1 - weight**n))
    return out


def wall(seconds: float) -> str:
    """A timestamp as the page gives it to Plotly: local time, to the millisecond."""
    text = datetime.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")
    return f"{text}.{int(seconds * 1000) % 1000:03d}"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 1: train/loss every step, valid/loss and valid/acc every 5, lr every even step,
    epochs, 45 layerNN/grad_norm keys and a system/ key. Runs 2-3: train/loss to overlay."""
    require_chromium()
    path = tmp_path_factory.mktemp("charts") / "expbook.db"
    with expbook.start_run("panels", store=str(path), system_metrics=False) as run:
        for step in range(30):
            values = {"train/loss": 2.0 / (step + 1) + 0.05 * math.sin(step)}
            if step % 5 == 0:
                values |= {"valid/loss": 2.2 / (step + 1), "valid/acc": step / 30}
            if step % 2 == 0:
                values["lr"] = 0.1 * (step + 1)
            if step % 10 == 0:
                values |= {key: 1.0 + i / 10 + step for i, key in enumerate(LAYERS)}
                values["system/cpu_percent"] = 50.0 + step
            run.log(values, step=step, epoch=step / 10)
    for i in range(2):
        with expbook.start_run(f"base-{i}", store=str(path), system_metrics=False) as other:
            for step in range(20):
                other.log({"train/loss": (i + 1) / (step + 1)}, step=step)
    return path


@pytest.fixture(scope="module")
def stored(store: Path) -> dict[str, Any]:
    with expbook.open_store(str(store)) as opened:
        run = opened.run(1)
        series = {key: opened.series(1, key) for key in opened.series_keys(run.id)}
        return {**series, "started": run.started_at}


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[str]:
    with ui_server(store) as base:
        yield base


def traces(page: Any) -> dict[str, list[dict[str, Any]]]:
    return page.evaluate(TRACES)


def legend_entries(page: Any) -> list[str]:
    return page.eval_on_selector_all(".chart-legend .legend-entry", TEXTS)


def chart(title: str) -> str:
    """A chart's element, as page script."""
    return f"document.querySelector('.chart-card[data-title=\"{title}\"] .chart')"


def test_the_palette_tells_24_series_apart_on_light_and_dark_pages() -> None:
    text = (STATIC / "charts.js").read_text()
    block = text[text.index("export const PALETTE = [") :].split("];")[0]
    palette = re.findall(r'"(#[0-9a-f]{6})"', block)
    assert len(palette) == len(set(palette)) == 24

    def linear(c: int) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    def rgb(colour: str) -> tuple[float, float, float]:
        return tuple(linear(int(colour[i : i + 2], 16)) for i in (1, 3, 5))  # type: ignore[return-value]

    def lab(colour: str) -> tuple[float, float, float]:
        r, g, b = rgb(colour)
        x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
        y = 0.2126 * r + 0.7152 * g + 0.0722 * b
        z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
        f = [t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z)]
        return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])

    def contrast(a: str, b: str) -> float:
        la, lb = (0.2126 * r + 0.7152 * g + 0.0722 * b for r, g, b in (rgb(a), rgb(b)))
        return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)

    closest = min(math.dist(lab(a), lab(b)) for a, b in itertools.combinations(palette, 2))
    assert closest >= 30
    assert min(contrast(c, "#ffffff") for c in palette) >= 2.2
    assert min(contrast(c, "#111827") for c in palette) >= 3.0


def test_run_page_panels_put_loss_first_and_45_layer_charts_in_a_closed_section(
    ui: UiPage,
) -> None:
    page = ui.open("/runs/1")
    panels = page.evaluate(PANELS)
    names = [p["name"] for p in panels]
    assert names == ["", "layerN/", "system"]
    metrics, layers, system = panels
    assert metrics["open"] == "true" and metrics["titles"][:2] == ["loss", "acc"]
    assert metrics["drawn"] == len(metrics["titles"]) == 3  # loss, acc, lr
    assert layers["open"] == "false" and layers["count"] == "45 charts"
    assert sorted(layers["titles"]) == LAYERS
    assert layers["drawn"] == 0  # a closed section's charts are not drawn
    assert system["open"] == "true" and system["titles"] == ["CPU (% of a core)"]
    assert page.evaluate(VISIBLE_TITLES)[0] == "loss"  # on top, not below 45 layer charts
    top = page.evaluate(f"{chart('loss')}.getBoundingClientRect().top + window.scrollY")
    assert top < 1600  # the 50-row summary scrolls in its card
    drawn = traces(page)
    assert set(drawn) == {"loss", "acc", "lr", "CPU (% of a core)"}
    # tooltips name the series: run number, name and key
    assert sorted(t["name"] for t in drawn["loss"]) == ["#1 panels · train/loss",
                                                        "#1 panels · valid/loss"]  # fmt: skip
    # one legend for the page: the splits, not one legend per chart
    legend = legend_entries(page)
    assert legend == ["train", "valid"]
    assert page.locator(".chart-card .legend").count() == 0
    page.hover('.chart-card[data-title="loss"] .nsewdrag')
    page.wait_for_selector(".chart-card .hoverlayer .legendtext")
    tips = page.eval_on_selector_all(".hoverlayer .legendtext", TEXTS)
    named = {tip.split(":")[0] for tip in tips}  # valid/loss has a point every 5 steps only
    assert (
        "#1 panels · train/loss" in named <= {f"#1 panels · {s}/loss" for s in ("train", "valid")}
    )
    ui.screenshot("run-panels")

    # search by key: only the matching charts, their closed section opened and drawn
    page.fill("#chart-search", "layer07")
    page.wait_for_function(f"() => {chart('layer07/grad_norm')}.data")
    panels = page.evaluate(PANELS)
    assert [(p["name"], p["titles"], p["count"]) for p in panels] == [
        ("layerN/", ["layer07/grad_norm"], "1 of 45 charts")
    ]
    ui.screenshot("run-search")

    # a pin: the chart goes first, in a Pinned section, and stays pinned after a reload
    page.click('.chart-card[data-title="layer07/grad_norm"] .pin')
    page.fill("#chart-search", "")
    panels = page.evaluate(PANELS)
    assert [p["name"] for p in panels] == ["pinned", "", "layerN/", "system"]
    assert panels[0]["titles"] == ["layer07/grad_norm"] and panels[2]["count"] == "44 charts"
    assert panels[2]["open"] == "false"  # closed again once the search is cleared
    page.reload()
    page.wait_for_selector("body[data-ready]", state="attached")
    panels = page.evaluate(PANELS)
    assert panels[0]["name"] == "pinned" and panels[0]["titles"] == ["layer07/grad_norm"]
    assert panels[0]["drawn"] == 1
    assert page.evaluate(VISIBLE_TITLES)[:2] == ["layer07/grad_norm", "loss"]
    ui.screenshot("run-pinned")

    page.click('.chart-card[data-title="layer07/grad_norm"] .pin')  # unpinned: back in place
    panels = page.evaluate(PANELS)
    assert [p["name"] for p in panels] == ["", "layerN/", "system"]
    assert panels[1]["count"] == "45 charts"
    ui.assert_no_errors()


def test_run_page_smoothing_log_axes_and_x_choices_draw_the_stored_numbers(
    ui: UiPage, stored: dict[str, Any]
) -> None:
    page = ui.open("/runs/1")
    loss, started = stored["train/loss"], stored["started"]
    drawn = traces(page)["loss"]
    assert [t["key"] for t in drawn] == ["train/loss", "valid/loss"]
    assert drawn[0]["y"] == pytest.approx(list(loss.values))

    # smoothing: the debiased EMA of the stored values, the raw line faint behind it
    page.locator("#smoothing").fill("0.6")
    page.wait_for_function("() => document.querySelector('.chart-card .chart').data.length === 4")
    drawn = traces(page)["loss"]
    raw, smoothed = drawn[0], drawn[1]
    assert raw["raw"] and raw["opacity"] < 0.5 and raw["y"] == pytest.approx(list(loss.values))
    assert smoothed["smoothed"] == 0.6
    assert smoothed["y"] == pytest.approx(ema(list(loss.values), 0.6))
    assert smoothed["y"][0] == pytest.approx(loss.values[0])  # debiased: not pulled to 0
    valid = drawn[3]
    assert valid["y"] == pytest.approx(ema(list(stored["valid/loss"].values), 0.6))
    assert page.inner_text(".smoothing-value") == "0.60"
    ui.screenshot("run-smoothed")
    page.reload()  # kept per page in localStorage
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.input_value("#smoothing") == "0.6"
    assert traces(page)["loss"][1]["smoothed"] == 0.6
    page.locator("#smoothing").fill("0")
    page.wait_for_function("() => document.querySelector('.chart-card .chart').data.length === 2")

    # log y on one chart only
    page.click(LOG_X.replace('"x"', '"y"'))
    assert page.evaluate(LAYOUT, "loss")["y"] == "log"
    assert page.evaluate(LAYOUT, "acc")["y"] == "linear"
    # log x on step: step 0 cannot be shown, and the chart says so
    page.click(LOG_X)
    layout = page.evaluate(LAYOUT, "loss")
    assert layout["x"] == "log"
    assert layout["notes"] == ["2 points at step ≤ 0 not shown (log x)"]
    drawn = traces(page)["loss"]
    assert drawn[0]["x"] == list(loss.steps)[1:]
    assert drawn[0]["y"] == pytest.approx(list(loss.values)[1:])
    assert page.get_attribute(LOG_X, "aria-pressed") == "true"
    page.click(LOG_X)
    layout = page.evaluate(LAYOUT, "loss")
    assert (layout["x"], layout["y"], layout["notes"]) == ("linear", "log", [])

    # x = wall time: the stored timestamps
    page.select_option("#x-mode", "wall")
    drawn = traces(page)["loss"]
    assert page.evaluate(LAYOUT, "loss")["x"] == "date"
    assert drawn[0]["x"] == [wall(t) for t in loss.times]
    # x = relative time: seconds since the run's start
    page.select_option("#x-mode", "time")
    assert traces(page)["loss"][0]["x"] == pytest.approx([t - started for t in loss.times])
    # x = epoch: the stored epochs; the x axis is in the page address, for a link
    page.select_option("#x-mode", "epoch")
    assert traces(page)["loss"][0]["x"] == pytest.approx(list(loss.epochs))
    assert page.evaluate("() => location.href").endswith("/runs/1?x=epoch")
    # x = another metric: lr at the same step (lr was logged on even steps only)
    page.select_option("#x-mode", "metric:lr")
    page.wait_for_function(f"() => {chart('loss')}.data[0].x.length === 15")
    lr = dict(zip(stored["lr"].steps, stored["lr"].values, strict=True))
    for trace in traces(page)["loss"]:
        series = stored[trace["key"]]
        points = zip(series.steps, series.values, strict=True)
        pairs = [(lr[s], v, s) for s, v in points if s in lr]
        assert trace["x"] == pytest.approx([x for x, _, _ in pairs])
        assert trace["y"] == pytest.approx([y for _, y, _ in pairs])
        assert trace["steps"] == [s for _, _, s in pairs]
    assert page.evaluate(LAYOUT, "loss")["x"] == "linear"
    page.select_option("#x-mode", "step")

    # the shared legend: hiding "valid" hides it on every chart
    page.click('.chart-legend .legend-entry:text-is("valid")')
    for title, drawn in traces(page).items():
        for trace in drawn:
            assert trace["visible"] is (trace["legend"] != "valid"), (title, trace["key"])
    assert page.get_attribute('.legend-entry:text-is("valid")', "aria-pressed") == "false"
    page.click('.chart-legend .legend-entry:text-is("valid")')
    assert all(t["visible"] is True for drawn in traces(page).values() for t in drawn)

    # colours from the stylesheet's variables, read again on the theme's change
    page.evaluate(
        "document.documentElement.style.setProperty('--surface', '#101418');"
        "document.dispatchEvent(new Event('themechange'))"
    )
    assert page.evaluate(LAYOUT, "loss")["paper"] == "#101418"
    assert page.evaluate(LAYOUT, "CPU (% of a core)")["paper"] == "#101418"
    ui.screenshot("run-dark-surface")
    ui.assert_no_errors()


def test_compare_page_overlays_runs_with_names_in_tooltips_and_smoothing(
    ui: UiPage, store: Path
) -> None:
    page = ui.open("/compare?runs=2,3&x=wall")  # the x axis from the address
    page.wait_for_function("() => document.querySelector('.chart-card .chart')?.data")
    drawn = traces(page)
    loss = next(chart for chart in drawn.values() if chart and chart[0]["key"] == "train/loss")
    assert [t["name"] for t in loss] == [f"#{n} base-{n - 2} · train/loss" for n in (2, 3)]
    assert len({t["color"] for t in loss}) == 2
    assert page.input_value("#x-mode") == "wall"
    with expbook.open_store(str(store)) as opened:
        times = [list(opened.series(n, "train/loss").times) for n in (2, 3)]
    assert [t["x"] for t in loss] == [[wall(t) for t in run] for run in times]
    page.select_option("#x-mode", "step")
    assert "x=" not in page.evaluate("() => location.href")
    page.locator("#smoothing").fill("0.5")  # the same toolbar as the run page's
    page.wait_for_function("() => document.querySelector('.chart-card .chart').data.length === 4")
    smoothed = [t for t in next(iter(traces(page).values())) if t["smoothed"]]
    for n, trace in zip((2, 3), smoothed, strict=True):
        values = [(n - 1) / (step + 1) for step in range(20)]
        assert trace["y"] == pytest.approx(ema(values, 0.5))
    legend = legend_entries(page)
    assert legend == ["#2 base-0", "#3 base-1"]
    page.click('.chart-legend .legend-entry:text-is("#3 base-1")')  # hidden on every chart
    shown = [t["name"] for chart in traces(page).values() for t in chart if t["visible"]]
    assert shown and all(name.startswith("#2 base-0 · ") for name in shown)
    ui.screenshot("compare-smoothed")
    ui.assert_no_errors()
