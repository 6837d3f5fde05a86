"""The sweep spec: W&B's sweep configuration as W&B reads it, plus an ``expbook:`` block.

``parse_spec`` turns the mapping (``load_spec``: a YAML or JSON file) into a frozen ``SweepSpec``.
Every parameter is flattened to one ``Param`` (nested W&B ``parameters`` become dotted names,
``optimizer.lr``) whose distribution is given or inferred exactly as W&B infers it: ``value`` is a
constant, ``values`` a categorical (with ``probabilities``: a weighted one), ``min``/``max`` both
integers ``int_uniform``, else ``uniform``. ``low``/``high`` are bounds in the user's value space:
for ``log_uniform`` and ``inv_log_uniform``, whose ``min``/``max`` are natural-log exponents, they
are ``exp(min)``/``exp(max)`` (resp. ``exp(-max)``/``exp(-min)``).

Every mistake raises ``SweepSpecError`` with one line naming the field path. Keys W&B has that
expbook does not use (``project``, ``entity``, ``controller``...) are listed in ``spec.ignored``;
``spec.warnings`` holds what is valid but likely a mistake (``log_uniform`` takes exponents), one
line each, for the CLI to print.
The reference of the format is docs/sweep-spec.md.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expbook.errors import InvalidValueError

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
SAMPLERS = ("tpe", "cmaes", "gp", "qmc", "random", "grid")
PRUNERS = ("median", "percentile", "asha", "successive_halving", "hyperband", "wilcoxon", "none")
# Samplers that fit each method: a spec may not say one thing in `method` and another in `sampler`.
METHOD_SAMPLERS = {"grid": ("grid",), "random": ("random", "qmc"), "bayes": ("tpe", "cmaes", "gp")}
DEFAULT_COMMAND = ("${env}", "${interpreter}", "${program}", "${args}")
# Top-level W&B keys that expbook reads but does not use (W&B's server, Launch, its controller).
IGNORED_KEYS = (
    "project",
    "entity",
    "controller",
    "apiVersion",
    "kind",
    "job",
    "image_uri",
    "settings",
    "scheduler",
)
TOP_KEYS = (
    "method",
    "metric",
    "metrics",
    "parameters",
    "program",
    "command",
    "early_terminate",
    "run_cap",
    "name",
    "description",
    "expbook",
    *IGNORED_KEYS,
)

# Each W&B distribution: the keys it takes (besides `distribution`), their defaults, and whether
# its values are quantized by `q`. Taken from W&B's published schema (tests/data/sweeps/).
_DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "constant": (("value",), {}),
    "categorical": (("values", "probabilities"), {}),
    "categorical_w_probabilities": (("values", "probabilities"), {}),
    "int_uniform": (("min", "max"), {}),
    "uniform": (("min", "max"), {}),
    "q_uniform": (("min", "max", "q"), {"q": 1.0}),
    "log_uniform": (("min", "max"), {}),
    "log_uniform_values": (("min", "max"), {}),
    "q_log_uniform": (("min", "max", "q"), {"q": 1.0}),
    "q_log_uniform_values": (("min", "max", "q"), {"q": 1.0}),
    "inv_log_uniform": (("min", "max"), {}),
    "inv_log_uniform_values": (("min", "max"), {}),
    "normal": (("mu", "sigma"), {"mu": 0.0, "sigma": 1.0}),
    "q_normal": (("mu", "sigma", "q"), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "log_normal": (("mu", "sigma"), {"mu": 0.0, "sigma": 1.0}),
    "q_log_normal": (("mu", "sigma", "q"), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "beta": (("a", "b"), {"a": 1.0, "b": 1.0}),
    "q_beta": (("a", "b", "q"), {"a": 1.0, "b": 1.0, "q": 1.0}),
}
DISTRIBUTIONS = tuple(_DISTRIBUTIONS)
# Distributions whose min/max are values that must be positive (W&B: exclusiveMinimum 0).
_POSITIVE_MIN = ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")


class SweepSpecError(InvalidValueError):
    """A sweep spec is invalid; the message is one line naming the field path.

    Attributes:
        field: the dotted path of the offending key (``parameters.lr``), or ``""``.
        reason: what is wrong with it.
        source: the file the spec came from, if any.
    """

    def __init__(self, field: str, reason: str, source: str | None = None) -> None:
        self.field, self.reason, self.source = field, reason, source
        where = f"sweep spec {source}" if source else "sweep spec"
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")

    def in_file(self, source: str) -> SweepSpecError:
        """The same error, naming the file the spec came from."""
        return SweepSpecError(self.field, self.reason, source)


@dataclass(frozen=True)
class Metric:
    """The metric a sweep optimizes: its key as the trials log it, and the goal."""

    name: str
    goal: str = "minimize"
    target: float | None = None

    @property
    def direction(self) -> str:
        """Optuna's name for the goal: ``minimize`` or ``maximize``."""
        return self.goal


@dataclass(frozen=True)
class Param:
    """One flattened parameter of the search space.

    ``kind`` is the type of its values (``constant``, ``categorical``, ``int``, ``float``);
    ``distribution`` the W&B distribution as given or inferred. ``low``/``high`` bound its values
    in the user's space (None when unbounded: the normal family); ``log`` says the values are
    log-distributed (for plots), ``q`` the quantization step. ``path`` is the key path in the
    spec's nested ``parameters`` (``("optimizer", "lr")`` for ``optimizer.lr``).
    """

    name: str
    kind: str
    distribution: str
    value: Any = None
    values: tuple = ()
    probabilities: tuple[float, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    q: float | None = None
    mu: float | None = None
    sigma: float | None = None
    a: float | None = None
    b: float | None = None
    path: tuple[str, ...] = ()

    @property
    def is_constant(self) -> bool:
        return self.kind == "constant"

    @property
    def quantile_based(self) -> bool:
        """Whether Optuna samples a quantile in (0, 1) that scipy's ppf maps to the value
        (distributions Optuna has no counterpart for: the normal family, beta, weighted
        categoricals)."""
        return self.distribution in _QUANTILE_DISTRIBUTIONS or self.probabilities is not None


_QUANTILE_DISTRIBUTIONS = ("normal", "q_normal", "log_normal", "q_log_normal", "beta", "q_beta")


@dataclass(frozen=True)
class EarlyTerminate:
    """W&B's ``early_terminate`` block (only ``hyperband`` exists). ``strict`` defaults to True,
    as W&B's schema fills it."""

    type: str = "hyperband"
    min_iter: int | None = None
    max_iter: int | None = None
    s: int | None = None
    eta: float = 3
    strict: bool = True

    def bands(self) -> list[int]:
        """The steps at which W&B's hyperband compares runs, computed as W&B does: from
        ``min_iter`` multiplying by ``eta``, or from ``max_iter`` dividing by ``eta``, ``s``
        times."""
        if self.max_iter is not None:
            band, bands = float(self.max_iter), []
            for _ in range(int(self.s or 0)):
                band /= self.eta
                if band < 1:
                    break
                bands.append(int(band))
            return sorted(bands)
        band, bands = float(self.min_iter or 1), []
        for _ in range(100):
            bands.append(int(band))
            band *= self.eta
        return bands


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep spec (see the module docstring and docs/sweep-spec.md)."""

    method: str
    metrics: tuple[Metric, ...]
    parameters: tuple[Param, ...]
    program: str | None = None
    command: tuple[str, ...] = DEFAULT_COMMAND
    early_terminate: EarlyTerminate | None = None
    run_cap: int | None = None
    name: str | None = None
    description: str | None = None
    experiment: str | None = None
    trials: int | None = None
    timeout: float | None = None
    workers: int | None = None
    sampler: str | None = None
    sampler_options: Mapping[str, Any] = field(default_factory=dict)
    pruner: str | None = None
    pruner_options: Mapping[str, Any] = field(default_factory=dict)
    repeats: int = 1
    seed_param: str | None = None
    constraints: tuple[str, ...] = ()
    max_attempts: int = 1
    resources: Mapping[str, float] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def metric(self) -> Metric | None:
        """The first metric, or None when the sweep optimizes none."""
        return self.metrics[0] if self.metrics else None

    def param(self, name: str) -> Param:
        """The parameter called ``name``; KeyError if there is none."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def effective_sampler(self) -> str:
        """The Optuna sampler to use: ``expbook.sampler``, else the method's own."""
        return self.sampler or {"grid": "grid", "random": "random", "bayes": "tpe"}[self.method]

    @property
    def effective_pruner(self) -> str:
        """The Optuna pruner to use: ``expbook.pruner``; else ``hyperband`` when the spec has
        W&B's ``early_terminate``; else ``none``."""
        if self.pruner:
            return self.pruner
        return "hyperband" if self.early_terminate else "none"

    def budget(self) -> int | None:
        """How many trial runs the sweep may start: the least of ``trials``, ``run_cap`` and, for
        a grid, the grid's size times ``repeats``; None when unbounded (a timeout may end it)."""
        limits = [n for n in (self.trials, self.run_cap) if n is not None]
        if self.method == "grid":
            from expbook.sweep.space import grid_size

            limits.append(grid_size(self) * self.repeats)
        return min(limits) if limits else None


# ---------------------------------------------------------------------------------------------
# Reading


def load_spec(path: str | Path) -> SweepSpec:
    """Read a sweep spec from a YAML or JSON file and parse it.

    YAML is read as W&B's server reads it: ``1e-5`` is a number (PyYAML alone reads it as text).

    Raises:
        SweepSpecError: the file cannot be read, is not valid YAML/JSON, or the spec is invalid;
            the message names the file.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise SweepSpecError("", f"cannot read the file: {reason}", str(path)) from None
    data = _load_text(text, str(path), json_only=path.suffix.lower() == ".json")
    try:
        return parse_spec(data)
    except SweepSpecError as error:
        raise error.in_file(str(path)) from None


def _load_text(text: str, source: str, *, json_only: bool) -> Any:
    if json_only:
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise SweepSpecError("", f"invalid JSON: {error}", source) from None
    import yaml

    try:
        return yaml.load(text, Loader=yaml_loader())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise SweepSpecError("", f"invalid YAML: {line}{problem}", source) from None


_LOADER: Any = None


def yaml_loader() -> Any:
    """PyYAML's SafeLoader that also reads YAML 1.2 floats without a dot (``1e-5``, ``5E+3``),
    as W&B's server does: W&B's client dumps such text unquoted and its server parses a number."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class Loader(yaml.SafeLoader):
            pass

        pattern = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")
        Loader.add_implicit_resolver("tag:yaml.org,2002:float", pattern, list("-+0123456789"))
        _LOADER = Loader
    return _LOADER


_loader = yaml_loader  # the name expbook.sweep.edit imports


def parse_spec(data: Mapping[str, Any]) -> SweepSpec:
    """Parse a sweep spec given as a mapping (W&B's sweep configuration plus ``expbook:``).

    Raises:
        SweepSpecError: the spec is invalid; one line naming the field.
    """
    if not isinstance(data, Mapping):
        raise SweepSpecError("", f"expected a mapping of keys, got {_describe(data)}")
    raw = _json_copy(data, "")
    unknown = [key for key in raw if key not in TOP_KEYS]
    if unknown:
        raise SweepSpecError(
            str(unknown[0]), f"unknown key (expected one of {', '.join(TOP_KEYS[:11])})"
        )
    ignored = [key for key in IGNORED_KEYS if key in raw]
    method = _parse_method(raw)
    metrics = _parse_metrics(raw, ignored)
    params = _parse_parameters(raw.get("parameters"))
    ext = _parse_expbook(raw.get("expbook"), params, metrics)
    early = _parse_early_terminate(raw.get("early_terminate"), ignored)
    spec = SweepSpec(
        method=method,
        metrics=metrics,
        parameters=params,
        program=_opt_str(raw, "program", "program"),
        command=_parse_command(raw.get("command")),
        early_terminate=early,
        run_cap=_opt_int(raw.get("run_cap"), "run_cap", minimum=1),
        name=_opt_str(raw, "name", "name"),
        description=_opt_str(raw, "description", "description"),
        raw=raw,
        ignored=tuple(ignored),
        warnings=_warnings(params),
        **ext,
    )
    _check_consistency(spec)
    return spec


def _warnings(params: tuple[Param, ...]) -> tuple[str, ...]:
    """What is valid but likely a mistake, one line each (W&B warns about the same): the
    distributions whose min/max are natural-log exponents."""
    out = []
    for p in params:
        if p.distribution in ("log_uniform", "q_log_uniform", "inv_log_uniform"):
            out.append(
                f"{_param_path(p.path)}: {p.distribution} takes natural-log exponents, so its "
                f"values run from {p.low:.6g} to {p.high:.6g}; {p.distribution}_values takes "
                "the values themselves"
            )
    return tuple(out)


def _json_copy(value: Any, path: str) -> Any:
    """A deep copy of the spec made of JSON types only (it is stored in the database)."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SweepSpecError(
                    _join(path, str(key)), f"keys must be text, got {_describe(key)}"
                )
            out[key] = _json_copy(item, _join(path, key))
        return out
    if isinstance(value, list | tuple):
        return [_json_copy(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SweepSpecError(path, f"{value} is not a finite number")
        return value
    raise SweepSpecError(path, f"{_describe(value)} is not a JSON value")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _describe(value: Any) -> str:
    """A value as an error message shows it: JSON for scalars, the kind for the rest."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None or isinstance(value, str | int | float | bool):
        return json.dumps(value)
    return type(value).__name__


def _parse_method(raw: Mapping[str, Any]) -> str:
    if "method" not in raw:
        raise SweepSpecError("method", "missing (grid, random or bayes)")
    method = raw["method"]
    if method == "custom":
        raise SweepSpecError(
            "method",
            "custom (W&B Launch schedulers) is not supported: use "
            "grid, random or bayes, and expbook.sampler to choose Optuna's sampler",
        )
    if method not in METHODS:
        raise SweepSpecError(
            "method", f"unknown method {_describe(method)} (grid, random or bayes)"
        )
    return method


def _parse_metrics(raw: Mapping[str, Any], ignored: list[str]) -> tuple[Metric, ...]:
    ext = raw.get("expbook") if isinstance(raw.get("expbook"), Mapping) else {}
    given = [key for key in ("metric", "metrics") if key in raw] + (
        ["expbook.metrics"] if "metrics" in ext else []
    )
    if len(given) > 1:
        raise SweepSpecError(given[1], f"give either {given[0]} or {given[1]}, not both")
    if "metric" in raw:
        return (_parse_metric(raw["metric"], "metric", ignored),)
    key = given[0] if given else None
    items = raw.get("metrics") if key == "metrics" else ext.get("metrics")
    if key is None:
        return ()
    if not isinstance(items, list) or not items:
        raise SweepSpecError(key, "expected a list of metrics ({name, goal})")
    metrics = tuple(_parse_metric(m, f"{key}[{i}]", ignored) for i, m in enumerate(items))
    names = [m.name for m in metrics]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise SweepSpecError(f"{key}[{i}].name", f"{name!r} is listed twice")
    return metrics


def _parse_metric(value: Any, path: str, ignored: list[str]) -> Metric:
    if not isinstance(value, Mapping):
        raise SweepSpecError(
            path, f"expected a mapping with name and goal, got {_describe(value)}"
        )
    for key in value:
        if key in ("impute", "impute_while_running"):
            ignored.append(f"{path}.{key}")
        elif key not in ("name", "goal", "target"):
            raise SweepSpecError(f"{path}.{key}", "unknown key (name, goal, target)")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise SweepSpecError(f"{path}.name", "missing: the metric's key as the trials log it")
    goal = value.get("goal", "minimize")
    if goal not in GOALS:
        raise SweepSpecError(
            f"{path}.goal", f"unknown goal {_describe(goal)} (minimize or maximize)"
        )
    target = value.get("target")
    if target is not None:
        target = float(_number(target, f"{path}.target"))
    return Metric(name=name, goal=goal, target=target)


def _parse_early_terminate(value: Any, ignored: list[str]) -> EarlyTerminate | None:
    if value is None:
        return None
    path = "early_terminate"
    if not isinstance(value, Mapping):
        raise SweepSpecError(
            path, f"expected a mapping (type: hyperband, ...), got {_describe(value)}"
        )
    allowed = ("type", "min_iter", "max_iter", "s", "eta", "strict")
    # W&B's hyperband drops other keys "to maintain compatibility": they are ignored here too.
    ignored += [f"{path}.{key}" for key in value if key not in allowed]
    if value.get("type") != "hyperband":
        raise SweepSpecError(
            f"{path}.type", f"unknown type {_describe(value.get('type'))} (hyperband)"
        )
    min_iter = _opt_int(value.get("min_iter"), f"{path}.min_iter", minimum=1)
    max_iter = _opt_int(value.get("max_iter"), f"{path}.max_iter", minimum=1)
    s = _opt_int(value.get("s"), f"{path}.s", minimum=1)
    if min_iter is None and max_iter is None:
        raise SweepSpecError(path, "give min_iter, or max_iter and s")
    if max_iter is not None and s is None:  # W&B reads max_iter first, then fails without s
        raise SweepSpecError(f"{path}.s", "missing: max_iter needs s (how many bands below it)")
    eta = float(_number(value.get("eta", 3), f"{path}.eta"))
    if eta <= 1:
        raise SweepSpecError(f"{path}.eta", f"{eta:g} must be greater than 1")
    strict = value.get("strict", True)
    if not isinstance(strict, bool):
        raise SweepSpecError(f"{path}.strict", f"expected true or false, got {_describe(strict)}")
    early = EarlyTerminate(min_iter=min_iter, max_iter=max_iter, s=s, eta=eta, strict=strict)
    if min_iter is None and not early.bands():
        raise SweepSpecError(
            path,
            f"max_iter {max_iter} divided by eta {eta:g} leaves no band "
            "of at least 1 step: raise max_iter or lower eta",
        )
    return early


def _parse_command(value: Any) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_COMMAND
    if not isinstance(value, list) or not value:
        raise SweepSpecError("command", f"expected a list of words, got {_describe(value)}")
    words = []
    for i, word in enumerate(value):
        if isinstance(word, Mapping | list) or word is None:
            raise SweepSpecError(f"command[{i}]", f"expected a word, got {_describe(word)}")
        words.append(str(word))  # W&B's agent runs str(word): `- 10` is the word "10"
    return tuple(words)


# ---------------------------------------------------------------------------------------------
# Parameters


def _parse_parameters(value: Any) -> tuple[Param, ...]:
    if value is None:
        raise SweepSpecError("parameters", "missing: the parameters to search")
    params: list[Param] = []
    _parse_parameter_block(value, "parameters", (), params)
    seen: dict[str, Param] = {}
    for p in params:
        if p.name in seen:
            raise SweepSpecError(
                _param_path(p.path),
                f"flattens to {p.name!r}, as does {_param_path(seen[p.name].path)}",
            )
        seen[p.name] = p
    return tuple(params)


def _param_path(path: tuple[str, ...]) -> str:
    return "parameters." + ".parameters.".join(path)


def _parse_parameter_block(
    value: Any, path: str, prefix: tuple[str, ...], out: list[Param]
) -> None:
    if not isinstance(value, Mapping) or not value:
        raise SweepSpecError(
            path, f"expected a mapping of parameter names, got {_describe(value)}"
        )
    for name, config in value.items():
        if not _NAME.match(name):
            raise SweepSpecError(
                _join(path, name),
                "a parameter name starts with a letter or _ and holds letters, digits, _, . and -",
            )
        where = _join(path, name)
        if not isinstance(config, Mapping):
            raise SweepSpecError(
                where,
                f"expected a mapping (value, values, min/max, distribution or "
                f"parameters), got {_describe(config)}",
            )
        if "parameters" in config:
            extra = [key for key in config if key != "parameters"]
            if extra:
                raise SweepSpecError(
                    f"{where}.{extra[0]}", "a block of nested parameters takes only `parameters`"
                )
            _parse_parameter_block(
                config["parameters"], f"{where}.parameters", (*prefix, name), out
            )
        else:
            out.append(_parse_param((*prefix, name), config, where))


def _infer_distribution(config: Mapping[str, Any], where: str) -> str:
    """W&B's inference: value -> constant, values -> categorical (weighted with probabilities),
    min and max both integers -> int_uniform, else uniform."""
    if "value" in config:
        return "constant"
    if "values" in config:
        return "categorical_w_probabilities" if "probabilities" in config else "categorical"
    if "min" in config and "max" in config:
        if "q" in config:
            raise SweepSpecError(
                f"{where}.q",
                "q needs a quantized distribution (q_uniform, q_log_uniform_values...)",
            )
        both_int = all(_is_int(config[key]) for key in ("min", "max"))
        return "int_uniform" if both_int else "uniform"
    if "min" in config or "max" in config:
        missing = "max" if "min" in config else "min"
        raise SweepSpecError(f"{where}.{missing}", "missing: a range needs both min and max")
    raise SweepSpecError(where, "give value, values, min and max, a distribution, or parameters")


def _parse_param(path: tuple[str, ...], config: Mapping[str, Any], where: str) -> Param:
    dist = config.get("distribution")
    if dist is None:
        dist = _infer_distribution(config, where)
    elif dist not in _DISTRIBUTIONS:
        raise SweepSpecError(f"{where}.distribution", f"unknown distribution {_describe(dist)}")
    keys, defaults = _DISTRIBUTIONS[dist]
    for key in config:
        if key != "distribution" and key not in keys:
            raise SweepSpecError(
                f"{where}.{key}", f"not a key of distribution {dist} (it takes {', '.join(keys)})"
            )
    filled = {**defaults, **{k: v for k, v in config.items() if k != "distribution"}}
    for key in keys:
        if key not in filled and key != "probabilities":
            raise SweepSpecError(f"{where}.{key}", f"missing: distribution {dist} needs {key}")
    name = ".".join(path)
    if dist == "constant":
        return Param(name, "constant", dist, value=filled["value"], path=path)
    if dist.startswith("categorical"):
        return _categorical(name, path, dist, filled, where)
    return _numeric(name, path, dist, filled, where)


def _categorical(
    name: str, path: tuple[str, ...], dist: str, c: Mapping[str, Any], where: str
) -> Param:
    values = c["values"]
    if not isinstance(values, list) or not values:
        raise SweepSpecError(
            f"{where}.values", f"expected a non-empty list, got {_describe(values)}"
        )
    keys = [json.dumps(v, sort_keys=True) for v in values]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            raise SweepSpecError(f"{where}.values", f"lists {key} twice")
    probabilities = c.get("probabilities")
    if probabilities is None:
        if dist == "categorical_w_probabilities":
            raise SweepSpecError(f"{where}.probabilities", "missing: one probability per value")
        return Param(name, "categorical", dist, values=tuple(values), path=path)
    if not isinstance(probabilities, list):
        raise SweepSpecError(
            f"{where}.probabilities", f"expected a list, got {_describe(probabilities)}"
        )
    probs = tuple(
        float(_number(p, f"{where}.probabilities[{i}]")) for i, p in enumerate(probabilities)
    )
    if len(probs) != len(values):
        raise SweepSpecError(
            f"{where}.probabilities", f"has {len(probs)} probabilities for {len(values)} values"
        )
    if any(p < 0 for p in probs):
        raise SweepSpecError(f"{where}.probabilities", "a probability is negative")
    if not math.isclose(sum(probs), 1.0, rel_tol=1e-5, abs_tol=1e-8):
        raise SweepSpecError(f"{where}.probabilities", f"sum to {sum(probs):g}, not 1")
    return Param(name, "categorical", dist, values=tuple(values), probabilities=probs, path=path)


def _numeric(
    name: str, path: tuple[str, ...], dist: str, c: Mapping[str, Any], where: str
) -> Param:
    num = {
        k: _number(c[k], f"{where}.{k}")
        for k in ("min", "max", "mu", "sigma", "a", "b", "q")
        if k in c
    }
    if "min" in num:
        _check_range(num["min"], num["max"], where)
    if dist == "int_uniform":
        for key in ("min", "max"):
            if not _is_int(c[key]):
                raise SweepSpecError(
                    f"{where}.{key}", f"int_uniform needs an integer, got {_describe(c[key])}"
                )
        return Param(name, "int", dist, low=num["min"], high=num["max"], path=path)
    for key in ("sigma", "a", "b", "q"):
        if key in num and num[key] <= 0:
            raise SweepSpecError(f"{where}.{key}", f"{num[key]} must be greater than 0")
    if dist in _POSITIVE_MIN and num["min"] <= 0:
        raise SweepSpecError(
            f"{where}.min",
            f"{dist} takes values: min {num['min']} must be greater "
            f"than 0 (log_uniform takes exponents)",
        )
    q = num.get("q")
    kind = "int" if q is not None and _is_int(c["q"]) else "float"
    try:
        low, high, log = _bounds(dist, num)
    except OverflowError:
        raise SweepSpecError(
            where,
            f"{dist} takes natural-log exponents: exp(min) and exp(max) must be positive "
            f"finite numbers (min {num['min']}, max {num['max']}); {dist}_values takes values",
        ) from None
    return Param(
        name,
        kind,
        dist,
        low=low,
        high=high,
        log=log,
        q=q,
        mu=num.get("mu"),
        sigma=num.get("sigma"),
        a=num.get("a"),
        b=num.get("b"),
        path=path,
    )


def _bounds(dist: str, num: Mapping[str, float]) -> tuple[float | None, float | None, bool]:
    """Bounds in the user's value space, and whether values are log-distributed."""
    base = dist.removeprefix("q_")
    if base in ("uniform",):
        return num["min"], num["max"], False
    if base in ("log_uniform_values", "inv_log_uniform_values"):
        return num["min"], num["max"], True
    if base == "log_uniform":  # min/max are natural-log exponents (W&B: exp(uniform(min, max)))
        return _exp(num["min"]), _exp(num["max"]), True
    if base == "inv_log_uniform":  # W&B: exp(-uniform(min, max))
        return _exp(-num["max"]), _exp(-num["min"]), True
    if base == "beta":
        return 0.0, 1.0, False
    if base == "log_normal":
        return None, None, True
    return None, None, False  # normal


def _exp(x: float) -> float:
    """exp of a W&B exponent; OverflowError when it is not a positive finite float."""
    value = math.exp(x)
    if value == 0.0:
        raise OverflowError
    return value


def _check_range(low: float, high: float, where: str) -> None:
    if low > high:
        raise SweepSpecError(where, f"min {low} is greater than max {high}")
    if low == high:
        raise SweepSpecError(
            where, f"min {low} equals max {high} (write `value: {low}` for a constant)"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any, path: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SweepSpecError(path, f"expected a number, got {_describe(value)}")
    return value


def _opt_int(value: Any, path: str, *, minimum: int) -> int | None:
    if value is None:
        return None
    if not _is_int(value):
        raise SweepSpecError(path, f"expected an integer, got {_describe(value)}")
    if value < minimum:
        raise SweepSpecError(path, f"{value} is less than {minimum}")
    return value


def _opt_str(raw: Mapping[str, Any], key: str, path: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise SweepSpecError(path, f"expected text, got {_describe(value)}")
    return value


# ---------------------------------------------------------------------------------------------
# The expbook block

_EXPBOOK_KEYS = (
    "experiment",
    "budget",
    "trials",
    "timeout",
    "workers",
    "sampler",
    "sampler_options",
    "pruner",
    "pruner_options",
    "metrics",
    "repeats",
    "seed_param",
    "constraints",
    "max_attempts",
    "resources",
)


def _parse_expbook(
    value: Any, params: tuple[Param, ...], metrics: tuple[Metric, ...]
) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SweepSpecError("expbook", f"expected a mapping, got {_describe(value)}")
    for key in value:
        if key not in _EXPBOOK_KEYS:
            raise SweepSpecError(f"expbook.{key}", f"unknown key ({', '.join(_EXPBOOK_KEYS)})")
    trials, timeout = _parse_budget(value)
    names = {p.name for p in params}
    seed_param = _opt_str(value, "seed_param", "expbook.seed_param")
    if seed_param is not None and seed_param in names:
        raise SweepSpecError(
            "expbook.seed_param",
            f"{seed_param!r} is also a searched parameter; expbook sets the seed of each repeat",
        )
    if seed_param is not None and not _NAME.match(seed_param):
        raise SweepSpecError("expbook.seed_param", f"{seed_param!r} is not a parameter name")
    return {
        "experiment": _opt_str(value, "experiment", "expbook.experiment"),
        "trials": trials,
        "timeout": timeout,
        "workers": _opt_int(value.get("workers"), "expbook.workers", minimum=1),
        "sampler": _choice(value, "sampler", SAMPLERS),
        "pruner": _choice(value, "pruner", PRUNERS),
        "sampler_options": _options(value, "sampler_options"),
        "pruner_options": _options(value, "pruner_options"),
        "repeats": _opt_int(value.get("repeats"), "expbook.repeats", minimum=1) or 1,
        "seed_param": seed_param,
        "constraints": _parse_constraints(value.get("constraints"), names),
        "max_attempts": _opt_int(value.get("max_attempts"), "expbook.max_attempts", minimum=1)
        or 1,
        "resources": _parse_resources(value.get("resources")),
    }


def _parse_budget(value: Mapping[str, Any]) -> tuple[int | None, float | None]:
    budget = value.get("budget", {})
    if not isinstance(budget, Mapping):
        raise SweepSpecError(
            "expbook.budget", f"expected a mapping (trials, timeout), got {_describe(budget)}"
        )
    for key in budget:
        if key not in ("trials", "timeout"):
            raise SweepSpecError(f"expbook.budget.{key}", "unknown key (trials, timeout)")
        if key in value:
            raise SweepSpecError(
                f"expbook.{key}", f"given twice: here and in expbook.budget.{key}"
            )
    trials_path = "expbook.budget.trials" if "trials" in budget else "expbook.trials"
    trials = _opt_int(budget.get("trials", value.get("trials")), trials_path, minimum=1)
    timeout_path = "expbook.budget.timeout" if "timeout" in budget else "expbook.timeout"
    timeout = budget.get("timeout", value.get("timeout"))
    return trials, None if timeout is None else parse_duration(timeout, timeout_path)


_DURATION_UNITS = {
    "d": 86400.0,
    "h": 3600.0,
    "m": 60.0,
    "min": 60.0,
    "s": 1.0,
    "sec": 1.0,
    "ms": 0.001,
}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(d|h|min|ms|m|sec|s)")


def parse_duration(value: Any, path: str = "timeout") -> float:
    """Seconds from a number (seconds) or text such as ``"2h"``, ``"30m"``, ``"1h30m"``, ``"90s"``.

    Raises:
        SweepSpecError: not a positive duration.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif (
        isinstance(value, str)
        and _DURATION.sub("", value.replace(" ", "")) == ""
        and value.strip()
    ):
        seconds = sum(
            float(n) * _DURATION_UNITS[u] for n, u in _DURATION.findall(value.replace(" ", ""))
        )
    else:
        raise SweepSpecError(
            path, f"expected seconds or a duration such as 2h, 30m, 1h30m, got {_describe(value)}"
        )
    if not seconds > 0 or not math.isfinite(seconds):
        raise SweepSpecError(path, f"{value} is not a positive duration")
    return seconds


def _choice(value: Mapping[str, Any], key: str, choices: tuple[str, ...]) -> str | None:
    given = value.get(key)
    if given is None:
        return None
    name = given.lower().replace("-", "_") if isinstance(given, str) else given
    name = {"cma_es": "cmaes", "sh": "successive_halving"}.get(name, name)
    if name not in choices:
        raise SweepSpecError(
            f"expbook.{key}", f"unknown {key} {_describe(given)} ({', '.join(choices)})"
        )
    return name


def _options(value: Mapping[str, Any], key: str) -> dict[str, Any]:
    options = value.get(key, {})
    if not isinstance(options, Mapping):
        raise SweepSpecError(
            f"expbook.{key}", f"expected a mapping of keyword arguments, got {_describe(options)}"
        )
    return dict(options)


def _parse_resources(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SweepSpecError(
            "expbook.resources",
            f"expected a mapping such as {{cpu: 2, gpu: 1}}, got {_describe(value)}",
        )
    out = {}
    for key, amount in value.items():
        number = _number(amount, f"expbook.resources.{key}")
        if number < 0:
            raise SweepSpecError(f"expbook.resources.{key}", f"{number} is negative")
        out[key] = number
    return out


def _check_consistency(spec: SweepSpec) -> None:
    """Rules across fields: what needs a metric, which sampler fits which method."""
    pruning = spec.early_terminate is not None or spec.effective_pruner != "none"
    if spec.method == "bayes" and not spec.metrics:
        raise SweepSpecError("metric", "missing: bayes search needs the metric to optimize")
    if pruning and not spec.metrics:
        what = "early_terminate" if spec.early_terminate else "expbook.pruner"
        raise SweepSpecError("metric", f"missing: {what} needs the metric whose curve it compares")
    if spec.early_terminate is not None and spec.pruner is not None:
        raise SweepSpecError(
            "expbook.pruner", "give either early_terminate (W&B's hyperband) or expbook.pruner"
        )
    if pruning and len(spec.metrics) > 1:
        raise SweepSpecError(
            "expbook.pruner",
            "pruning needs one metric; Optuna does not prune multi-objective studies",
        )
    if spec.sampler is not None and spec.sampler not in METHOD_SAMPLERS[spec.method]:
        fits = " or ".join(METHOD_SAMPLERS[spec.method])
        raise SweepSpecError(
            "expbook.sampler", f"{spec.sampler} does not fit method: {spec.method} (use {fits})"
        )
    if spec.sampler == "cmaes" and len(spec.metrics) > 1:
        raise SweepSpecError("expbook.sampler", "cmaes optimizes one metric; use tpe for several")
    if spec.method == "grid":
        from expbook.sweep.space import grid_size

        grid_size(spec)  # raises naming a parameter the grid cannot enumerate
    from expbook.sweep.command import check_command

    # The default command's ${program} may be filled later (a Python objective has none).
    check_command(spec, require_program="command" in spec.raw)


# ---------------------------------------------------------------------------------------------
# Constraints (evaluated by expbook.sweep.constraints, on a checked syntax tree)


def _parse_constraints(value: Any, names: set[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SweepSpecError(
            "expbook.constraints", f"expected a list of expressions, got {_describe(value)}"
        )
    from expbook.sweep.constraints import compile_constraint

    for i, text in enumerate(value):
        compile_constraint(text, names, f"expbook.constraints[{i}]")
    return tuple(value)


def violated_constraint(spec: SweepSpec, params: Mapping[str, Any]) -> str | None:
    """The first of ``spec.constraints`` that ``params`` (flat names) violate, or None.

    Raises:
        SweepSpecError: a constraint cannot be evaluated on these params (a missing name, a type
            error, a division by zero), naming it.
    """
    from expbook.sweep.constraints import first_violated

    return first_violated(spec.constraints, params)


def check_params(spec: SweepSpec, params: Mapping[str, Any]) -> None:
    """Check a configuration against the spec's constraints.

    Raises:
        SweepSpecError: a constraint is false (or cannot be evaluated) for ``params``; the message
            names the constraint.
    """
    from expbook.sweep.constraints import compiled

    text = violated_constraint(spec, params)
    if text is not None:
        used = compiled(text).names
        shown = ", ".join(f"{n}={params[n]!r}" for n in used if n in params)
        raise SweepSpecError("expbook.constraints", f"{text!r} is false for {shown}")


def with_raw(spec: SweepSpec, **changes: Any) -> SweepSpec:
    """Parse the spec again with top-level keys of its raw mapping replaced (for editing)."""
    raw = copy.deepcopy(dict(spec.raw))
    raw.update(changes)
    return parse_spec(raw)
