"""The screenshots of docs/ui.md, taken from a real ``expbook ui`` in headless Chromium.

    make screenshots            # or: .venv/bin/python docs/screenshots.py [--out docs/images]

The store is made fresh in a temporary folder by real programs: ``expbook demo --seeds 3``
(4 configurations x 3 seeds of a scikit-learn MLP on digits), one run that logs 45 per-layer
keys and system keys beside its losses (for the chart panels), and a small sweep through
``expbook.sweep``. Each picture is the page as a user opens it, at 1400 x 900, in the light
theme unless its name says dark; the script fails if a page logs a console error.
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
EXPBOOK = str(Path(sys.executable).with_name("expbook"))
CHROMIUM = os.environ.get("EXPBOOK_CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1400, "height": 900}
DEMO_EXPERIMENT = "demo: hidden size x learning rate"


def build_store(folder: Path) -> Path:
    """A store with the demo's repeats, a run with many keys and a sweep."""
    store = folder / "expbook.db"
    env = {**os.environ, "EXPBOOK_STORE": str(store)}
    subprocess.run([EXPBOOK, "demo", "--seeds", "3", "--epochs", "15"], env=env, check=True,
                   cwd=folder, stdout=subprocess.DEVNULL)  # fmt: skip
    import expbook

    with expbook.start_run("resnet-probe", store=str(store), experiment="layer probe",
                           params={"lr": 0.1, "depth": 45, "seed": 0},
                           system_metrics=False) as run:  # fmt: skip
        for step in range(0, 200, 2):
            values = {
                "train/loss": 2.3 * math.exp(-step / 60) + 0.1,
                "valid/loss": 2.3 * math.exp(-step / 70) + 0.18,
                "valid/acc": 0.95 - 0.85 * math.exp(-step / 50),
                "system/gpu_util": 60 + 20 * math.sin(step / 9),
                "system/gpu_memory_gb": 11.5 + 0.01 * step,
            }
            for layer in range(45):
                values[f"layer{layer:02d}/grad_norm"] = math.exp(-step / (40 + layer)) * (
                    1 + layer / 10
                )
            run.log(values, step=step, epoch=step / 20)

    def objective(trial: Any) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        hidden = trial.suggest_int("hidden", 16, 128, step=16)
        loss = 1.0
        for epoch in range(12):
            loss = abs(math.log10(lr) + 2.2) * 0.3 + 16 / hidden + math.exp(-epoch / 3)
            trial.run.log({"valid/loss": loss}, step=epoch)
            if trial.should_prune():
                raise expbook.TrialPruned()
        return loss

    expbook.sweep(objective, metric="valid/loss", goal="minimize", trials=16, name="mlp-search",
                  experiment="tune the mlp", store=str(store), seed=1)  # fmt: skip
    return store


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(store: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [EXPBOOK, "ui", "--store", str(store), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/api/info", timeout=2):
                return process, base
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("expbook ui did not start")


def scroll_to(selector: str) -> Any:
    def action(page: Any) -> None:  # to the top of the window, below the sticky header
        page.evaluate(
            f"() => window.scrollTo(0, document.querySelector({selector!r})"
            ".getBoundingClientRect().top + window.scrollY - 60)"
        )

    return action


def click(selector: str) -> Any:
    return lambda page: page.click(selector)


def shots() -> dict[str, tuple[str, str, Any]]:
    """name -> (address, theme, what to do on the page before the picture)."""
    demo = "where=" + urllib.request.quote(f"experiment = '{DEMO_EXPERIMENT}'")
    columns = "params=model.hidden,optimizer.lr,seed&metrics=valid/acc,valid/loss,test/acc"
    grouped = "group_by=params.model.hidden&group_by=params.optimizer.lr"
    runs = ",".join(str(n) for n in range(1, 13))
    return {
        "ui-runs": (f"/?{demo}&{columns}&sort=-metrics.valid/acc", "light", None),
        "ui-runs-columns": (f"/?{demo}&{columns}", "light", click("#columns-button")),
        "ui-runs-grouped": (f"/?{demo}&{grouped}&metrics=valid/acc,test/acc", "light", None),
        "ui-run-panels": ("/runs/13", "light", scroll_to("#charts-section")),
        "ui-compare-groups": (
            f"/compare?runs={runs}&group_by=*",
            "light",
            scroll_to("#compare-controls"),
        ),
        "ui-compare-groups-table": (
            f"/compare?runs={runs}&group_by=*&metric=valid/acc",
            "light",
            scroll_to("#groups-card"),
        ),
        "ui-experiments": ("/experiments", "light", None),
        "ui-sweep": ("/sweeps/mlp-search", "light", None),
        "ui-compare-dark": (
            f"/compare?runs={runs}&group_by=*",
            "dark",
            scroll_to("#compare-controls"),
        ),
    }


def take(base: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    taken = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for name, (path, theme, action) in shots().items():
            context = browser.new_context(viewport=VIEWPORT, color_scheme=theme)
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
            page.goto(base + path)
            page.wait_for_selector("body[data-ready]", state="attached", timeout=30_000)
            if action is not None:
                action(page)
            page.wait_for_timeout(600)  # plotly's transitions
            target = out / f"{name}.png"
            page.screenshot(path=str(target))
            context.close()
            if errors:
                raise SystemExit(f"{path}: the page logged errors: {errors}")
            taken.append(target)
        browser.close()
    return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "images")
    parser.add_argument("--store", type=Path, help="use this store instead of building one")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="expbook-shots-") as folder:
        store = args.store or build_store(Path(folder))
        process, base = serve(store)
        try:
            for path in take(base, args.out):
                print(f"wrote {path} ({path.stat().st_size:,} bytes)")
        finally:
            process.terminate()
            process.wait(timeout=10)


if __name__ == "__main__":
    main()
