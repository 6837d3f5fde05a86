"""Web UI benchmark: the issue's three targets, measured in headless Chromium and over HTTP.

    python benchmarks/bench_ui.py                 # builds benchmarks/out/ui-store.db once
    python benchmarks/bench_ui.py --mlflow        # also MLflow's metric-history endpoint

1. the runs page of a store with 10,000 runs is interactive (its table drawn, its controls
   usable) within 1.5 s of navigation start;
2. ``GET /api/series`` of a 1,000,000-point series returns within 300 ms (downsampled for a
   chart; also the full million for reference);
3. the compare page of 20 runs x 4 metrics x 10,000 steps has drawn all its curves within 2 s.

The server is a real ``expbook ui`` child process; the browser is Debian's Chromium driven by
Playwright (``/usr/bin/chromium``, or ``$EXPBOOK_CHROMIUM``). Medians of ``--repeats``. With
``--mlflow``, the same 1,000,000-point history is read through an ``mlflow server``
(``/ajax-api/2.0/mlflow/metrics/get-history``, what its UI uses) — the anchor.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

OUT = Path(__file__).parent / "out"
EXPBOOK = str(Path(sys.executable).with_name("expbook"))
CHROMIUM = os.environ.get("EXPBOOK_CHROMIUM", "/usr/bin/chromium")
TARGETS = {
    "runs page": 1500.0,
    "runs page grouped by all params but seed": 1500.0,
    "experiments list with best runs": 1500.0,
    "series 1M": 300.0,
    "compare 20x4": 2000.0,
}

RUNS = 10_000
COMPARE_RUNS, COMPARE_KEYS, COMPARE_STEPS = 20, 4, 10_000
BIG_POINTS = 1_000_000


# --- the store -----------------------------------------------------------------------------------


def build_store(path: Path) -> None:
    """10,000 small runs in 10 experiments, 20 runs of 4 x 10,000 steps, one run of a
    1,000,000-point series; written straight through the Store (what the writer does)."""
    import expbook
    from expbook.store.base import RunSpec, WriteBatch
    from expbook.store.chunks import Points

    store = expbook.open_store(path)
    now = time.time()
    for number in range(RUNS):
        spec = RunSpec(
            name=f"run-{number}",
            experiment=f"question {number % 10}",
            params={
                "lr": 10 ** -(1 + number % 4),
                "batch_size": 2 ** (4 + number % 3),
                "model": {"hidden": 64 * (1 + number % 5)},
                "seed": number % 3,
            },
            tags=["grid"],
            started_at=now - RUNS + number,
        )
        run = store.create_run(spec)
        points = {}
        for key, value in (
            ("train/loss", 1 / (1 + number % 97)),
            ("valid/acc", (number % 89) / 89),
        ):
            series = Points()
            for step in range(3):
                series.append(step, value + step / 100, now, float(step))
            points[key] = series
        store.write(
            run.id, WriteBatch(points=points, update={"status": "finished", "ended_at": now})
        )
    for number in range(COMPARE_RUNS):
        run = store.create_run(
            RunSpec(
                name=f"compare-{number}", experiment="compare", params={"lr": 0.001 * (number + 1)}
            )
        )
        points = {}
        for k in range(COMPARE_KEYS):
            series = Points()
            for step in range(COMPARE_STEPS):
                series.append(step, math.exp(-step / 3000) * (k + 1) + number / 100, now, None)
            points[f"metric{k}"] = series
        store.write(
            run.id, WriteBatch(points=points, update={"status": "finished", "ended_at": now})
        )
    big = store.create_run(RunSpec(name="big", experiment="big"))
    series = Points()
    for step in range(BIG_POINTS):
        series.append(step, 1 / (1 + step) + 0.01 * math.sin(step / 50), now, None)
    store.write(
        big.id,
        WriteBatch(points={"train/loss": series}, update={"status": "finished", "ended_at": now}),
    )
    store.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``expbook ui`` (or ``mlflow server``) as a child process."""

    def __init__(self, command: list[str], url: str, ready_path: str) -> None:
        self.url = url
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + ready_path, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise SystemExit(f"{command[0]} did not start")

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


# --- measurements --------------------------------------------------------------------------------


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def time_get(client: httpx.Client, path: str, params: dict, repeats: int) -> tuple[float, int]:
    client.get(path, params=params)  # warm: the first request imports numpy
    samples, size = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        answer = client.get(path, params=params)
        samples.append(time.perf_counter() - start)
        answer.raise_for_status()
        size = len(answer.content)
    return median_ms(samples), size


def api_timings(base: str, big: int, repeats: int) -> dict[str, float]:
    with httpx.Client(base_url=base, timeout=120) as client:
        series, size = time_get(
            client, "/api/series", {"run": str(big), "key": "train/loss", "points": 2000}, repeats
        )
        full, full_size = time_get(
            client,
            "/api/series",
            {"run": str(big), "key": "train/loss", "points": BIG_POINTS},
            max(1, repeats // 3),
        )
        zoom, _ = time_get(
            client,
            "/api/series",
            {
                "run": str(big),
                "key": "train/loss",
                "points": 2000,
                "step_min": 500_000,
                "step_max": 510_000,
            },
            repeats,
        )
        page, _ = time_get(client, "/api/runs", {"limit": 50}, repeats)
        sorted_page, _ = time_get(
            client,
            "/api/runs",
            {"limit": 50, "sort": "-metrics.valid/acc", "where": "params.lr < 0.05"},
            repeats,
        )
    return {
        "series 1M": series,
        "series 1M bytes": size,
        "series 1M, all points": full,
        "series 1M, all points bytes": full_size,
        "series 1M, zoomed to 10k steps": zoom,
        "runs API page": page,
        "runs API page, filtered and sorted by a metric": sorted_page,
    }


def browser_timings(base: str, compare: list[int], repeats: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    runs_page, compare_page, grouped_page, experiments_page = [], [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for _ in range(repeats + 1):  # the first load fills the browser's cache: not counted
            page.goto(base + "/", wait_until="commit")
            page.wait_for_function(
                "() => document.querySelectorAll('tbody tr').length >= 50", timeout=30_000
            )
            runs_page.append(page.evaluate("performance.now()") / 1000)
            # the same page grouped over seeds: one row per configuration of all 10,021 runs
            page.goto(base + "/?group_by=*", wait_until="commit")
            page.wait_for_function(
                "() => document.querySelectorAll('tbody tr[data-group]').length >= 50",
                timeout=30_000,
            )
            grouped_page.append(page.evaluate("performance.now()") / 1000)
            page.goto(base + "/experiments", wait_until="commit")  # with each one's best run
            page.wait_for_function(
                "() => document.body.dataset.ready && document.querySelectorAll("
                "'tbody td.best-cell a').length >= 10",
                timeout=30_000,
            )
            experiments_page.append(page.evaluate("performance.now()") / 1000)
            query = ",".join(str(n) for n in compare)
            page.goto(f"{base}/compare?runs={query}", wait_until="commit")
            page.wait_for_function(DRAWN, arg=[COMPARE_KEYS, COMPARE_RUNS], timeout=60_000)
            compare_page.append(page.evaluate("performance.now()") / 1000)
        browser.close()
    return {
        "runs page": median_ms(runs_page[1:]),
        "runs page grouped by all params but seed": median_ms(grouped_page[1:]),
        "experiments list with best runs": median_ms(experiments_page[1:]),
        "compare 20x4": median_ms(compare_page[1:]),
    }


DRAWN = """([charts, traces]) => {
  const drawn = [...document.querySelectorAll('.js-plotly-plot')].filter(
    (gd) => gd.data && gd.data.length === traces && gd.data.every((t) => t.type === 'scattergl'
      || t.type === 'scatter') && gd._fullLayout);
  return drawn.length >= charts;
}"""


def mlflow_history(repeats: int) -> dict[str, float]:
    """The same million points read through MLflow's tracking server (its UI's endpoint)."""
    import mlflow
    from mlflow.entities import Metric

    root = OUT / "mlflow-ui"
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    marker = root / "run_id"
    if not marker.exists():
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment = client.create_experiment("bench", artifact_location=str(root / "artifacts"))
        run = client.create_run(experiment)
        now = int(time.time() * 1000)
        for start in range(0, BIG_POINTS, 1000):
            client.log_batch(
                run.info.run_id,
                metrics=[
                    Metric("train_loss", 1 / (1 + s) + 0.01 * math.sin(s / 50), now, s)
                    for s in range(start, start + 1000)
                ],
            )
        client.set_terminated(run.info.run_id)
        marker.write_text(run.info.run_id)
    run_id = marker.read_text()
    port = free_port()
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    server = Server(
        [mlflow_bin, "server", "--backend-store-uri", uri, "--port", str(port), "--workers", "1"],
        f"http://127.0.0.1:{port}",
        "/health",
    )
    try:
        with httpx.Client(base_url=server.url, timeout=600) as client:
            params = {"run_id": run_id, "metric_key": "train_loss", "max_results": BIG_POINTS}
            took, size = time_get(
                client, "/ajax-api/2.0/mlflow/metrics/get-history", params, max(1, repeats // 3)
            )
    finally:
        server.close()
    return {"MLflow get-history 1M": took, "MLflow get-history 1M bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--mlflow", action="store_true", help="also time MLflow's endpoint")
    parser.add_argument("--json", metavar="FILE")
    options = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    store = OUT / "ui-store.db"
    if not store.exists():
        print("building the store (10,000 runs, 20 x 4 x 10,000 points, 1,000,000 points)...")
        started = time.perf_counter()
        build_store(store)
        print(f"  built in {time.perf_counter() - started:.0f} s")
    port = free_port()
    server = Server(
        [EXPBOOK, "ui", "--store", str(store), "--port", str(port)],
        f"http://127.0.0.1:{port}",
        "/api/info",
    )
    try:
        import expbook
        from expbook.store.base import RunQuery

        with expbook.open_store(store) as opened:
            big = opened.run("big").number
            compare = [r.number for r in opened.runs(experiment="compare", sort="number")]
            total = opened.count_runs(RunQuery())
        results = {"runs in store": total}
        results.update(api_timings(server.url, big, options.repeats))
        results.update(browser_timings(server.url, compare, options.repeats))
    finally:
        server.close()
    if options.mlflow:
        results.update(mlflow_history(options.repeats))
    report(results)
    if options.json:
        Path(options.json).write_text(json.dumps(results, indent=2))


def report(results: dict[str, float]) -> None:
    print(
        f"expbook UI benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{results['runs in store']:,} runs in the store)\n"
    )
    for name, value in results.items():
        if name == "runs in store" or name.endswith("bytes"):
            continue
        line = f"{name:<50} {value:>9,.0f} ms"
        if name in TARGETS:
            verdict = "ok" if value <= TARGETS[name] else "MISSED"
            line += f"   target <= {TARGETS[name]:,.0f} ms  {verdict}"
        size = results.get(f"{name} bytes")
        if size:
            line += f"   ({size / 1e6:.2f} MB)"
        print(line)
    anchor = results.get("MLflow get-history 1M")
    if anchor:
        ratio = anchor / results["series 1M"]
        print(
            f"\nMLflow's UI endpoint for the same series: {anchor:,.0f} ms; "
            f"expbook {ratio:,.0f}x faster (downsampled), "
            f"{anchor / results['series 1M, all points']:,.1f}x faster (all points)"
        )


if __name__ == "__main__":
    main()
