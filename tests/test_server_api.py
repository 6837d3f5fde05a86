"""The JSON API of ``expbook ui``, in-process (httpx ASGI client), on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import expbook
from expbook.server import create_app
from expbook.store import Store
from tests.helpers import EXPBOOK

LOCAL = "http://127.0.0.1:5005"  # a host name the server answers to (testserver is not one)


@pytest.fixture
def client(store: Store) -> Iterator[httpx.Client]:
    from fastapi.testclient import TestClient

    with TestClient(create_app(store), base_url=LOCAL) as test_client:
        yield test_client


def grid(tracker: expbook.Tracker, steps: int = 5) -> None:
    """Four finished runs of a 2 x 2 grid in one experiment, a failed one outside it."""
    for number, (hidden, lr) in enumerate([(16, 0.01), (16, 0.1), (64, 0.01), (64, 0.1)]):
        with tracker.start_run(
            name=f"h{hidden}-lr{lr}", experiment="grid", tags=["grid"],
            params={"model": {"hidden": hidden}, "lr": lr, "seed": 1},
        ) as run:  # fmt: skip
            for step in range(steps):
                loss = 1 / (step + 1) + number
                run.log({"train/loss": loss, "valid/loss": loss + 0.1, "valid/acc": number / 10},
                        step=step)  # fmt: skip
    with pytest.raises(RuntimeError), tracker.start_run(name="broken", params={"lr": 1.0}):
        raise RuntimeError("diverged")


def test_runs_page_has_varying_params_and_common_metrics(tracker, client) -> None:
    grid(tracker)
    page = client.get("/api/runs").json()
    assert page["total"] == 5
    assert [row["number"] for row in page["runs"]] == [5, 4, 3, 2, 1]
    assert page["params"] == ["lr", "model.hidden", "seed"]  # #5 has no seed: it varies too
    grid_only = client.get("/api/runs", params={"experiment": "grid"}).json()
    assert grid_only["params"] == ["lr", "model.hidden"] and grid_only["total"] == 4
    assert page["metrics"] == ["train/loss", "valid/acc", "valid/loss"]
    row = page["runs"][-1]
    assert row["name"] == "h16-lr0.01" and row["status"] == "finished"
    assert row["params"] == {"lr": 0.01, "model.hidden": 16, "seed": 1}
    assert row["metrics"]["valid/acc"] == {"value": 0.0, "unit": None}
    assert page["runs"][0]["status"] == "failed"


def test_filter_sort_paging_and_chosen_columns(tracker, client) -> None:
    grid(tracker)
    page = client.get(
        "/api/runs",
        params={"where": "params.lr = 0.1 and experiment = 'grid'", "sort": "-metrics.valid/acc",
                "metrics": "valid/acc", "params": "model.hidden"},
    ).json()  # fmt: skip
    assert [row["number"] for row in page["runs"]] == [4, 2]
    assert page["metrics"] == ["valid/acc"] and page["params"] == ["model.hidden"]
    second = client.get("/api/runs", params={"limit": 2, "offset": 2, "sort": "number"}).json()
    assert second["total"] == 5 and [row["number"] for row in second["runs"]] == [3, 4]
    failed = client.get("/api/runs", params={"status": "failed"}).json()
    assert [row["name"] for row in failed["runs"]] == ["broken"]


def test_group_by_experiment_orders_runs_by_experiment(tracker, client) -> None:
    grid(tracker)
    rows = client.get("/api/runs", params={"group": "experiment"}).json()["runs"]
    experiments = [row["experiment"] for row in rows]
    assert experiments == sorted(experiments, key=lambda e: (e is None, e)) or experiments == (
        sorted(experiments, key=lambda e: (e is not None, e or ""))
    )
    assert [row["number"] for row in rows if row["experiment"] == "grid"] == [4, 3, 2, 1]


@pytest.mark.parametrize(
    ("where", "position"),
    [("params.lr <", 11), ("metrics.valid/acc >> 1", 19), ("name = 'unclosed", 7)],
)
def test_a_malformed_filter_is_a_400_with_its_position(client, where, position) -> None:
    answer = client.get("/api/runs", params={"where": where})
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert detail["text"] == where and detail["position"] == position
    assert f"column {position + 1}" in detail["message"]


def test_bad_parameters_are_422_naming_them(client) -> None:
    answer = client.get("/api/runs", params={"limit": 0})
    assert answer.status_code == 422 and "limit" in answer.json()["detail"]
    answer = client.get("/api/runs", params={"status": "sleeping"})
    assert answer.status_code == 400 and "sleeping" in answer.json()["detail"]


def test_one_run_in_full(tracker, client, monkeypatch) -> None:
    monkeypatch.delenv("EXPBOOK_SYSTEM_METRICS")  # as outside the tests: sampled by default
    grid(tracker)
    run = client.get("/api/runs/1").json()
    assert run["name"] == "h16-lr0.01" and run["params"]["model.hidden"] == 16
    logged = [key for key in run["series_keys"] if not key.startswith("system/")]
    assert logged == ["train/loss", "valid/acc", "valid/loss"]
    assert "system/cpu_percent" in run["series_keys"]  # sampled by default (docs/system.md)
    assert run["system_charts"][0]["title"] == "CPU (% of a core)"
    assert run["charts"] == [
        {"title": "acc", "keys": ["valid/acc"]},
        {"title": "loss", "keys": ["train/loss", "valid/loss"]},
    ]
    summary = run["metrics"]["train/loss"]
    assert summary["min"] == pytest.approx(0.2) and summary["min_step"] == 4
    assert summary["max"] == 1.0 and summary["max_step"] == 0 and summary["count"] == 5
    assert client.get("/api/runs/h64-lr0.1").json()["number"] == 4  # by name
    assert client.get(f"/api/runs/{run['id'][:8]}").json()["number"] == 1  # by UUID prefix
    failed = client.get("/api/runs/5").json()
    assert failed["status"] == "failed" and "diverged" in failed["error"]


def test_unknown_things_are_404s_naming_them(tracker, client) -> None:
    grid(tracker)
    answer = client.get("/api/runs/99")
    assert answer.status_code == 404 and "'99'" in answer.json()["detail"]
    answer = client.get("/api/experiments/nope")
    assert answer.status_code == 404 and "nope" in answer.json()["detail"]
    answer = client.get("/api/runs/1/attachments/missing.txt")
    assert answer.status_code == 404 and "missing.txt" in answer.json()["detail"]
    answer = client.put("/api/runs/1/notes/12345", json={"text": "x"})
    assert answer.status_code == 404 and "12345" in answer.json()["detail"]


def test_series_are_downsampled_and_keep_their_extremes(tracker, client) -> None:
    with tracker.start_run(name="long") as run:
        for step in range(20_000):
            value = 1.0 if step != 12_345 else 50.0  # a spike downsampling must keep
            run.log({"loss": value, "acc": step / 20_000}, step=step)
    series = client.get("/api/series", params={"run": "1", "key": ["loss", "acc"], "points": 300})
    loss, acc = series.json()["series"]
    assert loss["key"] == "loss" and loss["total"] == 20_000 and loss["reduced"]
    assert len(loss["steps"]) <= 300 and max(loss["values"]) == 50.0
    assert 12_345 in loss["steps"] and loss["steps"][0] == 0 and loss["steps"][-1] == 19_999
    assert loss["steps"] == sorted(loss["steps"])
    zoomed = client.get(
        "/api/series",
        params={"run": "1", "key": "acc", "step_min": 1000, "step_max": 1099, "points": 300},
    ).json()["series"][0]  # fmt: skip
    assert zoomed["total"] == 100 and not zoomed["reduced"]
    assert zoomed["steps"] == list(range(1000, 1100))
    assert zoomed["values"] == [step / 20_000 for step in range(1000, 1100)]
    assert acc["total"] == 20_000


def test_series_of_several_runs_skip_missing_keys(tracker, client) -> None:
    grid(tracker)
    found = client.get("/api/series", params={"run": ["1", "5"], "key": ["valid/acc"]}).json()
    assert [(s["run"], s["key"]) for s in found["series"]] == [(1, "valid/acc")]
    too_many = client.get("/api/series", params={"run": ["1"] * 21, "key": ["k"] * 20})
    assert too_many.status_code == 400 and "400" in too_many.json()["detail"]


def test_nan_and_infinity_arrive_as_strings(tracker, client) -> None:
    with tracker.start_run(name="wild") as run:
        run.log({"loss": math.nan}, step=0)
        run.log({"loss": math.inf}, step=1)
        run.log({"loss": -math.inf}, step=2)
        run.log({"loss": 0.5}, step=3)
        run.summary["final"] = math.nan
    series = client.get("/api/series", params={"run": "1", "key": "loss"}).json()["series"][0]
    assert series["values"] == ["NaN", "Infinity", "-Infinity", 0.5]
    run = client.get("/api/runs/1").json()
    assert run["metrics"]["final"]["value"] == "NaN"
    assert run["metrics"]["loss"]["max"] == "Infinity" or run["metrics"]["loss"]["max"] == 0.5
    row = client.get("/api/runs", params={"metrics": "final,loss"}).json()["runs"][0]
    assert row["metrics"]["final"]["value"] == "NaN" and row["metrics"]["loss"]["value"] == 0.5


def test_notes_are_added_edited_deleted_and_rendered_safely(tracker, client, store) -> None:
    grid(tracker)
    added = client.post("/api/runs/2/notes", json={"text": "GPU util **20%** <script>x</script>"})
    assert added.status_code == 200
    note = added.json()["notes"][-1]
    assert note["html"] == "<p>GPU util <strong>20%</strong> &lt;script&gt;x&lt;/script&gt;</p>\n"
    edited = client.put(f"/api/runs/2/notes/{note['id']}", json={"text": "util 25%"})
    assert [n["text"] for n in edited.json()["notes"]] == ["util 25%"]
    assert [n.text for n in store.run(2).notes] == ["util 25%"]
    client.delete(f"/api/runs/2/notes/{note['id']}")
    assert store.run(2).notes == ()
    assert client.post("/api/runs/2/notes", json={"text": ""}).status_code == 422
    # another run's note cannot be edited through this run
    other = client.post("/api/runs/3/notes", json={"text": "mine"}).json()["notes"][0]["id"]
    assert client.put(f"/api/runs/2/notes/{other}", json={"text": "x"}).status_code == 404
    assert [n.text for n in store.run(3).notes] == ["mine"]


def test_tags_names_and_experiments_of_runs_change(tracker, client, store) -> None:
    grid(tracker)
    client.post("/api/runs/1/tags", json={"tags": ["baseline", "keep"]})
    client.delete("/api/runs/1/tags/grid")
    assert set(store.run(1).tags) == {"baseline", "keep"}
    renamed = client.patch("/api/runs/1", json={"name": "baseline-h16"}).json()
    assert renamed["name"] == "baseline-h16" and store.run(1).name == "baseline-h16"
    moved = client.patch("/api/runs/1", json={"experiment": "other question"}).json()
    assert moved["experiment"] == "other question"
    assert client.patch("/api/runs/1", json={"color": "red"}).status_code == 422
    bad_tag = client.post("/api/runs/1/tags", json={"tags": [" padded "]})
    assert bad_tag.status_code == 400 and "' padded '" in bad_tag.json()["detail"]


def test_experiment_with_its_best_run_and_edits(tracker, client, store) -> None:
    grid(tracker)
    experiment = client.get("/api/experiments/grid").json()
    assert experiment["run_count"] == 4 and len(experiment["runs"]) == 4
    assert experiment["metric"] == "valid/acc" and experiment["mode"] == "max"
    assert experiment["best"] == 4
    by_loss = client.get("/api/experiments/grid", params={"metric": "valid/loss"}).json()
    assert by_loss["mode"] == "min" and by_loss["best"] == 1
    changed = client.patch(
        "/api/experiments/grid",
        json={"hypothesis": "a bigger **hidden** size helps", "conclusion": "it does"},
    ).json()
    assert changed["html"]["hypothesis"] == "<p>a bigger <strong>hidden</strong> size helps</p>\n"
    stored = store.get_experiment("grid")
    assert stored.hypothesis == "a bigger **hidden** size helps" and stored.conclusion == "it does"
    names = [e["name"] for e in client.get("/api/experiments").json()]
    assert names == ["grid"]
    renamed = client.patch("/api/experiments/grid", json={"name": "grid search"}).json()
    assert renamed["name"] == "grid search" and store.run(1).experiment == "grid search"


def test_output_tail_and_follow_cursor(store_url, tmp_path) -> None:
    from fastapi.testclient import TestClient

    script = "for i in $(seq 1 500); do echo line $i; done"
    done = subprocess.run(
        [EXPBOOK, "run", "-q", "--", "sh", "-c", script],
        env={**os.environ, "EXPBOOK_STORE": store_url}, cwd=tmp_path, timeout=60,
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.returncode == 0
    with (
        expbook.open_store(store_url) as opened,
        TestClient(create_app(opened), base_url=LOCAL) as client,
    ):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # a program of milliseconds ends before its recorder is ready: it records after
            tail = client.get("/api/runs/1/output", params={"tail": 50}).json()
            if tail.get("lines") and tail["lines"][-1] == "line 500":
                break
            time.sleep(0.1)
        assert tail["lines"] == [f"line {i}" for i in range(451, 501)]
        assert tail["truncated"]
        later = client.get("/api/runs/1/output", params={"after": tail["cursor"]}).json()
        assert later["lines"] == [] and later["cursor"] == tail["cursor"]


def test_read_only_server_refuses_edits(tracker, store) -> None:
    from fastapi.testclient import TestClient

    grid(tracker)
    with TestClient(create_app(store, read_only=True), base_url=LOCAL) as client:
        assert client.get("/api/info").json()["read_only"] is True
        answer = client.post("/api/runs/1/notes", json={"text": "x"})
        assert answer.status_code == 403 and "read-only" in answer.json()["detail"]
        assert client.get("/api/runs/1").status_code == 200
    assert store.run(1).notes == ()


def test_openapi_schema_documents_every_endpoint(client) -> None:
    schema = client.get("/api/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/api/runs", "/api/runs/{ref}", "/api/series", "/api/runs/{ref}/notes",
            "/api/runs/{ref}/notes/{note_id}", "/api/runs/{ref}/tags", "/api/runs/{ref}/output",
            "/api/experiments", "/api/experiments/{name}", "/api/info"} <= paths  # fmt: skip
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            assert operation.get("summary"), f"{method.upper()} {path} has no summary"


def test_pages_and_scripts_come_from_this_server(tracker, client) -> None:
    grid(tracker)
    for path in ("/", "/runs/1", "/compare?runs=1,2", "/experiments", "/experiments/grid"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources and all(source.startswith("/") for source in sources), sources
        for source in sources:
            assert client.get(source).status_code == 200, source
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    for source in re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", docs.text):
        assert source.startswith("/"), f"/api/docs loads {source} from elsewhere"
        assert client.get(source).status_code == 200, source
    plotly = client.get("/vendor/plotly.min.js")
    assert plotly.status_code == 200 and b"plotly" in plotly.content[:2000].lower()


# --- the real console script ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_expbook_ui_serves_until_interrupted(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    expbook.open_store(store).close()
    port = free_port()
    server = subprocess.Popen(
        [EXPBOOK, "ui", "--store", str(store), "--port", str(port)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = server.stderr.readline()
        assert f"http://127.0.0.1:{port}/" in line, line
        assert httpx.get(f"http://127.0.0.1:{port}/api/info").json()["runs"] == 0
        # a second server on the same port: one line, non-zero exit
        second = subprocess.run(
            [EXPBOOK, "ui", "--store", str(store), "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode == 1
        in_use = f"error: port {port} on 127.0.0.1 is in use; choose another with --port\n"
        assert second.stderr == in_use
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=20) == 0
        assert server.stderr.read() == "expbook UI stopped\n"


def test_expbook_ui_without_a_store_is_one_line(tmp_path: Path) -> None:
    answer = subprocess.run(
        [EXPBOOK, "ui", "--store", str(tmp_path / "none.db")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert answer.returncode == 1
    assert answer.stderr.startswith("error: no store at") and answer.stderr.count("\n") == 1
