"""Launchers on a command line (``env``, ``uv run``, ``torchrun``, ``srun``, the Python
interpreter...), unwrapped to find the command they run.

One table, `_LAUNCHERS` (and `_MODULES` for ``python -m``), says for each launcher which of its
options take values and how to find the command it runs. `unwrap` reads a command line into a
`Command`: its launchers (each a `Layer`) and where the program and its arguments are.
`layer_flags` gives a launcher's options as flags, which `expbook.runner.argv` reads as params and
`expbook.runner.rewrite` changes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from expbook.runner.settings import normalize_flag
from expbook.runner.tokens import ENV_NAME, Flag, is_flag, is_number


@dataclass(frozen=True, slots=True)
class _Launcher:
    """How to read a launcher's own words and find the command it runs.

    Options are looked up as written, long ones (``--x``) with ``_`` read as ``-``. A word that
    is neither an option nor an option's value is the command, except a number (never a program:
    it is taken as the value of the option before it).
    """

    namespace: str | None  # its options are params "<namespace>.<option>"; None: not params
    subcommand: str | None = None  # must come first ("run" in "uv run"), else not a launcher
    values: Mapping[str, int] = field(default_factory=dict)  # option -> how many value words
    default_values: int = 0  # for options not in `values`
    module: frozenset[str] = frozenset()  # options after which the command is a Python module
    code: frozenset[str] = frozenset()  # options whose value is program text (python -c)
    environment: bool = False  # NAME=value words before the command are its environment
    positionals: int = 0  # words of its own after its options (timeout's DURATION)


def _takes(count: int, options: str) -> dict[str, int]:
    """``{option: count}`` for each option in ``options``, separated by whitespace."""
    return dict.fromkeys(options.split(), count)


def _conda(name: str) -> _Launcher:
    return _Launcher(name, "run", _takes(1, "-n --name -p --prefix --cwd"))


def _mpi(name: str) -> _Launcher:
    return _Launcher(name, default_values=1, values=_MPI_OPTIONS)


_MPI_OPTIONS = {
    **_takes(
        0,
        """-h --help -V --version -v --verbose -q --quiet -l --oversubscribe -oversubscribe
        --allow-run-as-root -allow-run-as-root --tag-output -tag-output --timestamp-output
        -timestamp-output --report-bindings -report-bindings --display-map -display-map
        --display-allocation -display-allocation --merge-stderr-to-stdout --nolocal -nolocal
        --noprefix -noprefix --use-hwthread-cpus -use-hwthread-cpus -prepend-rank -genvall
        -genvnone""",
    ),
    **_takes(
        1,
        """-np -n -c -H -host -hosts -hostfile -machinefile -f -npernode -ppn -x -bind-to
        -map-by -rank-by -wdir -output-filename""",
    ),
    **_takes(2, "--mca -mca --gmca -gmca -genv -env"),
}
_PYTHON = _Launcher(
    None,
    values=_takes(1, "-W -X --check-hash-based-pycs"),
    module=frozenset({"-m"}),
    code=frozenset({"-c"}),
)
_SHELL = _Launcher(None, values=_takes(1, "-o -O --rcfile --init-file"), code=frozenset({"-c"}))
_TORCHRUN = _Launcher(
    "torchrun",
    default_values=1,
    values=_takes(
        0,
        """-h --help --standalone -m --module --no-python --run-path --use-env
        --virtual-local-rank""",
    ),
    module=frozenset({"-m", "--module"}),
)
_ACCELERATE = _Launcher(
    "accelerate",
    "launch",
    default_values=1,
    values=_takes(
        0,
        """-h --help -q --quiet --cpu --multi-gpu --tpu --ipex --use-xpu --enable-cpu-affinity
        --dynamo-use-fullgraph --dynamo-use-dynamic --dynamo-use-regional-compilation
        --use-deepspeed --use-fsdp --use-megatron-lm --use-parallelism-config --same-network
        -m --module --no-python --tpu-cluster --no-tpu-cluster --tpu-use-sudo --downcast-bf16
        --fp8-use-autocast-during-eval --debug""",
    ),
    module=frozenset({"-m", "--module"}),
)
_DEEPSPEED = _Launcher(
    "deepspeed",
    default_values=1,
    values=_takes(
        0,
        """-h --help --module --no-python --no-local-rank --no-ssh --no-ssh-check --force-multi
        --save-pid --elastic-training --bind-cores-to-rank""",
    ),
    module=frozenset({"--module"}),
)
_SRUN = _Launcher(
    "srun",
    default_values=1,
    values=_takes(
        0,
        """-h --help --usage -V --version -v --verbose -Q --quiet -l --label -u --unbuffered
        -X --disable-status -O --overcommit -s --oversubscribe -Z --no-allocate -H --hold
        -E --preserve-env -K --kill-on-bad-exit -I --immediate -k --no-kill --pty --exclusive
        --contiguous --test-only --overlap --exact --whole --spread-job --use-min-nodes
        --multi-prog --send-libs --quit-on-interrupt --nice --propagate --x11""",
    ),
)
_UV = _Launcher(
    "uv",
    "run",
    _takes(
        1,
        """--extra --no-extra --group --no-group --only-group --env-file --with
        --with-editable --with-requirements --package -p --python --python-platform
        --max-recursion-depth --index --default-index -i --index-url --extra-index-url -f
        --find-links -P --upgrade-package --reinstall-package --index-strategy
        --keyring-provider --resolution --prerelease --fork-strategy --exclude-newer
        --exclude-newer-package -C --config-setting --config-settings-package
        --no-build-isolation-package --link-mode --no-build-package --no-binary-package
        --refresh-package --cache-dir --python-preference --color --allow-insecure-host
        --directory --project --config-file""",
    ),
    module=frozenset({"-m", "--module"}),
)
_ENV = _Launcher(
    None, values=_takes(1, "-u --unset -C --chdir -S --split-string"), environment=True
)
_TIMEOUT = _Launcher(
    None, values=_takes(1, "-s --signal -k --kill-after"), positionals=1
)  # timeout [-s SIG] [-k DURATION] DURATION COMMAND
_STDBUF = _Launcher(None, values=_takes(1, "-i --input -o --output -e --error"))
_XVFB_RUN = _Launcher(
    None,
    values=_takes(
        1,
        "-n --server-num -s --server-args -f --auth-file -e --error-file -p --xauth-protocol"
        " -w --wait",
    ),
)
_LAUNCHERS: dict[str, _Launcher] = {
    "env": _ENV,
    "nohup": _Launcher("nohup"),
    "timeout": _TIMEOUT,
    "stdbuf": _STDBUF,
    "xvfb-run": _XVFB_RUN,
    "time": _Launcher("time", values=_takes(1, "-f --format -o --output")),
    "nice": _Launcher("nice", values=_takes(1, "-n --adjustment")),
    "uv": _UV,
    "poetry": _Launcher("poetry", "run", _takes(1, "-C --directory -P --project")),
    "pipenv": _Launcher("pipenv", "run", _takes(1, "--python")),
    "conda": _conda("conda"),
    "mamba": _conda("mamba"),
    "micromamba": _conda("micromamba"),
    "torchrun": _TORCHRUN,
    "accelerate": _ACCELERATE,
    "deepspeed": _DEEPSPEED,
    "srun": _SRUN,
    "mpirun": _mpi("mpirun"),
    "mpiexec": _mpi("mpiexec"),
    **dict.fromkeys(("sh", "bash", "zsh", "dash", "ksh"), _SHELL),
}
_MODULES: dict[str, _Launcher] = {  # python -m MODULE
    "torch.distributed.run": _TORCHRUN,
    "torch.distributed.launch": _TORCHRUN,
    "accelerate.commands.launch": replace(_ACCELERATE, subcommand=None),
    "deepspeed.launcher.runner": _DEEPSPEED,
}
_PYTHON_NAME = re.compile(r"(python|pypy)[\d.]*")


@dataclass(frozen=True, slots=True)
class Layer:
    """One launcher on a command line, by word index."""

    spec: _Launcher
    start: int  # its program word
    end: int  # where its own words end ("--", the command, python's -c): options go in here
    options: tuple[tuple[int, int], ...]  # each option's index and the index after its values
    environment: tuple[int, ...]  # its NAME=value words
    command: int | None  # the command it runs; None for code (-c), stdin (-) or none
    args: int  # where the arguments of what it runs begin
    module: bool  # the command is a Python module


@dataclass(frozen=True, slots=True)
class Command:
    """A command line with its launchers unwrapped, by word index."""

    layers: tuple[Layer, ...]
    environment: tuple[int, ...]  # NAME=value words, leading ones and env's
    prefix: int  # where the leading NAME=value words end
    program: int  # the word that names the program (a launcher's, for -c, -, or nothing run)
    module: bool  # the program is a Python module
    start: int  # where the program's arguments begin


def unwrap(words: Sequence[str]) -> Command:
    prefix = 0
    while prefix < len(words) and _is_environment(words[prefix]):
        prefix += 1
    layers: list[Layer] = []
    program, module, start = prefix, False, prefix + 1
    while program < len(words):
        spec = _launcher(words[program], module)
        layer = None if spec is None else _layer(words, program, spec)
        if layer is None:
            break
        layers.append(layer)
        if layer.command is None:
            program, module, start = layer.start, False, layer.args
            break
        program, module, start = layer.command, layer.module, layer.command + 1
    environment = (*range(prefix), *(i for each in layers for i in each.environment))
    return Command(tuple(layers), environment, prefix, program, module, start)


def _is_environment(word: str) -> bool:
    name, eq, _ = word.partition("=")
    return bool(eq) and ENV_NAME.fullmatch(name) is not None


def _launcher(word: str, module: bool) -> _Launcher | None:
    if module:
        return _MODULES.get(word)
    name = os.path.basename(word)
    return _PYTHON if _PYTHON_NAME.fullmatch(name) else _LAUNCHERS.get(name)


def _layer(words: Sequence[str], start: int, spec: _Launcher) -> Layer | None:
    """Read a launcher's words from ``words[start]``; None when it is not used as a launcher
    here (``uv pip install``: not the subcommand that runs a command)."""
    options: list[tuple[int, int]] = []
    environment: list[int] = []

    def layer(end: int, command: int | None, args: int, module: bool = False) -> Layer:
        return Layer(spec, start, end, tuple(options), tuple(environment), command, args, module)

    waiting, module, index = spec.subcommand, False, start + 1
    positionals = spec.positionals
    while index < len(words) and words[index] != "--":
        word = words[index]
        if word.startswith("-") and word != "-":
            count, kind = option_kind(word, spec)
            if kind == "code":
                return layer(index, None, index + 2)
            module = module or kind == "module"
            options.append((index, min(index + 1 + count, len(words))))
            index = options[-1][1]
        elif spec.environment and _is_environment(word):
            environment.append(index)
            index += 1
        elif waiting is not None:
            if word != waiting:
                return None
            waiting, index = None, index + 1
        elif positionals:
            positionals, index = positionals - 1, index + 1
        elif is_number(word):  # not a program: the value of an option we do not know
            if options and options[-1][1] == index:
                options[-1] = (options[-1][0], index + 1)
            index += 1
        else:
            break
    if waiting is not None:
        return None
    end = index
    index += index < len(words) and words[index] == "--"
    if index >= len(words) or words[index] == "-":
        return layer(end, None, index + 1)
    return layer(end, index, index + 1, module)


def option_kind(word: str, spec: _Launcher) -> tuple[int, str]:
    """How many value words a launcher's option takes, and "module", "code", "attached" (a
    short option with its value, ``-N2``) or ""."""
    if "=" in word:
        return 0, ""
    name = "--" + word[2:].replace("_", "-") if word.startswith("--") else word
    known = _known_option(name, spec)
    if known is not None:
        return known
    if len(name) > 2 and not name.startswith("--"):  # short options together: -uc, -N2, -Wall
        first = _known_option(name[:2], spec) or (spec.default_values, "")
        if first[0] > 0:
            return 0, "attached"  # -N2: -N with the value 2
        return _known_option("-" + name[-1], spec) or (0, "")
    return spec.default_values, ""


def _known_option(name: str, spec: _Launcher) -> tuple[int, str] | None:
    if name in spec.code:
        return 1, "code"
    if name in spec.module:
        return spec.values.get(name, 0), "module"
    if name in spec.values:
        return spec.values[name], ""
    return None


def layer_flags(words: Sequence[str], layer: Layer) -> list[Flag]:
    """A launcher's options as flags (keys with its namespace); none when it has none."""
    namespace = layer.spec.namespace
    flags: list[Flag] = []
    for index, stop in layer.options if namespace else ():
        key, eq, raw = words[index].lstrip("-").partition("=")
        if not is_flag(words[index]) or not key:
            continue
        form = "equals" if eq else "separate" if stop > index + 1 else "bare"
        if form == "bare" and option_kind(words[index], layer.spec)[1] == "attached":
            key, raw, form = key[0], key[1:], "attached"
        value = {"bare": None, "separate": " ".join(words[index + 1 : stop])}.get(form, raw)
        name = f"{namespace}.{key}"
        flags.append(Flag(name, normalize_flag(name), value, 0, False, index, stop, form))
    return flags
