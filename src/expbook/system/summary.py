"""The lines people used to write into their logs by hand, from a run's stored series:

    GPU 0: util 21 % mean / 64 % peak, memory 18.3 / 24.0 GiB peak,
           power 180 W mean / 250 W peak, 71 °C peak
    CPU: 312 % of a core mean / 790 % peak (3 processes peak); RSS 5.2 GiB peak
    RAM: 41.0 / 62.7 GiB used peak (host)
    Pace: 12.3 steps/s; 13.0 min per epoch

Means are weighted by time (a coarsened point stands for its whole bucket, docs/system.md);
peaks are the largest stored point. Used by ``expbook show``, the run page and the report.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from expbook.model import RunRecord, Series

PREFIX = "system/"
_GPU = re.compile(r"^system/gpu(\d+)/")


def system_lines(store: Any, run: RunRecord) -> list[tuple[str, str]]:
    """``(label, text)`` pairs: CPU, RAM, disk, network, one per GPU (or why there is none),
    and the pace of training; [] for a run without system metrics or logged steps."""
    keys = [key for key in run.metrics if key.startswith(PREFIX)]
    series = {key: store.series(run.id, key) for key in keys}
    lines = describe_system(series, _info(store, run)) if keys else []
    pace = describe_pace(store, run)
    return lines + ([("Pace", pace)] if pace else [])


def describe_system(series: dict[str, Series], info: dict[str, Any]) -> list[tuple[str, str]]:
    """The lines for a run's ``system/`` series (``info``: its ``system.json``)."""
    stats = {key: (weighted_mean(s.times, s.values), _peak(s.values)) for key, s in series.items()}
    lines: list[tuple[str, str]] = []
    cpu = _part(stats, "system/cpu_percent", "{mean:.0f} % of a core mean / {peak:.0f} % peak")
    if cpu:
        processes = stats.get("system/processes")
        if processes and processes[1] > 1:
            cpu += f" ({processes[1]:.0f} processes peak)"
        rss = _part(stats, "system/rss_gib", "RSS {peak:.1f} GiB peak")
        lines.append(("CPU", cpu + (f"; {rss}" if rss else "")))
    used, total = stats.get("system/ram_used_gib"), stats.get("system/ram_total_gib")
    if used and total:
        lines.append(("RAM", f"{used[1]:.1f} / {total[1]:.1f} GiB used peak (host), "
                             f"{used[0]:.1f} GiB mean"))  # fmt: skip
    for label, names in (("Disk", ("read", "write")), ("Network", ("recv", "sent"))):
        prefix = "system/disk_" if label == "Disk" else "system/net_"
        rate = "{mean:.1f} MiB/s mean / {peak:.1f} peak"
        found = [(name, _part(stats, f"{prefix}{name}_mib_s", rate)) for name in names]
        parts = [f"{name} {text}" for name, text in found if text]
        if parts:
            lines.append((label, ", ".join(parts)))
    gpus = sorted({int(m.group(1)) for key in series if (m := _GPU.match(key))})
    lines += [(f"GPU {index}", _gpu(stats, f"system/gpu{index}/")) for index in gpus]
    if not gpus and info.get("gpu_status"):
        lines.append(("GPU", f"none recorded: {info['gpu_status']}"))
    return lines


def _gpu(stats: dict[str, tuple[float, float]], prefix: str) -> str:
    parts = [
        _part(stats, prefix + "util_percent", "util {mean:.0f} % mean / {peak:.0f} % peak"),
        _memory(stats, prefix),
        _part(stats, prefix + "power_w", "power {mean:.0f} W mean / {peak:.0f} W peak"),
        _part(stats, prefix + "temperature_c", "{peak:.0f} °C peak"),
    ]
    return ", ".join(part for part in parts if part) or "no readings"


def _memory(stats: dict[str, tuple[float, float]], prefix: str) -> str:
    used, total = stats.get(prefix + "memory_used_gib"), stats.get(prefix + "memory_total_gib")
    if not used:
        return ""
    of = f" / {total[1]:.1f}" if total else ""
    return f"memory {used[1]:.1f}{of} GiB peak"


def _part(stats: dict[str, tuple[float, float]], key: str, template: str) -> str:
    found = stats.get(key)
    if found is None or math.isnan(found[0]):
        return ""
    return template.format(mean=found[0], peak=found[1])


def weighted_mean(times: Sequence[float], values: Sequence[float]) -> float:
    """The mean of ``values`` over time: each point stands for the time since the one before
    (a coarsened point for its bucket); the first point counts only when it is the only one."""
    pairs = [(t, v) for t, v in zip(times, values, strict=True) if not math.isnan(v)]
    if not pairs:
        return math.nan
    if len(pairs) == 1:
        return pairs[0][1]
    total = weight = 0.0
    for (before, _), (at, value) in itertools.pairwise(pairs):
        span = max(at - before, 0.0)
        total += value * span
        weight += span
    return total / weight if weight > 0 else sum(v for _, v in pairs) / len(pairs)


def _peak(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) if finite else math.nan


def describe_pace(store: Any, run: RunRecord) -> str:
    """Steps per second (from the most-logged metric) and time per epoch (from logged epochs),
    or "" when the run logged neither."""
    logged = {k: s for k, s in run.metrics.items() if not k.startswith(PREFIX) and s.count >= 2}
    if not logged:
        return ""
    key = max(logged, key=lambda k: (logged[k].count, k))
    return pace_text(store.series(run.id, key))


def pace_text(series: Series) -> str:
    """Pace of one series: steps/s over its span, time per epoch where epochs were logged."""
    parts = []
    steps, times = series.steps, series.times
    seconds = times[-1] - times[0] if len(times) >= 2 else 0.0
    if seconds > 0 and steps[-1] > steps[0]:
        rate = (steps[-1] - steps[0]) / seconds
        parts.append(
            f"{_number(rate)} steps/s" if rate >= 1 else f"{_duration(1 / rate)} per step"
        )
    epochs = [(t, e) for t, e in zip(times, series.epochs, strict=True) if not math.isnan(e)]
    if len(epochs) >= 2 and epochs[-1][1] > epochs[0][1] and epochs[-1][0] > epochs[0][0]:
        per_epoch = (epochs[-1][0] - epochs[0][0]) / (epochs[-1][1] - epochs[0][1])
        parts.append(f"{_duration(per_epoch)} per epoch")
    return "; ".join(parts) + (f" ({series.key})" if parts else "")


def _number(value: float) -> str:
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _info(store: Any, run: RunRecord) -> dict[str, Any]:
    try:
        data = store.get_attachment(run.id, "system.json")
        return json.loads(data) if data else {}
    except (ValueError, TypeError):
        return {}


def system_charts(keys: Sequence[str]) -> list[tuple[str, list[str]]]:
    """The run page's System charts: ``(title, keys)``, one per unit (CPU, memory, I/O) and
    per GPU (utilization, memory, power, temperature)."""
    present = set(keys)
    fixed = [
        ("CPU (% of a core)", ["system/cpu_percent"]),
        ("Processes", ["system/processes"]),
        ("Memory (GiB)", ["system/rss_gib", "system/ram_used_gib", "system/ram_total_gib"]),
        ("Disk and network (MiB/s)", [f"system/{name}_mib_s" for name in
                                      ("disk_read", "disk_write", "net_recv", "net_sent")]),
    ]  # fmt: skip
    gpus = sorted({int(m.group(1)) for key in keys if (m := _GPU.match(key))})
    for index in gpus:
        prefix = f"system/gpu{index}/"
        fixed += [
            (f"GPU {index} utilization (%)", [prefix + "util_percent"]),
            (
                f"GPU {index} memory (GiB)",
                [prefix + "memory_used_gib", prefix + "memory_total_gib"],
            ),
            (f"GPU {index} power (W)", [prefix + "power_w"]),
            (f"GPU {index} temperature (°C)", [prefix + "temperature_c"]),
        ]
    return [
        (title, found) for title, group in fixed if (found := [k for k in group if k in present])
    ]
