"""What the benchmarks share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import expbook


def compile_package() -> None:
    """Write expbook's bytecode, as an installed package has it (pip compiles on install).

    Without it, under ``PYTHONDONTWRITEBYTECODE=1`` every start compiles the modules from
    source, which no installed copy does, and start-up numbers read 15-20 ms too high.
    """
    package = Path(expbook.__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
