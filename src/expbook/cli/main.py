"""The ``expbook`` command line: declarations only.

Each command parses its options and calls an implementation module imported inside the function,
so ``expbook --help`` stays fast. Every error reaches the user as one line on stderr with a
non-zero exit status: 1 for errors, 2 for usage mistakes, 130 for Ctrl-C.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from expbook._version import __version__

STATUSES = ("running", "finished", "failed", "interrupted", "crashed", "pruned")


def store_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--store",
        envvar="EXPBOOK_STORE",
        metavar="PATH|URL",
        help="Store to use: a SQLite file path, postgresql://... or an expbook server's "
        "https://host:port "
        "[default: $EXPBOOK_STORE, else .expbook/expbook.db at the git root or here]",
    )(function)


def selection_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The run-selection options shared by ``ls`` and ``export``."""
    decorators = [
        click.option(
            "--experiment", "-e", "experiments", multiple=True, metavar="NAME",
            help="Only runs of this experiment (repeatable).",
        ),
        click.option(
            "--status", "-s", "statuses", multiple=True, type=click.Choice(STATUSES),
            help="Only runs with this status (repeatable).",
        ),
        click.option(
            "--where", "-w", metavar="EXPR",
            help="Filter expression, e.g. \"params.lr < 1e-3 and metrics.valid/acc > 0.9\".",
        ),
        click.option(
            "--sort", metavar="EXPR",
            help="Sort expression, e.g. \"-metrics.valid/acc, number\" ('-' = descending). "
            "[default: newest first]",
        ),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="expbook")
def cli() -> None:
    """expbook: an experiment tracker and lab notebook for ML training runs.

    \b
    Log from Python:   with expbook.start_run(params=cfg) as run: run.log({...}, step=epoch)
    List runs:         expbook ls --where "metrics.valid/acc > 0.9" --sort -metrics.valid/acc
    Inspect:           expbook show 12        Compare: expbook diff 11 12
    Try it:            expbook demo

    A RUN is a number (12 or #12), a UUID prefix, or a unique run name.
    """


@cli.command("ls")
@selection_options
@click.option("--limit", "-n", type=click.IntRange(min=0), default=50, show_default=True,
              help="Show at most this many runs (0 = all).")  # fmt: skip
@click.option("--metrics", "-m", "metric_keys", multiple=True, metavar="KEYS",
              help="Metric columns, comma-separated (repeatable). "
              "[default: the most common keys]")  # fmt: skip
@click.option("--params", "-p", "param_keys", multiple=True, metavar="KEYS",
              help="Param columns, comma-separated (repeatable). "
              "[default: params that vary]")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
@store_option
def ls_command(**options: Any) -> None:
    """List runs: number, name, status, duration, the params that vary and key metrics.

    \b
    Examples:
      expbook ls
      expbook ls -e "hidden size" --sort -metrics.valid/acc
      expbook ls --where "params.lr < 1e-3 and tags has 'gru'" -m valid/acc,train/loss
      expbook ls --status failed --status crashed
    """
    from expbook.cli import runs

    runs.ls(**options)


@cli.command("show")
@click.argument("run")
@click.option(
    "--diff", "show_diff", is_flag=True, help="Also print the git diff the run started from."
)
@click.option("--packages", "show_packages", is_flag=True, help="Also list installed packages.")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
@store_option
def show_command(**options: Any) -> None:
    """Show everything about RUN: params, metric summary, git, host, notes.

    \b
    Examples:
      expbook show 12
      expbook show gru-256 --diff
    """
    from expbook.cli import runs

    runs.show(**options)


@cli.command("diff")
@click.argument("run_a", metavar="A")
@click.argument("run_b", metavar="B")
@click.option("--all", "show_all", is_flag=True, help="Also list params that are equal.")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@store_option
def diff_command(**options: Any) -> None:
    """Compare two runs: params that differ, git state, metric deltas (B - A).

    \b
    Example:
      expbook diff 4 5
    """
    from expbook.cli import runs

    runs.diff(**options)


@cli.command("note")
@click.argument("run")
@click.argument("text")
@store_option
def note_command(**options: Any) -> None:
    """Add a note (markdown) to RUN. TEXT '-' reads the note from stdin.

    \b
    Example:
      expbook note 12 "GPU utilization around 20%; data loading is the bottleneck"
    """
    from expbook.cli import edit

    edit.note(**options)


@cli.command("tag")
@click.argument("run")
@click.argument("tags", nargs=-1, required=True)
@click.option("--remove", "-r", is_flag=True, help="Remove the tags instead of adding them.")
@store_option
def tag_command(**options: Any) -> None:
    """Add (or with --remove, remove) tags on RUN.

    \b
    Examples:
      expbook tag 12 baseline gru
      expbook tag 12 --remove baseline
    """
    from expbook.cli import edit

    edit.tag(**options)


@cli.command("set-metric", context_settings={"ignore_unknown_options": True})
@click.argument("run")
@click.argument("key")
@click.argument("value")
@click.option("--unit", metavar="UNIT", help="Unit to show with the value, e.g. '%'.")
@store_option
def set_metric_command(**options: Any) -> None:
    """Record a result obtained later, e.g. a manual validation score.

    VALUE is a number (negative numbers, nan and inf are accepted); a trailing % sets the unit.

    \b
    Examples:
      expbook set-metric 77 manual/valid_acc 0.9421
      expbook set-metric 77 valid/acc 55.46%
      expbook set-metric 77 delta/loss -0.31
    """
    from expbook.cli import edit

    edit.set_metric(**options)


@cli.command("rm")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Also delete runs that are still running.")
@store_option
def rm_command(**options: Any) -> None:
    """Delete runs with all their metrics, notes and attachments. A running run is refused
    unless --force is given (its program would go on writing into nothing).

    \b
    Example:
      expbook rm 13 14 --yes
    """
    from expbook.cli import edit

    edit.rm(**options)


@cli.command("export")
@selection_options
@click.option("--format", "-f", "fmt", type=click.Choice(["csv", "json", "parquet"]),
              default="csv", show_default=True, help="Output format.")  # fmt: skip
@click.option("--metrics", "points", is_flag=True,
              help="Export every metric point (run, key, step, epoch, value, time) "
              "instead of the runs table.")  # fmt: skip
@click.option("--key", "-k", "keys", multiple=True, metavar="KEY",
              help="With --metrics: only these metric keys (repeatable).")  # fmt: skip
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=0),
    default=0,
    help="At most this many runs (0 = all).",
)
@click.option("--out", "-o", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Write to FILE instead of stdout (required for parquet).")  # fmt: skip
@store_option
def export_command(**options: Any) -> None:
    """Export the runs table (params and metric summaries) or all metric points.

    \b
    Examples:
      expbook export --format csv -o runs.csv
      expbook export -e "hidden size" --format json
      expbook export --metrics --format parquet -o points.parquet
    """
    from expbook.cli import export

    export.export(**options)


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by ``run`` and ``rerun`` (``expbook.runner.launch.OPTIONS`` mirrors
    them for the fast path; a test checks they agree)."""
    decorators = [
        click.option("--name", metavar="NAME", help="Run name [default: the script's name]."),
        click.option("--experiment", "-e", metavar="NAME", help="Experiment to record it in."),
        click.option("--kind", metavar="KIND", help="train, eval, ... [default: train]."),
        click.option("--tag", "-t", "tags", multiple=True, metavar="TAG", help="Repeatable."),
        click.option("--note", metavar="TEXT", help="A note to add to the run."),
        click.option("--quiet", "-q", is_flag=True, help="No summary line at the end."),
        click.option("--json", "json", is_flag=True,
                     help="The summary line as one JSON object on stderr, for scripts."),
        click.option("--no-wait", is_flag=True,
                     help="Return when the program ends, before the run is stored."),
        click.option("--no-capture", is_flag=True,
                     help="Do not record git state, host and packages."),
        click.option("--no-autolog", is_flag=True,
                     help="No framework hooks in a Python program (also: EXPBOOK_AUTOLOG=0)."),
        click.option("--no-system-metrics", is_flag=True,
                     help="Do not sample CPU, memory, I/O and GPUs (also: "
                     "EXPBOOK_SYSTEM_METRICS=0; see docs/system.md)."),
        click.option("--system-interval", type=click.FloatRange(min=1.0), metavar="SECONDS",
                     help="Seconds between system-metrics samples [default: 10]."),
        click.option("--artifacts", "artifacts", multiple=True, metavar="PATTERN",
                     help="Keep files the program writes: a glob or folder, relative to here "
                     "(repeatable; kept once settled, and at the end; see docs/run.md)."),
    ]  # fmt: skip
    for decorator in reversed(decorators):
        function = decorator(function)
    return function


@cli.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@run_options
@click.option("--parent", metavar="RUN", help="The run this one derives from (eval of...).")
@click.option("--repeat", type=click.IntRange(1, 1000), metavar="N",
              help="Run it N times, seeds s, s+1... (s: the command's seed or 0).")  # fmt: skip
@click.option("--seed-flag", metavar="FLAG",
              help="The flag that takes the seed, for --repeat [default: --seed].")  # fmt: skip
@store_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run_command(command: tuple[str, ...], **options: Any) -> None:
    """Run COMMAND and record it: command line, params from its flags and config files, git
    state, host, duration, exit status, its output, and the metrics it prints.

    The program runs as without expbook: output streamed live (on a pseudo-terminal when
    stdout is a terminal, so colours and progress bars stay), stdin passed through, Ctrl-C,
    Ctrl-Z and SIGTERM working as usual, its exit status returned. NAME=value words before
    the program are its environment. A Python program that calls expbook.start_run() records
    into this run. It returns once the run is stored (the next command can read it: expbook
    show last); a run whose recording is cut short is kept for expbook recover.

    \b
    Examples:
      expbook run -- python train.py --lr 1e-3 --epochs 16
      expbook run --json -- python train.py 2> summary.json
      expbook run -e "sequence length" --tag gru -- cargo run --release -- --model-epochs 16
      expbook run --kind eval --parent 12 -- python eval.py --ckpt runs/12/model.pt
      expbook run --repeat 3 --seed-flag --seed -- python train.py --lr 1e-3
    """
    from expbook.cli import running

    sys.exit(running.run(list(command), options))


@cli.command("compare")
@click.argument("side_a", metavar="A")
@click.argument("side_b", metavar="B")
@click.option("--metric", "-m", metavar="KEY",
              help="Metric to compare [default: a validation metric the runs share].")  # fmt: skip
@click.option("--exact", is_flag=True,
              help="Use only the runs named, not the repeats of their configuration.")  # fmt: skip
@click.option("--seed-param", "seed_params", multiple=True, metavar="PARAM",
              help="Another param that is a seed (repeatable; seed always is).")  # fmt: skip
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95,
              show_default=True, help="Confidence level of the intervals.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@store_option
def compare_command(**options: Any) -> None:
    """Is B better than A beyond run-to-run noise? A and B are runs (a run stands for all the
    finished runs that repeat its configuration: same experiment and params but the seed) or
    comma-separated lists of runs. Prints each side's mean, std and confidence interval, the
    difference with its interval and Welch's t-test, and a plain verdict; with one run on a
    side, it says that the noise is unknown.

    \b
    Examples:
      expbook compare 4 7
      expbook compare 4,5,6 7,8,9 --metric valid/acc
      expbook compare 4 7 --exact --json
    """
    from expbook.cli import compare

    compare.compare(**options)


@cli.group("experiment")
def experiment_group() -> None:
    """Experiments: the questions runs answer, with a hypothesis and a conclusion."""


@experiment_group.command("new")
@click.argument("title")
@click.option("--hypothesis", metavar="TEXT", help="What you expect, and why (markdown).")
@click.option("--description", metavar="TEXT", help="The setup or context (markdown).")
@store_option
def experiment_new_command(**options: Any) -> None:
    """Create an experiment: TITLE is the question it answers.

    \b
    Example:
      expbook experiment new "What's the ideal audio sequence length?" --hypothesis "longer helps"
    """
    from expbook.cli import experiments

    experiments.new(**options)


@experiment_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@store_option
def experiment_ls_command(**options: Any) -> None:
    """List experiments with their run counts, hypotheses and conclusions.

    \b
    Example:
      expbook experiment ls
    """
    from expbook.cli import experiments

    experiments.ls(**options)


@experiment_group.command("show")
@click.argument("experiment")
@click.option("--metric", "-m", metavar="KEY",
              help="Metric that picks the best run [default: a validation metric].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@store_option
def experiment_show_command(**options: Any) -> None:
    """Show an experiment: its question, hypothesis, conclusion, runs and best run.

    \b
    Example:
      expbook experiment show "hidden size" --metric valid/loss
    """
    from expbook.cli import experiments

    experiments.show(**options)


@experiment_group.command("conclude")
@click.argument("experiment")
@click.argument("text")
@store_option
def experiment_conclude_command(**options: Any) -> None:
    """Write an experiment's conclusion (markdown; replaces the previous one).

    \b
    Example:
      expbook experiment conclude "hidden size" "256 beats 128 by 1.2 points (n=3 each, p=0.01)"
    """
    from expbook.cli import experiments

    experiments.conclude(**options)


@experiment_group.command("edit")
@click.argument("experiment")
@click.option("--hypothesis", metavar="TEXT", help="New hypothesis.")
@click.option("--description", metavar="TEXT", help="New description.")
@click.option("--title", metavar="TITLE", help="Rename the experiment.")
@store_option
def experiment_edit_command(**options: Any) -> None:
    """Change an experiment's hypothesis, description or title.

    \b
    Example:
      expbook experiment edit "hidden size" --hypothesis "bigger is better up to 256"
    """
    from expbook.cli import experiments

    experiments.edit(**options)


@experiment_group.command("move")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--to", metavar="EXPERIMENT", help="The experiment to move the runs to.")
@click.option("--detach", is_flag=True, help="Take the runs out of their experiment.")
@store_option
def experiment_move_command(**options: Any) -> None:
    """Move runs to another experiment (created if new), or out of theirs.

    \b
    Examples:
      expbook experiment move 12 13 14 --to "dropout after classifier layers?"
      expbook experiment move 15 --detach
    """
    from expbook.cli import experiments

    experiments.move(**options)


@cli.command("parse")
@click.argument("file", metavar="FILE")
@click.option("--all", "show_all", is_flag=True, help="Show every line, not only those read.")
@click.option(
    "--settings",
    metavar="TOML",
    type=click.Path(dir_okay=False, exists=True),
    help="The expbook.toml to use [default: the one expbook run would use here].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def parse_command(**options: Any) -> None:
    """Show what `expbook run` reads in a program's output, line by line, and why: which
    parser took each line and the points and values it stored, at which step. FILE is a log
    (`-`: standard input), e.g. `expbook logs 12 > out.log`. To fix a miss, add a pattern or an
    ignore_metrics entry to expbook.toml and run it again.

    \b
    Examples:
      expbook parse train.log
      python train.py 2>&1 | expbook parse --all -
      expbook logs 12 | expbook parse -
    """
    from expbook.cli import running

    running.parse(**options)


@cli.command("recover")
@click.option("--list", "list_only", is_flag=True, help="Only list the runs that wait.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
@store_option
def recover_command(**options: Any) -> None:
    """Store runs of `expbook run` whose recording was cut short: a recorder killed (kill -9,
    the OOM killer, a job torn down), or a store that could not be written. Their spool kept
    the output and how the program ended; each is stored once, resuming after what the store
    has, with the program's real status.

    \b
    Examples:
      expbook recover --list
      expbook recover
    """
    from expbook.cli import running

    sys.exit(running.recover(**options))


@cli.command("logs")
@click.argument("run")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new output until the run ends.")
@click.option("--tail", "-n", type=click.IntRange(min=0), metavar="N", help="The last N lines.")
@click.option("--stream", type=click.Choice(["stdout", "stderr"]), help="Only this stream.")
@click.option("--color/--no-color", default=None,
              help="Keep the program's colours [default: when stdout is a terminal].")  # fmt: skip
@store_option
def logs_command(**options: Any) -> None:
    """Print what RUN's program printed (runs started with expbook run).

    \b
    Examples:
      expbook logs 12
      expbook logs 12 --tail 50
      expbook logs 12 --follow
    """
    from expbook.cli import running

    running.logs(**options)


@cli.command("rerun", context_settings={"ignore_unknown_options": True})
@click.argument("run")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Set a param of the command: a flag, a key=value word, a launcher's "
                   "option (torchrun.nproc_per_node=4) or env.NAME (repeatable).")  # fmt: skip
@run_options
@click.option("--dry-run", is_flag=True, help="Print the command instead of running it.")
@store_option
def rerun_command(**options: Any) -> None:
    """Run RUN's command again, with some params changed; the new run records RUN as its
    parent, so `expbook diff` shows exactly what changed. Warns when the code's git commit
    differs from RUN's.

    \b
    Examples:
      expbook rerun 12 --set lr=3e-4
      expbook rerun 12 --set model-epochs=32 --set features="cli ml_train"
      expbook rerun 12 --set optimizer.lr=0.02 --set env.CUDA_VISIBLE_DEVICES=1
      expbook rerun 12 --set amp=false --dry-run
    """
    from expbook.cli import running

    sys.exit(running.rerun(**options))


@cli.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: all; the UI has no login).")  # fmt: skip
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=5005, show_default=True,
              help="Port to listen on (0: any free port).")  # fmt: skip
@click.option("--read-only", is_flag=True,
              help="Refuse edits (notes, tags, names, experiments).")  # fmt: skip
@click.option("--open", "open_browser", is_flag=True, help="Open the address in a browser.")
@click.option("--allowed-hosts", metavar="NAMES", default="",
              help="Host names (comma-separated) the UI answers to besides localhost and "
              "the --host address: a DNS alias, a proxy's name; '*' for any (behind a "
              "proxy that checks them).")  # fmt: skip
@store_option
def ui_command(**options: Any) -> None:
    """Serve the web UI and its JSON API on the store: runs, charts, compare, experiments.
    Everything is served locally (no internet needed); Ctrl-C stops it.

    \b
    Examples:
      expbook ui
      expbook ui --port 8080 --store postgresql://tracker@db.internal/expbook
      expbook ui --host 0.0.0.0 --read-only
      expbook ui --host 0.0.0.0 --allowed-hosts gpu-box.lab.example
    """
    from expbook.cli import web

    web.ui(**options)


@cli.command("report")
@click.option("--experiment", "-e", "experiments", multiple=True, metavar="NAME",
              help="Only this experiment (repeatable) [default: every experiment with "
              "matching runs, and the runs without one].")  # fmt: skip
@click.option("--where", "-w", metavar="EXPR",
              help="Only runs matching this filter, e.g. \"status = 'finished'\".")  # fmt: skip
@click.option("--out", "-o", type=click.Path(dir_okay=False, writable=True), metavar="FILE",
              help="Markdown file to write; its figures go to a folder beside it "
              "(notebook.md: notebook_files/) [default: notebook.md in the current "
              "directory].")  # fmt: skip
@click.option("--html", is_flag=True,
              help="Also write it as one self-contained HTML page beside it "
              "(notebook.html), figures embedded.")  # fmt: skip
@click.option("--sweep", "sweeps", multiple=True, metavar="SWEEP",
              help="Only the trial runs of this sweep (repeatable; a name or UUID "
              "prefix) [default: every run; a section shows each sweep its runs are "
              "trials of].")  # fmt: skip
@store_option
def report_command(**options: Any) -> None:
    """Write the lab notebook: per experiment the question, hypothesis, setup (shared params,
    commits, hardware), the runs table, repeats as mean ± std with confidence intervals, the
    best configuration and whether it beats the runner-up beyond noise, what changed from run
    to run, notes, plots, the sweeps the runs are trials of (trials, best so far, parallel
    coordinates, importance, pruned curves) and the conclusion. The same store gives the same
    bytes.

    \b
    Examples:
      expbook report
      expbook report -e "hidden size" --out notes/hidden-size.md --html
      expbook report --where "status = 'finished' and tags has 'gru'"
      expbook report --sweep mlp-lr -o notes/mlp-lr.md
    """
    from expbook.cli import report

    report.report(**options)


@cli.command("demo")
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True,
              help="Epochs per configuration.")  # fmt: skip
@click.option("--experiment", default="demo: hidden size x learning rate", show_default=True,
              help="Experiment to record the demo runs in.")  # fmt: skip
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train each configuration once per seed (repeats).")  # fmt: skip
@store_option
def demo_command(**options: Any) -> None:
    """Train a small MLP on scikit-learn's digits over a grid of configurations, log every
    epoch, and print the runs table.

    \b
    Example:
      expbook demo && expbook ls
      expbook demo --seeds 3 && expbook compare 1 4
    """
    from expbook import demo

    demo.main(**options)


@cli.group("artifact")
def artifact_group() -> None:
    """A run's files: list, fetch, add; where the store keeps them (docs/artifacts.md)."""


@artifact_group.command("ls")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@store_option
def artifact_ls_command(**options: Any) -> None:
    """List a run's artifacts with their sizes and sha256.

    \b
    Example:
      expbook artifact ls 12
    """
    from expbook.cli import artifacts

    artifacts.ls(**options)


@artifact_group.command("get")
@click.argument("run")
@click.argument("name")
@click.option("--out", "-o", metavar="PATH",
              help="Where to write it [default: its name here; a folder's under it].")  # fmt: skip
@store_option
def artifact_get_command(**options: Any) -> None:
    """Copy artifact NAME of RUN (a file, or every file of a logged folder) here.

    \b
    Examples:
      expbook artifact get 12 checkpoints/best.pt
      expbook artifact get 12 plots -o /tmp/plots-12
    """
    from expbook.cli import artifacts

    artifacts.get(**options)


@artifact_group.command("put")
@click.argument("run")
@click.argument("path")
@click.option("--name", metavar="NAME",
              help="Its path inside the run [default: the file's or folder's name].")  # fmt: skip
@store_option
def artifact_put_command(**options: Any) -> None:
    """Keep a file or folder with RUN (finished runs too).

    \b
    Example:
      expbook artifact put 12 eval/confusion.png --name plots/confusion.png
    """
    from expbook.cli import artifacts

    artifacts.put(**options)


@artifact_group.command("gc")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option("--min-age", type=click.FloatRange(min=0), default=3600.0, show_default=True,
              metavar="SECONDS",
              help="Keep unheld blobs newer than this (a run may not have stored its row "
              "yet).")  # fmt: skip
@store_option
def artifact_gc_command(**options: Any) -> None:
    """Remove artifact contents no run holds any more: the older versions of a name a run
    logged again (last.pt every epoch), blobs left behind by runs deleted while the location
    was unreachable.

    \b
    Examples:
      expbook artifact gc --dry-run
      expbook artifact gc
    """
    from expbook.cli import artifacts

    artifacts.gc(**options)


@artifact_group.command("location")
@click.argument("url", required=False)
@click.option("--unset", is_flag=True, help="Remove the store's setting.")
@store_option
def artifact_location_command(**options: Any) -> None:
    """Show, or set for every user of the store, where artifact contents are kept: a folder
    or any fsspec URL (s3://bucket/prefix needs s3fs installed).

    \b
    Examples:
      expbook artifact location
      expbook artifact location s3://ml-team/expbook --store postgresql://db.internal/expbook
    """
    from expbook.cli import artifacts

    artifacts.location(**options)


@cli.group("import")
def import_group() -> None:
    """Import runs from TensorBoard event files or MLflow (docs/import.md). Importing again
    adds only what is new: runs, and points of runs that grew."""


@import_group.command("tensorboard")
@click.argument("logdir", type=click.Path(file_okay=False))
@click.option("--experiment", "-e", metavar="NAME", help="Put the runs in this experiment.")
@click.option("--dry-run", is_flag=True, help="Show what would be imported; write nothing.")
@store_option
def import_tensorboard_command(**options: Any) -> None:
    """Import the scalars and hparams of TensorBoard event files: one run per directory
    holding event files, named after its path under LOGDIR, steps and wall times kept.
    Needs the tensorboard package.

    \b
    Examples:
      expbook import tensorboard runs/
      expbook import tensorboard lightning_logs/ -e "batch size" --dry-run
    """
    from expbook.cli import importing

    importing.tensorboard(**options)


@import_group.command("mlflow")
@click.argument("tracking_uri", required=False)
@click.option("--experiment", "-e", "experiments", multiple=True, metavar="NAME",
              help="Only this MLflow experiment (repeatable) [default: all].")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Show what would be imported; write nothing.")
@store_option
def import_mlflow_command(**options: Any) -> None:
    """Import MLflow experiments and runs: params, metric histories, tags, notes, status and
    times. TRACKING_URI: a ./mlruns folder, sqlite:///mlflow.db, http://host:5000...
    [default: $MLFLOW_TRACKING_URI, else ./mlruns or ./mlflow.db]. Needs the mlflow package.

    \b
    Examples:
      expbook import mlflow ./mlruns
      expbook import mlflow http://mlflow.internal:5000 -e fraud-detection --dry-run
    """
    from expbook.cli import importing

    importing.mlflow(**options)


@cli.group("db")
def db_group() -> None:
    """Inspect or upgrade the store's database schema."""


@db_group.command("status")
@store_option
def db_status_command(**options: Any) -> None:
    """Print the store location, its schema version and how many runs it holds."""
    from expbook.cli import edit

    edit.db_status(**options)


@db_group.command("upgrade")
@store_option
def db_upgrade_command(**options: Any) -> None:
    """Upgrade the store's schema to this version of expbook (PostgreSQL stores are never
    upgraded implicitly).

    \b
    Example:
      expbook db upgrade --store postgresql://tracker@db.internal/expbook
    """
    from expbook.cli import edit

    edit.db_upgrade(**options)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turn every error into one line."""
    sys.exit(run_cli(argv))


def run_cli(argv: list[str] | None = None) -> int:
    from expbook.errors import ExpbookError

    try:
        result = cli.main(args=argv, prog_name="expbook", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except click.exceptions.Abort:
        _error("aborted")
        return 1
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx else "expbook"
        _error(f"{_one_line(exc.format_message())} (see '{command} --help')")
        return 2
    except click.ClickException as exc:
        _error(_one_line(exc.format_message()))
        return exc.exit_code
    except ExpbookError as exc:
        _error(_one_line(str(exc)))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        _quiet_broken_pipe()
        return 0
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("EXPBOOK_DEBUG"):
            raise
        _error(
            f"internal error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(set EXPBOOK_DEBUG=1 to see the traceback)"
        )
        return 1


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _error(message: str) -> None:
    try:
        sys.stderr.write(f"error: {message}\n")
        sys.stderr.flush()
    except BrokenPipeError:  # pragma: no cover
        pass


def _quiet_broken_pipe() -> None:
    # stdout's reader went away (expbook ls | head): exit quietly.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


from expbook.cli import remote_admin as _remote_admin  # noqa: E402,F401  (sync, login)
from expbook.cli import sweep_admin as _sweep_admin  # noqa: E402,F401
from expbook.cli import sweep_run as _sweep_run  # noqa: E402,F401  (registers expbook sweep)
from expbook.cli import team as _team  # noqa: E402,F401  (registers expbook server, token)
