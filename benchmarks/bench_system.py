"""The system-metrics sampler's CPU cost (docs/system.md; target: < 1 % of one core at 10 s).

1. Per sample: CPU time of one ``SystemSampler`` sample (psutil over a process tree of a
   parent and four children, host counters, NVML where there is a GPU, the coarsener and the
   batch handed to the writer), measured with ``time.thread_time`` over many samples.
2. End to end: the CPU time of a process that holds a run open for a while, idle, with
   system metrics on (sampling every second, ten times the default rate) and off; the
   difference per second, divided by ten, is the cost at the default interval.

    .venv/bin/python benchmarks/bench_system.py [--samples 300] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from expbook.system.readings import ProcessTree
from expbook.system.sampler import DEFAULT_INTERVAL, SystemSampler

CHILD = "import time; time.sleep(600)"
IDLE_RUN = """
import os, resource, sys, time, expbook
on = sys.argv[2] == "on"
with expbook.start_run("bench", store=sys.argv[1], system_metrics=on, system_metrics_interval=1):
    start = time.process_time()
    time.sleep(float(sys.argv[3]))
    print(time.process_time() - start)
"""


def per_sample(count: int) -> list[float]:
    children = [subprocess.Popen([sys.executable, "-c", CHILD]) for _ in range(4)]
    try:
        sampler = SystemSampler(lambda batch: None, started=time.time(),
                                tree=ProcessTree(os.getpid()))  # fmt: skip
        sampler.readings.open()
        sampler.sample()  # the first sample has no rates: not timed
        costs = []
        for _ in range(count):
            before = time.thread_time()
            sampler.sample()
            costs.append(time.thread_time() - before)
        sampler.readings.close()
        print(f"GPUs: {sampler.readings.gpu_status}")
        return costs
    finally:
        for child in children:
            child.kill()
            child.wait()


def end_to_end(seconds: float) -> tuple[float, float]:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("off", "on", "off", "on"):
            store = os.path.join(folder, f"{mode}.db")
            out = subprocess.run([sys.executable, "-c", IDLE_RUN, store, mode, str(seconds)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            results.setdefault(mode, []).append(float(out.stdout.strip().splitlines()[-1]))
    return min(results["off"]), min(results["on"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    costs = per_sample(args.samples)
    median = statistics.median(costs)
    p95 = sorted(costs)[int(0.95 * len(costs))]
    print(f"per sample: median {median * 1e3:.2f} ms CPU, p95 {p95 * 1e3:.2f} ms "
          f"({len(costs)} samples, tree of 5 processes)")  # fmt: skip
    print(f"  at the default {DEFAULT_INTERVAL:g} s: {100 * median / DEFAULT_INTERVAL:.3f} % "
          f"of one core (p95 {100 * p95 / DEFAULT_INTERVAL:.3f} %)")  # fmt: skip
    off, on = end_to_end(args.seconds)
    extra = max(on - off, 0.0) / args.seconds
    print(f"end to end, idle run held {args.seconds:g} s (least of 2): CPU {off:.3f} s off, "
          f"{on:.3f} s on at 1 s")  # fmt: skip
    print(f"  {100 * extra:.3f} % of one core at 1 s -> {100 * extra / DEFAULT_INTERVAL:.3f} % "
          f"at the default {DEFAULT_INTERVAL:g} s")  # fmt: skip


if __name__ == "__main__":
    main()
