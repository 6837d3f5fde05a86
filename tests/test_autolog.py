"""Autolog under ``expbook run`` in a program whose interpreter has no expbook (docs/autolog.md).

Each test runs a real ``expbook run`` of a program in a second virtual environment made with
``python -m venv`` and nothing installed: the injected ``sitecustomize`` must chain to the
user's own, install the post-import hooks with the standard library only, and hand records to
the recorder through the spool. The hooks here are real: scikit-learn (installed with expbook's
dev extras, put on the program's path by hand: no ``.pth`` files are read, so ``import
expbook`` still fails there) and a hook of the test's own through ``EXPBOOK_AUTOLOG_HOOKS``, the
documented way to add one.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

import expbook
from tests.helpers import run_cli
from tests.test_run_trust import recorders, spool_of, start, wait_for

pytestmark = pytest.mark.slow

TRAINLIB = '''
"""A training library of the test's own: calls on_epoch, then prints the epoch's line."""
import time

def train(epochs, on_epoch, pause=0.0):
    loss = 1.0
    for epoch in range(1, epochs + 1):
        loss = loss / 3 + 0.01
        on_epoch(epoch, loss)
        print(f"epoch {epoch}/{epochs} loss={loss:.4f}", flush=True)
        time.sleep(pause)
    return loss
'''

HOOKS = '''
"""The test's own autolog hook for trainlib (EXPBOOK_AUTOLOG_HOOKS=trainlib=myhooks:hook)."""
import os

class Broken:
    def __float__(self):
        raise ZeroDivisionError("a value that is no number")

def hook(log, module):
    original = module.train
    fail_at = int(os.environ.get("FAIL_AT", "0"))

    def train(epochs, on_epoch, pause=0.0):
        def observed(epoch, loss):
            value = Broken() if epoch == fail_at else loss
            log.guard("trainlib", log.point, "trainlib", {"loss": value}, step=epoch,
                      epoch=float(epoch))
            on_epoch(epoch, loss)
        return original(epochs, observed, pause)

    module.train = train
'''

PROGRAM = """
import os, sys
try:
    import expbook
    print("expbook is importable here")
except ImportError:
    print("no expbook here")
import trainlib
trainlib.train(int(sys.argv[1]), lambda epoch, loss: None, float(sys.argv[2]))
print("chained" if os.environ.get("USER_SITECUSTOMIZE") == "ran" else "not chained")
print("our path" if not any("_inject" in p for p in sys.path) else "path changed")
"""

USER_SITECUSTOMIZE = 'import os\nos.environ["USER_SITECUSTOMIZE"] = "ran"\n'


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Python of a virtual environment with nothing installed (no expbook)."""
    root = tmp_path_factory.mktemp("bare") / "venv"
    venv.create(root, with_pip=False)
    return str(root / "bin" / "python")


@pytest.fixture
def program(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The program, its library and hook, the user's own sitecustomize, and its environment."""
    lib, site = tmp_path / "lib", tmp_path / "usersite"
    lib.mkdir()
    site.mkdir()
    (lib / "trainlib.py").write_text(TRAINLIB)
    (lib / "myhooks.py").write_text(HOOKS)
    (site / "sitecustomize.py").write_text(USER_SITECUSTOMIZE)
    (tmp_path / "prog.py").write_text(PROGRAM)
    env = {
        "PYTHONPATH": f"{site}{os.pathsep}{lib}",
        "EXPBOOK_AUTOLOG_HOOKS": "trainlib=myhooks:hook",
        "EXPBOOK_AUTOLOG": "",
    }
    return tmp_path / "prog.py", env


def _run(tmp_path: Path, python: str, prog: Path, env: dict[str, str], *options: str,
         epochs: int = 5) -> tuple[dict, str]:  # type: ignore[type-arg]  # fmt: skip
    result = run_cli("run", "--json", *options, "--", python, str(prog), str(epochs), "0",
                     store=str(tmp_path / "s.db"), env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(result.stderr.strip().splitlines()[-1]), result.stdout


def _loss(tmp_path: Path) -> list[tuple[int, float | None, float]]:
    with expbook.open_store(tmp_path / "s.db") as store:
        series = store.series(store.run("last"), "loss")
        return [
            (step, None if epoch != epoch else epoch, value)
            for step, epoch, value in zip(series.steps, series.epochs, series.values, strict=True)
        ]


def _exact(epochs: int) -> list[float]:
    loss, values = 1.0, []
    for _ in range(epochs):
        loss = loss / 3 + 0.01
        values.append(loss)
    return values


def test_hooks_reach_the_store_from_a_python_without_expbook(
    tmp_path: Path, bare_python: str, program: tuple[Path, dict[str, str]]
) -> None:
    prog, env = program
    alone = run_cli("--version", env=env)  # (the same environment, without expbook run:)
    assert alone.returncode == 0
    done, stdout = _run(tmp_path, bare_python, prog, env)
    assert stdout.splitlines()[0] == "no expbook here"
    assert "chained" in stdout.splitlines()  # the user's sitecustomize ran too
    assert "our path" in stdout.splitlines()  # sys.path as without expbook
    assert done["autolog"] == ["trainlib"]
    # The hook's exact values, once each: the printed copies (0.3433) were dropped.
    expected = [(i + 1, float(i + 1), v) for i, v in enumerate(_exact(5))]
    assert _loss(tmp_path) == expected


def test_the_output_is_the_programs_own(
    tmp_path: Path, bare_python: str, program: tuple[Path, dict[str, str]]
) -> None:
    import subprocess

    prog, env = program
    plain = subprocess.run([bare_python, str(prog), "5", "0"], capture_output=True, text=True,
                           env={**os.environ, **env}, check=True)  # fmt: skip
    _, stdout = _run(tmp_path, bare_python, prog, env)
    assert stdout == plain.stdout


@pytest.mark.parametrize("off", [("--no-autolog",), ("EXPBOOK_AUTOLOG", "0")], ids=str)
def test_autolog_can_be_turned_off(
    tmp_path: Path, bare_python: str, program: tuple[Path, dict[str, str]], off: tuple[str, ...]
) -> None:
    prog, env = program
    options = off if len(off) == 1 else ()
    if len(off) == 2:
        env = {**env, off[0]: off[1]}
    done, stdout = _run(tmp_path, bare_python, prog, env, *options)
    assert done["autolog"] == []
    assert "chained" in stdout.splitlines()  # the program's own sitecustomize still runs
    assert not list((tmp_path / "spool").glob("*/autolog-*.jsonl"))
    # Parsed from the output, as printed: 4 decimals.
    assert [value for _, _, value in _loss(tmp_path)] == [round(v, 4) for v in _exact(5)]


def test_a_hook_that_fails_turns_itself_off_with_one_warning(
    tmp_path: Path, bare_python: str, program: tuple[Path, dict[str, str]]
) -> None:
    import subprocess

    prog, env = program
    env = {**env, "FAIL_AT": "3"}
    plain = subprocess.run([bare_python, str(prog), "5", "0"], capture_output=True, text=True,
                           env={**os.environ, **env}, check=True)  # fmt: skip
    # No pause between epochs: the lines before the failure are read with it (as on a busy
    # machine, where the launcher stamps them after it); the steps the hook gave tell them apart
    result = run_cli("run", "--json", "--", bare_python, str(prog), "5", "0",
                     store=str(tmp_path / "s.db"), env=env, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0 and result.stdout == plain.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("expbook autolog")]
    assert len(warnings) == 1 and "trainlib hook failed (ZeroDivisionError" in warnings[0]
    done = json.loads(result.stderr.strip().splitlines()[-1])
    assert any("trainlib hook failed" in warning for warning in done["warnings"])
    # Epochs 1-2 from the hook, exact; from 3 on the parsers read the output again.
    exact = _exact(5)
    values = [value for _, _, value in _loss(tmp_path)]
    assert values == [*exact[:2], *(round(v, 4) for v in exact[2:])]


def test_scikit_learn_curves_from_a_python_without_expbook(
    tmp_path: Path, bare_python: str
) -> None:
    """The real scikit-learn hook: MLPClassifier's loss_curve_ at its iterations, exactly, and
    its printed `Iteration N, loss = ...` lines not stored a second time."""
    pytest.importorskip("sklearn")
    site = sysconfig.get_paths()["purelib"]
    (tmp_path / "mlp.py").write_text(textwrap.dedent(f"""
        import json, sys, warnings
        sys.path.append({site!r})  # scikit-learn and numpy, without expbook (.pth not read)
        try:
            import expbook
            raise SystemExit("expbook is importable here")
        except ImportError:
            pass
        from sklearn.datasets import make_classification
        from sklearn.neural_network import MLPClassifier
        X, y = make_classification(n_samples=200, random_state=0)
        warnings.simplefilter("ignore")
        mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=6, verbose=True, random_state=0)
        mlp.fit(X, y)
        json.dump(list(mlp.loss_curve_), open("curve.json", "w"))
    """))  # fmt: skip
    result = run_cli("run", "--json", "--", bare_python, "mlp.py", store=str(tmp_path / "s.db"),
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Iteration 1, loss = " in result.stdout
    curve = json.loads((tmp_path / "curve.json").read_text())
    assert [(step, value) for step, _, value in _loss(tmp_path)] == list(enumerate(curve, start=1))
    with expbook.open_store(tmp_path / "s.db") as store:
        params = store.run("last").params
    assert params["MLPClassifier.max_iter"] == 6 and params["MLPClassifier.verbose"] is True


def test_a_killed_recorder_stores_no_autolog_record_twice(
    tmp_path: Path, bare_python: str, program: tuple[Path, dict[str, str]]
) -> None:
    prog, env = program
    store = str(tmp_path / "s.db")
    launcher = start("--", bare_python, str(prog), "120", "0.01", store=store, env=env,
                     cwd=tmp_path)  # fmt: skip
    spool = spool_of(store)
    wait_for(lambda: _autolog_offsets(store), what="autolog records in the store")
    for pid in recorders(spool):
        os.kill(pid, signal.SIGKILL)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, err
    assert "run #1 finished" in err
    expected = [(i + 1, float(i + 1), v) for i, v in enumerate(_exact(120))]
    assert _loss(tmp_path) == expected  # each once, though a recorder was killed midway


def _autolog_offsets(store: str) -> dict[str, int]:
    try:
        with sqlite3.connect(store) as connection:
            row = connection.execute("SELECT recorded_autolog FROM runs").fetchone()
    except sqlite3.OperationalError:  # being created
        return {}
    return json.loads(row[0]) if row and row[0] else {}


def test_in_code_checkpoints_are_kept_as_artifacts_or_said_in_one_line(
    tmp_path: Path, postgres_url: str, capfd: pytest.CaptureFixture[str]
) -> None:
    from expbook.integrations import RunSink

    folder = tmp_path / "checkpoint-500"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "trainer_state.json").write_text("{}")
    with expbook.Tracker(str(tmp_path / "runs.db")).start_run() as run:
        RunSink(run).attach("transformers", str(folder))
    opened = expbook.open_store(tmp_path / "runs.db")
    assert [a.name for a in opened.list_artifacts(run.id)] == [
        "checkpoint-500/model.safetensors", "checkpoint-500/trainer_state.json",
    ]  # fmt: skip
    # a PostgreSQL store with no artifact location: the checkpoint is one line, training goes on
    with expbook.Tracker(postgres_url).start_run() as team_run:
        RunSink(team_run).attach("transformers", str(folder))
        team_run.log({"loss": 1.0})
    err = capfd.readouterr().err
    assert err.count("checkpoint checkpoint-500 not kept") == 1, err
    assert expbook.open_store(postgres_url).run(team_run.id).status.value == "finished"
