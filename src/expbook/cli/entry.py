"""The ``expbook`` console script.

``expbook run`` takes a fast path that imports neither click nor the store: it is on the
critical path of every program it starts (see ``expbook.runner.launch``). Everything else goes
to the click CLI in ``expbook.cli.main``.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["run"]:
        from expbook.runner.launch import HelpRequested
        from expbook.runner.launch import main as run

        try:
            sys.exit(run(argv[1:]))
        except HelpRequested:
            argv = ["run", "--help"]
    from expbook.cli.main import main as cli

    cli(argv)
