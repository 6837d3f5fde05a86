"""Sweeps in the store beyond the contract: PostgreSQL faults and the sweep migration.

The contract of the sweep methods, and their coordination between processes started together
on one store, is in tests/store_contract.py (run on SQLite and PostgreSQL by tests/test_store.py).
Here the faults are real: PostgreSQL backends terminated with ``pg_terminate_backend``, and a TCP
proxy that lets a COMMIT reach the server but drops the connection before the answer comes back
(the retried transaction must find its own committed work instead of applying twice)
(docs/design.md "Sweeps: coordinated through the store").
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import expbook
from expbook.model import RunStatus, TrialState
from expbook.store import Store

from .conftest import POSTGRES_URL
from .pgproxy import CommitDropper
from .store_contract import SPEC, add_trial


def test_every_status_list_knows_every_status() -> None:
    from expbook import query
    from expbook.cli import main, output

    static = Path(expbook.__file__).parent / "server" / "static"
    common = (static / "common.js").read_text()
    css = (static / "style.css").read_text()
    for status in RunStatus:
        assert status.value in main.STATUSES and status.value in query._STATUSES
        assert status.value in output.STATUS_STYLES
        assert f'"{status.value}"' in common and f".badge-{status.value} " in css


# --- PostgreSQL faults: killed backends, a commit whose answer is lost ------------------------


def _terminate_repeatedly(application: str, stop: threading.Event, kills: list[int]) -> None:
    import psycopg

    admin = POSTGRES_URL.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin, autocommit=True) as connection:
        while not stop.is_set():
            killed = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application,),
            ).fetchone()
            kills.append(killed[0] if killed else 0)
            stop.wait(random.uniform(0.01, 0.08))


@pytest.mark.postgres
def test_killed_backends_add_each_trial_exactly_once(postgres_url: str) -> None:
    application = f"expbook-sweep-{uuid.uuid4().hex[:8]}"
    store = expbook.open_store(f"{postgres_url}&application_name={application}")
    sweep = store.create_sweep("faults", SPEC)
    stop, kills = threading.Event(), []
    killer = threading.Thread(target=_terminate_repeatedly, args=(application, stop, kills))
    killer.start()
    added: list[Any] = []
    try:  # at least 150 trials and 20 terminated backends (a fast machine adds faster)
        while (len(added) < 150 or sum(kills) < 20) and len(added) < 5000:
            trial = None
            while trial is None:  # None would be a lost commit taken for a conflict: one writer
                trial = add_trial(store, sweep.id, f"k{len(added)}")
            added.append(trial)
    finally:
        stop.set()
        killer.join()
    assert sum(kills) >= 20, f"only {sum(kills)} backends were terminated"
    count = len(added)
    trials = expbook.open_store(postgres_url).list_trials(sweep.id)
    assert [t.config_key for t in trials] == [f"k{i}" for i in range(count)]  # each once
    assert [t.number for t in added] == list(range(count))
    assert store.get_sweep(sweep.id).version == count


@pytest.mark.postgres
def test_a_lost_commit_answer_is_never_applied_twice(
    dropper: tuple[CommitDropper, Store],
) -> None:
    proxy, store = dropper

    def lost(call: Any, *args: Any, **kwargs: Any) -> Any:
        proxy.armed.set()
        before = proxy.dropped
        result = call(*args, **kwargs)
        assert proxy.dropped == before + 1  # the commit's answer really was lost
        return result

    sweep = lost(store.create_sweep, "lost", SPEC)  # not SweepExistsError: its own row
    trial = lost(store.add_trial, sweep.id, expected_version=0, params={"a": 1},
                 config_key="a", worker="w1")  # fmt: skip
    assert trial is not None and trial.number == 0  # not None: its own change moved the version
    assert store.get_sweep(sweep.id).version == 1
    for key in ("b", "c"):
        add_trial(store, sweep.id, key, state=TrialState.QUEUED)
    claimed = lost(store.claim_trial, sweep.id, "w2")
    assert claimed is not None and claimed.number == 1
    assert store.list_trials(sweep.id)[2].state is TrialState.QUEUED  # not claimed twice
    assert lost(store.update_trial, sweep.id, 1, worker="w2", state="finished", values=[1.0])
    edited = lost(store.update_sweep, sweep.id, spec={"v": 2}, expected_version=3)
    assert edited is not None and edited.version == 4
    time.sleep(0.3)
    crashed = lost(store.expire_trials, sweep.id, stale_after=0.2, max_attempts=2)
    assert [t.number for t in crashed] == [0]
    trials = store.list_trials(sweep.id)
    assert [(t.number, t.state.value) for t in trials] == [
        (0, "crashed"), (1, "finished"), (2, "queued"), (3, "queued"),
    ]  # fmt: skip
    lost(store.delete_sweep, sweep.id)  # not SweepNotFoundError: it deleted it
    assert store.list_sweeps() == []


# --- schema ------------------------------------------------------------------------------------


def test_the_sweep_migration_goes_down_and_up(store_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    from expbook.store.engine import make_engine

    expbook.open_store(store_url).close()
    engine = make_engine(expbook.store.resolve_url(store_url))
    config = Config()
    config.set_main_option("script_location", "expbook.store:migrations")
    for revision, present in (("0005", False), ("head", True)):
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if revision == "0005" else command.upgrade)(config, revision)
        tables = sa.inspect(engine).get_table_names()
        assert ("sweeps" in tables) is present and ("sweep_trials" in tables) is present
    engine.dispose()
    store = expbook.open_store(store_url)
    assert store.create_sweep("after", {}).version == 0
