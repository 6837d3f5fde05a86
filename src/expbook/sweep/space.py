"""The search space of a sweep spec: Optuna distributions, suggestions, the grid, config keys.

Each parameter maps to an Optuna distribution (``distributions``), so Optuna's samplers do all
sampling; ``to_user``/``to_optuna`` translate between Optuna's values and the user's:

============================  ==================================================================
W&B distribution              what Optuna samples -> the user's value
============================  ==================================================================
categorical                   ``CategoricalDistribution(values)`` (JSON text for lists/dicts)
int_uniform                   ``IntDistribution(min, max)``
uniform                       ``FloatDistribution(min, max)``
q_uniform                     ``FloatDistribution(lo, hi, step=q)`` (``IntDistribution`` for an
                              integer q) over the multiples of q W&B can reach
log_uniform                   ``FloatDistribution(exp(min), exp(max), log=True)``
log_uniform_values            ``FloatDistribution(min, max, log=True)``
inv_log_uniform(_values)      the same, over ``exp(-max)..exp(-min)`` (resp. ``min..max``)
q_log_uniform(_values)        the log-uniform above, then rounded to a multiple of q
normal, q_normal, log_normal, a quantile ``FloatDistribution(0, 1)`` mapped through scipy.stats'
q_log_normal, beta, q_beta,   ppf (``norm``, ``lognorm``, ``beta``; ``rv_discrete`` over the
categorical + probabilities   values' indices), then rounded to a multiple of q
============================  ==================================================================

The quantile mechanism is one general way to sample a distribution Optuna lacks: a uniform
quantile ``u`` in (0, 1) put through the inverse CDF has exactly that distribution, and Bayesian
samplers model ``u``, a monotone image of the value.

optuna and scipy are imported only inside the functions that need them.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from expbook.sweep.spec import Param, SweepSpec, SweepSpecError, violated_constraint

if TYPE_CHECKING:
    import optuna

# Quantiles are kept this far from 0 and 1, where the normal family's ppf is infinite.
QUANTILE_EPS = 1e-9
# A grid larger than this is a mistake, not a sweep.
MAX_GRID = 1_000_000
_GRIDDABLE = (
    "constant",
    "categorical",
    "int_uniform",
    "q_uniform",
    "q_log_uniform",
    "q_log_uniform_values",
    "q_beta",
)


def _where(p: Param) -> str:
    return "parameters." + ".parameters.".join(p.path or (p.name,))


# ---------------------------------------------------------------------------------------------
# Optuna distributions


def distributions(spec: SweepSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """What Optuna samples for each parameter of the spec (constants excluded), by name."""
    return {p.name: _distribution(p) for p in spec.parameters if not p.is_constant}


def _distribution(p: Param) -> optuna.distributions.BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if p.quantile_based:
        return FloatDistribution(0.0, 1.0)
    if p.kind == "categorical":
        return CategoricalDistribution(_choices(p))
    if p.distribution == "int_uniform":
        return IntDistribution(int(p.low), int(p.high))
    if p.distribution == "q_uniform":
        lo, hi = _q_range(p)
        if p.kind == "int":
            return IntDistribution(int(lo * p.q), int(hi * p.q), step=int(p.q))
        return FloatDistribution(_clean(lo * p.q), _clean(hi * p.q), step=p.q)
    return FloatDistribution(p.low, p.high, log=p.log)


def _q_range(p: Param) -> tuple[int, int]:
    """The multiples of q W&B can reach, as a range of k in k*q: round(min/q)..round(max/q)
    (W&B rounds a value of the continuous range to the nearest multiple)."""
    return round(p.low / p.q), round(p.high / p.q)


def _encoded(p: Param) -> bool:
    """Whether the categorical's choices go to Optuna as JSON text: values that are not plain
    scalars, or that Python finds equal (1, 1.0 and True), which Optuna would confuse."""
    if any(not (v is None or isinstance(v, bool | int | float | str)) for v in p.values):
        return True
    return any(a == b for a, b in itertools.combinations(p.values, 2))


def _choices(p: Param) -> tuple[Any, ...]:
    if _encoded(p):
        return tuple(json.dumps(v, sort_keys=True) for v in p.values)
    return tuple(p.values)


# ---------------------------------------------------------------------------------------------
# Between Optuna's values and the user's


def suggest(trial: optuna.trial.BaseTrial, spec: SweepSpec) -> dict[str, Any]:
    """Ask ``trial`` for one configuration: every parameter of the spec by flat name, constants
    included, values in the user's space (``to_user`` of what Optuna suggested)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    sampled: dict[str, Any] = {}
    for name, d in distributions(spec).items():
        if isinstance(d, CategoricalDistribution):
            sampled[name] = trial.suggest_categorical(name, d.choices)
        elif isinstance(d, IntDistribution):
            sampled[name] = trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
        else:
            sampled[name] = trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)
    return to_user(spec, sampled)


def to_user(spec: SweepSpec, optuna_params: Mapping[str, Any]) -> dict[str, Any]:
    """The user's configuration from Optuna's params (``trial.params``): every parameter of the
    spec, constants included, in the spec's order.

    Raises:
        SweepSpecError: a parameter of the spec is missing from ``optuna_params``.
    """
    out: dict[str, Any] = {}
    for p in spec.parameters:
        if p.is_constant:
            out[p.name] = copy.deepcopy(p.value)
        elif p.name not in optuna_params:
            raise SweepSpecError(_where(p), "has no value in the Optuna trial")
        else:
            out[p.name] = _user_value(p, optuna_params[p.name])
    return out


def _user_value(p: Param, v: Any) -> Any:
    if p.quantile_based:
        return _from_quantile(p, float(v))
    if p.kind == "categorical":
        return json.loads(v) if _encoded(p) else v
    if p.q is not None:
        return _quantize(float(v), p)
    if p.kind == "int":
        return int(v)
    return float(v)


def _from_quantile(p: Param, u: float) -> Any:
    u = min(max(u, QUANTILE_EPS), 1.0 - QUANTILE_EPS)
    if p.kind == "categorical":
        index = int(_frozen(p).ppf(u))
        return copy.deepcopy(p.values[index])
    value = float(_frozen(p).ppf(u))
    return _quantize(value, p) if p.q is not None else value


_FROZEN: dict[tuple[Any, ...], Any] = {}


def _frozen(p: Param) -> Any:
    """The scipy.stats distribution of a quantile-based parameter, as W&B's ``ppf`` uses it
    (built once per distinct distribution: scipy's constructors are slow)."""
    key = (p.distribution, p.mu, p.sigma, p.a, p.b, p.probabilities)
    if key not in _FROZEN:
        _FROZEN[key] = _make_frozen(p)
    return _FROZEN[key]


def _make_frozen(p: Param) -> Any:
    import scipy.stats as stats

    if p.probabilities is not None:
        return stats.rv_discrete(values=(range(len(p.values)), p.probabilities))
    base = p.distribution.removeprefix("q_")
    if base == "normal":
        return stats.norm(loc=p.mu, scale=p.sigma)
    if base == "log_normal":
        return stats.lognorm(s=p.sigma, scale=math.exp(p.mu))
    return stats.beta(a=p.a, b=p.b)


def _quantize(value: float, p: Param) -> int | float:
    """Round to the nearest multiple of q, as W&B does: an int when q is an integer."""
    multiple = round(value / p.q) * p.q
    return round(multiple) if p.kind == "int" else _clean(multiple)


def _multiple(p: Param, k: int) -> int | float:
    """k times q, in the parameter's type."""
    return round(k * p.q) if p.kind == "int" else _clean(k * p.q)


def _clean(x: float) -> float:
    """``0.30000000000000004`` -> ``0.3``: 12 significant digits, so equal configurations hash
    alike and print as the user wrote them."""
    return float(f"{x:.12g}")


def to_optuna(spec: SweepSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's params for a configuration in the user's space (the inverse of ``to_user``),
    for rebuilding a study from stored trials with ``optuna.trial.create_trial``. Constants and
    names the spec does not have are left out.

    Raises:
        SweepSpecError: a value lies outside the spec's space (``why_not`` says why), naming
            the parameter.
    """
    reason = why_not(spec, params)
    if reason is not None:
        raise SweepSpecError("", reason)
    out = {}
    for name, d in distributions(spec).items():
        out[name] = _optuna_value(spec.param(name), params[name], d)
    return out


def _optuna_value(p: Param, value: Any, d: Any) -> Any:
    if p.kind == "categorical" and p.probabilities is None:
        index = _index(p, value)
        return d.choices[index]
    if p.quantile_based:
        return _to_quantile(p, value)
    if isinstance(value, float) and p.q is not None:
        value = _quantize(value, p)
    if p.kind == "int" and (p.q is None or d.step is not None):
        return int(value)  # IntDistribution
    if p.distribution == "q_uniform":
        return _clean(float(value))
    return min(max(float(value), d.low), d.high)  # a rounded q_log value may lie just outside


def _to_quantile(p: Param, value: Any) -> float:
    if p.kind == "categorical":
        index = _index(p, value)
        cdf = list(itertools.accumulate(p.probabilities))
        below = cdf[index - 1] if index else 0.0
        return (below + cdf[index]) / 2
    u = float(_frozen(p).cdf(float(value)))
    return min(max(u, QUANTILE_EPS), 1.0 - QUANTILE_EPS)


def _index(p: Param, value: Any) -> int:
    key = _canonical(value)
    for i, candidate in enumerate(p.values):
        if _canonical(candidate) == key:
            return i
    raise SweepSpecError(_where(p), f"{value!r} is not one of its values")


# ---------------------------------------------------------------------------------------------
# Membership


def contains(spec: SweepSpec, params: Mapping[str, Any]) -> bool:
    """Whether a configuration (flat names; e.g. an existing run attached later) lies in the
    spec's space: every parameter present with a value the spec can produce, constants equal,
    constraints met. Names the spec does not have are ignored."""
    return why_not(spec, params) is None


def why_not(spec: SweepSpec, params: Mapping[str, Any]) -> str | None:
    """Why a configuration does not lie in the spec's space (one line naming the parameter), or
    None when it does."""
    for p in spec.parameters:
        if p.name not in params:
            return f"{_where(p)}: missing from the configuration"
        reason = _outside(p, params[p.name])
        if reason is not None:
            return f"{_where(p)}: {reason}"
    try:
        text = violated_constraint(spec, params)
    except SweepSpecError as error:
        return str(error).removeprefix("sweep spec: ")
    return None if text is None else f"expbook.constraints: {text!r} is false"


def _outside(p: Param, value: Any) -> str | None:
    if p.is_constant:
        return (
            None
            if _canonical(value) == _canonical(p.value)
            else f"{value!r} is not the constant {p.value!r}"
        )
    if p.kind == "categorical":
        keys = {_canonical(v) for v in p.values}
        return None if _canonical(value) in keys else f"{value!r} is not one of its values"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{value!r} is not a finite number"
    if p.kind == "int" and value != int(value):
        return f"{value!r} is not an integer"
    if p.q is not None:
        k = value / p.q
        if abs(k - round(k)) > 1e-6 * max(1.0, abs(k)):
            return f"{value!r} is not a multiple of q {p.q}"
        if p.low is not None:
            lo, hi = _q_range(p)
            if not lo <= round(k) <= hi:
                return f"{value!r} lies outside {_multiple(p, lo)}..{_multiple(p, hi)}"
        return _positive(p, value)
    if p.low is not None and not p.low * (1 - 1e-12) <= value <= p.high * (1 + 1e-12):
        return f"{value!r} lies outside {p.low}..{p.high}"
    return _positive(p, value)


def _positive(p: Param, value: float) -> str | None:
    if p.distribution in ("log_normal", "q_log_normal") and value <= 0 and p.q is None:
        return f"{value!r} is not positive"
    return None


# ---------------------------------------------------------------------------------------------
# The grid


def _grid_values(p: Param) -> list[Any]:
    """The values a grid takes for one parameter, in order."""
    if p.is_constant:
        return [p.value]
    if p.distribution not in _GRIDDABLE or p.probabilities is not None:
        what = (
            "categorical values with probabilities"
            if p.probabilities
            else f"distribution {p.distribution}"
        )
        raise SweepSpecError(
            _where(p),
            f"grid search cannot enumerate {what}: give values, "
            "int_uniform, or a q_ distribution (q_uniform) with min and max",
        )
    if p.kind == "categorical":
        return list(p.values)
    if p.distribution == "int_uniform":
        return list(range(int(p.low), int(p.high) + 1))
    lo, hi = _q_range(p)
    return [_multiple(p, k) for k in range(lo, hi + 1)]


def grid_size(spec: SweepSpec) -> int:
    """How many configurations the grid has (after the constraints, when there are any);
    computed once per space (``SweepSpec.budget`` asks often).

    Raises:
        SweepSpecError: a parameter cannot be enumerated, or the grid is absurdly large.
    """
    key = json.dumps([spec.raw.get("parameters"), spec.constraints], sort_keys=True)
    if key not in _GRID_SIZES:
        size = math.prod(len(_grid_values(p)) for p in spec.parameters)
        if size > MAX_GRID:
            raise SweepSpecError(
                "parameters", f"the grid has {size} configurations (at most {MAX_GRID})"
            )
        _GRID_SIZES[key] = len(grid(spec)) if spec.constraints else size
    return _GRID_SIZES[key]


_GRID_SIZES: dict[str, int] = {}


def grid(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every configuration of the grid, in W&B's order: the parameters sorted by name (nested
    ones by their path), the last varying fastest, each value in the order given; configurations
    that violate a constraint are left out. Each is a dict of flat names in the spec's order.

    Raises:
        SweepSpecError: a parameter is continuous (no values, not int_uniform, no q), naming it.
    """
    ordered = sorted(spec.parameters, key=lambda p: p.path or (p.name,))
    columns = [_grid_values(p) for p in ordered]
    size = math.prod(len(c) for c in columns)
    if size > MAX_GRID:
        raise SweepSpecError(
            "parameters", f"the grid has {size} configurations (at most {MAX_GRID})"
        )
    order = [p.name for p in spec.parameters]
    names = [p.name for p in ordered]
    out = []
    for combination in itertools.product(*columns):
        by_name = dict(zip(names, combination, strict=True))
        config = {name: _copy(by_name[name]) for name in order}
        if not spec.constraints or violated_constraint(spec, config) is None:
            out.append(config)
    return out


def _copy(value: Any) -> Any:
    return copy.deepcopy(value) if isinstance(value, list | dict) else value


# ---------------------------------------------------------------------------------------------
# Keys and nesting


def _normalize(value: Any) -> Any:
    """JSON-ready form for hashing: integral floats become ints (W&B's grid does the same, so
    3e6 and 3000000 are one value), tuples lists, non-finite floats text."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return repr(value)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    if hasattr(value, "item"):  # a numpy scalar
        return _normalize(value.item())
    return str(value)


def _canonical(value: Any) -> str:
    return json.dumps(_normalize(value), sort_keys=True, separators=(",", ":"))


def config_key(params: Mapping[str, Any]) -> str:
    """A canonical, order-independent key of a configuration: the sha1 of its sorted JSON, with
    integral floats as ints. The caller leaves the seed parameter out."""
    return hashlib.sha1(_canonical(dict(params)).encode("utf-8")).hexdigest()


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys back to nested dicts: ``{"optimizer.lr": 0.1}`` becomes
    ``{"optimizer": {"lr": 0.1}}``.

    Raises:
        SweepSpecError: a key is both a value and a group (``a`` and ``a.b``).
    """
    return nest_paths({key: tuple(key.split(".")) for key in flat}, flat)


def nest_paths(paths: Mapping[str, tuple[str, ...]], flat: Mapping[str, Any]) -> dict[str, Any]:
    """Like ``nest``, with each flat key's path given (a W&B key may itself hold a dot)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        path = paths.get(key) or tuple(key.split("."))
        node = out
        for i, part in enumerate(path[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SweepSpecError(key, f"{'.'.join(path[: i + 1])} is both a value and a group")
        if isinstance(node.get(path[-1]), dict) or path[-1] in node:
            raise SweepSpecError(key, f"{key} is both a value and a group")
        node[path[-1]] = copy.deepcopy(value)
    return out
