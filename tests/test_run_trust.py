"""``expbook run`` never loses a run or misreports it: real processes, real faults.

Each test here failed on the code before issue 10: the run is stored when ``expbook run``
returns; a recorder killed with SIGKILL is replaced and nothing is stored twice; orphaned
spools are recovered exactly once with the program's status; a full disk or a store that cannot
be written never stops the program; processes the program leaves behind keep running.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import expbook
from tests.helpers import EXPBOOK, run_cli

pytestmark = pytest.mark.slow


def start(*args: str, store: str, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> subprocess.Popen[str]:  # fmt: skip
    """``expbook run ARGS`` in the background, in a process group of its own."""
    return subprocess.Popen(
        [EXPBOOK, "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "EXPBOOK_STORE": store, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )


class Spool:
    """A run's spool directory, as a test looks at it from outside."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def output_size(self) -> int:
        return os.path.getsize(os.path.join(self.path, "output"))

    def exit_report(self) -> dict[str, object] | None:
        for name in ("exit", "exit.json"):  # exit.json: before issue 10
            try:
                text = Path(self.path, name).read_text().strip()
            except OSError:
                continue
            if text:
                return json.loads(text)
        return None


def spool_of(store: str, timeout: float = 30) -> Spool:
    root = Path(store).parent / "spool"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = list(root.glob("*/meta.json")) if root.exists() else []
        if entries:
            return Spool(entries[0].parent)
        time.sleep(0.01)
    raise AssertionError(f"no spool appeared under {root}")


def wait_for(condition, timeout: float = 60, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")


def recorders(spool: Spool) -> list[int]:
    """The pids of every recorder process of the spool (both halves)."""
    found = subprocess.run(["pgrep", "-f", f"expbook.runner.recorder {spool.path}"],
                           capture_output=True, text=True, check=False).stdout.split()  # fmt: skip
    return [int(pid) for pid in found]


def stored_offset(store: str) -> int:
    """The furthest any run's recording has reached in the store (0 before the store exists)."""
    try:
        with sqlite3.connect(store) as connection:
            row = connection.execute("SELECT max(recorded_offset) FROM runs").fetchone()
    except sqlite3.OperationalError:  # being created
        return 0
    return row[0] or 0


def read_available(fd: int) -> str:
    try:
        return os.read(fd, 1 << 16).decode()
    except BlockingIOError:
        return ""


def counting_program(
    tmp_path: Path, lines: int, *, pause: float = 0.0, code: int = 0, gate: int | None = None
) -> str:
    """A program printing ``lines`` numbered loss lines; with ``gate``, it waits after that
    many lines until the file ``go`` exists in ``tmp_path`` (so that a test acts while it
    runs, however slow the machine is: see :func:`open_gate`)."""
    program = tmp_path / "count.py"
    wait = (
        f"    if i == {gate}:\n"
        f"        while not os.path.exists({str(tmp_path / 'go')!r}): time.sleep(0.01)\n"
        if gate is not None
        else ""
    )
    program.write_text(
        "import os, sys, time\n"
        f"for i in range({lines}):\n"
        f"{wait}"
        "    print(f'step {i} loss={1 / (i + 1):.6f}', flush=True)\n"
        f"    time.sleep({pause})\n"
        f"sys.exit({code})\n"
    )
    return str(program)


def open_gate(tmp_path: Path) -> None:
    (tmp_path / "go").touch()


def assert_whole(store: str, number: int, lines: int, *, status: str, code: int = 0) -> None:
    """The run has each printed line once, each point once, and the program's status."""
    with expbook.open_store(store) as opened:
        run = opened.run(number)
        assert run.status.value == status, (run.status, run.error, run.recording_error)
        assert run.exit_code == code
        series = opened.series(run, "loss")
        assert list(series.steps) == list(range(lines))
        text = "".join(chunk.text for chunk in opened.get_output(run.id))
    assert text.splitlines() == [f"step {i} loss={1 / (i + 1):.6f}" for i in range(lines)]


# --- 1. expbook run returns when the run is stored -----------------------------------------------


def test_the_run_is_stored_when_expbook_run_returns(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    for n in range(1, 6):
        result = run_cli("run", "--", sys.executable, "-c", f"print('epoch {n} loss=0.{n}')",
                         store=store)  # fmt: skip
        assert result.returncode == 0, result.stderr
        shown = run_cli("show", "last", "--json", store=store)  # the very next command
        assert shown.returncode == 0, shown.stderr
        data = json.loads(shown.stdout)
        assert data["number"] == n and data["status"] == "finished"
        assert data["metrics"]["loss"]["value"] == pytest.approx(n / 10)
        assert f"run #{n} finished" in result.stderr
    assert not list((tmp_path / "spool").iterdir())  # every spool removed
    diff = run_cli("diff", "last~1", "last", store=store)
    assert diff.returncode == 0 and "#4" in diff.stdout and "#5" in diff.stdout


def test_json_quiet_and_no_wait(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    program = ["sh", "-c", "echo epoch 1 loss=0.5; exit 3"]
    result = run_cli("run", "--json", "--", *program, store=store)
    assert result.returncode == 3
    summary = json.loads(result.stderr)  # one JSON object, nothing else
    assert summary["run"] == 1 and summary["status"] == "failed" and summary["exit_code"] == 3
    assert (summary["lines"], summary["points"], summary["keys"]) == (1, 1, 1)
    quiet = run_cli("run", "-q", "--", "true", store=store)
    assert quiet.returncode == 0 and quiet.stderr == ""
    started = time.monotonic()
    no_wait = run_cli("run", "--no-wait", "--", "true", store=store)
    assert no_wait.returncode == 0 and no_wait.stderr == ""
    assert time.monotonic() - started < 5
    wait_for(lambda: not list((tmp_path / "spool").iterdir()), what="the background recorder")
    assert run_cli("show", "3", store=store).returncode == 0


def test_a_slow_store_is_said_and_ctrl_c_leaves_it_to_the_recorder(tmp_path: Path) -> None:
    """Storing held up by another process's lock: after 2 s one line says what is awaited;
    SIGINT ends the wait (dying by it) and the recorder stores the run all the same."""
    store = str(tmp_path / "s.db")
    assert run_cli("run", "-q", "--", "true", store=store).returncode == 0  # create the store
    hold = (
        "import sqlite3, sys\n"
        f"c = sqlite3.connect({store!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
        "sys.stdin.readline(); c.execute('ROLLBACK')\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline() == "locked\n"
    try:
        launcher = start("--", "sh", "-c", "echo loss=0.25", store=store)
        assert launcher.stderr is not None
        err = launcher.stderr.fileno()
        os.set_blocking(err, False)
        said = ""
        deadline = time.monotonic() + 30
        while "Ctrl-C leaves it" not in said and time.monotonic() < deadline:
            said += read_available(err)
            time.sleep(0.05)
        assert launcher.poll() is None, said  # still waiting for the store
        assert "Ctrl-C leaves it to the recorder" in said
        launcher.send_signal(signal.SIGINT)
        launcher.wait(timeout=10)
        time.sleep(0.1)
        said += read_available(err)
        assert launcher.returncode == -signal.SIGINT
        assert "left the rest of run" in said
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)
    wait_for(lambda: not list((tmp_path / "spool").iterdir()), what="the recorder to finish")
    with expbook.open_store(store) as opened:
        run = opened.run(2)
        assert run.status.value == "finished" and run.metric("loss") == 0.25


def test_with_json_a_slow_store_leaves_stderr_the_one_json_object(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    assert run_cli("run", "-q", "--", "true", store=store).returncode == 0
    hold = (
        "import sqlite3, time\n"
        f"c = sqlite3.connect({store!r}, isolation_level=None)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
        "time.sleep(3); c.execute('ROLLBACK')\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    result = run_cli("run", "--json", "--", "sh", "-c", "echo loss=0.25", store=store)
    holder.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stderr)["run"] == 2  # no "waiting for the store" line before it


def test_runs_started_together_are_each_stored_when_they_return(tmp_path: Path) -> None:
    """Eight `expbook run`s on one store at once (a sweep): each returns with its run stored;
    one run's sweep of finished spools never takes another's before its launcher has read it."""
    store = str(tmp_path / "s.db")
    assert run_cli("run", "-q", "--", "true", store=store).returncode == 0
    launchers = [start("--json", "--", "sh", "-c", f"echo epoch 1 loss=0.{n}", store=store)
                 for n in range(1, 9)]  # fmt: skip
    numbers = []
    for launcher in launchers:
        _, err = launcher.communicate(timeout=120)
        assert launcher.returncode == 0, err
        numbers.append(json.loads(err)["run"])
    assert sorted(numbers) == list(range(2, 10))
    with expbook.open_store(store) as opened:
        assert all(run.status.value == "finished" for run in opened.runs())


def test_repeats_follow_each_other_without_a_gap(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    started = time.monotonic()
    result = run_cli("run", "--repeat", "3", "--", "sh", "-c", "echo loss=0.5", "--seed", "0",
                     store=store)  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "3 repeats over seed: runs #1, #2, #3" in result.stderr
    assert elapsed < 12, elapsed  # each repeat waited ~10 s for its recorder before


# --- 2. a dead recorder or a bad disk never loses the program's run ------------------------------


def test_a_killed_recorder_is_replaced_and_nothing_is_stored_twice(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    launcher = start("--", sys.executable, counting_program(tmp_path, 150, pause=0.01),
                     store=store)  # fmt: skip
    spool = spool_of(store)
    wait_for(lambda: stored_offset(store) > 0, what="a first batch in the store")
    for pid in recorders(spool):
        os.kill(pid, signal.SIGKILL)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, err
    assert "run #1 finished" in err and "150 lines of output" in err
    assert_whole(store, 1, 150, status="finished")


def test_a_killed_reading_half_is_not_the_programs_failure(tmp_path: Path) -> None:
    """The reading half killed (the OOM killer's choice): before, its traceback became the
    run's error and the status `failed` though the program exited 0."""
    store = str(tmp_path / "s.db")
    launcher = start("--", sys.executable, counting_program(tmp_path, 150, pause=0.01,
                     gate=75), store=store)  # fmt: skip
    spool = spool_of(store)
    wait_for(lambda: stored_offset(store) > 0, what="a first batch in the store")
    halves = recorders(spool)
    reading = max(halves)  # forked after the storing half started: the higher pid
    os.kill(reading, signal.SIGKILL)
    open_gate(tmp_path)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 0, err
    assert_whole(store, 1, 150, status="finished")
    with expbook.open_store(store) as opened:
        run = opened.run(1)
        assert run.error is None


def _orphan(tmp_path: Path, store: str, lines: int, code: int) -> Spool:
    """A run whose launcher and recorders were all killed (a job torn down) right after its
    program ended, with part of its output stored: its spool is an orphan."""
    assert run_cli("run", "-q", "--", "true", store=store).returncode == 0  # run #1
    launcher = start("--", sys.executable, counting_program(tmp_path, lines, pause=0.005,
                     code=code, gate=lines // 2), store=store)  # fmt: skip
    spool = spool_of(store)
    wait_for(lambda: stored_offset(store) > 0, what="a first batch in the store")
    with sqlite3.connect(store, isolation_level=None) as connection:
        connection.execute("BEGIN EXCLUSIVE")  # the rest cannot be stored...
        open_gate(tmp_path)
        wait_for(lambda: spool.exit_report() is not None, what="the program's end")
        for pid in [launcher.pid, *recorders(spool)]:  # ...before everything is killed
            os.kill(pid, signal.SIGKILL)
        launcher.wait(timeout=10)
        connection.execute("ROLLBACK")
    return spool


def test_recover_stores_an_orphan_exactly_once_with_the_programs_status(tmp_path: Path) -> None:
    store = str(tmp_path / "s.db")
    spool = _orphan(tmp_path, store, 200, code=3)
    assert 0 < stored_offset(store) < spool.output_size()  # partly stored
    listed = run_cli("ls", store=store)
    assert "1 earlier run waits to be recovered" in listed.stderr
    waiting = run_cli("recover", "--list", "--json", store=store)
    assert [row["run"] for row in json.loads(waiting.stdout)] == [2]
    racing = [subprocess.Popen([EXPBOOK, "recover"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "EXPBOOK_STORE": store})
              for _ in range(2)]  # fmt: skip
    outputs = [process.communicate(timeout=60) for process in racing]
    assert any("recovered run #2: failed" in out for out, _ in outputs), outputs
    assert_whole(store, 2, 200, status="failed", code=3)
    again = run_cli("recover", store=store)
    assert again.returncode == 0 and "no runs wait" in again.stdout
    assert_whole(store, 2, 200, status="failed", code=3)  # nothing twice
    assert "waits to be recovered" not in run_cli("ls", store=store).stderr
    assert not os.path.exists(spool.path)


def record_then_recover(store: str, tmp_path: Path, make_writable) -> expbook.RunRecord:  # type: ignore[no-untyped-def]
    """Run a program on a store that cannot be written: it runs to its end with its output and
    status, one line says what was not recorded and where it is kept; once ``make_writable``
    has run, `expbook recover` stores it. The recovered run."""
    cache = tmp_path / "cache"
    env = {"XDG_CACHE_HOME": str(cache)}
    result = run_cli("run", "--store", store, "--", "sh", "-c", "echo loss=0.5; exit 4",
                     env=env)  # fmt: skip
    assert result.returncode == 4 and result.stdout == "loss=0.5\n"
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "not fully recorded" in result.stderr and str(cache) in result.stderr
    make_writable()
    recovered = run_cli("recover", "--store", store, env=env)
    assert recovered.returncode == 0, recovered.stderr
    with expbook.open_store(store) as opened:
        return opened.run("last")


def test_a_store_under_a_file_never_stops_the_program(tmp_path: Path) -> None:
    """`--store` where no directory can be made (ENOTDIR)."""
    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")

    def make_writable() -> None:
        blocker.unlink()
        blocker.mkdir()

    run = record_then_recover(str(blocker / "s.db"), tmp_path, make_writable)
    assert (run.status.value, run.exit_code, run.metric("loss")) == ("failed", 4, 0.5)


def mount_tmpfs(mount: Path, options: str) -> None:
    """A real tmpfs at ``mount`` (skips the test where mounting is not allowed)."""
    mount.mkdir(exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 1 MiB tmpfs, for the spool."""
    mount = tmp_path / "small"
    mount_tmpfs(mount, "size=1m")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_read_only_store_directory_never_stops_the_program(tmp_path: Path) -> None:
    """A store on a read-only file system (EROFS): the spool goes to the cache."""
    mount = tmp_path / "ro"
    mount_tmpfs(mount, "ro,size=1m")
    try:
        remount = ["mount", "-o", "remount,rw", str(mount)]
        run = record_then_recover(str(mount / "s.db"), tmp_path,
                                  lambda: subprocess.run(remount, check=True))  # fmt: skip
        assert (run.status.value, run.exit_code, run.metric("loss")) == ("failed", 4, 0.5)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_never_stops_the_program(tmp_path: Path, small_disk: Path) -> None:
    store = str(tmp_path / "s.db")
    lines = 100_001
    result = run_cli("run", "--", sys.executable, "-c",
                     f"for i in range({lines}): print(f'step {{i}} loss={{i}}')",
                     store=store, env={"EXPBOOK_SPOOL_ROOT": str(small_disk)})  # fmt: skip
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == lines  # every line passed through
    problems = [line for line in result.stderr.splitlines() if line.startswith("expbook: warn")]
    assert len(problems) == 1 and "No space left on device" in problems[0], result.stderr
    with expbook.open_store(store) as opened:
        run = opened.run("last")
        assert run.status.value == "finished" and run.exit_code == 0
        assert "No space left on device" in (run.recording_error or "")
        points = len(opened.series(run, "loss").steps)
    assert 0 < points < lines  # what fitted was recorded, whole lines only
    assert list(small_disk.iterdir()) == []  # the spool is gone once stored


@pytest.mark.parametrize("terminal", [False, True], ids=["pipes", "terminal"])
def test_processes_the_program_leaves_behind_keep_running(tmp_path: Path, terminal: bool) -> None:
    store = str(tmp_path / "s.db")
    marker = tmp_path / "f"
    command = [EXPBOOK, "run", "--", "bash", "-c", f"(sleep 1; echo hi > {marker}) & exit 0"]
    env = {**os.environ, "EXPBOOK_STORE": store}
    if terminal:
        import pty

        pid, master = pty.fork()
        if pid == 0:
            os.execve(EXPBOOK, command, env)
        while True:
            try:
                if not os.read(master, 1024):
                    break
            except OSError:
                break
        _, status = os.waitpid(pid, 0)
        os.close(master)
        assert os.waitstatus_to_exitcode(status) == 0
    else:
        assert subprocess.run(command, env=env, capture_output=True, check=False).returncode == 0
    wait_for(marker.exists, timeout=10, what="the background process's file")
    assert marker.read_text() == "hi\n"


# --- 7. the launcher and the reading half stay light; one wire format ---------------------------


def test_the_launcher_and_the_reading_half_load_only_the_standard_library() -> None:
    code = (
        "import sys, json\n"
        "import expbook.runner.launch, expbook.runner.follow, expbook.runner.recover\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)  # fmt: skip
    modules = json.loads(result.stdout)
    roots = {m.split(".")[0] for m in modules} - {"__main__", "_distutils_hack"}
    third_party = sorted(roots - set(sys.stdlib_module_names))
    assert third_party == ["expbook"], third_party
    assert not [m for m in modules if m.startswith("expbook.cli")]


def test_the_summary_fields_on_the_wire_are_those_of_summary_value() -> None:
    import dataclasses

    from expbook.runner.messages import SUMMARY_FIELDS
    from expbook.store.base import SummaryValue

    assert tuple(f.name for f in dataclasses.fields(SummaryValue)) == SUMMARY_FIELDS


def test_a_spool_is_locked_before_another_run_can_see_it(tmp_path: Path) -> None:
    """Another run's launcher looks for orphans while this one creates its spool: it must see
    it active, never orphaned (eight runs started together once printed '1 earlier run waits
    to be recovered' into --json's stderr)."""
    from expbook.runner.spool import Spool, find_orphans

    root, url = str(tmp_path / "spool"), "sqlite:////nowhere.db"
    spool = Spool.create(root, "abc", {"store": url, "started_at": 1.0})
    assert spool.created_lock is not None
    assert spool.state() == "active" and find_orphans([root], url) == []
    os.close(spool.created_lock)  # its launcher died without a recorder
    assert [found.run_id for found in find_orphans([root], url)] == ["abc"]
