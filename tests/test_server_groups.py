"""``GET /api/runs?group_by=...``: groups of runs with n, mean, std and the 95 % CI per metric,
the same numbers ``expbook compare`` prints (the real CLI, on the same store)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

import expbook
from expbook.server import create_app
from expbook.store import Store
from tests.helpers import run_cli

LOCAL = "http://127.0.0.1"


def _client(store: Store) -> Iterator[httpx.Client]:
    from fastapi.testclient import TestClient

    with TestClient(create_app(store), base_url=LOCAL) as test_client:
        yield test_client


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    opened = expbook.open_store(str(tmp_path / "store" / "expbook.db"))
    yield opened
    opened.close()


@pytest.fixture
def client(sqlite_store: Store) -> Iterator[httpx.Client]:
    yield from _client(sqlite_store)


ACC = {  # (hidden, seed) -> valid/acc's last value; #7 (hidden 256) has no repeat
    (64, 1): 0.80, (64, 2): 0.83, (64, 3): 0.79,
    (128, 1): 0.88, (128, 2): 0.86, (128, 3): 0.91,
}  # fmt: skip


def repeats(store: Store) -> None:
    """#1-#3: hidden 64 over seeds 1-3; #4-#6: hidden 128; #7: hidden 256, once; #8: hidden
    64 at another lr, failed. Each logs valid/acc (rising to its last value) and train/loss."""
    tracker = expbook.Tracker(store)
    cases = [(64, 0.01, s) for s in (1, 2, 3)] + [(128, 0.01, s) for s in (1, 2, 3)]
    for hidden, lr, seed in [*cases, (256, 0.01, 1)]:
        with tracker.start_run(
            experiment="width", params={"model": {"hidden": hidden}, "lr": lr, "seed": seed}
        ) as run:
            last = ACC.get((hidden, seed), 0.95)
            for step in range(3):
                loss = 1 / (step + 1 + seed)
                run.log({"valid/acc": last - 0.1 * (2 - step), "train/loss": loss}, step=step)
    with (
        pytest.raises(RuntimeError),
        tracker.start_run(
            experiment="width", params={"model": {"hidden": 64}, "lr": 0.1, "seed": 1}
        ) as run,
    ):
        run.log({"valid/acc": 0.1, "train/loss": 9.0}, step=0)
        raise RuntimeError("diverged")


def compare_json(store_url: str, a: str, b: str, *extra: str) -> dict:
    done = run_cli("compare", a, b, "--metric", "valid/acc", "--json", *extra, store=store_url)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_same(side: dict, estimate: dict) -> None:
    """A side of `expbook compare --json` and a group's metric from the API agree."""
    assert estimate["n"] == side["n"] and estimate["runs"] == side["runs"]
    assert estimate["values"] == pytest.approx(side["values"], rel=1e-12)
    assert estimate["mean"] == pytest.approx(side["mean"], rel=1e-12)
    assert estimate["std"] == pytest.approx(side["std"], rel=1e-12)
    assert estimate["ci"] == pytest.approx(side["ci"], rel=1e-12)


def test_groups_equal_expbook_compare(store: Store, store_url: str) -> None:
    """On SQLite and on PostgreSQL."""
    repeats(store)
    for client in _client(store):
        page = client.get(
            "/api/runs",
            params={"group_by": "params.model.hidden", "metrics": "valid/acc",
                    "status": "finished", "sort": "number"},
        ).json()  # fmt: skip
    assert page["group_by"] == ["params.model.hidden"] and page["params"] == ["model.hidden"]
    assert page["run_count"] == 7 and page["total"] == 3
    first, second, single = page["groups"]
    assert first["params"] == {"model.hidden": 64} and first["runs"] == [1, 2, 3]
    assert first["n"] == 3 and not first["noise_unknown"] and len(first["ids"]) == 3
    result = compare_json(store_url, "1,2,3", "4,5,6")
    assert_same(result["a"], first["metrics"]["valid/acc"])
    assert_same(result["b"], second["metrics"]["valid/acc"])
    assert single["runs"] == [7] and single["noise_unknown"]
    assert single["metrics"]["valid/acc"] == {
        "n": 1, "mean": pytest.approx(0.95), "std": None, "ci": None, "runs": [7],
        "values": [pytest.approx(0.95)],
    }  # fmt: skip


def test_all_params_but_seed_are_compare_s_repeats(sqlite_store: Store, client) -> None:
    repeats(sqlite_store)
    page = client.get(
        "/api/runs", params={"group_by": "*", "metrics": "valid/acc", "sort": "number"}
    ).json()
    assert page["group_by"] == ["*"] and page["params"] == ["lr", "model.hidden"]
    assert [g["runs"] for g in page["groups"]] == [[1, 2, 3], [4, 5, 6], [7], [8]]
    assert page["groups"][0]["params"] == {"lr": 0.01, "model.hidden": 64}  # no seed
    result = compare_json(sqlite_store.url, "2", "5")  # each side grows to its repeats
    assert_same(result["a"], page["groups"][0]["metrics"]["valid/acc"])
    assert_same(result["b"], page["groups"][1]["metrics"]["valid/acc"])
    assert [g["noise_unknown"] for g in page["groups"]] == [False, False, True, True]


def test_several_keys_filters_first_and_paging(sqlite_store: Store, client) -> None:
    repeats(sqlite_store)
    both = client.get(
        "/api/runs",
        params={"group_by": ["params.model.hidden", "params.lr"], "metrics": "valid/acc",
                "sort": "number"},
    ).json()  # fmt: skip
    assert both["params"] == ["model.hidden", "lr"]
    assert [g["runs"] for g in both["groups"]] == [[1, 2, 3], [4, 5, 6], [7], [8]]
    assert both["groups"][3]["params"] == {"model.hidden": 64, "lr": 0.1}
    filtered = client.get(
        "/api/runs",
        params={"group_by": "params.model.hidden", "where": "metrics.valid/acc > 0.8",
                "experiment": "width", "sort": "number", "metrics": "valid/acc"},
    ).json()  # fmt: skip
    assert filtered["run_count"] == 5  # #1 (0.80) and #3 (0.79) and #8 are filtered out first
    assert [g["runs"] for g in filtered["groups"]] == [[2], [4, 5, 6], [7]]
    assert filtered["groups"][0]["metrics"]["valid/acc"]["ci"] is None
    paged = client.get(
        "/api/runs",
        params={"group_by": "params.model.hidden", "sort": "number", "limit": 1, "offset": 1},
    ).json()  # fmt: skip
    assert paged["total"] == 3 and [g["runs"] for g in paged["groups"]] == [[4, 5, 6]]
    assert paged["metrics"] == ["train/loss", "valid/acc"]  # the common metrics by default


def test_value_min_max_best(sqlite_store: Store, client) -> None:
    repeats(sqlite_store)
    params = {"group_by": "params.model.hidden", "metrics": "valid/acc,train/loss",
              "sort": "number", "where": "number <= 3"}  # fmt: skip
    last = client.get("/api/runs", params=params).json()["groups"][0]["metrics"]
    best = client.get("/api/runs", params={**params, "value": "best"}).json()
    found = best["groups"][0]["metrics"]
    assert best["value"] == "best"
    assert found["valid/acc"]["values"] == last["valid/acc"]["values"]  # max: acc rises
    assert found["train/loss"]["values"] == pytest.approx([1 / 4, 1 / 5, 1 / 6])  # min: it falls
    low = client.get("/api/runs", params={**params, "value": "min"}).json()["groups"][0]
    assert low["metrics"]["valid/acc"]["values"] == pytest.approx([0.6, 0.63, 0.59])
    high = client.get("/api/runs", params={**params, "value": "max"}).json()["groups"][0]
    assert high["metrics"]["train/loss"]["values"] == pytest.approx([1 / 2, 1 / 3, 1 / 4])


def test_nan_is_a_result_and_missing_params_group_apart(sqlite_store: Store, client) -> None:
    tracker = expbook.Tracker(sqlite_store)
    for params, value in (({"a": 1}, 0.5), ({"a": 1}, math.nan), ({}, 0.7)):
        with tracker.start_run(params=params) as run:
            run.log({"score": value}, step=0)
    page = client.get("/api/runs", params={"group_by": "params.a", "sort": "number"}).json()
    first, second = page["groups"]
    assert first["metrics"]["score"]["mean"] == "NaN" and first["metrics"]["score"]["n"] == 2
    assert second["params"] == {} and second["runs"] == [3]


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"group_by": "params.hidden"}, 400, "'hidden' (did you mean 'model.hidden'?)"),
        ({"group_by": "params.lr", "metrics": "valid/ac"}, 400, "metric 'valid/ac'"),
        ({"group_by": "metrics.valid/acc"}, 400, "'metrics.valid/acc' is not a param"),
        ({"group_by": ["*", "params.lr"]}, 400, "group_by=*"),
        ({"group_by": "params.'lr"}, 400, "params.'lr"),
        ({"group_by": "params.lr", "value": "median"}, 422, "'median'"),
        ({"group_by": "params.lr", "where": "params.lr >"}, 400, "params.lr >"),
    ],
)
def test_bad_input_is_a_4xx_naming_it(sqlite_store, client, params, status, named) -> None:
    repeats(sqlite_store)
    answer = client.get("/api/runs", params=params)
    assert answer.status_code == status, answer.text
    assert named in json.dumps(answer.json()["detail"]).replace('\\"', '"')


def test_find_run_values_is_find_runs_in_part(store: Store) -> None:
    """The grouped table's light read (SqlStore.find_run_values) and the Store base's, which
    reads whole runs, agree on both backends."""
    from expbook.store.base import RunQuery

    repeats(store)
    store.add_tags("2", "seed:lr", "b")
    query = RunQuery(where="number >= 2", sort="-metrics.valid/acc", statuses=())
    whole = store.find_runs(query)
    for params, metrics in ((None, None), (["lr"], ["valid/acc"]), ([], [])):
        light = store.find_run_values(query, params, metrics)
        base = Store.find_run_values(store, query, params, metrics)
        assert [run.number for run in light] == [run.number for run in whole]
        for mine, full, projected in zip(light, whole, base, strict=True):
            assert (mine.id, mine.name, mine.status, mine.experiment, mine.kind) == (
                full.id, full.name, full.status, full.experiment, full.kind
            )  # fmt: skip
            assert (mine.started_at, mine.ended_at, mine.tags) == (
                full.started_at, full.ended_at, full.tags
            )  # fmt: skip
            assert dict(mine.params) == dict(projected.params)
            assert list(mine.params) == list(projected.params)
            assert mine.metrics.keys() == projected.metrics.keys()
            for key, summary in mine.metrics.items():
                other = projected.metrics[key]
                assert (summary.value, summary.min, summary.max) == (
                    other.value, other.min, other.max
                )  # fmt: skip


def test_key_counts_count_what_find_runs_reads(store: Store) -> None:
    """SqlStore's counting queries and the base's count of read runs agree, filters and
    statuses applied, limit and offset ignored; the columns and experiments-best API use it."""
    from collections import Counter

    from expbook.store.base import RunQuery

    repeats(store)
    store.set_metric("3", "extra/score", 1.0)
    for query in (
        RunQuery(),
        RunQuery(where="number >= 2 and params.lr < 0.05", limit=1, offset=1),
        RunQuery(statuses=(expbook.RunStatus.RUNNING,)),
    ):
        whole = store.find_runs(replace(query, limit=None, offset=0))
        counts = store.key_counts(query)
        assert counts == Store.key_counts(store, query)
        assert counts.runs == len(whole)
        assert counts.params == Counter(key for run in whole for key in run.params)
        assert counts.metrics == Counter(key for run in whole for key in run.metrics)
    assert store.key_counts(RunQuery()).metrics["extra/score"] == 1


WARM_UP = """
import sys, threading
from fastapi.testclient import TestClient
from expbook.server import create_app
from expbook.store import open_store
store = open_store(sys.argv[1])
app = create_app(store)
before = "scipy.stats" in sys.modules
with TestClient(app):
    for thread in threading.enumerate():
        if thread.name == "expbook-warm-up":
            thread.join(60)
    print(before, "scipy.stats" in sys.modules)
"""


def test_the_app_imports_the_statistics_once_it_serves(tmp_path: Path) -> None:
    """The first grouped request does not wait for scipy's import, and creating the app (what
    ``expbook ui`` does before it listens) does not import it."""
    import subprocess
    import sys

    location = f"sqlite:///{tmp_path / 'expbook.db'}"
    expbook.open_store(location).close()
    done = subprocess.run(
        [sys.executable, "-c", WARM_UP, location], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
