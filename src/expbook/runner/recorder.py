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

Every batch stores how far into the spooled output it reaches (``recorded_offset``) in the same
transaction, so a recorder started on a spool that another one had begun (that one was killed;
``expbook recover``) stores exactly what is missing. The spool is removed only once the run read
back from the store has all of the output and its final status. A failure of the recording
itself (a store that cannot be written, a bug) is never the program's: the run keeps it as its
``recording_error``, the status is left for a later recorder to set, and the spool stays.
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

from expbook.errors import ExpbookError, StoreUnavailableError
from expbook.model import RunRecord, RunStatus
from expbook.runner.follow import Follower
from expbook.runner.messages import SUMMARY_FIELDS, Batch, End, read_message
from expbook.runner.parsers import OutputParser, UserPattern
from expbook.runner.spool import Spool, alive, size_text
from expbook.runner.text import strip_ansi
from expbook.store.base import WriteBatch

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
    """Records one run from its spool.

    Args:
        spool: The run's spool.
        lock: The spool's lock, already held (passed by the launcher or ``expbook recover``).
    """

    def __init__(self, spool: Spool, lock: int | None = None) -> None:
        self.spool = spool
        self.lock = lock
        meta = spool.meta()
        if meta is None:
            raise ExpbookError(f"no meta.json in {spool.path}")
        self.meta: dict[str, Any] = meta
        self.options: dict[str, Any] = meta.get("options", {})
        self.launcher_pid: int | None = meta.get("launcher_pid")  # None: known to be gone
        self.awaited = False  # ``expbook recover`` reads ``done`` and removes the spool
        self.warnings: list[str] = []
        self.journaled = False  # kept in a remote store's journal: the server was down
        self.settings: Any = None
        self.reader: int | None = None  # the reading half's pid
        self.queued_bytes = 0
        self.run: Run | None = None
        self.stored = 0  # bytes of output the store had when this recorder started
        self.stored_autolog: dict[str, int] = {}  # likewise, of each autolog records file
        self.errors: list[str] = []  # recording errors, kept on the run

    # --- life cycle -----------------------------------------------------------------------------

    def record(self) -> None:
        """Record the spool, resuming after what the store has if a recorder worked on it
        before (it was killed, or the store failed): nothing is stored twice."""
        parser = self._prepare()
        if self.spool.ready() is not None:  # resuming: what does the store have?
            run = self._start(resume=True)
            messages = self._fork(parser, skip=self.stored, autolog=self.stored_autolog)
        else:  # the usual case: read from the first moment, while the database code loads
            messages = self._fork(parser, skip=0, autolog={})
            run = self._start(resume=False)
        self.spool.mark_ready(run.number)
        collector = _collector(self.options, self.meta["cwd"], run)
        gc.freeze()  # the database code's objects: later collections need not visit them
        try:
            end = self._store(run, messages)
        finally:
            self._stop_reader()
            if collector is not None:
                collector.stop()
        if end.exit is None:  # the launcher vanished before the program ended
            self._submit_errors(run, end.offset)
            run.abandon()
            self._check_stored(run, end, terminal=False)
            self._clean_up()
            return
        if collector is not None:  # --artifacts: what the program left
            self._note_warnings(run, collector.finish())
        status, error, code = self._outcome(run, end)
        self._submit_errors(run, end.offset, end.exit)
        run.finish(status, error=error, exit_code=code, ended_at=end.exit["ended_at"])
        self._check_stored(run, end, terminal=True)
        self.spool.mark_done(self._result(run, status, end))
        self._clean_up()

    def stop(self) -> None:
        """Killed (in part): store what is queued and stop, as if this recorder had been killed
        whole: the launcher starts another, which resumes after what the store has."""
        if self.run is not None and self.run.status is RunStatus.RUNNING:
            with contextlib.suppress(Exception):
                self.run.abandon(timeout=10)

    def fail(self, error: BaseException) -> None:
        """Expbook's own failure, never the program's: keep what can be kept on the run as a
        recording error (the status stays for a later recorder to set), and tell the launcher
        (now, or the next ``expbook run``) in the spool, which keeps the output."""
        reason = _one_line(error)
        run = self.run
        if run is not None and run.status is RunStatus.RUNNING:
            with contextlib.suppress(Exception):
                run.submit(WriteBatch(update={"recording_error": f"recording failed: {reason}"}))
            with contextlib.suppress(Exception):
                run.abandon(timeout=10)
        self.spool.mark_failed(reason)

    def _prepare(self) -> OutputParser:
        """Read ``expbook.toml`` (a broken one is a warning); the parser with its patterns."""
        from expbook.runner.settings import find_settings_file, load_settings

        try:
            self.settings = load_settings(find_settings_file(self.meta["cwd"]))
        except ExpbookError as exc:
            self.warnings.append(str(exc))
            self.settings = load_settings(None)
        return self._parser(self.settings.patterns, self.settings.ignore_metrics)

    def _fork(self, parser: OutputParser, *, skip: int, autolog: dict[str, int]) -> IO[bytes]:
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
            _follow_and_exit(self.spool, parser, self.launcher_pid, write, skip, autolog)
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

    def _start(self, *, resume: bool) -> Run:
        """Create the run (or find it: the program may have attached first, or a recorder
        before this one created it) with its params and context."""
        from expbook.runner.argv import command_name
        from expbook.store.base import RunSpec
        from expbook.tracking import Tracker

        cwd = self.meta["cwd"]
        command = self.meta["command"]
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
            params=self._params(command, self.settings, cwd),
            tags=list(self.options.get("tags", [])),
            command=typed,
            cwd=cwd,
            pid=self.meta.get("launcher_pid"),
            hostname=self.meta.get("hostname"),
            started_at=self.meta["started_at"],
        )
        started = None
        if resume:
            with contextlib.suppress(ExpbookError):
                record = store.run(spec.id)
                started = record.recorded_offset
                self.stored_autolog = dict(record.recorded_autolog)
        capture = not self.options.get("no_capture") and started is None
        run = tracker.begin(spec, capture=capture, packages=_runs_this_python(command))
        self.run = run
        self._sample_system(run)
        if started is None:  # a recorder before this one may have been killed mid-way
            with contextlib.suppress(ExpbookError):
                started = store.run(spec.id).recorded_offset
        self.stored = started or 0
        # The program may have created the run first (it attached): make sure ours is there.
        update = {
            "command": typed, "cwd": cwd, "pid": spec.pid, "hostname": spec.hostname,
            "recorded_offset": self.stored,
            **{k: v for k in ("name", "experiment", "kind") if (v := self.options.get(k))},
        }  # fmt: skip
        if parent:
            update["parent"] = parent
        batch = WriteBatch(params=dict(spec.params), tags_add=set(spec.tags), update=update)
        if started is None:  # notes once, however often the recording is resumed
            notes = [self.options["note"]] if self.options.get("note") else []
            notes += [f"expbook: {warning}" for warning in self.warnings]
            batch.notes.extend((time.time(), note) for note in notes)
        run.submit(batch)
        return run

    def _sample_system(self, run: Run) -> None:
        """System metrics of the program's processes: the launcher's descendants but this
        recorder (and its reading half), while the launcher lives (docs/system.md)."""
        from expbook.system.readings import ProcessTree
        from expbook.system.sampler import system_settings

        given = self.options.get("system_interval")
        off = False if self.options.get("no_system_metrics") else None
        try:
            interval = system_settings(off, float(given) if given is not None else None)
        except (ExpbookError, ValueError) as exc:
            self.warnings.append(f"system metrics: {exc}")
            return
        if interval is not None and self.launcher_pid is not None and alive(self.launcher_pid):
            tree = ProcessTree(self.launcher_pid, include_root=False, exclude=os.getpid())
            run.sample_system(interval, tree=tree)

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

    def _store(self, run: Run, messages: IO[bytes]) -> End:
        """Store the batches the reading half sends until its end; return the end."""
        while True:
            message = read_message(messages)
            if message is None:
                reason = self._reader_end()
                if reason.startswith("killed"):
                    raise ReaderKilled(f"the recorder's reading half was {reason}")
                raise ExpbookError(f"the recorder's reading half stopped ({reason})")
            if isinstance(message, End):
                self._reap_reader()
                return message
            self._batch(run, message)

    def _batch(self, run: Run, message: Batch) -> None:
        """Hand one batch — output, points, summary values, and how far into the output it
        reaches — to the run's writer, which stores it in one transaction."""
        from expbook.store.base import OutputText, SummaryValue
        from expbook.store.chunks import Points

        self.warnings += message.warnings
        self.errors += message.errors
        update: dict[str, Any] = {"recorded_offset": message.offset}
        if message.autolog:
            update["recorded_autolog"] = message.autolog
        if self.errors:
            update["recording_error"] = "; ".join(self.errors)
        batch = WriteBatch(
            params=message.params,
            points={key: Points(*_columns(columns)) for key, *columns in message.series},
            summary={
                key: SummaryValue(**dict(zip(SUMMARY_FIELDS, fields, strict=True)))
                for key, *fields in message.values
            },
            output=[OutputText(*text) for text in message.output],
            update=update,
        )
        run.submit(batch)
        self.queued_bytes += sum(len(text[2]) for text in message.output)
        if self.queued_bytes >= OUTPUT_QUEUED_BYTES:
            run.flush()
            self.queued_bytes = 0
            self.spool.write_progress(message.offset)
        else:
            run.flush(timeout=0)  # write now, while the reader works on: not all at the end

    def _reader_end(self) -> str:
        code = self._reap_reader()
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit status {code}; see recorder.log in the spool"

    # --- the end --------------------------------------------------------------------------------

    def _outcome(self, run: Run, end: End) -> tuple[str, str | None, int | None]:
        """The program's status, from the launcher's exit report; never expbook's."""
        ended = end.exit or {}
        code, killed_by = ended.get("exit_code"), ended.get("signal")
        forwarded = ended.get("forwarded")
        if killed_by in _INTERRUPTING or (killed_by and forwarded):
            return "interrupted", f"killed by {killed_by}", code
        if forwarded and not killed_by:
            return "interrupted", f"received {forwarded}", code
        if code == 0:
            return "finished", None, 0
        error = f"killed by {killed_by}" if killed_by else f"exit code {code}"
        tail = [plain for line in end.tail if (plain := strip_ansi(line)).strip()]
        if tail:
            error += "; last lines of output:\n" + "\n".join(tail)
        stored = self._stored(run)
        if stored is not None and stored.error:
            error = None  # the program's own traceback (it attached) says more
        return "failed", error, code

    def _stored(self, run: Run) -> RunRecord | None:
        """The run as the store has it; None when a server's store cannot be reached now, and
        the run's writes are kept in its journal (``expbook.remote``): durable, not yet sent."""
        try:
            return run.store.run(run.id)
        except StoreUnavailableError:
            if getattr(run.store, "journal", None) is None:
                raise
            self.journaled = True
            return None

    def _note_warnings(self, run: Run, found: list[str]) -> None:
        self.warnings += found
        if found:
            run.submit(WriteBatch(notes=[(time.time(), f"expbook: {w}") for w in found]))

    def _submit_errors(self, run: Run, offset: int, ended: dict[str, Any] | None = None) -> None:
        """The end of the recording: how far it got, and what went wrong with the recording
        itself (output the launcher could not spool; a parser that broke)."""
        if ended and ended.get("spool_error"):
            self.errors.append(
                f"output after the first {size_text(ended.get('spooled', 0))} was not recorded: "
                f"{ended['spool_error']}"
            )
        update: dict[str, Any] = {"recorded_offset": offset}
        if self.errors:
            update["recording_error"] = "; ".join(self.errors)
        run.submit(WriteBatch(update=update))

    def _check_stored(self, run: Run, end: End, *, terminal: bool) -> None:
        """Read the run back: the spool goes only once the store has all of it.

        Raises:
            ExpbookError: the store lacks something (its writer gave up on it).
        """
        record = self._stored(run)
        if record is None:  # flushed into the journal of a server that cannot be reached
            return
        if record.recorded_offset != end.offset:
            raise ExpbookError(
                f"the store has {size_text(record.recorded_offset or 0)} of the run's "
                f"{size_text(end.offset)} of output (it could not be written)"
            )
        if terminal and not record.status.is_terminal():
            raise ExpbookError("the store did not take the run's final status")

    def _result(self, run: Run, status: str, end: End) -> dict[str, Any]:
        """What the launcher prints: the summary line's facts, and the line itself."""
        assert end.exit is not None
        seconds = end.exit["ended_at"] - self.meta["started_at"]
        if end.attached_at is not None:
            parsed = "metrics logged by the program"
        else:
            points = end.points + end.autolog_points
            parsed = f"{points} points and {end.values} values of {end.keys} keys"
        if end.frameworks:
            parsed += f" (autolog: {', '.join(sorted(end.frameworks))})"
        text = (
            f"run #{run.number} {status} after {seconds:.1f}s: {end.lines} lines of output, "
            f"{parsed}; expbook show {run.number}"
        )
        if self.journaled or not run.number:  # not numbered yet: the server has not got it
            text = (
                f"run {run.id[:8]} {status} after {seconds:.1f}s: {end.lines} lines of output, "
                f"{parsed}; kept in the journal until {run.store.url} answers (expbook sync "
                f"sends it; then expbook show {run.id[:8]})"
            )
        problems = [*(f"recording error: {e}" for e in self.errors), *self.warnings]
        if problems:
            text += f" (warning: {problems[0]})"
        return {
            "run": run.number, "id": run.id, "status": status, "seconds": round(seconds, 3),
            "exit_code": end.exit.get("exit_code"), "signal": end.exit.get("signal"),
            "lines": end.lines, "points": end.points + end.autolog_points, "values": end.values,
            "keys": end.keys, "autolog": sorted(end.frameworks),
            "logged_by_program": end.attached_at is not None,
            "recording_error": "; ".join(self.errors) or None, "warnings": self.warnings,
            "store": self.meta["store"], "summary": text,
        }  # fmt: skip

    def _clean_up(self) -> None:
        """Remove the spool, now that the store has everything — unless the launcher is
        waiting for ``done`` (or ``expbook recover``): it removes the spool once it has read it."""
        if self.awaited or (self.meta.get("wait") and alive(self.launcher_pid)):
            return
        self.spool.remove()


def _collector(options: dict[str, Any], cwd: str, run: Run) -> Any:
    """``--artifacts``: a started collector, or None."""
    if not options.get("artifacts"):
        return None
    from expbook.runner.artifacts import start_collector

    return start_collector(options["artifacts"], cwd, run)


class ReaderKilled(ExpbookError):
    """The reading half was killed (the OOM killer picks the larger process)."""


def _follow_and_exit(
    spool: Spool,
    parser: OutputParser,
    launcher: int | None,
    out: int,
    skip: int,
    autolog: dict[str, int],
) -> None:
    """The reading half's life, in the forked child: follow, send, exit (without the parent's
    exit hooks and buffers)."""
    code = 0
    try:
        Follower(spool, parser, launcher, out, skip=skip, autolog=autolog).run()
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
    """``python -m expbook.runner.recorder SPOOL [LOCK_FD] [--launcher-gone]``: record the
    spool. The launcher (and ``expbook recover``) pass the spool's lock, held, as ``LOCK_FD``;
    without it the recorder takes the lock itself, and leaves a spool another process works on
    alone. ``--launcher-gone``: the spool is an orphan (its launcher's pid may be another
    process's by now)."""
    gone = "--launcher-gone" in argv
    argv = [arg for arg in argv if arg != "--launcher-gone"]
    if len(argv) not in (1, 2):
        print("usage: python -m expbook.runner.recorder SPOOL_DIRECTORY [LOCK_FD] "
              "[--launcher-gone]", file=sys.stderr)  # fmt: skip
        return 2
    with contextlib.suppress(OSError):
        os.nice(RECORDER_NICENESS)  # the program comes first when the CPUs are busy
    spool = Spool(argv[0])
    lock = int(argv[1]) if len(argv) == 2 else spool.lock()
    if lock is None:
        print(f"{spool.path} is being recorded by another process", file=sys.stderr)
        return 0
    with contextlib.suppress(OSError):
        os.unlink(spool.file("failed.json"))  # an earlier recorder's: this one tries again
    recorder = Recorder(spool, lock)
    if gone:  # started by ``expbook recover``, which waits for it
        recorder.launcher_pid = None
        recorder.awaited = True
    try:
        recorder.record()
    except ReaderKilled as exc:
        print(f"{exc}; stopping, for another recorder to resume", file=sys.stderr)
        recorder.stop()
        return 3
    except BaseException as exc:
        recorder.fail(exc)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
