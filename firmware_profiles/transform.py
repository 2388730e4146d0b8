"""Signal transforms of firmware profiles: a math expression in ``x``, or a value mapping.

A math transform is parsed once into a closure over a tiny, whitelisted subset of Python
expressions (numbers, ``x``, the names of other signals of the same message, ``+ - * / // %
**``, unary minus, and the functions ``abs``, ``min``, ``max``, ``round``); nothing is ever
passed to ``eval``. A mapping turns one raw value into another (a gear lever's
``P``/``R``/``N``/``D`` into numbers). Both are called with the decoded value ``x`` and the
decoded values of the whole message (by signal name).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Collection, Mapping

Signals = Mapping[str, float]
Transform = Callable[[float, Signals], float]

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


def compile_math(expression: str, names: Collection[str] | None = None) -> Transform:
    """Return a function of ``x`` (and the message's other signals) computing ``expression``,
    for example ``"x * 3.6 - 40"`` or ``"x + 65536 * SPN_High"``.

    ``names`` are the signals the expression may read besides ``x``; None accepts any name
    (to check the syntax before the DBC files are loaded).

    Raises:
        TransformError: the expression is empty, too long, not valid syntax, or uses
            anything but numbers, ``x``, the given names, arithmetic and the allowed functions.
    """
    if not expression.strip() or len(expression) > _MAX_LENGTH:
        raise TransformError(f"must be an expression in x of 1 to {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise TransformError(f"{expression!r} is not a valid expression: {exc.msg}") from None
    return _compile(tree.body, expression, names)


def _compile(node: ast.expr, source: str, names: Collection[str] | None) -> Transform:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        constant: float = node.value  # type: ignore[assignment]
        return lambda x, s: constant
    if isinstance(node, ast.Name) and node.id == "x":
        return lambda x, s: x
    if isinstance(node, ast.Name) and (names is None or node.id in names):
        name = node.id
        return lambda x, s: s[name]
    if isinstance(node, ast.Name):
        raise TransformError(f"{node.id!r} is neither x nor a signal of this message")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        op = _BINARY[type(node.op)]
        left, right = _compile(node.left, source, names), _compile(node.right, source, names)
        if isinstance(node.op, ast.Pow):
            return lambda x, s: _bounded_pow(left(x, s), right(x, s))
        return lambda x, s: op(left(x, s), right(x, s))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        unary, operand = _UNARY[type(node.op)], _compile(node.operand, source, names)
        return lambda x, s: unary(operand(x, s))
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and node.args
    ):
        function = _FUNCTIONS[node.func.id]
        args = [_compile(a, source, names) for a in node.args]
        return lambda x, s: float(function(*(a(x, s) for a in args)))
    allowed = "numbers, x, signal names, + - * / // % **, abs(), min(), max(), round()"
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
    return lambda x, s: frozen[x]
