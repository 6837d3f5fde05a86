"""Chunk encoding and the binary-counter compaction plan (pure functions, no database)."""

from __future__ import annotations

import math
import random
from array import array

import pytest

from expbook.store.chunks import (
    CHUNK_POINTS,
    ChunkStack,
    Points,
    decode,
    encode,
    merge_sorted,
)


def make(steps: list[int], value: float = 1.0) -> Points:
    points = Points()
    for i, step in enumerate(steps):
        points.append(step, value + i, 1000.0 + i, None)
    return points


def test_encode_decode_is_bit_exact() -> None:
    points = Points()
    specials = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]
    for i, value in enumerate(specials):
        points.append(i, value, 1.7e9 + i / 3, i / 2 if i % 2 else None)
    row = encode(points)
    assert (row["n"], row["step_min"], row["step_max"], row["codec"]) == (6, 0, 5, "raw1")
    back = decode(row["codec"], row["steps"], row["vals"], row["times"], row["epochs"])
    assert back.values.tobytes() == points.values.tobytes()  # NaN payloads and -0.0 included
    assert back.times.tobytes() == points.times.tobytes()
    assert back.epochs.tobytes() == points.epochs.tobytes()
    assert list(back.steps) == list(range(6))


def test_chunks_without_epochs_store_no_epoch_column() -> None:
    row = encode(make([0, 1, 2]))
    assert row["epochs"] is None
    back = decode(row["codec"], row["steps"], row["vals"], row["times"], None)
    assert all(math.isnan(e) for e in back.epochs) and len(back.epochs) == 3


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown chunk codec 'zstd9'"):
        decode("zstd9", b"", b"", b"", None)


def test_sorted_is_stable() -> None:
    points = make([3, 1, 3, 0, 1])
    ordered = points.sorted()
    assert list(ordered.steps) == [0, 1, 1, 3, 3]
    assert list(ordered.values) == [4.0, 2.0, 5.0, 1.0, 3.0]


def test_merge_sorted_concatenates_or_merges() -> None:
    assert list(merge_sorted([make([0, 1]), make([2, 3])]).steps) == [0, 1, 2, 3]
    merged = merge_sorted([make([0, 2, 4], 10.0), make([1, 2, 3], 20.0)])
    assert list(merged.steps) == [0, 1, 2, 2, 3, 4]
    assert list(merged.values) == [10.0, 20.0, 11.0, 21.0, 22.0, 12.0]  # ties: earlier part first
    assert len(merge_sorted([])) == 0


class FakeTable:
    """Applies plans the way the SQL store does, to check the stack against its chunks."""

    def __init__(self) -> None:
        self.rows: dict[int, Points] = {}
        self.next_id = 1
        self.writes = 0

    def apply(self, stack: ChunkStack, new: Points) -> None:
        plan = stack.plan(new)
        top_id = None
        for piece in plan.inserts:
            self.rows[self.next_id] = piece
            top_id = self.next_id
            self.next_id += 1
            self.writes += len(piece)
        if plan.update is not None:
            self.rows[plan.update.id] = plan.update.points
            top_id = plan.update.id
            self.writes += len(plan.update.points)
        for row_id in plan.deletes:
            del self.rows[row_id]
        stack.commit(plan, top_id)

    def steps(self) -> list[int]:
        return list(merge_sorted(sorted(self.rows.values(), key=lambda p: p.steps[0])).steps)


def test_single_points_compact_like_a_binary_counter() -> None:
    table, stack = FakeTable(), ChunkStack()
    for step in range(7):
        table.apply(stack, make([step]))
    assert sorted(len(p) for p in table.rows.values()) == [1, 2, 4]  # 7 = 4 + 2 + 1
    assert table.steps() == list(range(7))
    for step in range(7, 8):
        table.apply(stack, make([step]))
    assert [len(p) for p in table.rows.values()] == [8]


def test_compaction_bounds_rows_and_rewrites() -> None:
    table, stack = FakeTable(), ChunkStack()
    total = CHUNK_POINTS * 3 + 123
    for step in range(total):
        table.apply(stack, make([step]))
    assert table.steps() == list(range(total))
    sizes = sorted((len(p) for p in table.rows.values()), reverse=True)
    assert sizes[:3] == [CHUNK_POINTS] * 3
    assert len(sizes) <= 3 + math.ceil(math.log2(CHUNK_POINTS)) + 1
    # each point is rewritten O(log CHUNK_POINTS) times, not O(CHUNK_POINTS)
    assert table.writes <= total * (math.log2(CHUNK_POINTS) + 2)


def test_irregular_batches_keep_every_point_once() -> None:
    rng = random.Random(7)
    table, stack = FakeTable(), ChunkStack()
    step = 0
    for _ in range(300):
        size = rng.choice([1, 1, 2, 5, 17, 300, CHUNK_POINTS + 11])
        table.apply(stack, make(list(range(step, step + size))))
        step += size
    assert table.steps() == list(range(step))
    assert all(len(p) <= CHUNK_POINTS for p in table.rows.values())
    assert sum(len(c.points) for c in stack.open) < 2 * CHUNK_POINTS  # bounded memory per series


def test_points_arrays_are_typed() -> None:
    points = make([1])
    assert isinstance(points.steps, array) and points.steps.typecode == "q"
    assert points.values.typecode == points.times.typecode == points.epochs.typecode == "d"
