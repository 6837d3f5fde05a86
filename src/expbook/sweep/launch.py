"""How a sweep trial's command is started, watched and stopped: the one seam between an agent
and the place its trials run.

The agent (``expbook.sweep.agent``) decides everything about a trial: which one runs, its lease
and heartbeats, pruning, what its end means. It describes the command as a ``Launch``
(``expbook run``'s arguments, the trial's environment variables, the directory it runs in, the
trial's folder of files) and hands it to its ``Launcher``, which starts it and returns a
``Started``: the agent asks it whether the command has ended (``wait``), stops it (``stop``)
and asks why it failed (``error``). Two launchers:

- ``LocalLauncher``: ``expbook run`` as a child process of the agent (``spawn``): in a session
  of its own, with ``PR_SET_PDEATHSIG`` (Linux) so that it gets SIGTERM when the agent dies,
  even by SIGKILL; stopped by SIGTERM to its process group (``expbook run`` passes it on to the
  program's) and SIGKILL to every process group of the trial after a grace period
  (``stop_process``);
- ``expbook.sweep.ray.RayLauncher``: a Ray task that does the same on a node of a Ray cluster.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

ENTRY = "import sys; from expbook.cli.entry import main; sys.argv[0] = 'expbook'; main()"
"""How a trial's ``expbook run`` starts: the console script's entry, with this Python."""
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Launch:
    """One trial's command, as the agent builds it; the same wherever it runs."""

    args: tuple[str, ...]
    """``expbook``'s arguments: ``run --name ... --store URL -- PROGRAM ARGS``."""
    env: Mapping[str, str]
    """The trial's variables (``EXPBOOK_RUN_UUID``, ...), set over the environment where it
    runs."""
    cwd: str
    workdir: Path
    """The trial's own folder: files its command reads (their paths are in ``args`` and
    ``env``), and its stderr (``workdir/stderr``) when ``quiet``."""
    quiet: bool = True
    """The command's output goes to its run only (``expbook logs``), not to this terminal."""
    name: str = ""
    """The trial's run name, for the launcher's own displays."""

    def command(self) -> list[str]:
        """The command line, with the Python running this (the one of the machine it runs on)."""
        return [sys.executable, "-c", ENTRY, *self.args]

    def environment(self) -> dict[str, str]:
        """This process's environment with the trial's variables, less ``EXPBOOK_RUN_ID`` (a
        sweep run inside ``expbook run``: its trials are runs of their own)."""
        env = {**os.environ, **self.env}
        env.pop("EXPBOOK_RUN_ID", None)
        return env


class Started(Protocol):
    """A trial's command once started."""

    ran: bool
    """False when the command never started (a launcher's task cancelled before it ran): no run
    will appear."""

    def wait(self, timeout: float) -> int | None:
        """Its exit status once it has ended (returns as soon as it ends), else None after
        ``timeout`` seconds."""

    def stop(self, grace: float) -> int:
        """Stop it: SIGTERM, SIGKILL after ``grace`` seconds; its exit status."""

    def error(self, status: int) -> str:
        """Why it failed, in one line: ``exit status 1: <its last line on stderr>``."""

    def close(self) -> None:
        """Release what watching it holds; call once it has ended."""


class Launcher(Protocol):
    """Starts trials' commands (see the module docstring)."""

    def start(self, launch: Launch) -> Started: ...


class LocalLauncher:
    """Trials as child processes of the agent."""

    def start(self, launch: Launch) -> LocalProcess:
        return LocalProcess(spawn(launch), launch.workdir / "stderr")


class LocalProcess:
    """A trial's ``expbook run`` running here."""

    ran = True

    def __init__(self, process: subprocess.Popen[bytes], stderr: Path) -> None:
        self.process = process
        self.stderr = stderr
        self.exit = ProcessExit(process)

    def wait(self, timeout: float) -> int | None:
        return self.process.returncode if self.exit.wait(timeout) else None

    def stop(self, grace: float) -> int:
        return stop_process(self.process, grace)

    def error(self, status: int) -> str:
        return exit_text(status, self.stderr)

    def close(self) -> None:
        self.exit.close()


def spawn(launch: Launch) -> subprocess.Popen[bytes]:
    """Start the launch's command here: in a session of its own, stdin closed, with
    ``PR_SET_PDEATHSIG`` where there is one; when ``quiet``, stdout to /dev/null and stderr to
    ``workdir/stderr``."""
    stderr = open(launch.workdir / "stderr", "wb") if launch.quiet else None  # noqa: SIM115
    prefix, preexec = parent_death()
    try:
        return subprocess.Popen(
            [*prefix, *launch.command()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if launch.quiet else None,
            stderr=stderr,
            cwd=launch.cwd,
            env=launch.environment(),
            start_new_session=True,
            preexec_fn=preexec,
        )
    finally:
        if stderr is not None:
            stderr.close()


def stop_process(process: subprocess.Popen[bytes], grace: float) -> int:
    """SIGTERM to ``expbook run``'s process group (it passes it on to the program's), SIGKILL
    to every group of the trial after ``grace`` seconds; its exit status."""
    groups = _groups(process.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    for group in groups | _groups(process.pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    return process.wait()


class ProcessExit:
    """Waits for a process to end, for at most a timeout, and returns as soon as it ends:
    on a pidfd where there is one (Linux 5.3+; ``Popen.wait(timeout)`` sleeps in steps of up
    to 50 ms, which every trial would pay), else with ``Popen.wait``."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.fd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self.fd = os.pidfd_open(process.pid)  # type: ignore[attr-defined]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def wait(self, timeout: float) -> bool:
        """True once the process has ended."""
        if self.fd is not None:
            import select

            select.select([self.fd], [], [], timeout)
            return self.process.poll() is not None
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


def parent_death() -> tuple[list[str], Callable[[], None] | None]:
    """How a trial gets SIGTERM when the thread that started it dies, even by SIGKILL
    (Linux ``PR_SET_PDEATHSIG``, kept across exec): a command prefix, ``setpriv --pdeathsig
    TERM`` (util-linux), which lets ``subprocess`` spawn without forking the agent's large
    process (a fork costs it about 30 ms); else a ``preexec_fn`` calling ``prctl`` through
    ctypes; elsewhere nothing (a SIGKILLed agent leaves its trial running, and another agent
    marks it crashed when its lease goes stale)."""
    if not sys.platform.startswith("linux"):
        return [], None
    setpriv = _setpriv()
    if setpriv is not None:
        return [setpriv, "--pdeathsig", "TERM", "--"], None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return [], None
    parent = os.getpid()

    def child() -> None:  # in the forked child: the libc function was looked up before
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the agent died before prctl: nobody supervises us
            os._exit(1)

    return [], child


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, if it has ``--pdeathsig`` (2.33 and later)."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in usage.stdout else None


def _groups(pid: int) -> set[int]:
    """The process groups of ``pid`` and its descendants (Linux /proc; elsewhere its own),
    leaving out the run's recorder (a session of its own, which must finish storing the run)
    and the recorder's children."""
    groups = {pid}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return groups
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry), int(fields[2])))
    todo = [pid]
    while todo:
        for child, group in children.get(todo.pop(), []):
            if _is_recorder(child):
                continue
            groups.add(group)
            todo.append(child)
    return groups


def _is_recorder(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"expbook.runner.recorder" in handle.read()
    except OSError:
        return False


def exit_text(status: int, stderr: Path) -> str:
    """``exit status 1: <its last line on stderr>`` or ``killed by SIGSEGV``."""
    if status < 0:
        try:
            text = f"killed by {signal.Signals(-status).name}"
        except ValueError:
            text = f"killed by signal {-status}"
    else:
        text = f"exit status {status}"
    try:
        with open(stderr, "rb") as handle:
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - 2048))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        tail = ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    return f"{text}: {lines[-1][:300]}" if lines else text
