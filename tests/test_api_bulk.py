"""``POST /api/runs/bulk`` and ``GET /api/export/runs`` on a real SQLite store: each change is
read back with the Python API, bad requests change nothing, a delete does what ``expbook rm``
does (artifact files included), a ``--read-only`` ``expbook ui`` refuses, and the export is the
file ``expbook export`` writes for the same query (the Parquet file read back with pyarrow)."""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import expbook
from expbook.server import create_app
from expbook.store import Store
from tests.browser import ui_server
from tests.helpers import run_cli

HOST = {"host": "127.0.0.1:5005"}


def fill(store: Store, tmp_path: Path) -> None:
    """#1-#3 in experiment 'lr' (#3 failed), #4 in 'width', #5 in none; #1 and #2 hold an
    artifact with the same bytes, #1 one of its own."""
    (tmp_path / "shared.bin").write_bytes(b"shared")
    (tmp_path / "own.bin").write_bytes(b"own")
    tracker = expbook.Tracker(store)
    plan = [
        ("a", "lr", {"lr": 0.1, "seed": 1}, "finished"),
        ("b", "lr", {"lr": 0.01, "seed": 1}, "finished"),
        ("c", "lr", {"lr": 1.0, "seed": 2}, "failed"),
        ("d", "width", {"width": 64, "opt": "sgd"}, "finished"),
        ("e", None, {"lr": "auto"}, "finished"),
    ]
    for number, (name, experiment, params, status) in enumerate(plan, start=1):
        run = tracker.start_run(
            name=name, experiment=experiment, params=params, system_metrics=False, capture=False
        )
        for step in range(5):
            run.log(
                {"train/loss": 1 / (step + number), "valid/acc": 0.1 * number + step}, step=step
            )
        if number <= 2:
            run.log_artifact(tmp_path / "shared.bin")
        if number == 1:
            run.log_artifact(tmp_path / "own.bin")
        run.finish(status=status)


def snapshot(store: Store) -> list[tuple[Any, ...]]:
    return [(r.number, r.name, r.experiment, r.tags) for r in store.runs(sort="number")]


@contextmanager
def serving(folder: Path) -> Iterator[tuple[Store, Any, Path]]:
    from fastapi.testclient import TestClient

    path = folder / "runs.db"
    with expbook.open_store(path) as store:
        fill(store, folder)
        with TestClient(create_app(store), base_url="http://127.0.0.1:5005") as client:
            yield store, client, path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Store, Any, Path]]:
    """A store of its own, for a test that changes it."""
    with serving(tmp_path) as made:
        yield made


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Any, Path]]:
    """One store for the tests that change nothing (or must not)."""
    with serving(tmp_path_factory.mktemp("bulk")) as made:
        yield made


def bulk(client: Any, **body: Any) -> httpx.Response:
    return client.post("/api/runs/bulk", json=body, headers=HOST)


def test_tag_untag_and_move_change_exactly_the_runs_named(served: Any) -> None:
    store, client, _ = served
    answer = bulk(client, runs=[1, 4, "e"], action="tag", tags=["keep", "paper"])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"action": "tag", "changed": 3, "runs": [1, 4, 5]}
    assert [r.tags for r in store.runs(sort="number")] == [
        ("keep", "paper"), (), (), ("keep", "paper"), ("keep", "paper"),
    ]  # fmt: skip
    again = bulk(client, runs=[1, 2, 1], action="tag", tags=["keep"])
    assert again.json() == {"action": "tag", "changed": 1, "runs": [1, 2]}  # #1 had it
    assert store.run(2).tags == ("keep",)

    untag = bulk(client, runs=[1, 2, 3], action="untag", tags=["paper"])
    assert untag.json() == {"action": "untag", "changed": 1, "runs": [1, 2, 3]}
    assert [r.tags for r in store.runs(sort="number")][:3] == [("keep",), ("keep",), ()]

    move = bulk(client, runs=[4, 5], action="move", experiment="lr")
    assert move.json() == {"action": "move", "changed": 2, "runs": [4, 5]}
    assert [r.experiment for r in store.runs(sort="number")] == ["lr"] * 5
    # a new name makes the experiment, as `expbook experiment move --to` and PATCH do
    moved = bulk(client, runs=[1, 2], action="move", experiment="a new question")
    assert moved.json()["changed"] == 2
    assert store.get_experiment("a new question").run_count == 2
    detach = bulk(client, runs=[2, 3], action="move", experiment=None)
    assert detach.json() == {"action": "move", "changed": 2, "runs": [2, 3]}
    assert [r.experiment for r in store.runs(sort="number")] == [
        "a new question", None, None, "lr", "lr"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"runs": [1, 99], "action": "tag", "tags": ["x"]}, 404, "'99'"),
        ({"runs": [2, "nosuchrun"], "action": "delete"}, 404, "'nosuchrun'"),
        ({"runs": [1], "action": "archive"}, 400, "'archive'"),
        ({"runs": [1], "action": "tag", "tags": ["ok", " padded"]}, 400, "' padded'"),
        ({"runs": [1], "action": "tag", "tags": []}, 400, "tags"),
        ({"runs": [1], "action": "tag"}, 400, "tags"),
        ({"runs": [1], "action": "move"}, 400, "experiment"),
        ({"runs": [1], "action": "move", "experiment": "bad\nname"}, 400, "'bad\\nname'"),
        ({"runs": [1], "action": "move", "experiment": ""}, 400, "''"),
        ({"runs": [1], "action": "delete", "tags": ["x"]}, 400, "tags"),
        ({"runs": [1], "action": "untag", "tags": ["x"], "experiment": "lr"}, 400, "experiment"),
        ({"runs": [], "action": "delete"}, 422, "runs"),
        ({"runs": [0], "action": "delete"}, 422, "runs.0"),
    ],
)
def test_a_bad_request_names_the_value_and_changes_nothing(
    shared: Any, body: dict[str, Any], status: int, named: str
) -> None:
    store, client, _ = shared
    before = snapshot(store)
    answer = client.post("/api/runs/bulk", json=body, headers=HOST)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert named in detail and "\n" not in detail
    assert snapshot(store) == before


def test_delete_removes_runs_and_their_artifact_files_as_expbook_rm(served: Any) -> None:
    store, client, _ = served
    shared, own = (hashlib.sha256(data).hexdigest() for data in (b"shared", b"own"))
    blobs = store.blobs()
    assert blobs.exists(shared) and blobs.exists(own)
    answer = bulk(client, runs=[1, 3], action="delete")
    assert answer.json() == {"action": "delete", "changed": 2, "runs": [1, 3]}
    assert [r.number for r in store.runs(sort="number")] == [2, 4, 5]
    assert not blobs.exists(own) and blobs.exists(shared)  # #2 still holds the shared bytes
    assert bulk(client, runs=[2], action="delete").json()["changed"] == 1
    assert not blobs.exists(shared)
    assert bulk(client, runs=[2], action="delete").status_code == 404  # gone


def test_a_running_run_is_not_deleted(served: Any) -> None:
    store, client, _ = served
    live = expbook.Tracker(store).start_run(name="live", system_metrics=False, capture=False)
    try:
        answer = bulk(client, runs=[4, live.number], action="delete")
        assert answer.status_code == 409
        assert f"#{live.number} is still running" in answer.json()["detail"]
        assert [r.number for r in store.runs(sort="number")] == [1, 2, 3, 4, 5, live.number]
    finally:
        live.finish()


def test_a_read_only_expbook_ui_refuses_bulk_changes_but_exports(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with expbook.open_store(path) as store:
        fill(store, tmp_path)
        before = snapshot(store)
    with ui_server(path, read_only=True) as base:
        for body in ({"runs": [1], "action": "delete"},
                     {"runs": [1], "action": "tag", "tags": ["x"]}):  # fmt: skip
            answer = httpx.post(f"{base}/api/runs/bulk", json=body)
            assert answer.status_code == 403
            assert "read-only" in answer.json()["detail"]
        exported = httpx.get(f"{base}/api/export/runs", params={"sort": "number"})
        assert exported.status_code == 200
        assert [row["name"] for row in csv.DictReader(io.StringIO(exported.text))] == list("abcde")
    with expbook.open_store(path) as store:
        assert snapshot(store) == before


QUERIES = [
    {},
    {"sort": "-metrics.valid/acc", "experiment": ["lr", "width"]},
    {"where": "params.lr < 0.5", "status": ["finished"], "sort": "number"},
]


def cli_options(query: dict[str, Any]) -> list[str]:
    options = []
    for key, flag in (("where", "-w"), ("sort", "--sort")):
        if key in query:
            options += [flag, query[key]]
    options += [part for name in query.get("experiment", []) for part in ("-e", name)]
    options += [part for status in query.get("status", []) for part in ("-s", status)]
    return options


@pytest.mark.parametrize("query", QUERIES, ids=["all", "experiments-sorted", "filtered"])
def test_the_csv_export_is_what_expbook_export_writes(
    shared: Any, query: dict[str, Any], tmp_path: Path
) -> None:
    store, client, path = shared
    answer = client.get("/api/export/runs", params=query, headers=HOST)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="runs.csv"'
    out = tmp_path / "cli.csv"
    cli = run_cli("export", "-f", "csv", "-o", str(out), *cli_options(query), store=str(path))
    assert cli.returncode == 0, cli.stderr
    assert answer.content == out.read_bytes()
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    expected = store.runs(
        query.get("where"), sort=query.get("sort"), experiment=query.get("experiment"),
        status=query.get("status"),
    )  # fmt: skip
    assert [int(row["number"]) for row in rows] == [run.number for run in expected]
    assert len(rows) == len(expected) > 0


def test_the_csv_export_keeps_the_columns_asked_for(shared: Any) -> None:
    store, client, _ = shared
    query = {"sort": "number", "params": "seed,lr", "metrics": "valid/acc,train/loss",
             "value": "best"}  # fmt: skip
    answer = client.get("/api/export/runs", params=query, headers=HOST)
    header, *rows = list(csv.reader(io.StringIO(answer.text)))
    assert header[-4:] == ["params.seed", "params.lr", "max(metrics.valid/acc)",
                           "min(metrics.train/loss)"]  # fmt: skip
    assert header[:3] == ["number", "id", "name"]
    from expbook.report.stats import metric_value

    for row, run in zip(rows, store.runs(sort="number"), strict=True):
        assert float(row[-2]) == metric_value(run, "valid/acc", "best")
        assert float(row[-1]) == metric_value(run, "train/loss", "best")
    last = client.get("/api/export/runs", params={**query, "value": "last"}, headers=HOST)
    assert next(csv.reader(io.StringIO(last.text)))[-2:] == [
        "metrics.valid/acc", "metrics.train/loss"
    ]  # fmt: skip


def test_the_parquet_export_reads_back_as_expbook_export_writes_it(
    shared: Any, tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    store, client, path = shared
    query = {"sort": "number", "experiment": ["lr"]}
    answer = client.get("/api/export/runs", params={**query, "format": "parquet"}, headers=HOST)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"] == 'attachment; filename="runs.parquet"'
    table = pq.read_table(io.BytesIO(answer.content))
    rows = table.to_pylist()
    runs = store.runs(experiment="lr", sort="number")
    assert [row["number"] for row in rows] == [run.number for run in runs] == [1, 2, 3]
    assert [row["params.lr"] for row in rows] == [run.params["lr"] for run in runs]
    assert [row["metrics.valid/acc"] for row in rows] == [run.metric("valid/acc") for run in runs]
    assert [row["status"] for row in rows] == ["finished", "finished", "failed"]
    out = tmp_path / "cli.parquet"
    cli = run_cli("export", "-f", "parquet", "-o", str(out), *cli_options(query), store=str(path))
    assert cli.returncode == 0, cli.stderr
    assert pq.read_table(out).equals(table)


def test_export_errors_name_the_problem(shared: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, client, _ = shared
    unknown = client.get("/api/export/runs", params={"experiment": "lrr"}, headers=HOST)
    assert unknown.status_code == 404 and "'lrr'" in unknown.json()["detail"]
    bad = client.get("/api/export/runs", params={"where": "params.lr <"}, headers=HOST)
    assert bad.status_code == 400
    assert client.get("/api/export/runs?format=xlsx", headers=HOST).status_code == 422
    for name in ("pyarrow", "pyarrow.parquet"):  # as if pyarrow were not installed
        monkeypatch.setitem(sys.modules, name, None)
    missing = client.get("/api/export/runs?format=parquet", headers=HOST)
    assert missing.status_code == 501
    assert "pip install 'expbook[parquet]'" in missing.json()["detail"]
    assert client.get("/api/export/runs?format=csv", headers=HOST).status_code == 200


def test_both_are_documented_in_the_openapi_schema(shared: Any) -> None:
    _, client, _ = shared
    paths = client.get("/api/openapi.json", headers=HOST).json()["paths"]
    post = paths["/api/runs/bulk"]["post"]
    assert {"200", "400", "403", "404", "409"} <= set(post["responses"])
    assert post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/BulkResult"
    )
    export = paths["/api/export/runs"]["get"]
    assert {"text/csv", "application/vnd.apache.parquet"} <= set(
        export["responses"]["200"]["content"]
    )
    assert "501" in export["responses"]
    names = {p["name"] for p in export["parameters"]}
    assert names == {"format", "where", "sort", "experiment", "status", "params", "metrics",
                     "value"}  # fmt: skip


# --- review fixes: unknown export keys, a failure midway, concurrent views, cells as they are ---


def test_export_refuses_keys_no_run_has(shared: Any) -> None:
    """A typo in params= or metrics= would be a column of empty cells: 400 naming each."""
    _, client, _ = shared
    answer = client.get("/api/export/runs", params={"params": "lr,nope", "metrics":
                        "valid/acx,train/loss"}, headers=HOST)  # fmt: skip
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("no run has param 'nope'") and "\n" not in detail
    assert "; no run has metric 'valid/acx' (did you mean 'valid/acc'?)" in detail
    # keys some run has are columns, even where the runs selected lack them
    known = client.get("/api/export/runs", params={"experiment": "width", "params": "lr"},
                       headers=HOST)  # fmt: skip
    assert known.status_code == 200, known.text
    [row] = list(csv.DictReader(io.StringIO(known.text)))
    assert row["name"] == "d" and row["params.lr"] == ""


def test_a_store_failure_midway_names_the_runs_already_changed(served: Any) -> None:
    """The database refuses run #4's tag (a trigger: a real SQLite failure, nothing mocked):
    #1 and #2 stay tagged, #4 and #5 are not, and the answer says so in one line."""
    import sqlite3

    store, client, path = served
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TRIGGER refuse BEFORE INSERT ON tags WHEN NEW.run_id = (SELECT id "
                    "FROM runs WHERE number = 4) BEGIN SELECT RAISE(ABORT, 'no tags on #4'); "
                    "END")  # fmt: skip
    raw.close()
    answer = bulk(client, runs=[1, 2, 4, 5], action="tag", tags=["x"])
    assert answer.status_code == 503, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("tag stopped at #4 (") and "no tags on #4" in detail
    assert detail.endswith("); changed before it: #1, #2") and "\n" not in detail
    assert [r.tags for r in store.runs(sort="number")] == [("x",), ("x",), (), (), ()]
    first = bulk(client, runs=[4, 1], action="tag", tags=["y"])
    assert first.json()["detail"].endswith("; no run was changed")


def test_concurrent_saves_keep_every_view(served: Any) -> None:
    """20 PUTs at once (the server runs them in its thread pool): all 20 views are kept."""
    from concurrent.futures import ThreadPoolExecutor

    _, client, _ = served

    def save(index: int) -> int:
        state = {"where": f"params.lr > {index}", "sort": "-metrics.valid/acc"}
        return client.put(f"/api/views/view {index}", json=state, headers=HOST).status_code

    with ThreadPoolExecutor(20) as pool:
        assert set(pool.map(save, range(20))) == {200}
    views = client.get("/api/views", headers=HOST).json()["views"]
    assert sorted(view["name"] for view in views) == sorted(f"view {i}" for i in range(20))
    with ThreadPoolExecutor(10) as pool:  # deletes too
        gone = pool.map(lambda i: client.delete(f"/api/views/view {i}", headers=HOST), range(10))
        assert {answer.status_code for answer in gone} == {200}
    left = client.get("/api/views", headers=HOST).json()["views"]
    assert sorted(view["name"] for view in left) == sorted(f"view {i}" for i in range(10, 20))


def test_cells_are_exported_as_they_are_and_the_schema_says_so(served: Any) -> None:
    """A name, tag or param starting with = + - @ is data, exported unchanged (as expbook
    export writes it); the schema warns that a spreadsheet may read it as a formula."""
    store, client, _ = served
    store.update_run(store.run(1).id, name="=1+2")
    store.add_tags(store.run(1).id, "@x")
    answer = client.get("/api/export/runs", params={"sort": "number"}, headers=HOST)
    first = next(csv.DictReader(io.StringIO(answer.text)))
    assert (first["name"], first["tags"]) == ("=1+2", "@x")
    schema = client.get("/api/openapi.json", headers=HOST).json()
    described = schema["paths"]["/api/export/runs"]["get"]["responses"]["200"]["description"]
    assert "not escaped for spreadsheets" in described
