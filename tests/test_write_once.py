"""``Store.write`` applies each ``WriteBatch.batch_id`` at most once per run: a write retried
after a lost COMMIT answer (the TCP proxy of tests/pgproxy.py) adds no duplicate point, note or
run (docs/design.md, "Writes are applied exactly once"). That a batch id is applied once is
part of the store contract (tests/store_contract.py); here: the SQL store's record of the ids,
and real lost answers on PostgreSQL."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from expbook.store import RunQuery, RunSpec, Store, WriteBatch
from expbook.store.schema import applied_writes
from expbook.store.sql import KEEP_APPLIED, PRUNE_EVERY

from .pgproxy import CommitDropper
from .store_contract import check_logged, logged_batch


def _ids(store: Store, run_id: str) -> int:
    with store.engine.connect() as connection:  # type: ignore[attr-defined]
        pk = connection.scalar(sa.text("SELECT id FROM runs WHERE uuid = :u"), {"u": run_id})
        return connection.scalar(
            sa.select(sa.func.count()).where(applied_writes.c.run_id == pk)
        ) if pk is not None else 0  # fmt: skip


def test_the_recorded_ids_stay_few_and_go_with_the_run(store: Store) -> None:
    run_id = store.create_run(RunSpec(name="r")).id
    for i in range(KEEP_APPLIED + 3 * PRUNE_EVERY):
        store.write(run_id, WriteBatch(heartbeat=float(i)))
    assert _ids(store, run_id) <= KEEP_APPLIED + PRUNE_EVERY
    store.delete_runs([run_id])
    with store.engine.connect() as connection:  # type: ignore[attr-defined]
        assert connection.scalar(sa.select(sa.func.count()).select_from(applied_writes)) == 0


def test_merge_keeps_the_earlier_batch_id_and_parts_have_none() -> None:
    batch = logged_batch(0, 3, "one", batch_id="a" * 32)
    batch.merge(logged_batch(3, 6, "two", batch_id="b" * 32))
    assert batch.batch_id == "a" * 32 and len(batch.points["loss"]) == 6
    assert all(part.batch_id is None for _, part in batch.parts())


# --- PostgreSQL: the COMMIT reaches the server, its answer is lost ------------------------------


@pytest.mark.postgres
def test_a_write_whose_commit_answer_is_lost_is_applied_once(
    dropper: tuple[CommitDropper, Store],
) -> None:
    proxy, store = dropper

    def lost(call, *args):  # type: ignore[no-untyped-def]
        proxy.armed.set()
        before = proxy.dropped
        result = call(*args)
        assert proxy.dropped == before + 1  # the commit's answer really was lost
        return result

    run = lost(store.create_run, RunSpec(name="lost"))  # no id given: still one run
    assert store.count_runs(RunQuery()) == 1
    lost(store.write, run.id, logged_batch(0, 10, "one"))  # the store's own id, its own retry
    check_logged(store, run.id, 10, ["one"])
    assert store.run(run.id).params == {"p0": 0} and store.run(run.id).tags == ("t0",)
    lost(store.write, run.id, logged_batch(10, 20, "two"))  # the chunk stack knows the first
    store.write(run.id, logged_batch(20, 30, "three"))
    check_logged(store, run.id, 30, ["one", "two", "three"])


@pytest.mark.postgres
def test_the_writer_retries_a_batch_that_may_be_applied_alone_with_its_id(
    dropper: tuple[CommitDropper, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store gives up on a write whose COMMIT answer was lost (the server is unreachable
    past the writer's timeout): the writer keeps that batch and its id, and the points logged
    during the outage are written after it, not merged into it."""
    from expbook.tracking import writer as writer_module

    proxy, store = dropper
    monkeypatch.setattr(writer_module, "WRITE_TIMEOUT", 0.5)
    run_id = store.create_run(RunSpec(name="w")).id
    writer = writer_module.Writer(store, run_id, flush_interval=0.05, heartbeat_interval=60.0)
    proxy.refuse_after_drop = True
    proxy.armed.set()
    writer.submit(WriteBatch(notes=[(1.0, "one")]))
    writer.points.extend((step, None, 1000.0 + step, {"loss": float(step)}) for step in range(10))
    writer.start()
    deadline = time.monotonic() + 10
    while not proxy.refusing.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.dropped == 1  # the first batch is committed, its answer lost
    writer.points.extend(
        (step, None, 1000.0 + step, {"loss": float(step)}) for step in range(10, 20)
    )
    time.sleep(1.5)  # the store gives up at least once: the writer keeps the batch
    assert writer.error is not None
    proxy.refusing.clear()
    assert writer.close(timeout=30)
    check_logged(store, run_id, 20, ["one"])
