"""Autolog (docs/autolog.md), measured: what it captures of real programs, and what it costs.

    .venv/bin/python benchmarks/bench_autolog.py score      # the corpus programs, with autolog
    .venv/bin/python benchmarks/bench_autolog.py overhead   # µs per step, Lightning and HF loops

``score`` runs each corpus program of a hooked framework (tests/corpus/<name>, with the
frameworks' interpreter ``.venv-frameworks``) under ``expbook run`` and compares what the store
has with the truth the program wrote from its framework's own records: all of them, printed or
not — records captured (same key, same value), of those at the right step (or epoch, when the
truth has no step), and duplicates (a key stored twice at one step).

``overhead`` trains a tiny model for many steps (one thread) with the hooks loaded exactly as
``expbook run`` loads them (``sitecustomize`` on ``PYTHONPATH``, records written to a spool
directory) and without, alternating, and reports the difference in CPU time per step (the least
of the repeats: other processes on a busy machine only add to it), and the time spent inside
expbook's callbacks per step (measured in the loop: the number that does not drown in a busy
machine's noise).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_capture import CORPUS, FRAMEWORKS_PYTHON, _align, _placed, canonical, close  # noqa: E402

PROGRAMS = {
    "transformers": "hf_trainer",
    "lightning": "lightning_rich",
    "keras": "keras_fit",
    "xgboost": "xgboost_train",
    "lightgbm": "lightgbm_early_stopping",
    "sklearn": "sklearn_mlp_verbose",
    "tqdm": "tqdm_postfix",
}
"""The corpus program of each hooked framework."""
INJECT = ROOT / "src" / "expbook" / "integrations" / "_inject"


class Stored:
    """A stored point, as the scorer compares it."""

    def __init__(self, key: str, step: int, epoch: float | None, value: float) -> None:
        self.key, self.step, self.epoch, self.value = key, step, epoch, value


def run_program(name: str, workdir: Path, *, autolog: bool = True) -> dict:  # type: ignore[type-arg]
    """Run corpus program ``name`` under ``expbook run`` (in ``workdir``); its truth, what the
    store has (points and summary values) and the summary line's JSON."""
    folder = CORPUS / name
    spec = json.loads((folder / "corpus.json").read_text())
    command = [
        str(FRAMEWORKS_PYTHON) if word == "{python}" else
        str(folder / word) if (folder / word).is_file() else word
        for word in spec["command"]
    ]  # fmt: skip
    truth_path = workdir / f"{name}.truth.json"
    store = workdir / f"{name}.db"
    env = {**os.environ, "EXPBOOK_CORPUS_TRUTH": str(truth_path), "PYTHONHASHSEED": "0"}
    env.pop("EXPBOOK_AUTOLOG", None)
    options = ["--store", str(store), "--json"] + ([] if autolog else ["--no-autolog"])
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "expbook"), "run", *options, "--", *command],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != spec.get("exit_code", 0):
        raise RuntimeError(f"{name}: exit {done.returncode}\n{done.stderr[-3000:]}")
    summary = json.loads(done.stderr.strip().splitlines()[-1])
    return {"truth": json.loads(truth_path.read_text()), **read_store(store), "summary": summary}


def read_store(location: Path) -> dict:  # type: ignore[type-arg]
    import expbook

    with expbook.open_store(location) as store:
        run = store.run("last")
        keys = store.series_keys(run.id)
        points = []
        for key in keys:
            series = store.series(run, key)
            for step, value, epoch in zip(series.steps, series.values, series.epochs, strict=True):
                points.append(Stored(key, int(step), None if epoch != epoch else epoch, value))
        summaries = {key: m.value for key, m in run.metrics.items() if key not in keys}
        return {"points": points, "summaries": summaries, "params": dict(run.params)}


def score(truth: dict, points: list, summaries: dict) -> dict:  # type: ignore[type-arg]
    """Records captured and at the right place, over every truth point; duplicates: stored
    points that are no truth record at a step where their key has another point."""
    stored: dict[str, list[Stored]] = {}
    for point in points:
        if not point.key.startswith("model."):
            stored.setdefault(canonical(point.key), []).append(point)
    values = {canonical(k): v for k, v in summaries.items() if not k.startswith("model.")}
    records = captured = placed = 0
    used: set[int] = set()
    for key in sorted({canonical(p["key"]) for p in truth["points"]}):
        wanted = [{**p, "printed": True} for p in truth["points"] if canonical(p["key"]) == key]
        pairs = _align(wanted, stored.get(key, []))
        used.update(id(point) for point in pairs.values())
        for index, point in enumerate(wanted):
            records += 1
            found = pairs.get(index)
            final = point["step"] is None and point["epoch"] is None
            if found is None and final and key in values and close(values[key], point["value"]):
                captured, placed = captured + 1, placed + 1
            elif found is not None:
                captured, placed = captured + 1, placed + _placed(found, point)
    # A duplicate: a stored point that is no truth record, at a step its key already has.
    duplicates = 0
    for series in stored.values():
        steps = [p.step for p in series]
        duplicates += sum(1 for p in series if id(p) not in used and steps.count(p.step) > 1)
    return {"records": records, "captured": captured, "placed": placed,
            "duplicates": duplicates, "stored": len(points)}  # fmt: skip


def score_all(names: list[str]) -> dict[str, dict]:  # type: ignore[type-arg]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-autolog-") as tmp:
        for framework in names:
            result = run_program(PROGRAMS[framework], Path(tmp))
            results[framework] = {
                **score(result["truth"], result["points"], result["summaries"]),
                "hooked": result["summary"].get("autolog", []),
                "params": len(result["params"]),
            }
    return results


def report_scores(results: dict[str, dict]) -> None:  # type: ignore[type-arg]
    print(f"{'framework':<13} {'program':<24} {'records':>7} {'captured':>9} {'right step':>10} "
          f"{'duplicates':>10} {'stored':>6} {'params':>6}")  # fmt: skip
    for framework, s in results.items():
        captured = s["captured"] / s["records"] if s["records"] else 1.0
        placed = s["placed"] / s["captured"] if s["captured"] else float("nan")
        counts = f"{s['duplicates']:>10} {s['stored']:>6} {s['params']:>6}"
        print(f"{framework:<13} {PROGRAMS[framework]:<24} {s['records']:>7} {captured:>9.1%} "
              f"{placed:>10.1%} {counts}")  # fmt: skip


# --- overhead ------------------------------------------------------------------------------------

# In both loops: expbook's callbacks' hook methods, timed (the seconds spent in them).
TIME_HOOKS = """
def time_hooks(callbacks):
    # expbook's callbacks' hook methods, timed: the seconds spent in them
    spent = [0.0]
    for callback in callbacks:
        if not type(callback).__name__.startswith("Expbook"):
            continue
        for name in [n for n in dir(type(callback)) if n.startswith("on_")]:
            method = getattr(callback, name)
            def timed(*args, _method=method, **kwargs):
                started = time.perf_counter()
                try:
                    return _method(*args, **kwargs)
                finally:
                    spent[0] += time.perf_counter() - started
            setattr(callback, name, timed)
    return spent
"""

LIGHTNING_LOOP = (
    """
import sys, time, torch, lightning as L
torch.set_num_threads(1)
"""
    + TIME_HOOKS
    + """
from torch.utils.data import DataLoader, TensorDataset
class M(L.LightningModule):
    def __init__(self):
        super().__init__(); self.layer = torch.nn.Linear(8, 1)
    def training_step(self, batch, i):
        x, y = batch; loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)
steps = int(sys.argv[1])
data = TensorDataset(torch.randn(steps, 8), torch.randn(steps, 1))
trainer = L.Trainer(max_epochs=1, enable_progress_bar=False, enable_model_summary=False,
                    logger=False, enable_checkpointing=False, log_every_n_steps=50)
spent = time_hooks(trainer.callbacks)
started = time.process_time()
trainer.fit(M(), DataLoader(data, batch_size=1))
print(time.process_time() - started, spent[0])
"""
)

HF_LOOP = (
    """
import sys, time, torch
from torch.utils.data import Dataset
torch.set_num_threads(1)
"""
    + TIME_HOOKS
    + """
from transformers import Trainer, TrainingArguments, BertConfig, BertForSequenceClassification
class D(Dataset):
    def __len__(self): return int(sys.argv[1])
    def __getitem__(self, i):
        return {"input_ids": torch.tensor([1, 5, 7, 2]), "labels": torch.tensor(i % 2)}
config = BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                    intermediate_size=8, max_position_embeddings=8)
args = TrainingArguments(output_dir=sys.argv[2], per_device_train_batch_size=1,
                         num_train_epochs=1, logging_steps=1, save_strategy="no",
                         report_to="none", disable_tqdm=True, use_cpu=True)
trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=D())
spent = time_hooks(trainer.callback_handler.callbacks)
started = time.process_time()
trainer.train()
print(time.process_time() - started, spent[0])
"""
)


def overhead(name: str, code: str, steps: int, repeats: int) -> dict:  # type: ignore[type-arg]
    """Seconds per step of ``code`` with and without the hooks, alternating ``repeats`` times."""
    times: dict[str, list[float]] = {"without": [], "with": []}
    inside: list[float] = []  # seconds per step spent in expbook's callbacks
    with tempfile.TemporaryDirectory(prefix="bench-autolog-") as tmp:
        script = Path(tmp) / "loop.py"
        script.write_text(code)
        for _ in range(repeats):
            for mode in ("without", "with"):
                env = {k: v for k, v in os.environ.items() if not k.startswith("EXPBOOK")}
                if mode == "with":
                    spool = Path(tmp) / "spool"
                    spool.mkdir(exist_ok=True)
                    env.update(PYTHONPATH=str(INJECT), EXPBOOK_AUTOLOG_DIR=str(spool))
                done = subprocess.run(
                    [str(FRAMEWORKS_PYTHON), str(script), str(steps), str(Path(tmp) / "out")],
                    env=env, capture_output=True, text=True, timeout=900, check=True,
                )  # fmt: skip
                total, spent = done.stdout.strip().splitlines()[-1].split()
                times[mode].append(float(total) / steps)
                if mode == "with":
                    inside.append(float(spent) / steps)
        records = sum(1 for f in (Path(tmp) / "spool").glob("autolog-*.jsonl")
                      for _ in f.open())  # fmt: skip
    # The least CPU time of the repeats: other processes on the machine only ever add to it.
    without, with_ = min(times["without"]), min(times["with"])
    return {"loop": name, "steps": steps, "repeats": repeats, "without_us": without * 1e6,
            "with_us": with_ * 1e6, "overhead_us": (with_ - without) * 1e6,
            "in_hooks_us": min(inside) * 1e6, "in_hooks_pct": min(inside) / without * 100,
            "overhead_pct": (with_ - without) / without * 100, "records": records,
            "spread_us": (max(times["without"]) - min(times["without"])) * 1e6}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("score", help="run the corpus programs under expbook run, with autolog")
    sc.add_argument("frameworks", nargs="*", metavar="FRAMEWORK", help=", ".join(PROGRAMS))
    ov = sub.add_parser("overhead", help="µs per step with and without the hooks")
    ov.add_argument("--steps", type=int, default=1000)
    ov.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args()
    if not FRAMEWORKS_PYTHON.exists():
        raise SystemExit(f"needs {FRAMEWORKS_PYTHON} (make corpus makes it)")
    if args.command == "score":
        results = score_all(args.frameworks or list(PROGRAMS))
        report_scores(results)
    else:
        results = {}
        for name, code in (("lightning", LIGHTNING_LOOP), ("transformers", HF_LOOP)):
            result = overhead(name, code, args.steps, args.repeats)
            results[name] = result
            print(f"{name:<13} {result['steps']} steps x {result['repeats']}: "
                  f"{result['without_us']:.0f} µs/step without, {result['with_us']:.0f} with: "
                  f"{result['overhead_us']:+.1f} µs/step ({result['overhead_pct']:+.2f} %); "
                  f"in expbook's callbacks: {result['in_hooks_us']:.1f} µs/step "
                  f"({result['in_hooks_pct']:.2f} %); "
                  f"{result['records']} records; run-to-run spread without: "
                  f"{result['spread_us']:.0f} µs")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
