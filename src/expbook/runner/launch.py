"""``expbook run -- COMMAND``: run a program as if expbook were not there, and record it.

This process (the launcher) is on the critical path of every run, so it imports only the
standard library and does only what must happen here:

1. start the program at once, with ``EXPBOOK_RUN_ID``/``EXPBOOK_STORE``/``EXPBOOK_SPOOL`` set;
2. start the recorder (``python -m expbook.runner.recorder``), a separate process that creates
   the run, parses the output and writes the store — it can never slow the program down;
3. pass the program's output through unchanged, appending it to the spool for the recorder;
4. pass stdin through, forward signals, and end as the program ended: with its exit status, or
   killed by the same signal (so that Ctrl-C also stops a shell loop around ``expbook run``).

How the program is run:

- stdout is a terminal: on a pseudo-terminal, so colours and progress bars look as they always
  do. In the foreground our terminal goes to raw mode and keystrokes (Ctrl-C included) reach the
  program through its own terminal, except Ctrl-Z, which stops the program and our job (see
  ``_type``); in the background the terminal is left alone. Input that is
  not a terminal (``< file``) goes to the program directly, and so does a stderr redirected
  away from the terminal (through a pipe, so it is still recorded);
- stdout is not a terminal (a pipe, a file, CI): through pipes; stdout and stderr stay apart.
  The program gets its own process group and SIGINT, SIGTERM and SIGHUP sent to expbook are
  forwarded to that group — unless stdin is a terminal, where the program must stay in the
  terminal's foreground group to read it (and gets Ctrl-C from the terminal itself).

The program starts with SIGPIPE and SIGXFSZ at their defaults (Python ignores them, and ignored
signals survive ``exec``), so ``expbook run -- prog | head`` ends ``prog`` as it would without
expbook: when ``head`` exits, the launcher stops reading and ``prog`` gets SIGPIPE.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import time

from expbook.locations import resolve_url, spool_roots
from expbook.runner.spool import FRAME, Spool, orphans_line, size_text

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs 10 ms
if TYPE_CHECKING:
    from typing import Any

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_DIE_BY = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
"""Signals the launcher re-raises on itself when they ended the program (shells then stop
loops and scripts); for others (SIGSEGV, SIGQUIT, SIGKILL...) it exits with 128 + the signal
(dying by those would dump the launcher's core)."""
_RESET_FOR_PROGRAM = (signal.SIGPIPE, signal.SIGXFSZ)
_READ = 1 << 18
_PIPE_SIZE = 1 << 20  # a big pipe: the program rarely waits for us to read
_SPOOL_BUFFER = 1 << 18
_SPOOL_FLUSH_SECONDS = 0.05
_GATHER_SECONDS = 0.001
"""After passing a chunk of output that did not fill a read, wait this long before reading
again: a program that writes line by line (``print(..., flush=True)``) is then read in chunks of
many lines, not a line at a time, which would cost the launcher as much CPU as the program
itself spends printing. The pipe holds 1 MiB meanwhile."""
_WAIT_SAY_SECONDS = 2.0
"""After the program has ended, how long the launcher waits for the recorder to store the
run before it says what it is waiting for."""
_RECORDER_CHECK_SECONDS = 1.0
_RECORDER_STARTS = 3
"""A recorder that is killed (OOM, ``kill -9``) is started again, resuming where it stopped,
up to this many recorders in all; one that fails says why and is not restarted."""

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
    "--no-wait": ("no_wait", False, False),
    "--no-autolog": ("no_autolog", False, False),
    "--no-system-metrics": ("no_system_metrics", False, False),
    "--system-interval": ("system_interval", True, False),
    "--artifacts": ("artifacts", True, True),
    "--json": ("json", False, False),
    "--repeat": ("repeat", True, False),
    "--seed-flag": ("seed_flag", True, False),
    "--help": ("help", False, False),
    "-h": ("help", False, False),
}
"""The options of ``expbook run`` (the click declaration in ``cli/main.py`` must match;
a test checks it)."""
USAGE = "usage: expbook run [OPTIONS] -- COMMAND [ARGS]... (see 'expbook run --help')"


class UsageError(Exception):
    """A mistake on the command line of ``expbook run``."""


class HelpRequested(Exception):
    """``expbook run --help``: the console script shows click's help (not imported here)."""


def parse_args(argv: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split ``expbook run``'s own options from the command: options come first; ``--`` or
    the first argument that is not an option starts the command."""
    options: dict[str, Any] = {"tags": [], "artifacts": []}
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


def split_assignments(command: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading ``NAME=value`` words, as a shell takes them: environment for the program."""
    env: dict[str, str] = {}
    for i, word in enumerate(command):
        name, eq, value = word.partition("=")
        if not eq or not name or not (name[0].isalpha() or name[0] == "_"):
            return env, command[i:]
        if not all(c.isalnum() or c == "_" for c in name):
            return env, command[i:]
        env[name] = value
    return env, []


AUTOLOG_DIRECTORY = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integrations", "_inject"
)
"""Holds the ``sitecustomize.py`` that gives a Python program expbook's framework hooks (see
``expbook.integrations``); prepended to the program's ``PYTHONPATH``."""


def autolog_on(options: dict[str, Any], env: dict[str, str]) -> bool:
    """Whether the program gets the framework hooks: not with ``--no-autolog`` or
    ``EXPBOOK_AUTOLOG=0`` (also ``false``, ``no``, ``off``)."""
    switch = env.get("EXPBOOK_AUTOLOG", "1").strip().lower()
    return not options.get("no_autolog") and switch not in ("0", "false", "no", "off")


def add_autolog(env: dict[str, str], spool: str) -> None:
    """Give a Python program the hooks: our ``sitecustomize`` first on its ``PYTHONPATH``,
    writing to the spool ``EXPBOOK_AUTOLOG_DIR`` names."""
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{AUTOLOG_DIRECTORY}{os.pathsep}{path}" if path else AUTOLOG_DIRECTORY
    env["EXPBOOK_AUTOLOG_DIR"] = spool


def _check_system_interval(value: str | None) -> None:
    """``--system-interval SECONDS``: a number, at least 1 (``expbook.system.sampler``)."""
    if value is None:
        return
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 1 <= seconds < float("inf"):
        raise UsageError(f"--system-interval {value!r}: give a number of seconds, at least 1")


def new_run_id() -> str:
    """A random (version 4) UUID as 32 hex digits, without importing ``uuid``."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


GIVEN_RUN_ID = "EXPBOOK_RUN_UUID"
"""Environment variable: the UUID the run of this ``expbook run`` gets, chosen by whoever
starts it (a sweep agent, which must know the run before it exists). Taken out of the
environment, so the program and any ``expbook run`` inside it never see it (unlike
``EXPBOOK_RUN_ID``, which the program inherits and which names the enclosing run)."""


def take_given_run_id(*, repeats: bool = False) -> str | None:
    """The run UUID given by ``EXPBOOK_RUN_UUID`` (32 hex digits, dashes allowed), removed
    from this process's environment; None when not set.

    Raises:
        UsageError: the value is not a UUID, or ``--repeat`` would give it to several runs.
    """
    value = os.environ.pop(GIVEN_RUN_ID, None)
    if value is None:
        return None
    digits = value.strip().replace("-", "").lower()
    if len(digits) != 32 or any(c not in "0123456789abcdef" for c in digits):
        raise UsageError(f"{GIVEN_RUN_ID}={value!r}: give a UUID (32 hex digits)")
    if repeats:
        raise UsageError(f"{GIVEN_RUN_ID} names one run; --repeat starts several")
    return digits


def main(argv: list[str]) -> int:
    """``expbook run ARGS``: returns the exit status (the program's, or 128 + its signal)."""
    try:
        options, command = parse_args(argv)
        if options.get("help"):
            raise HelpRequested
        env, command = split_assignments(command)
        if not command:
            raise UsageError("nothing to run")
        _check_system_interval(options.get("system_interval"))
        repeats = options.get("repeat") is not None or options.get("seed_flag") is not None
        run_id = take_given_run_id(repeats=repeats)
        url = resolve_url(options.get("store"))
        if repeats:
            from expbook.runner.repeat import run_repeats

            return run_repeats(options, command, url, env)
    except HelpRequested:
        raise
    except UsageError as exc:
        _error(f"{exc}; {USAGE}")
        return 2
    except Exception as exc:  # a bad --store, a bad --repeat
        _error(str(exc))
        return 1
    return Launch(options, command, url, env, run_id=run_id).run()


class Launch:
    """One program run under ``expbook run``."""

    def __init__(
        self,
        options: dict[str, Any],
        command: list[str],
        url: str,
        env: dict[str, str] | None = None,
        *,
        run_id: str | None = None,
    ) -> None:
        self.options = options
        self.command = command
        self.url = url
        self.env = env or {}
        self.run_id = run_id or new_run_id()
        self.spool: Spool | None = None  # None: the run cannot be recorded (no spool)
        self.result: dict[str, Any] | None = None  # the recorder's ``done``
        self.pid = 0  # the program (and its process group)
        self._leader = 0  # on a terminal: the session leader that stands in for a shell
        self._reports: int | None = None  # where the leader reports the program's status
        self._reported = b""  # what it reported after the program's pid
        self.recorder = 0
        self.forwarded: int | None = None
        self._lock: int | None = None
        self._out: int | None = None  # the spool's output file
        self._buffer = bytearray()  # frames not yet written to it
        self._spooled = 0  # bytes of whole frames in it
        self._spool_error: str | None = None
        self._recorders = 0
        self._check_at = 0.0
        self._leave: int | None = None  # a signal received while waiting for the recorder
        self._flushed_at = 0.0
        self._stdout = _fd(sys.stdout)
        self._stderr = _fd(sys.stderr)

    def run(self) -> int:
        program, problem, via_shell = _resolve_program(self.command[0], self.env)
        if problem is not None:
            _error(f"cannot run {self.command[0]!r}: {problem}")
            return 126 if problem != "command not found" else 127
        argv = ["/bin/sh", program, *self.command[1:]] if via_shell else self.command
        _report_orphans(self.url)
        self._make_spool()
        try:
            if self._stdout is not None and os.isatty(self._stdout):
                status = self._run_on_pty(argv)
            else:
                status = self._run_on_pipes(argv)
        finally:
            self._close_spool()
        return self._finish(status)

    def _make_spool(self) -> None:
        """The run's spool, in the first root where it can be written (next to a SQLite store,
        else the user's cache, else the temporary directory); without one the program runs
        unrecorded, and one line says so. Nothing here can stop the program from running."""
        meta = self._meta(time.time())
        problems = []
        for root in spool_roots(self.url):
            spool = None
            try:
                spool = Spool.create(root, self.run_id, meta)
                self._lock = spool.created_lock  # locked before anyone could see it
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
                self._out = os.open(spool.output, flags, 0o644)
            except OSError as exc:
                problems.append(f"{exc.filename or root}: {exc.strerror or exc}")
                if self._lock is not None:
                    os.close(self._lock)
                    self._lock = None
                if spool is not None:
                    spool.remove()
                continue
            self.spool = spool
            return
        _say(
            f"warning: this run is not recorded: no spool can be written ({problems[0]}); "
            "the program runs as usual"
        )

    def _meta(self, started: float) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "store": self.url,
            "command": self.command,
            "env": self.env,
            "cwd": os.getcwd(),
            "hostname": os.uname().nodename,
            "started_at": started,
            "launcher_pid": os.getpid(),
            "python": sys.executable,
            "options": self.options,
            "wait": not self.options.get("no_wait"),
        }

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        if self.spool is not None:
            env["EXPBOOK_RUN_ID"] = self.run_id
            env["EXPBOOK_STORE"] = self.url
            env["EXPBOOK_SPOOL"] = self.spool.path
            if autolog_on(self.options, env):
                add_autolog(env, self.spool.path)
        return env

    def _start_recorder(self) -> bool:
        """Start a recorder on the spool, with its lock; False if none can be started (no
        spool, or as many recorders as allowed have been)."""
        if self.spool is None or self._lock is None or self._recorders >= _RECORDER_STARTS:
            return False
        self._recorders += 1
        try:
            log = os.open(self.spool.file("recorder.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        except OSError:
            log = os.open(os.devnull, os.O_WRONLY)
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            self.recorder = os.posix_spawn(
                sys.executable,
                [sys.executable, "-m", "expbook.runner.recorder", self.spool.path, "3"],
                os.environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0),
                    (os.POSIX_SPAWN_DUP2, log, 1),
                    (os.POSIX_SPAWN_DUP2, log, 2),
                    (os.POSIX_SPAWN_DUP2, self._lock, 3),  # the spool's lock, held
                ],
                setsid=True,  # not in the terminal's session: Ctrl-C and hang-ups don't reach it
            )
        except OSError:  # no memory for a process now: the spool keeps the run for later
            self.recorder = 0
        finally:
            os.close(log)
            os.close(null)
        return self.recorder != 0

    def _check_recorder(self) -> None:
        """Once a second while the program runs: a recorder that was killed is replaced by one
        that resumes where it stopped (the store has a bookmark; nothing is stored twice)."""
        now = time.monotonic()
        if now < self._check_at or not self.recorder:
            return
        self._check_at = now + _RECORDER_CHECK_SECONDS
        if _reap(self.recorder) is None:
            return
        self.recorder = 0
        if self.spool is not None and self.spool.failed() is None:
            self._start_recorder()

    # --- pipes ----------------------------------------------------------------------------------

    def _run_on_pipes(self, argv: list[str]) -> int:
        out_r, out_w = _pipe()
        err_r, err_w = _pipe()
        own_group = not _isatty(sys.stdin)
        group = {"setpgroup": 0} if own_group else {}
        try:
            self.pid = os.posix_spawnp(
                argv[0],
                argv,
                self._child_env(),
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                    (os.POSIX_SPAWN_CLOSE, out_r),
                    (os.POSIX_SPAWN_CLOSE, err_r),
                ],
                setsigdef=_RESET_FOR_PROGRAM,
                **group,
            )
        finally:
            os.close(out_w)
            os.close(err_w)
        self._start_recorder()
        self._forward_signals(group=own_group)
        streams = {out_r: (b"o", self._stdout), err_r: (b"e", self._stderr)}
        return self._pump(streams, stdin=None, master=None, raw=None)

    # --- pseudo-terminal ------------------------------------------------------------------------

    def _run_on_pty(self, argv: list[str]) -> int:
        import pty
        import termios

        stdin = _fd(sys.stdin)
        terminal_in = stdin is not None and os.isatty(stdin)
        separate_err = self._stderr is not None and not _same_terminal(self._stderr, self._stdout)
        err_r, err_w = _pipe() if separate_err else (None, None)
        size = _window_size(self._stdout)
        master, slave = pty.openpty()
        if size is not None:
            _set_window_size(slave, size)
        env = self._child_env()
        reports, report = os.pipe()  # not inherited by the program (closed on exec)
        pid = os.fork()
        if pid == 0:  # the child: its own session on the new terminal, then the program
            try:
                os.close(master)
                os.close(reports)
                os.setsid()
                import fcntl

                fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                os.dup2(slave if terminal_in or stdin is None else stdin, 0)
                os.dup2(slave, 1)
                os.dup2(err_w if err_w is not None else slave, 2)
                _lead_session(argv, env, slave, report)
            finally:
                os._exit(127)  # not reached unless exec failed (checked beforehand)
        os.close(slave)
        os.close(report)
        if err_w is not None:
            os.close(err_w)
        self._leader, self._reports = pid, reports
        program, self._reported = _read_program_pid(reports)
        self.pid = program or pid
        self._start_recorder()
        self._forward_signals(group=True)
        if self._stdout is not None:
            stdout = self._stdout
            signal.signal(signal.SIGWINCH, lambda *_: _copy_window_size(stdout, master))
        raw = _RawMode(stdin) if terminal_in else None  # type: ignore[arg-type]
        streams = {master: (b"o", self._stdout)}
        if err_r is not None:
            streams[err_r] = (b"e", self._stderr)
        try:
            return self._pump(streams, stdin=stdin, master=master, raw=raw)
        finally:
            if raw is not None:
                raw.leave()

    # --- shared ---------------------------------------------------------------------------------

    def _pump(
        self,
        streams: dict[int, tuple[bytes, int | None]],
        *,
        stdin: int | None,
        master: int | None,
        raw: _RawMode | None,
    ) -> int:
        """Pass output (and, with ``raw``, keystrokes) until the program's outputs close; its
        wait status."""
        status = None
        watched = list(streams)
        if raw is not None:
            continued = [True]
            signal.signal(signal.SIGCONT, lambda *_: continued.__setitem__(0, True))
        while streams:
            if raw is not None and continued[0]:  # started, or `fg`/`bg` after a Ctrl-Z
                continued[0] = False
                reading = raw.enter()  # only as the terminal's foreground job
                if reading and stdin not in watched:
                    watched.append(stdin)
                elif not reading and stdin in watched:
                    watched.remove(stdin)
            ready = _readable(watched, timeout=0.2)
            gather = False
            for fd in ready:
                if fd == stdin:
                    data = _read(fd)
                    if data and master is not None:
                        self._type(data, master, raw)  # type: ignore[arg-type]
                    else:
                        watched.remove(fd)  # end of our input: stop passing it on
                    continue
                data = _read(fd)
                if not data:
                    os.close(fd)
                    del streams[fd]
                    watched.remove(fd)
                    continue
                kind, target = streams[fd]
                gather = gather or len(data) < _READ
                if not self._pass(kind, data, target) and fd != master:
                    # Our reader is gone (| head): stop reading, so the program gets SIGPIPE.
                    os.close(fd)
                    del streams[fd]
                    watched.remove(fd)
            if gather:
                time.sleep(_GATHER_SECONDS)
            self._check_recorder()
            if not ready:  # quiet: has the program ended (leaving a process that holds a pipe)?
                self._flush_spool()
                status = self._reap_program()
                if status is not None:
                    break
        for fd, (kind, target) in streams.items():  # what was written just before the end
            for data in _drain(fd):
                self._pass(kind, data, target)
            os.close(fd)
        return status if status is not None else self._program_status(blocking=True)

    def _reap_program(self) -> int | None:
        """The program's wait status if it has ended, else None (without blocking)."""
        if not self._leader:
            return _reap(self.pid)
        return self._program_status(blocking=False)

    def _program_status(self, *, blocking: bool) -> int | None:
        """The program's wait status, once it has ended: on a terminal, as its session leader
        reports it (the leader's own status if it died without reporting)."""
        if not self._leader:
            return _wait(self.pid)
        leader = _wait(self._leader) if blocking else _reap(self._leader)
        if leader is None:
            return None
        assert self._reports is not None
        words = b"".join([self._reported, *_drain(self._reports)]).split()
        os.close(self._reports)
        return int(words[-1]) if words else leader

    def _type(self, data: bytes, master: int, raw: _RawMode) -> None:
        """Pass keystrokes to the program's terminal — except Ctrl-Z, which that terminal
        cannot do itself: the program leads a session of its own there, and the kernel does
        not stop such a process group with SIGTSTP. So we stop the program (SIGSTOP) and our
        own job, as Ctrl-Z does without expbook, and the shell gets the terminal back; on
        ``fg`` or ``bg`` both go on."""
        import termios

        suspend = None
        try:
            attrs = termios.tcgetattr(master)  # the program's terminal, as it has set it
            if attrs[3] & termios.ISIG and attrs[6][termios.VSUSP] not in (b"\0", 0):
                suspend = attrs[6][termios.VSUSP]
        except (termios.error, OSError):
            pass
        while suspend is not None and (at := data.find(suspend)) >= 0:
            _write_all(master, data[:at])
            data = data[at + 1 :]
            try:
                os.killpg(self.pid, signal.SIGSTOP)
            except ProcessLookupError:
                break
            raw.leave()
            os.killpg(os.getpgrp(), signal.SIGTSTP)  # returns once continued
            try:  # noqa: SIM105 - contextlib costs start-up time
                os.killpg(self.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if data:
            _write_all(master, data)

    def _pass(self, kind: bytes, data: bytes, target: int | None) -> bool:
        """Pass ``data`` on and spool it; False once ``target`` can take no more."""
        passed = target is not None
        if passed:
            try:
                _write_all(target, data)
            except OSError:  # our reader went away (| head), or the terminal hung up
                passed = False
                if kind == b"o":
                    self._stdout = None
                else:
                    self._stderr = None
        if self._out is not None:
            now = time.time()
            buffer = self._buffer
            buffer += FRAME.pack(kind, len(data), now)
            buffer += data
            if now - self._flushed_at >= _SPOOL_FLUSH_SECONDS or len(buffer) >= _SPOOL_BUFFER:
                self._flush_spool(now)
        return passed

    def _flush_spool(self, now: float = 0.0) -> None:
        """Append the buffered frames to the spool (every 50 ms: a program that flushes every
        line would otherwise cost a write per line; the recorder sees output at most 50 ms
        late). A write that fails (a full disk, a file system gone read-only) is cut back to
        the frames before it, and the spool takes nothing more: the program goes on, and one
        line says what is not recorded."""
        self._flushed_at = now or time.time()
        if self._out is None or not self._buffer:
            return
        buffer, self._buffer = self._buffer, bytearray()
        try:
            _write_all(self._out, buffer)
        except OSError as exc:
            self._spool_failed(exc)
            return
        self._spooled += len(buffer)

    def _spool_failed(self, error: OSError) -> None:
        assert self._out is not None and self.spool is not None
        try:  # noqa: SIM105 - shortening a file works on a full disk
            os.ftruncate(self._out, self._spooled)
        except OSError:
            pass
        os.close(self._out)
        self._out = None
        self._spool_error = error.strerror or str(error)
        _say(
            f"warning: the program's output from here on is not recorded: cannot write "
            f"{self.spool.output}: {self._spool_error}; the program goes on"
        )

    def _close_spool(self) -> None:
        if self._out is not None:
            self._flush_spool()
        if self._out is not None:
            os.close(self._out)
            self._out = None

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
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # ignored by whoever started us (nohup): so it stays
            if signum == signal.SIGINT and not group:
                # The program shares our terminal's foreground group: Ctrl-C reaches it directly.
                signal.signal(signum, lambda s, f: setattr(self, "forwarded", s))
            else:
                signal.signal(signum, forward)

    def _finish(self, status: int) -> int:
        ended = time.time()
        code, killed_by = _decode(status)
        if self.spool is not None:
            report = {
                "exit_code": code,
                "signal": _signal_name(killed_by),
                "forwarded": _signal_name(self.forwarded),
                "ended_at": ended,
                "spooled": self._spooled,
                "spool_error": self._spool_error,
            }
            try:
                self.spool.write_exit(report)
            except OSError as exc:
                _say(
                    f"warning: how the program ended could not be recorded "
                    f"({exc.strerror or exc}): the run will read as crashed; its output is "
                    f"kept in {self.spool.path}"
                )
            else:
                if not self.options.get("no_wait"):
                    self._await_recorder()
        if killed_by is not None and killed_by in _DIE_BY:
            signal.signal(killed_by, signal.SIG_DFL)
            os.kill(os.getpid(), killed_by)  # end as the program ended
        if self._leave is not None:  # Ctrl-C while waiting: end as Ctrl-C ends a command
            signal.signal(self._leave, signal.SIG_DFL)
            os.kill(os.getpid(), self._leave)
        return 128 + killed_by if killed_by is not None else code

    def _await_recorder(self) -> None:
        """Return once the store has the whole run (the recorder's ``done``), and print the
        summary line; so a script can read the run on its next line. A recorder that was
        killed is replaced; one that failed is reported in one line, with where the output is
        kept. After 2 s one line says what is being waited for (not with --json or --quiet);
        Ctrl-C (or SIGTERM, SIGHUP)
        leaves the rest to the recorder, in the background."""
        spool = self.spool
        assert spool is not None
        for signum in _FORWARDED:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, lambda s, f: setattr(self, "_leave", s))
        started = time.monotonic()
        said = False
        while True:
            done = spool.done()
            if done is not None:
                self.result = done
                self._print_result(done)
                spool.remove()
                return
            failed = spool.failed()
            if failed is not None:
                _warn_failure(spool, failed["error"])
                return
            if not self.recorder or _reap(self.recorder) is not None:
                self.recorder = 0
                if spool.done() is not None or spool.failed() is not None:
                    continue  # it finished just now
                if not self._start_recorder():
                    _warn_failure(spool, "its recorder was killed, and so was each one after it")
                    return
            if self._leave is not None:
                _say(
                    f"left the rest of run {self._run_name()} to its recorder in the background "
                    f"(pid {self.recorder}): `expbook show {self._run_name()}` once it is done"
                )
                return
            if not said and time.monotonic() - started > _WAIT_SAY_SECONDS:
                said = True
                if not (self.options.get("json") or self.options.get("quiet")):
                    _say(self._waiting_for())  # (--json: stderr is the one JSON object)
            time.sleep(0.01)

    def _run_name(self) -> str:
        ready = self.spool.ready() if self.spool is not None else None
        return str(ready["number"]) if ready else self.run_id[:8]

    def _waiting_for(self) -> str:
        assert self.spool is not None
        if self.spool.ready() is None:
            return (
                f"waiting for the store to take run {self.run_id[:8]} (Ctrl-C leaves it to "
                "the recorder, in the background)"
            )
        left = max(0, self._spooled - self.spool.progress())
        return (
            f"storing the last {size_text(left)} of output of run #{self._run_name()}… "
            "(Ctrl-C leaves it to the recorder, in the background)"
        )

    def _print_result(self, done: dict[str, Any]) -> None:
        if self.options.get("json"):
            import json

            _write_line(json.dumps({k: v for k, v in done.items() if k != "summary"}))
        elif not self.options.get("quiet"):
            _say(done["summary"])


def _lead_session(argv: list[str], env: dict[str, str], terminal: int, report: int) -> None:
    """In the forked child, leader of the pseudo-terminal's session: start the program in a
    process group of its own in the terminal's foreground, as a shell does, report its pid and
    then its wait status through ``report``, and take the terminal back before exiting. The
    program is then not the session leader, so processes it leaves running (``cmd &``) keep
    running after it exits, as they do in a terminal without expbook: only a session leader's
    end hangs the terminal up for its foreground group."""
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # foreground changes from the background
    program = os.fork()
    if program == 0:
        try:
            os.setpgid(0, 0)
            os.tcsetpgrp(terminal, os.getpgrp())
            for signum in (*_RESET_FOR_PROGRAM, signal.SIGTTOU):  # others as inherited (nohup)
                signal.signal(signum, signal.SIG_DFL)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    try:  # noqa: SIM105 - also done by the child: whichever comes first
        os.setpgid(program, program)
    except OSError:
        pass
    try:  # noqa: SIM105
        os.tcsetpgrp(terminal, program)
    except OSError:
        pass
    os.write(report, f"{program}\n".encode())
    status = os.waitpid(program, 0)[1]
    os.write(report, f"{status}\n".encode())
    try:  # noqa: SIM105
        os.tcsetpgrp(terminal, os.getpgrp())
    except OSError:
        pass
    os._exit(0)


def _read_program_pid(reports: int) -> tuple[int, bytes]:
    """The pid the session leader reports first (0 if it died before), and what followed."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(reports, 64)
        if not chunk:
            return 0, b""
        data += chunk
    pid, _, rest = data.partition(b"\n")
    return int(pid), rest


class _RawMode:
    """Our terminal in raw mode while we are its foreground job, so that every keystroke
    (Ctrl-C, Ctrl-Z included) goes to the program's own terminal; restored when we stop,
    end, or are continued in the background."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None

    @property
    def active(self) -> bool:
        return self.saved is not None

    def enter(self) -> bool:
        import termios
        import tty

        if self.saved is None and _in_foreground(self.fd):
            try:
                self.saved = termios.tcgetattr(self.fd)
                tty.setraw(self.fd)
            except (termios.error, OSError):
                self.saved = None
        return self.saved is not None

    def leave(self) -> None:
        import termios

        if self.saved is not None:
            try:  # noqa: SIM105 - the terminal may be gone (a hang-up)
                termios.tcsetattr(self.fd, termios.TCSAFLUSH, self.saved)
            except (termios.error, OSError):
                pass
            self.saved = None


def _fd(stream: object) -> int | None:
    """The file descriptor of a standard stream, or None if it is closed."""
    try:
        return stream.fileno() if stream is not None else None  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        return None


def _isatty(stream: object) -> bool:
    fd = _fd(stream)
    return fd is not None and os.isatty(fd)


def _in_foreground(fd: int) -> bool:
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def _same_terminal(a: int, b: int | None) -> bool:
    if b is None or not os.isatty(a):
        return False
    try:
        return os.ttyname(a) == os.ttyname(b)
    except OSError:
        return False


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
        if exc.errno == errno.EIO:  # a pseudo-terminal whose program has gone
            return b""
        raise


def _drain(fd: int) -> list[bytes]:
    """What can still be read from ``fd`` without waiting."""
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            data = os.read(fd, _READ)
        except (BlockingIOError, OSError):
            return chunks
        if not data:
            return chunks
        chunks.append(data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _wait(pid: int) -> int:
    return os.waitpid(pid, 0)[1]


def _reap(pid: int) -> int | None:
    """The process's wait status if it has ended, else None (without blocking)."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return 0
    return status if reaped == pid else None


def _decode(status: int) -> tuple[int | None, int | None]:
    """(exit code, signal that killed it) from a wait status; one of them is None."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status), None


def _resolve_program(program: str, env: dict[str, str]) -> tuple[str, str | None, bool]:
    """(path, problem or None, run it with /bin/sh): a shell runs an executable file that is
    neither a binary nor a ``#!`` script with ``/bin/sh``, and so do we."""
    if os.sep in program:
        candidates = [program]
    else:
        path = env.get("PATH") or os.environ.get("PATH", os.defpath)
        directories = path.split(os.pathsep)
        candidates = [os.path.join(directory or ".", program) for directory in directories]
    found = [c for c in candidates if os.path.isfile(c)]
    if not found:
        return program, "command not found", False
    executable = next((c for c in found if os.access(c, os.X_OK)), None)
    if executable is None:
        return program, "permission denied", False
    try:
        with open(executable, "rb") as handle:
            magic = handle.read(4)
    except OSError:
        magic = b"\x7fELF"
    return executable, None, not (magic.startswith(b"#!") or magic == b"\x7fELF")


def _warn_failure(spool: Spool, reason: str) -> None:
    _say(
        f"warning: run {spool.run_id[:8]} is not fully recorded: {reason}; its output is kept "
        f"in {spool.path}, and `expbook recover` stores it once the store can take it"
    )
    spool.failure_reported()


def _report_orphans(url: str) -> None:
    """One line when earlier runs on this store wait to be recovered (see
    ``expbook.runner.recover``: reported here, recovered when asked)."""
    line = orphans_line(spool_roots(url), url)
    if line:
        _say(line)


def _signal_name(signum: int | None) -> str | None:
    if signum is None:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _window_size(fd: int | None) -> bytes | None:
    if fd is None:
        return None
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


def _say(message: str) -> None:
    try:  # noqa: SIM105
        sys.stderr.write(f"expbook: {message}\n")
    except (OSError, ValueError, AttributeError):
        pass


def _write_line(message: str) -> None:
    try:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _error(message: str) -> None:
    try:  # noqa: SIM105
        sys.stderr.write(f"error: {message}\n")
    except (OSError, ValueError, AttributeError):
        pass
