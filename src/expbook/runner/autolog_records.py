"""The recorder's side of autolog: the records the framework hooks write into a run's spool.

Each process of the program that has expbook's hooks (``expbook.integrations``) appends JSON lines
to its own ``autolog-<pid>.jsonl`` in the spool: points (values at a step and epoch), params,
summary values, the keys a hook covers (*claims*), the framework it hooked, warnings. The
follower reads them here, alongside the output, and sends them in the same batches.

Two rules, both written down in docs/autolog.md:

- *Nothing stored twice on a resumed recording.* Every batch carries how far into each records
  file it reaches (``runs.recorded_autolog``, in the same transaction); a recorder that resumes
  reads the files from the start (their claims still count) but sends only the records after
  those offsets.
- *No double counting.* Once a hook has claimed key K, points and summary values that the
  parsers read from output printed from that moment on are dropped for K (keys compared without
  case and separators: ``valid_0's binary_logloss`` is ``valid_0/binary_logloss``). The hooks
  write before the framework prints, and the follower reads the records after it has read a
  chunk of output and before it parses it, so the claim is always known in time. A hook that
  fails (its warning) gives its keys back to the parsers.

Standard library only (the recorder's reading half).
"""

from __future__ import annotations

import json
import math
import os
import re

PREFIX = "autolog-"
SUFFIX = ".jsonl"
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def canonical(key: str) -> str:
    """A key without case and separators: ``train/loss``, ``train_loss``, ``Train Loss`` and
    ``train-loss`` are one key."""
    return _SEPARATORS.sub("", key.lower())


class RecordsReader:
    """Reads the records files of a spool as they grow.

    Args:
        path: The spool directory.
        stored: Bytes of each file the store already has (a resumed recording).
    """

    def __init__(self, path: str, stored: dict[str, int] | None = None) -> None:
        self.path = path
        self.stored = dict(stored or {})
        self.offsets: dict[str, int] = {}  # bytes of each file read as whole lines
        self._partial: dict[str, bytes] = {}

    def read(self) -> list[tuple[dict, bool]]:  # type: ignore[type-arg]
        """The records written since the last call, each with whether the store has it."""
        try:
            names = [
                name
                for name in os.listdir(self.path)
                if name.startswith(PREFIX) and name.endswith(SUFFIX)
            ]
        except OSError:
            return []
        found = []
        for name in sorted(names):
            found += self._read_file(name)
        return found

    def _read_file(self, name: str) -> list[tuple[dict, bool]]:  # type: ignore[type-arg]
        offset = self.offsets.get(name, 0)
        try:
            with open(os.path.join(self.path, name), "rb") as handle:
                handle.seek(offset + len(self._partial.get(name, b"")))
                data = handle.read()
        except OSError:
            return []
        if not data:
            return []
        data = self._partial.pop(name, b"") + data
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self._partial[name] = data[end:]
        records = []
        stored = self.stored.get(name, 0)
        position = offset
        for line in data[:end].splitlines(keepends=True):
            position += len(line)
            try:
                record = json.loads(line)
            except ValueError:
                continue  # not ours to judge: a torn line of a killed process
            if isinstance(record, dict):
                records.append((record, position <= stored))
        self.offsets[name] = offset + end
        return records


class Claims:
    """The keys autolog covers, and when: parsed values of those keys are dropped.

    A key is covered from its claim until the hook that claimed it failed (then the parsers
    read it again), compared with the time the output was read; and, after that, at the steps
    the hook recorded it at: the launcher stamps output when it reads it, which on a busy
    machine can be after the failure although the line was printed before it."""

    def __init__(self) -> None:
        self._spans: dict[str, tuple[float, float]] = {}  # canonical key -> (from, until)
        self._by: dict[str, set[str]] = {}  # framework -> canonical keys it claimed
        self._cache: dict[str, tuple[float, float]] = {}  # key as parsed -> its span
        self._last_step: dict[str, int] = {}  # canonical key -> the last step a hook gave it

    def __bool__(self) -> bool:
        return bool(self._spans)

    def claim(self, framework: str, keys: list[str], at: float) -> None:
        for key in keys:
            name = canonical(str(key))
            if name not in self._spans:
                self._spans[name] = (at, math.inf)
                self._by.setdefault(framework, set()).add(name)
        self._cache.clear()

    def release(self, framework: str, at: float) -> None:
        """A failed hook: its keys are the parsers' again from ``at`` on."""
        for name in self._by.pop(framework, ()):
            start, _ = self._spans[name]
            self._spans[name] = (start, max(start, at))
        self._cache.clear()

    def recorded(self, keys: list[str], step: int | None) -> None:
        """A hook's point of ``keys`` at ``step``."""
        if step is None:
            return
        for key in keys:
            name = canonical(str(key))
            if step > self._last_step.get(name, -1):
                self._last_step[name] = step

    def covers(self, key: str, at: float, step: int | None = None) -> bool:
        """Whether a value of ``key`` (as parsed) read from output at time ``at``, at ``step``
        (None: not known) is autolog's."""
        span = self._cache.get(key)
        if span is None:
            span = self._cache[key] = self._spans.get(canonical(key), (math.inf, math.inf))
        if span[0] <= at < span[1]:
            return True
        if step is None or at < span[1] or span[1] == math.inf:
            return False
        return step <= self._last_step.get(canonical(key), -1)  # printed before the failure
