"""The recorder: the process that turns an ``expbook run`` into a run in the store.

Started by the launcher with the run's spool directory (see ``expbook.runner.spool``), in a
session of its own. It forks in two at once: a reading half (``expbook.runner.follow``) follows
the output the launcher appends, collapses carriage-return redraws into lines
(``LineAssembler``) and feeds them to the output parsers, while this storing half

1. creates the run (or finds it, if the program attached first) with the params read from the
   command line and its config files, and captures git/host/packages;
2. stores what the reading half sends: the output (compressed), points as series, summaries
   as summary values (once the program logs through the Python API itself, the reading half
   drops parsed points, to avoid counting them twice);
3. when the launcher has reported the exit status and all output is stored, finishes the run:
   ``finished`` (exit 0), ``failed`` (with the exit code and the last lines of output), or
   ``interrupted`` (a signal).

The two halves use a CPU each, and the reading starts before the database code is even
imported (a quarter to half a second), so the recorder catches up with a fast-printing program
sooner. If the launcher disappears without reporting (``kill -9``), the recorder stops without
an ending, and the run reads as crashed once its heartbeat is stale.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import time
import warnings
from array import array
from typing import IO, TYPE_CHECKING, Any

from expbook.errors import ExpbookError
from expbook.runner.follow import Follower, alive, read_message
from expbook.runner.parsers import OutputParser, UserPattern
from expbook.runner.spool import read_json, write_json
from expbook.runner.text import strip_ansi

if TYPE_CHECKING:  # the storing half imports these after the fork (SQLAlchemy: 0.25 s)
    from expbook.tracking import Run

OUTPUT_QUEUED_BYTES = 8 << 20
"""Output handed to the writer but not yet stored, beyond which the recorder waits for it (and
the reading half, its outbox full, waits too): the program is never slowed (the launcher does
not wait for the recorder), and the recorder's memory stays bounded however much is printed."""
_INTERRUPTING = frozenset({"SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGKILL", "SIGPIPE"})
"""Signals that stop a program from outside (status interrupted; SIGPIPE is ``| head`` having
read enough); others — SIGSEGV, SIGABRT,
SIGBUS... — mean it crashed (status failed, with the last lines of its output)."""
RECORDER_NICENESS = 10
READER_NICENESS = 5
"""Added for the reading half: while the storing half starts (its imports and the run's
creation are on the way to the end), it comes first; later it mostly waits for the reader."""


class Recorder:
    """Records one run from its spool directory."""

    def __init__(self, spool: str) -> None:
        self.spool = spool
        meta = read_json(os.path.join(spool, "meta.json"))
        if meta is None:
            raise ExpbookError(f"no meta.json in {spool}")
        self.meta: dict[str, Any] = meta
        self.options: dict[str, Any] = meta.get("options", {})
        self.warnings: list[str] = []
        self.settings: Any = None
        self.reader: int | None = None  # the reading half's pid
        self.queued_bytes = 0
        self.tail: list[str] = []  # the last lines of output
        self.counts = (0, 0, 0, 0)  # lines, points, summary values, keys
        self.attached_at: float | None = None  # when the program attached through the API

    # --- life cycle -----------------------------------------------------------------------------

    def record(self) -> None:
        messages = self._fork(self._prepare())
        try:
            run = self._start()
            write_json(os.path.join(self.spool, "ready"), {"number": run.number})
            gc.freeze()  # the database code's objects: later collections need not visit them
            ended = self._store(run, messages)
        finally:
            self._stop_reader()
        if ended is None:  # the launcher vanished without an exit status
            run._abandon()
            self._clean_up()
            return
        status, error, code = self._outcome(run, ended)
        run.finish(status, error=error, exit_code=code, ended_at=ended["ended_at"])
        summary = self._summary(run, status, ended)
        write_json(os.path.join(self.spool, "done"), {"number": run.number, "summary": summary})
        self._clean_up()

    def fail(self, error: BaseException) -> None:
        """Tell the launcher (now or at the next ``expbook run``) that nothing was recorded."""
        write_json(os.path.join(self.spool, "failed.json"), {"error": _one_line(error)})

    def _prepare(self) -> OutputParser:
        """Read ``expbook.toml`` (a broken one is a warning); the parser with its patterns."""
        from expbook.runner.settings import find_settings_file, load_settings

        try:
            self.settings = load_settings(find_settings_file(self.meta["cwd"]))
        except ExpbookError as exc:
            self.warnings.append(str(exc))
            self.settings = load_settings(None)
        return self._parser(self.settings.patterns, self.settings.ignore_metrics)

    def _fork(self, parser: OutputParser) -> IO[bytes]:
        """Start the reading half; return the pipe its messages come through."""
        read, write = os.pipe()
        with contextlib.suppress(ImportError, AttributeError, OSError):
            import fcntl

            fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, 1 << 20)  # Linux; above the limit: EPERM
        pid = os.fork()
        if pid == 0:
            os.close(read)
            with contextlib.suppress(OSError):
                os.nice(READER_NICENESS)
            _follow_and_exit(self.spool, parser, self.meta.get("launcher_pid"), write)
        os.close(write)
        self.reader = pid
        return os.fdopen(read, "rb", buffering=1 << 20)

    def _stop_reader(self) -> None:
        """End the reading half, if this half failed before it ended."""
        if self.reader is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.reader, signal.SIGTERM)
            self._reap_reader()

    def _reap_reader(self) -> int:
        """Wait for the reading half to exit; its exit code (-N: killed by signal N)."""
        assert self.reader is not None
        _, status = os.waitpid(self.reader, 0)
        self.reader = None
        return os.waitstatus_to_exitcode(status)

    def _start(self) -> Run:
        from expbook.runner.argv import command_name
        from expbook.store.base import RunSpec, WriteBatch
        from expbook.tracking import Tracker

        cwd = self.meta["cwd"]
        command = self.meta["command"]
        settings = self.settings
        # Recorded as typed, ``NAME=value`` prefixes included, so that it can be run again.
        typed = [*(f"{k}={v}" for k, v in self.meta.get("env", {}).items()), *command]
        tracker = Tracker(self.meta["store"])
        store = tracker.store()
        parent = self._parent(store)
        spec = RunSpec(
            id=self.meta["run_id"],
            name=self.options.get("name") or command_name(command),
            experiment=self.options.get("experiment"),
            parent=parent,
            kind=self.options.get("kind") or "train",
            params=self._params(command, settings, cwd),
            tags=list(self.options.get("tags", [])),
            command=typed,
            cwd=cwd,
            pid=self.meta.get("launcher_pid"),
            hostname=self.meta.get("hostname"),
            started_at=self.meta["started_at"],
        )
        run = tracker.begin(
            spec,
            capture=not self.options.get("no_capture"),
            packages=_runs_this_python(command),
        )
        # The program may have created the run first (it attached): make sure ours is there.
        update = {
            "command": typed, "cwd": cwd, "pid": spec.pid, "hostname": spec.hostname,
            **{k: v for k in ("name", "experiment", "kind") if (v := self.options.get(k))},
        }  # fmt: skip
        if parent:
            update["parent"] = parent
        run._submit(WriteBatch(params=dict(spec.params), tags_add=set(spec.tags), update=update))
        if self.options.get("note"):
            run.note(self.options["note"])
        for warning in self.warnings:
            run.note(f"expbook: {warning}")
        return run

    def _params(self, command: list[str], settings: Any, cwd: str) -> dict[str, Any]:
        """Params from the command line and its config files (a config file that cannot be
        read is a warning on the run), and ``env.NAME`` for ``NAME=value`` prefixes."""
        from expbook.runner.argv import command_params

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            params = command_params(command, settings, cwd=cwd)
        self.warnings += [str(w.message) for w in caught]
        params.update({f"env.{name}": value for name, value in self.meta.get("env", {}).items()})
        return params

    def _parser(
        self, patterns: tuple[dict[str, str], ...], ignore: tuple[str, ...]
    ) -> OutputParser:
        try:
            return OutputParser([UserPattern(**pattern) for pattern in patterns], ignore=ignore)
        except (ValueError, TypeError) as exc:
            self.warnings.append(f"expbook.toml: {exc}; user patterns ignored")
            return OutputParser(ignore=ignore)

    def _parent(self, store: Any) -> str | None:
        reference = self.options.get("parent")
        if not reference:
            return None
        try:
            return store.resolve_run(reference)
        except ExpbookError as exc:
            self.warnings.append(f"--parent {reference}: {exc}")
            return None

    # --- storing what the reading half sends ----------------------------------------------------

    def _store(self, run: Run, messages: IO[bytes]) -> dict[str, Any] | None:
        """Store the batches the reading half sends until its end; return the exit report
        (None if the launcher died without one)."""
        while True:
            message = read_message(messages)
            if message is None:
                raise ExpbookError(f"the recorder's reading half stopped ({self._reader_end()})")
            if message[0] == "end":
                _, ended, *self.counts, self.tail, self.attached_at = message
                self._reap_reader()
                return ended
            self._batch(run, message)

    def _batch(self, run: Run, message: tuple[Any, ...]) -> None:
        """Hand one batch — output, points, summary values — to the run's writer."""
        from expbook.store.base import OutputText, SummaryValue, WriteBatch
        from expbook.store.chunks import Points

        _, output, series, values, warnings = message
        self.warnings += warnings
        batch = WriteBatch(
            points={key: Points(*_columns(columns)) for key, *columns in series},
            summary={key: SummaryValue(*fields) for key, *fields in values},
            output=[OutputText(*text) for text in output],
        )
        run._submit(batch)
        self.queued_bytes += sum(len(text[2]) for text in output)
        if self.queued_bytes >= OUTPUT_QUEUED_BYTES:
            run.flush()
            self.queued_bytes = 0
        else:
            run.flush(timeout=0)  # write now, while the reader works on: not all at the end

    def _reader_end(self) -> str:
        code = self._reap_reader()
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}; see recorder.log in the spool"

    # --- the end --------------------------------------------------------------------------------

    def _outcome(self, run: Run, ended: dict[str, Any]) -> tuple[str, str | None, int | None]:
        code, killed_by = ended.get("exit_code"), ended.get("signal")
        forwarded = ended.get("forwarded")
        if killed_by in _INTERRUPTING or (killed_by and forwarded):
            return "interrupted", f"killed by {killed_by}", code
        if forwarded and not killed_by:
            return "interrupted", f"received {forwarded}", code
        if code == 0:
            return "finished", None, 0
        error = f"killed by {killed_by}" if killed_by else f"exit code {code}"
        tail = [plain for line in self.tail if (plain := strip_ansi(line)).strip()]
        if tail:
            error += "; last lines of output:\n" + "\n".join(tail)
        if run.store.run(run.id).error:  # the program's own traceback (it attached) says more
            error = None
        return "failed", error, code

    def _summary(self, run: Run, status: str, ended: dict[str, Any]) -> str:
        seconds = ended["ended_at"] - self.meta["started_at"]
        if self.attached_at is not None:
            parsed = "metrics logged by the program"
        else:
            _, points, values, keys = self.counts
            parsed = f"{points} points and {values} values of {keys} keys"
        text = (
            f"run #{run.number} {status} after {seconds:.1f}s: {self.counts[0]} lines of output, "
            f"{parsed}; expbook show {run.number}"
        )
        if self.warnings:
            text += f" (warning: {self.warnings[0]})"
        return text

    def _clean_up(self) -> None:
        """Remove the spool once everything is stored and the launcher has read ``done`` and
        exited (it waits at most 5 s for it)."""
        deadline = time.monotonic() + 10
        while alive(self.meta.get("launcher_pid")) and time.monotonic() < deadline:
            time.sleep(0.01)
        import shutil

        shutil.rmtree(self.spool, ignore_errors=True)


def _follow_and_exit(spool: str, parser: OutputParser, launcher: int | None, out: int) -> None:
    """The reading half's life, in the forked child: follow, send, exit (without the parent's
    exit hooks and buffers)."""
    code = 0
    try:
        Follower(spool, parser, launcher, out).run()
    except BrokenPipeError:
        code = 1  # the storing half has gone: it reports why
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stderr.flush()
        os._exit(code)


def _columns(columns: list[bytes]) -> list[array]:
    """A key's points as the reading half sent them: steps, values, times, epochs."""
    made = []
    for typecode, data in zip("qddd", columns, strict=True):
        column = array(typecode)
        column.frombytes(data)
        made.append(column)
    return made


def _runs_this_python(command: list[str]) -> bool:
    """Whether the program is this Python, so that its installed packages are ours."""
    import shutil

    found = shutil.which(command[0]) if command else None
    return found is not None and os.path.realpath(found) == os.path.realpath(sys.executable)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m expbook.runner.recorder SPOOL_DIRECTORY", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(RECORDER_NICENESS)  # the program comes first when the CPUs are busy
    recorder = Recorder(argv[0])
    try:
        recorder.record()
    except BaseException as exc:
        recorder.fail(exc)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
