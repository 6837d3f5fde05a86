"""System metrics (docs/system.md): real psutil readings of a real process tree, the real NVML
library on a machine without an NVIDIA driver, the switches, coarsening, and the summaries."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import time
from array import array
from pathlib import Path

import pytest

import expbook
from expbook.errors import InvalidValueError
from expbook.model import Series
from expbook.system.coarsen import FULL_SAMPLES, Coarsener, bucket_width, coarsen, point_bound
from expbook.system.readings import Gpus, ProcessTree, Readings, choose_gpus
from expbook.system.sampler import SystemSampler, system_settings
from expbook.system.summary import describe_system, pace_text, system_lines, weighted_mean
from tests.helpers import run_cli

SPIN_CHILD = "import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass\n"


def test_readings_follow_a_real_process_tree_as_memory_and_cpu_rise() -> None:
    """A program that allocates 300 MiB and starts a child that spins: the tree's RSS and CPU
    rise, and the child counts."""
    program = (
        "import subprocess, sys, time\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "block = bytearray(300 << 20)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        f"child = subprocess.Popen([sys.executable, '-c', {SPIN_CHILD.format(seconds=4)!r}])\n"
        "print('spinning', flush=True); child.wait(); sys.stdin.readline()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", program], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "ready"
        readings = Readings(ProcessTree(proc.pid))
        readings.open()
        before = readings.sample()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "spinning"
        time.sleep(1.5)
        during = readings.sample()
        assert during["system/processes"] == 2 and before["system/processes"] == 1
        assert during["system/rss_gib"] - before["system/rss_gib"] > 0.25  # 300 MiB touched
        assert during["system/cpu_percent"] > 30  # one core spinning (generous: shared CPUs)
        assert before["system/cpu_percent"] < during["system/cpu_percent"]
        assert 0 < during["system/ram_used_gib"] <= during["system/ram_total_gib"]
        assert "system/disk_read_mib_s" not in before  # a rate needs two samples
        assert during.get("system/disk_read_mib_s", 0.0) >= 0
        readings.close()
    finally:
        proc.kill()
        proc.wait()


def test_a_tree_without_its_root_excludes_the_given_subtree() -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pids = {p.pid for p in ProcessTree(os.getpid(), include_root=False).processes()}
        assert sleeper.pid in pids and os.getpid() not in pids
        tree = ProcessTree(os.getpid(), include_root=False, exclude=sleeper.pid)
        assert sleeper.pid not in {p.pid for p in tree.processes()}
    finally:
        sleeper.kill()
        sleeper.wait()
    assert ProcessTree(sleeper.pid).processes() == []  # gone: no readings, no error


def test_the_real_nvml_library_without_a_driver_says_no_gpu() -> None:
    """nvidia-ml-py is installed; this machine has no NVIDIA driver: the honest answer."""
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver (benchmarks/check_gpu.py checks it)")
    gpus = Gpus()
    gpus.open()
    assert gpus.status.startswith("no NVIDIA GPU (NVML: ")
    assert gpus.sample({os.getpid()}) == {}
    gpus.close()


def test_gpus_sampled_are_those_the_tree_uses_else_all_when_unknown() -> None:
    visible = {10, 11, 20}.__contains__
    assert choose_gpus([{99}, {10}], {10, 11}, (), visible) == ([1], "used")
    assert choose_gpus([set(), set()], {10}, [0], visible) == ([0], "used")  # used before
    assert choose_gpus([set(), {20}], {10}, (), visible) == ([], "none")  # not ours
    assert choose_gpus([None, set()], {10}, (), visible) == ([0, 1], "all")  # unreadable
    assert choose_gpus([{4242}, set()], {10}, (), visible) == ([0, 1], "all")  # container
    assert choose_gpus([], {10}, (), visible) == ([], "none")


def test_coarsening_keeps_a_week_bounded_the_last_hour_as_sampled_and_older_coarser() -> None:
    interval, started = 10.0, 1_000_000.0
    week = 7 * 24 * 3600
    samples = [
        (started + t, {"system/cpu_percent": float(t % 100), "system/rss_gib": 1.0 + (t == 5000)})
        for t in range(0, week + 1, int(interval))
    ]
    # what the store holds after every append and rewrite stays within the bound as time goes
    coarsener = Coarsener(started, interval)
    held = most = rewrites = 0
    for at, values in samples:
        new, rewritten = coarsener.add(at, values)
        held = len(rewritten) if rewritten is not None else held + len(new)
        rewrites += rewritten is not None
        most = max(most, held - point_bound(at - started, interval))
    assert most <= 0 and rewrites > 300  # a rewrite per half hour once a run is past the hour
    points = coarsen(samples, started, interval)
    assert len(samples) == 60_481
    assert 1500 < len(points) <= point_bound(week, interval) == 1996
    steps = [step for step, _, _ in points]
    assert steps == sorted(set(steps))  # unique, increasing
    last_hour = [p for p in points if p[1] > started + week - FULL_SAMPLES * interval]
    assert len(last_hour) == FULL_SAMPLES  # the recent hour as sampled
    assert {b[0] - a[0] for a, b in itertools.pairwise(last_hour)} == {10}
    assert last_hour[-1][0] == week  # the last sample ends the series
    first_day = [p for p in points if p[0] < 24 * 3600]
    gaps = {b[0] - a[0] for a, b in itertools.pairwise(first_day)}
    assert gaps == {int(bucket_width(6.5 * 24 * 3600, interval))} == {2560}  # the oldest: coarse
    assert max(p[2]["system/rss_gib"] for p in points) == 2.0  # a peak survives its bucket
    # a bucket's point is the mean of its samples: cpu cycles 0..90 by tens
    assert first_day[3][2]["system/cpu_percent"] == pytest.approx(45.0, abs=5)
    mean = weighted_mean([p[1] for p in points], [p[2]["system/cpu_percent"] for p in points])
    assert mean == pytest.approx(45.0, abs=1)


def test_a_run_under_an_hour_is_never_rewritten() -> None:
    started = 1_000_000.0
    coarsener = Coarsener(started, 10.0)
    outcomes = [
        coarsener.add(started + t, {"system/cpu_percent": 1.0}) for t in range(0, 3591, 10)
    ]
    assert all(rewritten is None and len(new) == 1 for new, rewritten in outcomes)
    assert coarsener.close(started + 3595) is None and len(coarsener.points()) == 360


def test_the_sampler_rewrites_the_older_part_of_a_run_in_the_store(tmp_path: Path) -> None:
    """The rewrite goes through the run's writer into the store: the stored series becomes the
    coarsened one (summary recomputed), and points queued before a rewrite do not come back."""
    store = expbook.open_store(tmp_path / "s.db")
    run = expbook.start_run(store=store, system_metrics=False)
    started = time.time() - 3 * 3600  # the samples below are 3 hours of a 10 s sampler
    coarsener = Coarsener(started, 10.0)
    sampler = SystemSampler(run.submit, started=started, interval=10.0)
    sampler._coarsener = coarsener  # the samples are given, not read: the store path is tested
    expected: list = []
    for t in range(0, 3 * 3600 + 1, 10):
        values = {"system/cpu_percent": float(t % 100), "system/rss_gib": 1.0 + t / 1e4}
        new, rewritten = coarsener.add(started + t, values)
        expected = list(rewritten) if rewritten is not None else expected + new
        sampler._hand_over(new, rewritten)
        if t % 600 == 0:
            run.flush()
    run.finish()
    assert coarsener.rewrites >= 4
    series = store.series(run.id, "system/cpu_percent")
    assert list(series.steps) == [step for step, _, _ in expected]
    assert list(series.values) == [p[2]["system/cpu_percent"] for p in expected]
    assert len(series) < 3 * 360  # 1,081 samples, coarsened
    summary = store.run(run.id).metrics["system/rss_gib"]
    assert summary.count == len(expected) and summary.max == pytest.approx(1.0 + 3 * 3600 / 1e4)
    store.close()


def test_settings_and_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXPBOOK_SYSTEM_METRICS", raising=False)
    monkeypatch.delenv("EXPBOOK_SYSTEM_INTERVAL", raising=False)
    assert system_settings(None, None) == 10.0
    assert system_settings(False, 5) is None
    assert system_settings(None, 2) == 2.0
    monkeypatch.setenv("EXPBOOK_SYSTEM_INTERVAL", "3")
    assert system_settings(None, None) == 3.0
    monkeypatch.setenv("EXPBOOK_SYSTEM_METRICS", "0")
    assert system_settings(None, None) is None
    assert system_settings(True, None) == 3.0
    for bad in (0.5, 0, -1, math.nan, "10", True):
        with pytest.raises(InvalidValueError):
            system_settings(True, bad)


def _system_keys(store: expbook.Store, run_id: str) -> list[str]:
    return [key for key in store.series_keys(run_id) if key.startswith("system/")]


def test_a_python_run_samples_at_start_every_interval_and_at_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EXPBOOK_SYSTEM_METRICS", raising=False)
    store = str(tmp_path / "e.db")
    started = time.monotonic()
    with expbook.start_run("sys", store=store, system_metrics_interval=1) as run:
        for step in range(30):
            run.log({"train/loss": 1 / (step + 1)})
            time.sleep(0.1)
    elapsed = time.monotonic() - started
    with expbook.open_store(store) as opened:
        cpu = opened.series(run.id, "system/cpu_percent")
        record = opened.run(run.id)
        info = json.loads(opened.get_attachment(run.id, "system.json"))
        lines = dict(system_lines(opened, record))
    # at start, about once a second, and at exit (generous: two shared cores)
    duration = record.ended_at - record.started_at
    assert 3 <= len(cpu) <= min(duration, elapsed) + 2
    assert cpu.steps[0] <= 1 and cpu.steps[-1] >= int(duration) - 1
    assert "system/rss_gib" in record.metrics and "system/ram_used_gib" in record.metrics
    assert info["interval"] == 1.0 and info["samples"] == len(cpu)
    assert "steps/s" in lines["Pace"] and "train/loss" in lines["Pace"]
    assert "% of a core mean" in lines["CPU"] and "RSS" in lines["CPU"]


def test_system_metrics_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = str(tmp_path / "e.db")
    monkeypatch.delenv("EXPBOOK_SYSTEM_METRICS", raising=False)
    with expbook.start_run("off", store=store, system_metrics=False) as run:
        run.log({"loss": 1.0})
    monkeypatch.setenv("EXPBOOK_SYSTEM_METRICS", "0")
    with expbook.start_run("off-env", store=store) as env_run:
        env_run.log({"loss": 1.0})
    with expbook.open_store(store) as opened:
        assert _system_keys(opened, run.id) == [] == _system_keys(opened, env_run.id)
        assert opened.get_attachment(run.id, "system.json") is None
    with pytest.raises(InvalidValueError):
        expbook.start_run("bad", store=store, system_metrics=True, system_metrics_interval=0.1)


PROGRAM = (
    "import subprocess, sys, time\n"
    "block = bytearray(200 << 20)\n"
    "for i in range(0, len(block), 4096): block[i] = 1\n"
    f"subprocess.run([sys.executable, '-c', {SPIN_CHILD.format(seconds=3)!r}])\n"
    "time.sleep(0.5)\n"
)


def test_expbook_run_samples_any_program_in_the_recorder(tmp_path: Path) -> None:
    """No expbook code in the program: the recorder samples its processes, child included."""
    (tmp_path / "prog.py").write_text(PROGRAM)
    store = str(tmp_path / "e.db")
    env = {"EXPBOOK_SYSTEM_METRICS": "1"}
    result = run_cli("run", "--system-interval", "1", "--", sys.executable, "prog.py",
                     store=store, cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with expbook.open_store(store) as opened:
        record = opened.run("last")
        rss = opened.series(record.id, "system/rss_gib")
        processes = opened.series(record.id, "system/processes")
        cpu = opened.series(record.id, "system/cpu_percent")
    assert max(rss.values) > 0.18  # the 200 MiB block (the recorder's own memory is not in it)
    assert max(processes.values) == 2  # the program and its child; not the recorder
    assert max(cpu.values) > 30
    shown = run_cli("show", "last", store=store, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "System" in text and "% of a core mean" in text and "GiB peak" in text
    assert "GPU: none recorded: no NVIDIA GPU" in text
    assert "system/cpu_percent" not in text  # summed up, not listed in the metrics table


def test_expbook_run_no_system_metrics_and_a_bad_interval(tmp_path: Path) -> None:
    store = str(tmp_path / "e.db")
    result = run_cli("run", "--no-system-metrics", "--", sys.executable, "-c", "print(1)",
                     store=store, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    with expbook.open_store(store) as opened:
        assert _system_keys(opened, opened.run("last").id) == []
    bad = run_cli("run", "--system-interval", "0.2", "--", "true", store=store, cwd=tmp_path)
    assert bad.returncode != 0 and "--system-interval" in bad.stderr


def _series(key: str, times: list[float], values: list[float]) -> Series:
    steps = array("q", [int(t) for t in times])
    return Series("r", key, steps, array("d", values), array("d", times),
                  array("d", [math.nan] * len(times)))  # fmt: skip


def test_summary_lines_read_like_the_ones_written_by_hand() -> None:
    times = [0.0, 10.0, 20.0, 30.0]
    series = {
        "system/gpu0/util_percent": _series("u", times, [0, 10, 64, 10]),
        "system/gpu0/memory_used_gib": _series("m", times, [1.0, 18.3, 12.0, 12.0]),
        "system/gpu0/memory_total_gib": _series("t", times, [24.0] * 4),
        "system/gpu0/power_w": _series("p", times, [60, 100, 250, 100]),
        "system/gpu0/temperature_c": _series("c", times, [40, 60, 71, 65]),
        "system/cpu_percent": _series("c", times, [0, 300, 790, 200]),
        "system/processes": _series("n", times, [1, 3, 3, 2]),
        "system/rss_gib": _series("r", times, [1.0, 5.2, 4.0, 4.0]),
    }
    lines = dict(describe_system(series, {}))
    assert lines["GPU 0"] == ("util 28 % mean / 64 % peak, memory 18.3 / 24.0 GiB peak, "
                              "power 150 W mean / 250 W peak, 71 °C peak")  # fmt: skip
    assert lines["CPU"] == "430 % of a core mean / 790 % peak (3 processes peak); RSS 5.2 GiB peak"
    assert dict(describe_system({}, {"gpu_status": "no NVIDIA GPU (NVML: x)"})) == {
        "GPU": "none recorded: no NVIDIA GPU (NVML: x)"
    }


def test_pace_in_steps_per_second_and_time_per_epoch() -> None:
    times = [1000.0 + 60 * i for i in range(11)]  # a point a minute
    series = Series("r", "train/loss", array("q", [100 * i for i in range(11)]),
                    array("d", [1.0] * 11), array("d", times),
                    array("d", [i / 2 for i in range(11)]))  # fmt: skip
    assert pace_text(series) == "1.67 steps/s; 2.0 min per epoch (train/loss)"
    slow = Series("r", "loss", array("q", [0, 1]), array("d", [1.0, 2.0]),
                  array("d", [0.0, 780.0]), array("d", [math.nan] * 2))  # fmt: skip
    assert pace_text(slow) == "13.0 min per step (loss)"


def test_the_reports_setup_states_the_system_lines(tmp_path: Path) -> None:
    store = str(tmp_path / "e.db")
    with expbook.start_run("r", store=store, experiment="q", system_metrics=True,
                           system_metrics_interval=1) as run:  # fmt: skip
        for step in range(10):
            run.log({"valid/acc": step / 10}, epoch=step / 5)
            time.sleep(0.1)
    out = tmp_path / "notebook.md"
    result = run_cli("report", "--out", str(out), store=store, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    setup = out.read_text().split("### Setup", 1)[1].split("###", 1)[0]
    line = next(line for line in setup.splitlines() if line.startswith("- **System, #1:**"))
    assert "CPU: " in line and "GPU: none recorded: no NVIDIA GPU" in line
    assert "per epoch (valid/acc)" in line
