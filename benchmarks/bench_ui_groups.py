"""Grouped runs table benchmark: ``GET /api/runs?group_by=...`` over 10,000 runs (issue 15:
a grouped table over 10,000 runs returns within 500 ms).

    python benchmarks/bench_ui_groups.py             # builds benchmarks/out/ui-store.db once

The store is bench_ui.py's (10,000 small runs in 10 experiments: lr x batch_size x
model (an object, {"hidden": ...}) with a seed, 2 metrics each; plus 21 runs with long
series), served by a real
``expbook ui`` child process; times are wall times of HTTP requests from this process,
medians of ``--repeats``. Each request groups every run the query selects and summarises
each group's metrics with expbook.report.stats (mean, std, 95 % CI).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from bench_ui import EXPBOOK, OUT, Server, build_store, free_port, time_get

TARGET_MS = 500.0
FIRST_AFTER = 2  # seconds between the server's start and its first grouped request
CASES = {
    "group_by=params.batch_size, 2 metrics": {"group_by": "params.batch_size"},
    "group_by=lr & batch_size & model": {
        "group_by": ["params.lr", "params.batch_size", "params.model"],
        "metrics": "valid/acc,train/loss",
    },
    "group_by=* (all but seed), limit 1000": {"group_by": "*", "limit": 1000},
    "group_by=*, value=best, one experiment": {
        "group_by": "*", "value": "best", "experiment": "question 3",
    },
    "group_by=*, filtered and sorted": {
        "group_by": "*", "where": "params.lr < 0.05", "sort": "-metrics.valid/acc",
    },
    "ungrouped page (reference)": {"limit": 50},
}  # fmt: skip
FIRST = "group_by=params.batch_size, 2 metrics"


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and its descendants so far (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    family, total = {pid}, 0
    for _ in range(4):  # the launcher, its server, their children
        family |= {p for p, (parent, _) in stats.items() if parent in family}
    for member in family:
        total += stats.get(member, (0, 0))[1]
    return total / ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    store = OUT / "ui-store.db"
    if not store.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        build_store(store)
    port = free_port()
    server = Server(
        [EXPBOOK, "ui", "--store", str(store), "--port", str(port)],
        f"http://127.0.0.1:{port}",
        "/api/info",
    )
    results: dict[str, float] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            runs = client.get("/api/info").json()["runs"]
            time.sleep(FIRST_AFTER)  # a person opens the runs page, then asks for groups
            start = time.perf_counter()
            client.get("/api/runs", params=CASES[FIRST]).raise_for_status()
            first_ms = (time.perf_counter() - start) * 1000
            for label, params in CASES.items():
                before = server_cpu(server.process.pid)
                results[label], _ = time_get(client, "/api/runs", params, args.repeats)
                spent = server_cpu(server.process.pid) - before
                results[f"{label}: cpu"] = spent / (args.repeats + 1) * 1000
                page = client.get("/api/runs", params=params).json()
                results[f"{label}: groups"] = page.get("total", 0)
                results[f"{label}: runs"] = page.get("run_count", page["total"])
    finally:
        server.close()
    load = os.getloadavg()[0]
    print(f"grouped runs table (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {load:.1f}, {runs:,} runs in the store; wall: median of {args.repeats}; "
          f"cpu: the server's CPU time per request, mean)\n")  # fmt: skip
    print(f"{'first grouped request, ' + str(FIRST_AFTER) + ' s after start':<42} "
          f"{first_ms:>7,.0f} ms  ({FIRST})")  # fmt: skip
    for label in CASES:
        ms = results[label]
        verdict = ""
        if label.startswith("group_by"):
            verdict = f"target <= {TARGET_MS:.0f} ms  {'ok' if ms <= TARGET_MS else 'SLOW'}"
        size = f"{results[label + ': runs']:,} runs"
        if verdict:
            size += f", {results[label + ': groups']:,} groups"
        cpu = results[label + ": cpu"]
        print(f"{label:<42} {ms:>7,.0f} ms  cpu {cpu:>5,.0f} ms  {verdict:<24} ({size})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
