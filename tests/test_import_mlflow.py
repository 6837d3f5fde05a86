"""``expbook import mlflow``: runs made with the real mlflow client, on a file store and on a
SQLite store, imported and checked point by point; importing again adds nothing; a run that
grew gets its new points only. mlflow is imported inside the tests (it takes seconds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from expbook.cli.main import run_cli
from expbook.store import open_store

pytest.importorskip("mlflow")

T0_MS = 1_700_000_000_000


def make_source(uri: str) -> dict[str, Any]:
    """Two experiments: a finished run (params, two histories, tags, note, git), its child, a
    failed run, a killed one, one still running, and a deleted run. Returns their ids."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    vision = client.create_experiment("vision", tags={"mlflow.note.content": "Which lr?"})
    audio = client.create_experiment("audio")
    ids: dict[str, Any] = {"vision": vision, "audio": audio}

    def run(experiment: str, name: str, status: str, offset: int, **tags: str) -> str:
        created = client.create_run(
            experiment, start_time=T0_MS + offset, tags={"mlflow.runName": name, **tags}
        )
        run_id = created.info.run_id
        ids[name] = run_id
        if status != "RUNNING":
            client.set_terminated(run_id, status, end_time=T0_MS + offset + 60_000)
        return run_id

    best = run(
        vision, "lr-0.01", "RUNNING", 0, team="cv", baseline="",
        **{"mlflow.note.content": "Looks *good*.", "mlflow.source.git.commit": "abc123",
           "mlflow.source.name": "train.py", "mlflow.user": "ana"},
    )  # fmt: skip
    params = [Param("lr", "0.01"), Param("epochs", "3"), Param("amp", "True"),
              Param("arch", "resnet18"), Param("layers", "[64, 128]")]  # fmt: skip
    loss = [Metric("train/loss", 1 / (i + 1), T0_MS + 1000 * i, i) for i in range(50)]
    acc = [Metric("valid/acc", 0.5 + i / 100, T0_MS + 1000 * i + 7, i * 10) for i in range(5)]
    acc.append(Metric("valid/acc", 0.55, T0_MS + 4007, 40))  # step 40 logged twice
    client.log_batch(best, metrics=loss + acc, params=params)
    client.set_terminated(best, "FINISHED", end_time=T0_MS + 60_000)
    child = run(vision, "eval", "FINISHED", 5, **{"mlflow.parentRunId": best})
    client.log_metric(child, "test/acc", 0.91, timestamp=T0_MS + 70_000, step=0)
    run(vision, "diverged", "FAILED", 10)
    run(audio, "stopped", "KILLED", 20)
    live = run(audio, "live", "RUNNING", 30)
    client.log_batch(live, [Metric("loss", 2.0 - i / 10, T0_MS + 30 + i, i) for i in range(10)])
    client.delete_run(run(audio, "gone", "FINISHED", 40))
    return ids


def grow(uri: str, ids: dict[str, Any]) -> None:
    """The live run logs 5 more points and finishes; a new run appears."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    more = [Metric("loss", 1.0 - i / 10, T0_MS + 30 + i, i) for i in range(10, 15)]
    client.log_batch(ids["live"], more)
    client.set_terminated(ids["live"], "FINISHED", end_time=T0_MS + 90_000)
    client.create_run(ids["audio"], start_time=T0_MS + 99, tags={"mlflow.runName": "late"})


def import_mlflow(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run_cli(["import", "mlflow", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(params=["file", "sqlite"])
def source_uri(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch) -> str:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    if request.param == "file":
        return (tmp_path / "mlruns").as_uri()
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_mlflow_runs_are_imported_exactly_once(source_uri: str, tmp_path: Path, capsys) -> None:
    ids = make_source(source_uri)
    store = str(tmp_path / "expbook.db")
    code, out, err = import_mlflow(capsys, source_uri, "--store", store, "--dry-run")
    assert code == 0, err
    assert "would import" in out and "5 runs (5 new), 2 experiments" in out
    assert not Path(store).exists()

    code, out, err = import_mlflow(capsys, source_uri, "--store", store)
    assert code == 0, err
    assert "5 runs (5 new), 2 experiments; 67 points, 5 params, 2 tags, 1 note" in out
    assert "deleted runs: 1" in out and "MLflow system tags (kept in mlflow.json): 1" in out
    with open_store(store) as opened:
        check_imported(opened, ids)
        assert opened.get_experiment("vision").description == "Which lr?"

    code, out, _ = import_mlflow(capsys, source_uri, "--store", store)
    assert "5 runs (5 up to date), 2 experiments; 0 points, 0 params, 0 tags, 0 notes" in out
    with open_store(store) as opened:
        check_imported(opened, ids)

    grow(source_uri, ids)
    code, out, _ = import_mlflow(capsys, source_uri, "--store", store, "-e", "audio")
    assert "3 runs (1 new, 1 updated, 1 up to date), 1 experiment; 5 points" in out
    with open_store(store) as opened:
        live = opened.run(ids["live"])
        assert live.status.value == "finished" and live.ended_at == (T0_MS + 90_000) / 1000
        series = opened.series(live.id, "loss")
        assert list(series.steps) == list(range(15))
        assert list(series.values) == [2.0 - i / 10 for i in range(10)] + [
            1.0 - i / 10 for i in range(10, 15)
        ]
        assert list(series.times) == [(T0_MS + 30 + i) / 1000 for i in range(15)]
        assert len(opened.runs()) == 6
        check_imported(opened, ids, grown=True)


def check_imported(opened: Any, ids: dict[str, Any], grown: bool = False) -> None:
    best = opened.run(ids["lr-0.01"])  # the expbook run id is the MLflow run id
    assert best.id == ids["lr-0.01"] and best.name == "lr-0.01"
    assert best.experiment == "vision" and best.status.value == "finished"
    assert best.started_at == T0_MS / 1000 and best.ended_at == (T0_MS + 60_000) / 1000
    assert dict(best.params) == {
        "lr": 0.01, "epochs": 3, "amp": True, "arch": "resnet18", "layers": "[64, 128]"
    }  # fmt: skip
    assert set(best.tags) == {"team=cv", "baseline"}
    assert [note.text for note in best.notes] == ["Looks *good*."]
    assert best.git.commit == "abc123" and best.command == ("train.py",)
    loss = opened.series(best.id, "train/loss")
    assert list(loss.steps) == list(range(50))
    assert list(loss.values) == [1 / (i + 1) for i in range(50)]
    assert list(loss.times) == [(T0_MS + 1000 * i) / 1000 for i in range(50)]
    acc = opened.series(best.id, "valid/acc")
    assert sorted(zip(acc.steps, acc.values, acc.times, strict=True)) == sorted(
        [(i * 10, 0.5 + i / 100, (T0_MS + 1000 * i + 7) / 1000) for i in range(5)]
        + [(40, 0.55, (T0_MS + 4007) / 1000)]
    )
    provenance = json.loads(opened.get_attachment(best.id, "mlflow.json"))
    assert provenance["run_id"] == best.id and provenance["tags"]["mlflow.user"] == "ana"
    child = opened.run(ids["eval"])
    assert child.parent_id == best.id
    assert list(opened.series(child.id, "test/acc").values) == [0.91]
    assert opened.run(ids["diverged"]).status.value == "failed"
    assert opened.run(ids["stopped"]).status.value == "interrupted"
    live = opened.run(ids["live"])
    if not grown:
        assert live.status.value in ("running", "crashed") and live.ended_at is None
        assert len(opened.series(live.id, "loss")) == 10
    assert not opened.runs(where=f"name = '{'gone'}'")


def test_unknown_experiment_and_bad_uris_are_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    mlruns = tmp_path / "mlruns"
    from mlflow.tracking import MlflowClient

    MlflowClient(mlruns.as_uri()).create_experiment("vision")
    store = str(tmp_path / "expbook.db")
    cases = {
        (str(mlruns), "-e", "visoin"): "no MLflow experiment named 'visoin'",
        (str(tmp_path / "nothing"),): "does not exist",
        (f"sqlite:///{tmp_path / 'none.db'}",): "no such SQLite file",
        ("http://127.0.0.1:9",): "cannot read MLflow at http://127.0.0.1:9",
    }
    for args, message in cases.items():
        code, out, err = import_mlflow(capsys, *args, "--store", store)
        assert code == 1 and out == "", (args, out)
        assert len(err.strip().splitlines()) == 1 and message in err, (args, err)
    assert not (tmp_path / "none.db").exists() and not (tmp_path / "nothing").exists()
    monkeypatch.chdir(tmp_path / "mlruns")  # neither ./mlruns nor ./mlflow.db here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, _, err = import_mlflow(capsys, "--store", store)
    assert code == 1 and "no MLflow tracking URI" in err


def test_params_keep_their_types() -> None:
    from expbook.importers.mlflow import parse_param

    assert [parse_param(t) for t in ("3", "-2", "0.5", "1e-3", "True", "false", "adam", "")] == [
        3, -2, 0.5, 1e-3, True, False, "adam", ""
    ]  # fmt: skip
