"""``expbook sweep``: the group, and the commands that run sweeps (declarations only).

``sweep run`` creates a sweep and runs it with local workers, ``sweep create`` creates one for
agents started elsewhere, ``sweep agent`` runs one agent. Implementations live in
``expbook.cli.sweeping``, imported inside each function so that ``expbook --help`` stays light.
Other ``expbook sweep`` commands register on ``sweep_group`` from their own modules.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from expbook.cli.main import cli, store_option


@cli.group("sweep")
def sweep_group() -> None:
    """Search hyperparameters: grid, random or Bayesian search over ordinary runs
    (W&B's sweep YAML; see docs/sweeps.md)."""


def _grace_option(function: Any) -> Any:
    return click.option(
        "--grace", type=click.FloatRange(min=0.0), default=10.0, show_default=True,
        metavar="SECONDS",
        help="After SIGTERM to a pruned or stopped trial, seconds before SIGKILL.",
    )(function)  # fmt: skip


def _ray_option(function: Any) -> Any:
    return click.option(
        "--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
        help="Run the trials as Ray tasks, with the spec's expbook.resources each: on the "
        "cluster at ADDRESS (auto, ray://HOST:10001, HOST:6379, local), else Ray's default "
        "(RAY_ADDRESS, a cluster started on this machine, else a new local Ray). Put it after "
        "the other arguments, or write --ray=ADDRESS. Needs pip install 'expbook[ray]'.",
    )(function)  # fmt: skip


@sweep_group.command("run")
@click.argument("spec_file", metavar="SPEC.yaml", type=click.Path(dir_okay=False))
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(1, 256),
    metavar="N",
    help="Trials run at once [default: the spec's expbook.workers, else 1].",
)
@click.option("--name", metavar="NAME", help="Sweep name [default: the spec's name, else one].")
@click.option(
    "--count",
    "-n",
    type=click.IntRange(min=1),
    metavar="K",
    help="Run at most K trials here (the sweep's budget still holds).",
)
@_grace_option
@_ray_option
@store_option
def sweep_run_command(**options: Any) -> None:
    """Create a sweep from SPEC.yaml and run its trials here, N at a time, each through
    `expbook run` (params from its flags, printed metrics, git state, host), showing
    done/running/pruned/failed counts and the best trial so far. Ctrl-C stops the running
    trials (marked stopped) and exits 130; `expbook sweep agent` can continue the sweep.

    \b
    Examples:
      expbook sweep run sweep.yaml
      expbook sweep run sweep.yaml --workers 4 --name lr-search
      expbook sweep run sweep.yaml --store postgresql://lab-db/expbook --ray auto
    """
    from expbook.cli import sweeping

    sys.exit(sweeping.run(**options))


@sweep_group.command("create")
@click.argument("spec_file", metavar="SPEC.yaml", type=click.Path(dir_okay=False))
@click.option("--name", metavar="NAME", help="Sweep name [default: the spec's name, else one].")
@store_option
def sweep_create_command(**options: Any) -> None:
    """Create a sweep from SPEC.yaml without running anything; prints its name and the
    command that starts an agent (on any machine that reaches the same store).

    \b
    Examples:
      expbook sweep create sweep.yaml --store postgresql://lab-db/expbook
    """
    from expbook.cli import sweeping

    sweeping.create(**options)


@sweep_group.command("agent")
@click.argument("sweep")
@click.option("--count", "-n", type=click.IntRange(min=1), metavar="K",
              help="Run at most K trials, then exit [default: until the sweep ends].")  # fmt: skip
@_grace_option
@_ray_option
@store_option
def sweep_agent_command(**options: Any) -> None:
    """Run the trials of SWEEP (its name or id) one at a time until the sweep is finished,
    stopped or out of budget. Start as many agents as you like, on as many machines as
    reach the store: they coordinate through it. With --ray, the agent runs as many trials
    at once as the Ray cluster holds, each as a Ray task.

    \b
    Examples:
      expbook sweep agent lr-search
      expbook sweep agent lr-search --count 5 --store postgresql://lab-db/expbook
      expbook sweep agent lr-search --store postgresql://lab-db/expbook --ray ray://head:10001
    """
    from expbook.cli import sweeping

    sys.exit(sweeping.agent(**options))
