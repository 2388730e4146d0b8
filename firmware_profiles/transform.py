"""Signal transforms of firmware profiles: a math expression in ``x``, or a value mapping.

A math transform is parsed once into a closure over a tiny, whitelisted subset of Python
expressions (numbers, ``x``, ``+ - * / // % **``, unary minus, and the functions ``abs``,
``min``, ``max``, ``round``); nothing is ever passed to ``eval``. A mapping turns one raw
value into another (a gear lever's ``P``/``R``/``N``/``D`` into numbers).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

Transform = Callable[[float], float]

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[float], float]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {"abs": abs, "min": min, "max": max, "round": round}
_MAX_LENGTH = 200


class TransformError(ValueError):
    """Raised for a math expression outside the allowed subset."""


def compile_math(expression: str) -> Transform:
    """Return a function of ``x`` computing ``expression`` (for example ``"x * 3.6 - 40"``).

    Raises:
        TransformError: the expression is empty, too long, not valid syntax, or uses
            anything but numbers, ``x``, arithmetic and the allowed functions.
    """
    if not expression.strip() or len(expression) > _MAX_LENGTH:
        raise TransformError(f"must be an expression in x of 1 to {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise TransformError(f"{expression!r} is not a valid expression: {exc.msg}") from None
    build = _compile(tree.body, expression)
    return build


def _compile(node: ast.expr, source: str) -> Transform:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        constant: float = node.value  # type: ignore[assignment]
        return lambda x: constant
    if isinstance(node, ast.Name) and node.id == "x":
        return lambda x: x
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left, right = _compile(node.left, source), _compile(node.right, source)
        if isinstance(node.op, ast.Pow):
            return lambda x: _bounded_pow(left(x), right(x))
        return lambda x: op(left(x), right(x))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        unary, operand = _UNARY[type(node.op)], _compile(node.operand, source)
        return lambda x: unary(operand(x))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and node.args
    ):
        function = _FUNCTIONS[node.func.id]
        args = [_compile(a, source) for a in node.args]
        return lambda x: float(function(*(a(x) for a in args)))
    allowed = "numbers, x, + - * / // % **, abs(), min(), max(), round()"
    fragment = ast.get_source_segment(source.strip(), node) or type(node).__name__
    raise TransformError(f"{fragment!r} is not allowed in a transform (allowed: {allowed})")


def _bounded_pow(base: float, exponent: float) -> float:
    if abs(exponent) > 64:
        raise OverflowError("exponent too large")
    result = base**exponent
    if isinstance(result, complex) or not math.isfinite(result):
        raise ValueError("no real result")
    return float(result)


def compile_mapping(table: dict[float, float]) -> Transform:
    """Return a function mapping each key of ``table`` to its value.

    The function raises KeyError for a value the table does not list (the caller drops
    and counts that sample).
    """
    frozen = dict(table)
    return lambda x: frozen[x]
