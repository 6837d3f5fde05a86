"""The ``expbook`` console script, run as a real subprocess: output and exit codes."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import pytest

import expbook
from expbook.store import RunSpec, WriteBatch
from expbook.store.chunks import Points
from tests.helpers import run_cli


def fill(location: str) -> None:
    """Three runs like the GRU log: hidden size and layers vary, one crashed mid-way."""
    store = expbook.open_store(location)
    configs = [(128, 1, 0.938), (128, 2, 0.9421), (256, 2, 0.9559)]
    for hidden, layers, acc in configs:
        run = store.create_run(
            RunSpec(
                name=f"gru-{hidden}-{layers}",
                experiment="hidden size",
                params={"model.hidden": hidden, "model.layers": layers, "dropout": 0.0},
                tags=["gru"],
                command=["python", "train.py", f"--hidden={hidden}"],
            )
        )
        series = {"valid/acc": Points(), "train/loss": Points()}
        for step in range(5):
            series["valid/acc"].append(step, acc - (4 - step) * 0.01, time.time(), float(step))
            series["train/loss"].append(step, 1.0 / (step + 1), time.time(), float(step))
        store.write(
            run.id,
            WriteBatch(points=series, update={"status": "finished", "ended_at": time.time() + 60}),
        )
    store.write(store.resolve_run(3), WriteBatch(points={"nan/metric": _nan_points()}))
    store.close()


def _nan_points() -> Points:
    points = Points()
    points.append(0, math.nan, time.time(), None)
    return points


@pytest.fixture
def filled(sqlite_url: str) -> str:
    fill(sqlite_url)
    return sqlite_url


def ok(*args: str, store: str, **kwargs) -> str:
    result = run_cli(*args, store=store, **kwargs)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" or args[0] == "export", result.stderr
    return result.stdout


def fails(*args: str, store: str | None, code: int = 1, **kwargs) -> str:
    result = run_cli(*args, store=store, **kwargs)
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_ls_shows_varying_params_and_metrics(filled: str) -> None:
    out = ok("ls", store=filled)
    header = next(line for line in out.splitlines() if "name" in line)
    for column in ("#", "name", "status", "duration", "model.hidden", "model.layers",
                   "valid/acc", "train/loss"):  # fmt: skip
        assert column in header, column
    assert "dropout" not in header  # the same in every run
    assert "0.9559" in out and "gru-256-2" in out and "finished" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["3", "2", "1"]


def test_ls_filters_sorts_limits(filled: str) -> None:
    out = ok("ls", "--where", "params.model.layers = 2 and metrics.valid/acc > 0.95", store=filled)
    assert "gru-256-2" in out and "gru-128-2" not in out
    out = ok("ls", "--sort", "metrics.valid/acc", "-m", "valid/acc", store=filled)
    rows = [line.split()[0] for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert rows == ["1", "2", "3"]
    out = ok("ls", "--limit", "1", store=filled)
    assert "1 of 3 runs shown" in out
    assert "no runs match" in ok("ls", "--status", "crashed", store=filled)
    assert "no runs match" in ok("ls", "-e", "hidden size", "--status", "crashed", store=filled)
    assert fails("ls", "-e", "other question", store=filled) == (
        "error: no experiment named 'other question'"  # a typo is not an empty list
    )


def test_ls_json(filled: str) -> None:
    data = json.loads(ok("ls", "--json", store=filled))
    assert [r["number"] for r in data] == [3, 2, 1]
    assert data[0]["params"]["model.hidden"] == 256
    assert data[0]["metrics"]["nan/metric"]["value"] == "NaN"  # strict JSON, still faithful


def test_show_has_the_learner_summary(filled: str) -> None:
    out = ok("show", "#3", store=filled)
    assert "Run #3 gru-256-2" in out and "finished" in out
    assert "python train.py --hidden=256" in out
    line = next(line for line in out.splitlines() if line.strip().startswith("valid/acc"))
    # last, step, min, step, max, step, points
    assert line.split()[1:] == ["0.9559", "4", "(ep", "4)", "0.9159", "0", "(ep", "0)",
                                "0.9559", "4", "(ep", "4)", "5"]  # fmt: skip
    assert "nan" in next(line for line in out.splitlines() if "nan/metric" in line)
    data = json.loads(ok("show", "3", "--json", store=filled))
    assert data["metrics"]["valid/acc"]["min_step"] == 0


def test_diff_shows_what_changed(filled: str) -> None:
    out = ok("diff", "1", "3", store=filled)
    params = out[out.index("Params") : out.index("Metrics")]
    assert "model.hidden" in params and "128" in params and "256" in params
    assert "model.layers" in params and "dropout" not in params
    metric = next(line for line in out.splitlines() if line.strip().startswith("valid/acc"))
    assert "+0.0179" in metric and "+1.9%" in metric
    data = json.loads(ok("diff", "1", "3", "--json", store=filled))
    assert {p["key"] for p in data["params"]} == {"model.hidden", "model.layers"}


def test_note_tag_set_metric(filled: str) -> None:
    assert "noted on #2" in ok("note", "2", "GPU utilization around 20%", store=filled)
    ok("note", "2", "-", store=filled, input="from *stdin*\n")
    assert "#2 tags: baseline, gru" in ok("tag", "2", "baseline", store=filled)
    assert "#2 tags: gru" in ok("tag", "2", "--remove", "baseline", store=filled)
    assert "manual/valid_acc = 55.46%" in ok(
        "set-metric", "2", "manual/valid_acc", "55.46%", store=filled
    )
    ok("set-metric", "2", "late/nan", "nan", store=filled)
    run = expbook.open_store(filled).run(2)
    assert [n.text for n in run.notes] == ["GPU utilization around 20%", "from *stdin*\n"]
    assert run.tags == ("gru",)
    assert (run.metrics["manual/valid_acc"].value, run.metrics["manual/valid_acc"].unit) == (
        55.46,
        "%",
    )
    assert math.isnan(run.metrics["late/nan"].value)


def test_rm_asks_unless_yes(filled: str) -> None:
    line = fails("rm", "1", store=filled, code=2)
    assert "without --yes" in line
    assert "deleted 2 runs" in ok("rm", "1", "#2", "--yes", store=filled)
    assert [r.number for r in expbook.open_store(filled).runs()] == [3]


def test_export_csv_json_parquet(filled: str, tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(ok("export", store=filled))))
    assert [r["number"] for r in rows] == ["3", "2", "1"]
    assert rows[0]["params.model.hidden"] == "256"
    assert float(rows[0]["metrics.valid/acc"]) == 0.9559
    assert float(rows[0]["min(metrics.valid/acc)"]) == pytest.approx(0.9159)
    assert rows[0]["metrics.nan/metric"] == "nan"
    data = json.loads(ok("export", "--format", "json", "--where", "number = 1", store=filled))
    assert len(data) == 1 and data[0]["name"] == "gru-128-1"
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    target = tmp_path / "runs.parquet"
    ok("export", "-f", "parquet", "-o", str(target), store=filled)
    frame = pandas.read_parquet(target)
    assert list(frame["number"]) == [3, 2, 1]
    assert math.isnan(frame.loc[0, "metrics.nan/metric"])


def test_export_metric_points(filled: str, tmp_path: Path) -> None:
    rows = list(
        csv.DictReader(
            io.StringIO(ok("export", "--metrics", "--where", "number = 3", store=filled))
        )
    )
    assert len(rows) == 11  # 5 valid/acc + 5 train/loss + 1 nan/metric
    assert set(rows[0]) == {
        "run_number",
        "run_id",
        "run_name",
        "key",
        "step",
        "epoch",
        "value",
        "time",
    }
    first = next(r for r in rows if r["key"] == "valid/acc")
    assert (first["run_number"], first["step"], first["epoch"]) == ("3", "0", "0.0")
    data = json.loads(ok("export", "--metrics", "-k", "nan/metric", "-f", "json", store=filled))
    assert data == [{"run_number": 3, "run_id": data[0]["run_id"], "run_name": "gru-256-2",
                     "key": "nan/metric", "step": 0, "epoch": None, "value": "NaN",
                     "time": data[0]["time"]}]  # fmt: skip
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    target = tmp_path / "points.parquet"
    ok("export", "--metrics", "-f", "parquet", "-o", str(target), store=filled)
    frame = pandas.read_parquet(target)
    assert len(frame) == 31 and set(frame["run_number"]) == {1, 2, 3}
    assert frame["value"].isna().sum() == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("show", "42"), 1, "no run matches '42'"),
        (("show",), 2, "Missing argument 'RUN'"),
        (("ls", "--where", "params.lr <"), 1, "expected a value"),
        (("ls", "--sort", "-bogus"), 1, "unknown field 'bogus'"),
        (("ls", "--status", "weird"), 2, "'weird' is not one of"),
        (("ls", "--nope"), 2, "No such option"),
        (("set-metric", "1", "acc", "high"), 1, "VALUE 'high' is not a number"),
        (("set-metric", "1", "bad//key", "1"), 1, "invalid metric key 'bad//key'"),
        (("tag", "1", " "), 1, "invalid tag"),
        (("export", "-f", "parquet"), 1, "pass --out FILE"),
        (("export", "-k", "loss"), 1, "add --metrics"),
        (("diff", "1", "nobody"), 1, "no run matches 'nobody'"),
        (("frobnicate",), 2, "No such command"),
        (("ls", "--where", "name = 3"), 1, "name compares to text; quote it: '3'"),
        (("ls", "--store", "sqlite:"), 1, "give the SQLite file"),
        (("db", "upgrade", "--store", "/nonexistent/typo.db"), 1, "no store at /nonexistent"),
        (("export", "-o", "/nonexistent/dir/x.csv"), 1, "cannot write /nonexistent/dir/x.csv"),
        (
            ("ls", "--store", "postgresql://nobody@127.0.0.1:1/x"),
            1,
            "cannot open store postgresql://nobody@127.0.0.1:1/x",
        ),
    ],
)
def test_errors_are_one_line_with_an_exit_code(filled: str, args, code, message) -> None:
    assert message in fails(*args, store=filled, code=code)


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    line = fails("ls", store=str(tmp_path / "nowhere.db"))
    assert "no store at" in line and "nowhere.db" in line
    assert not (tmp_path / "nowhere.db").exists()


def test_unknown_store_scheme(tmp_path: Path) -> None:
    assert "unknown scheme" in fails("ls", store="mysql://x/y")


def test_default_store_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    fill(str(tmp_path / ".expbook" / "expbook.db"))
    sub = tmp_path / "src" / "models"
    sub.mkdir(parents=True)
    result = run_cli("ls", cwd=sub)
    assert result.returncode == 0 and "gru-256-2" in result.stdout


def test_help_and_version() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "expbook demo" in result.stdout
    for command in (
        "ls",
        "show",
        "diff",
        "note",
        "tag",
        "set-metric",
        "rm",
        "export",
        "demo",
        "db",
    ):
        assert command in result.stdout
    result = run_cli("--version")
    assert result.returncode == 0 and expbook.__version__ in result.stdout


def test_db_status_and_upgrade(filled: str) -> None:
    from expbook.store.migrate import HEAD

    out = ok("db", "status", store=filled)
    assert f"schema   {HEAD}" in out and "runs     3" in out
    assert f"already at schema {HEAD}" in ok("db", "upgrade", store=filled)


@pytest.mark.postgres
def test_the_cli_on_postgresql(postgres_url: str) -> None:
    fill(postgres_url)
    out = ok("ls", "--where", "metrics.valid/acc > 0.94", store=postgres_url)
    assert "gru-256-2" in out and "gru-128-2" in out and "gru-128-1" not in out
    assert "Run #2" in ok("show", "gru-128-2", store=postgres_url)


def test_user_text_is_never_read_as_markup(sqlite_url: str) -> None:
    store = expbook.open_store(sqlite_url)
    run = store.create_run(RunSpec(name="exp[/b]", params={"note": "[bold]x[/bold]"}))
    store.create_run(RunSpec(name="exp[bs=32]", params={"note": "plain"}))
    store.add_note(run, "checkpoint written to [/ckpt/epoch10]")
    store.write(run.id, WriteBatch(update={"status": "finished"}))
    out = ok("ls", store=sqlite_url)
    assert "exp[/b]" in out and "exp[bs=32]" in out and "[bold]x[/bold]" in out
    assert "checkpoint written to [/ckpt/epoch10]" in ok("show", "1", store=sqlite_url)
    assert "noted on #1 exp[/b]" in ok("note", "1", "[red]n[/red]", store=sqlite_url)


def test_rm_refuses_a_running_run_without_force(sqlite_url: str) -> None:
    store = expbook.open_store(sqlite_url)
    store.create_run(RunSpec(name="live", heartbeat_interval=60))
    line = fails("rm", "1", "--yes", store=sqlite_url)
    assert "#1 is still running; stop it first, or pass --force" in line
    assert "deleted 1 run" in ok("rm", "1", "--yes", "--force", store=sqlite_url)


def test_set_metric_takes_negative_values(filled: str) -> None:
    assert "#1 delta/loss = -0.31" in ok("set-metric", "1", "delta/loss", "-0.31", store=filled)
    assert expbook.open_store(filled).run(1).metrics["delta/loss"].value == -0.31


def test_parquet_export_with_a_param_of_mixed_types(sqlite_url: str, tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    store = expbook.open_store(sqlite_url)
    for lr in (0.001, "auto", 3):
        store.create_run(RunSpec(params={"lr": lr, "layers": 2 if lr != 3 else 2.5}))
    target = tmp_path / "mixed.parquet"
    ok("export", "-f", "parquet", "-o", str(target), store=sqlite_url)
    frame = pandas.read_parquet(target)
    assert list(frame["params.lr"]) == ["3", "auto", "0.001"]  # text stays text
    assert list(frame["params.layers"]) == [2.5, 2.0, 2.0]
