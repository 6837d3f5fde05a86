"""``expbook sweep run``, ``expbook sweep create`` and ``expbook sweep agent``."""

from __future__ import annotations

import shlex
import signal
import sys
from typing import Any

from expbook.errors import ExpbookError, SweepExistsError
from expbook.model import SweepRecord
from expbook.store import Store, open_store, resolve_url

_HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def run(
    *, spec_file: str, workers: int | None, name: str | None, count: int | None, grace: float,
    store: str | None,
) -> int:  # fmt: skip
    """Create the sweep and run it here; the exit status."""
    from expbook.sweep.spec import load_spec

    spec = load_spec(spec_file)
    opened = open_store(resolve_url(store))
    sweep = _create(opened, spec, name)
    return _drive(opened, sweep, workers=workers or spec.workers or 1, count=count, grace=grace)


def create(*, spec_file: str, name: str | None, store: str | None) -> None:
    """Create the sweep; print its name, id and how to start agents."""
    from expbook.sweep.spec import load_spec

    spec = load_spec(spec_file)
    url = resolve_url(store)
    sweep = _create(open_store(url), spec, name)
    flag = "" if store is None else f" --store {shlex.quote(store)}"
    sys.stdout.write(
        f"created sweep {sweep.name} ({sweep.id})\n"
        f"start agents (on any machine that reaches the store) with:\n"
        f"  expbook sweep agent {shlex.quote(sweep.name)}{flag}\n"
    )


def agent(*, sweep: str, count: int | None, grace: float, store: str | None) -> int:
    """Run one agent on an existing sweep; the exit status."""
    from expbook.cli.common import open_cli_store

    opened = open_cli_store(store)
    return _drive(opened, opened.get_sweep(sweep), workers=1, count=count, grace=grace)


def _create(store: Store, spec: Any, name: str | None) -> SweepRecord:
    """A new sweep named ``name``, else the spec's name, else ``sweep-N``."""
    given = name or spec.name
    if given:
        try:
            return store.create_sweep(given, dict(spec.raw), experiment=spec.experiment)
        except SweepExistsError:
            raise ExpbookError(
                f"a sweep named {given!r} exists already: give another with --name, or go on "
                f"with it: expbook sweep agent {shlex.quote(given)}"
            ) from None
    taken = {s.name for s in store.list_sweeps()}
    n = len(taken) + 1
    while True:
        while f"sweep-{n}" in taken:
            n += 1
        try:
            return store.create_sweep(f"sweep-{n}", dict(spec.raw), experiment=spec.experiment)
        except SweepExistsError:  # created by someone else just now
            taken.add(f"sweep-{n}")


def _drive(
    store: Store, sweep: SweepRecord, *, workers: int, count: int | None, grace: float
) -> int:
    """Run an agent with a display until it ends; Ctrl-C/SIGTERM stop its trials first."""
    from expbook.sweep.agent import Agent, Settings
    from expbook.sweep.display import Display

    settings = Settings.from_env(grace=grace)
    agent = Agent(store, sweep.id, workers=workers, count=count, settings=settings)
    display = Display(store, agent.record, agent.spec, workers=workers)
    agent.on_event = display
    previous = {}

    def stop(signum: int, _frame: object) -> None:
        agent.stop(signum)
        for handled in _HANDLED:  # a second signal ends the agent at once
            signal.signal(handled, previous.get(handled, signal.SIG_DFL))

    for signum in _HANDLED:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, stop)
    try:
        with display:
            try:
                outcome = agent.run()
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
    except ExpbookError:
        _print(display.summary(agent.outcome))
        raise
    _print(display.summary(outcome))
    if outcome.interrupted is not None:
        return 128 + outcome.interrupted
    return 0


def _print(lines: list[str]) -> None:
    try:
        sys.stdout.write("".join(line + "\n" for line in lines))
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
