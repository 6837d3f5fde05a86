"""Sweeps in the store: the contract of the sweep methods on SQLite and PostgreSQL, and the
coordination under real concurrency (docs/design.md "Sweeps: coordinated through the store").

Concurrency is real: separate processes against one SQLite file or one PostgreSQL database,
started together; PostgreSQL backends terminated with ``pg_terminate_backend``; and a TCP proxy
that lets a COMMIT reach the server but drops the connection before the answer comes back (the
retried transaction must find its own committed work instead of applying twice).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import expbook
from expbook.errors import (
    AmbiguousSweepError,
    InvalidValueError,
    RunNotFoundError,
    SweepExistsError,
    SweepNotFoundError,
    TrialNotFoundError,
)
from expbook.model import RunStatus, SweepState, TrialState
from expbook.store import RunSpec, Store, WriteBatch

from .conftest import POSTGRES_URL
from .pgproxy import CommitDropper

SPEC = {
    "method": "grid",
    "parameters": {"lr": {"values": [0.1, 0.01]}},
    "metric": {"name": "loss"},
}


def _add(store: Store, sweep_id: str, key: str, **options: Any) -> Any:
    version = store.get_sweep(sweep_id).version
    options.setdefault("worker", "w1")
    options.setdefault("params", {"key": key})
    return store.add_trial(sweep_id, expected_version=version, config_key=key, **options)


# --- the contract, on each backend -------------------------------------------------------------


def test_sweeps_are_created_found_listed_and_deleted(store: Store) -> None:
    sweep = store.create_sweep("lr search", SPEC, experiment="learning rate")
    assert sweep.state is SweepState.RUNNING and sweep.version == 0 and sweep.spec == SPEC
    assert sweep.experiment == "learning rate" and store.get_experiment("learning rate")
    assert store.get_sweep("lr search") == sweep == store.get_sweep(sweep.id)
    assert store.get_sweep(sweep.id[:6].upper()) == sweep
    with pytest.raises(SweepExistsError, match="'lr search' exists already"):
        store.create_sweep("lr search", {})
    other = store.create_sweep("other", {"method": "random"})
    assert [s.name for s in store.list_sweeps()] == ["lr search", "other"]
    with pytest.raises(SweepNotFoundError, match="no sweep matches 'nope'"):
        store.get_sweep("nope")
    firsts = {sweep.id[0]: sweep, other.id[0]: other}
    while len(firsts) == len(store.list_sweeps()):  # 17 sweeps at most: two share a digit
        extra = store.create_sweep(f"extra {len(firsts)}", {})
        firsts.setdefault(extra.id[0], extra)
    shared = next(s.id[0] for s in store.list_sweeps() if firsts[s.id[0]] != s)
    with pytest.raises(AmbiguousSweepError, match=f"'{shared}' matches several sweeps"):
        store.get_sweep(shared)
    for extra in store.list_sweeps()[1:]:
        store.delete_sweep(extra.id)
    assert [s.name for s in store.list_sweeps()] == ["lr search"]
    with pytest.raises(SweepNotFoundError, match=other.id):
        store.delete_sweep(other.id)
    with pytest.raises(SweepNotFoundError):
        store.list_trials(other.id)


def test_specs_and_params_keep_the_order_they_were_given_in(store: Store) -> None:
    """PostgreSQL's JSONB sorts keys: a spec's parameters would come back out of the file's
    order (the UI's axes, `sweep show`, edit diffs)."""
    spec = {"program": "t.py", "method": "random", "parameters": {"zeta": {"value": 1},
            "alpha": {"values": [1, 2]}, "mid": {"min": 0.0, "max": 1.0}}}  # fmt: skip
    sweep = store.create_sweep("ordered", spec)
    assert list(store.get_sweep(sweep.id).spec) == ["program", "method", "parameters"]
    assert list(store.get_sweep(sweep.id).spec["parameters"]) == ["zeta", "alpha", "mid"]
    _add(store, sweep.id, "k", params={"zeta": 1, "alpha": 2, "mid": 0.5})
    assert list(store.list_trials(sweep.id)[0].params) == ["zeta", "alpha", "mid"]


def test_an_edit_keeps_the_spec_it_replaced_in_its_own_transaction(store: Store) -> None:
    sweep = store.create_sweep("edited", SPEC)
    wider = {**SPEC, "parameters": {"lr": {"values": [0.1, 0.01, 0.001]}}}
    assert store.update_sweep(sweep.id, spec=wider, expected_version=sweep.version + 1) is None
    assert store.sweep_history(sweep.id) == []  # a refused compare-and-set keeps nothing
    after = store.update_sweep(sweep.id, spec=wider, expected_version=sweep.version)
    assert after is not None and after.spec == wider
    store.update_sweep(sweep.id, state="stopped")  # not a spec change: no entry
    store.update_sweep(sweep.id, spec=wider)  # the same spec: no entry
    [kept] = store.sweep_history(sweep.id)
    assert (kept.version, kept.spec) == (sweep.version, SPEC) and kept.replaced_at > 0
    store.delete_sweep(sweep.id)
    with pytest.raises(SweepNotFoundError):
        store.sweep_history(sweep.id)


def test_bad_sweep_input_names_the_value(store: Store) -> None:
    with pytest.raises(InvalidValueError, match=r"sweep spec .* not JSON data"):
        store.create_sweep("s", {"x": float("nan")})
    with pytest.raises(InvalidValueError, match="invalid sweep name"):
        store.create_sweep("", {})
    sweep = store.create_sweep("s", {})
    with pytest.raises(InvalidValueError, match="unknown sweep state 'paused'"):
        store.update_sweep(sweep.id, state="paused")
    with pytest.raises(InvalidValueError, match="running trial needs the worker"):
        _add(store, sweep.id, "a", worker=None)
    with pytest.raises(InvalidValueError, match=r"trial params .* not JSON data"):
        _add(store, sweep.id, "a", params={"f": object()})
    with pytest.raises(InvalidValueError, match=r"cannot update trial field.*: worker"):
        store.update_trial(sweep.id, 0, worker=None, worker_name="x")
    assert store.list_trials(sweep.id) == [] and store.get_sweep("s").version == 0


def test_add_trial_is_compare_and_set_on_the_version(store: Store) -> None:
    sweep = store.create_sweep("s", SPEC)
    first = store.add_trial(
        sweep.id, expected_version=0, params={"lr": 0.1}, config_key="lr=0.1", worker="w1"
    )
    assert first is not None and (first.number, first.config, first.attempt) == (0, 0, 1)
    assert first.state is TrialState.RUNNING and first.worker == "w1"
    assert first.heartbeat_at == first.started_at == first.created_at
    stale = store.add_trial(
        sweep.id, expected_version=0, params={"lr": 0.01}, config_key="lr=0.01", worker="w2"
    )
    assert stale is None  # another agent added a trial since version 0 was read
    assert [t.config_key for t in store.list_trials(sweep.id)] == ["lr=0.1"]
    assert store.get_sweep(sweep.id).version == 1
    repeat = store.add_trial(
        sweep.id, expected_version=1, params={"lr": 0.1}, config_key="lr=0.1", config=0,
        repeat=1, worker="w2",
    )  # fmt: skip
    assert repeat is not None and (repeat.number, repeat.config, repeat.repeat) == (1, 0, 1)
    queued = store.add_trial(
        sweep.id, expected_version=2, params={"lr": 0.01}, config_key="lr=0.01", worker="w9",
        state=TrialState.QUEUED,
    )  # fmt: skip
    assert queued is not None and (queued.number, queued.config) == (2, 1)
    assert queued.worker is None and queued.started_at is None and queued.heartbeat_at is None
    assert store.update_sweep(sweep.id, state="stopped") is not None
    assert _add(store, sweep.id, "late") is None  # a stopped sweep takes no trials
    assert len(store.list_trials(sweep.id)) == 3


def test_update_sweep_with_and_without_compare_and_set(store: Store) -> None:
    sweep = store.create_sweep("s", SPEC)
    edited = store.update_sweep(sweep.id, spec={"method": "random"}, expected_version=0)
    assert edited is not None and edited.version == 1 and edited.spec == {"method": "random"}
    assert store.update_sweep(sweep.id, state="stopped", expected_version=0) is None
    assert store.get_sweep(sweep.id).state is SweepState.RUNNING
    stopped = store.update_sweep(sweep.id, state="stopped", expected_version=1)
    assert stopped is not None and stopped.state is SweepState.STOPPED
    assert stopped.ended_at is not None and stopped.version == 2
    finished = store.update_sweep(sweep.id, state="finished")
    assert finished is not None and finished.ended_at == stopped.ended_at  # ended when it stopped
    resumed = store.update_sweep(sweep.id, state="running")
    assert resumed is not None and resumed.ended_at is None and resumed.version == 4
    with pytest.raises(SweepNotFoundError):
        store.update_sweep(uuid.uuid4().hex, state="stopped")


def test_claims_leases_and_heartbeats(store: Store) -> None:
    sweep = store.create_sweep("s", SPEC)
    for key in ("a", "b"):
        _add(store, sweep.id, key, state=TrialState.QUEUED)
    first = store.claim_trial(sweep.id, "w1")
    second = store.claim_trial(sweep.id, "w2")
    assert first is not None and second is not None
    assert (first.number, first.worker, second.number, second.worker) == (0, "w1", 1, "w2")
    assert first.state is TrialState.RUNNING and first.started_at == first.heartbeat_at
    assert store.claim_trial(sweep.id, "w3") is None
    assert store.heartbeat_trials(sweep.id, [0, 1, 7], "w1") == {0}  # 1 is w2's, 7 none
    renewed = store.list_trials(sweep.id)[0].heartbeat_at
    assert renewed is not None and renewed > first.heartbeat_at
    assert store.heartbeat_trials(sweep.id, [], "w1") == set()
    assert store.update_trial(sweep.id, 1, worker="w1", state="failed") is False  # not w1's
    assert store.update_trial(sweep.id, 1, worker="w2", values=[0.5], pruned_step=7) is True
    assert store.update_trial(sweep.id, 1, worker="w2", state=TrialState.PRUNED) is True
    pruned = store.list_trials(sweep.id)[1]
    assert pruned.state is TrialState.PRUNED and pruned.values == (0.5,)
    assert pruned.pruned_step == 7 and pruned.ended_at is not None
    assert store.heartbeat_trials(sweep.id, [1], "w2") == set()  # finished: no lease
    assert store.update_trial(sweep.id, 1, worker="w2", error="late") is False
    assert store.update_trial(sweep.id, 1, worker=None, error="edited") is True  # a person
    with pytest.raises(TrialNotFoundError, match="no trial 9"):
        store.update_trial(sweep.id, 9, worker=None, error="x")
    store.update_sweep(sweep.id, state="stopped")
    _add_queued = store.update_trial(sweep.id, 0, worker="w1", state="queued")
    assert _add_queued is True and store.claim_trial(sweep.id, "w4") is None  # sweep stopped
    store.update_sweep(sweep.id, state="running")
    again = store.claim_trial(sweep.id, "w4")
    assert again is not None and again.number == 0 and again.worker == "w4"


def test_expired_trials_crash_and_requeue_up_to_max_attempts(store: Store) -> None:
    sweep = store.create_sweep("s", SPEC)
    trial = _add(store, sweep.id, "a", worker="w1")
    kept = _add(store, sweep.id, "b", worker="w2")
    assert store.expire_trials(sweep.id, stale_after=60, max_attempts=2) == []
    version = store.get_sweep(sweep.id).version
    time.sleep(1.2)  # 'kept' renews its lease just before: stale after 1 s, it is not
    store.heartbeat_trials(sweep.id, [kept.number], "w2")
    crashed = store.expire_trials(sweep.id, stale_after=1.0, max_attempts=2)
    assert [t.number for t in crashed] == [trial.number]
    assert crashed[0].state is TrialState.CRASHED
    assert crashed[0].error == "agent w1 stopped sending heartbeats"
    assert store.get_sweep(sweep.id).version == version + 1
    assert store.heartbeat_trials(sweep.id, [trial.number], "w1") == set()  # the lease is lost
    assert store.update_trial(sweep.id, trial.number, worker="w1", state="finished") is False
    trials = store.list_trials(sweep.id)
    copy = trials[-1]
    assert (copy.number, copy.state, copy.attempt) == (2, TrialState.QUEUED, 2)
    assert (copy.params, copy.config, copy.config_key) == (trial.params, trial.config, "a")
    claimed = store.claim_trial(sweep.id, "w3")
    assert claimed is not None and claimed.number == 2 and claimed.attempt == 2
    time.sleep(1.2)
    store.heartbeat_trials(sweep.id, [kept.number], "w2")
    again = store.expire_trials(sweep.id, stale_after=1.0, max_attempts=2)
    assert [t.number for t in again] == [2]
    assert len(store.list_trials(sweep.id)) == 3  # attempt 2 of 2: not queued again


def test_trials_link_runs_and_survive_their_deletion(store: Store) -> None:
    sweep = store.create_sweep("s", SPEC)
    run = store.create_run(RunSpec(name="old", kind="sweep-trial", started_at=1000.0))
    store.write(run.id, WriteBatch(update={"status": "finished", "ended_at": 1010.0}))
    attached = _add(
        store, sweep.id, "old", worker=None, state=TrialState.FINISHED, run_id=run.id,
        values=[0.25, float("nan")],
    )  # fmt: skip
    assert attached.run_id == run.id and attached.run_number == run.number
    assert (attached.started_at, attached.ended_at) == (1000.0, 1010.0)
    assert attached.values == (0.25, None)  # NaN: a metric the run never logged
    with pytest.raises(RunNotFoundError):
        _add(store, sweep.id, "x", run_id=uuid.uuid4().hex)
    live = _add(store, sweep.id, "new", worker="w1")
    second = store.create_run(RunSpec(name="trial", kind="sweep-trial"))
    assert store.update_trial(sweep.id, live.number, worker="w1", run_id=second.id) is True
    store.update_run(second.id, status="pruned", ended_at=time.time())
    assert store.run(second.id).status is RunStatus.PRUNED
    assert [r.number for r in store.runs(status="pruned")] == [second.number]
    assert [r.number for r in store.runs("status = 'pruned'")] == [second.number]
    store.delete_run(run.id)
    trials = store.list_trials(sweep.id)
    assert trials[0].run_id is None and trials[0].values == (0.25, None)
    assert trials[1].run_number == second.number
    store.delete_sweep(sweep.id)  # the trials go, their runs stay
    assert store.run(second.id).name == "trial"


def test_pruned_runs_never_read_as_crashed(store: Store) -> None:
    run = store.create_run(RunSpec(name="t", heartbeat_interval=0.01, started_at=time.time() - 60))
    store.update_run(run.id, status="pruned")
    assert store.run(run.id).status is RunStatus.PRUNED  # a stale heartbeat changes only running


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


# --- real processes: compare-and-set, claims and expiry under contention -----------------------

CHILD = """
import json, os, sys, time, traceback
import expbook
url, task, name, args, go = sys.argv[1:6]
args = json.loads(args)
store = expbook.open_store(url)
sweep = args["sweep"]
open(f"{go}.{name}", "w").close()  # ready
while not os.path.exists(go):
    time.sleep(0.001)
started = time.perf_counter()
out = {"added": [], "conflicts": 0, "claimed": [], "expired": []}
try:
    if task == "add":
        i = 0
        while True:
            version = store.get_sweep(sweep).version
            if version >= args["limit"]:
                break
            key = f"{name}-{i}"
            i += 1
            trial = store.add_trial(sweep, expected_version=version, params={"by": name},
                                    config_key=key, worker=name)
            if trial is None:
                out["conflicts"] += 1
                out.setdefault("refused", []).append(key)
            else:
                out["added"].append([key, trial.number, version])
    elif task == "claim":
        while (trial := store.claim_trial(sweep, name)) is not None:
            out["claimed"].append(trial.number)
    elif task == "expire":
        found = store.expire_trials(sweep, stale_after=args["stale"], max_attempts=2)
        out["expired"] = [t.number for t in found]
except BaseException:
    out["error"] = traceback.format_exc()
out["seconds"] = time.perf_counter() - started
print(json.dumps(out))
"""


def _together(url: str, task: str, count: int, tmp_path: Path, **args: Any) -> list[dict]:
    """Start ``count`` processes running ``task``, let them go at the same moment (once all
    have opened the store), and return what each reports."""
    go = tmp_path / f"go-{uuid.uuid4().hex[:6]}"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, url, task, f"p{i}", json.dumps(args), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    ready = [Path(f"{go}.p{i}") for i in range(count)]
    deadline = time.monotonic() + 120
    while not all(path.exists() for path in ready) and time.monotonic() < deadline:
        time.sleep(0.01)  # every child has imported expbook and opened the store
    go.touch()
    reports = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err
        report = json.loads(out)
        assert "error" not in report, report["error"]  # no deadlock, no lost connection...
        reports.append(report)
    return reports


def _shared_url(store_url: str) -> str:
    expbook.open_store(store_url).close()  # created before the children open it
    return store_url


@pytest.mark.slow
def test_six_processes_add_trials_no_duplicate_no_loss(store_url: str, tmp_path: Path) -> None:
    url, limit = _shared_url(store_url), 60
    store = expbook.open_store(url)
    sweep = store.create_sweep("race", SPEC)
    reports = _together(url, "add", 6, tmp_path, sweep=sweep.id, limit=limit)
    trials = store.list_trials(sweep.id)
    assert [t.number for t in trials] == list(range(limit))  # no gap, no duplicate
    added = {key: (number, version) for r in reports for key, number, version in r["added"]}
    assert len(added) == sum(len(r["added"]) for r in reports) == limit  # a success: a trial...
    assert {t.config_key: t.number for t in trials} == {k: n for k, (n, _) in added.items()}
    refused = {key for r in reports for key in r.get("refused", [])}
    assert refused.isdisjoint(t.config_key for t in trials)  # ...and a refusal inserted nothing
    assert sorted(version for _, version in added.values()) == list(range(limit))
    assert store.get_sweep(sweep.id).version == limit  # every bump is one added trial
    assert sum(1 for r in reports if r["added"]) >= 2  # they did run at the same time
    seconds = max(r["seconds"] for r in reports)
    conflicts = sum(r["conflicts"] for r in reports)
    print(f"\n{store.dialect}: {limit} trials by 6 processes in {seconds:.2f} s "
          f"({limit / seconds:.0f}/s), {conflicts} compare-and-set conflicts")  # fmt: skip
    store.close()


@pytest.mark.slow
def test_concurrent_claims_never_share_a_trial(store_url: str, tmp_path: Path) -> None:
    url, count = _shared_url(store_url), 40
    store = expbook.open_store(url)
    sweep = store.create_sweep("claims", SPEC)
    for i in range(count):
        assert _add(store, sweep.id, f"k{i}", state=TrialState.QUEUED) is not None
    reports = _together(url, "claim", 6, tmp_path, sweep=sweep.id)
    claimed = [number for r in reports for number in r["claimed"]]
    assert sorted(claimed) == list(range(count))  # each trial once, none left
    owner = {n: f"p{i}" for i, r in enumerate(reports) for n in r["claimed"]}
    for trial in store.list_trials(sweep.id):
        assert trial.state is TrialState.RUNNING and trial.worker == owner[trial.number]
    store.close()


@pytest.mark.slow
def test_two_agents_expiring_at_once_record_each_crash_once(
    store_url: str, tmp_path: Path
) -> None:
    url = _shared_url(store_url)
    store = expbook.open_store(url)
    sweep = store.create_sweep("expiry", SPEC)
    stale = [_add(store, sweep.id, f"k{i}", worker=f"w{i % 3}").number for i in range(12)]
    version = store.get_sweep(sweep.id).version
    time.sleep(0.5)
    reports = _together(url, "expire", 2, tmp_path, sweep=sweep.id, stale=0.4)
    expired = [number for r in reports for number in r["expired"]]
    assert sorted(expired) == stale  # every crash reported, by one caller only
    trials = store.list_trials(sweep.id)
    assert Counter(t.state for t in trials) == {TrialState.CRASHED: 12, TrialState.QUEUED: 12}
    assert sorted(t.config_key for t in trials if t.attempt == 2) == sorted(
        f"k{i}" for i in range(12)
    )
    assert store.get_sweep(sweep.id).version == version + 1  # one expiry changed the sweep
    store.close()


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
                trial = _add(store, sweep.id, f"k{len(added)}")
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
        _add(store, sweep.id, key, state=TrialState.QUEUED)
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
