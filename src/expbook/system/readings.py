"""One sample of what a run uses: its process tree (psutil), the host, and its GPUs (NVML).

Keys (all under ``system/``; units in the name):

- ``cpu_percent``: CPU time of the process tree over the last interval, in % of one core
  (400 = four cores busy), children included; ``processes``: how many processes the tree has;
- ``rss_gib``: the tree's resident memory (the sum of each process's RSS: pages shared between
  processes count once per process);
- ``ram_used_gib`` / ``ram_total_gib``: the host's memory in use (total minus available);
- ``disk_read_mib_s``, ``disk_write_mib_s``, ``net_recv_mib_s``, ``net_sent_mib_s``: the host's
  disk and network traffic over the last interval;
- ``gpu<i>/util_percent``, ``gpu<i>/memory_used_gib``, ``gpu<i>/memory_total_gib``,
  ``gpu<i>/power_w``, ``gpu<i>/temperature_c``: per GPU, ``i`` as NVML and ``nvidia-smi``
  number them (``CUDA_VISIBLE_DEVICES`` does not renumber them).

A value that cannot be read is left out of the sample, never guessed. Rates need two samples:
the first sample has none.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Any

from expbook.runner.spool import alive

GIB = float(1 << 30)
MIB = float(1 << 20)


class ProcessTree:
    """The processes a run consists of.

    Args:
        root: the pid at the top of the tree.
        include_root: whether ``root`` itself is part of the run (the Python program calling
            ``start_run``) or only its descendants are (``expbook run``'s launcher).
        exclude: a pid whose own tree is not part of the run (``expbook run``'s recorder, a
            child of the launcher).
    """

    def __init__(self, root: int, *, include_root: bool = True, exclude: int | None = None):
        self.root = root
        self.include_root = include_root
        self.exclude = exclude

    def processes(self) -> list[Any]:
        """The live processes of the tree (``psutil.Process`` objects); [] once it is gone."""
        import psutil

        try:
            root = psutil.Process(self.root)
            found = ([root] if self.include_root else []) + root.children(recursive=True)
        except psutil.Error:
            return []
        if self.exclude is None:
            return found
        skip = {self.exclude}
        with contextlib.suppress(psutil.Error):
            skip.update(p.pid for p in psutil.Process(self.exclude).children(recursive=True))
        return [p for p in found if p.pid not in skip]


class Readings:
    """Takes samples of one process tree, the host and the GPUs (see the module docstring).

    Call ``open`` first (it loads psutil and NVML), ``sample`` as often as wanted, ``close`` at
    the end. ``gpu_status`` says what NVML reported ("no NVIDIA GPU (NVML: ...)" when none).
    """

    def __init__(self, tree: ProcessTree) -> None:
        self.tree = tree
        self.gpus = Gpus()
        self._cpu: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds
        self._at: float | None = None
        self._io: dict[str, float] = {}

    @property
    def gpu_status(self) -> str:
        return self.gpus.status

    def open(self) -> None:
        import psutil  # noqa: F401 - loaded here, off the caller's thread

        self.gpus.open()

    def close(self) -> None:
        self.gpus.close()

    def sample(self) -> dict[str, float]:
        now = time.time()
        values: dict[str, float] = {}
        pids = self._tree(values, now)
        self._host(values, now)
        values.update(self.gpus.sample(pids))
        self._at = now
        return values

    def _tree(self, values: dict[str, float], now: float) -> set[int]:
        import psutil

        cpu: dict[tuple[int, float], float] = {}
        busy = rss = 0.0
        pids: set[int] = set()
        for process in self.tree.processes():
            try:
                with process.oneshot():
                    times = process.cpu_times()
                    born = process.create_time()
                    memory = process.memory_info().rss
            except psutil.Error:
                continue
            total = times.user + times.system + times.children_user + times.children_system
            key = (process.pid, born)
            cpu[key] = total
            pids.add(process.pid)
            rss += memory
            if self._at is None:  # the first sample: its average since it started
                busy += total / max(now - born, 0.1)
            else:  # since the last sample (all of it, for a process born since)
                busy += max(total - self._cpu.get(key, 0.0), 0.0) / max(now - self._at, 1e-3)
        self._cpu = cpu
        if pids:
            values["system/cpu_percent"] = 100.0 * busy
            values["system/processes"] = float(len(pids))
            values["system/rss_gib"] = rss / GIB
        return pids

    def _host(self, values: dict[str, float], now: float) -> None:
        import psutil

        memory = psutil.virtual_memory()
        values["system/ram_used_gib"] = (memory.total - memory.available) / GIB
        values["system/ram_total_gib"] = memory.total / GIB
        counters: dict[str, float] = {}
        disk = _attempt(psutil.disk_io_counters)
        if disk is not None:
            counters["disk_read"], counters["disk_write"] = disk.read_bytes, disk.write_bytes
        net = _attempt(psutil.net_io_counters)
        if net is not None:
            counters["net_recv"], counters["net_sent"] = net.bytes_recv, net.bytes_sent
        if self._at is not None and now > self._at:
            for name, count in counters.items():
                if name in self._io and count >= self._io[name]:
                    values[f"system/{name}_mib_s"] = (
                        (count - self._io[name]) / MIB / (now - self._at)
                    )
        self._io = counters


class Gpus:
    """NVIDIA GPUs through NVML: which ones the tree uses, and their readings."""

    def __init__(self) -> None:
        self.status = "not opened"
        self.used: set[int] = set()  # GPUs the tree has used: they stay in every sample
        self.nvml: Any = None
        self.handles: list[Any] = []

    def open(self) -> None:
        try:
            import pynvml
        except ImportError:
            self.status = "no NVIDIA GPU information (nvidia-ml-py is not installed)"
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            self.status = f"no NVIDIA GPU (NVML: {exc})"
            return
        try:
            count = pynvml.nvmlDeviceGetCount()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except pynvml.NVMLError as exc:
            self.status = f"no NVIDIA GPU (NVML: {exc})"
            pynvml.nvmlShutdown()
            return
        self.nvml = pynvml
        self.status = f"{count} NVIDIA GPU(s)" if count else "no NVIDIA GPU (NVML sees none)"

    def close(self) -> None:
        if self.nvml is not None:
            _attempt(self.nvml.nvmlShutdown)
            self.nvml = None

    def sample(self, pids: set[int]) -> dict[str, float]:
        nvml = self.nvml
        if nvml is None or not self.handles:
            return {}
        lists = [self._process_list(handle) for handle in self.handles]
        chosen, rule = choose_gpus(lists, pids, self.used, alive)
        self.used.update(chosen if rule == "used" else ())
        values: dict[str, float] = {}
        for index in chosen:
            values.update(gpu_values(nvml, self.handles[index], f"system/gpu{index}/"))
        return values

    def _process_list(self, handle: Any) -> set[int] | None:
        """Pids with a context on the GPU; None when NVML cannot tell."""
        nvml = self.nvml
        try:
            found = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            found += _attempt(nvml.nvmlDeviceGetGraphicsRunningProcesses, handle) or []
        except nvml.NVMLError:
            return None
        return {int(process.pid) for process in found}


def choose_gpus(
    lists: list[set[int] | None],
    pids: set[int],
    used: Iterable[int],
    visible: Callable[[int], bool],
) -> tuple[list[int], str]:
    """Which GPUs to sample, and why: ``"used"`` (those whose process list holds a process of
    the tree, and those it used before), ``"all"`` (which ones it uses cannot be known: a list
    cannot be read, or it holds pids not visible here — another pid namespace, a container), or
    ``"none"`` (every list is readable and holds no process of the tree, nor ever did)."""
    mine = set(used) | {i for i, found in enumerate(lists) if found is not None and found & pids}
    if mine:
        return sorted(mine), "used"
    unknown = any(found is None or any(not visible(pid) for pid in found) for found in lists)
    if unknown:
        return list(range(len(lists))), "all"
    return [], "none"


def gpu_values(nvml: Any, handle: Any, prefix: str) -> dict[str, float]:
    """One GPU's readings; one NVML cannot give (not supported on this GPU) is left out."""
    values: dict[str, float] = {}
    util = _attempt(nvml.nvmlDeviceGetUtilizationRates, handle)
    if util is not None:
        values[prefix + "util_percent"] = float(util.gpu)
    memory = _attempt(nvml.nvmlDeviceGetMemoryInfo, handle)
    if memory is not None:
        values[prefix + "memory_used_gib"] = memory.used / GIB
        values[prefix + "memory_total_gib"] = memory.total / GIB
    power = _attempt(nvml.nvmlDeviceGetPowerUsage, handle)
    if power is not None:
        values[prefix + "power_w"] = power / 1000.0
    temperature = _attempt(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
    if temperature is not None:
        values[prefix + "temperature_c"] = float(temperature)
    return values


def _attempt(action: Callable[..., Any], *args: Any) -> Any:
    try:
        return action(*args)
    except Exception:  # NVMLError_NotSupported, a missing /proc file: the value is left out
        return None
