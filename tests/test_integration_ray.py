"""The Ray Tune callback (``expbook.integrations.ray``) with a real Ray Tune search on CPU.

Runs only when Ray is importable from ``.venv-frameworks`` (``make corpus`` installs it, with
torch and the other frameworks): CI does not install Ray (docs/autolog.md says which tests run
where). The search runs in that venv's interpreter with expbook's ``src`` on its path.
"""

from __future__ import annotations

import json
import subprocess
import sysconfig
import textwrap
from pathlib import Path

import pytest

import expbook
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS_PYTHON = ROOT / ".venv-frameworks" / "bin" / "python"
SRC = ROOT / "src"


def _ray_is_there() -> bool:
    if not FRAMEWORKS_PYTHON.exists():
        return False
    found = subprocess.run([str(FRAMEWORKS_PYTHON), "-c", "import ray.tune"],
                           capture_output=True, timeout=120, check=False)  # fmt: skip
    return found.returncode == 0


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _ray_is_there(), reason="needs Ray in .venv-frameworks"),
]

SEARCH = """
import os, sys, tempfile
sys.path[:0] = [{src!r}]
sys.path.append({site!r})  # expbook's own dependencies, after the frameworks'
os.environ["RAY_DEDUP_LOGS"] = "0"
import ray
from ray import tune
import expbook
from expbook.integrations.ray import ExpbookTuneCallback


def trainable(config):
    for i in range(1, 3):
        if config["mode"] == "raise" and i == 2:
            raise ValueError("the loss went to NaN")
        if config["mode"] == "die" and i == 2:
            os._exit(3)  # the worker process dies
        checkpoint = None
        if config["mode"] == "ok":
            folder = tempfile.mkdtemp()
            with open(os.path.join(folder, "weights.txt"), "w") as handle:
                handle.write(f"iteration {{i}}")
            checkpoint = tune.Checkpoint.from_directory(folder)
        tune.report({{"loss": config["lr"] / i, "eval": {{"acc": 0.5 + i / 10}}}},
                    checkpoint=checkpoint)


def search(modes, callback):
    tuner = tune.Tuner(
        trainable,
        param_space={{"mode": tune.grid_search(modes), "lr": 0.1, "model": {{"hidden": 8}}}},
        tune_config=tune.TuneConfig(num_samples=1),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), callbacks=[callback],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    return tuner.fit()


ray.init(num_cpus=2, include_dashboard=False)
if sys.argv[1] == "in-code":
    with expbook.start_run(name="search", store=sys.argv[2], capture=False):
        results = search(["ok", "raise", "die"], ExpbookTuneCallback())
else:  # under expbook run, without a run of its own
    results = search(["ok", "ok"], ExpbookTuneCallback())
print("RESULTS", [r.metrics.get("trial_id") for r in results])
ray.shutdown()
"""


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "search.py"
    site = sysconfig.get_paths()["purelib"]
    script.write_text(textwrap.dedent(SEARCH.format(src=str(SRC), site=site)))
    return script


def test_each_trial_is_a_child_run_with_its_config_results_and_ending(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    done = subprocess.run(
        [str(FRAMEWORKS_PYTHON), str(_script(tmp_path)), "in-code", store],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        env={**_env(), "EXPBOOK_HEARTBEAT_INTERVAL": "0.2"},
    )  # fmt: skip
    assert "RESULTS" in done.stdout, done.stderr[-3000:]
    assert "Ray Tune callback failed" not in done.stderr
    with expbook.open_store(store) as opened:
        search = opened.run("search")
        trials = {run.params["mode"]: run for run in opened.runs("kind = 'sweep-trial'")}
        assert sorted(trials) == ["die", "ok", "raise"]
        for run in trials.values():
            assert run.parent_id == search.id and run.kind == "sweep-trial"
            assert run.params["lr"] == 0.1 and run.params["model.hidden"] == 8
            assert run.name.startswith("trainable_") and run.name.endswith(("0", "1", "2"))
        ok, raised, died = trials["ok"], trials["raise"], trials["die"]
        assert ok.status == "finished"
        loss = opened.series(ok, "loss")
        assert list(loss.steps) == [1, 2] and list(loss.values) == [0.1, 0.05]
        assert list(opened.series(ok, "eval/acc").values) == [0.6, 0.7]
        assert "time_total_s" in ok.metrics and "training_iteration" not in ok.metrics
        assert "timestamp" not in ok.metrics and "pid" not in ok.metrics
        kept = [a.name for a in opened.list_artifacts(ok.id)]
        assert any(name.endswith("/weights.txt") for name in kept), kept
        assert raised.status == "failed" and "the loss went to NaN" in (raised.error or "")
        assert list(opened.series(raised, "loss").steps) == [1]
        assert died.status == "crashed", died  # no ending written: the heartbeat went stale
        assert any("worker died" in note.text for note in died.notes)


def test_under_expbook_run_the_trials_are_children_of_the_wrappers_run(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    script = _script(tmp_path)
    done = run_cli("run", "--", str(FRAMEWORKS_PYTHON), str(script), "wrapped", store=store,
                   cwd=tmp_path, env=_env(), timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with expbook.open_store(store) as opened:
        wrapper = opened.run("search")  # expbook run names the run after the script
        trials = list(opened.runs("kind = 'sweep-trial'"))
        assert len(trials) == 2
        assert {run.parent_id for run in trials} == {wrapper.id}
        assert {run.status for run in trials} == {"finished"}
        assert wrapper.status == "finished" and wrapper.kind == "sweep"
        assert all(list(opened.series(run, "loss").steps) == [1, 2] for run in trials)


def _env() -> dict[str, str]:
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("EXPBOOK_")}
    return {**env, "PYTHONHASHSEED": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def test_results_are_numbers_without_rays_bookkeeping() -> None:
    """The result -> metrics rule, on a result as Tune gives it (needs Ray to import)."""
    done = subprocess.run(
        [str(FRAMEWORKS_PYTHON), "-c", textwrap.dedent(f"""
            import json, sys
            sys.path[:0] = [{str(SRC)!r}]
            sys.path.append({sysconfig.get_paths()["purelib"]!r})
            from expbook.integrations.ray import metrics
            print(json.dumps(metrics({{
                "loss": 0.5, "done": False, "training_iteration": 3, "timestamp": 1700000000,
                "pid": 12, "time_total_s": 1.5, "config": {{"lr": 0.1}}, "hostname": "h",
                "info": {{"learner": {{"kl": 0.01}}}}, "name": "text", "ok": True,
            }})))
        """)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"loss": 0.5, "time_total_s": 1.5, "info/learner/kl": 0.01}
