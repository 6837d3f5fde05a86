"""The run page's System section in a real browser (Chromium): the summary lines and one chart
per unit, drawn from a run whose system metrics the real sampler recorded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import expbook
from tests.browser import chromium, require_chromium, ui_page, ui_server

pytestmark = pytest.mark.slow

SYSTEM_TRACES = """() => [...document.querySelectorAll('#system-charts .chart-card .chart')]
    .flatMap(gd => gd.data.map(t => ({key: t.meta.key, x: t.x, y: t.y})))"""
METRIC_TRACES = """() => [...document.querySelectorAll('#charts .chart-card .chart')]
    .flatMap(gd => gd.data.map(t => t.meta.key))"""


def test_the_run_page_shows_the_system_section(tmp_path: Path) -> None:
    require_chromium()
    store = tmp_path / "expbook.db"
    with expbook.start_run("sys-ui", store=str(store), system_metrics=True,
                           system_metrics_interval=1) as run:  # fmt: skip
        block = bytearray(64 << 20)
        for step in range(20):
            run.log({"train/loss": 1 / (step + 1)}, epoch=step / 10)
            time.sleep(0.12)
        del block
    with expbook.open_store(str(store)) as opened:
        keys = [k for k in opened.series_keys(run.id) if k.startswith("system/")]
        stored = {key: opened.series(run.id, key) for key in keys}
    assert "system/cpu_percent" in keys
    with ui_server(store) as base, chromium() as browser, ui_page(browser, base, tmp_path) as ui:
        page = ui.open(f"/runs/{run.number}")
        section = page.locator("#system-section")
        assert section.is_visible()
        lines = page.inner_text("#system-lines")
        assert "CPU: " in lines and "% of a core mean" in lines and "GiB peak" in lines
        assert "GPU: none recorded: no NVIDIA GPU" in lines
        assert "Pace: " in lines and "per epoch" in lines
        titles = page.locator("#system-charts .chart-card h3").all_inner_texts()
        assert any(t.startswith("CPU (% of a core)") for t in titles)
        assert any(t.startswith("Memory (GiB)") for t in titles)
        traces = page.evaluate(SYSTEM_TRACES)
        assert sorted(t["key"] for t in traces) == sorted(keys)  # every system series, once
        for trace in traces:
            assert trace["x"] == list(stored[trace["key"]].steps)
            assert trace["y"] == pytest.approx(list(stored[trace["key"]].values))
        assert page.evaluate(METRIC_TRACES) == ["train/loss"]  # not mixed with the metrics
        ui.screenshot("run-system")
        ui.assert_no_errors()


def test_a_run_without_system_metrics_has_no_system_section(tmp_path: Path) -> None:
    require_chromium()
    store = tmp_path / "expbook.db"
    with expbook.start_run("plain", store=str(store), system_metrics=False) as run:
        run.log({"loss": 1.0})
    with ui_server(store) as base, chromium() as browser, ui_page(browser, base, tmp_path) as ui:
        page = ui.open(f"/runs/{run.number}")
        assert not page.locator("#system-section").is_visible()
        ui.assert_no_errors()
