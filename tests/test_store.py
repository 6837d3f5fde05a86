"""The store contract (tests/store_contract.py) on SQLite and on PostgreSQL, and what only the
SQL store promises: how series are laid out in chunk rows, and that a deleted run leaves no row.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from expbook.store import RunSpec, Store, WriteBatch, schema
from expbook.store.chunks import CHUNK_POINTS
from expbook.store.schema import chunks

from .store_contract import StoreContract, points


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return str(tmp_path / "store" / "expbook.db")


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture
    def location(self, postgres_url: str) -> str:
        return postgres_url


# --- the SQL store's own layout (the ``store`` fixture of conftest.py: SQLite and PostgreSQL) ---


def _chunk_count(store: Store, run_number: int) -> int:
    with store.engine.connect() as connection:  # type: ignore[attr-defined]
        return connection.scalar(
            sa.select(sa.func.count()).select_from(chunks).where(chunks.c.run_id == run_number)
        )


class TestSqlInternals:
    def test_many_small_flushes_compact_into_few_chunks(self, store: Store) -> None:
        run = store.create_run(RunSpec())
        total = CHUNK_POINTS + 300
        for step in range(total):
            store.write(run.id, WriteBatch(points={"loss": points([step * 0.5], start=step)}))
        series = store.series(run.id, "loss")
        assert list(series.steps) == list(range(total))
        assert list(series.values) == [s * 0.5 for s in range(total)]
        # one full chunk plus a binary-counter stack for the 300 remaining points (<= 9 chunks)
        assert _chunk_count(store, run.number) <= 1 + 9

    def test_a_big_batch_is_split_into_full_chunks(self, store: Store) -> None:
        run = store.create_run(RunSpec())
        n = CHUNK_POINTS * 3 + 17
        store.write(run.id, WriteBatch(points={"loss": points([float(i) for i in range(n)])}))
        assert _chunk_count(store, run.number) == 4
        assert len(store.series(run.id, "loss")) == n

    def test_a_deleted_run_leaves_no_row(self, store: Store) -> None:
        parent = store.create_run(RunSpec(name="train", params={"lr": 1}, tags=["t"]))
        store.create_run(RunSpec(name="eval", parent=parent.id, kind="eval"))
        store.write(parent.id, WriteBatch(points={"loss": points([1.0, 2.0])}, notes=[(1.0, "n")],
                                          attachments={"a": b"x"}))  # fmt: skip
        assert store.delete_runs([parent.id]) == 1
        with store.engine.connect() as connection:  # type: ignore[attr-defined]
            for table in (schema.params, schema.tags, schema.notes, schema.metric_summaries,
                          schema.chunks, schema.attachments):  # fmt: skip
                left = connection.scalar(sa.select(sa.func.count()).select_from(table))
                assert left == 0, table.name


def test_merged_batches_keep_a_rewrite_and_what_follows_it() -> None:
    first = WriteBatch(points={"cpu": points([1.0, 2.0])})
    first.merge(WriteBatch(replaced={"cpu": points([1.5])}))  # drops the points queued before
    first.merge(WriteBatch(points={"cpu": points([3.0], start=5)}))  # kept, after the rewrite
    assert list(first.replaced["cpu"].values) == [1.5]
    assert list(first.points["cpu"].values) == [3.0]
    assert first.point_count() == 2
    rebuilt = WriteBatch()
    for _, part in first.parts():  # split and merged back (the writer's bisection) is the same
        rebuilt.merge(part)
    assert list(rebuilt.replaced["cpu"].values) == [1.5]
    assert list(rebuilt.points["cpu"].values) == [3.0]
