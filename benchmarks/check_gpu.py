"""Compare the sampler's GPU readings with nvidia-smi's, on a machine with NVIDIA GPUs.

    .venv/bin/python benchmarks/check_gpu.py

Reads every GPU through expbook's NVML code (``expbook.system.readings.gpu_values``) and
through ``nvidia-smi --query-gpu=... --format=csv``, back to back, and prints both with their
differences (utilization and power move between the two reads; memory and temperature should
agree closely). Without an NVIDIA driver it says so and exits 0: there is nothing to compare.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from expbook.system.readings import GIB, Gpus, gpu_values

QUERY = "index,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu"
FIELDS = [  # (our key suffix, nvidia-smi column, factor from nvidia-smi's unit to ours)
    ("util_percent", 1, 1.0),
    ("memory_used_gib", 2, (1 << 20) / GIB),  # MiB
    ("memory_total_gib", 3, (1 << 20) / GIB),
    ("power_w", 4, 1.0),
    ("temperature_c", 5, 1.0),
]


def nvidia_smi() -> dict[int, list[str]] | None:
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        print(f"nvidia-smi failed: {out.stderr.strip() or out.stdout.strip()}")
        return None
    rows = [[cell.strip() for cell in line.split(",")] for line in out.stdout.splitlines()]
    return {int(row[0]): row for row in rows if row and row[0].isdigit()}


def main() -> int:
    gpus = Gpus()
    gpus.open()
    print(f"expbook: {gpus.status}")
    if gpus.nvml is None or not gpus.handles:
        smi = nvidia_smi()
        print("nvidia-smi: " + ("not available" if smi is None else f"{len(smi)} GPU(s)"))
        print("no GPU: nothing to compare")
        return 0
    ours = {i: gpu_values(gpus.nvml, h, "") for i, h in enumerate(gpus.handles)}
    smi = nvidia_smi()
    gpus.close()
    if smi is None:
        print("nvidia-smi is not available: expbook's readings only")
    print(f"{'gpu':>3} {'reading':<18} {'expbook':>10} {'nvidia-smi':>11} {'difference':>11}")
    for index, values in sorted(ours.items()):
        for key, column, factor in FIELDS:
            mine = values.get(key)
            theirs = _number(smi[index][column]) * factor if smi and index in smi else None
            diff = mine - theirs if mine is not None and theirs is not None else None
            print(f"{index:>3} {key:<18} {_fmt(mine):>10} {_fmt(theirs):>11} {_fmt(diff):>11}")
    return 0


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # "[N/A]", "[Not Supported]"
        return float("nan")


def _fmt(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.2f}"


if __name__ == "__main__":
    sys.exit(main())
