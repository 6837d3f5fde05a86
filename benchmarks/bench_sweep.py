"""Sweep benchmark: what scheduling a trial costs, and agents on PostgreSQL next to Optuna's.

    python benchmarks/bench_sweep.py overhead [--trials 40] [--workers 4] [--repeats 3]
    python benchmarks/bench_sweep.py agents [--trials 30] [--agents 3] [--postgres URL]

``overhead`` (SQLite): the same trivial trial command (``expbook run ... -- /bin/true --x=V``,
exactly what an agent starts) run ``--trials`` times,

- back to back in ``--workers`` parallel streams (threads that each start the next command when
  the last one returned): the floor;
- by ``expbook sweep run --workers N`` on a spec whose command is ``/bin/true ${args}``.

Scheduling overhead per trial, timed inside the agent (run in this process): the time each worker
spends per trial outside the trial's ``expbook run`` process — the wall time a worker slot
loses per trial. Compared from outside: (sweep span - floor) x workers / trials, the wall time
each worker slot loses per trial to taking the trial (claim, asking Optuna, adding it by
compare-and-set), supervising it and recording its end. The span runs from the first trial's
lease to the last trial's end (the sweep command's own start-up, Python plus Optuna imports and
creating the sweep, is reported apart). The floor and the sweep alternate ``--repeats`` times
(medians), and the CPU time the sweep adds per trial is reported too: on a shared machine the
wall times move with the load, the CPU time much less.

``agents`` (PostgreSQL, each measurement in a fresh schema): trials per second for ``--agents``
agent processes on one sweep, against Optuna's RDBStorage on the same server with as many
processes each calling ``study.optimize``: (a) the objective runs the same ``expbook run``
command (the same work per trial: the difference is coordination); (b) coordination alone: an
in-process objective for Optuna, and for expbook the agent's own loop without a process
(``Engine.next_configuration``, ``add_trial``, ``update_trial``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

EXPBOOK = str(Path(sys.executable).with_name("expbook"))
ENTRY = "import sys; from expbook.cli.entry import main; sys.argv[0] = 'expbook'; main()"
TARGET_OVERHEAD_MS = 100.0
DEFAULT_POSTGRES = os.environ.get(
    "EXPBOOK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SPEC = """\
command: [/bin/true, "${{args}}"]
method: random
parameters:
  x: {{min: 0.0, max: 1.0}}
expbook: {{trials: {trials}}}
"""


def trial_command(url: str, name: str, x: float) -> list[str]:
    return [sys.executable, "-c", ENTRY, "run", "--name", name, "--kind", "sweep-trial",
            "--tag", "sweep:bench", "--quiet", "--store", url, "--", "/bin/true",
            f"--x={x}"]  # fmt: skip


def streams(commands: list[list[str]], workers: int) -> float:
    """Run the commands back to back in ``workers`` parallel streams; the wall time."""
    todo = list(commands)
    lock = threading.Lock()

    def stream() -> None:
        while True:
            with lock:
                if not todo:
                    return
                command = todo.pop()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    started = time.perf_counter()
    threads = [threading.Thread(target=stream) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def sweep_env() -> dict[str, str]:
    return {**os.environ, "EXPBOOK_SYSTEM_METRICS": "0"}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def floor_once(tmp: Path, trials: int, workers: int) -> tuple[float, float]:
    """The same commands in ``workers`` streams: (wall s, CPU s of the processes waited for)."""
    url = str(tmp / f"floor-{uuid.uuid4().hex[:6]}.db")
    subprocess.run(trial_command(url, "warm", 0.5), check=True)  # create the store
    cpu = children_cpu()
    wall = streams([trial_command(url, f"b{i}", i / trials) for i in range(trials)], workers)
    return wall, children_cpu() - cpu


def sweep_once(tmp: Path, trials: int, workers: int) -> dict[str, float]:
    import expbook

    spec = tmp / "sweep.yaml"
    spec.write_text(SPEC.format(trials=trials))
    url = str(tmp / f"sweep-{uuid.uuid4().hex[:6]}.db")
    cpu = children_cpu()
    started = time.time()
    subprocess.run([EXPBOOK, "sweep", "run", str(spec), "--workers", str(workers),
                    "--name", "bench", "--store", url], check=True,
                   stdout=subprocess.DEVNULL, env=sweep_env())  # fmt: skip
    ended = time.time()
    cpu = children_cpu() - cpu
    store = expbook.open_store(url)
    records = store.list_trials(store.get_sweep("bench").id)
    first = min(t.started_at for t in records if t.started_at)
    last = max(t.ended_at for t in records if t.ended_at)
    runs = {r.id: r for r in store.runs(limit=None)}
    store.close()
    return {
        "span": last - first, "total": ended - started, "cpu": cpu,
        "startup": first - started, "closing": ended - last,
        "before": statistics.median(runs[t.run_id].started_at - t.started_at for t in records),
    }  # fmt: skip


def agent_time(tmp: Path, trials: int, workers: int) -> list[float]:
    """The same sweep with the agent in this process, timed from inside: for each trial, the
    seconds its worker spent outside the trial's ``expbook run`` process (taking the trial,
    starting the process, noticing its end, recording it)."""
    import expbook
    from expbook.sweep import agent as agents

    store = expbook.open_store(str(tmp / f"inproc-{uuid.uuid4().hex[:6]}.db"))
    import yaml

    sweep = store.create_sweep("bench", yaml.safe_load(SPEC.format(trials=trials)))
    spent: dict[str, list[float]] = {"take": [], "run": [], "process": []}
    originals = {name: getattr(agents.Agent, name) for name in ("_take", "_run", "_supervise")}

    def timed(name: str, key: str) -> object:
        def call(self: object, *args: object) -> object:
            started = time.perf_counter()
            try:
                return originals[name](self, *args)
            finally:
                spent[key].append(time.perf_counter() - started)

        return call

    agents.Agent._take = timed("_take", "take")  # type: ignore[method-assign]
    agents.Agent._run = timed("_run", "run")  # type: ignore[method-assign]
    agents.Agent._supervise = timed("_supervise", "process")  # type: ignore[method-assign]
    try:
        agents.Agent(store, sweep.id, workers=workers).run()
    finally:
        for name, function in originals.items():
            setattr(agents.Agent, name, function)
        store.close()
    outside = [r - p for r, p in zip(spent["run"], spent["process"], strict=True)]
    takes = sorted(spent["take"])[: len(outside)]  # the last takes found nothing to do
    return [o + t for o, t in zip(outside, takes, strict=True)]


def overhead(trials: int, workers: int, repeats: int) -> None:
    os.environ["EXPBOOK_SYSTEM_METRICS"] = "0"  # as the sweep's trials: measured apart
    walls, cpus, found = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(repeats):  # alternated, so that a busy moment hits both
            floor, floor_cpu = floor_once(Path(tmp), trials, workers)
            sweep = sweep_once(Path(tmp), trials, workers)
            walls.append((sweep["span"] - floor) * workers / trials * 1000)
            cpus.append((sweep["cpu"] - floor_cpu) / trials * 1000)
            found.append((floor, floor_cpu, sweep))
        inside = agent_time(Path(tmp), trials, workers)
    per_trial, cpu_per_trial = statistics.median(walls), statistics.median(cpus)
    print(f"sweep scheduling overhead: {trials} trials of /bin/true, {workers} workers, SQLite, "
          f"{repeats} repeats (medians)")  # fmt: skip
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    floor = statistics.median(f[0] for f in found)
    span = statistics.median(f[2]["span"] for f in found)
    print(f"  floor: the same expbook run commands in {workers} streams  {floor:7.2f} s"
          f"  ({floor / trials * workers * 1000:.0f} ms a command)")  # fmt: skip
    print(f"  expbook sweep run, first lease to last trial recorded {span:7.2f} s")
    startup = statistics.median(f[2]["startup"] for f in found)
    closing = statistics.median(f[2]["closing"] for f in found)
    print(f"  expbook sweep run start-up (Python, imports, the sweep) {startup:5.2f} s, "
          f"summary and exit {closing:.2f} s")  # fmt: skip
    median, mean = statistics.median(inside) * 1000, statistics.mean(inside) * 1000
    verdict = "ok" if median <= TARGET_OVERHEAD_MS else "OVER"
    print(f"  overhead per trial, timed inside the agent      {median:7.1f} ms median"
          f"  target <= {TARGET_OVERHEAD_MS:.0f} ms  {verdict}   ({mean:.1f} ms mean: a worker's"
          " time outside its trial's expbook run)")  # fmt: skip
    print(
        f"  overhead per trial, sweep span - floor          {per_trial:7.1f} ms median"
        f"   (each repeat: {', '.join(f'{w:.0f}' for w in walls)}: moves with load)"
    )
    print(f"  CPU added per trial (agent process, setpriv)   {cpu_per_trial:7.1f} ms median"
          f"   (each repeat: {', '.join(f'{c:.0f}' for c in cpus)})")  # fmt: skip
    before = statistics.median(f[2]["before"] for f in found)
    print(
        f"  median lease -> program start {before * 1000:.0f} ms (expbook run's start-up included)"
    )


# --- agents on PostgreSQL -----------------------------------------------------------------------


class Schema:
    """A fresh PostgreSQL schema for one measurement."""

    def __init__(self, url: str) -> None:
        self.admin = url.replace("postgresql+psycopg", "postgresql")
        self.name = f"bench_{uuid.uuid4().hex[:10]}"
        separator = "&" if "?" in url else "?"
        self.url = f"{url}{separator}options=-csearch_path%3D{self.name}"

    def __enter__(self) -> Schema:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{self.name}" CASCADE')

    @property
    def sqlalchemy_url(self) -> str:
        return self.url.replace("postgresql://", "postgresql+psycopg://", 1)


def expbook_agents(url: str, trials: int, agents: int, tmp: Path) -> float:
    spec = tmp / "sweep.yaml"
    spec.write_text(SPEC.format(trials=trials))
    subprocess.run([EXPBOOK, "sweep", "create", str(spec), "--name", "bench", "--store", url],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    started = time.perf_counter()
    processes = [subprocess.Popen([EXPBOOK, "sweep", "agent", "bench", "--store", url],
                                  stdout=subprocess.DEVNULL, env=sweep_env())
                 for _ in range(agents)]  # fmt: skip
    for process in processes:
        process.wait()
    return trials / (time.perf_counter() - started)


OPTUNA_WORKER = """
import subprocess, sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
url, n, mode, store = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
command = {command!r}
def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    if mode == "process":
        subprocess.run([*command[:-1], f"--x={{x}}"], check=True, stdout=subprocess.DEVNULL)
    return x * x
study = optuna.load_study(study_name="bench", storage=url)
study.optimize(objective, n_trials=n)
"""


def optuna_agents(url: str, trials: int, agents: int, mode: str, store_url: str) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optuna.create_study(study_name="bench", storage=url)
    code = OPTUNA_WORKER.format(command=trial_command(store_url, "optuna", 0.0))
    shares = [trials // agents + (i < trials % agents) for i in range(agents)]
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-c", code, url, str(n), mode, store_url],
                                  env=sweep_env()) for n in shares]  # fmt: skip
    for process in processes:
        process.wait()
    return trials / (time.perf_counter() - started)


EXPBOOK_LOOP = """
import sys, time, expbook
from expbook.sweep.engine import Engine, why_done
from expbook.sweep.spec import parse_spec
store = expbook.open_store(sys.argv[1])
sweep = store.get_sweep("bench")
spec = parse_spec(sweep.spec)
engine = Engine(spec, study_name=sweep.id)
worker = f"loop-{{__import__('os').getpid()}}"
while True:
    sweep = store.get_sweep(sweep.id)
    trials = store.list_trials(sweep.id)
    if why_done(spec, sweep, trials):
        break
    proposal = engine.next_configuration(trials)
    added = store.add_trial(sweep.id, expected_version=sweep.version, params=proposal.params,
                            config_key=proposal.config_key, worker=worker)
    if added is not None:
        x = added.params["x"]
        store.update_trial(sweep.id, added.number, worker=worker, state="finished",
                           values=[x * x])
"""


def expbook_loops(url: str, trials: int, agents: int, tmp: Path) -> float:
    spec = tmp / "sweep.yaml"
    spec.write_text(SPEC.format(trials=trials))
    subprocess.run([EXPBOOK, "sweep", "create", str(spec), "--name", "bench", "--store", url],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-c", EXPBOOK_LOOP, url])
                 for _ in range(agents)]  # fmt: skip
    for process in processes:
        process.wait()
    return trials / (time.perf_counter() - started)


def agents_bench(trials: int, agents: int, postgres: str) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        store_url = str(tmpdir / "optuna-runs.db")
        subprocess.run(trial_command(store_url, "warm", 0.5), check=True, env=sweep_env())
        with Schema(postgres) as schema:
            rows.append(("expbook sweep agent (expbook run per trial)",
                         expbook_agents(schema.url, trials, agents, tmpdir)))  # fmt: skip
        with Schema(postgres) as schema, Schema(postgres) as runs:  # two: both use alembic
            subprocess.run(trial_command(runs.url, "warm", 0.5), check=True, env=sweep_env())
            rows.append(("Optuna RDBStorage, objective runs the same expbook run",
                         optuna_agents(schema.sqlalchemy_url, trials, agents, "process",
                                       runs.url)))  # fmt: skip
        with Schema(postgres) as schema:
            rows.append(("expbook coordination only (engine + store, no process)",
                         expbook_loops(schema.url, trials * 4, agents, tmpdir)))  # fmt: skip
        with Schema(postgres) as schema:
            rows.append(("Optuna RDBStorage coordination only (in-process objective)",
                         optuna_agents(schema.sqlalchemy_url, trials * 4, agents, "inline",
                                       store_url)))  # fmt: skip
    print(f"sweep agents on PostgreSQL: {agents} processes, random search on x, "
          f"{trials} trials ({trials * 4} for coordination only)")  # fmt: skip
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    for label, rate in rows:
        print(f"  {label:62s} {rate:7.2f} trials/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what")
    one = sub.add_parser("overhead")
    one.add_argument("--trials", type=int, default=40)
    one.add_argument("--workers", type=int, default=4)
    one.add_argument("--repeats", type=int, default=3)
    two = sub.add_parser("agents")
    two.add_argument("--trials", type=int, default=30)
    two.add_argument("--agents", type=int, default=3)
    two.add_argument("--postgres", default=DEFAULT_POSTGRES)
    options = parser.parse_args()
    if options.what == "agents":
        agents_bench(options.trials, options.agents, options.postgres)
    else:
        overhead(
            getattr(options, "trials", 40),
            getattr(options, "workers", 4),
            getattr(options, "repeats", 3),
        )


if __name__ == "__main__":
    main()
