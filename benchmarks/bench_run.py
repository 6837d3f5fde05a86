"""``expbook run`` benchmark: start-up overhead and output throughput, next to Guild AI.

    python benchmarks/bench_run.py                       # expbook only
    python benchmarks/bench_run.py --guild .venv-guild/bin/guild

Guild AI's ``guild run`` is the closest anchor (it runs a script without code changes and
parses "output scalars" from what it prints); it pins its own dependencies, so it lives in a
virtualenv of its own: ``python -m venv .venv-guild && .venv-guild/bin/pip install guildai``.

Measurements (medians), each command a fresh process of this one process tree:

- start-up: how much later a program starts under ``expbook run`` than alone (the program,
  ``sh -c 'date +%s.%N > FILE'``, writes the time it started); of a trivial Python script under
  ``expbook run`` and ``guild run`` minus the script alone (whole commands). Between two
  measurements the previous run's recorder is let finish, so recorders don't pile up.
- end cost: ``expbook run`` returns only once the run is stored (issue 10): the whole wall time
  of ``expbook run -q -- true`` against ``true`` alone (and with ``--no-wait``, which returns
  when the program ends), and for the throughput workloads the time from the program's last
  line to ``expbook run``'s return.
- throughput: a Python program prints N lines (70% log messages, 30% progress lines with
  metrics; a variant with 100% progress lines; and one whose progress lines come in four
  styles in turn — ``step``, Keras-like, Hugging Face dicts, ``key=value`` with ``|`` — with
  numbers of varying widths, so lines of one shape rarely follow each other, as in real
  logs), ``--repeats`` times. Measured: the program
  alone (to /dev/null); under ``expbook run``, until the program itself has printed its last
  line (what the program experiences: it writes ``time.time()`` to a file as it ends), until
  ``expbook run`` returns (once the run is stored), and until the run is completely recorded
  (every line parsed and stored, the spool removed: the target is on this one); and through
  ``guild run``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import compile_package

EXPBOOK = str(Path(sys.executable).with_name("expbook"))
TARGET_STARTUP_MS = 60.0
TARGET_LINES_PER_S = 200_000

PROGRAM = """
import argparse, sys
parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=1000)
parser.add_argument("--share", type=float, default=0.3)
parser.add_argument("--done", default="")
parser.add_argument("--varied", action="store_true")
options = parser.parse_args()
n, progress_share = options.n, options.share
out = sys.stdout
every = round(1 / progress_share) if progress_share < 1 else 1
step = 0
styles = [  # --varied: four styles in turn, numbers of varying widths (many line shapes)
    lambda s: f"step {s} loss: {1 / s:.5f} acc: {s / n:.4f} lr: 0.001",
    lambda s: f"Epoch {s // 1000 + 1}/{n // 1000 + 1} - loss: {1 / s:g} - accuracy: {s / n:g}",
    lambda s: f"{{'loss': {1 / s!r}, 'learning_rate': {s / n / 1000!r}, 'epoch': {s / 100:.2f}}}",
    lambda s: f"[train] it {s} | loss={1 / s:.4g} | grad_norm={s % 7 / 3:.3f} | lr=3e-4",
]
for i in range(n):
    if i % every == 0:
        step += 1
        if options.varied:
            out.write(styles[step % 4](step) + "\\n")
        else:
            out.write(f"step {step} loss: {1 / step:.5f} acc: {step / n:.4f} lr: 0.001\\n")
    else:
        out.write(f"2026-11-21 12:30:01,123 INFO data.py:42 loaded batch {i} of shard {i % 97}\\n")
out.flush()
if options.done:
    import time
    with open(options.done, "w") as done:
        done.write(repr(time.time()))
"""


def wall(
    command: list[str], *, env: dict[str, str] | None = None, cwd: str | None = None
) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, env=env, cwd=cwd, check=True)
    return time.perf_counter() - start


def wait_recorded(spool: Path, timeout: float = 600) -> float:
    """Until the recorder of the last run has removed its spool directory; then give its
    process time to exit, so that it does not run beside the next measurement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not spool.exists() or not any(spool.iterdir()):
            done = time.perf_counter()
            time.sleep(0.3)
            return done
        time.sleep(0.01)
    raise SystemExit("the recorder did not finish")


class Bench:
    def __init__(self, workdir: Path, guild: str | None, repeats: int) -> None:
        self.workdir = workdir
        self.guild = guild
        self.repeats = repeats
        self.store = workdir / "store" / "expbook.db"
        self.spool = self.store.parent / "spool"
        # Every program writes each line as it prints it (print(..., flush=True), or
        # PYTHONUNBUFFERED=1 as many training images set): the hardest case for a wrapper.
        base = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env = {**base, "EXPBOOK_STORE": str(self.store)}
        self.guild_env = {**base, "GUILD_HOME": str(workdir / "guild-home")}
        self.plain_env = base
        (workdir / "guild-home").mkdir()
        (workdir / "noop.py").write_text("pass\n")
        (workdir / "printer.py").write_text(PROGRAM)

    def expbook(self, *command: str) -> float:
        took = wall([EXPBOOK, "run", "-q", "--", *command], env=self.env, cwd=str(self.workdir))
        return took

    def started_after(self, *prefix: str) -> float:
        """Seconds from starting ``prefix + program`` to the program's start."""
        stamp = self.workdir / "started.txt"
        program = ["sh", "-c", f"date +%s.%N > {stamp}"]
        began = time.time()
        subprocess.run([*prefix, *program], stdout=subprocess.DEVNULL, env=self.env,
                       cwd=str(self.workdir), check=True)  # fmt: skip
        return float(stamp.read_text()) - began

    def startup(self) -> dict[str, float]:
        self.expbook("true")  # create the store: not timed
        wait_recorded(self.spool)
        samples: dict[str, list[float]] = {
            "true": [], "run true": [], "run --no-wait true": [], "py": [], "run py": [],
            "program starts": [], "program starts under run": [],
        }  # fmt: skip
        guild: list[float] = []
        for _ in range(self.repeats):
            samples["true"].append(wall(["true"]))
            samples["run true"].append(self.expbook("true"))
            wait_recorded(self.spool)
            no_wait = [EXPBOOK, "run", "-q", "--no-wait", "--", "true"]
            samples["run --no-wait true"].append(
                wall(no_wait, env=self.env, cwd=str(self.workdir))
            )
            wait_recorded(self.spool)
            samples["program starts"].append(self.started_after())
            samples["program starts under run"].append(self.started_after(EXPBOOK, "run", "-q"))
            wait_recorded(self.spool)
            samples["py"].append(wall([sys.executable, "noop.py"], cwd=str(self.workdir)))
            samples["run py"].append(self.expbook(sys.executable, "noop.py"))
            wait_recorded(self.spool)
            if self.guild:
                guild.append(self._guild("noop.py"))
        result = {k: statistics.median(v) * 1000 for k, v in samples.items()}
        if guild:
            result["guild py"] = statistics.median(guild) * 1000
        return result

    def _guild(self, script: str, *args: str) -> float:
        return wall([self.guild, "run", "-y", script, *args], env=self.guild_env,
                    cwd=str(self.workdir))  # fmt: skip

    def throughput(self, lines: int, share: float, *, varied: bool = False) -> dict[str, float]:
        args = ["printer.py", "--n", str(lines), "--share", str(share)]
        args += ["--varied"] if varied else []
        done = str(self.workdir / "done.txt")
        alone = [wall([sys.executable, *args], env=self.plain_env, cwd=str(self.workdir))
                 for _ in range(3)]  # fmt: skip
        printed, through, recorded, guild = [], [], [], []
        for _ in range(self.repeats):
            started = time.time()
            start = time.perf_counter()
            through.append(self.expbook(sys.executable, *args, "--done", done))
            recorded.append(wait_recorded(self.spool) - start)
            printed.append(float(Path(done).read_text()) - started)
        if self.guild:
            flags = [f"n={lines}", f"share={share}", *(["varied=yes"] if varied else [])]
            guild = [self._guild("printer.py", *flags)]
        result = {
            "alone": lines / statistics.median(alone),
            "program under expbook run": lines / statistics.median(printed),
            "through expbook run": lines / statistics.median(through),
            "recorded by expbook": lines / statistics.median(recorded),
            "end cost ms": 1000
            * statistics.median(t - p for t, p in zip(through, printed, strict=True)),
            "alone s": statistics.median(alone),
            "through s": statistics.median(through),
        }
        if guild:
            result["through guild run"] = lines / statistics.median(guild)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guild", help="path of a guild executable (Guild AI) to compare with")
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    compile_package()
    guild = args.guild or shutil.which("guild")
    guild = os.path.abspath(guild) if guild else None
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        bench = Bench(Path(tmp), guild, args.repeats)
        startup = bench.startup()
        mixed = bench.throughput(args.lines, 0.3)
        progress = bench.throughput(args.lines, 1.0)
        varied = bench.throughput(args.lines, 0.3, varied=True)
    workloads = {
        "70% log / 30% progress lines": mixed,
        "100% progress lines": progress,
        "70% log / 30% progress lines of four styles (Keras, HF dicts, ...)": varied,
    }
    report(startup, workloads, args.lines, guild)
    if args.json:
        data = {
            "startup_ms": startup,
            "mixed_lines_per_s": mixed,
            "progress_lines_per_s": progress,
            "varied_lines_per_s": varied,
        }
        Path(args.json).write_text(json.dumps(data, indent=2))


def report(
    startup: dict[str, float],
    workloads: dict[str, dict[str, float]],
    lines: int,
    guild: str | None,
) -> None:
    added = startup["program starts under run"] - startup["program starts"]
    print(f"expbook run benchmark (python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n")
    verdict = "ok" if added <= TARGET_STARTUP_MS else "MISSED"
    target = f"target <= {TARGET_STARTUP_MS:.0f} ms"
    print(
        f"start-up: a program starts {startup['program starts under run']:6.1f} ms after "
        f"expbook run is called ({startup['program starts']:.1f} ms alone): +{added:.1f} ms, "
        f"{target}  {verdict}"
    )
    print(
        f"end to end: expbook run -- true {startup['run true']:.1f} ms until the run is stored "
        f"and it returns (true alone {startup['true']:.1f} ms: x"
        f"{startup['run true'] / startup['true']:.0f}); with --no-wait "
        f"{startup['run --no-wait true']:.1f} ms"
    )
    python_added = startup["run py"] - startup["py"]
    line = (
        f"a no-op Python script, the whole command: alone {startup['py']:.1f} ms, "
        f"under expbook run +{python_added:.1f} ms (until recorded)"
    )
    if "guild py" in startup:
        guild_added = startup["guild py"] - startup["py"]
        line += f", under guild run +{guild_added:.0f} ms ({guild_added / python_added:.0f}x)"
    print(line)
    for title, numbers in workloads.items():
        print(f"\nthroughput, {lines:,} lines, {title} (lines/s):")
        for name, value in numbers.items():
            if name in ("end cost ms", "alone s", "through s"):
                continue
            mark = ""
            if name == "recorded by expbook":  # the wrapper's throughput with all parsers on
                verdict = "ok" if value >= TARGET_LINES_PER_S else "MISSED"
                mark = f"  target >= {TARGET_LINES_PER_S:,}  {verdict}"
            print(f"  {name:<26} {value:>12,.0f}{mark}")
        print(
            f"  end to end: {numbers['through s']:.2f} s through expbook run (stored when it "
            f"returns) vs {numbers['alone s']:.2f} s alone "
            f"(x{numbers['through s'] / numbers['alone s']:.2f}); expbook run returns "
            f"{numbers['end cost ms']:.0f} ms after the program's last line"
        )
        if "through guild run" in numbers:
            ratio = numbers["recorded by expbook"] / numbers["through guild run"]
            print(f"  expbook records it {ratio:.1f}x faster than guild run passes it through")


if __name__ == "__main__":
    main()
