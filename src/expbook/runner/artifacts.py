"""``expbook run --artifacts PATTERN``: keep files the program writes (docs/run.md, "Artifacts").

A ``Collector`` runs in the recorder's storing half, as a thread. The rule:

- while the program runs, every ``interval`` seconds (30 s; ``EXPBOOK_ARTIFACT_INTERVAL``), a
  matching file is kept once it is *settled*: same size and modification time as at the scan
  before (a checkpoint still being written is left for the next scan);
- when the program has ended, every matching file that changed since it was kept is kept, settled
  or not (nothing writes it any more);
- a file kept again under the same name replaces the name's content; the old content stays in
  the store while another run holds it.

Patterns are relative to the run's working directory: globs (``checkpoints/*.pt``,
``**/*.png``) or folders (``plots/``: every file under it). A file's name in the run is its path
relative to the working directory (outside it: relative to the folder above the pattern's fixed
part). A pattern that matched nothing at the end is a warning on the run, never an error.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Callable

from expbook.errors import ExpbookError
from expbook.store.base import WriteBatch

INTERVAL = 30.0


class Collector:
    """Collects the files of ``patterns`` into a run (see the module docstring).

    Args:
        patterns: As given to ``--artifacts``.
        cwd: The run's working directory.
        run: The live run (``log``-side handle with ``store`` and ``submit``).
        interval: Seconds between scans while the program runs.
    """

    def __init__(self, patterns: list[str], cwd: str, run: object, interval: float) -> None:
        self.patterns = list(patterns)
        self.cwd = cwd
        self.run = run
        self.interval = interval
        self.warnings: list[str] = []
        self._seen: dict[str, tuple[int, int]] = {}  # file -> (size, mtime) at the last scan
        self._kept: dict[str, tuple[int, int]] = {}  # name -> (size, mtime) when kept
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="expbook-artifacts", daemon=True)

    def start(self) -> Collector:
        self._thread.start()
        return self

    def finish(self) -> list[str]:
        """The program has ended: stop scanning, keep what changed; returns the warnings."""
        self.stop()
        matched = self.scan(final=True)
        for pattern in self.patterns:
            if not matched.get(pattern):
                self.warnings.append(f"--artifacts {pattern!r}: no file matched")
        return self.warnings

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.scan(final=False)

    def scan(self, *, final: bool) -> dict[str, int]:
        """Keep the files due (settled, or any changed one when ``final``); returns how many
        files each pattern matched."""
        from expbook import artifacts

        matched: dict[str, int] = {}
        due: list[tuple[str, str]] = []
        seen: dict[str, tuple[int, int]] = {}
        for pattern in self.patterns:
            files = self._matches(pattern)
            matched[pattern] = len(files)
            for name, path in files:
                try:
                    state = os.stat(path)
                except OSError:
                    continue  # removed since it matched
                key = (state.st_size, state.st_mtime_ns)
                seen[path] = key
                if self._kept.get(name) != key and (final or self._seen.get(path) == key):
                    due.append((name, path))
        self._seen = seen
        if due:
            self._keep(due, artifacts.store_files)
        return matched

    def _keep(self, due: list[tuple[str, str]], store_files: Callable[..., dict]) -> None:
        try:
            states = {name: os.stat(path) for name, path in due}
            records = store_files(self.run.store, due)  # type: ignore[attr-defined]
            self.run.submit(WriteBatch(artifacts=records))  # type: ignore[attr-defined]
        except (ExpbookError, OSError) as exc:
            message = f"--artifacts: files not kept: {exc}"
            if message not in self.warnings:
                self.warnings.append(message)
            return
        for name, state in states.items():
            self._kept[name] = (state.st_size, state.st_mtime_ns)

    def _matches(self, pattern: str) -> list[tuple[str, str]]:
        """(name, file) of every file the pattern matches, names checked (a bad one is a
        warning)."""
        from expbook.artifacts import check_artifact_name

        base = os.path.join(self.cwd, os.path.expanduser(pattern))
        if pattern.endswith(("/", os.sep)) or os.path.isdir(base):
            paths = [base]
        else:
            paths = glob.glob(base, recursive=True)
        files = []
        for path in sorted(paths):
            if os.path.isdir(path):
                for folder, folders, names in os.walk(path):
                    folders.sort()
                    files += [os.path.join(folder, n) for n in sorted(names)]
            elif os.path.isfile(path):
                files.append(path)
        found = []
        anchor = _anchor(base)
        for file in files:
            name = _name(os.path.abspath(file), os.path.abspath(self.cwd), anchor)
            try:
                found.append((check_artifact_name(name), file))
            except ExpbookError as exc:
                if str(exc) not in self.warnings:
                    self.warnings.append(str(exc))
        return found


def _anchor(pattern: str) -> str:
    """The folder above a pattern's fixed part (``/data/out/*.png`` -> ``/data``)."""
    parts = os.path.abspath(pattern).split(os.sep)
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.path.dirname(os.sep.join(fixed) or os.sep)


def _name(path: str, cwd: str, anchor: str) -> str:
    inside = path.startswith(cwd.rstrip(os.sep) + os.sep)
    return os.path.relpath(path, cwd if inside else anchor).replace(os.sep, "/")


def start_collector(patterns: list[str] | None, cwd: str, run: object) -> Collector | None:
    """A started collector for ``--artifacts`` patterns; None without any."""
    if not patterns:
        return None
    try:
        interval = float(os.environ.get("EXPBOOK_ARTIFACT_INTERVAL") or INTERVAL)
    except ValueError:
        interval = INTERVAL
    return Collector(patterns, cwd, run, max(interval, 0.05)).start()
