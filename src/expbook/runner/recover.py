"""``expbook recover``: store the runs whose recording was cut short.

A spool that no process has locked and that has no ``done`` is orphaned: its launcher and its
recorders are gone (killed, OOM, a container torn down, a store that could not be written).
It still holds everything the program printed and how it ended; recovering it runs a recorder
on it, which resumes after what the store already has (the run's ``recorded_offset``), so a
second recover, or one racing a recorder, never stores a point twice.

Orphans are reported, not recovered, by ``expbook run`` and ``expbook ls`` (one line): storing
a long output can take a while and the store may still be failing, so it happens when asked.
Standard library only (the launcher reports orphans on its critical path).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from expbook.locations import spool_roots
from expbook.runner.spool import Spool, find_orphans, find_spools


@dataclass(frozen=True)
class Orphan:
    """A spool waiting to be recovered, as ``expbook recover --list`` shows it."""

    spool: Spool
    command: list[str]
    started_at: float
    number: int | None
    """The run's number, if a recorder created the run before it stopped."""
    ended: bool
    """Whether the program's end was recorded (else the launcher died first: crashed)."""
    output_bytes: int
    reason: str | None
    """Why its last recorder stopped, when it said."""


_FAILING_WAIT = 3.0
"""How long a spool whose recorder reported its failure may stay locked: the recorder is
exiting (the launcher returns as soon as it reads the report)."""


def orphans(url: str) -> list[Orphan]:
    """The orphaned spools of the store at ``url``, oldest first (see ``find_orphans``). A
    spool whose recorder reported a failure but still holds the lock (it is exiting: the
    launcher returned as soon as it read the report) is waited for, up to 3 s, so that a
    ``recover`` right after ``expbook run`` returned finds it."""
    roots = spool_roots(url)
    deadline = time.monotonic() + _FAILING_WAIT
    while any(_failing(spool) for spool in find_spools(roots, url)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return [_describe(spool) for spool in find_orphans(roots, url)]


def _failing(spool: Spool) -> bool:
    """Locked, with its recorder's failure reported: about to be orphaned."""
    failed = spool.failed() is not None or os.path.exists(spool.file("failed-reported.json"))
    return failed and spool.is_locked()


def _describe(spool: Spool) -> Orphan:
    meta = spool.meta() or {}
    ready = spool.ready()
    failed = spool.failed() or _read_reported(spool)
    return Orphan(
        spool=spool,
        command=list(meta.get("command", [])),
        started_at=float(meta.get("started_at", 0.0)),
        number=ready["number"] if ready else None,
        ended=spool.exit_report() is not None,
        output_bytes=spool.output_size(),
        reason=failed["error"] if failed else None,
    )


def _read_reported(spool: Spool) -> dict[str, Any] | None:
    from expbook.runner.spool import read_json

    return read_json(spool.file("failed-reported.json"))


def recover(orphan: Orphan, timeout: float | None = None) -> dict[str, Any]:
    """Store an orphaned run: a recorder on its spool, with the spool's lock.

    Returns:
        The recorder's result (``done``): the run's number, status and counts.

    Raises:
        RecoverError: another process took the spool meanwhile, or the recorder failed.
    """
    import subprocess

    spool = orphan.spool
    lock = spool.lock()
    if lock is None:
        raise RecoverError(f"{spool.path} is being recorded by another process")
    try:
        log = open(spool.file("recorder.log"), "ab")  # noqa: SIM115 - closed below
        started = time.monotonic()
        try:
            recorder = ["-m", "expbook.runner.recorder", spool.path, str(lock), "--launcher-gone"]
            process = subprocess.Popen(
                [sys.executable, *recorder],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(lock,),
            )
            code = process.wait(timeout)
        finally:
            log.close()
    finally:
        os.close(lock)
    done = spool.done()
    if done is not None:
        spool.remove()
        done["seconds_to_recover"] = round(time.monotonic() - started, 3)
        return done
    failed = spool.failed()
    if failed is not None:
        spool.failure_reported()
        raise RecoverError(failed["error"])
    if not orphan.ended and code == 0:  # the launcher died first: stored up to there
        spool.remove()
        return {"run": orphan.number, "status": "crashed", "summary": None}
    log_path = spool.file("recorder.log")
    raise RecoverError(f"the recorder stopped (exit status {code}; see {log_path})")


class RecoverError(Exception):
    """A spool could not be recovered now."""
