"""Editing a started sweep: widen or narrow a range, add values, replace a parameter or the whole
spec, raise the budget; attaching existing runs as trials.

An edit is a function from the stored spec (W&B's mapping plus ``expbook:``) to a new one
(:func:`edited`); :func:`apply_edit` reads the sweep, applies it, validates the result with
``parse_spec`` (one line naming the field), and stores it with
``Store.update_sweep(expected_version=...)``. Agents move the version with every trial they add,
so a busy sweep conflicts often: on a conflict the edit is applied again to the spec as it is now,
up to :data:`EDIT_ATTEMPTS` times. Two people editing at once both get their change, one after the
other.

The spec each edit replaced is kept by the store in the transaction that replaced it
(``Store.sweep_history``: the version it had, when it was replaced, the spec), so ``expbook sweep
show S --history`` can print what changed, and no edit's history is lost to another's.

Trials already run keep their params: those outside the new space stay as history (listed,
counted, ranked) but are left out of the Optuna study (the engine, and parameter importance,
rebuild it only from trials that ``space.contains``), so the search continues in the new space.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from expbook.columns import did_you_mean
from expbook.errors import ExpbookError
from expbook.model import (
    RunRecord,
    RunStatus,
    SpecVersion,
    SweepRecord,
    SweepState,
    TrialRecord,
    TrialState,
)
from expbook.store import Store
from expbook.sweep.spec import SweepSpec, SweepSpecError, parse_spec

EDIT_ATTEMPTS = 50
"""Compare-and-set attempts before an edit gives up (each re-reads the sweep)."""
PARAM_KEYS = (
    "min",
    "max",
    "q",
    "mu",
    "sigma",
    "a",
    "b",
    "value",
    "values",
    "probabilities",
    "distribution",
)

Edit = Callable[[dict[str, Any]], dict[str, Any]]


class SweepEditError(ExpbookError, ValueError):
    """An edit cannot be applied (an option names no parameter, a value cannot be added...);
    the message names the option and the parameter."""


class SweepConflictError(ExpbookError):
    """The sweep kept changing under an edit (or an attach) for every attempt."""


@dataclass(frozen=True)
class EditResult:
    """What an edit did: the sweep before and after, and both specs (as stored)."""

    before: SweepRecord
    after: SweepRecord | None
    old: Mapping[str, Any]
    new: Mapping[str, Any]
    attempts: int

    @property
    def diff(self) -> list[str]:
        return spec_diff(
            self.old, self.new, f"{self.before.name} (before)", f"{self.before.name} (after)"
        )


# ---------------------------------------------------------------------------------------------
# Edits: pure functions of the stored spec


def read_value(text: str, option: str, given: str | None = None) -> Any:
    """A value as YAML (``1e-5`` is a number, as in spec files; ``{min: 0, max: 0.3}`` a
    mapping, ``[1, 2]`` a list)."""
    import yaml

    # NOTE(sweep-admin): the spec module's YAML loader reads 1e-5 as W&B's server does.
    from expbook.sweep.spec import _loader

    try:
        return yaml.load(text, Loader=_loader())
    except yaml.YAMLError as error:
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SweepEditError(
            f"{option} {given or repr(text)}: not a YAML value: {problem}"
        ) from None


def _split(assignment: str, option: str, form: str) -> tuple[str, str]:
    name, sep, value = assignment.partition("=")
    if not sep or not name.strip():
        raise SweepEditError(f"{option} {assignment!r}: expected {form}")
    return name.strip(), value


def _param_node(raw: dict[str, Any], spec: SweepSpec, name: str, option: str) -> dict[str, Any]:
    """The mapping that defines parameter ``name`` (a flat name) inside ``raw``."""
    try:
        param = spec.param(name)
    except KeyError:
        known = [p.name for p in spec.parameters]
        raise SweepEditError(
            f"{option}: no parameter {name!r} in the sweep{did_you_mean(name, known)}"
        ) from None
    node: Any = raw["parameters"]
    path = param.path or (name,)
    for depth, part in enumerate(path):
        node = node[part]
        if depth < len(path) - 1:
            node = node["parameters"]
    return node


def set_param_key(assignment: str) -> Edit:
    """``--param NAME.KEY=VALUE``: set one key (``min``, ``max``, ``q``, ``values``...) of a
    parameter's definition; ``NAME.KEY=null`` removes the key."""
    target, text = _split(assignment, "--param", "NAME.KEY=VALUE, e.g. lr.max=0.1")
    name, dot, key = target.rpartition(".")
    if not dot or key not in PARAM_KEYS:
        raise SweepEditError(
            f"--param {assignment!r}: expected NAME.KEY=VALUE with KEY one of "
            f"{', '.join(PARAM_KEYS)}"
        )
    value = read_value(text, "--param", repr(assignment))

    def edit(raw: dict[str, Any]) -> dict[str, Any]:
        node = _param_node(raw, parse_spec(raw), name, "--param")
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
        return raw

    return edit


def add_values(assignment: str) -> Edit:
    """``--add-values NAME=VALUE`` (or ``NAME=[V1, V2]``): add values to a parameter that takes
    a list of values (a constant becomes a list of its value and the new ones). Values it has
    already are skipped."""
    name, text = _split(assignment, "--add-values", "NAME=VALUE or NAME=[V1, V2]")
    given = read_value(text, "--add-values", repr(assignment))
    values = given if isinstance(given, list) else [given]

    def edit(raw: dict[str, Any]) -> dict[str, Any]:
        node = _param_node(raw, parse_spec(raw), name, "--add-values")
        if "value" in node and "values" not in node:
            node["values"] = [node.pop("value")]
            node.pop("distribution", None)
        if "values" not in node:
            raise SweepEditError(
                f"--add-values: parameter {name!r} is a range, not a list of values; widen it "
                f"with --param {name}.min=... or --param {name}.max=..."
            )
        have = {json.dumps(v, sort_keys=True) for v in node["values"]}
        for value in values:
            if json.dumps(value, sort_keys=True) not in have:
                node["values"].append(value)
                have.add(json.dumps(value, sort_keys=True))
        return raw

    return edit


def set_path(assignment: str) -> Edit:
    """``--set PATH=YAML``: replace the value at a dotted path of the spec
    (``parameters.dropout={min: 0, max: 0.3}``, ``expbook.repeats=3``); ``PATH=null`` removes
    it. A key that holds a dot (a parameter named ``optimizer.lr``) is found as it is."""
    path, text = _split(
        assignment, "--set", "PATH=VALUE, e.g. 'parameters.dropout={min: 0, max: 0.3}'"
    )
    value = read_value(text, "--set", repr(assignment))

    def edit(raw: dict[str, Any]) -> dict[str, Any]:
        node, key = _resolve(raw, path.split("."), assignment)
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
        return raw

    return edit


def _resolve(
    node: dict[str, Any], parts: list[str], assignment: str
) -> tuple[dict[str, Any], str]:
    """The mapping holding the last key of ``parts`` (created on the way), and that key. At each
    level the longest run of parts that is an existing key wins."""
    while True:
        for end in range(len(parts), 0, -1):
            key = ".".join(parts[:end])
            if key in node:
                break
        else:
            key, end = parts[0], 1
        if end == len(parts):
            return node, key
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise SweepEditError(f"--set {assignment!r}: {key!r} holds a value, not a mapping")
        node, parts = child, parts[end:]


def set_budget(
    *, trials: int | None = None, run_cap: int | None = None, timeout: str | None = None
) -> Edit:
    """``--trials``, ``--run-cap``, ``--timeout``: the budget (where the spec has it:
    ``expbook.budget.trials`` or ``expbook.trials``; W&B's ``run_cap``)."""

    def edit(raw: dict[str, Any]) -> dict[str, Any]:
        if run_cap is not None:
            raw["run_cap"] = run_cap
        for key, value in (("trials", trials), ("timeout", timeout)):
            if value is None:
                continue
            block = raw.setdefault("expbook", {})
            if not isinstance(block, dict):
                raise SweepEditError("expbook: is not a mapping")
            if key in block and "budget" not in block:
                block[key] = value
            else:
                block.setdefault("budget", {})[key] = value
        return raw

    return edit


def replace_spec(new_raw: Mapping[str, Any]) -> Edit:
    """``--spec FILE``: the whole spec replaced."""

    def edit(raw: dict[str, Any]) -> dict[str, Any]:
        return copy.deepcopy(dict(new_raw))

    return edit


def edited(raw: Mapping[str, Any], edits: Sequence[Edit]) -> dict[str, Any]:
    """The spec after ``edits``, applied in order to a copy of ``raw`` (not validated)."""
    out = copy.deepcopy(dict(raw))
    for edit in edits:
        out = edit(out)
    return out


def check_edit(
    sweep: SweepRecord, old: SweepSpec, new: SweepSpec, trials: Sequence[TrialRecord]
) -> None:
    """Refuse what a started sweep cannot change: the metrics (its trials' values measure the
    old ones) once a trial has a value, and the experiment its runs are in.

    Raises:
        SweepSpecError: naming the field.
    """
    scored = [t for t in trials if t.values]
    before = [(m.name, m.goal) for m in old.metrics]
    after = [(m.name, m.goal) for m in new.metrics]
    if scored and before != after:
        shown = ", ".join(f"{n} ({g})" for n, g in before) or "none"
        raise SweepSpecError(
            "metric",
            f"cannot change in a started sweep: {len(scored)} trials "
            f"hold values of {shown}; create a new sweep",
        )
    if new.experiment is not None and new.experiment != sweep.experiment:
        raise SweepSpecError(
            "expbook.experiment",
            f"cannot change in a started sweep (its runs "
            f"are in {sweep.experiment!r}); move runs with `expbook experiment "
            "move`",
        )


# ---------------------------------------------------------------------------------------------
# Applying an edit


def apply_edit(
    store: Store, ref: str, edits: Sequence[Edit], *, dry_run: bool = False
) -> EditResult:
    """Apply ``edits`` to the sweep ``ref`` names, retried on a version conflict.

    Raises:
        SweepNotFoundError: no such sweep.
        SweepSpecError: the edited spec is invalid, or changes what cannot change.
        SweepEditError: an edit names no parameter, or changes nothing.
        SweepConflictError: the sweep changed under every attempt.
    """
    for attempt in range(1, EDIT_ATTEMPTS + 1):
        sweep = store.get_sweep(ref)
        new_raw = edited(sweep.spec, edits)
        if new_raw == dict(sweep.spec):
            raise SweepEditError(f"nothing to change: sweep {sweep.name!r} already has that spec")
        new = parse_spec(new_raw)
        check_edit(sweep, parse_spec(sweep.spec), new, store.list_trials(sweep.id))
        if dry_run:
            return EditResult(sweep, None, sweep.spec, new.raw, attempt)
        after = store.update_sweep(sweep.id, spec=new.raw, expected_version=sweep.version)
        if after is not None:  # the store kept the replaced spec in the same transaction
            return EditResult(sweep, after, sweep.spec, new.raw, attempt)
        time.sleep(min(0.001 * 2**attempt, 0.1))
    raise SweepConflictError(
        f"sweep {ref!r} changed under each of {EDIT_ATTEMPTS} attempts to edit it; try again"
    )


def spec_diff(
    old: Mapping[str, Any], new: Mapping[str, Any], before: str, after: str
) -> list[str]:
    """A unified diff of two specs written as YAML, keys sorted (a reordered file is no change)."""
    import difflib

    return list(difflib.unified_diff(_yaml(old), _yaml(new), before, after, lineterm=""))


def _yaml(spec: Mapping[str, Any]) -> list[str]:
    import yaml

    text = yaml.safe_dump(dict(spec), sort_keys=True, default_flow_style=False, allow_unicode=True)
    return text.splitlines()


# ---------------------------------------------------------------------------------------------
# History


def history(store: Store, sweep: SweepRecord) -> list[SpecVersion]:
    """The specs the sweep's edits replaced, oldest first (``Store.sweep_history``)."""
    return store.sweep_history(sweep.id)


# ---------------------------------------------------------------------------------------------
# Attaching runs


@dataclass(frozen=True)
class Attachment:
    """A run as the trial it would become: params of the spec (and its seed param, when the run
    has one), values of the spec's metrics."""

    run: RunRecord
    params: Mapping[str, Any]
    values: tuple[float | None, ...]


def check_attachable(
    spec: SweepSpec, sweep: SweepRecord, run: RunRecord, trials: Sequence[TrialRecord]
) -> Attachment:
    """The trial a run would become: its params (the spec's parameters) and values (its
    metrics' latest values).

    Raises:
        SweepEditError: one line naming the run and what keeps it out (the parameter outside the
            space, the missing metric, its status, or that it is a trial already).
    """
    from expbook.sweep import space

    if any(t.run_id == run.id for t in trials):
        number = next(t.number for t in trials if t.run_id == run.id)
        raise SweepEditError(f"run {run.ref} is trial {number} of sweep {sweep.name!r} already")
    if run.status is not RunStatus.FINISHED:
        raise SweepEditError(
            f"run {run.ref} is {run.status.value}; only finished runs can be attached"
        )
    reason = space.why_not(spec, run.params)
    if reason is not None:
        raise SweepEditError(f"run {run.ref} is outside sweep {sweep.name!r}: {reason}")
    metric = spec.metric
    if metric is not None and run.metric(metric.name) is None:
        raise SweepEditError(
            f"run {run.ref} has no metric {metric.name!r} (the sweep's {metric.goal} target)"
        )
    names = [p.name for p in spec.parameters]
    if spec.seed_param is not None and spec.seed_param in run.params:
        names.append(spec.seed_param)  # as the agent's trials hold it
    params = {name: run.params[name] for name in names}
    values = tuple(run.metric(m.name) for m in spec.metrics)
    return Attachment(run, params, values)


def attach_runs(store: Store, ref: str, runs: Sequence[str]) -> list[TrialRecord]:
    """Make finished runs finished trials of the sweep ``ref`` names (all or none: every run is
    checked before the first is attached). Each joins the configuration with the same params,
    as its next repeat, or becomes a new configuration; its run gets the tag ``sweep:NAME``.

    Raises:
        SweepEditError: a run cannot be attached (see ``check_attachable``) or the sweep is not
            running.
        RunNotFoundError, SweepNotFoundError: a reference names nothing.
        SweepConflictError: the sweep changed under every attempt.
    """
    records = list({r.id: r for r in (store.run(ref_) for ref_ in runs)}.values())
    sweep = _running(store.get_sweep(ref))
    spec, trials = parse_spec(sweep.spec), store.list_trials(sweep.id)
    for record in records:
        check_attachable(spec, sweep, record, trials)
    return [_attach(store, ref, record) for record in records]


def _running(sweep: SweepRecord) -> SweepRecord:
    if sweep.state != SweepState.RUNNING:
        raise SweepEditError(
            f"sweep {sweep.name!r} is {sweep.state}; trials are added only to a "
            f"running sweep (expbook sweep resume {sweep.name})"
        )
    return sweep


def _attach(store: Store, ref: str, record: RunRecord) -> TrialRecord:
    from expbook.sweep import space

    for attempt in range(EDIT_ATTEMPTS):
        sweep = _running(store.get_sweep(ref))
        spec, trials = parse_spec(sweep.spec), store.list_trials(sweep.id)
        this = check_attachable(spec, sweep, record, trials)
        key = space.config_key({k: v for k, v in this.params.items() if k != spec.seed_param})
        same = [t for t in trials if t.config_key == key]
        trial = store.add_trial(
            sweep.id,
            expected_version=sweep.version,
            params=this.params,
            config_key=key,
            config=same[0].config if same else None,
            repeat=max((t.repeat for t in same), default=-1) + 1,
            worker=None,
            state=TrialState.FINISHED,
            run_id=record.id,
            values=this.values,
        )
        if trial is not None:
            store.add_tags(record, f"sweep:{sweep.name}")
            return trial
        time.sleep(min(0.001 * 2**attempt, 0.1))
    raise SweepConflictError(
        f"sweep {ref!r} changed under each of {EDIT_ATTEMPTS} attempts to "
        f"attach {record.ref}; try again"
    )
