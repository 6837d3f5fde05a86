"""A trial's command line: the spec's ``command`` with W&B's macros expanded as W&B's agent does.

W&B's agent (``wandb/wandb_agent.py`` ``_command_run`` and ``create_sweep_command_args`` in
``wandb/sdk/launch/sweeps/utils.py``) replaces a word that is exactly ``${macro}`` by a list of
words; the parameters go in as they are in the run's config: nested parameters as one dict per
top-level key, keys sorted, each value written with Python's ``str`` (``--flag=True``,
``--optimizer={'lr': 0.1}``):

- ``${env}``: ``/usr/bin/env`` (nothing on Windows); ``${interpreter}``: ``python``;
  ``${program}``: the spec's ``program``;
- ``${args}``: ``--key=value`` each; ``${args_no_equals}``: ``--key value``;
  ``${args_no_hyphens}``: ``key=value``; ``${args_no_boolean_flags}``: ``--key`` for a true
  boolean, nothing for a false one, ``--key=value`` otherwise; ``${args_append_hydra}``:
  ``+key=value``; ``${args_override_hydra}``: ``++key=value``;
- ``${args_json}``: one word, the JSON of the config; ``${args_json_file}``: the path of a file
  holding that JSON (written under the trial's ``workdir``);
- ``${envvar:NAME}`` anywhere in a word: the environment variable NAME (NAME itself if unset).

expbook adds ``{name}`` placeholders inside words (``--lr={lr}``, ``out/{optimizer.lr}``):
the value of the parameter ``name`` (``str`` of a scalar, JSON of a list or dict; a group of
nested parameters as JSON); ``{{name}}`` is the literal text ``{name}``. Where W&B silently drops
an unknown macro or passes ``${macro}`` inside a word on as text, expbook stops with an error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from expbook.sweep.spec import SweepSpec, SweepSpecError

ARGS_JSON_FILE = "args.json"
MACROS = (
    "env",
    "interpreter",
    "program",
    "args",
    "args_no_equals",
    "args_no_hyphens",
    "args_no_boolean_flags",
    "args_json",
    "args_json_file",
    "args_append_hydra",
    "args_override_hydra",
)
_MACRO = re.compile(r"\$\{([^}]*)\}")
_ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")  # W&B's SWEEP_COMMAND_ENV_VAR_REGEX
_PLACEHOLDER = re.compile(
    r"\{\{([A-Za-z_][A-Za-z0-9_.\-]*)\}\}|(?<!\$)\{([A-Za-z_][A-Za-z0-9_.\-]*)\}"
)


def trial_command(spec: SweepSpec, params: Mapping[str, Any], *, workdir: Path) -> list[str]:
    """The command line of one trial: ``spec.command`` with its macros and placeholders
    expanded for ``params`` (flat names: the configuration, plus the seed parameter if any).

    Raises:
        SweepSpecError: a macro or placeholder names no parameter, or ``${program}`` is used
            and the spec has no ``program``.
    """
    check_command(spec, names=set(params))
    config = run_config(spec, params)
    words: list[str] = []
    for i, word in enumerate(spec.command):
        word = _ENVVAR.sub(lambda m: os.environ.get(m.group(1), m.group(1)), word)
        whole = _MACRO.fullmatch(word)
        if whole:
            words += _macro(spec, whole.group(1), config, workdir)
        else:
            words.append(_placeholders(word, params, i))
    return words


def check_command(
    spec: SweepSpec, *, names: set[str] | None = None, require_program: bool = True
) -> None:
    """Check the spec's command without running anything: every ``${macro}`` is W&B's and a
    whole word, every ``{placeholder}`` names a parameter (of ``names``, else of the spec and its
    seed parameter), and ``${program}`` has a ``program`` (when ``require_program``).

    Raises:
        SweepSpecError: naming the word (``command[2]``) or ``program``.
    """
    if names is None:
        names = {p.name for p in spec.parameters} | (
            {spec.seed_param} if spec.seed_param else set()
        )
    groups = {".".join(n.split(".")[:k]) for n in names for k in range(1, n.count(".") + 1)}
    for i, word in enumerate(spec.command):
        rest = _ENVVAR.sub("", word)
        whole = _MACRO.fullmatch(rest)
        if whole:
            _check_macro(whole.group(1), i)
            if whole.group(1) == "program" and require_program and not spec.program:
                raise SweepSpecError("program", "missing: the command runs ${program}")
            continue
        inner = _MACRO.search(rest)
        if inner:
            raise SweepSpecError(
                f"command[{i}]",
                f"{inner.group(0)} inside {word!r}: W&B expands a "
                "macro only as a whole word (use {name} for a parameter's value, "
                "${envvar:NAME} for an environment variable)",
            )
        for match in _PLACEHOLDER.finditer(word):
            name = match.group(2)
            if name is not None and name not in names and name not in groups:
                raise SweepSpecError(f"command[{i}]", f"{{{name}}} names no parameter")


def _check_macro(name: str, index: int) -> None:
    if name in MACROS:
        return
    hint = (
        f"; write {{{name}}} for a parameter's value"
        if re.fullmatch(r"[A-Za-z_][\w.\-]*", name)
        else ""
    )
    raise SweepSpecError(
        f"command[{index}]", f"${{{name}}} is not a W&B macro ({', '.join(MACROS)}){hint}"
    )


def run_config(spec: SweepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """The run's config as W&B's agent gets it: nested by the spec's paths, keys sorted."""
    from expbook.sweep.space import nest_paths

    paths = {p.name: p.path for p in spec.parameters if p.path}
    return _sorted(nest_paths(paths, params))


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    return value


def _macro(spec: SweepSpec, name: str, config: Mapping[str, Any], workdir: Path) -> list[str]:
    if name == "env":
        return [] if sys.platform == "win32" else ["/usr/bin/env"]
    if name == "interpreter":
        return [_interpreter()]
    if name == "program":
        return [spec.program]  # check_command made sure there is one
    if name == "args_json":
        return [json.dumps(config)]
    if name == "args_json_file":
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / ARGS_JSON_FILE
        path.write_text(json.dumps(config), encoding="utf-8")
        return [str(path)]
    return _flags(name, config)


def _interpreter() -> str:
    """W&B's agent runs ``python`` from PATH; where there is none, ``python3``, then the Python
    that runs expbook."""
    for candidate in ("python", "python3"):
        if shutil.which(candidate):
            return candidate
    return sys.executable


def _flags(name: str, config: Mapping[str, Any]) -> list[str]:
    words: list[str] = []
    for key, value in config.items():
        flag = f"{key}={value}"  # str(value), as W&B's f"{param}={_value}"
        if name == "args":
            words.append(f"--{flag}")
        elif name == "args_no_equals":
            words += [f"--{key}", str(value)]
        elif name == "args_no_hyphens":
            words.append(flag)
        elif name == "args_append_hydra":
            words.append(f"+{flag}")
        elif name == "args_override_hydra":
            words.append(f"++{flag}")
        elif isinstance(value, bool):  # args_no_boolean_flags
            words += [f"--{key}"] if value else []
        else:
            words.append(f"--{flag}")
    return words


def _placeholders(word: str, params: Mapping[str, Any], index: int) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return "{" + match.group(1) + "}"
        name = match.group(2)
        if name in params:
            return _text(params[name])
        from expbook.sweep.space import nest

        prefix = name + "."
        group = {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}
        if not group:
            raise SweepSpecError(f"command[{index}]", f"{{{name}}} names no parameter")
        return json.dumps(_sorted(nest(group)))

    return _PLACEHOLDER.sub(replace, word)


def _text(value: Any) -> str:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value)
    return str(value)
