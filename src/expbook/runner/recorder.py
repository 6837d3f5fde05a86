"""The recorder: the process that turns an ``expbook run`` into a run in the store.

Started by the launcher with the run's spool directory (see ``expbook.runner.spool``), in a
session of its own. It

1. creates the run (or finds it, if the program attached first) with the params read from the
   command line and its config files, and captures git/host/packages;
2. follows the output the launcher appends: collapses carriage-return redraws into lines
   (``LineAssembler``), stores the lines compressed, and feeds them to the output parsers —
   points become series, summaries summary values (once the program logs through the Python
   API itself, parsed points are dropped to avoid counting them twice);
3. when the launcher reports the exit status and all output is read, finishes the run:
   ``finished`` (exit 0), ``failed`` (with the exit code and the last lines of output), or
   ``interrupted`` (a signal).

If the launcher disappears without reporting (``kill -9``), the recorder stops without an
ending, and the run reads as crashed once its heartbeat is stale.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
import warnings
from collections import deque
from typing import Any

from expbook.errors import ExpbookError
from expbook.runner.parsers import OutputParser, Point, Summary, UserPattern
from expbook.runner.spool import FrameReader, read_json, write_json
from expbook.runner.text import LineAssembler, strip_ansi
from expbook.store.base import OutputText, RunSpec, SummaryValue, WriteBatch
from expbook.tracking import Run, Tracker

OUTPUT_FLUSH_SECONDS = 0.5
OUTPUT_FLUSH_BYTES = 1 << 20
OUTPUT_QUEUED_BYTES = 8 << 20
"""Output handed to the writer but not yet stored, beyond which the recorder waits for it:
the program is never slowed (the launcher does not wait for the recorder), and the recorder's
memory stays bounded however much is printed."""
TAIL_LINES = 30
_INTERRUPTING = frozenset({"SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGKILL", "SIGPIPE"})
"""Signals that stop a program from outside (status interrupted; SIGPIPE is ``| head`` having
read enough); others — SIGSEGV, SIGABRT,
SIGBUS... — mean it crashed (status failed, with the last lines of its output)."""
RECORDER_NICENESS = 10
IDLE_SLEEP = 0.05


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
        self.assemblers = {"stdout": LineAssembler(), "stderr": LineAssembler()}
        self.pending: list[tuple[str, list[str]]] = []  # (stream, lines), in printed order
        self.pending_bytes = 0
        self.queued_bytes = 0
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self.points = 0
        self.summaries = 0
        self.keys: set[str] = set()
        self.lines = 0
        self.attached_at: float | None = None  # when the program attached through the API

    # --- life cycle -----------------------------------------------------------------------------

    def record(self) -> None:
        run = self._start()
        write_json(os.path.join(self.spool, "ready"), {"number": run.number})
        ended = self._follow(run)
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

    def _start(self) -> Run:
        from expbook.runner.argv import command_name
        from expbook.runner.settings import find_settings_file, load_settings

        cwd = self.meta["cwd"]
        command = self.meta["command"]
        # Recorded as typed, ``NAME=value`` prefixes included, so that it can be run again.
        typed = [*(f"{k}={v}" for k, v in self.meta.get("env", {}).items()), *command]
        try:
            settings = load_settings(find_settings_file(cwd))
        except ExpbookError as exc:
            self.warnings.append(str(exc))
            settings = load_settings(None)
        self.parser = self._parser(settings.patterns)
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

    def _parser(self, patterns: tuple[dict[str, str], ...]) -> OutputParser:
        try:
            return OutputParser([UserPattern(**pattern) for pattern in patterns])
        except (ValueError, TypeError) as exc:
            self.warnings.append(f"expbook.toml: {exc}; user patterns ignored")
            return OutputParser()

    def _parent(self, store: Any) -> str | None:
        reference = self.options.get("parent")
        if not reference:
            return None
        try:
            return store.resolve_run(reference)
        except ExpbookError as exc:
            self.warnings.append(f"--parent {reference}: {exc}")
            return None

    # --- following the output -------------------------------------------------------------------

    def _follow(self, run: Run) -> dict[str, Any] | None:
        """Read output until the launcher reports the end and all of it is read; return the
        exit report (None if the launcher died without one)."""
        reader = FrameReader(os.path.join(self.spool, "output"))
        exit_path = os.path.join(self.spool, "exit.json")
        last_flush = time.monotonic()
        last_check = last_flush
        ended = None
        marker = os.path.join(self.spool, "attached")
        while True:
            frames = list(reader.read())
            got = bool(frames)
            if self.attached_at is None and got:
                # Once the program logs through the API, its points win over parsed ones: drop
                # points from output that arrived after it attached (the marker holds the time;
                # it is written before anything the program prints after attaching).
                attached = read_json(marker)
                self.attached_at = attached["at"] if attached else None
            for stream, at, data in frames:
                lines = self.assemblers[stream].feed(data)
                if lines:
                    self._lines(run, stream, lines, points=self._points_allowed(at))
            now = time.monotonic()
            full = self.pending_bytes >= OUTPUT_FLUSH_BYTES
            if full or now - last_flush >= OUTPUT_FLUSH_SECONDS:
                self._flush_output(run)
                last_flush = now
            if got:
                continue
            if ended is None:
                ended = read_json(exit_path)
            if ended is not None and reader.at_end():
                break
            if ended is None and now - last_check > 1.0:
                last_check = now
                if not _alive(self.meta.get("launcher_pid")):
                    ended = read_json(exit_path)  # it may have written it just before dying
                    if ended is None:
                        self._flush_output(run)
                        return None
            time.sleep(IDLE_SLEEP)
        reader.close()
        for stream, assembler in self.assemblers.items():
            self._lines(run, stream, assembler.flush(), points=self.attached_at is None)
        self._apply(run, self.parser.close())
        self._flush_output(run)
        return ended

    def _points_allowed(self, at: float) -> bool:
        return self.attached_at is None or at < self.attached_at

    def _lines(self, run: Run, stream: str, lines: list[str], *, points: bool = True) -> None:
        """Store, remember the tail of, and parse complete lines of one stream (this loop runs
        for every line a program prints: the per-line work is the parser's only)."""
        if not lines:
            return
        self.lines += len(lines)
        if self.pending and self.pending[-1][0] == stream:
            self.pending[-1][1].extend(lines)
        else:
            self.pending.append((stream, list(lines)))
        self.pending_bytes += sum(map(len, lines)) + len(lines)
        self.tail.extend(lines[-TAIL_LINES:])
        feed = self.parser.feed
        for line in lines:
            events = feed(line)
            if events:
                self._apply(run, events, points=points)

    def _apply(self, run: Run, events: list[Point | Summary], *, points: bool = True) -> None:
        for event in events:
            try:
                if isinstance(event, Point):
                    if not points:
                        continue
                    run.log(event.values, step=event.step, epoch=event.epoch)
                    self.points += 1
                    self.keys.update(event.values)
                else:
                    run._submit(WriteBatch(summary={event.key: _summary_value(event)}))
                    self.summaries += 1
                    self.keys.add(event.key)
            except ExpbookError as exc:  # a key or value the store cannot take: skip it
                self.warnings.append(str(exc))

    def _flush_output(self, run: Run) -> None:
        now = time.time()
        output = [
            OutputText(stream, now, "".join(line + "\n" for line in lines))
            for stream, lines in self.pending
        ]
        if output:
            run._submit(WriteBatch(output=output))
        self.queued_bytes += self.pending_bytes
        self.pending = []
        self.pending_bytes = 0
        if self.queued_bytes >= OUTPUT_QUEUED_BYTES:
            run.flush()
            self.queued_bytes = 0

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
            parsed = f"{self.points} points and {self.summaries} values of {len(self.keys)} keys"
        text = (
            f"run #{run.number} {status} after {seconds:.1f}s: {self.lines} lines of output, "
            f"{parsed}; expbook show {run.number}"
        )
        if self.warnings:
            text += f" (warning: {self.warnings[0]})"
        return text

    def _clean_up(self) -> None:
        """Remove the spool once everything is stored and the launcher has read ``done`` and
        exited (it waits at most 5 s for it)."""
        deadline = time.monotonic() + 10
        while _alive(self.meta.get("launcher_pid")) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(self.spool, ignore_errors=True)


def _summary_value(event: Summary) -> SummaryValue:
    return SummaryValue(
        event.value, event.unit, time.time(), step=event.step, epoch=event.epoch,
        min=event.min, min_step=event.min_step, min_epoch=event.min_epoch,
        max=event.max, max_step=event.max_step, max_epoch=event.max_epoch,
    )  # fmt: skip


def _runs_this_python(command: list[str]) -> bool:
    """Whether the program is this Python, so that its installed packages are ours."""
    found = shutil.which(command[0]) if command else None
    return found is not None and os.path.realpath(found) == os.path.realpath(sys.executable)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
