"""The compare page's groups in a real browser (Chromium) on a real ``expbook ui`` serving a real
SQLite store filled with the Python API: 3 configurations x 3 seeds and one unrepeated run, 50
steps each. The API's statistics (``GET /api/compare``, ``GET /api/compare/series``) equal
``expbook compare --json`` and :func:`expbook.report.stats.estimate`; the page shows exactly
those numbers: group means with their CI (or min-max) bands, the groups table with Welch's
p-values, colours by a param, and the metrics table's deltas against a baseline run. The sweep
page groups a repeated sweep's trials by configuration the same way."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

import expbook
from expbook.report.stats import estimate
from tests.browser import UiPage, require_chromium, ui_server
from tests.helpers import run_cli
from tests.sweepdata import Made, make_sweep

pytestmark = pytest.mark.slow

HIDDEN = (64, 128, 256)
SEEDS = (1, 2, 3)
STEPS = 50
REPEATS = 2  # the sweep's repeats of each configuration
ALL = ",".join(str(n) for n in range(1, 11))  # runs 1-9: 3 x 3 seeds; 10: hidden=512, alone
GROUPED = f"/compare?runs={ALL}&group_by=params.model.hidden"
READY = "() => document.body.dataset.ready === 'true'"
TEXTS = "cells => cells.map(c => c.innerText)"
CHART_OF = """(key) => { const card = [...document.querySelectorAll('.chart-card')]
    .find(c => c.dataset.key === key);
  return card.querySelector('.chart').data.map(t => ({name: t.name, x: t.x, y: t.y,
    meta: t.meta, color: t.line && t.line.color, fill: t.fill})); }"""


def acc(hidden: int, seed: int, step: int) -> float:
    return 0.5 + hidden / 1000 + 0.3 * (1 - math.exp(-step / 12)) + noise(seed, step)


def noise(seed: int, step: int) -> float:
    return ((seed * 7919 + step * 31) % 17 - 8) / 400


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Made]:
    """The store: runs 1-10 to compare, then a sweep repeating each configuration twice."""
    require_chromium()
    path = tmp_path_factory.mktemp("compare") / "expbook.db"
    with expbook.open_store(str(path)) as store:
        configs = [(h, s) for h in HIDDEN for s in SEEDS] + [(512, 1)]
        for hidden, seed in configs:
            params = {"model": {"hidden": hidden}, "lr": 0.01, "seed": seed}
            name = f"h{hidden}-s{seed}" if hidden != 512 else "h512"
            with expbook.start_run(name, store=store, experiment="mlp", params=params,
                                   system_metrics=False) as run:  # fmt: skip
                for step in range(STEPS):
                    loss = 2 * math.exp(-step / (10 + hidden / 32)) + noise(seed, step)
                    run.log({"train/loss": loss, "valid/acc": acc(hidden, seed, step)}, step=step)
    return path, make_sweep(path, "rep", repeats=REPEATS)


@pytest.fixture(scope="module")
def store_path(filled: tuple[Path, Made]) -> Path:
    return filled[0]


@pytest.fixture(scope="module")
def server(store_path: Path) -> Iterator[str]:
    with ui_server(store_path) as base:
        yield base


def get(base: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{base}{path}", params=params, timeout=30)


def cli_compare(store: Path, a: list[int], b: list[int], metric: str) -> dict[str, Any]:
    sides = [",".join(map(str, side)) for side in (a, b)]
    done = run_cli("compare", *sides, "--metric", metric, "--exact", "--json", store=str(store))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def js_number(x: float, digits: int) -> str:
    """What the page prints: String(Number(x.toPrecision(digits))) for these values."""
    return repr(float(f"{x:.{digits}g}"))


# --- the API ----------------------------------------------------------------------------------


def test_api_compare_equals_expbook_compare(server: str, store_path: Path) -> None:
    answer = get(server, "/api/compare", runs=ALL, group_by="params.model.hidden",
                 metrics="valid/acc,train/loss", baseline=1)  # fmt: skip
    assert answer.status_code == 200, answer.text
    data = answer.json()
    groups = data["groups"]
    assert [g["label"] for g in groups] == [f"model.hidden={h}" for h in (*HIDDEN, 512)]
    assert [g["runs"] for g in groups] == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    assert [g["noise_unknown"] for g in groups] == [False, False, False, True]
    assert data["lower_is_better"] == {"valid/acc": False, "train/loss": True}
    last = [acc(128, seed, STEPS - 1) for seed in SEEDS]
    mean = groups[1]["metrics"]["valid/acc"]
    assert mean["mean"] == pytest.approx(sum(last) / 3)
    assert mean["ci"] == pytest.approx([estimate(last).low, estimate(last).high])
    # every group against the baseline (hidden=128): the very JSON of `expbook compare`
    wanted = [(0, "valid/acc"), (3, "train/loss")]  # n = 3 against 3; n = 3 against 1
    with ThreadPoolExecutor(2) as pool:
        expected = list(pool.map(
            lambda item: cli_compare(store_path, groups[1]["runs"], groups[item[0]]["runs"],
                                     item[1]), wanted))  # fmt: skip
    for (index, key), cli in zip(wanted, expected, strict=True):
        [found] = [dict(c) for c in data["comparisons"][key] if c["group"] == index]
        assert found.pop("group") == index and found.pop("baseline") == 1
        assert found == cli
    assert expected[0]["distinguishable"] is True and expected[1]["p_value"] == "NaN"

    star = get(server, "/api/compare", runs=ALL, group_by="*", metrics="valid/acc").json()
    assert [g["runs"] for g in star["groups"]] == [g["runs"] for g in groups]
    best = get(server, "/api/compare", runs="1,2,3", group_by="*", metrics="train/loss",
               value="best").json()  # fmt: skip
    with expbook.open_store(str(store_path)) as store:
        minima = [store.run(str(n)).metrics["train/loss"].min for n in (1, 2, 3)]
    assert best["groups"][0]["metrics"]["train/loss"]["values"] == minima


def test_api_series_bands_equal_the_statistics_module(server: str, store_path: Path) -> None:
    answer = get(server, "/api/compare/series", runs=ALL, group_by="params.model.hidden",
                 key="valid/acc")  # fmt: skip
    assert answer.status_code == 200, answer.text
    data = answer.json()
    [first] = [s for s in data["series"] if s["group"] == 0]
    assert first["steps"] == list(range(STEPS)) and set(first["n"]) == {3}
    for step in (0, 17, STEPS - 1):
        values = [acc(64, seed, step) for seed in SEEDS]
        found = estimate(values)
        assert first["mean"][step] == pytest.approx(found.mean)
        assert first["std"][step] == pytest.approx(found.std)
        assert [first["low"][step], first["high"][step]] == pytest.approx([found.low, found.high])
        assert first["min"][step] == pytest.approx(min(values))
        assert first["max"][step] == pytest.approx(max(values))
    [alone] = [s for s in data["series"] if s["group"] == 3]
    assert set(alone["n"]) == {1} and set(alone["low"]) == {None} and set(alone["std"]) == {None}
    coarse = get(server, "/api/compare/series", runs="1,2,3", group_by="*", key="valid/acc",
                 points=10).json()["series"][0]  # fmt: skip
    assert len(coarse["steps"]) == 10 and coarse["steps"][0] == 0


def test_api_errors_name_the_bad_input(server: str) -> None:
    cases = [
        ({"runs": "1,2", "group_by": "params.nope"}, 400, "'nope'"),
        ({"runs": "1,2", "group_by": "metrics.valid/acc"}, 400, "not a param"),
        ({"runs": "1,2", "metrics": "valid/acx"}, 400, "did you mean 'valid/acc'"),
        ({"runs": "1,2", "baseline": 5}, 400, "baseline 5"),
        ({"runs": "1", "group": "2,3"}, 400, "either group"),
        ({"group": " , "}, 400, "names no run"),
        ({}, 400, "runs=1,2,3"),
        ({"runs": "1,999"}, 404, "'999'"),
    ]
    for params, status, text in cases:
        answer = get(server, "/api/compare", **params)
        detail = answer.json()["detail"]
        assert (answer.status_code, "\n" in detail) == (status, False), (params, detail)
        assert text in detail, (params, detail)
    no_key = get(server, "/api/compare/series", runs="1,2")
    assert no_key.status_code == 422 and "key" in no_key.json()["detail"]


# --- the compare page -------------------------------------------------------------------------


def test_grouped_charts_and_table_show_the_api_numbers(ui: UiPage, server: str) -> None:
    page = ui.open(GROUPED)
    series = get(server, "/api/compare/series", runs=ALL, group_by="params.model.hidden",
                 key="valid/acc").json()["series"]  # fmt: skip
    traces = page.evaluate(CHART_OF, "valid/acc")
    means = [t for t in traces if t["meta"]["role"] == "mean"]
    bands = [t for t in traces if t["meta"]["role"] == "band"]
    assert [t["name"] for t in means] == [
        "model.hidden=64 (n=3)", "model.hidden=128 (n=3)", "model.hidden=256 (n=3)",
        "model.hidden=512 (n=1, noise unknown)",
    ]  # fmt: skip
    assert [b["meta"]["group"] for b in bands] == [0, 1, 2]  # n = 1: no band
    legend = page.eval_on_selector_all("#group-legend .legend-item", TEXTS)
    assert [text.strip() for text in legend] == [t["name"] for t in means]
    for band in bands:
        api = next(s for s in series if s["group"] == band["meta"]["group"])
        upper, lower = band["y"][:STEPS], band["y"][STEPS:][::-1]
        assert band["fill"] == "toself" and band["x"][:STEPS] == api["steps"]
        assert upper == pytest.approx(api["high"]) and lower == pytest.approx(api["low"])
        mean = next(t for t in means if t["meta"]["group"] == band["meta"]["group"])
        assert mean["y"] == pytest.approx(api["mean"]) and mean["color"] == band["color"]

    compared = get(server, "/api/compare", runs=ALL, group_by="params.model.hidden").json()
    rows = page.eval_on_selector_all(
        "#groups-table tbody tr",
        "rows => rows.map(r => [...r.querySelectorAll('th, td')].map(c => c.innerText.trim()))",
    )
    assert rows[0][0] == "model.hidden=64" and rows[0][5] == "baseline"
    assert "noise unknown" in rows[3][0]
    for row, group in zip(rows, compared["groups"], strict=True):
        stats = group["metrics"]["valid/acc"]
        assert row[1] == str(group["n"])
        if group["n"] > 1:
            shown = f"{js_number(stats['mean'], 4)} ± {js_number(stats['std'], 4)}"
            ci = f"[{js_number(stats['ci'][0], 4)}, {js_number(stats['ci'][1], 4)}]"
            assert (row[3], row[4]) == (shown, ci)
    for row, found in zip(rows[1:], compared["comparisons"]["valid/acc"], strict=True):
        if found["p_value"] == "NaN":
            assert row[7] == "—" and row[8] == found["verdict"]
        else:
            assert row[7] == js_number(found["p_value"], 3) and row[8] == found["verdict"]

    page.select_option("#band", "minmax")  # min-max bands
    page.wait_for_function(READY)
    href = page.evaluate("() => location.href")
    assert "band=minmax" in href and "group_by=params.model.hidden" in href
    bands = [t for t in page.evaluate(CHART_OF, "valid/acc") if t["meta"]["role"] == "band"]
    assert [b["meta"]["band"] for b in bands] == ["minmax"] * 3
    api = next(s for s in series if s["group"] == 2)
    assert bands[2]["y"][:STEPS] == pytest.approx(api["max"])
    assert bands[2]["y"][STEPS:][::-1] == pytest.approx(api["min"])

    page.select_option("#base-group", "2")  # hidden=256 as the baseline
    page.wait_for_function(READY)
    again = get(server, "/api/compare", runs=ALL, group_by="params.model.hidden",
                baseline=2).json()["comparisons"]["valid/acc"]  # fmt: skip
    p_values = page.eval_on_selector_all("#groups-table td.p-value", TEXTS)
    assert p_values == [js_number(c["p_value"], 3) if c["b"]["n"] > 1 else "—" for c in again]
    assert page.inner_text("#groups-table tr.baseline-row th").startswith("model.hidden=256")
    ui.screenshot("compare-grouped")
    ui.assert_no_errors()


def test_colour_by_param_and_metrics_deltas(ui: UiPage, store_path: Path) -> None:
    runs = [1, 2, 4, 5, 10]
    page = ui.open(f"/compare?runs={','.join(map(str, runs))}")
    assert page.locator("#groups-card").is_hidden()
    page.select_option("#color-by", "params.model.hidden")
    page.wait_for_function(READY)
    assert "color=params.model.hidden" in page.evaluate("() => location.href")
    colours = {t["meta"]["run"]: t["color"] for t in page.evaluate(CHART_OF, "valid/acc")}
    assert colours[1] == colours[2] and colours[4] == colours[5]  # equal values, equal colours
    assert len({colours[1], colours[4], colours[10]}) == 3
    chips = page.eval_on_selector_all(
        ".run-chip",
        "chips => chips.map(c => [Number(c.dataset.number),"
        " c.querySelector('.swatch').style.background])",
    )
    assert dict(chips)[1] == dict(chips)[2] != dict(chips)[4]

    page.select_option("#baseline-run", "4")
    page.wait_for_function(READY)
    with expbook.open_store(str(store_path)) as store:
        last = {n: store.run(str(n)).metrics["valid/acc"].value for n in runs}
    cells = page.eval_on_selector_all(
        '#metrics-table tr[data-key="valid/acc"] td',
        "cells => cells.map(c => [Number(c.dataset.run), c.className,"
        " c.querySelector('.delta').innerText])",
    )
    by_run = {number: (cls, text) for number, cls, text in cells}
    assert by_run[4][1] == "baseline" and "baseline-cell" in by_run[4][0]
    best = max(runs, key=lambda n: last[n])
    assert [n for n, (cls, _) in by_run.items() if "best-cell" in cls] == [best]
    diff = last[1] - last[4]
    sign = "+" if diff > 0 else "\N{MINUS SIGN}"
    percent = f"{sign}{abs(100 * diff / last[4]):.1f} %"
    assert by_run[1][1] == f"{sign}{js_number(abs(diff), 4)} ({percent})"
    page.select_option("#value", "min")  # the minima: train/loss's best is the lowest min
    page.wait_for_function(READY)
    with expbook.open_store(str(store_path)) as store:
        minima = {n: store.run(str(n)).metrics["train/loss"].min for n in runs}
    best_loss = page.get_attribute(
        '#metrics-table tr[data-key="train/loss"] td.best-cell', "data-run"
    )
    assert int(best_loss) == min(runs, key=lambda n: minima[n])
    page.check("#all-values")  # last, min, max and best: four rows a metric
    page.wait_for_function(READY)
    assert "values=all" in page.evaluate("() => location.href")
    kinds = page.eval_on_selector_all(
        '#metrics-table tr[data-key="valid/acc"]', "rows => rows.map(r => r.dataset.kind)"
    )
    assert kinds == ["last", "min", "max", "best"]
    maxima = page.eval_on_selector_all(
        '#metrics-table tr[data-key="valid/acc"][data-kind="best"] td',
        "cells => cells.map(c => Number(c.dataset.value))",
    )
    with expbook.open_store(str(store_path)) as store:
        assert maxima == [store.run(str(n)).metrics["valid/acc"].max for n in runs]
    header = page.evaluate(
        """() => { const th = document.querySelector('#metrics-table tbody th');
        const card = document.querySelector('#metrics-card').getBoundingClientRect();
        return [getComputedStyle(th).position, card.width, document.body.clientWidth]; }"""
    )
    assert header[0] == "sticky" and header[1] > 0.9 * header[2]  # full width, sticky names
    ui.screenshot("compare-colours")
    ui.assert_no_errors()


def test_a_slow_older_answer_never_draws_over_a_newer_choice(ui: UiPage, server: str) -> None:
    """Grouped by model.hidden, then back to each run before the groups' series came: when they
    come, they are dropped (the page shows the runs, not the groups)."""
    page = ui.open(f"/compare?runs={ALL}")
    held: list[Any] = []

    def slow(url: str) -> bool:
        return "/api/compare/series?" in url and "group_by=params.model.hidden" in url

    page.route(slow, lambda route: route.continue_() if held else held.append(route))
    page.select_option("#group-by", label="model.hidden")
    while not held:
        page.wait_for_timeout(20)
    assert "group_by=params.model.hidden" in page.evaluate("() => location.href")
    page.select_option("#group-by", label="none (each run)")
    page.wait_for_function(READY)
    with page.expect_response(lambda response: slow(response.url)):
        held[0].continue_()
    page.unroute(slow)
    page.wait_for_timeout(300)  # the old answer is in: it must draw nothing
    assert page.locator("#groups-card").is_hidden() and page.locator("#group-legend").is_hidden()
    traces = page.evaluate(CHART_OF, "valid/acc")
    assert sorted(t["meta"]["run"] for t in traces) == list(range(1, 11))  # the runs' lines
    assert page.locator("#main .alert").count() == 0

    # the baseline group from the address goes in the first request; one it lacks: group 0
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/compare?" in r.url else None)
    page = ui.open(GROUPED + "&base_group=2")
    assert len(asked) == 1 and "baseline=2" in asked[0]
    assert page.inner_text("#groups-table tr.baseline-row th").startswith("model.hidden=256")
    assert page.input_value("#base-group") == "2"
    asked.clear()
    page = ui.open(GROUPED + "&base_group=9")
    assert len(asked) == 2 and "baseline=9" in asked[0] and "baseline" not in asked[1]
    assert page.inner_text("#groups-table tr.baseline-row th").startswith("model.hidden=64")
    assert page.locator("#main .alert").count() == 0
    ui.screenshot("compare-baseline-fallback")
    ui.assert_no_errors("status of 400")


def test_several_group_by_in_the_address_are_honoured_and_shown(ui: UiPage, server: str) -> None:
    page = ui.open(f"/compare?runs={ALL}&group_by=params.model.hidden&group_by=params.lr")
    answer = get(server, "/api/compare", runs=ALL,
                 group_by=["params.model.hidden", "params.lr"]).json()  # fmt: skip
    shown = page.eval_on_selector_all("#groups-table tbody tr th", TEXTS)
    assert len(shown) == len(answer["groups"]) == 4
    labels = [g["label"] for g in answer["groups"]]
    assert [t.split("noise unknown")[0].strip() for t in shown] == labels
    selected = page.eval_on_selector("#group-by", "s => s.selectedOptions[0].textContent")
    assert selected == "model.hidden, lr"
    assert "by model.hidden, lr" in page.inner_text("#groups-count")
    assert "groups by model.hidden, lr" in page.inner_text("#group-note")
    level = f"{round(answer['confidence'] * 100)} % CI"
    assert level in page.inner_text("#groups-table thead")
    assert page.eval_on_selector("#band option[value=ci]", "o => o.textContent") == level
    href = page.evaluate("() => location.href")
    assert "group_by=params.model.hidden&group_by=params.lr" in href
    ui.assert_no_errors()


# --- the sweep page ---------------------------------------------------------------------------


def test_sweep_page_groups_repeated_configurations(ui: UiPage, filled: tuple[Path, Made]) -> None:
    made = filled[1]
    page = ui.open("/sweeps/rep")
    page.wait_for_selector("#configs table")
    rows = page.eval_on_selector_all(
        "#configs tbody tr",
        "rows => rows.map(r => [Number(r.dataset.config), r.querySelector('td').innerText,"
        " r.querySelector('td.mean').innerText, r.className])",
    )
    finished = [0, 2, 3, 5, 7, 8]  # the configurations whose trials finished
    assert [config for config, *_ in rows] == finished
    for config, n, mean, cls in rows:
        values = [made.values[config * REPEATS + r] for r in range(REPEATS)]
        found = estimate(values)  # type: ignore[arg-type]
        assert n == str(REPEATS)
        assert mean == f"{js_number(found.mean, 4)} ± {js_number(found.std, 4)}"
        assert ("best" in cls) == (config == 7)  # lr = 0.002, layers = 2
    page.select_option("#curves-mode", "ci")
    page.wait_for_function("() => document.body.dataset.curves === 'ci'")
    traces = page.evaluate(
        "() => document.querySelector('#curves').data.map(t => [t.meta.role, t.name, t.y.length])"
    )
    assert [role for role, *_ in traces].count("band") == len(finished)
    names = [name for role, name, _ in traces if role == "mean"]
    assert names[0] == f"layers=2 lr=0.03 (n={REPEATS})"
    ui.screenshot("sweep-configurations")
    ui.assert_no_errors()


def test_api_marks_noise_unknown_per_metric(server: str, filled: tuple[Path, Made]) -> None:
    """A group of two runs where only one has valid/acc (the other is a sweep trial, which
    logs valid/loss only): noise is unknown for valid/acc (n = 1) though the group has n = 2."""
    trial = filled[1].runs[0]
    answer = get(server, "/api/compare", group=["1,2,3", f"4,{trial}"], metrics="valid/acc")
    assert answer.status_code == 200, answer.text
    first, mixed = answer.json()["groups"]
    assert (mixed["n"], mixed["noise_unknown"]) == (2, False)  # two runs...
    acc_of = mixed["metrics"]["valid/acc"]
    assert (acc_of["n"], acc_of["noise_unknown"], acc_of["ci"]) == (1, True, None)  # ...one value
    assert acc_of["runs"] == [4]
    repeated = first["metrics"]["valid/acc"]
    assert (repeated["n"], repeated["noise_unknown"]) == (3, False)
