"""Constraints of a sweep spec: expressions over parameters such as ``batch * hidden <= 65536``.

An expression is parsed with ``ast`` and checked before it is ever evaluated: only arithmetic,
comparisons, ``and``/``or``/``not``, ``in``, ``x if c else y``, literals, a few math functions and
parameter names (dotted names such as ``optimizer.lr`` included) are allowed, and evaluation walks
that tree itself (no ``eval``): no attribute access, no calls but the listed functions, arithmetic
on numbers only, and a large power computed as a float that overflows instead of a huge integer.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from expbook.sweep.spec import SweepSpecError

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FUNCTIONS = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
    "int": int,
    "float": float,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "exp": math.exp,
    "sqrt": math.sqrt,
}


@dataclass(frozen=True)
class Constraint:
    """A checked constraint: its text, syntax tree and the parameter names it uses."""

    text: str
    tree: ast.Expression
    names: tuple[str, ...]


def compile_constraint(text: Any, names: set[str] | None, path: str = "constraint") -> Constraint:
    """Parse a constraint such as ``batch_size * hidden <= 65536`` and check that it uses only
    arithmetic, comparisons, ``and``/``or``/``not``, ``in``, literals, the functions
    ``abs min max round int float log log2 log10 exp sqrt`` and parameter names (dotted names
    such as ``optimizer.lr`` included); with ``names``, every name must be a parameter."""
    if not isinstance(text, str) or not text.strip():
        raise SweepSpecError(path, f"expected an expression, got {type(text).__name__}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise SweepSpecError(path, f"{text!r} is not an expression: {error.msg}") from None
    used: list[str] = []
    _check_node(tree.body, text, path, used)
    for name in used:
        if names is not None and name not in names:
            raise SweepSpecError(path, f"{text!r}: {name!r} names no parameter")
    return Constraint(text, tree, tuple(used))


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _check_node(node: ast.AST, text: str, path: str, used: list[str]) -> None:
    name = _dotted(node)
    if name is not None:
        if name not in _FUNCTIONS and name not in ("True", "False", "None"):
            used.append(name)
        return
    allowed = (
        ast.BoolOp,
        ast.UnaryOp,
        ast.BinOp,
        ast.Compare,
        ast.Constant,
        ast.List,
        ast.Tuple,
        ast.Call,
        ast.IfExp,
        ast.And,
        ast.Or,
        ast.Not,
        ast.USub,
        ast.UAdd,
        ast.Load,
        *_BINARY,
        *_COMPARE,
    )
    if not isinstance(node, allowed):
        raise SweepSpecError(
            path, f"{text!r}: {type(node).__name__} is not allowed in a constraint"
        )
    if isinstance(node, ast.Call) and (
        not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords
    ):
        raise SweepSpecError(path, f"{text!r}: only {', '.join(_FUNCTIONS)} may be called")
    children = ast.iter_child_nodes(node)
    if isinstance(node, ast.Call):
        children = iter(node.args)
    for child in children:
        _check_node(child, text, path, used)


def _evaluate(node: ast.AST, params: Mapping[str, Any]) -> Any:
    name = _dotted(node)
    if name is not None:
        if name in params:
            return params[name]
        if name in _FUNCTIONS:
            return _FUNCTIONS[name]
        raise KeyError(name)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_evaluate(e, params) for e in node.elts]
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, params) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, params)
        return {ast.Not: operator.not_, ast.USub: operator.neg, ast.UAdd: operator.pos}[
            type(node.op)
        ](operand)
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, params), _evaluate(node.right, params)
        return _arithmetic(node.op, left, right)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, params)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, params)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        branch = node.body if _evaluate(node.test, params) else node.orelse
        return _evaluate(branch, params)
    if isinstance(node, ast.Call):
        return _FUNCTIONS[node.func.id](*(_evaluate(a, params) for a in node.args))  # type: ignore[attr-defined]
    raise TypeError(type(node).__name__)


def _arithmetic(op: ast.operator, left: Any, right: Any) -> Any:
    for value in (left, right):  # numbers only: no "a" * 10**9, no list arithmetic
        if not isinstance(value, int | float):
            raise TypeError(f"{type(value).__name__} {value!r} in arithmetic")
    if isinstance(op, ast.Pow) and abs(right) > 1024:
        return float(left) ** right  # bounded: a float overflows instead of a huge integer
    return _BINARY[type(op)](left, right)


def first_violated(constraints: tuple[str, ...], params: Mapping[str, Any]) -> str | None:
    """The first constraint that ``params`` (flat names) violate, or None.

    Raises:
        SweepSpecError: a constraint cannot be evaluated on these params, naming it.
    """
    for i, text in enumerate(constraints):
        try:
            ok = _evaluate(compiled(text).tree.body, params)
        except KeyError as error:
            raise SweepSpecError(
                f"expbook.constraints[{i}]", f"{text!r}: no value for {error.args[0]!r}"
            ) from None
        except (TypeError, ValueError, ArithmeticError) as error:
            raise SweepSpecError(
                f"expbook.constraints[{i}]", f"{text!r} fails on these values: {error}"
            ) from None
        if not ok:
            return text
    return None


_COMPILED: dict[str, Constraint] = {}


def compiled(text: str) -> Constraint:
    """The checked form of a constraint, parsed once."""
    if text not in _COMPILED:
        _COMPILED[text] = compile_constraint(text, None)
    return _COMPILED[text]
