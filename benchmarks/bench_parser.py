"""Parser throughput on its own: ``OutputParser.feed_lines`` over the three mixes of lines
``bench_run.py`` prints (70 % log messages and 30 % progress lines; 100 % progress lines; 30 %
progress lines in four styles), without the process tree around it.

``expbook run``'s recorded rate (bench_run.py) is what users get; this one isolates the parser,
so that a change to it can be measured against the code before it on the same machine, back to
back (the recorder's rate moves with everything else on a 2-core machine):

    python benchmarks/bench_parser.py
    git worktree add /tmp/before COMMIT
    PYTHONPATH=/tmp/before/src python benchmarks/bench_parser.py
"""

from __future__ import annotations

import argparse
import time

from expbook.runner.parsers import OutputParser

STYLES = [
    lambda s, n: f"step {s} loss: {1 / s:.5f} acc: {s / n:.4f} lr: 0.001",
    lambda s, n: f"Epoch {s // 1000 + 1}/{n // 1000 + 1} - loss: {1 / s:g} - accuracy: {s / n:g}",
    lambda s, n: (
        f"{{'loss': {1 / s!r}, 'learning_rate': {s / n / 1000!r}, 'epoch': {s / 100:.2f}}}"
    ),
    lambda s, n: f"[train] it {s} | loss={1 / s:.4g} | grad_norm={s % 7 / 3:.3f} | lr=3e-4",
]


def lines(n: int, share: float, varied: bool) -> list[str]:
    """The lines bench_run.py's program prints."""
    every = round(1 / share) if share < 1 else 1
    out: list[str] = []
    step = 0
    for i in range(n):
        if i % every == 0:
            step += 1
            out.append(STYLES[step % 4](step, n) if varied else STYLES[0](step, n))
        else:
            out.append(
                f"2026-11-21 12:30:01,123 INFO data.py:42 loaded batch {i} of shard {i % 97}"
            )
    return out


def rate(text: list[str], repeats: int) -> float:
    best = 0.0
    for _ in range(repeats):
        parser = OutputParser()
        started = time.perf_counter()
        for start in range(0, len(text), 4000):  # as the recorder feeds it: in chunks
            parser.feed_lines(text[start : start + 4000])
        best = max(best, len(text) / (time.perf_counter() - started))
    return best


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--lines", type=int, default=200_000)
    options.add_argument("--repeats", type=int, default=5)
    args = options.parse_args()
    mixes = {
        "70% log / 30% progress lines": (0.3, False),
        "100% progress lines": (1.0, False),
        "70% log / 30% progress lines of four styles": (0.3, True),
    }
    for title, (share, varied) in mixes.items():
        value = rate(lines(args.lines, share, varied), args.repeats)
        print(f"{title:<46} {value:>12,.0f} lines/s")


if __name__ == "__main__":
    main()
