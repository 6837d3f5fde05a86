"""``expbook run --repeat N --seed-flag FLAG``: one configuration, N seeds, N runs.

Each repeat is an ordinary ``expbook run`` of the command with the seed flag set to the next
seed (the command's own seed, else 0, then +1, +2...), so the runs differ only in their seed and
``expbook compare`` and the report group them as repeats of one configuration. A flag whose
name is not a seed's (``--rng 3``) is declared with a ``seed:PARAM`` tag on each run.
"""

from __future__ import annotations

import sys
from typing import Any

from expbook.errors import InvalidValueError

MAX_REPEATS = 1000


def run_repeats(options: dict[str, Any], command: list[str], url: str, env: dict[str, str]) -> int:
    """Run the repeats one after the other; stop early only when one is interrupted (Ctrl-C,
    a signal). Returns the first non-zero exit status, else 0."""
    from expbook.runner.launch import Launch

    count, flag = _count(options.get("repeat")), options.get("seed_flag") or "seed"
    key = _key(flag)
    seeds = range(_first_seed(command, key), _first_seed(command, key) + count)
    base = {k: v for k, v in options.items() if k not in ("repeat", "seed_flag")}
    tags = list(base.get("tags") or [])
    if not _is_seed_name(key) and f"seed:{key}" not in tags:
        tags.append(f"seed:{key}")
    # Each repeat returns once its run is stored (never --no-wait here), so the next one gets
    # the next number and recorders do not pile up.
    base["no_wait"] = False
    status, numbers = 0, []
    for n, seed in enumerate(seeds, 1):
        argv = _with_seed(command, flag, seed)
        _say(f"repeat {n}/{count}: {key} = {seed}")
        launch = Launch({**base, "tags": tags}, argv, url, dict(env))
        code = launch.run()
        numbers.append(launch.result["run"] if launch.result else None)
        status = status or code
        if code >= 128 or code < 0:  # interrupted: the user wants to stop
            break
    _summary(numbers, count, key)
    return status


def _count(text: Any) -> int:
    try:
        count = int(text if text is not None else 1)
    except ValueError:
        raise InvalidValueError(f"--repeat {text!r}: give a number of runs") from None
    if not 1 <= count <= MAX_REPEATS:
        raise InvalidValueError(f"--repeat {count}: give 1 to {MAX_REPEATS}")
    return count


def _key(flag: str) -> str:
    """The param name of a seed flag: ``--seed`` → ``seed``, ``--random-seed`` →
    ``random-seed``, ``training.seed`` (Hydra) stays."""
    key = flag.lstrip("-+")
    if not key:
        raise InvalidValueError(f"--seed-flag {flag!r}: give the flag's name, like --seed")
    return key


def _is_seed_name(key: str) -> bool:
    from expbook.report.stats import is_seed

    return is_seed(key)


def _first_seed(command: list[str], key: str) -> int:
    """The seed the command already has (an integer), else 0."""
    from expbook.runner.argv import command_params

    params = command_params(command)
    for name, value in params.items():
        if _same(name, key) and isinstance(value, int) and not isinstance(value, bool):
            return value
    return 0


def _same(name: str, key: str) -> bool:
    def norm(text: str) -> str:
        return text.lstrip("-+").replace("-", "_").lower()

    return norm(name) == norm(key)


def _with_seed(command: list[str], flag: str, seed: int) -> list[str]:
    from expbook.runner.rewrite import with_flags

    return with_flags(command, [f"{flag}={seed}"])


def _summary(numbers: list[int | None], count: int, key: str) -> None:
    """One line naming the repeats by number."""
    recorded = [str(number) for number in numbers if number is not None]
    if recorded:
        listed = ", ".join("#" + n for n in recorded)
        _say(f"{len(recorded)} repeats over {key}: runs {listed}; "
             f"expbook compare {recorded[0]} OTHER_RUN")  # fmt: skip
    else:
        _say(f"{len(numbers)} of {count} repeats over {key} run; none was recorded")


def _say(message: str) -> None:
    sys.stderr.write(f"expbook: {message}\n")
    sys.stderr.flush()
