"""``expbook run -- COMMAND``: run a program as if expbook were not there, and record it.

This process (the launcher) is on the critical path of every run, so it imports only the
standard library and does only what must happen here:

1. start the program at once, with ``EXPBOOK_RUN_ID``/``EXPBOOK_STORE``/``EXPBOOK_SPOOL`` set;
2. start the recorder (``python -m expbook.runner.recorder``), a separate process that creates
   the run, parses the output and writes the store — it can never slow the program down;
3. pass the program's output through unchanged, appending it to the spool for the recorder;
4. pass stdin through, forward signals, and exit with the program's exit status.

How the program is run:

- stdout is a terminal: on a pseudo-terminal, so colours and progress bars look as they always
  do; our terminal goes to raw mode and keystrokes (Ctrl-C included) reach the program through
  its own terminal;
- stdout is not a terminal (a pipe, a file, CI): through pipes; stdout and stderr stay apart.
  The program gets its own process group and SIGINT, SIGTERM and SIGHUP sent to expbook are
  forwarded to that group — unless stdin is a terminal, where the program must stay in the
  terminal's foreground group to read it (and gets Ctrl-C from the terminal itself).
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import time

from expbook.locations import resolve_url, spool_root
from expbook.runner.spool import FRAME, read_json, write_json

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs 10 ms
if TYPE_CHECKING:
    from typing import Any

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_READ = 1 << 18
_PIPE_SIZE = 1 << 20  # a big pipe: the program rarely waits for us to read
_SPOOL_BUFFER = 1 << 18
_SPOOL_FLUSH_SECONDS = 0.05

OPTIONS = {
    # option: (key, takes a value, repeatable)
    "--name": ("name", True, False),
    "--experiment": ("experiment", True, False),
    "-e": ("experiment", True, False),
    "--parent": ("parent", True, False),
    "--kind": ("kind", True, False),
    "--tag": ("tags", True, True),
    "-t": ("tags", True, True),
    "--note": ("note", True, False),
    "--store": ("store", True, False),
    "--quiet": ("quiet", False, False),
    "-q": ("quiet", False, False),
    "--no-capture": ("no_capture", False, False),
    "--help": ("help", False, False),
    "-h": ("help", False, False),
}
"""The options of ``expbook run`` (the click declaration in ``cli/main.py`` must match;
a test checks it)."""
USAGE = "usage: expbook run [OPTIONS] -- COMMAND [ARGS]... (see 'expbook run --help')"


class UsageError(Exception):
    """A mistake on the command line of ``expbook run``."""


def parse_args(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split ``expbook run``'s own options from the command: options come first; ``--`` or
    the first argument that is not an option starts the command."""
    options: dict[str, Any] = {"tags": []}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return options, argv[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            return options, argv[i:]
        name, eq, value = arg.partition("=")
        spec = OPTIONS.get(name)
        if spec is None:
            raise UsageError(f"no such option {name!r}")
        key, takes_value, repeatable = spec
        if not takes_value:
            if eq:
                raise UsageError(f"option {name} takes no value")
            options[key] = True
        else:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"option {name} needs a value")
                value = argv[i]
            if repeatable:
                options[key].append(value)
            else:
                options[key] = value
        i += 1
    return options, []


def new_run_id() -> str:
    """A random (version 4) UUID as 32 hex digits, without importing ``uuid``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def main(argv: list[str]) -> int:
    """``expbook run ARGS``: returns the exit status (the program's, or 128 + its signal)."""
    try:
        options, command = parse_args(argv)
        if options.get("help"):
            from expbook.cli.main import run_cli

            return run_cli(["run", "--help"])
        if not command:
            raise UsageError("nothing to run")
        url = resolve_url(options.get("store"))
    except UsageError as exc:
        _error(f"{exc}; {USAGE}")
        return 2
    except Exception as exc:  # a bad --store
        _error(str(exc))
        return 1
    return Launch(options, command, url).run()


class Launch:
    """One program run under ``expbook run``."""

    def __init__(self, options: dict[str, Any], command: list[str], url: str) -> None:
        self.options = options
        self.command = command
        self.url = url
        self.run_id = new_run_id()
        self.spool = os.path.join(spool_root(url), self.run_id)
        self.pid = 0
        self.forwarded: int | None = None
        self._output: Any = None
        self._flushed_at = 0.0

    def run(self) -> int:
        problem = _find_problem(self.command[0])
        if problem is not None:
            _error(f"cannot run {self.command[0]!r}: {problem}")
            return 126 if problem == "permission denied" else 127
        os.makedirs(self.spool, exist_ok=True)
        started = time.time()
        write_json(os.path.join(self.spool, "meta.json"), self._meta(started))
        # Buffered, flushed every 50 ms: a program that flushes every line would otherwise cost a
        # write to the spool per line. The recorder sees output at most 50 ms late.
        self._output = open(os.path.join(self.spool, "output"), "ab", buffering=_SPOOL_BUFFER)  # noqa: SIM115
        try:
            status = self._run_on_pty() if sys.stdout.isatty() else self._run_on_pipes()
        finally:
            self._output.close()
        return self._finish(status)

    def _meta(self, started: float) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "store": self.url,
            "command": self.command,
            "cwd": os.getcwd(),
            "hostname": os.uname().nodename,
            "started_at": started,
            "launcher_pid": os.getpid(),
            "python": sys.executable,
            "options": self.options,
        }

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["EXPBOOK_RUN_ID"] = self.run_id
        env["EXPBOOK_STORE"] = self.url
        env["EXPBOOK_SPOOL"] = self.spool
        return env

    def _start_recorder(self) -> None:
        log = os.open(os.path.join(self.spool, "recorder.log"), os.O_WRONLY | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.posix_spawn(
                sys.executable,
                [sys.executable, "-m", "expbook.runner.recorder", self.spool],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, log, 1),
                    (os.POSIX_SPAWN_DUP2, log, 2),
                ],
                setsid=True,  # not in the terminal's session: Ctrl-C and hang-ups don't reach it
            )
        finally:
            os.close(log)
            os.close(null)

    # --- pipes ----------------------------------------------------------------------------------

    def _run_on_pipes(self) -> int:
        out_r, out_w = _pipe()
        err_r, err_w = _pipe()
        own_group = not sys.stdin.isatty()
        try:
            self.pid = os.posix_spawnp(
                self.command[0],
                self.command,
                self._child_env(),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                    (os.POSIX_SPAWN_CLOSE, out_r),
                    (os.POSIX_SPAWN_CLOSE, err_r),
                ],
                setpgroup=0 if own_group else None,
            )
        finally:
            os.close(out_w)
            os.close(err_w)
        self._start_recorder()
        self._forward_signals(group=own_group)
        streams = {out_r: (b"o", sys.stdout.fileno()), err_r: (b"e", sys.stderr.fileno())}
        status = None
        while streams:
            ready = _readable(list(streams), timeout=0.2)
            for fd in ready:
                data = _read(fd)
                if not data:
                    os.close(fd)
                    del streams[fd]
                    continue
                kind, target = streams[fd]
                self._pass(kind, data, target)
            if not ready:  # quiet: has the program ended (leaving a process that holds a pipe)?
                self._output.flush()
                status = _reap(self.pid)
                if status is not None:
                    break
        for fd in streams:
            os.close(fd)
        return status if status is not None else _wait(self.pid)

    # --- pseudo-terminal ------------------------------------------------------------------------

    def _run_on_pty(self) -> int:
        import pty
        import termios
        import tty

        size = _window_size(sys.stdout.fileno())
        env = self._child_env()
        pid, master = pty.fork()
        if pid == 0:  # the child: set the window size, then become the program
            if size is not None:
                _set_window_size(0, size)
            try:
                os.execvpe(self.command[0], self.command, env)
            finally:
                os._exit(127)  # not reached unless exec failed (checked beforehand)
        self.pid = pid
        self._start_recorder()
        self._forward_signals(group=True)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_window_size(sys.stdout.fileno(), master))
        stdin = sys.stdin.fileno() if sys.stdin.isatty() else None
        saved = termios.tcgetattr(stdin) if stdin is not None else None
        try:
            if stdin is not None:
                tty.setraw(stdin)
            status = self._pump_pty(master, stdin)
        finally:
            if saved is not None:
                termios.tcsetattr(stdin, termios.TCSAFLUSH, saved)
            os.close(master)
        return status if status is not None else _wait(pid)

    def _pump_pty(self, master: int, stdin: int | None) -> int | None:
        """Pass output and input until the program's terminal closes; the wait status if the
        program ended while something else still held its terminal open."""
        target = sys.stdout.fileno()
        fds = [master] if stdin is None else [master, stdin]
        while True:
            ready = _readable(fds, timeout=0.2)
            if not ready:
                self._output.flush()
                status = _reap(self.pid)
                if status is not None:
                    return status
            for fd in ready:
                if fd == master:
                    data = _read(master)  # EIO when the program closed its terminal
                    if not data:
                        return None
                    self._pass(b"o", data, target)
                else:
                    data = os.read(fd, _READ)
                    if not data:
                        fds.remove(fd)  # end of our input: stop passing it on
                        continue
                    _write_all(master, data)

    # --- shared ---------------------------------------------------------------------------------

    def _pass(self, kind: bytes, data: bytes, target: int) -> None:
        try:  # noqa: SIM105 - a plain try costs less than contextlib.suppress on this path
            _write_all(target, data)
        except BrokenPipeError:  # our reader went away (| head): keep recording
            pass
        now = time.time()
        self._output.write(FRAME.pack(kind, len(data), now) + data)
        if now - self._flushed_at >= _SPOOL_FLUSH_SECONDS:
            self._output.flush()
            self._flushed_at = now

    def _forward_signals(self, *, group: bool) -> None:
        def forward(signum: int, _frame: object) -> None:
            self.forwarded = signum
            try:
                if group:
                    os.killpg(self.pid, signum)
                else:
                    os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

        for signum in _FORWARDED:
            if signum == signal.SIGINT and not group:
                # The program shares our terminal's foreground group: Ctrl-C reaches it directly.
                signal.signal(signum, lambda s, f: setattr(self, "forwarded", s))
            else:
                signal.signal(signum, forward)

    def _finish(self, status: int) -> int:
        ended = time.time()
        code, killed_by = _decode(status)
        write_json(
            os.path.join(self.spool, "exit.json"),
            {
                "exit_code": code,
                "signal": _signal_name(killed_by),
                "forwarded": _signal_name(self.forwarded),
                "ended_at": ended,
            },
        )
        if not self.options.get("quiet"):
            self._report(ended)
        return 128 + killed_by if killed_by is not None else code

    def _report(self, ended: float) -> None:
        """One line on stderr once the recorder is done — if it is ready already (for a
        command of a few milliseconds it is still starting; it finishes in the background)."""
        if read_json(os.path.join(self.spool, "ready")) is None:
            return
        done_path = os.path.join(self.spool, "done")
        deadline = ended + 5.0
        done = read_json(done_path)
        while done is None and time.time() < deadline:
            time.sleep(0.01)
            done = read_json(done_path)
        if done is not None:
            sys.stderr.write(f"expbook: {done['summary']}\n")


def _pipe() -> tuple[int, int]:
    read, write = os.pipe()
    try:
        import fcntl

        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)  # Linux; above the limit: EPERM
    except (ImportError, AttributeError, OSError):
        pass
    return read, write


def _readable(fds: list[int], timeout: float) -> list[int]:
    return select.select(fds, [], [], timeout)[0]


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, _READ)
    except OSError as exc:
        if exc.errno == errno.EIO:
            return b""
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _wait(pid: int) -> int:
    return os.waitpid(pid, 0)[1]


def _reap(pid: int) -> int | None:
    """The program's wait status if it has ended, else None (without blocking)."""
    reaped, status = os.waitpid(pid, os.WNOHANG)
    return status if reaped == pid else None


def _decode(status: int) -> tuple[int | None, int | None]:
    """(exit code, signal that killed it) from a wait status; one of them is None."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status), None


def _find_problem(program: str) -> str | None:
    """Why ``program`` cannot be executed ("command not found", ...), or None if it can."""
    if os.sep in program:
        candidates = [program]
    else:
        path = os.environ.get("PATH", os.defpath).split(os.pathsep)
        candidates = [os.path.join(directory or ".", program) for directory in path]
    found = [c for c in candidates if os.path.isfile(c)]
    if not found:
        return "command not found"
    if not any(os.access(c, os.X_OK) for c in found):
        return "permission denied"
    return None


def _signal_name(signum: int | None) -> str | None:
    if signum is None:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _window_size(fd: int) -> bytes | None:
    import fcntl
    import termios

    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def _set_window_size(fd: int, size: bytes) -> None:
    import fcntl
    import termios

    try:  # noqa: SIM105 - contextlib costs an import on the critical path
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def _copy_window_size(source: int, target: int) -> None:
    size = _window_size(source)
    if size is not None:
        _set_window_size(target, size)


def _error(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
