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
    store: str | None, ray_address: str | None = None,
) -> int:  # fmt: skip
    """Create the sweep and run it here (or on Ray); the exit status."""
    from expbook.sweep.spec import load_spec

    spec = load_spec(spec_file)
    _say_spec(spec_file, spec)
    opened = open_store(resolve_url(store))
    if ray_address is None:
        sweep = _create(opened, spec, name)
        return _drive(opened, sweep, workers=workers or spec.workers or 1, count=count,
                      grace=grace)  # fmt: skip
    launcher, fits = _ray_launcher(ray_address, opened, spec, grace)  # before the sweep exists
    try:
        sweep = _create(opened, spec, name)
        return _drive(opened, sweep, workers=workers or spec.workers or fits, count=count,
                      grace=grace, launcher=launcher)  # fmt: skip
    finally:
        launcher.ray.shutdown()


def create(*, spec_file: str, name: str | None, store: str | None) -> None:
    """Create the sweep; print its name, id and how to start agents."""
    from expbook.sweep.spec import load_spec

    spec = load_spec(spec_file)
    _say_spec(spec_file, spec)
    url = resolve_url(store)
    sweep = _create(open_store(url), spec, name)
    flag = "" if store is None else f" --store {shlex.quote(store)}"
    sys.stdout.write(
        f"created sweep {sweep.name} ({sweep.id})\n"
        f"start agents (on any machine that reaches the store) with:\n"
        f"  expbook sweep agent {shlex.quote(sweep.name)}{flag}\n"
    )


def agent(
    *, sweep: str, count: int | None, grace: float, store: str | None,
    ray_address: str | None = None,
) -> int:  # fmt: skip
    """Run one agent on an existing sweep; the exit status."""
    from expbook.cli.common import open_cli_store

    opened = open_cli_store(store)
    record = opened.get_sweep(sweep)
    if "program" not in record.spec and "command" not in record.spec:
        what = record.spec.get("description") or "expbook.sweep"
        raise ExpbookError(
            f"sweep {record.name!r} searches a Python function ({what}) and has no command to "
            f"run: continue it from Python, with expbook.sweep(objective, name={record.name!r}, "
            "...)"
        )
    if ray_address is None:
        return _drive(opened, record, workers=1, count=count, grace=grace)
    from expbook.sweep.agent import spec_of

    launcher, fits = _ray_launcher(ray_address, opened, spec_of(record), grace)
    try:
        return _drive(opened, record, workers=fits, count=count, grace=grace,
                      launcher=launcher)  # fmt: skip
    finally:
        launcher.ray.shutdown()


def _ray_launcher(address: str, store: Store, spec: Any, grace: float) -> tuple[Any, int]:
    """Ray connected (``--ray ADDRESS``; ``--ray`` alone: Ray's default) and the trials its
    cluster holds at once; says in a line what it found and what cannot work."""
    from expbook.locations import sqlite_path
    from expbook.sweep.ray import RayLauncher, connect

    ray = connect(address or None)
    try:
        launcher = RayLauncher(ray, resources=spec.resources, grace=grace, store_url=store.url)
        fits, lacking = launcher.trials_at_once()
        remote = launcher.remote_nodes()
    except BaseException:
        ray.shutdown()
        raise
    total = ray.cluster_resources()
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    each = ", ".join(f"{k} {v:g}" for k, v in spec.resources.items()) or "cpu 1"
    sys.stderr.write(
        f"expbook: Ray: {nodes} node{'s' if nodes != 1 else ''}, {total.get('CPU', 0):g} CPU, "
        f"{total.get('GPU', 0):g} GPU; each trial takes {each}: {fits} at once\n"
    )
    if lacking:
        sys.stderr.write(f"expbook: warning: {lacking}\n")
    if remote and sqlite_path(store.url) is not None:
        shown = ", ".join(remote[:3]) + (" ..." if len(remote) > 3 else "")
        sys.stderr.write(
            f"expbook: warning: the store is a SQLite file on this machine: trials on other "
            f"Ray nodes ({shown}) cannot reach it and fail; use a PostgreSQL store every node "
            "reaches (--store postgresql://...)\n"
        )
    return launcher, fits


def _say_spec(path: str, spec: Any) -> None:
    """What is valid in the spec but likely a mistake, and the W&B keys expbook does not use:
    one line each on stderr, before anything runs."""
    lines = [f"expbook: {path}: {warning}" for warning in spec.warnings]
    if spec.ignored:
        lines.append(f"expbook: {path}: ignored (W&B settings expbook has no use for): "
                     f"{', '.join(spec.ignored)}")  # fmt: skip
    if lines:
        sys.stderr.write("".join(line + "\n" for line in lines))


def _create(store: Store, spec: Any, name: str | None) -> SweepRecord:
    """A new sweep named ``name``, else the spec's name, else ``sweep-N``."""
    from expbook.sweep.engine import Engine

    Engine(spec).check_sampler()  # a missing package stops here, before the sweep exists
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
    store: Store, sweep: SweepRecord, *, workers: int, count: int | None, grace: float,
    launcher: Any = None,
) -> int:  # fmt: skip
    """Run an agent with a display until it ends; Ctrl-C/SIGTERM stop its trials first."""
    from expbook.sweep.agent import Agent, Settings
    from expbook.sweep.display import Display

    settings = Settings.from_env(grace=grace)
    agent = Agent(store, sweep.id, workers=workers, count=count, settings=settings,
                  launcher=launcher)  # fmt: skip
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
