"""``expbook run`` (through click), ``expbook logs`` and ``expbook rerun``."""

from __future__ import annotations

import os
import shlex
import sys
import time
from typing import Any

import click

from expbook.cli.common import open_cli_store
from expbook.errors import ExpbookError
from expbook.locations import resolve_url
from expbook.runner.launch import Launch, UsageError, split_assignments, take_given_run_id
from expbook.runner.text import strip_ansi

FOLLOW_POLL_SECONDS = 0.5


def run(command: list[str], options: dict[str, Any]) -> int:
    """``expbook run`` when it comes through click (``expbook run --help``, tests in-process);
    the console script normally takes the fast path in ``expbook.runner.launch``."""
    launch_options = {**options, "tags": list(options.get("tags") or ())}
    url = resolve_url(launch_options.pop("store", None))
    repeat, seed_flag = launch_options.pop("repeat", None), launch_options.pop("seed_flag", None)
    env, command = split_assignments(command)
    repeats = repeat is not None or seed_flag is not None
    try:
        run_id = take_given_run_id(repeats=repeats)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    if repeats:
        from expbook.runner.repeat import run_repeats

        return run_repeats({**launch_options, "repeat": repeat, "seed_flag": seed_flag},
                           command, url, env)  # fmt: skip
    return Launch(launch_options, command, url, env, run_id=run_id).run()


def logs(
    *,
    run: str,
    follow: bool,
    tail: int | None,
    stream: str | None,
    color: bool | None,
    store: str | None,
) -> None:
    keep_color = sys.stdout.isatty() if color is None else color
    with open_cli_store(store) as opened:
        record = opened.run(run)
        chunks = opened.get_output(record.id)
        if not chunks and not follow and record.status.is_terminal():
            raise ExpbookError(
                f"run #{record.number} has no recorded output (only runs started with "
                "expbook run have)"
            )
        text = "".join(c.text for c in chunks if stream is None or c.stream == stream)
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail else ""
        _write(text, keep_color)
        if follow:
            last = chunks[-1].id if chunks else 0
            try:
                _follow(opened, record.id, last, stream, keep_color)
            except KeyboardInterrupt:
                return


def _follow(store: Any, run_id: str, last: int, stream: str | None, keep_color: bool) -> None:
    """Print output as it arrives until the run has ended and nothing more comes."""
    while True:
        ended = store.run(run_id).status.is_terminal()
        chunks = store.get_output(run_id, after=last)
        for chunk in chunks:
            if stream is None or chunk.stream == stream:
                _write(chunk.text, keep_color)
            last = chunk.id
        if ended and not chunks:
            return
        time.sleep(FOLLOW_POLL_SECONDS)


def _write(text: str, keep_color: bool) -> None:
    sys.stdout.write(text if keep_color else strip_ansi(text))
    sys.stdout.flush()


def rerun(
    *,
    run: str,
    assignments: tuple[str, ...],
    name: str | None,
    experiment: str | None,
    kind: str | None,
    tags: tuple[str, ...],
    note: str | None,
    quiet: bool,
    json: bool,
    no_wait: bool,
    no_capture: bool,
    no_autolog: bool,
    no_system_metrics: bool = False,
    system_interval: float | None = None,
    artifacts: tuple[str, ...] = (),
    dry_run: bool,
    store: str | None,
) -> int:
    from expbook.runner.rewrite import guessed_flags, with_flags

    with open_cli_store(store) as opened:
        record = opened.run(run)
        url = opened.url
    if not record.command:
        raise ExpbookError(f"run #{record.number} has no recorded command to run again")
    cwd = record.cwd if record.cwd and os.path.isdir(record.cwd) else os.getcwd()
    settings = _settings(cwd, assignments)
    for assignment, close in guessed_flags(record.command, assignments, settings)[:1]:
        raise ExpbookError(_no_such_flag(record.number, assignment, close))
    # Before splitting off NAME=value prefixes, so that --set env.NAME=value can change them.
    command = with_flags(list(record.command), assignments, settings)
    env, command = split_assignments(command)
    if dry_run:
        prefix = [f"{k}={v}" for k, v in env.items()]
        print(f"cd {shlex.quote(cwd)} && {shlex.join([*prefix, *command])}")
        return 0
    if record.cwd and cwd != record.cwd:
        _warn(f"run #{record.number} ran in {record.cwd}, which is gone; running here")
    _check_commit(record, cwd)
    options = {
        "name": name or record.name,
        "experiment": experiment or record.experiment,
        "kind": kind or record.kind,
        "parent": record.id,
        "tags": [*record.tags, *(t for t in tags if t not in record.tags)],
        "note": note,
        "quiet": quiet,
        "json": json,
        "no_wait": no_wait,
        "no_capture": no_capture,
        "no_autolog": no_autolog,
        "no_system_metrics": no_system_metrics,
        "system_interval": system_interval,
        "artifacts": list(artifacts),
    }
    os.chdir(cwd)
    return Launch(options, command, url, env).run()


def _no_such_flag(number: int, assignment: str, close: list[str]) -> str:
    """``--set batch_size=64`` of a flag the command does not have: the program may spell it
    ``--batch-size`` or ``--batch_size``, so expbook does not guess."""
    key, _, value = assignment.partition("=")
    key = key.strip()
    spellings = dict.fromkeys([key, key.replace("_", "-"), key.replace("-", "_")])
    dashes = "-" if len(key) == 1 else "--"
    ways = " or ".join(f"--set {dashes}{k}={value}" for k in spellings)
    hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
    return (
        f"--set {assignment}: run #{number}'s command has no flag {key}{hint}; to add it, write "
        f"it as the program spells it: {ways}"
    )


def _settings(cwd: str, assignments: tuple[str, ...]) -> Any:
    """The run settings that apply in ``cwd`` (``booleans`` matter to --set); a broken
    ``expbook.toml`` is a warning."""
    from expbook.runner.settings import find_settings_file, load_settings

    if not assignments:
        return load_settings(None)
    try:
        return load_settings(find_settings_file(cwd))
    except ExpbookError as exc:
        _warn(f"{exc}; --set goes on without it")
        return load_settings(None)


def _check_commit(record: Any, cwd: str) -> None:
    """Warn unless the code here is the same clean commit the run used."""
    from expbook.tracking.capture import capture_git

    if not record.git.commit:
        return
    now = capture_git(cwd)
    same = now is not None and now.commit == record.git.commit
    if same and not now.dirty and not record.git.dirty:
        return
    here = "no git repository" if now is None else _describe(now.commit, now.dirty)
    then = _describe(record.git.commit, record.git.dirty)
    _warn(f"the code here is at {here}; run #{record.number} ran at {then}")


def _describe(commit: str | None, dirty: bool | None) -> str:
    return f"{(commit or 'no commit')[:8]}{' with uncommitted changes' if dirty else ''}"


def _warn(message: str) -> None:
    sys.stderr.write(f"expbook: warning: {message}\n")


def recover(*, list_only: bool, as_json: bool, store: str | None) -> int:
    """``expbook recover``: 0 when every orphaned run was stored (or none waited), else 1."""
    from expbook.runner.recover import RecoverError, orphans
    from expbook.runner.recover import recover as recover_one

    url = resolve_url(store)
    waiting = orphans(url)
    if list_only:
        _list_orphans(waiting, as_json)
        return 0
    if not waiting:
        _say_line("no runs wait to be recovered", as_json, [])
        return 0
    results, failures = [], 0
    for orphan in waiting:
        name = f"#{orphan.number}" if orphan.number else orphan.spool.run_id[:8]
        try:
            done = recover_one(orphan)
        except RecoverError as exc:
            failures += 1
            results.append({"run": orphan.number, "id": orphan.spool.run_id, "error": str(exc)})
            if not as_json:
                sys.stderr.write(f"error: run {name} could not be recovered: {exc}\n")
            continue
        results.append(done)
        if not as_json:
            lines = f" ({done['lines']} lines of output)" if "lines" in done else ""
            print(f"recovered run #{done.get('run') or name}: {done.get('status')}{lines}")
    if as_json:
        import json

        print(json.dumps(results))
    return 1 if failures else 0


def _list_orphans(waiting: list[Any], as_json: bool) -> None:
    import json

    rows = [
        {
            "run": o.number, "id": o.spool.run_id, "command": o.command,
            "started_at": o.started_at, "program_ended": o.ended, "output_bytes": o.output_bytes,
            "reason": o.reason, "spool": o.spool.path,
        }
        for o in waiting
    ]  # fmt: skip
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        print("no runs wait to be recovered")
        return
    for row in rows:
        name = f"#{row['run']}" if row["run"] else row["id"][:8]
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["started_at"]))
        ended = "ended" if row["program_ended"] else "end unknown"
        why = f"; {row['reason']}" if row["reason"] else ""
        size = f"{row['output_bytes']} bytes of output"
        print(f"{name}  {started}  {shlex.join(row['command'])}  ({ended}, {size}{why})")


def _say_line(text: str, as_json: bool, empty: list[Any]) -> None:
    if as_json:
        import json

        print(json.dumps(empty))
    else:
        print(text)


def parse(*, file: str, show_all: bool, settings: str | None, as_json: bool) -> None:
    """``expbook parse``: each line of a log with what the parsers made of it."""
    from expbook.runner.explain import as_json as line_json
    from expbook.runner.explain import describe, explain, read_output
    from expbook.runner.parsers import UserPattern
    from expbook.runner.settings import find_settings_file, load_settings

    chosen = load_settings(settings if settings else find_settings_file(os.getcwd()))
    try:
        chunks = read_output(file)
    except OSError as exc:
        raise ExpbookError(f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        patterns = [UserPattern(**pattern) for pattern in chosen.patterns]
        lines = explain(chunks, patterns, chosen.ignore_metrics)
    except (TypeError, ValueError) as exc:
        raise ExpbookError(f"expbook.toml: {exc}") from None
    counts = {"lines": 0, "drawings": 0, "read": 0, "points": 0, "values": 0}
    keys: set[str] = set()
    for line in lines:
        counts["drawings" if line.redraw else "lines"] += 1
        read = bool(line.points or line.summaries or line.problems)
        counts["read"] += read
        counts["points"] += len(line.points)
        counts["values"] += len(line.summaries)
        keys.update(key for _, _, values in line.points for key in values)
        keys.update(summary.key for summary in line.summaries)
        if as_json:
            print(line_json(line))
        elif read or show_all:
            mark = "~" if line.redraw else " "  # an earlier drawing of the line (a bar)
            print(f"{line.number:>6}{mark} {strip_ansi(line.text)}")
            print(f"{'':>6}  -> {describe(line)}")
    if not as_json:
        source = f" (patterns from {chosen.source})" if chosen.source else ""
        drawn = counts["drawings"]
        drawings = f" and {drawn} earlier drawings of bars" if drawn else ""
        print(
            f"{counts['lines']} lines{drawings}, {counts['read']} read: {counts['points']} "
            f"points and {counts['values']} summary values of {len(keys)} keys{source}"
        )
