"""Sweeps in the web UI: the JSON API (``/api/sweeps``, ``/api/sweeps/{ref}``) on each backend,
and the sweeps list and sweep page in a real browser (Chromium) against a real ``expbook ui``:
the trials table, best so far, parallel coordinates with log axes, importance and the trials'
curves with the pruned ones marked where they stopped."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import expbook
from expbook.model import TrialState
from tests.browser import chromium, ui_page, ui_server
from tests.sweepdata import EXPERIMENT, STEPS, TRIALS, best_so_far, loss, make_sweep

BASE = "http://127.0.0.1:5005"


@pytest.fixture
def client_on(store_url: str) -> Iterator[Any]:
    """A test client of the app on a store holding the sweep of tests/sweepdata.py."""
    from fastapi.testclient import TestClient

    from expbook.server import create_app

    made = make_sweep(store_url)
    with (
        expbook.open_store(store_url) as store,
        TestClient(create_app(store), base_url=BASE) as client,
    ):
        client.made, client.location = made, store_url  # type: ignore[attr-defined]
        yield client


def test_api_lists_the_sweeps(client_on: Any) -> None:
    made = client_on.made
    answer = client_on.get("/api/sweeps")
    assert answer.status_code == 200
    [row] = answer.json()
    assert row["name"] == "mlp-lr" and row["id"] == made.sweep_id
    assert (row["state"], row["experiment"], row["method"]) == ("finished", EXPERIMENT, "random")
    assert row["metric"] == {"name": "valid/loss", "goal": "minimize"}
    assert row["trial_count"] == len(TRIALS)
    assert row["counts"] == {"finished": 6, "pruned": 2, "failed": 1}
    assert row["best"] == {"number": 7, "run_number": made.runs[7], "value": made.values[7]}


def test_api_gives_a_sweep_in_full(client_on: Any) -> None:
    made = client_on.made
    by_name = client_on.get("/api/sweeps/mlp-lr").json()
    by_prefix = client_on.get(f"/api/sweeps/{made.sweep_id[:10]}").json()
    assert by_name == by_prefix
    data = by_name
    assert data["spec"]["parameters"]["lr"]["distribution"] == "log_uniform_values"
    params = {p["name"]: p for p in data["parameters"]}
    assert params["lr"]["log"] and (params["lr"]["low"], params["lr"]["high"]) == (1e-4, 0.1)
    assert params["layers"]["values"] == [2, 3] and params["dropout"]["kind"] == "constant"
    trials = data["trials"]
    assert [t["number"] for t in trials] == list(range(len(TRIALS)))
    for trial, (lr, layers, state, pruned) in zip(trials, TRIALS, strict=True):
        assert trial["state"] == state.value and trial["pruned_step"] == pruned
        assert trial["params"] == {"lr": lr, "layers": layers, "dropout": 0.1}
        assert trial["run_number"] == made.runs[trial["number"]]
        assert trial["value"] == made.values[trial["number"]]
        assert trial["duration"] is not None and trial["duration"] >= 0
    assert trials[6]["error"] == "exit status 1"
    assert data["best"]["number"] == 7 and data["best"]["params"]["lr"] == 0.002
    points = data["best_so_far"]
    ended = [0, 1, 2, 3, 5, 7, 8]  # with a value, in the order they ended
    assert [p["number"] for p in points] == ended
    assert [p["state"] for p in points] == [TRIALS[n][2].value for n in ended]
    assert [p["best"] for p in points] == pytest.approx(best_so_far(made.values, ended))
    assert [i["param"] for i in data["importance"]] == ["lr", "layers"]
    assert math.isclose(sum(i["importance"] for i in data["importance"]), 1.0)
    assert data["importance_note"].startswith("PED-ANOVA over 6 configurations")
    axes = {a["name"]: a for a in data["parallel"]["axes"]}
    assert list(axes) == ["lr", "layers", "valid/loss"]
    drawn = data["parallel"]["trials"]
    assert axes["lr"]["log"] and axes["lr"]["values"] == pytest.approx(
        [math.log10(TRIALS[n][0]) for n in drawn]
    )
    assert axes["layers"]["categorical"] and axes["layers"]["ticks"] == [[0, "2"], [1, "3"]]


def test_api_errors_name_the_sweep(client_on: Any) -> None:
    missing = client_on.get("/api/sweeps/nope")
    assert missing.status_code == 404 and "'nope'" in missing.json()["detail"]
    spec = {"method": "random", "parameters": {"x": {"values": [1, 2]}}}
    with expbook.open_store(client_on.location) as store:
        other = store.create_sweep("other", spec)
    common = next(i for i in range(32) if other.id[i] != client_on.made.sweep_id[i])
    if common:  # UUIDs made a moment apart share their time prefix
        ambiguous = client_on.get(f"/api/sweeps/{other.id[:common]}")
        assert ambiguous.status_code == 409
    empty = client_on.get("/api/sweeps/other").json()
    assert empty["trials"] == [] and empty["best"] is None and empty["metric"] is None
    assert empty["importance"] == [] and empty["parallel"]["axes"] == []


# --- the pages in Chromium --------------------------------------------------------------------

TRACES = """(selector) => document.querySelector(selector).data.map(t => ({
    type: t.type, name: t.name, x: t.x, y: t.y, meta: t.meta,
    dimensions: (t.dimensions || []).map(d => ({label: d.label, values: Array.from(d.values),
      tickvals: d.tickvals, ticktext: d.ticktext}))}))"""

REDRAWN = """() => {
    const data = (selector) => document.querySelector(selector).data || [];
    return data('#best-so-far').length === 2 && data('#best-so-far')[0].x.length === 2
      && data('#curves').length === 2 && data('#parallel').length === 1
      && data('#parallel')[0].dimensions[0].values.length === 2;
  }"""


@pytest.mark.slow
def test_the_sweep_pages_in_a_browser(tmp_path: Path) -> None:
    store = tmp_path / "expbook.db"
    made = make_sweep(store)
    live = _running_sweep(store)
    with ui_server(store) as base, chromium() as browser, ui_page(browser, base, tmp_path) as ui:
        page = ui.open("/sweeps")
        assert page.locator('nav a[data-nav="sweeps"].active').count() == 1
        rows = page.locator("#sweeps tbody tr")
        assert rows.count() == 2
        first = page.locator("#sweeps tbody tr", has_text="mlp-lr")
        assert "6 finished · 2 pruned · 1 failed" in first.inner_text()
        assert "(trial 7)" in first.inner_text()
        ui.screenshot("sweeps")

        with page.expect_navigation():
            first.locator("a", has_text="mlp-lr").click()
        page.wait_for_selector("body[data-ready]", state="attached")
        assert page.url == f"{base}/sweeps/mlp-lr"
        _check_sweep_page(page, made)
        ui.screenshot("sweep")

        page.locator("#trials th[data-sort=value0]").click()  # best value first
        assert page.locator("#trials tbody tr").first.get_attribute("data-trial") == "7"
        with page.expect_navigation():
            page.locator(f'#trials a[href="/runs/{made.runs[1]}"]').click()
        page.wait_for_selector("body[data-ready]", state="attached")
        assert page.locator(".badge-pruned").count() >= 1  # the trial's run page

        page = ui.open(f"/sweeps/{live}")
        assert page.locator("#trials tbody tr").count() == 1
        _add_trial(store, live)
        page.wait_for_function("document.querySelectorAll('#trials tbody tr').length === 2",
                               timeout=15_000)  # fmt: skip
        page.wait_for_function(REDRAWN, timeout=15_000)  # the charts too, not only the table
        curves = page.evaluate(TRACES, "#curves")
        assert sorted(t["meta"]["trial"] for t in curves) == [0, 1]
        [parallel] = page.evaluate(TRACES, "#parallel")
        assert [len(d["values"]) for d in parallel["dimensions"]] == [2, 2]
        ui.screenshot("sweep-running")
        ui.assert_no_errors()


def _check_sweep_page(page: Any, made: Any) -> None:
    assert page.inner_text("#sweep-name") == "mlp-lr"
    assert "best: trial 7" in page.inner_text("#sweep-best")
    rows = page.locator("#trials tbody tr")
    assert rows.count() == len(TRIALS)
    for number, (_, _, state, pruned) in enumerate(TRIALS):
        row = page.locator(f'#trials tbody tr[data-trial="{number}"]')
        assert row.locator(f".badge-{state.value}").count() == 1
        assert row.locator(f'a[href="/runs/{made.runs[number]}"]').count() == 1
        if pruned is not None:
            assert str(pruned) in row.locator("td").nth(7).inner_text()
    assert page.locator('#trials tr.best[data-trial="7"] .star').count() == 1

    (best,) = [t for t in page.evaluate(TRACES, "#best-so-far") if t["name"] == "best so far"]
    ended = [0, 1, 2, 3, 5, 7, 8]
    assert best["x"] == list(range(1, len(ended) + 1))
    assert best["y"] == pytest.approx(best_so_far(made.values, ended))

    [bars] = page.evaluate(TRACES, "#importance")
    assert bars["y"] == ["layers", "lr"]  # the most important at the top

    [parallel] = page.evaluate(TRACES, "#parallel")
    dims = {d["label"]: d for d in parallel["dimensions"]}
    assert list(dims) == ["lr (log)", "layers", "valid/loss"]
    drawn = [0, 1, 2, 3, 4, 5, 7, 8]
    assert dims["lr (log)"]["values"] == pytest.approx([math.log10(TRIALS[n][0]) for n in drawn])
    assert "0.001" in dims["lr (log)"]["ticktext"]  # the user's values, not exponents
    assert dims["layers"]["ticktext"] == ["2", "3"]

    curves = page.evaluate(TRACES, "#curves")
    lines = {t["meta"]["trial"]: t for t in curves if t["meta"] and "trial" in t["meta"]}
    assert sorted(lines) == drawn
    for number in drawn:
        pruned = TRIALS[number][3]
        steps = STEPS if pruned is None else pruned + 1
        assert lines[number]["x"] == list(range(steps))
    [ends] = [t for t in curves if t["meta"] and t["meta"].get("pruned")]
    assert ends["x"] == [3, 5]
    assert ends["y"] == pytest.approx([loss(*TRIALS[n][:2], TRIALS[n][3]) for n in (1, 4)])


def _running_sweep(store: Path) -> str:
    spec = {"method": "random", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}}}  # fmt: skip
    with expbook.open_store(str(store)) as opened:
        opened.create_sweep("live", spec)
    _add_trial(store, "live")
    return "live"


def _add_trial(store: Path, name: str) -> None:
    with expbook.open_store(str(store)) as opened:
        sweep = opened.get_sweep(name)
        number = len(opened.list_trials(sweep.id))
        x = 0.25 * (number + 1)
        with expbook.start_run(f"live-{number}", store=opened, params={"x": x},
                               kind="sweep-trial") as run:  # fmt: skip
            for step in range(5):
                run.log({"loss": x + 1 / (step + 1)}, step=step)
        trial = opened.add_trial(sweep.id, expected_version=sweep.version, params={"x": x},
                                 config_key=f"x={x}", worker="w", state=TrialState.FINISHED,
                                 run_id=run.id, values=[x + 0.2])  # fmt: skip
        assert trial is not None
