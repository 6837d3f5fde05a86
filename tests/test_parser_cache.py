"""The parser's shape caches change speed only: cached and uncached parsers agree, line by line."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expbook.runner.parsers import OutputParser, Point, PointRows, Summary, _output, _progress
from tests.test_parsers import BURN_SUMMARY, HF_LOG, KERAS_LOG


def flat(events: list[Point | Summary | PointRows]) -> list[Point | Summary]:
    """The events with each PointRows as its Points."""
    return [point for event in events for point in _points(event)]


def _points(event: Point | Summary | PointRows) -> list[Point | Summary]:
    return event.points() if isinstance(event, PointRows) else [event]


def same(a: list[Point | Summary | PointRows], b: list[Point | Summary | PointRows]) -> bool:
    """Equal (PointRows as their Points), NaN equal to NaN."""
    a, b = flat(a), flat(b)
    return repr(a).replace("nan", "NaN") == repr(b).replace("nan", "NaN") if a or b else True


def assert_agree(lines: list[str], *, chunks: int = 7) -> None:
    """The cached parser line by line, and ``feed_lines`` over chunks of the lines, give what
    the uncached parser does."""
    cached, plain = OutputParser(), OutputParser(cache=False)
    expected_all: list[Point | Summary] = []
    for n, line in enumerate(lines):
        got, expected = cached.feed(line), plain.feed(line)
        assert same(got, expected), f"line {n} {line!r}: {got} != {expected}"
        expected_all += expected
    assert same(cached.close(), plain.close())
    batched, got_all = OutputParser(), []
    for start in range(0, len(lines), chunks):
        got_all += batched.feed_lines(lines[start : start + chunks])
    assert same(got_all, expected_all)


def realistic_log(seed: int, lines: int = 3000) -> list[str]:
    """Progress lines, Keras bars, log messages, dicts and summaries with random numbers."""
    rng = random.Random(seed)
    r, n = rng.random, rng.randint
    out: list[str] = []
    step = 0
    for i in range(lines):
        kind = r()
        number = rng.choice([n(0, 9), n(10, 99999), r() * 10 ** n(-6, 6)])
        lr = rng.choice(["1e-4", "0.001", "3e-05"])
        if kind < 0.25:
            step += rng.choice([1, 10, 100])
            out.append(f"step {step} loss: {r():.{n(1, 6)}f} acc: {r():.4f} lr: {lr}")
        elif kind < 0.35:
            out.append(f"Epoch {n(1, 20)}/{rng.choice([10, 20])}")
        elif kind < 0.45:
            done = rng.choice([625, n(1, 625)])
            timing = f"{n(1, 9)}s {n(1, 99)}ms/step"
            metrics = f"loss: {r():.4f} - accuracy: {r():.4f}"
            out.append(f"{done}/625 [{'=' * 10}] - {timing} - {metrics}")
        elif kind < 0.55:
            when = f"2026-11-21 12:{n(0, 59):02d}:{n(0, 59):02d},{n(0, 999):03d}"
            out.append(f"{when} INFO data.py:{n(1, 999)} loaded batch {i} of shard {number}")
        elif kind < 0.6:
            out.append(f"{{'loss': {r()}, 'learning_rate': {r() / 1e4}, 'epoch': {n(0, 30) / 4}}}")
        elif kind < 0.65:
            out.append(f"Test accuracy: {r() * 100:.2f}%")
        elif kind < 0.7:
            loss = rng.choice(["nan", "inf", "0.5", "-1e-3"])
            out.append(f"[Epoch {n(1, 9)}/10] step {step} | loss: {loss} | lr: 1e-4")
        elif kind < 0.75:
            out.append(f"iter {step} loss {r():.3f} time {r() * 100:.1f}ms")
        elif kind < 0.8:
            out.append(f"Processed {number} samples in {r():.2f}s ({n(1, 100)} it/s)")
        elif kind < 0.83:  # keys with digits: one shape, other names
            fold, top = n(0, 9), rng.choice([1, 5])
            out.append(f"fold{fold}_acc={r():.3f} top{top}={r():.3f} top{6 - top}_acc {r():.2f}")
        elif kind < 0.86:  # 0,512 is not a thousands-separated number, 1,512 is
            seen = f"{rng.choice(['0', '00', str(n(1, 999))])},{n(0, 999):03d}"
            out.append(rng.choice([f"seen={seen} loss={r():.3f}", f"Num examples = {seen}"]))
        elif kind < 0.88:
            done = rng.choice([50, n(0, 50)])
            postfix = rng.choice(["", f", loss={r():.3f}", f", loss={r():.3f}, acc={r():.2f}"])
            bar = f"{done * 2}%|{'█' * (done // 5)}| {done}/50 [00:{n(0, 59):02d}<00:00"
            out.append(f"Training: {bar}, {r() * 50:.1f}it/s{postfix}]")
        elif kind < 0.9:
            out.append(
                rng.choice(
                    [
                        f"{{'lr': {r()}, 'epochs': {n(1, 99)}, 'batch_size': {n(1, 512)}}}",
                        f"Seed: {n(0, 99999)}",
                        f"world size: {n(1, 64)}",
                        f"{{'loss': {rng.choice(['01', '11', '0x1f', '1x1f'])}, 'tags': [1]}}",
                    ]
                )
            )
        else:
            out.append(f"checkpoint saved to /ckpt/model-{step}.pt after {number} steps")
    return out


def log_in_runs(seed: int, runs: int = 300) -> list[str]:
    """Runs of 1-40 lines of one shape (numbers of fixed width), log messages between some:
    what ``feed_lines`` reads column by column, with every way a step and epoch come about."""
    rng = random.Random(seed)
    r, n = rng.random, rng.randint
    makers = [
        lambda: f"step {n(100, 999)} loss: {r():.4f} acc: {r():.4f}",
        lambda: f"step {n(100, 999)} loss: {rng.choice(['nan', 'inf', '-inf'])} acc: {r():.4f}",
        lambda: f"Epoch {n(1, 9)}/9 loss={r():.3f} acc={r():.3f}",
        lambda: f"epoch {n(1, 9)} batch {n(10, 99)} loss={r():.3f} acc={r():.3f}",
        lambda: f"batch {n(10, 99)} loss={r():.3f}",
        lambda: f"loss={r():.3f} acc={r():.3f}",  # at the step and epoch of the context
        lambda: f"Epoch {n(1, 9)}/9",
        lambda: f"step {n(100, 999)} loss={r():.3f} loss={r():.3f} acc={r():.3f}",
        lambda: f"epoch {'9' * 30} loss={r():.3f} acc={r():.3f}",
        lambda: f"625/625 [==========] - {n(1, 9)}s - loss: {r():.4f} - accuracy: {r():.4f}",
        lambda: (f"100%|██████████| 50/50 [00:{n(10, 59)}<00:00, {n(10, 99)}.{n(0, 9)}it/s, "
                 f"loss={r():.3f}]"),
        lambda: (f"2026-11-21 12:{n(10, 59)}:{n(10, 59)},{n(100, 999)} INFO train.py:{n(10, 99)} "
                 f"step {n(100, 999)} loss={r():.3f} acc={r():.3f}"),
        lambda: f"Test accuracy: {r() * 100:.2f}%",
    ]  # fmt: skip
    out: list[str] = []
    for _ in range(runs):
        make = rng.choice(makers)
        for _ in range(n(1, 40)):
            out.append(make())
            if r() < 0.2:
                out.append(f"loaded batch {n(100, 999)} of shard {n(10, 99)}")
    return out


def test_long_runs_of_one_shape_agree() -> None:
    for seed in range(4):
        for chunks in (5, 64, 1000):
            assert_agree(log_in_runs(seed), chunks=chunks)


def test_the_shared_corpora_agree() -> None:
    assert_agree(KERAS_LOG.splitlines() * 3)
    assert_agree(HF_LOG.splitlines() * 3)
    assert_agree([*BURN_SUMMARY.splitlines(), "epoch 1/3 loss=0.5 acc=0.1"] * 3)


def test_randomised_realistic_logs_agree() -> None:
    for seed in range(12):
        assert_agree(realistic_log(seed))


def test_lines_of_one_shape_with_other_keys_or_zeros_agree() -> None:
    assert_agree(
        [
            "fold1_acc=0.5 fold1_loss=0.25",
            "fold2_acc=0.6 fold2_loss=0.75",
            "epoch 1 top1=0.5 top5=0.75",
            "epoch 2 top5=0.8 top1=0.625",
            "epoch 3 top1_acc 0.5",
            "epoch 4 top5_acc 0.75",
            "samples=1,512 loss=0.5",
            "samples=0,512 loss=0.5",
            "samples=1,512 loss=0.5",
            "Num examples = 0,512",
            "Num examples = 1,512",
            "Num examples = 0,512",
            "step 3 seen: 0,000,512 acc=0.5",
            "step 4 seen: 1,000,512 acc=0.5",
            "{'loss': 01, 'tags': [1]}",  # a Python literal: 01 is not a number, 11 is
            "{'loss': 11, 'tags': [1]}",
            "{'loss': 0x1f, 'tags': [1]}",
            "{'loss': 1x1f, 'tags': [1]}",
            "{'loss': 0x1f, 'tags': [1]}",
        ]
    )


def test_long_lines_and_keys_are_not_cached() -> None:
    parser = OutputParser()
    padding = " ".join(["word"] * 200)
    lines = [
        f"loaded shard 12 {padding}",
        f"epoch 1 loss=0.5 {padding}",
        f"epoch 1 {'k' * 600}=0.5 loss=0.25",
        "loaded shard 12",  # short: kept
    ]
    for line in lines:
        parser.feed(line)
    assert len(parser._quiet or ()) == 1
    assert all(len(shape) <= 512 for shape in parser._progress._plans)
    assert all(len(key) <= 512 for key in parser._progress._keys)
    assert_agree(lines * 2)


def test_the_caches_are_cleared_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_output, "_SHAPE_CACHE_SIZE", 8)
    monkeypatch.setattr(_progress, "_KEY_CACHE_SIZE", 8)
    parser = OutputParser()
    words = [f"{a}{b}" for a in "abcdefgh" for b in "abcdefgh"]
    for word in words:
        parser.feed(f"loaded {word} 12")
        parser.feed(f"epoch 1 {word}=0.5 loss=0.25")
        assert len(parser._quiet or ()) <= 8
        assert len(parser._progress._plans) <= 8
        assert len(parser._progress._keys) <= 8


WORDS = st.sampled_from(
    ["loss", "acc", "epoch", "step", "lr", "Epoch", "val_loss", "batch", "iter", "it",
     "train.py", "INFO", "Total params", "Test accuracy", "time", "ETA", "top1", "top5_acc",
     "fold2_loss", "acc@1", "Seed", "{'lr'", "'epoch'", "Training"]
)  # fmt: skip
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)
NUMBERS = st.one_of(
    st.integers(-10_000, 10_000_000).map(str),
    FLOATS.map(lambda x: repr(x) if math.isfinite(x) else str(x)),
    st.sampled_from(["1e-4", "3.5%", "12:30:45", "9/10", "625/625", "1,234", "0.5s", "0,512",
                     "1,512", "00,512", "10,512", "0,000,000", "100%|", "45%|"]),
)  # fmt: skip
SEPARATORS = st.sampled_from([": ", "=", " ", " | ", " - ", ", ", "/", " [", "}"])
TOKENS = st.one_of(WORDS, NUMBERS, SEPARATORS)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(TOKENS, min_size=1, max_size=14).map("".join), min_size=1, max_size=40),
    st.integers(1, 60),
)
def test_generated_lines_agree(lines: list[str], chunks: int) -> None:
    # Each line again with its digits changed, so shapes repeat and the caches are used: every
    # digit one up (0 becomes 1, 9 becomes 0), and every digit a zero.
    varied = [line.translate(str.maketrans("0123456789", "1234567890")) for line in lines]
    zeroed = [line.translate(str.maketrans("123456789", "000000000")) for line in lines]
    assert_agree(lines + varied + lines + zeroed + varied, chunks=chunks)
