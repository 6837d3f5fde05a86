"""What ``expbook run`` captures from real programs, measured against the frameworks' own records.

    python benchmarks/bench_capture.py                    # score the committed corpus
    python benchmarks/bench_capture.py --json out.json    # ... and write the numbers
    python benchmarks/bench_capture.py capture NAME ...   # re-run programs, write their captures
    python benchmarks/bench_capture.py capture --all

The corpus is ``tests/corpus/`` (its README says what a program's folder holds). Scoring replays
each capture through the recorder's own reading path (``expbook.runner.replay``) and compares
the points it would store with the truth the program wrote from its framework's records:

- recall: printed truth points that were captured (same key, same value as printed);
- at the right place: of those, the share stored at the truth's step (or epoch);
- precision: stored points that are some truth point (printed or not);
- false keys: stored keys that are no truth key (a setting or a count read as a metric).

Capturing runs each program under the real launcher (``expbook.runner.launch.Launch``, without a
recorder), once with pipes and once on a 120x40 pseudo-terminal, and keeps the spool's frames.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
FRAMEWORKS_PYTHON = ROOT / ".venv-frameworks" / "bin" / "python"
MODES = ("pipe", "terminal")
REL_TOLERANCE = 5e-3
ABS_TOLERANCE = 1e-4
_SYNONYMS = (("validation", "val"), ("valid", "val"), ("accuracy", "acc"))
FACTS = "model."
"""Keys of facts about the model that expbook stores on purpose (parameter counts read from
model-summary tables): not metrics, so neither scored nor counted as false keys."""


# --- scoring -------------------------------------------------------------------------------------


def canonical(key: str) -> str:
    """A key without case and separators, with common synonyms folded (``val_acc`` and
    ``validation/accuracy`` are one key)."""
    text = key.lower()
    for long, short in _SYNONYMS:
        text = text.replace(long, short)
    return re.sub(r"[^a-z0-9]", "", text)


def agrees(value: float, truth_point: dict) -> bool:  # type: ignore[type-arg]
    """Whether a stored value is the truth point's value as printed: within the tolerance, or
    to the decimals printed when the truth says how many (``"digits": 2``: 0.0155 printed as
    0.02)."""
    digits = truth_point.get("digits")
    if digits is not None and not math.isnan(value):
        return abs(value - truth_point["value"]) <= 0.5 * 10.0**-digits * (1 + 1e-9)
    return close(value, truth_point["value"])


def close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(ABS_TOLERANCE, REL_TOLERANCE * abs(b))


@dataclass
class Score:
    printed: int = 0  # printed truth points
    captured: int = 0  # of those, captured
    placed: int = 0  # of those, at the right step/epoch
    stored: int = 0  # points the recorder would store
    true_stored: int = 0  # of those, some truth point
    false_keys: list[str] = field(default_factory=list)
    missed_keys: list[str] = field(default_factory=list)

    def add(self, other: Score) -> None:
        for name in ("printed", "captured", "placed", "stored", "true_stored"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.false_keys += other.false_keys
        self.missed_keys += other.missed_keys

    @property
    def recall(self) -> float:
        return self.captured / self.printed if self.printed else 1.0

    @property
    def precision(self) -> float:
        return self.true_stored / self.stored if self.stored else 1.0

    @property
    def place(self) -> float:
        """Of the captured points, the share at the right place (NaN when none was captured)."""
        return self.placed / self.captured if self.captured else math.nan


def score(truth: dict, points: list, summaries: dict | None = None) -> Score:  # type: ignore[type-arg]
    """Score what the recorder would store — parsed points (``ParsedPoint``) and summary
    values (key -> fields) — against the truth of one capture.

    Per key, the stored points (in step order when all have a step, as a series is kept) are
    aligned with the truth points in order (an alignment that
    captures the most printed points, then puts the most at the right step), so a value never
    pairs with a neighbour it merely resembles. A truth point without step and epoch (a final
    result) is captured by a summary value of its key, too."""
    result = Score()
    truth_points = truth["points"]
    if truth.get("placement") == "epoch":  # the step is not printed: placed by the epoch
        truth_points = [{**p, "_by_epoch": True} for p in truth_points]
    trials = "trials" in truth  # several trials in one output (below)
    if trials:
        truth_points = sorted(truth_points, key=_step_then_value)
    points = [p for p in points if not p.key.startswith(FACTS)]
    summaries = {k: v for k, v in (summaries or {}).items() if not k.startswith(FACTS)}
    stored: dict[str, list] = {}  # type: ignore[type-arg]
    for point in points:
        stored.setdefault(canonical(point.key), []).append(point)
    for key, series in stored.items():  # in step order, as the store keeps a series
        if all(point.step is not None for point in series):
            order = _step_then_value if trials else (lambda point: point.step)
            stored[key] = sorted(series, key=order)  # type: ignore[arg-type]
    values = {canonical(key): fields["value"] for key, fields in (summaries or {}).items()}
    truth_keys = {canonical(p["key"]) for p in truth_points}
    matched = 0
    for key in sorted(truth_keys):
        wanted = [p for p in truth_points if canonical(p["key"]) == key]
        pairs = _align(wanted, stored.get(key, []))
        matched += len(pairs)
        for index, truth_point in enumerate(wanted):
            if not truth_point.get("printed", True):
                continue
            result.printed += 1
            found = pairs.get(index)
            final = truth_point.get("step") is None and truth_point.get("epoch") is None
            if (
                found is None
                and final
                and key in values
                and close(values[key], truth_point["value"])
            ):
                result.captured += 1
                result.placed += 1
                matched += 1
                values.pop(key)
                continue
            if found is None:
                continue
            result.captured += 1
            result.placed += _placed(found, truth_point)
        if key not in stored and key not in values and any(p.get("printed", True) for p in wanted):
            result.missed_keys.append(key)
    # A summary value left over is still true when it is some value of its key (the final
    # `train_loss` of a run, printed again in a closing table).
    for key, value in values.items():
        if any(canonical(p["key"]) == key and close(value, p["value"]) for p in truth_points):
            matched += 1
    result.stored = len(points) + len(summaries or {})
    result.true_stored = min(matched, result.stored)
    stored_keys = {p.key for p in points} | set(summaries or {})
    result.false_keys = sorted(k for k in stored_keys if canonical(k) not in truth_keys)
    return result


def _step_then_value(point: object) -> tuple[float, float]:
    """The order of a series of several trials (a truth with ``"trials"``: Ray Tune's): by
    step, then by value. The trials' reports at one step are printed in whatever order their
    workers ran; ordering them by value on both sides aligns each stored value with the
    trial's report it equals, not with its neighbour in the print order."""
    step = point.get("step") if isinstance(point, dict) else point.step  # type: ignore[attr-defined]
    value = point["value"] if isinstance(point, dict) else point.value  # type: ignore[attr-defined]
    return (math.inf if step is None else step, value)


def _align(wanted: list, candidates: list) -> dict:  # type: ignore[type-arg]
    """An order-preserving matching of truth points to stored points of one key (close
    values only) that maximises printed matches, then matches at the right place, then any
    matches: {truth index: stored point}."""
    n, m = len(wanted), len(candidates)
    if not n or not m:
        return {}
    weight = [[0] * m for _ in range(n)]
    for i, truth_point in enumerate(wanted):
        printed = 1_000_000 if truth_point.get("printed", True) else 0
        for j, point in enumerate(candidates):
            if agrees(point.value, truth_point):
                weight[i][j] = printed + 1_000 * _placed(point, truth_point) + 1
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = best[i], best[i + 1]
        for j in range(m - 1, -1, -1):
            take = weight[i][j] + below[j + 1] if weight[i][j] else 0
            row[j] = max(below[j], row[j + 1], take)
    pairs = {}
    i = j = 0
    while i < n and j < m:
        if weight[i][j] and best[i][j] == weight[i][j] + best[i + 1][j + 1]:
            pairs[i] = candidates[j]
            i, j = i + 1, j + 1
        elif best[i][j] == best[i + 1][j]:
            i += 1
        else:
            j += 1
    return pairs


def _placed(point, truth_point: dict) -> bool:  # type: ignore[no-untyped-def, type-arg]
    """Whether a stored point is where the truth has it: at its step when the truth has one
    (and the program prints it: a truth with ``"placement": "epoch"`` says it does not), else
    at its epoch (a point without an epoch by its step, for a per-epoch series)."""
    if truth_point.get("step") is not None and not truth_point.get("_by_epoch"):
        return point.step == truth_point["step"]
    if truth_point.get("epoch") is not None:
        epoch = point.epoch if point.epoch is not None else point.step
        return epoch is not None and abs(epoch - truth_point["epoch"]) < 1e-6
    return True


def detail(truth: dict, points: list, summaries: dict) -> None:  # type: ignore[type-arg]
    """Print, key by key, each truth point (``+`` captured at its place, ``~`` captured at
    another step, ``-`` missed, ``.`` not printed) and each stored point that is no truth
    point (``!``): what to fix next."""
    truth_points = truth["points"]
    stored: dict[str, list] = {}  # type: ignore[type-arg]
    for point in points:
        if not point.key.startswith(FACTS):
            stored.setdefault(canonical(point.key), []).append(point)
    if "trials" in truth:  # as score() orders several trials' series
        truth_points = sorted(truth_points, key=_step_then_value)
        for key, series in stored.items():
            if all(point.step is not None for point in series):
                stored[key] = sorted(series, key=_step_then_value)
    values = {
        canonical(k): (k, f["value"]) for k, f in summaries.items() if not k.startswith(FACTS)
    }
    keys = sorted({canonical(p["key"]) for p in truth_points} | set(stored) | set(values))
    for key in keys:
        wanted = [p for p in truth_points if canonical(p["key"]) == key]
        found = stored.get(key, [])
        pairs = _align(wanted, found)
        print(f"== {key}: {len(wanted)} truth, {len(found)} stored"
              + (f", summary {values[key][1]!r}" if key in values else ""))  # fmt: skip
        for index, t in enumerate(wanted):
            hit = pairs.get(index)
            mark = "." if not t.get("printed", True) else "-" if hit is None else (
                "+" if _placed(hit, t) else "~")  # fmt: skip
            got = "" if hit is None else f"  <- step={hit.step} epoch={hit.epoch}"
            print(f"  {mark} step={t.get('step')} epoch={t.get('epoch')} {t['value']!r}{got}")
        used = {id(point) for point in pairs.values()}
        for point in found:
            if id(point) not in used:
                print(f"  ! {point.key} step={point.step} epoch={point.epoch} {point.value!r}")


def programs() -> list[Path]:
    return sorted(p.parent for p in CORPUS.glob("*/corpus.json"))


def score_corpus() -> dict[str, dict[str, Score]]:
    from expbook.runner.replay import read_capture, replay

    results: dict[str, dict[str, Score]] = {}
    for folder in programs():
        for mode in MODES:
            capture, truth = folder / f"{mode}.jsonl", folder / f"{mode}.truth.json"
            if not capture.exists() or not truth.exists():
                continue
            replayed = replay(read_capture(capture))
            results.setdefault(folder.name, {})[mode] = score(
                json.loads(truth.read_text()), replayed.points, replayed.summaries
            )
    return results


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1%}"


def report(results: dict[str, dict[str, Score]]) -> dict[str, dict[str, float]]:
    columns = f"{'recall':>7} {'placed':>7} {'precision':>9}"
    header = f"{'program':<28} {'mode':<9} {columns}  false keys"
    print(header)
    print("-" * len(header))
    totals = {mode: Score() for mode in MODES}
    for name, modes in results.items():
        for mode, s in modes.items():
            totals[mode].add(s)
            false = ", ".join(s.false_keys[:4]) + (" ..." if len(s.false_keys) > 4 else "")
            numbers = f"{s.recall:>7.1%} {_percent(s.place):>7} {s.precision:>9.1%}"
            print(f"{name:<28} {mode:<9} {numbers}  {false}")
    print("-" * len(header))
    summary = {}
    for mode, s in totals.items():
        print(f"{'all programs':<28} {mode:<9} {s.recall:>7.1%} {s.place:>7.1%} "
              f"{s.precision:>9.1%}  {len(set(s.false_keys))} false keys; "
              f"{s.captured}/{s.printed} printed points, {s.stored} stored")  # fmt: skip
        summary[mode] = {"recall": s.recall, "placed": s.place, "precision": s.precision,
                         "printed": s.printed, "stored": s.stored}  # fmt: skip
    return summary


# --- capturing -----------------------------------------------------------------------------------


def capture(folder: Path, python: Path) -> None:
    """Run the program of ``folder`` in both modes; write its captures and truths."""
    spec = json.loads((folder / "corpus.json").read_text())
    command = [str(python) if word == "{python}" else word for word in spec["command"]]
    for mode in MODES:
        with tempfile.TemporaryDirectory(prefix="corpus-") as tmp:
            truth = Path(tmp) / "truth.json"
            env = {**os.environ, "EXPBOOK_CORPUS_TRUTH": str(truth), "PYTHONHASHSEED": "0",
                   "EXPBOOK_SPOOL_ROOT": tmp, "COLUMNS": "120", "LINES": "40"}  # fmt: skip
            env.pop("EXPBOOK_STORE", None)
            worker = [sys.executable, str(Path(__file__).resolve()), "_launch", tmp, *command]
            if mode == "pipe":
                done = subprocess.run(worker, cwd=folder, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      timeout=spec.get("timeout", 600), check=False)  # fmt: skip
                code = done.returncode
            else:
                code = _on_terminal(worker, folder, env)
            if code != spec.get("exit_code", 0):  # a crash would be committed as the corpus
                problem = f"exit status {code}, not {spec.get('exit_code', 0)}; nothing written"
                raise SystemExit(f"{folder.name} ({mode}): {problem}")
            if not truth.exists():
                problem = f"the program wrote no truth (exit {code})"
                raise SystemExit(f"{folder.name} ({mode}): {problem}")
            shutil.copy(truth, folder / f"{mode}.truth.json")
            shutil.copy(Path(tmp) / "capture.jsonl", folder / f"{mode}.jsonl")
        print(f"captured {folder.name} ({mode}, exit {code})")


def _on_terminal(worker: list[str], folder: Path, env: dict[str, str]) -> int:
    import fcntl
    import pty
    import struct
    import termios

    pid, master = pty.fork()
    if pid == 0:
        os.chdir(folder)
        os.execve(worker[0], worker, env)
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    while True:
        try:
            if not os.read(master, 1 << 16):
                break
        except OSError:
            break
    _, status = os.waitpid(pid, 0)
    os.close(master)
    return os.waitstatus_to_exitcode(status)


def _launch(root: str, command: list[str]) -> int:
    """In the worker: run ``command`` under the real launcher, without a recorder, and keep
    the spool's frames as ``ROOT/capture.jsonl``."""
    from expbook.runner.launch import Launch
    from expbook.runner.replay import spool_chunks, write_capture

    class CaptureLaunch(Launch):
        def _start_recorder(self) -> bool:
            return False

    launch = CaptureLaunch({"no_wait": True, "quiet": True}, command,
                           f"sqlite:///{root}/unused.db")  # fmt: skip
    code = launch.run()
    assert launch.spool is not None
    write_capture(Path(root) / "capture.jsonl", spool_chunks(launch.spool))
    return code


def main() -> None:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if sys.argv[1:2] == ["_launch"]:
        sys.exit(_launch(sys.argv[2], sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    cap = sub.add_parser("capture", help="re-run corpus programs and write their captures")
    cap.add_argument("names", nargs="*")
    cap.add_argument("--all", action="store_true")
    cap.add_argument("--python", type=Path, default=FRAMEWORKS_PYTHON)
    det = sub.add_parser("detail", help="show, point by point, what one capture gets right")
    det.add_argument("name")
    det.add_argument("--mode", choices=MODES, default="pipe")
    parser.add_argument("--json", metavar="FILE", help="also write the totals as JSON")
    parser.add_argument("--scores", metavar="FILE",
                        help="also write each program's scores (the floor tests/test_corpus.py "
                        "checks: tests/corpus/scores.json)")  # fmt: skip
    args = parser.parse_args()
    if args.command == "capture":
        folders = programs() if args.all else [CORPUS / name for name in args.names]
        for folder in folders:
            capture(folder, args.python)
        return
    if args.command == "detail":
        from expbook.runner.replay import read_capture, replay

        folder = CORPUS / args.name
        replayed = replay(read_capture(folder / f"{args.mode}.jsonl"))
        truth = json.loads((folder / f"{args.mode}.truth.json").read_text())
        detail(truth, replayed.points, replayed.summaries)
        return
    results = score_corpus()
    summary = report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    if args.scores:
        scores = {
            name: {
                mode: {
                    "recall": round(s.recall, 6),
                    "placed": round(s.place, 6),
                    "precision": round(s.precision, 6),
                }
                for mode, s in modes.items()
            }
            for name, modes in results.items()
        }
        Path(args.scores).write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
