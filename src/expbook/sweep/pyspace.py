"""Search spaces given in Python, written as the ``parameters`` of a sweep spec.

``expbook.sweep(objective, space=...)`` (``expbook.sweep.api``) takes two kinds of space, and
both end up as W&B ``parameters`` in the sweep's spec, so ``expbook sweep show``, the UI and the
report read an API sweep as they read any other:

- a **typed space**: a dataclass or a pydantic model whose fields say what to search
  (``Annotated[float, LogUniform(1e-5, 1e-1)]``, ``Literal[32, 64]``...), or a mapping that is
  a W&B ``parameters`` block. ``typed_space`` reads it; ``TypedSpace.build`` makes the config
  object an objective receives from a trial's flat params.
- a **define-by-run space**: the Optuna distributions an objective asks for with
  ``trial.suggest_*``, known only as trials ask for them. ``wandb_param`` writes one as a W&B
  parameter, ``asked_distribution`` reads it back as the distribution Optuna must rebuild the
  trials with (the same kind as the objective asks: Optuna refuses another), and ``merge``
  widens a parameter asked with other bounds by another trial.

Nothing here imports optuna or pydantic at module level.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from expbook.errors import InvalidValueError

if TYPE_CHECKING:
    import optuna

    from expbook.sweep.spec import Param, SweepSpec

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")  # a parameter name, as the spec takes it


# ---------------------------------------------------------------------------------------------
# Markers of a typed space


@dataclass(frozen=True)
class Uniform:
    """Search a number uniformly in ``low..high``; with ``step``, over ``low, low + step...``
    (W&B's ``q_uniform``: ``low`` must then be a multiple of ``step``). An ``int`` field takes
    integers: ``Annotated[int, Uniform(64, 256, step=64)]``."""

    low: float
    high: float
    step: float | None = None


@dataclass(frozen=True)
class LogUniform:
    """Search a positive number on the log scale in ``low..high`` (W&B's
    ``log_uniform_values``); an ``int`` field takes integers: ``Annotated[int, LogUniform(1,
    1024)]``."""

    low: float
    high: float


class Choice:
    """Search over the values given, each as likely, or with ``probabilities``:
    ``Annotated[float, Choice(0.1, 0.2, 0.5)]`` (``Literal`` does the same for values a
    ``Literal`` may hold)."""

    def __init__(self, *values: Any, probabilities: Sequence[float] | None = None) -> None:
        self.values = values
        self.probabilities = None if probabilities is None else tuple(probabilities)

    def __repr__(self) -> str:
        extra = f", probabilities={list(self.probabilities)}" if self.probabilities else ""
        return f"Choice({', '.join(map(repr, self.values))}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and (self.values, self.probabilities) == (
            other.values,
            other.probabilities,
        )

    def __hash__(self) -> int:
        return hash((Choice, self.values))


_MARKERS = (Uniform, LogUniform, Choice)


# ---------------------------------------------------------------------------------------------
# Typed spaces


@dataclass(frozen=True)
class TypedSpace:
    """A typed space read by ``typed_space``: the W&B ``parameters`` block it searches, and how
    to build the config object from a trial's flat params."""

    parameters: dict[str, Any]
    kind: str  # "dataclass", "pydantic" or "mapping"
    target: Any = None  # the class

    def build(self, params: Mapping[str, Any], spec: SweepSpec | None = None) -> Any:
        """The config object for a trial's flat params (``optimizer.lr``): an instance of the
        class, or for a mapping space the nested dict of values.

        Raises:
            InvalidValueError: the class refuses the values (a pydantic validation error),
                naming the class.
        """
        if self.kind == "mapping":
            from expbook.sweep.space import nest_paths

            paths = {p.name: p.path for p in spec.parameters} if spec is not None else {}
            return nest_paths(paths, params)
        if self.kind == "pydantic":
            from expbook.sweep.space import nest

            try:
                return self.target.model_validate(nest(params))
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                first = str(exc).splitlines()
                raise InvalidValueError(
                    f"{self.target.__name__} refused the trial's params {dict(params)}: "
                    f"{' '.join(first[:3])}"
                ) from None
        return _build_dataclass(self.target, params, "")


def typed_space(space: Any) -> TypedSpace:
    """Read a typed space: a dataclass or pydantic model class, or a mapping of W&B parameters
    (``{"lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 0.1}}``).

    A field is searched when its annotation says how: a marker (``Uniform``, ``LogUniform``,
    ``Choice``) in ``Annotated[...]``; or, when it has no default, a ``Literal[...]``, ``bool``,
    an ``Enum``, or a number with both bounds (pydantic's ``Field(ge=..., le=...)``). A field of
    a dataclass or model type is a group of nested parameters (``optimizer.lr``). Any other field
    with a default is a constant (recorded as a param when it is JSON data; else left to the
    class).

    Raises:
        InvalidValueError: something else was given, or a field says nothing about its values;
            the message names the field.
    """
    if isinstance(space, Mapping):
        return TypedSpace(dict(space), "mapping")
    if isinstance(space, type) and _is_pydantic(space):
        return TypedSpace(_class_parameters(space, space.__name__), "pydantic", space)
    if isinstance(space, type) and dataclasses.is_dataclass(space):
        return TypedSpace(_class_parameters(space, space.__name__), "dataclass", space)
    what = type(space).__name__ if not isinstance(space, type) else space.__name__
    raise InvalidValueError(
        f"space={what}: give a dataclass or a pydantic model class whose fields carry their "
        "ranges, or a mapping of W&B parameters"
    )


def _is_pydantic(cls: type) -> bool:
    return hasattr(cls, "model_fields") and hasattr(cls, "model_validate")


def _fields(cls: type) -> list[tuple[str, Any, list[Any], Any]]:
    """Each field's name, type (``Annotated`` taken apart), metadata and default (``_MISSING``
    when it has none)."""
    if _is_pydantic(cls):
        out = []
        for name, info in cls.model_fields.items():
            base, meta = _unannotate(info.annotation)
            default = _MISSING if info.is_required() else info.default
            if info.default_factory is not None:
                default = _FACTORY
            out.append((name, base, [*meta, *info.metadata], default))
        return out
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        base, meta = _unannotate(hints.get(f.name, Any))
        default = f.default
        if default is dataclasses.MISSING:
            default = _FACTORY if f.default_factory is not dataclasses.MISSING else _MISSING
        out.append((f.name, base, meta, default))
    return out


_MISSING = object()
_FACTORY = object()


def _unannotate(annotation: Any) -> tuple[Any, list[Any]]:
    meta: list[Any] = []
    while typing.get_origin(annotation) is typing.Annotated:
        meta.extend(annotation.__metadata__)
        annotation = annotation.__origin__
    return annotation, meta


def _class_parameters(cls: type, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, base, meta, default in _fields(cls):
        param = _field_parameter(f"{where}.{name}", base, meta, default)
        if param is not None:
            out[name] = param
    if not out:
        raise InvalidValueError(f"{where}: no field to search or record")
    return out


def _field_parameter(where: str, base: Any, meta: list[Any], default: Any) -> Any:
    """The W&B parameter of one field, or None for a field left to its class."""
    markers = [m for m in meta if isinstance(m, _MARKERS)]
    if len(markers) > 1:
        raise InvalidValueError(f"{where}: give one of Uniform, LogUniform, Choice, not several")
    if markers:
        return _marker_parameter(where, base, markers[0])
    if isinstance(base, type) and (dataclasses.is_dataclass(base) or _is_pydantic(base)):
        return {"parameters": _class_parameters(base, where)}
    if default is _MISSING:
        values = _finite_values(base)
        if values is not None:
            return {"values": values}
        bounds = _bounds(meta, base)
        if bounds is not None and base in (int, float):
            return _marker_parameter(where, base, Uniform(*bounds))
        raise InvalidValueError(
            f"{where}: say what to search (Annotated[float, expbook.Uniform(low, high)], "
            "expbook.LogUniform, expbook.Choice, a Literal[...]) or give it a default"
        )
    if default is _FACTORY or not _is_json(default):
        return None
    value = default.value if isinstance(default, enum.Enum) else default
    return {"value": value}


def _marker_parameter(where: str, base: Any, marker: Any) -> dict[str, Any]:
    if isinstance(marker, Choice):
        if not marker.values:
            raise InvalidValueError(f"{where}: Choice() needs at least one value")
        values = [v.value if isinstance(v, enum.Enum) else v for v in marker.values]
        if marker.probabilities is None:
            return {"values": values}
        return {"values": values, "probabilities": list(marker.probabilities)}
    integer = base is int
    low, high = marker.low, marker.high
    if integer and not all(_is_int(x) for x in (low, high, getattr(marker, "step", None) or 1)):
        raise InvalidValueError(f"{where}: an int field takes integer bounds, not {marker!r}")
    if isinstance(marker, LogUniform):
        if integer:
            return {"distribution": "q_log_uniform_values", "min": low, "max": high, "q": 1}
        return {"distribution": "log_uniform_values", "min": float(low), "max": float(high)}
    if marker.step is None:
        if integer:
            return {"distribution": "int_uniform", "min": low, "max": high}
        return {"distribution": "uniform", "min": float(low), "max": float(high)}
    step = marker.step if integer else float(marker.step)
    if not _multiple(low, step):
        raise InvalidValueError(
            f"{where}: {marker!r}: low must be a multiple of step (the values are the "
            "multiples of step between low and high, as W&B's q_uniform)"
        )
    lo, hi = (low, high) if integer else (float(low), float(high))
    return {"distribution": "q_uniform", "min": lo, "max": hi, "q": step}


def _finite_values(base: Any) -> list[Any] | None:
    """The values of a Literal, bool or Enum type; None for any other."""
    if typing.get_origin(base) is typing.Literal:
        return [v.value if isinstance(v, enum.Enum) else v for v in typing.get_args(base)]
    if base is bool:
        return [True, False]
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return [member.value for member in base]
    return None


def _bounds(meta: list[Any], base: Any) -> tuple[float, float] | None:
    """Both bounds from annotated_types constraints (pydantic's ``Field(ge=, le=)``); for an
    int, ``gt``/``lt`` exclude theirs (a float's exclusive bound is drawn with probability 0)."""
    low = high = None
    step = 1 if base is int else 0
    for m in meta:
        if getattr(m, "ge", None) is not None:
            low = m.ge
        if getattr(m, "gt", None) is not None:
            low = m.gt + step
        if getattr(m, "le", None) is not None:
            high = m.le
        if getattr(m, "lt", None) is not None:
            high = m.lt - step
    return None if low is None or high is None else (low, high)


def _build_dataclass(cls: type, params: Mapping[str, Any], prefix: str) -> Any:
    kwargs = {}
    for name, base, _, _ in _fields(cls):
        key = prefix + name
        if isinstance(base, type) and dataclasses.is_dataclass(base):
            if any(k.startswith(key + ".") for k in params):
                kwargs[name] = _build_dataclass(base, params, key + ".")
        elif isinstance(base, type) and _is_pydantic(base):
            from expbook.sweep.space import nest

            inner = {k[len(key) + 1 :]: v for k, v in params.items() if k.startswith(key + ".")}
            if inner:
                kwargs[name] = base.model_validate(nest(inner))
        elif key in params:
            value = params[key]
            if isinstance(base, type) and issubclass(base, enum.Enum):
                value = base(value)
            kwargs[name] = value
    return cls(**kwargs)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _multiple(value: float, step: float) -> bool:
    k = value / step
    return abs(k - round(k)) <= 1e-9 * max(1.0, abs(k))


def _is_json(value: Any) -> bool:
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Define-by-run spaces: the distributions trial.suggest_* asks for


def check_name(name: Any) -> str:
    """A parameter name the spec can hold.

    Raises:
        InvalidValueError: naming it.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidValueError(
            f"parameter name {name!r}: a parameter name starts with a letter or _ and holds "
            "letters, digits, _, . and -"
        )
    return name


def wandb_param(d: optuna.distributions.BaseDistribution) -> dict[str, Any]:
    """An Optuna distribution as a W&B parameter of the spec. A step W&B cannot write (a low
    bound that is not a multiple of it) is written as the plain range; a single value as a
    constant."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if isinstance(d, CategoricalDistribution):
        return {"values": list(d.choices)}
    if d.low == d.high:
        return {"value": d.low}
    if isinstance(d, FloatDistribution):
        low, high = float(d.low), float(d.high)
        if d.log:
            return {"distribution": "log_uniform_values", "min": low, "max": high}
        if d.step is not None and _multiple(low, d.step):
            return {"distribution": "q_uniform", "min": low, "max": high, "q": float(d.step)}
        return {"distribution": "uniform", "min": low, "max": high}
    low, high = int(d.low), int(d.high)
    if d.log:
        return {"distribution": "q_log_uniform_values", "min": low, "max": high, "q": 1}
    if d.step > 1 and low % d.step == 0:
        return {"distribution": "q_uniform", "min": low, "max": high, "q": int(d.step)}
    return {"distribution": "int_uniform", "min": low, "max": high}


def asked_distribution(p: Param) -> optuna.distributions.BaseDistribution | None:
    """The distribution Optuna rebuilds a define-by-run parameter with: the kind
    ``trial.suggest_*`` asks for (``wandb_param`` read back). None for a constant.

    Raises:
        InvalidValueError: the spec has a distribution no ``suggest_*`` call asks for (the
            spec was edited by hand), naming the parameter.
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if p.is_constant:
        return None
    if p.kind == "categorical" and p.probabilities is None:
        return CategoricalDistribution(p.values)
    if p.distribution == "int_uniform":
        return IntDistribution(int(p.low), int(p.high))
    if p.distribution == "q_uniform" and p.kind == "int":
        return IntDistribution(int(p.low), int(p.high), step=int(p.q))
    if p.distribution == "q_log_uniform_values" and p.kind == "int" and p.q == 1:
        return IntDistribution(int(p.low), int(p.high), log=True)
    if p.distribution == "q_uniform":
        return FloatDistribution(p.low, p.high, step=p.q)
    if p.distribution in ("uniform", "log_uniform_values"):
        return FloatDistribution(p.low, p.high, log=p.log)
    raise InvalidValueError(
        f"parameters.{p.name}: distribution {p.distribution} is not one an objective asks for "
        "with trial.suggest_* (the spec of a define-by-run sweep was edited)"
    )


def asked_distributions(spec: SweepSpec) -> dict[str, optuna.distributions.BaseDistribution]:
    """``asked_distribution`` of every searched parameter of the spec, by name."""
    out = {}
    for p in spec.parameters:
        d = asked_distribution(p)
        if d is not None:
            out[p.name] = d
    return out


def merge(
    name: str, old: Any, new: optuna.distributions.BaseDistribution
) -> optuna.distributions.BaseDistribution:
    """One distribution holding both ``old`` (the sweep's so far: a distribution, or the value
    of a constant) and ``new`` (what a trial asks for): the wider range. The kind, the log
    scale and a categorical's choices must stay what they were (Optuna's rule for a parameter
    name).

    Raises:
        InvalidValueError: they differ, naming the parameter and both.
    """
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
    )

    if not isinstance(old, BaseDistribution):  # a constant's value: a degenerate distribution
        old = _degenerate(old, new)
    if old is None or old.__class__ is not new.__class__ or (
        not isinstance(new, CategoricalDistribution) and old.log != new.log
    ):  # fmt: skip
        raise InvalidValueError(
            f"parameter {name!r} is asked as {_describe(new)}, but earlier trials asked for "
            f"{_describe(old)}; a parameter keeps its kind and scale (Optuna's rule): give "
            "the other one another name"
        )
    if isinstance(new, CategoricalDistribution):
        if tuple(old.choices) != tuple(new.choices):
            raise InvalidValueError(
                f"parameter {name!r} is asked with choices {list(new.choices)}, but earlier "
                f"trials asked for {list(old.choices)}; a categorical keeps its choices "
                "(Optuna's rule): give the other one another name"
            )
        return old
    low, high = min(old.low, new.low), max(old.high, new.high)
    same = old.step == new.step and _multiple(old.low - new.low, new.step or 1)
    step = new.step if same else None
    if isinstance(new, FloatDistribution):
        return FloatDistribution(low, high, log=new.log, step=step)
    return type(new)(low, high, log=new.log, step=step or 1)


def _degenerate(value: Any, like: Any) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(like, CategoricalDistribution):
        return CategoricalDistribution((value,))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if isinstance(like, IntDistribution) and _is_int(value):
        return IntDistribution(value, value, log=like.log and value > 0)
    if isinstance(like, FloatDistribution):
        return FloatDistribution(float(value), float(value), log=like.log and value > 0)
    return None


def _describe(d: Any) -> str:
    if d is None:
        return "a constant of another type"
    if hasattr(d, "choices"):
        return f"a categorical of {list(d.choices)}"
    kind = "int" if type(d).__name__.startswith("Int") else "float"
    scale = " on the log scale" if d.log else ""
    return f"{kind} {d.low}..{d.high}{scale}"


def spec_parameters(
    current: Mapping[str, Any], asked: Mapping[str, optuna.distributions.BaseDistribution]
) -> dict[str, Any]:
    """The spec's ``parameters`` once a trial's asked distributions are merged in: new names
    added, ranges widened.

    Raises:
        InvalidValueError: a parameter changed its kind (see ``merge``).
    """
    from expbook.sweep.spec import parse_spec

    out = json.loads(json.dumps(dict(current)))
    known = {}
    if current:
        spec = parse_spec({"method": "random", "parameters": out})
        known = {p.name: p for p in spec.parameters}
    for name, d in asked.items():
        p = known.get(name)
        if p is None:
            out[name] = wandb_param(d)
            continue
        old = p.value if p.is_constant else asked_distribution(p)
        merged = merge(name, old, d)
        if merged != old:
            node = out
            for part in p.path[:-1]:  # a nested parameter of a typed space resumed
                node = node[part]["parameters"]
            node[p.path[-1]] = wandb_param(merged)
    return out
