"""``expbook run -- COMMAND``: real programs (shell, awk, C, Python) through the console script."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import expbook
from expbook import RunStatus
from tests.helpers import EXPBOOK, run_cli
from tests.test_parsers import BURN_SUMMARY

pytestmark = pytest.mark.slow


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    return str(tmp_path / "runs" / "expbook.db")


def expbook_run(
    *args: str, store: str, cwd: Path | None = None, **kwargs
) -> subprocess.CompletedProcess[str]:
    return run_cli("run", *args, store=store, cwd=cwd, **kwargs)


def recorded(store: str, ref: str | int = 1, timeout: float = 30) -> expbook.RunRecord:
    """The run once the recorder has finished it (the launcher may return before that)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            run = expbook.open_store(store).run(ref)
            if run.status.is_terminal():
                return run
        except (expbook.RunNotFoundError, expbook.StoreError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"run {ref} was not recorded within {timeout} s")
        time.sleep(0.05)


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body).lstrip())
    path.chmod(0o755)
    return str(path)


def _read_to_end(master: int) -> bytes:
    """All a pseudo-terminal's master reads until the other side is closed."""
    output = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the last process holding the terminal has ended
            break
        if not data:
            break
        output += data
    return output


def _read_until(fd: int, pattern: bytes, timeout: float = 30) -> re.Match[bytes]:
    """Read ``fd`` until what was read matches the regular expression ``pattern``."""
    output = b""
    deadline = time.monotonic() + timeout
    while (found := re.search(pattern, output)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"{pattern!r} did not come; got {output!r}")
        if _readable_within(fd, 0.1):
            output += os.read(fd, 4096)
    return found


def _readable_within(fd: int, seconds: float) -> bool:
    import select

    return bool(select.select([fd], [], [], seconds)[0])


# --- a shell program: params, progress lines, summaries, output ----------------------------------


def test_a_shell_program_is_recorded(tmp_path: Path, store_path: str) -> None:
    train = script(tmp_path, "train.sh", """
        #!/bin/sh
        echo "loading data from $2"
        for e in 1 2 3; do
          echo "epoch $e/3 loss=0.$((4 - e)) acc=0.$((6 + e))"
        done
        echo "warning: something on stderr" >&2
        echo "Test accuracy: 91.5%"
        """)  # fmt: skip
    result = expbook_run(
        "--name", "sh-train", "-e", "smoke", "--tag", "shell", "--note", "first try", "--",
        train, "--data", "/data/x", "--lr", "1e-3", "--features", "cli ml_train", "--amp",
        store=store_path, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "epoch 3/3 loss=0.1 acc=0.9" in result.stdout  # passed through, unchanged
    assert "something on stderr" in result.stderr and "something" not in result.stdout
    run = recorded(store_path)
    assert (run.name, run.experiment, run.status, run.exit_code) == (
        "sh-train", "smoke", RunStatus.FINISHED, 0,
    )  # fmt: skip
    assert run.params == {
        "data": "/data/x",
        "lr": 1e-3,
        "features": ["cli", "ml_train"],
        "amp": True,
    }
    assert run.tags == ("shell",) and [n.text for n in run.notes] == ["first try"]
    assert run.command == (train, "--data", "/data/x", "--lr", "1e-3", "--features",
                           "cli ml_train", "--amp")  # fmt: skip
    assert run.cwd == str(tmp_path)
    store = expbook.open_store(store_path)
    loss = store.series(run, "loss")
    assert list(loss.steps) == [1, 2, 3] and list(loss.values) == [0.3, 0.2, 0.1]
    assert list(loss.epochs) == [1.0, 2.0, 3.0]
    assert run.metrics["test_accuracy"].value == 91.5 and run.metrics["test_accuracy"].unit == "%"
    chunks = store.get_output(run.id)
    stdout = "".join(c.text for c in chunks if c.stream == "stdout")
    assert stdout.splitlines()[0] == "loading data from /data/x"
    assert (
        "".join(c.text for c in chunks if c.stream == "stderr") == "warning: something on stderr\n"
    )
    logs = run_cli("logs", "1", store=store_path)
    assert logs.returncode == 0 and "epoch 2/3 loss=0.2 acc=0.8" in logs.stdout
    last = run_cli("logs", "1", "--stream", "stdout", "--tail", "1", store=store_path)
    assert last.stdout == "Test accuracy: 91.5%\n"  # (across two pipes, order is not kept)


def test_failures_keep_the_exit_code_and_the_last_lines(tmp_path: Path, store_path: str) -> None:
    crash = script(tmp_path, "crash.sh", """
        #!/bin/sh
        echo "step 1 loss=2.0 acc=0.1"
        echo "step 2 loss=1.5 acc=0.2"
        echo "Traceback: CUDA out of memory" >&2
        exit 3
        """)  # fmt: skip
    result = expbook_run("--", crash, store=store_path)
    assert result.returncode == 3
    run = recorded(store_path)
    assert run.status is RunStatus.FAILED and run.exit_code == 3
    assert "exit code 3" in run.error and "CUDA out of memory" in run.error
    assert run.metrics["loss"].count == 2  # what was printed before the crash is kept


def test_a_python_program_that_crashes_mid_way(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "train.py", """
        import sys
        for epoch in range(1, 4):
            loss, acc = 1 / epoch, 0.5 + epoch / 10
            print(f"Epoch {epoch}: train_loss {loss:.3f} valid_acc {acc:.2f}", flush=True)
            if epoch == 2:
                raise RuntimeError("NaN in gradients")
        """)  # fmt: skip
    result = expbook_run("--", sys.executable, program, "--lr", "0.1", store=store_path)
    assert result.returncode == 1 and "NaN in gradients" in result.stderr
    run = recorded(store_path)
    assert run.status is RunStatus.FAILED and run.exit_code == 1
    assert "RuntimeError: NaN in gradients" in run.error
    assert run.params == {"lr": 0.1} and run.name == "train"
    assert list(expbook.open_store(store_path).series(run, "train_loss").steps) == [1, 2]


def test_a_command_that_does_not_exist(store_path: str) -> None:
    result = expbook_run("--", "no-such-program-xyz", store=store_path)
    assert result.returncode == 127
    assert result.stderr.strip() == "error: cannot run 'no-such-program-xyz': command not found"
    assert not Path(store_path).exists() or expbook.open_store(store_path).runs() == ()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to run"),
        (("--bogus", "--", "true"), "no such option '--bogus'"),
        (("--name",), "option --name needs a value"),
        (("--quiet=1", "--", "true"), "option --quiet takes no value"),
    ],
)
def test_usage_errors_are_one_line(store_path: str, args: tuple[str, ...], message: str) -> None:
    result = expbook_run(*args, store=store_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error: ")


# --- programs in other languages -----------------------------------------------------------------


def test_a_compiled_c_program_printing_a_burn_summary(tmp_path: Path, store_path: str) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler")
    lines = "".join(
        f"    puts({line!r});\n".replace("'", '"')
        for line in BURN_SUMMARY.strip("\n").splitlines()
    )
    source = tmp_path / "learner.c"
    source.write_text(
        "#include <stdio.h>\nint main(int argc, char **argv) {\n"
        "    for (int e = 1; e <= 3; e++)\n"
        '        printf("[Epoch %d/3] loss: %.3f | lr: 1e-4\\n", e, 1.0 / e);\n'
        + lines + "    return 0;\n}\n"
    )  # fmt: skip
    binary = tmp_path / "learner"
    subprocess.run([compiler, "-O1", "-o", str(binary), str(source)], check=True)
    result = expbook_run("--", str(binary), "--model-epochs", "16", store=store_path)
    assert result.returncode == 0, result.stderr
    run = recorded(store_path)
    assert run.name == "learner" and run.params == {"model-epochs": 16}
    loss = run.metrics["train/loss"]
    assert (loss.min, loss.min_epoch, loss.max, loss.max_epoch) == (0.032, 53.0, 0.106, 1.0)
    assert (loss.value, loss.step) == (0.032, 53)  # the latest epoch the table reports
    accuracy = run.metrics["train/accuracy"]
    assert (accuracy.value, accuracy.max_epoch, accuracy.min, accuracy.min_epoch) == (
        98.122, 53.0, 80.5, 1.0,
    )  # fmt: skip
    assert run.metrics["valid/loss"].min_epoch == 50.0
    assert run.metrics["model.params"].value == 961
    assert run.metrics["total_epochs"].value == 16
    assert run.metrics["loss"].count == 3  # the [Epoch n/3] progress lines


def test_an_awk_program(tmp_path: Path, store_path: str) -> None:
    awk = shutil.which("awk")
    if awk is None:
        pytest.skip("no awk")
    program = (
        'BEGIN { for (i = 0; i < 5; i++) printf "iter %d loss %.2f time 12.3ms\\n", i * 100,'
        ' 5 - i; print "BLEU = 27.3" }'
    )
    result = expbook_run("--", awk, program, store=store_path)
    assert result.returncode == 0, result.stderr
    run = recorded(store_path)
    store = expbook.open_store(store_path)
    assert list(store.series(run, "loss").steps) == [0, 100, 200, 300, 400]
    assert "time" not in run.metrics  # 12.3ms carries a unit: not a metric
    assert run.metrics["bleu"].value == 27.3


# --- params from files and settings --------------------------------------------------------------


def test_config_files_and_expbook_toml(tmp_path: Path, store_path: str) -> None:
    (tmp_path / ".git").mkdir()
    config = tmp_path / "gru.json"
    config.write_text('{"model": {"hidden": 256, "layers": 2}, "optimizer": {"lr": 0.001}}')
    (tmp_path / "expbook.toml").write_text(textwrap.dedent("""
        [run]
        booleans = ["fast"]
        ignore = ["output-dir"]
        [[run.patterns]]
        regex = 'val (?P<key>\\w+) -> (?P<value>[\\d.]+)'
        """))  # fmt: skip
    program = script(tmp_path, "train.sh", """
        #!/bin/sh
        echo "val acc -> 0.93"
        echo "val f1 -> 0.88"
        """)  # fmt: skip
    result = expbook_run("--", program, "--config", "gru.json", "--fast", "data/", "--output-dir",
                         "/tmp/out", store=store_path, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = recorded(store_path)
    assert run.params == {
        "config": "gru.json", "fast": True, "config.model.hidden": 256,
        "config.model.layers": 2, "config.optimizer.lr": 0.001,
    }  # fmt: skip
    assert run.metrics["acc"].value == 0.93 and run.metrics["f1"].value == 0.88


def test_ignore_metrics_in_expbook_toml_drops_parsed_keys(tmp_path: Path, store_path: str) -> None:
    (tmp_path / "expbook.toml").write_text(
        '[run]\nignore_metrics = ["seed", "batch_size", "*_time"]\n'
    )
    program = script(tmp_path, "train.sh", """
        #!/bin/sh
        echo "seed=42 batch_size=32"
        for e in 1 2 3; do echo "epoch $e loss=0.$e data_time=0.0$e"; done
        """)  # fmt: skip
    assert expbook_run("--", program, store=store_path, cwd=tmp_path).returncode == 0
    run = recorded(store_path)
    assert set(run.metrics) == {"loss"}
    assert list(expbook.open_store(store_path).series(run, "loss").steps) == [1, 2, 3]


def test_a_broken_expbook_toml_is_reported_and_the_run_still_recorded(
    tmp_path: Path, store_path: str
) -> None:
    (tmp_path / "expbook.toml").write_text("[run]\nbooleans = 'amp'\n")
    # It ends once the recorder is ready (however busy the machine): the launcher then waits
    # for the summary line.
    wait_ready = 'i=0; while [ ! -e "$EXPBOOK_SPOOL/ready" ] && [ $i -lt 600 ]; do sleep 0.1; ' \
        "i=$((i+1)); done\n"  # fmt: skip
    program = script(tmp_path, "long.sh", f"#!/bin/sh\n{wait_ready}echo 'loss=0.5 acc=0.9'\n")
    result = expbook_run("--", program, store=store_path, cwd=tmp_path)
    assert result.returncode == 0
    assert "warning: " in result.stderr and "booleans must be a list" in result.stderr
    run = recorded(store_path)
    assert any("booleans must be a list" in note.text for note in run.notes)
    assert run.metrics["loss"].value == 0.5


# --- signals -------------------------------------------------------------------------------------

LOOP = """
import signal, sys, time
print("started", flush=True)
for step in range(100000):
    print(f"step {step} loss={1 / (step + 1):.5f} lr=0.001", flush=True)
    time.sleep(0.01)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signals_are_forwarded_and_the_run_is_interrupted(
    tmp_path: Path, store_path: str, signum: signal.Signals
) -> None:
    program = script(tmp_path, "loop.py", LOOP)
    launcher = subprocess.Popen(
        [EXPBOOK, "run", "--", sys.executable, program], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "EXPBOOK_STORE": store_path},
    )  # fmt: skip
    assert launcher.stdout is not None and launcher.stdout.readline().strip() == "started"
    time.sleep(0.5)
    launcher.send_signal(signum)
    code = launcher.wait(30)
    assert code == -signum  # it ends as the program ended: killed by the signal
    run = recorded(store_path)
    assert run.status is RunStatus.INTERRUPTED
    assert run.error == f"killed by {signum.name}"
    assert run.metrics["loss"].count >= 5


def test_a_program_that_handles_sigterm_and_exits_cleanly(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "graceful.py", """
        import signal, sys, time
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        print("started", flush=True)
        step = 0
        while not stop:
            print(f"step {step} loss=1.0 lr=0.1", flush=True); step += 1; time.sleep(0.01)
        print("Saved checkpoint at step", step, flush=True)
        """)  # fmt: skip
    launcher = subprocess.Popen(
        [EXPBOOK, "run", "--", sys.executable, program], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "EXPBOOK_STORE": store_path},
    )  # fmt: skip
    assert launcher.stdout is not None and launcher.stdout.readline().strip() == "started"
    time.sleep(0.3)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(30) == 0
    run = recorded(store_path)
    assert run.status is RunStatus.INTERRUPTED and run.error == "received SIGTERM"
    assert run.exit_code == 0


def test_killing_the_launcher_leaves_a_crashed_run(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "loop.py", LOOP)
    env = {**os.environ, "EXPBOOK_STORE": store_path, "EXPBOOK_HEARTBEAT_INTERVAL": "0.2"}
    launcher = subprocess.Popen(
        [EXPBOOK, "run", "--", sys.executable, program], stdout=subprocess.PIPE, text=True,
        env=env, start_new_session=True,
    )  # fmt: skip
    assert launcher.stdout is not None and launcher.stdout.readline().strip() == "started"
    time.sleep(1.0)
    os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and the program, as an OOM kill would
    launcher.wait(30)
    run = recorded(store_path, timeout=30)
    assert run.status is RunStatus.CRASHED
    assert run.metrics["loss"].count >= 1


# --- a Python program that uses the API itself ---------------------------------------------------


def test_a_python_program_that_starts_a_run_attaches_to_it(
    tmp_path: Path, store_path: str
) -> None:
    program = script(tmp_path, "train.py", """
        import expbook
        with expbook.start_run(name="from-code", experiment="attach", params={"hidden": 64},
                               tags=["api"]) as run:
            for epoch in range(3):
                print(f"epoch {epoch} loss={1 / (epoch + 1)} acc=0.5", flush=True)
                run.log({"loss": 1 / (epoch + 1)}, step=epoch)
            run.summary["test/acc"] = 0.9
        with expbook.start_run(name="second") as other:
            other.log({"x": 1.0})
        """)  # fmt: skip
    result = expbook_run("--tag", "cli", "--", sys.executable, program, "--lr", "0.01",
                         store=store_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = recorded(store_path, 1)
    store = expbook.open_store(store_path)
    assert len(store.runs()) == 2
    assert run.name == "from-code" and run.experiment == "attach"
    assert run.params == {"lr": 0.01, "hidden": 64} and set(run.tags) == {"api", "cli"}
    assert run.status is RunStatus.FINISHED and run.exit_code == 0
    assert list(store.series(run, "loss").steps) == [0, 1, 2]  # logged once, not parsed twice
    assert "acc" not in run.metrics  # printed pairs are not parsed once the API is used
    assert run.metrics["test/acc"].value == 0.9
    second = store.run("second")
    assert second.parent_id == run.id and second.status is RunStatus.FINISHED


def test_command_line_names_win_over_the_programs(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "t.py", """
        import time, expbook
        time.sleep(0.5)  # the recorder creates the run first
        with expbook.start_run(name="from-code", kind="eval"):
            pass
        """)  # fmt: skip
    result = expbook_run("--name", "from-cli", "--", sys.executable, program, store=store_path)
    assert result.returncode == 0, result.stderr
    run = recorded(store_path)
    assert (run.name, run.kind) == ("from-cli", "eval")


# --- runs that refer to runs ---------------------------------------------------------------------


def test_eval_runs_and_reruns(tmp_path: Path, store_path: str) -> None:
    train = script(tmp_path, "train.sh", '#!/bin/sh\necho "epoch 1 loss=$2 acc=0.5"\n')
    assert expbook_run("-e", "lr", "--", train, "--lr", "0.1", store=store_path).returncode == 0
    recorded(store_path, 1)
    evaluation = expbook_run("--kind", "eval", "--parent", "1", "--", train, "--lr", "0.1",
                             store=store_path)  # fmt: skip
    assert evaluation.returncode == 0
    assert recorded(store_path, 2).parent_number == 1 and recorded(store_path, 2).kind == "eval"
    dry = run_cli("rerun", "1", "--set", "lr=0.05", "--dry-run", store=store_path)
    assert dry.returncode == 0 and dry.stdout.strip().endswith(f"{train} --lr 0.05")
    again = run_cli("rerun", "1", "--set", "lr=0.05", store=store_path)
    assert again.returncode == 0, again.stderr
    rerun = recorded(store_path, 3)
    assert rerun.parent_number == 1 and rerun.experiment == "lr" and rerun.params == {"lr": 0.05}
    assert rerun.metrics["loss"].value == 0.05
    diff = run_cli("diff", "1", "3", store=store_path).stdout
    assert "lr" in diff and "0.1" in diff and "0.05" in diff


def test_rerun_warns_when_the_code_changed(tmp_path: Path, store_path: str) -> None:
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(tmp_path)], check=True)
    script(tmp_path, "train.sh", '#!/bin/sh\necho "loss=0.5 acc=0.1"\n')
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    assert expbook_run("--", "./train.sh", store=store_path, cwd=tmp_path).returncode == 0
    first = recorded(store_path, 1)
    assert first.git.commit and not first.git.dirty
    clean = run_cli("rerun", "1", store=store_path)
    assert clean.returncode == 0 and "warning" not in clean.stderr
    (tmp_path / "train.sh").write_text('#!/bin/sh\necho "loss=0.4 acc=0.2"\n')
    subprocess.run([*git, "commit", "-qam", "v2"], check=True)
    changed = run_cli("rerun", "1", store=store_path)
    assert changed.returncode == 0
    assert f"run #1 ran at {first.git.commit[:8]}" in changed.stderr
    assert recorded(store_path, 3).metrics["loss"].value == 0.4


def test_rerun_of_a_run_without_a_command(store_path: str) -> None:
    store = expbook.open_store(store_path)
    store.create_run(expbook.store.RunSpec(name="bare"))
    result = run_cli("rerun", "1", store=store_path)
    assert result.returncode == 1 and "has no recorded command" in result.stderr


# --- output --------------------------------------------------------------------------------------


def test_logs_follow_a_running_program(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "slow.sh", """
        #!/bin/sh
        for i in 1 2 3 4 5 6; do echo "line $i"; sleep 0.3; done
        """)  # fmt: skip
    launcher = subprocess.Popen([EXPBOOK, "run", "--", program], stdout=subprocess.DEVNULL,
                                env={**os.environ, "EXPBOOK_STORE": store_path})  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until the run exists
        if Path(store_path).exists() and expbook.open_store(store_path).runs():
            break
        time.sleep(0.05)
    follow = run_cli("logs", "1", "--follow", store=store_path, timeout=60)
    assert launcher.wait(30) == 0
    assert follow.returncode == 0
    assert follow.stdout == "".join(f"line {i}\n" for i in range(1, 7))


def test_carriage_return_progress_is_stored_readably(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "bar.py", r"""
        import sys
        for i in range(101):
            sys.stdout.write(f"\r\x1b[32m{i:3d}%\x1b[0m |{'#' * (i // 10):<10}|")
        sys.stdout.write("\ndone loss=0.1 acc=0.9\n")
        """)  # fmt: skip
    assert expbook_run("--", sys.executable, program, store=store_path).returncode == 0
    run = recorded(store_path)
    text = "".join(c.text for c in expbook.open_store(store_path).get_output(run.id))
    assert text == "\x1b[32m100%\x1b[0m |##########|\ndone loss=0.1 acc=0.9\n"
    plain = run_cli("logs", "1", "--no-color", store=store_path).stdout
    assert plain.splitlines()[0] == "100% |##########|"


def test_a_hundred_megabytes_of_output_in_bounded_memory(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "flood.py", """
        import sys, time
        line = ("x" * 90 + "\\n").encode()
        block = line * 10_000
        out = sys.stdout.buffer
        for i in range(110):                 # 110 x 910 KB ~ 100 MB
            out.write(block)
            out.write(f"step {i} loss={1 / (i + 1):.4f} lr=0.001\\n".encode())
        out.flush()
        time.sleep(1.5)                      # time to read the launcher's peak memory
        """)  # fmt: skip
    env = {**os.environ, "EXPBOOK_STORE": store_path}
    launcher = subprocess.Popen(
        [EXPBOOK, "run", "--", sys.executable, program], stdout=subprocess.DEVNULL, env=env
    )
    spool = str(Path(store_path).parent / "spool")
    peak, recorder_peak = 0, 0
    while launcher.poll() is None:
        peak = max(peak, _peak_rss_kib(launcher.pid))
        recorder_peak = max([recorder_peak, *(_peak_rss_kib(pid) for pid in _recorders(spool))])
        time.sleep(0.1)
    assert launcher.returncode == 0
    assert 0 < peak < 80 * 1024, f"the launcher peaked at {peak} KiB"
    deadline = time.monotonic() + 120
    while _recorders(spool) and time.monotonic() < deadline:  # the recorder works on after it
        recorder_peak = max([recorder_peak, *(_peak_rss_kib(pid) for pid in _recorders(spool))])
        time.sleep(0.1)
    assert 0 < recorder_peak < 250 * 1024, f"the recorder peaked at {recorder_peak} KiB"
    run = recorded(store_path, timeout=120)
    assert run.metrics["loss"].count == 110
    stored = sum(len(c.text) for c in expbook.open_store(store_path).get_output(run.id))
    assert stored > 100_000_000


def _recorders(spool: str) -> list[int]:
    """Recorder processes running now for runs spooled under ``spool``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
                if b"expbook.runner.recorder" in command and spool.encode() in command:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_stdin_is_passed_through(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "echo.py", """
        import sys
        total = sum(float(line) for line in sys.stdin)
        print(f"sum: {total}")
        """)  # fmt: skip
    result = expbook_run("--", sys.executable, program, store=store_path, input="1.5\n2\n3\n")
    assert result.returncode == 0 and result.stdout == "sum: 6.5\n"
    assert recorded(store_path).metrics["sum"].value == 6.5


def test_output_through_a_pseudo_terminal(tmp_path: Path, store_path: str) -> None:
    import pty

    program = script(tmp_path, "tty.py", """
        import sys
        print("isatty", sys.stdout.isatty(), sys.stdin.isatty(), flush=True)
        print("\\x1b[1mepoch 1/1 loss=0.25 acc=0.75\\x1b[0m", flush=True)
        """)  # fmt: skip
    pid, master = pty.fork()
    if pid == 0:  # the launcher, with a terminal as stdin and stdout
        os.environ["EXPBOOK_STORE"] = store_path
        os.execv(EXPBOOK, [EXPBOOK, "run", "-q", "--", sys.executable, program])
    output = _read_to_end(master)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"isatty True True" in output  # the program saw a terminal
    assert b"\x1b[1mepoch 1/1 loss=0.25 acc=0.75\x1b[0m" in output  # colours intact
    run = recorded(store_path)
    assert run.metrics["loss"].value == 0.25
    text = "".join(c.text for c in expbook.open_store(store_path).get_output(run.id))
    assert text == "isatty True True\n\x1b[1mepoch 1/1 loss=0.25 acc=0.75\x1b[0m\n"


def test_ctrl_c_on_the_terminal_reaches_the_program(tmp_path: Path, store_path: str) -> None:
    import pty

    program = script(tmp_path, "loop.py", LOOP)
    pid, master = pty.fork()
    if pid == 0:
        os.environ["EXPBOOK_STORE"] = store_path
        os.execv(EXPBOOK, [EXPBOOK, "run", "-q", "--", sys.executable, program])
    output = b""
    while b"step 3 " not in output:
        output += os.read(master, 4096)
    os.write(master, b"\x03")  # Ctrl-C typed on the terminal
    while True:
        try:
            if not os.read(master, 4096):
                break
        except OSError:
            break
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGINT  # so a shell loop stops too
    run = recorded(store_path)
    assert run.status is RunStatus.INTERRUPTED and run.error == "killed by SIGINT"


# --- the CLI surface -----------------------------------------------------------------------------


def test_the_fast_path_and_click_accept_the_same_options() -> None:
    import click

    from expbook.cli.main import run_command
    from expbook.runner.launch import OPTIONS

    declared = {
        opt
        for param in run_command.params
        if isinstance(param, click.Option)
        for opt in param.opts
    }
    assert declared | {"--help", "-h"} == set(OPTIONS)


def test_run_help_comes_from_click(store_path: str) -> None:
    result = expbook_run("--help", store=store_path)
    assert result.returncode == 0 and "Run COMMAND and record it" in result.stdout
    assert "--experiment" in result.stdout


# --- how the program is wired up: terminals, pipes, job control ----------------------------------


def test_terminal_stdin_with_stdout_to_a_pipe(tmp_path: Path, store_path: str) -> None:
    """`expbook run -- prog | tee log` typed in a terminal: stdin a terminal, stdout a pipe."""
    import pty

    program = script(tmp_path, "t.py", "import sys\nprint('stdin isatty', sys.stdin.isatty())\n")
    master, slave = pty.openpty()
    result = subprocess.run(
        [EXPBOOK, "run", "-q", "--", sys.executable, program], stdin=slave,
        capture_output=True, text=True, env={**os.environ, "EXPBOOK_STORE": store_path},
        timeout=60,
    )  # fmt: skip
    os.close(slave)
    os.close(master)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "stdin isatty True\n"
    assert recorded(store_path).status is RunStatus.FINISHED


def _on_terminal(argv: list[str], *, background: bool = False, stdin: int | None = None,
                 stderr: int | None = None) -> tuple[int, bytes]:  # fmt: skip
    """Run ``argv`` with a new terminal as its stdout (and stdin unless given), as a shell
    would: in the terminal's foreground process group, or in the background."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            if background:  # a job of its own, not the terminal's foreground group (as `cmd &`)
                job = os.fork()
                if job != 0:
                    os._exit(os.waitstatus_to_exitcode(os.waitpid(job, 0)[1]) & 0xFF)
                os.setpgid(0, 0)
            os.dup2(stdin if stdin is not None else slave, 0)
            os.dup2(slave, 1)
            os.dup2(stderr if stderr is not None else slave, 2)
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(slave)
    output = _read_to_end(master)
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return os.waitstatus_to_exitcode(status), output


def test_in_the_background_the_terminal_is_left_alone(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "bg.sh", "#!/bin/sh\necho 'background epoch 1 loss=0.5 acc=0.5'\n")
    os.environ["EXPBOOK_STORE"] = store_path
    try:
        code, output = _on_terminal([EXPBOOK, "run", "-q", "--", program], background=True)
    finally:
        del os.environ["EXPBOOK_STORE"]
    assert code == 0  # not stopped by SIGTTOU
    assert b"background epoch 1" in output
    assert recorded(store_path).metrics["loss"].value == 0.5


def test_ctrl_z_stops_the_job_and_fg_continues_it(tmp_path: Path, store_path: str) -> None:
    """As a job-control shell sees it: Ctrl-Z stops `expbook run` and the program, and gives
    the terminal back in its usual mode; `fg` continues both, with keystrokes going through."""
    import fcntl
    import pty
    import termios

    program = script(tmp_path, "pause.py", """
        import os, sys
        print(f"ready {os.getpid()}", flush=True)
        line = sys.stdin.readline()
        print(f"got {line.strip()}", flush=True)
        print("epoch 1 loss=0.5 acc=0.9", flush=True)
        """)  # fmt: skip
    master, slave = pty.openpty()
    notes_r, notes_w = os.pipe()
    go_r, go_w = os.pipe()
    shell = os.fork()
    if shell == 0:  # a shell with job control, on the terminal `slave`
        code = 127
        try:
            os.close(master)
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            start_r, start_w = os.pipe()
            job = os.fork()
            if job == 0:
                os.setpgid(0, 0)
                os.read(start_r, 1)  # until the job has the terminal
                for fd in (0, 1, 2):
                    os.dup2(slave, fd)
                env = {**os.environ, "EXPBOOK_STORE": store_path}
                os.execve(EXPBOOK, [EXPBOOK, "run", "-q", "--", sys.executable, program], env)
            os.setpgid(job, job)
            os.tcsetpgrp(slave, job)  # `job` is the foreground job
            os.write(start_w, b"+")
            _, status = os.waitpid(job, os.WUNTRACED)
            canonical = termios.tcgetattr(slave)[3] & termios.ICANON
            os.write(
                notes_w, f"stopped={os.WIFSTOPPED(status)} canonical={bool(canonical)}\n".encode()
            )
            os.read(go_r, 1)  # `fg`
            os.tcsetpgrp(slave, job)
            os.killpg(job, signal.SIGCONT)
            code = os.waitstatus_to_exitcode(os.waitpid(job, 0)[1])
        finally:
            os._exit(code & 0xFF)
    os.close(notes_w)
    try:
        program_pid = int(_read_until(master, rb"ready (\d+)\r?\n")[1])
        while termios.tcgetattr(slave)[3] & termios.ICANON:  # until expbook made it raw
            time.sleep(0.01)
        os.write(master, b"\x1a")  # Ctrl-Z
        assert _read_until(notes_r, rb".*\n")[0] == b"stopped=True canonical=True\n"
        stat = Path(f"/proc/{program_pid}/stat")
        deadline = time.monotonic() + 10
        while stat.read_text().rsplit(")", 1)[1].split()[0] != "T":  # the program stops too
            assert time.monotonic() < deadline, stat.read_text()
            time.sleep(0.01)
        os.write(go_w, b"+")  # fg
        deadline = time.monotonic() + 30
        while termios.tcgetattr(slave)[3] & termios.ICANON:  # raw again
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.write(master, b"hello\r")
        _read_until(master, b"got hello")
    finally:
        os.close(slave)
        if sys.exc_info()[0] is not None:
            os.killpg(shell, signal.SIGKILL)
        _, status = os.waitpid(shell, 0)
        for fd in (master, notes_r, go_r, go_w):
            os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    run = recorded(store_path)
    assert run.status is RunStatus.FINISHED and run.metrics["loss"].value == 0.5


def test_redirected_stdin_and_stderr_on_a_terminal(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "io.py", """
        import sys
        total = sum(float(line) for line in sys.stdin)
        print(f"sum: {total}")
        print("a warning", file=sys.stderr)
        """)  # fmt: skip
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("1\n2\n3.5\n")
    errors = tmp_path / "errors.txt"
    os.environ["EXPBOOK_STORE"] = store_path
    try:
        with open(numbers, "rb") as stdin, open(errors, "wb") as stderr:
            code, output = _on_terminal([EXPBOOK, "run", "-q", "--", sys.executable, program],
                                        stdin=stdin.fileno(), stderr=stderr.fileno())  # fmt: skip
    finally:
        del os.environ["EXPBOOK_STORE"]
    assert code == 0
    assert b"sum: 6.5" in output and b"a warning" not in output  # stderr went to the file
    assert errors.read_text() == "a warning\n"
    run = recorded(store_path)
    chunks = expbook.open_store(store_path).get_output(run.id)
    assert [(c.stream, c.text) for c in chunks if c.stream == "stderr"] == [
        ("stderr", "a warning\n")
    ]
    assert run.metrics["sum"].value == 6.5


def test_a_pipe_to_head_ends_the_program(store_path: str) -> None:
    started = time.monotonic()
    result = subprocess.run(
        f"{EXPBOOK} run -q -- yes | head -3", shell=True, capture_output=True, text=True,
        env={**os.environ, "EXPBOOK_STORE": store_path}, timeout=60,
    )  # fmt: skip
    assert result.stdout == "y\ny\ny\n"
    assert time.monotonic() - started < 20  # yes got SIGPIPE, as without expbook
    assert recorded(store_path).status is RunStatus.INTERRUPTED  # killed by SIGPIPE


def test_a_closed_stdout_is_not_an_error(tmp_path: Path, store_path: str) -> None:
    result = subprocess.run(
        f"{EXPBOOK} run -q -- sh -c 'echo loss=1 acc=2 >&2; exit 0' >&-", shell=True,
        capture_output=True, text=True, env={**os.environ, "EXPBOOK_STORE": store_path},
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_nohup_keeps_hangups_ignored(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "long.sh", "#!/bin/sh\nsleep 1\necho 'done loss=0.1 acc=1'\n")
    launcher = subprocess.Popen(
        [EXPBOOK, "run", "--", program], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        env={**os.environ, "EXPBOOK_STORE": store_path},
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )  # fmt: skip
    time.sleep(0.5)
    launcher.send_signal(signal.SIGHUP)
    assert launcher.wait(30) == 0
    run = recorded(store_path)
    assert run.status is RunStatus.FINISHED and run.metrics["loss"].value == 0.1


def test_a_program_that_crashes_by_a_signal_has_failed(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "segv.py", """
        import os, signal
        print("epoch 1 loss=0.5 acc=0.1", flush=True)
        os.kill(os.getpid(), signal.SIGSEGV)
        """)  # fmt: skip
    result = expbook_run("--", sys.executable, program, store=store_path)
    assert result.returncode == 128 + signal.SIGSEGV
    run = recorded(store_path)
    assert run.status is RunStatus.FAILED and run.error.startswith("killed by SIGSEGV")
    assert "epoch 1 loss=0.5" in run.error


def test_environment_prefixes_and_scripts_without_a_shebang(
    tmp_path: Path, store_path: str
) -> None:
    plain = tmp_path / "plain.sh"
    plain.write_text('echo "device $CUDA_VISIBLE_DEVICES loss=0.25 acc=0.5"\n')
    plain.chmod(0o755)
    result = expbook_run("--", "CUDA_VISIBLE_DEVICES=1", str(plain), "--lr", "0.1",
                         store=store_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "device 1 loss=0.25 acc=0.5\n"
    run = recorded(store_path)
    assert run.params == {"env.CUDA_VISIBLE_DEVICES": "1", "lr": 0.1}
    assert run.command == ("CUDA_VISIBLE_DEVICES=1", str(plain), "--lr", "0.1")
    assert run.name == "plain"
    again = run_cli("rerun", run.id[:8], "--set", "lr=0.2", "--store", store_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "device 1 loss=0.25 acc=0.5\n"
    rerun = recorded(store_path, 2)
    assert rerun.command == ("CUDA_VISIBLE_DEVICES=1", str(plain), "--lr", "0.2")
    assert rerun.params == {"env.CUDA_VISIBLE_DEVICES": "1", "lr": 0.2}


# --- recording problems are reported -------------------------------------------------------------


def test_a_store_that_cannot_be_reached_is_reported(tmp_path: Path) -> None:
    program = script(tmp_path, "slow.sh", "#!/bin/sh\nsleep 2\necho 'loss=0.5 acc=0.1'\n")
    result = run_cli("run", "--store", "postgresql://nobody@127.0.0.1:1/nothing", "--", program,
                     env={"EXPBOOK_SPOOL_ROOT": str(tmp_path / "spool")})  # fmt: skip
    assert result.returncode == 0  # the program ran
    assert "is not fully recorded" in result.stderr and "expbook recover" in result.stderr
    assert "127.0.0.1" in result.stderr and str(tmp_path / "spool") in result.stderr
    assert len(result.stderr.splitlines()) == 1


# --- attaching -----------------------------------------------------------------------------------


def test_child_processes_get_runs_of_their_own(tmp_path: Path, store_path: str) -> None:
    evaluate = script(tmp_path, "evaluate.py", """
        import expbook
        with expbook.start_run(name="eval", kind="eval", params={"lr": 999}) as run:
            run.log({"loss": 123.0}, step=1)
        """)  # fmt: skip
    train = script(tmp_path, "train.py", f"""
        import subprocess, sys, expbook
        with expbook.start_run(name="train", params={{"lr": 0.1}}) as run:
            run.log({{"loss": 0.5}}, step=0)
            subprocess.run([sys.executable, {evaluate!r}], check=True)
            run.log({{"loss": 0.4}}, step=1)
        """)  # fmt: skip
    result = expbook_run("--", sys.executable, train, store=store_path)
    assert result.returncode == 0, result.stderr
    store = expbook.open_store(store_path)
    wrapper = recorded(store_path, "train")
    evaluation = store.run("eval")
    assert wrapper.params == {"lr": 0.1} and list(store.series(wrapper, "loss").values) == [
        0.5,
        0.4,
    ]
    assert evaluation.parent_id == wrapper.id and evaluation.params == {"lr": 999}


def test_points_printed_before_attaching_are_kept(tmp_path: Path, store_path: str) -> None:
    program = script(tmp_path, "late.py", """
        import time, expbook
        for epoch in range(1, 4):
            print(f"epoch {epoch}/3 loss={1 / epoch:.3f} acc=0.5", flush=True)
        time.sleep(1.0)
        with expbook.start_run() as run:
            run.summary["test_acc"] = 0.9
            print("epoch 4/3 loss=9.9 acc=9.9", flush=True)  # after attaching: not parsed
        """)  # fmt: skip
    assert expbook_run("--", sys.executable, program, store=store_path).returncode == 0
    run = recorded(store_path)
    assert list(expbook.open_store(store_path).series(run, "loss").steps) == [1, 2, 3]
    assert run.metrics["test_acc"].value == 0.9


# --- the recorder's two halves -------------------------------------------------------------------


def test_parsed_points_are_kept_as_run_log_keeps_them() -> None:
    from expbook.runner.points import PointBuffer

    buffer = PointBuffer()
    buffer.add({"loss": 0.5, "acc": 0.1}, None, None, 1.0)  # automatic steps: 0, then 1
    buffer.add({"loss": 0.4, "acc": 0.2}, None, 1.0, 2.0)
    buffer.add({"loss": 0.3}, 10, None, 3.0)  # other keys: each key keeps its order
    buffer.add({"acc": 0.3, "loss": 0.2}, None, 2.0, 4.0)
    with pytest.raises(expbook.InvalidKeyError):
        buffer.add({"loss": 0.1, "bad'key": 1.0}, None, None, 5.0)
    with pytest.raises(expbook.InvalidValueError):
        buffer.add({"loss": 0.1}, None, float("inf"), 5.0)
    with pytest.raises(expbook.InvalidStepError):
        buffer.add({"loss": 0.1}, 2**63, None, 5.0)
    series = buffer.take()
    steps, values, times, epochs = series["loss"]
    assert list(steps) == [0, 1, 10, 11] and list(values) == [0.5, 0.4, 0.3, 0.2]
    assert list(times) == [1.0, 2.0, 3.0, 4.0]
    assert [e if e == e else None for e in epochs] == [None, 1.0, None, 2.0]
    assert list(series["acc"][0]) == [0, 1, 11] and list(series["acc"][1]) == [0.1, 0.2, 0.3]
    assert buffer.count == 4 and buffer.keys == {"loss", "acc"} and buffer.next_step == 12
    assert buffer.take() == {}


def test_point_rows_are_kept_as_their_points_are() -> None:
    from array import array

    from expbook.runner.parsers import PointRows
    from expbook.runner.points import PointBuffer

    def rows(steps: list[int] | None, epochs: list[float], **values: list[float]) -> PointRows:
        columns = tuple(array("d", column) for column in values.values())
        step_column = None if steps is None else array("q", steps)
        return PointRows(tuple(values), columns, step_column, array("d", epochs))

    nan = float("nan")
    by_rows, by_points = PointBuffer(), PointBuffer()
    batches = [
        rows(None, [nan, 1.0], loss=[0.5, 0.4], acc=[0.1, 0.2]),  # automatic steps 1, 2
        rows([10, 11, 11], [2.0, 2.0, 3.0], loss=[0.3, 0.2, 0.1]),
        rows(None, [nan], acc=[0.3], loss=[nan]),  # step 12
    ]
    by_rows.add({"lr": 0.1}, None, None, 0.5)
    by_points.add({"lr": 0.1}, None, None, 0.5)
    for at, batch in enumerate(batches, start=1):
        by_rows.add_rows(batch, float(at))
        for point in batch.points():
            by_points.add(point.values, point.step, point.epoch, float(at))
    by_rows.add({"loss": 0.0}, None, None, 9.0)  # after rows: the next automatic step
    by_points.add({"loss": 0.0}, None, None, 9.0)
    for buffer in (by_rows, by_points):
        bad_key = rows(None, [nan], loss=[1.0], **{"bad'key": [1.0]})
        with pytest.raises(expbook.InvalidKeyError, match="bad'key"):
            buffer.add_rows(bad_key, 10.0)
        with pytest.raises(expbook.InvalidValueError):
            buffer.add_rows(rows(None, [1.0, float("inf")], loss=[1.0, 2.0]), 10.0)
        with pytest.raises(expbook.InvalidStepError):
            buffer.add_rows(rows([3, -1], [nan, nan], loss=[1.0, 2.0]), 10.0)
    assert by_rows.count == by_points.count == 8
    assert by_rows.next_step == by_points.next_step == 14
    expected = {key: [list(column) for column in columns]
                for key, columns in by_points.take().items()}  # fmt: skip
    got = {key: [list(column) for column in columns] for key, columns in by_rows.take().items()}
    assert repr(got) == repr(expected)  # NaN as NaN
    assert got["loss"][0] == [1, 2, 10, 11, 11, 12, 13]  # lr took step 0
    assert by_rows.take() == {}


def test_the_rest_of_a_message_is_pushed_while_the_reader_is_busy() -> None:
    from expbook.runner import follow
    from expbook.runner.messages import Batch, read_message

    read, write = os.pipe()
    outbox = follow._Outbox(write)
    message = Batch([("stdout", 1.0, "x" * (3 << 20))], [], [], [], [], 3 << 20)
    outbox.put(message)  # more than the pipe takes
    assert outbox.size > 0
    import threading

    received: list[object] = []
    with os.fdopen(read, "rb") as source:
        reading = threading.Thread(target=lambda: received.append(read_message(source)))
        reading.start()
        deadline = time.monotonic() + 10
        while outbox.size and time.monotonic() < deadline:
            outbox.push()  # what the busy reader does between groups of lines: never blocks
            time.sleep(0.001)
        reading.join(timeout=10)
        assert received == [message]
        os.close(write)


def test_messages_larger_than_the_pipe_arrive_whole_and_in_order() -> None:
    from expbook.runner import follow
    from expbook.runner.messages import Batch, read_message

    read, write = os.pipe()
    outbox = follow._Outbox(write)
    sizes = (10, 3 << 20, 7)
    messages = [Batch([("stdout", 1.0, "x" * size)], [], [], [], [], size) for size in sizes]
    for message in messages:
        outbox.put(message)  # the pipe cannot take the second: kept, not blocking
    assert outbox.size > 0
    with os.fdopen(read, "rb") as source:
        import threading

        closing = threading.Thread(target=outbox.close)
        closing.start()
        received = [read_message(source) for _ in messages]
        closing.join()
        assert received == messages
        assert read_message(source) is None  # closed


def test_the_reading_half_ends_with_the_storing_half(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    program = script(tmp_path, "slow.sh", "#!/bin/sh\nsleep 2\necho 'loss=0.5 acc=0.1'\n")
    result = run_cli("run", "--store", "postgresql://nobody@127.0.0.1:1/nothing", "--", program,
                     env={"EXPBOOK_SPOOL_ROOT": str(spool)})  # fmt: skip
    assert "is not fully recorded" in result.stderr
    deadline = time.monotonic() + 10
    while _recorders(str(spool)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _recorders(str(spool))
