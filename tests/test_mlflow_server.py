"""The MLflow tracking REST API of expbook's server, driven by the real ``mlflow`` client.

A real uvicorn server process on loopback serves a store (SQLite; PostgreSQL in one case);
each client is a fresh interpreter with ``MLFLOW_TRACKING_URI`` pointing at it, running the kind
of script MLflow users write. What arrived is then read through expbook's own ``Store``: the
same runs, with exactly the values, steps, timestamps, params, tags, statuses and artifacts
the client sent.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import expbook
from expbook.server.mlflow_search import parse_filter, runs_filter, runs_sort
from expbook.server.mlflow_wire import MlflowApiError
from expbook.store.base import ARTIFACTS_SETTING, RunQuery
from tests.serverproc import free_port

if importlib.util.find_spec("mlflow") is None:  # not imported here: the clients are processes
    pytest.skip("the mlflow client (mlflow-skinny, in the dev extra) is not installed",
                allow_module_level=True)  # fmt: skip

CLIENT_PYTHON = os.environ.get("EXPBOOK_TEST_MLFLOW_PYTHON", sys.executable)
"""The interpreter the MLflow clients run in: this environment's (mlflow-skinny from the dev
extra), or one with another MLflow version (docs/mlflow.md lists the versions tested)."""

SERVE = """
import sys, uvicorn
from expbook.store import open_store
from expbook.server.app import create_app
store = open_store(sys.argv[1])
app = create_app(store, auth=sys.argv[3] == "auth")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


class Server:
    """``create_app(store)`` under uvicorn in its own process, on a free loopback port."""

    def __init__(self, store_url: str, log: Path, *, auth: bool = False) -> None:
        self.store_url = store_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        expbook.open_store(store_url).close()  # the schema, before the server opens it
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVE, store_url, str(self.port),
                 "auth" if auth else "open"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/api/2.0/mlflow/experiments/get?experiment_id=0")
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"the server did not start: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("mlflow-sqlite")
    server = Server(str(folder / "store" / "expbook.db"), folder / "server.log")
    yield server
    server.stop()


@pytest.fixture
def store(sqlite_server: Server) -> Iterator[expbook.Store]:
    opened = expbook.open_store(sqlite_server.store_url)
    yield opened
    opened.close()


def client(server: Server, code: str, tmp_path: Path, **env: str) -> dict[str, Any]:
    """Run an MLflow script against ``server`` in a fresh interpreter (working directory
    ``tmp_path``); it leaves its findings in ``result``, returned here."""
    script = tmp_path / f"script_{time.monotonic_ns()}.py"
    script.write_text(
        "import json, mlflow\nfrom mlflow import MlflowClient\nresult = {}\n"
        + textwrap.dedent(code)
        + "\nprint('RESULT ' + json.dumps(result))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "EXPBOOK_"))}
    environment = {
        **clean,
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        **env,
    }
    done = subprocess.run(
        [CLIENT_PYTHON, script.name], cwd=tmp_path, env=environment, capture_output=True,
        text=True, timeout=300, check=False,
    )  # fmt: skip
    found = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and found, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads(found[-1].removeprefix("RESULT "))


TYPICAL = """
import time
mlflow.set_experiment(EXPERIMENT)
start = int(time.time() * 1000) - 10_000
with mlflow.start_run(run_name="baseline") as run:
    mlflow.log_params({"lr": 0.001, "batch_size": 32, "optimizer": "adam", "nesterov": True,
                       "schedule": "1e-3", "layers": [64, 32]})
    for step in range(50):
        mlflow.log_metric("train/loss", 1.0 / (step + 1), step=step, timestamp=start + step)
    mlflow.log_metric("weird", float("nan"), step=1, timestamp=start)
    mlflow.log_metrics({"val_acc": 0.91, "val_f1": 0.87}, step=49)
    mlflow.set_tag("team", "nlp")
    mlflow.set_tag("flag", "")
    mlflow.set_tag("mlflow.note.content", "first try\\nwith two lines")
    with open("notes.txt", "w") as f:
        f.write("hello artifacts")
    mlflow.log_artifact("notes.txt")
    mlflow.log_artifact("notes.txt", artifact_path="copies/deep")
    mlflow.log_dict({"hidden": [64, 32], "dropout": 0.1}, "config/model.json")
    with open("big.bin", "wb") as f:
        f.write(bytes(range(256)) * (12 * 4096))  # 12 MiB: streamed past the body limit
    mlflow.log_artifact("big.bin")
result["run"] = run.info.run_id
result["start"] = start
try:
    with mlflow.start_run(run_name="broken") as failing:
        mlflow.log_param("lr", 0.1)
        raise RuntimeError("diverged")
except RuntimeError:
    result["failed"] = failing.info.run_id
client = MlflowClient()
result["history"] = [[m.step, m.value, m.timestamp]
                     for m in client.get_metric_history(run.info.run_id, "train/loss")]
got = client.get_run(run.info.run_id)
result["params"] = got.data.params
result["tags"] = {k: v for k, v in got.data.tags.items()}
result["metrics"] = {k: str(v) for k, v in got.data.metrics.items()}
result["status"] = got.info.status
result["artifacts"] = sorted(f.path for f in client.list_artifacts(run.info.run_id))
result["copies"] = [f.path for f in client.list_artifacts(run.info.run_id, "copies/deep")]
path = client.download_artifacts(run.info.run_id, "config/model.json", ".")
result["downloaded"] = json.load(open(path))
found = mlflow.search_runs(filter_string="metrics.val_acc > 0.5 and params.optimizer = 'adam'",
                           output_format="list")
result["search"] = [r.info.run_id for r in found]
failed = mlflow.search_runs(filter_string="attributes.status = 'FAILED'", output_format="list")
result["search_failed"] = [r.info.run_id for r in failed]
"""


def check_typical(store: expbook.Store, result: dict[str, Any], experiment: str) -> None:
    run = store.run(result["run"])
    assert run.id == result["run"] and run.name == "baseline"
    assert run.experiment == experiment and run.status.value == "finished"
    assert run.params == {
        "lr": 0.001, "batch_size": 32, "optimizer": "adam", "nesterov": True,
        "schedule": "1e-3", "layers": "[64, 32]",
    }  # fmt: skip
    assert sorted(run.tags) == ["flag", "team=nlp"]
    assert run.command == ("script.py",) or run.command[0].startswith("script_")
    series = store.series(run, "train/loss")
    start = result["start"]
    assert list(series.steps) == list(range(50))
    assert list(series.values) == [1.0 / (step + 1) for step in range(50)]
    assert list(series.times) == [(start + step) / 1000 for step in range(50)]
    assert result["history"] == [[s, 1.0 / (s + 1), start + s] for s in range(50)]
    weird = store.series(run, "weird")
    assert list(weird.steps) == [1] and weird.values[0] != weird.values[0]  # NaN kept
    assert run.metrics["val_acc"].value == 0.91 and run.metrics["val_acc"].step == 49
    assert run.metrics["train/loss"].count == 50
    assert result["metrics"] == {"train/loss": "0.02", "val_acc": "0.91", "val_f1": "0.87",
                                 "weird": "nan"}  # fmt: skip
    assert result["params"] == {
        "lr": "0.001", "batch_size": "32", "optimizer": "adam", "nesterov": "True",
        "schedule": "1e-3", "layers": "[64, 32]",
    }  # fmt: skip
    tags = result["tags"]
    assert tags["team"] == "nlp" and tags["flag"] == "" and tags["mlflow.runName"] == "baseline"
    assert tags["mlflow.note.content"] == "first try\nwith two lines"
    assert result["status"] == "FINISHED"
    failed = store.run(result["failed"])
    assert failed.status.value == "failed" and failed.params == {"lr": 0.1}
    assert failed.ended_at is not None
    artifacts = {a.name: a for a in store.list_artifacts(run.id)}
    assert sorted(artifacts) == ["big.bin", "config/model.json", "copies/deep/notes.txt",
                                 "notes.txt"]  # fmt: skip
    blobs = store.blobs()
    assert blobs.read(artifacts["notes.txt"].sha256) == b"hello artifacts"
    big = bytes(range(256)) * (12 * 4096)
    assert artifacts["big.bin"].sha256 == hashlib.sha256(big).hexdigest()
    assert artifacts["big.bin"].size == len(big) and blobs.read(artifacts["big.bin"].sha256) == big
    assert result["artifacts"] == ["big.bin", "config", "copies", "notes.txt"]
    assert result["copies"] == ["copies/deep/notes.txt"]
    assert result["downloaded"] == {"hidden": [64, 32], "dropout": 0.1}
    assert result["search"] == [run.id]
    assert result["search_failed"] == [failed.id]


@pytest.mark.slow
def test_a_typical_script_arrives_exactly(
    sqlite_server: Server, store: expbook.Store, tmp_path: Path
) -> None:
    code = f"EXPERIMENT = 'typical'\n{TYPICAL}"
    result = client(sqlite_server, code, tmp_path)
    check_typical(store, result, "typical")


@pytest.mark.slow
@pytest.mark.postgres
def test_a_typical_script_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    with expbook.open_store(postgres_url) as store:
        store.set_setting(ARTIFACTS_SETTING, str(tmp_path / "artifacts"))
    server = Server(postgres_url, tmp_path / "server.log")
    try:
        result = client(server, f"EXPERIMENT = 'on postgres'\n{TYPICAL}", tmp_path)
        with expbook.open_store(postgres_url) as store:
            check_typical(store, result, "on postgres")
    finally:
        server.stop()


@pytest.mark.slow
def test_autolog_with_scikit_learn(
    sqlite_server: Server, store: expbook.Store, tmp_path: Path
) -> None:
    pytest.importorskip("sklearn")
    result = client(
        sqlite_server,
        """
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        mlflow.set_experiment("iris")
        mlflow.autolog()
        X, y = load_iris(return_X_y=True)
        with mlflow.start_run() as run:
            model = LogisticRegression(max_iter=300, C=0.5).fit(X, y)
        result["run"] = run.info.run_id
        result["predicted"] = model.predict(X[:5]).tolist()
        loaded = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
        result["from_run"] = loaded.predict(X[:5]).tolist()
        client = MlflowClient()
        if hasattr(mlflow, "last_logged_model"):  # MLflow 3: a LoggedModel
            logged = mlflow.last_logged_model()
            result["model"] = [logged.model_id, str(logged.status)]
            loaded = mlflow.sklearn.load_model(f"models:/{logged.model_id}")
            result["from_model"] = loaded.predict(X[:5]).tolist()
        else:  # MLflow 2: the model's description in a run tag
            tags = client.get_run(run.info.run_id).data.tags
            history = json.loads(tags["mlflow.log-model.history"])
            result["model"] = [entry["artifact_path"] for entry in history]
            result["from_model"] = result["from_run"]
        result["listed"] = sorted(f.path for f in client.list_artifacts(run.info.run_id, "model"))
        inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
        result["inputs"] = sorted(tag.value for i in inputs for tag in i.tags)
        """,
        tmp_path,
    )
    run = store.run(result["run"])
    assert run.experiment == "iris" and run.status.value == "finished"
    assert run.name.startswith("script_")  # no run name: named after the script, as expbook does
    assert run.params["C"] == 0.5 and run.params["max_iter"] == 300
    assert run.params["solver"] == "lbfgs"
    assert "estimator_name=LogisticRegression" in run.tags
    assert run.metrics["training_accuracy_score"].count == 1  # log_model's copies not added
    assert 0.9 < run.metrics["training_accuracy_score"].value <= 1
    names = {a.name for a in store.list_artifacts(run.id)}
    assert {"model/MLmodel", "model/model.pkl", "training_confusion_matrix.png"} <= names
    assert result["from_run"] == result["predicted"] == result["from_model"]
    if result["model"] != ["model"]:  # MLflow 3
        model_id, status = result["model"]
        assert model_id == f"m-{run.id}-1" and status.endswith("READY")
    assert "model/MLmodel" in result["listed"]
    assert len(result["listed"]) == len(set(result["listed"]))  # each file once
    assert result["inputs"] == ["eval", "train"]  # fit's data, then predict's


@pytest.mark.slow
def test_an_expbook_run_reads_through_mlflow(
    sqlite_server: Server, store: expbook.Store, tmp_path: Path
) -> None:
    run = expbook.start_run(
        name="native", experiment="native runs", params={"lr": 0.01, "model": {"depth": 4}},
        tags=["gru", "seed=3"], store=store,
    )  # fmt: skip
    for step in range(10):
        run.log({"loss": 10.0 - step}, step=step)
    run.finish()
    experiment_id = str(store.get_experiment("native runs").id)
    result = client(
        sqlite_server,
        f"""
        client = MlflowClient()
        got = mlflow.get_run({run.id!r})
        result["info"] = [got.info.run_name, got.info.status, got.info.experiment_id]
        result["params"] = got.data.params
        result["tags"] = got.data.tags
        result["metrics"] = got.data.metrics
        result["history"] = [[m.step, m.value] for m in client.get_metric_history({run.id!r},
                                                                                  "loss")]
        found = mlflow.search_runs(experiment_names=["native runs"], output_format="list")
        result["found"] = [r.info.run_id for r in found]
        experiment = mlflow.get_experiment_by_name("native runs")
        result["experiment"] = [experiment.experiment_id, experiment.name]
        """,
        tmp_path,
    )
    assert result["info"] == ["native", "FINISHED", experiment_id]
    assert result["params"] == {"lr": "0.01", "model.depth": "4"}
    assert result["tags"]["gru"] == "" and result["tags"]["seed"] == "3"
    assert result["metrics"] == {"loss": 1.0}
    assert result["history"] == [[step, 10.0 - step] for step in range(10)]
    assert result["found"] == [run.id]
    assert result["experiment"] == [experiment_id, "native runs"]


@pytest.mark.slow
def test_search_filters_order_and_pages(
    sqlite_server: Server, store: expbook.Store, tmp_path: Path
) -> None:
    result = client(
        sqlite_server,
        """
        from mlflow.exceptions import MlflowException
        mlflow.set_experiment("search")
        ids = {}
        for i, (opt, lr) in enumerate([("adam", "0.001"), ("sgd", "0.1"), ("adam", "1e-3"),
                                       ("sgd", "0.01"), ("adam", "0.001")]):
            with mlflow.start_run(run_name=f"r{i}") as run:
                mlflow.log_params({"opt": opt, "lr": lr})
                mlflow.log_metric("acc", i / 10)
                mlflow.set_tag("team", "nlp" if i % 2 else "vision")
                ids[run.info.run_id] = i
        with mlflow.start_run(run_name="parent") as parent:
            with mlflow.start_run(run_name="child", nested=True) as child:
                pass
        def names(filter_string, **kw):
            found = mlflow.search_runs(filter_string=filter_string, output_format="list", **kw)
            return [r.info.run_name for r in found]
        result["acc"] = names("metrics.acc > 0.15", order_by=["metrics.acc ASC"])
        result["adam"] = sorted(names("params.opt = 'adam'"))
        result["lr text"] = sorted(names("params.lr = '1e-3'"))
        result["lr number"] = sorted(names("params.lr = '0.001'"))
        result["not sgd"] = sorted(names("params.opt != 'sgd'"))
        result["tag"] = sorted(names("tags.team = 'nlp'"))
        result["like"] = sorted(names("attributes.run_name LIKE 'r%' and metrics.acc <= 0.1"))
        result["child"] = names(f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        result["finished"] = len(names("attributes.status = 'FINISHED'"))
        result["in"] = sorted(names("attributes.run_name IN ('r1', 'r3', 'nope')"))
        client = MlflowClient()
        experiment = mlflow.get_experiment_by_name("search").experiment_id
        pages, token = [], None
        while True:
            page = client.search_runs([experiment], max_results=3, page_token=token,
                                      order_by=["attributes.start_time ASC"])
            pages.append([r.info.run_name for r in page])
            token = page.token
            if not token:
                break
        result["pages"] = pages
        try:
            names("tags.team != 'nlp'")
        except MlflowException as exc:
            result["refused"] = [exc.error_code, exc.message]
        try:
            names("metrics.acc >")
        except MlflowException as exc:
            result["malformed"] = exc.error_code
        """,
        tmp_path,
    )
    assert result["acc"] == ["r2", "r3", "r4"]
    assert result["adam"] == ["r0", "r2", "r4"]
    assert result["lr text"] == ["r2"] and result["lr number"] == ["r0", "r4"]
    assert result["not sgd"] == ["r0", "r2", "r4"]
    assert result["tag"] == ["r1", "r3"]
    assert result["like"] == ["r0", "r1"]
    assert result["child"] == ["child"]
    assert result["finished"] == 7
    assert result["in"] == ["r1", "r3"]
    assert result["pages"] == [["r0", "r1", "r2"], ["r3", "r4", "parent"], ["child"]]
    code, message = result["refused"]
    assert code == "INVALID_PARAMETER_VALUE" and "tags.team != 'nlp'" in message
    assert result["malformed"] == "INVALID_PARAMETER_VALUE"
    child = store.run("child")
    assert child.parent_id == store.run("parent").id


@pytest.mark.slow
def test_errors_are_mlflows(sqlite_server: Server, store: expbook.Store, tmp_path: Path) -> None:
    result = client(
        sqlite_server,
        """
        from mlflow.exceptions import MlflowException
        client = MlflowClient()
        def error(call):
            try:
                call()
            except MlflowException as exc:
                return exc.error_code
            return None
        result["missing run"] = error(lambda: client.get_run("0" * 32))
        result["no experiment"] = mlflow.get_experiment_by_name("never made")
        client.create_experiment("twice")
        result["twice"] = error(lambda: client.create_experiment("twice"))
        run = client.create_run(experiment_id="0", run_name="kept")
        client.log_param(run.info.run_id, "lr", "0.1")
        client.log_param(run.info.run_id, "lr", "0.1")  # the same value again is fine
        result["changed param"] = error(lambda: client.log_param(run.info.run_id, "lr", "0.2"))
        result["bad key"] = error(lambda: client.log_metric(run.info.run_id, "bad'key", 1.0))
        result["negative step"] = error(lambda: client.log_metric(run.info.run_id, "x", 1.0,
                                                                  step=-1))
        result["default"] = client.get_run(run.info.run_id).info.experiment_id
        client.set_terminated(run.info.run_id, status="KILLED")
        gone = client.create_run(experiment_id="0", run_name="gone")
        client.delete_run(gone.info.run_id)
        result["gone"] = gone.info.run_id
        result["restore"] = error(lambda: client.restore_run(gone.info.run_id))
        result["delete experiment"] = error(lambda: client.delete_experiment("0"))
        result["run"] = run.info.run_id
        """,
        tmp_path,
    )
    assert result["missing run"] == "RESOURCE_DOES_NOT_EXIST"
    assert result["no experiment"] is None
    assert result["twice"] == "RESOURCE_ALREADY_EXISTS"
    assert result["changed param"] == "INVALID_PARAMETER_VALUE"
    assert result["bad key"] == "INVALID_PARAMETER_VALUE"
    assert result["negative step"] == "INVALID_PARAMETER_VALUE"
    assert result["default"] == "0"
    assert result["restore"] == "RESOURCE_DOES_NOT_EXIST"
    assert result["delete experiment"] == "NOT_IMPLEMENTED"
    kept = store.run(result["run"])
    assert kept.experiment is None and kept.status.value == "interrupted"
    assert kept.params == {"lr": 0.1}
    assert not store.find_runs(RunQuery(ids=(result["gone"],)))


@pytest.mark.slow
def test_requests_that_are_not_mlflows_get_its_error_json(sqlite_server: Server) -> None:
    base = f"{sqlite_server.url}/api/2.0/mlflow"
    nobody = "0" * 32

    def post(path: str, body: object) -> tuple[int, dict[str, Any]]:
        if isinstance(body, bytes):
            answer = httpx.post(f"{base}/{path}", content=body)
        else:
            answer = httpx.post(f"{base}/{path}", json=body)
        return answer.status_code, answer.json()

    status, error = post("runs/log-metric", b"{not json")
    assert status == 400 and error["error_code"] == "INVALID_PARAMETER_VALUE"
    status, error = post("runs/log-metric", {"run_id": nobody, "key": "x"})
    assert status == 400 and "value" in error["message"]
    status, error = post(
        "runs/log-metric", {"run_id": nobody, "key": "x", "value": 1, "step": "n"}
    )
    assert status == 400 and "step" in error["message"]
    status, error = post("runs/log-metric", {"run_id": nobody, "key": "x", "value": 1})
    assert status == 404 and error["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, error = post("runs/search", {"max_results": 10**9})
    assert status == 400 and "max_results" in error["message"]
    status, error = post("runs/search", {"page_token": "bogus"})
    assert status == 400 and "page token" in error["message"]
    status, error = post("traces/search", {})
    assert status == 404 and error["error_code"] == "ENDPOINT_NOT_FOUND"
    answer = httpx.get(f"{base}/runs/get")
    assert answer.status_code == 400 and "run_id" in answer.json()["message"]
    artifact = f"{sqlite_server.url}/api/2.0/mlflow-artifacts/artifacts/0/{nobody}/artifacts/a"
    answer = httpx.put(artifact, content=b"x")
    assert answer.status_code == 404 and answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# --- auth ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    folder = tmp_path_factory.mktemp("mlflow-auth")
    url = str(folder / "store" / "expbook.db")
    with expbook.open_store(url) as store:
        secrets = {
            name: store.create_token(name, read_only=name == "reader")[1]
            for name in ("writer", "reader", "revoked")
        }
        store.revoke_token("revoked")
    server = Server(url, folder / "server.log", auth=True)
    yield server, secrets
    server.stop()


AUTHED = """
from mlflow.exceptions import MlflowException
def attempt(call):
    try:
        return ["ok", call()]
    except MlflowException as exc:
        return ["refused", f"{exc.error_code}: {str(exc)[:300]}"]
client = MlflowClient()
def write():
    mlflow.set_experiment("guarded")
    with mlflow.start_run(run_name="guarded") as run:
        mlflow.log_metric("x", 1.0)
        mlflow.log_dict({"a": 1}, "a.json")
    return run.info.run_id
result["write"] = attempt(write)
result["search"] = attempt(lambda: len(mlflow.search_runs(search_all_experiments=True,
                                                          output_format="list")))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("who", "env", "writes", "reads"),
    [
        ("bearer", {"MLFLOW_TRACKING_TOKEN": "writer"}, True, True),
        ("basic", {"MLFLOW_TRACKING_USERNAME": "anyone", "MLFLOW_TRACKING_PASSWORD": "writer"},
         True, True),
        ("read-only", {"MLFLOW_TRACKING_TOKEN": "reader"}, False, True),
        ("revoked", {"MLFLOW_TRACKING_TOKEN": "revoked"}, False, False),
        ("none", {}, False, False),
    ],
)  # fmt: skip
def test_tokens_as_mlflow_clients_send_them(
    auth_server: tuple[Server, dict], tmp_path: Path, who: str, env: dict, writes: bool,
    reads: bool,
) -> None:  # fmt: skip
    server, secrets = auth_server
    env = {k: secrets.get(v, v) for k, v in env.items()}
    result = client(server, AUTHED, tmp_path, **env)
    assert (result["write"][0] == "ok") is writes, result["write"]
    assert (result["search"][0] == "ok") is reads, result["search"]
    if who == "read-only":  # the client's own codes, from the Guard's answer
        assert result["write"][1].startswith("PERMISSION_DENIED: ")
        assert "read-only" in result["write"][1]
    if not reads:
        assert result["search"][1].startswith("UNAUTHENTICATED: ")
        assert "API token" in result["search"][1]
    if writes:
        with expbook.open_store(server.store_url) as store:
            run = store.run(result["write"][1])
            assert [a.name for a in store.list_artifacts(run.id)] == ["a.json"]


# --- the filter translation, in process --------------------------------------------------------


def translate(text: str) -> str:
    return runs_filter(parse_filter(text), lambda run_id: 7 if run_id == "a" * 32 else None)


@pytest.mark.parametrize(
    ("mlflow_filter", "expected"),
    [
        ("metrics.acc > 0.9", "(metrics.acc > 0.9)"),
        ("metrics.`val loss` <= 1e-3", "(metrics.'val loss' <= 0.001)"),
        ('metrics."train/loss" < 2', "(metrics.train/loss < 2.0)"),
        ("params.lr = '0.001'", "(params.lr = 0.001)"),
        ("params.lr = '1e-3'", "(params.lr = '1e-3')"),
        ("params.flag = 'True' and params.n != '32'", "(params.flag = true) and (params.n != 32)"),
        ("params.opt LIKE 'ad%'", "(params.opt ~ 'ad*')"),
        ("params.opt IS NULL", "(params.opt is null)"),
        ("tags.team = 'nlp'", "(tags has 'team=nlp')"),
        ("tags.`my tag` = ''", "(tags has 'my tag')"),
        ("tags.mlflow.runName = 'a'", "(name = 'a')"),
        (f"tags.mlflow.parentRunId = '{'a' * 32}'", "(parent = 7)"),
        (f"tags.mlflow.parentRunId = '{'b' * 32}'", "(number < 0)"),
        ("attributes.status = 'FAILED'", "(status in ('crashed', 'failed'))"),
        ("status != 'KILLED'", "(status not in ('interrupted', 'pruned'))"),
        ("attributes.start_time >= 1700000000000", "(started >= 1700000000.0)"),
        ("attributes.run_name ILIKE '%gru_'", "(name ~ '*gru?')"),
        ("`Run name` IN ('a', 'b''c')", "(name in ('a', 'b\\'c'))"),
        (f"attributes.run_id = '{'a' * 32}'", f"(id = '{'a' * 32}')"),
        ("attributes.run_id = 'abc'", "(number < 0)"),
        ("attributes.lifecycle_stage = 'active'", "(number > 0)"),
    ],
)
def test_mlflow_filters_become_expbook_filters(mlflow_filter: str, expected: str) -> None:
    assert translate(mlflow_filter) == expected


@pytest.mark.parametrize(
    ("mlflow_filter", "named"),
    [
        ("metrics.acc > 'high'", "compare with numbers"),
        ("metrics.acc > 0.5 OR metrics.acc < 0.1", "OR is not supported"),
        ("tags.team != 'nlp'", "tags.team != 'nlp'"),
        ("tags.mlflow.user = 'me'", "kept outside"),
        ("attributes.user_id = 'me'", "user_id"),
        ("datasets.name = 'iris'", "dataset"),
        ("params.lr > '0.1'", "params compare"),
        ("metrics.acc >", "expected a value"),
        ("foo.acc > 1", "unknown prefix 'foo'"),
        ("attributes.status = 'SLEEPING'", "unknown status"),
        ("params.x LIKE 'a*'", "cannot be matched literally"),
    ],
)
def test_filters_expbook_cannot_answer_exactly_are_refused(mlflow_filter: str, named: str) -> None:
    with pytest.raises(MlflowApiError) as caught:
        translate(mlflow_filter)
    assert caught.value.code == "INVALID_PARAMETER_VALUE"
    assert named in caught.value.message


def test_the_translated_filters_parse_in_expbook() -> None:
    from expbook.query import parse_filter as expbook_filter

    for text in ("metrics.`a b` > 1 and params.x = 'y'", "attributes.run_name LIKE 'x%'",
                 "`Run name` IN ('a', 'b''c')", "tags.team = 'it''s'"):  # fmt: skip
        expbook_filter(translate(text))
    assert runs_sort(["metrics.acc DESC", "attributes.start_time", "params.`a b` asc"]) == (
        "-metrics.acc, started, params.'a b'"
    )


# --- malformed requests, in process: MLflow's 4xx, never a 500 ----------------------------------


def test_no_malformed_request_is_a_server_error(tmp_path: Path) -> None:
    """2,000 of the 12,600 (endpoint, field, odd value) cases, the same ones every time."""
    from fastapi.testclient import TestClient

    from expbook.server.app import create_app
    from expbook.server.mlflow import PREFIX, TRACKING
    from expbook.server.mlflow_models import ENDPOINTS

    with expbook.open_store(str(tmp_path / "store" / "expbook.db")) as store:
        run = expbook.start_run(name="target", store=store)
        run.finish()
        api = TestClient(create_app(store), base_url="http://127.0.0.1")
        real = {"run_id": run.id, "run_uuid": run.id, "experiment_id": "0",
                "model_id": f"m-{run.id}-1", "tag_key": "x"}  # fmt: skip
        strange: list[Any] = [None, -1, 1.5, "", "NaN", True, [1], {"k": 1}, [{"key": 1}],
                              [{"key": "k", "value": {}}], "9" * 30]  # fmt: skip
        fields = ["run_id", "experiment_id", "key", "value", "step", "timestamp", "metrics",
                  "params", "tags", "status", "end_time", "run_name", "name", "filter",
                  "max_results", "page_token", "order_by", "experiment_ids", "datasets",
                  "models", "new_name", "metric_key", "source_run_id", "model_json",
                  "experiment_name", "start_time", "view_type", "run_view_type"]  # fmt: skip
        cases = [
            (method, path, field, value)
            for method, path, _, _ in TRACKING + ENDPOINTS
            for field in fields
            for value in strange
        ]
        for method, path, field, value in random.Random(14).sample(cases, 2000):
            url = f"{PREFIX}/{path}".replace("{model_id}", real["model_id"])
            url = url.replace("{tag_key}", "x")
            body = {**real, field: value}
            if method == "GET":
                params = {k: v for k, v in body.items() if isinstance(v, str)}
                answer = api.get(url, params=params)
            else:
                answer = api.request(method, url, json=body)
            failed = answer.status_code >= 500 and answer.status_code != 501
            assert not failed, (method, path, field, value, answer.text)
            assert "error_code" in answer.json() or answer.status_code == 200
