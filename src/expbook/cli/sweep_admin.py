"""``expbook sweep ls|show|stop|resume|edit|attach|rm``: inspecting and managing sweeps
(declarations only; the implementations are in ``expbook.cli.sweeps``, imported inside each
function so that ``expbook --help`` stays light)."""

from __future__ import annotations

from typing import Any

import click

from expbook.cli.main import store_option
from expbook.cli.sweep_run import sweep_group


@sweep_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the sweeps as JSON.")
@store_option
def sweep_ls_command(**options: Any) -> None:
    """List sweeps: state, method, metric, trials done/running/pruned/failed/crashed against
    the budget, the best value, when created.

    \b
    Example:
      expbook sweep ls
    """
    from expbook.cli import sweeps

    sweeps.ls(**options)


@sweep_group.command("show")
@click.argument("sweep")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Show at most this many trials, best first (0 = all).",
)
@click.option(
    "--history", "show_history", is_flag=True, help="Also print each edit of the spec as a diff."
)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@store_option
def sweep_show_command(**options: Any) -> None:
    """Show SWEEP (its name or id): the spec, the best trial and its params, the trials
    table (best value first), parameter importance and, with repeats, whether the best
    configuration beats the runner-up beyond run-to-run noise.

    \b
    Examples:
      expbook sweep show lr-search
      expbook sweep show lr-search --limit 0 --json
    """
    from expbook.cli import sweeps

    sweeps.show(**options)


@sweep_group.command("stop")
@click.argument("sweep")
@store_option
def sweep_stop_command(**options: Any) -> None:
    """Stop SWEEP: agents start no new trial; running trials are stopped by their agents
    (SIGTERM, marked stopped) and the agents exit. `expbook sweep resume` continues it.

    \b
    Example:
      expbook sweep stop lr-search
    """
    from expbook.cli import sweeps

    sweeps.set_state(**options, state="stopped")


@sweep_group.command("resume")
@click.argument("sweep")
@store_option
def sweep_resume_command(**options: Any) -> None:
    """Resume a stopped or finished SWEEP: it is running again, and agents started with
    `expbook sweep agent` (or `sweep run`) continue it while budget is left.

    \b
    Example:
      expbook sweep resume lr-search
    """
    from expbook.cli import sweeps

    sweeps.set_state(**options, state="running")


@sweep_group.command("edit")
@click.argument("sweep")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="Set one key of a parameter: lr.min=1e-5, lr.max=0.1, hidden.q=64 "
    "(KEY=null removes it; repeatable).",
)
@click.option(
    "--add-values",
    "-a",
    "add_values",
    multiple=True,
    metavar="NAME=VALUE",
    help="Add values to a parameter that takes a list of values: batch_size=512, "
    "batch_size=[512, 1024] (repeatable).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="PATH=YAML",
    help="Replace the value at a dotted path of the spec: "
    "'parameters.dropout={min: 0, max: 0.3}' (PATH=null removes it; repeatable).",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    metavar="N",
    help="The budget of trials (expbook.budget.trials).",
)
@click.option(
    "--run-cap", type=click.IntRange(min=1), metavar="N", help="W&B's run_cap: at most N runs."
)
@click.option(
    "--timeout",
    metavar="DURATION",
    help="The sweep's time budget: seconds, or 2h, 30m, 1h30m (expbook.budget.timeout).",
)
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Replace the whole spec by the one in FILE (YAML or JSON).",
)
@click.option("--dry-run", is_flag=True, help="Print the change, store nothing.")
@store_option
def sweep_edit_command(**options: Any) -> None:
    """Edit the spec of a started SWEEP: widen or narrow a range, add values, replace a
    parameter or the whole spec, raise the budget. Prints the change as a diff. The new spec
    is checked before it is stored; trials already run stay as they are, and the search goes
    on in the new space.

    \b
    Examples:
      expbook sweep edit lr-search --param lr.min=1e-5 --param lr.max=0.1
      expbook sweep edit lr-search --add-values batch_size=512 --trials 50
      expbook sweep edit lr-search --set 'parameters.dropout={min: 0, max: 0.3}'
      expbook sweep edit lr-search --spec sweep-v2.yaml --dry-run
    """
    from expbook.cli import sweeps

    sweeps.edit(**options)


@sweep_group.command("attach")
@click.argument("sweep")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@store_option
def sweep_attach_command(**options: Any) -> None:
    """Attach finished runs (done by hand, or before the sweep) to SWEEP as finished trials:
    their params must lie in the sweep's space, their value is their metric's latest value.
    All or none: one run that does not fit attaches nothing.

    \b
    Example:
      expbook sweep attach lr-search 12 15
    """
    from expbook.cli import sweeps

    sweeps.attach(**options)


@sweep_group.command("rm")
@click.argument("sweep")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Also delete a sweep that is still running.")
@store_option
def sweep_rm_command(**options: Any) -> None:
    """Delete SWEEP and its trials; the trials' runs stay, as ordinary runs. A running sweep
    is refused unless --force is given (stop it first).

    \b
    Example:
      expbook sweep rm lr-search --yes
    """
    from expbook.cli import sweeps

    sweeps.rm(**options)
