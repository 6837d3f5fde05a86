"""``expbook sweep ls|show|stop|resume|edit|attach|rm`` on real stores (SQLite and PostgreSQL):
sweeps and trials made with the store's sweep methods, runs with ``expbook.start_run`` (no agent),
so every number the commands print is known in advance."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import expbook
from expbook.cli.main import run_cli as cli_main
from expbook.model import TrialState
from expbook.store import Store
from expbook.sweep import analysis, space
from expbook.sweep.spec import parse_spec
from tests.helpers import EXPBOOK as EXPBOOK_SCRIPT
from tests.helpers import run_cli

SPEC: dict[str, Any] = {
    "method": "random",
    "metric": {"name": "valid/loss", "goal": "minimize"},
    "parameters": {
        "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1},
        "hidden": {"values": [64, 128, 256]},
        "layers": {"value": 2},
    },
    "expbook": {"budget": {"trials": 30}},
}


def loss(lr: float, hidden: int) -> float:
    """lr decides (the log distance from 1e-2), hidden barely matters."""
    return abs(math.log10(lr) + 2) + 0.001 * (hidden // 64)


def new_run(
    store: Store,
    params: dict[str, Any],
    value: float | None,
    *,
    status: str = "finished",
    key: str = "valid/loss",
) -> int:
    with expbook.start_run(store=store, params=params, system_metrics=False, capture=False) as run:
        if value is not None:
            run.log({key: value + 1.0}, step=0)
            run.log({key: value}, step=1)
        run.finish(status)
    return run.number


def add_trial(
    store: Store,
    sweep_id: str,
    params: dict[str, Any],
    *,
    state: TrialState,
    run_id: str | None = None,
    value: float | None = None,
    pruned_step: int | None = None,
    config: int | None = None,
    repeat: int = 0,
    key: str | None = None,
) -> int:
    """A trial as an agent leaves it: added running, then ended."""
    for _ in range(20):
        version = store.get_sweep(sweep_id).version
        trial = store.add_trial(
            sweep_id,
            expected_version=version,
            params=params,
            config_key=key or space.config_key(params),
            config=config,
            repeat=repeat,
            worker="w1",
            state=TrialState.RUNNING,
        )
        if trial is not None:
            break
    else:  # pragma: no cover
        raise AssertionError("add_trial kept conflicting")
    if state != TrialState.RUNNING:
        fields: dict[str, Any] = {"state": state, "run_id": run_id, "pruned_step": pruned_step}
        if value is not None:
            fields["values"] = [value]
        assert store.update_trial(sweep_id, trial.number, worker="w1", **fields)
    return trial.number


class Made:
    def __init__(self, url: str, name: str, sweep_id: str) -> None:
        self.url, self.name, self.sweep_id = url, name, sweep_id
        self.values: dict[int, float] = {}  # trial number -> value
        self.runs: dict[int, int] = {}  # trial number -> run number
        self.params: dict[int, dict[str, Any]] = {}


def make_sweep(url: str, name: str = "lr-search", configs: int = 12, seed: int = 0) -> Made:
    """``configs`` finished trials (lr spread over its range, hidden random), then one pruned,
    one failed and one still running."""
    rng = random.Random(seed)
    store = expbook.open_store(url)
    sweep = store.create_sweep(name, SPEC, experiment="tuning")
    made = Made(url, name, sweep.id)
    for i in range(configs):
        lr = 10 ** (-4 + 3 * (i + 0.5) / configs)
        params = {"lr": lr, "hidden": rng.choice([64, 128, 256]), "layers": 2}
        value = loss(lr, params["hidden"])
        number = new_run(store, params, value)
        run_id = store.run(number).id
        trial = add_trial(
            store, sweep.id, params, state=TrialState.FINISHED, run_id=run_id, value=value
        )
        made.values[trial], made.runs[trial], made.params[trial] = value, number, params
    bad = {"lr": 0.09, "hidden": 64, "layers": 2}
    pruned_run = new_run(store, bad, 2.0, status="pruned")
    add_trial(
        store,
        sweep.id,
        bad,
        state=TrialState.PRUNED,
        run_id=store.run(pruned_run).id,
        value=2.0,
        pruned_step=1,
    )
    add_trial(store, sweep.id, {"lr": 0.05, "hidden": 64, "layers": 2}, state=TrialState.FAILED)
    add_trial(store, sweep.id, {"lr": 0.02, "hidden": 128, "layers": 2}, state=TrialState.RUNNING)
    store.close()
    return made


def cli(capsys: pytest.CaptureFixture[str], *args: str, store: str) -> tuple[int, str, str]:
    """The CLI in this process: (exit status, stdout, stderr)."""
    code = cli_main([*args, "--store", store])
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *args: str, store: str) -> str:
    code, out, err = cli(capsys, *args, store=store)
    assert code == 0, err
    return out


def fails(capsys: pytest.CaptureFixture[str], *args: str, store: str) -> str:
    """The one line of error a failing command prints (exit status 1 or 2)."""
    code, out, err = cli(capsys, *args, store=store)
    assert code in (1, 2), (code, out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def made(store_url: str) -> Made:
    return make_sweep(store_url)


@pytest.fixture
def made_sqlite(sqlite_url: str) -> Made:
    """For the many error cases, which do not depend on the backend."""
    return make_sweep(sqlite_url)


# ---------------------------------------------------------------------------------------------
# ls


def test_ls_counts_trials_by_state_against_the_budget(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = json.loads(ok(capsys, "sweep", "ls", "--json", store=made.url))
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == "lr-search" and row["state"] == "running"
    assert row["method"] == "random" and row["experiment"] == "tuning"
    assert row["metric"] == {"name": "valid/loss", "goal": "minimize"}
    assert row["trials"] == {
        "queued": 0,
        "running": 1,
        "finished": 12,
        "failed": 1,
        "pruned": 1,
        "crashed": 0,
        "stopped": 0,
    }
    assert row["budget"] == 30
    best = min(made.values, key=made.values.__getitem__)
    assert row["best"] == pytest.approx(made.values[best])
    assert row["best_trial"] == best
    text = ok(capsys, "sweep", "ls", store=made.url)
    lines = [line for line in text.splitlines() if line.strip()]
    header, line = lines[0], lines[2]
    assert header.split() == [
        "sweep",
        "state",
        "method",
        "metric",
        "done",
        "running",
        "pruned",
        "failed",
        "crashed",
        "budget",
        "best",
        "created",
    ]
    words = line.split()
    assert words[:5] == ["lr-search", "running", "random", "valid/loss", "(min)"]
    assert words[5:11] == ["12", "1", "1", "1", "0", "30"]
    assert words[11] == f"{made.values[best]:.4g}"


def test_ls_with_no_sweep_says_how_to_start_one(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expbook.open_store(sqlite_url).close()
    assert "expbook sweep run SPEC.yaml" in ok(capsys, "sweep", "ls", store=sqlite_url)
    assert json.loads(ok(capsys, "sweep", "ls", "--json", store=sqlite_url)) == []


# ---------------------------------------------------------------------------------------------
# show


def test_show_prints_the_best_trial_the_table_and_importance(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    best = min(made.values, key=made.values.__getitem__)
    data = json.loads(ok(capsys, "sweep", "show", made.name, "--json", store=made.url))
    assert data["best"]["trial"] == best
    assert data["best"]["run"] == made.runs[best]
    assert data["best"]["value"] == pytest.approx(made.values[best])
    assert data["best"]["params"] == made.params[best]
    # the table: finished trials best first, then the pruned one by value, then the others
    numbers = [row["number"] for row in data["trial_rows"]]
    finished = sorted(made.values, key=made.values.__getitem__)
    assert numbers[: len(finished)] == finished
    assert [row["state"] for row in data["trial_rows"][len(finished) :]] == [
        "pruned",
        "failed",
        "running",
    ]
    pruned = data["trial_rows"][len(finished)]
    assert pruned["pruned_step"] == 1 and pruned["value"] == 2.0
    assert set(data["trial_rows"][0]["params"]) == {"lr", "hidden"}  # layers is constant
    assert data["trial_count"] == data["trials_shown"] == 15
    # lr decides the loss, hidden barely: PED-ANOVA puts lr first
    importance = data["importance"]
    assert importance["evaluator"].startswith("PED-ANOVA")
    assert importance["configurations"] == 12
    assert list(importance["params"]) == ["lr", "hidden"]
    assert importance["params"]["lr"] > 0.6
    assert data["noise"] is None  # no repeats
    text = ok(capsys, "sweep", "show", made.name, store=made.url)
    assert f"best: trial {best} (run #{made.runs[best]}): valid/loss = " in text
    assert "parameter importance (Optuna's PED-ANOVA over 12 configurations)" in text
    assert "layers" in text and "= 2" in text  # the spec summary lists the constant
    lines = text.splitlines()
    first_row = next(i for i, line in enumerate(lines) if line.split()[:1] == ["trial"]) + 2
    assert lines[first_row].split()[:3] == [str(best), f"#{made.runs[best]}", "finished"]


def test_show_limit_leaves_out_the_worst_trials(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads(ok(capsys, "sweep", "show", made.name, "-n", "3", "--json", store=made.url))
    assert data["trials_shown"] == 3 and data["trial_count"] == 15
    text = ok(capsys, "sweep", "show", made.name, "-n", "3", store=made.url)
    assert "12 more trials (--limit 0 shows all)" in text


def test_importance_needs_two_finished_configurations(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    made = make_sweep(sqlite_url, configs=1)
    data = json.loads(ok(capsys, "sweep", "show", made.name, "--json", store=sqlite_url))
    assert data["importance"]["params"] == {}
    assert data["importance"]["reason"] == (
        "needs at least 2 finished configurations in the space, has 1"
    )
    text = ok(capsys, "sweep", "show", made.name, store=sqlite_url)
    assert "parameter importance: needs at least 2 finished configurations" in text


def test_importance_leaves_out_configurations_outside_an_edited_space() -> None:
    spec = parse_spec(SPEC)
    trials = []
    for number, lr in enumerate([1e-4, 1e-3, 1e-2, 5e-2]):
        params = {"lr": lr, "hidden": 64, "layers": 2}
        trials.append(_trial(number, params, loss(lr, 64)))
    narrowed = parse_spec(
        {
            **SPEC,
            "parameters": {
                **SPEC["parameters"],
                "lr": {"distribution": "log_uniform_values", "min": 2e-2, "max": 1e-1},
            },
        }
    )
    assert analysis.importance(spec, analysis.configurations(spec, trials)).configurations == 4
    found = analysis.importance(narrowed, analysis.configurations(narrowed, trials))
    assert found.values == {}
    assert found.reason == (
        "needs at least 2 finished configurations in the space, has 1 "
        "(3 more outside the current space or NaN)"
    )
    # the trials stay: ranked and listed
    assert len(analysis.configurations(narrowed, trials)) == 4


def _trial(number: int, params: dict[str, Any], value: float | None) -> Any:
    from expbook.model import TrialRecord

    return TrialRecord(
        "s",
        number,
        number,
        0,
        space.config_key(params),
        params,
        TrialState.FINISHED,
        values=(value,),
    )


def test_nan_ranks_after_numbers() -> None:
    spec = parse_spec(SPEC)
    trials = [
        _trial(0, {"lr": 1e-3, "hidden": 64, "layers": 2}, math.nan),
        _trial(1, {"lr": 1e-2, "hidden": 64, "layers": 2}, 5.0),
    ]
    assert [c.best_trial.number for c in analysis.configurations(spec, trials)] == [1, 0]
    maximize = parse_spec({**SPEC, "metric": {"name": "valid/loss", "goal": "maximize"}})
    assert [c.best_trial.number for c in analysis.configurations(maximize, trials)] == [1, 0]


# ---------------------------------------------------------------------------------------------
# repeats: beyond noise, with the numbers of expbook compare


def make_repeats(url: str) -> tuple[str, list[int], list[int]]:
    """Two configurations of 3 seeded repeats each: A (lr=1e-2) a little better than B."""
    spec = {**SPEC, "expbook": {"repeats": 3, "seed_param": "seed"}}
    store = expbook.open_store(url)
    sweep = store.create_sweep("seeds", spec)
    runs: dict[str, list[int]] = {"a": [], "b": []}
    noise = {"a": [0.003, -0.002, 0.001], "b": [0.002, -0.003, 0.004]}
    for label, lr, base in (("a", 1e-2, 0.30), ("b", 1e-3, 0.32)):
        params = {"lr": lr, "hidden": 64, "layers": 2}
        config = None
        for repeat, jitter in enumerate(noise[label]):
            number = new_run(store, {**params, "seed": repeat}, base + jitter)
            run = store.run(number)
            trial = add_trial(
                store,
                sweep.id,
                {**params, "seed": repeat},  # as the agent's trials hold it
                state=TrialState.FINISHED,
                run_id=run.id,
                value=run.metric("valid/loss"),
                config=config,
                repeat=repeat,
                key=space.config_key(params),
            )
            config = next(t.config for t in store.list_trials(sweep.id) if t.number == trial)
            runs[label].append(number)
    store.close()
    return "seeds", runs["a"], runs["b"]


def test_noise_verdict_is_expbook_compare_on_the_same_runs(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, best_runs, runner_runs = make_repeats(store_url)
    data = json.loads(ok(capsys, "sweep", "show", name, "--json", store=store_url))
    assert data["best"]["params"] == {"lr": 1e-2, "hidden": 64, "layers": 2}  # not the seed
    assert data["best"]["runs"] == best_runs and data["repeats"] == 3
    noise = data["noise"]
    assert noise["best"]["runs"] == best_runs and noise["runner_up"]["runs"] == runner_runs
    compare_args = [
        ",".join(map(str, runner_runs)),
        ",".join(map(str, best_runs)),
        "--metric",
        "valid/loss",
    ]
    assert noise["compare"] == "expbook compare " + " ".join(compare_args)
    compared = json.loads(ok(capsys, "compare", *compare_args, "--json", store=store_url))
    assert noise["difference"] == pytest.approx(compared["difference"])
    assert noise["ci"] == pytest.approx(compared["ci"])
    assert noise["p_value"] == pytest.approx(compared["p_value"])
    assert noise["t"] == pytest.approx(compared["t"]) and noise["df"] == pytest.approx(
        compared["df"]
    )
    assert noise["distinguishable"] == compared["distinguishable"]
    assert noise["best"]["mean"] == pytest.approx(compared["b"]["mean"])
    assert noise["runner_up"]["ci"] == pytest.approx(compared["a"]["ci"])
    assert noise["verdict"].endswith(compared["verdict"])
    # 0.3007 vs 0.321 with sd ~0.003 over 3 repeats each: the best wins beyond noise
    assert compared["distinguishable"] is True and noise["difference"] < 0
    assert noise["verdict"].startswith("the best is better than the runner-up beyond noise")
    text = ok(capsys, "sweep", "show", name, store=store_url)
    assert f"p = {compared['p_value']:.3g}" in text
    assert "the best is better than the runner-up beyond noise: distinguishable" in text
    runs = ", ".join(f"#{n}" for n in best_runs)
    assert f"configuration mean 0.3007 ± 0.0025 (n=3) over {runs}" in text


def test_an_attached_seeded_run_is_the_next_repeat_of_its_configuration(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name, best_runs, _ = make_repeats(sqlite_url)
    store = expbook.open_store(sqlite_url)
    extra = new_run(store, {"lr": 1e-2, "hidden": 64, "layers": 2, "seed": 7}, 0.301)
    store.close()
    ok(capsys, "sweep", "attach", name, str(extra), store=sqlite_url)
    store = expbook.open_store(sqlite_url)
    trials = store.list_trials(store.get_sweep(name).id)
    store.close()
    attached = trials[-1]
    assert attached.params == {"lr": 1e-2, "hidden": 64, "layers": 2, "seed": 7}
    assert (attached.config, attached.repeat) == (trials[0].config, 3)
    assert attached.config_key == trials[0].config_key
    data = json.loads(ok(capsys, "sweep", "show", name, "--json", store=sqlite_url))
    assert data["best"]["runs"] == [*best_runs, extra]


def test_noise_with_one_repeat_says_it_is_unknown(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {**SPEC, "expbook": {"repeats": 3}}
    store = expbook.open_store(sqlite_url)
    sweep = store.create_sweep("few", spec)
    for lr in (1e-2, 1e-3):
        params = {"lr": lr, "hidden": 64, "layers": 2}
        add_trial(store, sweep.id, params, state=TrialState.FINISHED, value=loss(lr, 64))
    store.close()
    noise = json.loads(ok(capsys, "sweep", "show", "few", "--json", store=sqlite_url))["noise"]
    assert noise["reason"] == (
        "the best has 1 finished repeat(s), the runner-up 1: run-to-run "
        "noise needs at least 2 of each"
    )
    assert noise["verdict"].startswith("is the best better than the runner-up? unknown")


# ---------------------------------------------------------------------------------------------
# stop, resume, rm


def test_stop_and_resume(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(capsys, "sweep", "stop", made.name, store=made.url)
    assert out == (
        "stopped sweep 'lr-search': agents start no new trial; its agents stop the 1 running "
        "trial (marked stopped, not counted toward the budget) and exit; continue it with: "
        "expbook sweep resume lr-search\n"
    )
    store = expbook.open_store(made.url)
    assert store.get_sweep(made.name).state == "stopped"
    assert store.get_sweep(made.name).ended_at is not None
    assert ok(capsys, "sweep", "stop", made.name, store=made.url) == (
        "sweep 'lr-search' is stopped already\n"
    )
    assert json.loads(ok(capsys, "sweep", "ls", "--json", store=made.url))[0]["state"] == "stopped"
    out = ok(capsys, "sweep", "resume", made.name, store=made.url)
    assert out.startswith("resumed sweep 'lr-search' (was stopped); start agents with: ")
    assert store.get_sweep(made.name).state == "running"
    store.close()


def test_resume_says_when_the_budget_is_spent(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    make_sweep(sqlite_url, configs=27)  # 27 + pruned + failed + running = 30 = the budget
    ok(capsys, "sweep", "stop", "lr-search", store=sqlite_url)
    out = ok(capsys, "sweep", "resume", "lr-search", store=sqlite_url)
    assert out.endswith(
        "agents will find it done: all 30 trials of the budget were started; raise the budget "
        "with expbook sweep edit lr-search --trials N (or --timeout)\n"
    )
    ok(capsys, "sweep", "edit", "lr-search", "--trials", "40", store=sqlite_url)
    ok(capsys, "sweep", "stop", "lr-search", store=sqlite_url)
    assert "agents will find it done" not in ok(
        capsys, "sweep", "resume", "lr-search", store=sqlite_url
    )


def test_rm_keeps_the_runs(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    err = fails(capsys, "sweep", "rm", made.name, "--yes", store=made.url)
    assert err == (
        "error: sweep 'lr-search' is running; stop it first (expbook sweep stop "
        "lr-search), or pass --force\n"
    )
    ok(capsys, "sweep", "edit", made.name, "--trials", "40", store=made.url)  # a history entry
    out = ok(capsys, "sweep", "rm", made.name, "--yes", "--force", store=made.url)
    assert out == "deleted sweep 'lr-search' and its 15 trials; their runs stay\n"
    store = expbook.open_store(made.url)
    assert store.list_sweeps() == []
    with store.engine.connect() as connection:  # the sweep's spec history went with it
        assert connection.execute(sa.text("select count(*) from sweep_specs")).scalar() == 0
    assert len(store.runs()) == 13
    store.close()


# ---------------------------------------------------------------------------------------------
# edit


def stored_spec(url: str, name: str) -> dict[str, Any]:
    store = expbook.open_store(url)
    try:
        return dict(store.get_sweep(name).spec)
    finally:
        store.close()


def test_edit_round_trip(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    before = expbook.open_store(made.url)
    version = before.get_sweep(made.name).version
    before.close()
    out = ok(
        capsys,
        "sweep",
        "edit",
        made.name,
        "--param",
        "lr.min=1e-5",
        "--param",
        "lr.max=0.3",
        "--add-values",
        "hidden=[512, 64]",
        "--set",
        "parameters.dropout={min: 0, max: 0.3}",
        "--trials",
        "50",
        "--run-cap",
        "60",
        "--timeout",
        "2h",
        store=made.url,
    )
    assert "-    max: 0.1\n-    min: 0.0001\n+    max: 0.3\n+    min: 1.0e-05\n" in out
    assert "+  dropout:\n+    max: 0.3\n+    min: 0\n" in out
    assert "+    - 512\n" in out and "+run_cap: 60\n" in out
    assert f"edited sweep 'lr-search': version {version} -> {version + 1};" in out
    spec = stored_spec(made.url, made.name)
    assert spec["parameters"]["lr"] == {
        "distribution": "log_uniform_values",
        "min": 1e-5,
        "max": 0.3,
    }
    assert spec["parameters"]["hidden"] == {"values": [64, 128, 256, 512]}
    assert spec["parameters"]["dropout"] == {"min": 0, "max": 0.3}
    assert spec["expbook"]["budget"] == {"trials": 50, "timeout": "2h"}
    assert spec["run_cap"] == 60
    parsed = parse_spec(spec)
    assert parsed.budget() == 50 and parsed.timeout == 7200
    # the history keeps the spec it replaced; show --history prints the change
    data = json.loads(
        ok(capsys, "sweep", "show", made.name, "--json", "--history", store=made.url)
    )
    assert [e["version"] for e in data["edits"]] == [version]
    assert data["edits"][0]["spec"] == SPEC
    text = ok(capsys, "sweep", "show", made.name, "--history", store=made.url)
    assert "edit 1, " in text and f"(replaced version {version}):" in text
    assert "+  dropout:" in text
    plain = ok(capsys, "sweep", "show", made.name, store=made.url)
    assert (
        "the spec was edited 1 time; see them with expbook sweep show lr-search --history" in plain
    )
    # importance now leaves out nothing (every trial's lr lies in the wider range) but the
    # trials lack dropout: outside the new space, they stay as history
    assert data["importance"]["configurations"] == 0
    assert "12 more outside the current space" in data["importance"]["reason"]
    assert data["best"]["trial"] == min(made.values, key=made.values.__getitem__)


def test_edit_dry_run_and_spec_file(
    made: Made, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ok(capsys, "sweep", "edit", made.name, "--trials", "45", "--dry-run", store=made.url)
    assert "-    trials: 30\n+    trials: 45\n" in out
    assert out.endswith("dry run: sweep 'lr-search' not changed\n")
    assert stored_spec(made.url, made.name) == SPEC
    new = {
        **SPEC,
        "method": "bayes",
        "parameters": {**SPEC["parameters"], "hidden": {"values": [128, 256]}},
    }
    path = tmp_path / "v2.yaml"
    import yaml

    path.write_text(yaml.safe_dump(new))
    out = ok(capsys, "sweep", "edit", made.name, "--spec", str(path), store=made.url)
    assert "-method: random\n+method: bayes\n" in out
    assert stored_spec(made.url, made.name) == new


def test_edit_a_nested_parameter(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    store = expbook.open_store(sqlite_url)
    spec = {
        "method": "random",
        "parameters": {
            "optimizer": {
                "parameters": {"lr": {"min": 0.001, "max": 0.1}, "name": {"values": ["adam"]}}
            }
        },
    }
    store.create_sweep("nested", spec)
    store.close()
    ok(
        capsys,
        "sweep",
        "edit",
        "nested",
        "--param",
        "optimizer.lr.max=0.5",
        "--add-values",
        "optimizer.name=sgd",
        store=sqlite_url,
    )
    inner = stored_spec(sqlite_url, "nested")["parameters"]["optimizer"]["parameters"]
    assert inner == {"lr": {"min": 0.001, "max": 0.5}, "name": {"values": ["adam", "sgd"]}}
    ok(
        capsys,
        "sweep",
        "edit",
        "nested",
        "--set",
        "parameters.optimizer.parameters.lr={value: 0.01}",
        store=sqlite_url,
    )
    inner = stored_spec(sqlite_url, "nested")["parameters"]["optimizer"]["parameters"]
    assert inner["lr"] == {"value": 0.01}
    ok(capsys, "sweep", "edit", "nested", "--add-values", "optimizer.lr=0.02", store=sqlite_url)
    inner = stored_spec(sqlite_url, "nested")["parameters"]["optimizer"]["parameters"]
    assert inner["lr"] == {"values": [0.01, 0.02]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--param", "lrr.max=0.1"],
            "error: --param: no parameter 'lrr' in the sweep (did you mean 'lr'?)\n",
        ),
        (
            ["--param", "lr.maximum=0.1"],
            "error: --param 'lr.maximum=0.1': expected NAME.KEY=VALUE with KEY one of min, "
            "max, q, mu, sigma, a, b, value, values, probabilities, distribution\n",
        ),
        (
            ["--param", "lr.min=0.5"],
            "error: sweep spec: parameters.lr: min 0.5 is greater than max 0.1\n",
        ),
        (
            ["--add-values", "lr=0.5"],
            "error: --add-values: parameter 'lr' is a range, not a list of values; widen it with "
            "--param lr.min=... or --param lr.max=...\n",
        ),
        (
            ["--add-values", "hidden=128"],
            "error: nothing to change: sweep 'lr-search' already has that spec\n",
        ),
        (
            ["--set", "parameters.hidden={values: [1, 2"],
            "error: --set 'parameters.hidden={values: [1, 2': not a YAML value: expected ',' or "
            "']', but got '<stream end>'\n",
        ),
        (
            ["--set", "metric.name=train/loss"],
            "error: sweep spec: metric: cannot change in a started sweep: 13 trials hold "
            "values of valid/loss (minimize); create a new sweep\n",
        ),
        (
            ["--set", "expbook.experiment=other"],
            "error: sweep spec: expbook.experiment: cannot change in a started sweep (its runs "
            "are in 'tuning'); move runs with `expbook experiment move`\n",
        ),
        (
            ["--set", "expbook.budget.trials=0"],
            "error: sweep spec: expbook.budget.trials: 0 is less than 1\n",
        ),
        (
            ["--set", "method"],
            "error: --set 'method': expected PATH=VALUE, e.g. "
            "'parameters.dropout={min: 0, max: 0.3}'\n",
        ),
        (
            [],
            "error: nothing to change: give --param, --add-values, --set, --trials, --run-cap, "
            "--timeout or --spec\n",
        ),
        (
            ["--spec", "missing.yaml"],
            "error: sweep spec missing.yaml: cannot read the file: No such file or directory\n",
        ),
        (
            ["--timeout", "soon"],
            "error: sweep spec: expbook.budget.timeout: expected seconds or a duration such as "
            '2h, 30m, 1h30m, got "soon"\n',
        ),
    ],
)
def test_edit_errors_are_one_line_and_change_nothing(
    made_sqlite: Made, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    made = made_sqlite
    assert fails(capsys, "sweep", "edit", made.name, *args, store=made.url) == message
    assert stored_spec(made.url, made.name) == SPEC


EDITOR = """
import sys, time
import expbook
from expbook.sweep.edit import apply_edit, set_param_key
url, assignment, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = expbook.open_store(url)
time.sleep(max(0.0, start - time.time()))
result = apply_edit(store, "lr-search", [set_param_key(assignment)])
print(result.attempts, result.before.version, result.after.version)
"""

ADDER = """
import sys, time
import expbook
from expbook.model import TrialState
url, start = sys.argv[1], float(sys.argv[2])
store = expbook.open_store(url)
time.sleep(max(0.0, start - time.time()))
added = 0
while added < 30:
    sweep = store.get_sweep("lr-search")
    lr = 10 ** (-3 + added / 30)
    if store.add_trial(sweep.id, expected_version=sweep.version, params={"lr": lr, "hidden": 64,
                       "layers": 2}, config_key=str(lr), worker="w", state=TrialState.QUEUED):
        added += 1
"""


def test_concurrent_edits_both_land(made: Made) -> None:
    """Two editors and an agent-like process adding trials, all at once: each edit is applied
    to the spec as it is when its compare-and-set succeeds, so both changes land, and the
    history keeps each replaced spec."""
    start = time.time() + 1.5
    editors = [
        subprocess.Popen(
            [sys.executable, "-c", EDITOR, made.url, assignment, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for assignment in ("lr.max=0.2", "lr.min=1e-5")
    ]
    adder = subprocess.Popen(
        [sys.executable, "-c", ADDER, made.url, str(start)], stderr=subprocess.PIPE, text=True
    )
    results = []
    for process in editors:
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.append([int(word) for word in out.split()])
    assert adder.wait(timeout=60) == 0, adder.stderr.read() if adder.stderr else ""
    spec = stored_spec(made.url, made.name)
    assert spec["parameters"]["lr"] == {
        "distribution": "log_uniform_values",
        "min": 1e-5,
        "max": 0.2,
    }
    # the versions each edit replaced differ: one edit came after the other
    replaced = sorted(before for _, before, _ in results)
    assert replaced[0] != replaced[1]
    store = expbook.open_store(made.url)
    from expbook.sweep.edit import history

    entries = history(store, store.get_sweep(made.name))
    assert [e.version for e in entries] == replaced
    assert entries[0].spec == SPEC
    assert entries[1].spec["parameters"]["lr"] != SPEC["parameters"]["lr"]
    assert len(store.list_trials(made.sweep_id)) == 15 + 30
    store.close()


# ---------------------------------------------------------------------------------------------
# attach


def test_attach_runs_in_the_space(made: Made, capsys: pytest.CaptureFixture[str]) -> None:
    store = expbook.open_store(made.url)
    good = new_run(store, {"lr": 0.01, "hidden": 256, "layers": 2, "note": "by hand"}, 0.001)
    again = new_run(store, {"lr": 0.01, "hidden": 256, "layers": 2}, 0.003)
    store.close()
    out = ok(capsys, "sweep", "attach", made.name, str(good), f"#{again}", store=made.url)
    assert out == (
        f"attached run #{good} to sweep 'lr-search' as trial 15: valid/loss = 0.001\n"
        f"attached run #{again} to sweep 'lr-search' as trial 16: valid/loss = "
        "0.003\n"
    )
    store = expbook.open_store(made.url)
    trials = store.list_trials(made.sweep_id)
    first, second = trials[15], trials[16]
    assert first.state == TrialState.FINISHED and first.run_number == good
    assert first.params == {"lr": 0.01, "hidden": 256, "layers": 2}
    assert first.values == (0.001,)
    assert (second.config, second.repeat) == (first.config, 1)  # the same configuration
    assert "sweep:lr-search" in store.run(good).tags
    store.close()
    data = json.loads(ok(capsys, "sweep", "show", made.name, "--json", store=made.url))
    assert data["best"]["trial"] == 15 and data["best"]["values"] == [0.001, 0.003]


@pytest.mark.parametrize(
    ("params", "status", "metric", "message"),
    [
        (
            {"lr": 0.5, "hidden": 64, "layers": 2},
            "finished",
            "valid/loss",
            "run #{n} is outside sweep 'lr-search': parameters.lr: 0.5 lies outside 0.0001..0.1",
        ),
        (
            {"lr": 0.01, "hidden": 100, "layers": 2},
            "finished",
            "valid/loss",
            "run #{n} is outside sweep 'lr-search': parameters.hidden: 100 is not one of its "
            "values",
        ),
        (
            {"lr": 0.01, "layers": 2},
            "finished",
            "valid/loss",
            "run #{n} is outside sweep 'lr-search': parameters.hidden: missing from the "
            "configuration",
        ),
        (
            {"lr": 0.01, "hidden": 64, "layers": 2},
            "finished",
            "train/loss",
            "run #{n} has no metric 'valid/loss' (the sweep's minimize target)",
        ),
        (
            {"lr": 0.01, "hidden": 64, "layers": 2},
            "failed",
            "valid/loss",
            "run #{n} is failed; only finished runs can be attached",
        ),
    ],
)
def test_attach_errors_name_the_run_and_attach_nothing(
    made_sqlite: Made,
    capsys: pytest.CaptureFixture[str],
    params: dict[str, Any],
    status: str,
    metric: str,
    message: str,
) -> None:
    made = made_sqlite
    store = expbook.open_store(made.url)
    good = new_run(store, {"lr": 0.01, "hidden": 64, "layers": 2}, 0.1)
    bad = new_run(store, params, 0.1, status=status, key=metric)
    store.close()
    err = fails(capsys, "sweep", "attach", made.name, str(good), str(bad), store=made.url)
    assert err == f"error: {message.format(n=bad)}\n"
    store = expbook.open_store(made.url)
    assert len(store.list_trials(made.sweep_id)) == 15  # not even the good one
    store.close()


def test_attach_twice_and_to_a_stopped_sweep(
    made: Made, capsys: pytest.CaptureFixture[str]
) -> None:
    run = made.runs[0]
    err = fails(capsys, "sweep", "attach", made.name, str(run), store=made.url)
    assert err == f"error: run #{run} is trial 0 of sweep 'lr-search' already\n"
    ok(capsys, "sweep", "stop", made.name, store=made.url)
    err = fails(capsys, "sweep", "attach", made.name, str(run), store=made.url)
    assert err == (
        "error: sweep 'lr-search' is stopped; trials are added only to a running "
        "sweep (expbook sweep resume lr-search)\n"
    )
    assert "no run" in fails(capsys, "sweep", "attach", made.name, "999", store=made.url)


# ---------------------------------------------------------------------------------------------
# the real console script: one line, non-zero exit


@pytest.mark.parametrize(
    "args",
    [
        ["sweep", "show", "nope"],
        ["sweep", "stop", "nope"],
        ["sweep", "edit", "lr-search", "--param", "lr.min=abc"],
        ["sweep", "attach", "lr-search", "424242"],
        ["sweep", "rm", "lr-search"],
    ],
)
def test_errors_from_the_console_script_are_one_line(sqlite_url: str, args: Sequence[str]) -> None:
    if not Path(sqlite_url).exists():
        make_sweep(sqlite_url, configs=2)
    result = run_cli(*args, store=sqlite_url)
    assert result.returncode == 1, result
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


# ---------------------------------------------------------------------------------------------
# with a real agent: stop, resume


HELD = """
import os, sys, time
while os.path.exists("hold"):
    time.sleep(0.05)
lr = float(sys.argv[1].split("=")[1])
print(f"step 0: valid/loss={abs(lr - 0.01):.4f}", flush=True)
"""


def test_stop_ends_a_real_agent_and_resume_continues(tmp_path: Path) -> None:
    """`sweep stop` while an agent runs a trial: the agent stops it (marked stopped) and exits;
    after `sweep resume` another agent runs the next trial to the end."""
    (tmp_path / "held.py").write_text(HELD)
    (tmp_path / "sweep.yaml").write_text(
        "program: held.py\nmethod: grid\nmetric: {name: valid/loss, goal: minimize}\n"
        "parameters:\n  lr: {values: [0.01, 0.1]}\n"
    )
    (tmp_path / "hold").write_text("")
    url = str(tmp_path / "store.db")
    env = {"EXPBOOK_SWEEP_HEARTBEAT": "0.3", "EXPBOOK_SWEEP_POLL": "0.2"}
    created = run_cli("sweep", "create", "sweep.yaml", "--name", "live", store=url, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    agent = subprocess.Popen(
        [EXPBOOK_SCRIPT, "sweep", "agent", "live", "--grace", "2"], cwd=tmp_path,
        env={**os.environ, "EXPBOOK_STORE": url, **env}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        store = expbook.open_store(url)
        deadline = time.time() + 60
        while not any(
            t.state == TrialState.RUNNING for t in store.list_trials(store.get_sweep("live").id)
        ):
            assert time.time() < deadline and agent.poll() is None, agent.stdout.read()  # type: ignore[union-attr]
            time.sleep(0.1)
        stopped = run_cli("sweep", "stop", "live", store=url)
        assert "its agents stop the 1 running trial" in stopped.stdout, stopped.stderr
        output, _ = agent.communicate(timeout=60)
    finally:
        agent.kill()
    trials = store.list_trials(store.get_sweep("live").id)
    assert [t.state for t in trials] == [TrialState.STOPPED], output
    (tmp_path / "hold").unlink()
    assert run_cli("sweep", "resume", "live", store=url).returncode == 0
    again = run_cli("sweep", "agent", "live", "--count", "1", store=url, cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    trials = store.list_trials(store.get_sweep("live").id)
    assert [t.state for t in trials] == [TrialState.STOPPED, TrialState.FINISHED]
    assert trials[1].params == trials[0].params  # the stopped configuration, run again
    store.close()
    data = json.loads(run_cli("sweep", "show", "live", "--json", store=url).stdout)
    assert data["best"]["params"] == {"lr": 0.01} and data["best"]["value"] == 0.0


def test_show_gives_the_pareto_front_of_several_metrics(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {
        "method": "random",
        "metrics": [{"name": "loss", "goal": "minimize"}, {"name": "speed", "goal": "maximize"}],
        "parameters": {"hidden": {"values": [1, 2, 3, 4]}},
    }
    store = expbook.open_store(sqlite_url)
    sweep = store.create_sweep("tradeoff", spec)
    # (loss, speed): 1 and 3 are trade-offs; 2 loses to 1 on both; 4 ties 1 on loss, slower
    for hidden, values in ((1, [0.5, 10.0]), (2, [0.6, 9.0]), (3, [0.9, 30.0]), (4, [0.5, 5.0])):
        number = add_trial(store, sweep.id, {"hidden": hidden}, state=TrialState.FINISHED)
        assert store.update_trial(sweep.id, number, worker=None, values=values)
    add_trial(store, sweep.id, {"hidden": 5}, state=TrialState.FAILED)
    front = analysis.pareto_front(parse_spec(spec), store.list_trials(sweep.id))
    assert [t.params["hidden"] for t in front] == [1, 3]
    data = json.loads(ok(capsys, "sweep", "show", "tradeoff", "--json", store=sqlite_url))
    assert [(p["trial"], p["values"]) for p in data["pareto"]] == [
        (0, {"loss": 0.5, "speed": 10.0}), (2, {"loss": 0.9, "speed": 30.0}),
    ]  # fmt: skip
    text = ok(capsys, "sweep", "show", "tradeoff", store=sqlite_url)
    assert "Pareto front (loss, speed): 2 trials no other trial beats on every metric" in text
    assert "trial 2 (run deleted): loss = 0.9, speed = 30   hidden=3" in text
    store.create_sweep("single", SPEC)  # one metric: no front
    single = json.loads(ok(capsys, "sweep", "show", "single", "--json", store=sqlite_url))
    assert single["pareto"] == []
    store.close()
