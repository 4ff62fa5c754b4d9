"""Expressions across a rule's queries, e.g. `A / B * 100`: parsed with `ast`, checked against a short list of
node types, and computed by walking the tree (never `eval`).

Allowed: numbers, query refs (capital letters A-Z), + - * / % **, unary minus, parentheses, and the functions
abs, min, max. A division by zero, or a ref without a value, gives no value (None).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping

MAX_LENGTH = 500
_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {"abs": abs, "min": min, "max": max}


class ExpressionError(ValueError):
    """An expression that may not be computed; the message says what to fix."""


def expression_parse(text: str, *, refs: set[str]) -> ast.Expression:
    """The checked syntax tree of `text`; ExpressionError names what is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("an expression such as 'A / B * 100'.")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"at most {MAX_LENGTH} characters.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ExpressionError(f"not a valid expression ({error.msg}).") from None
    for node in ast.walk(tree):
        _check(node, refs)
    return tree


def _check(node: ast.AST, refs: set[str]) -> None:
    if isinstance(node, ast.Expression | ast.Load | ast.operator | ast.unaryop):
        return  # operators are checked with the BinOp or UnaryOp that holds them
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise ExpressionError("only + - * / % ** are allowed.")
        return
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.USub | ast.UAdd):
            raise ExpressionError("only unary minus is allowed.")
        return
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise ExpressionError("only numbers may appear as constants.")
        return
    if isinstance(node, ast.Name):
        if node.id in _FUNCTIONS:
            return
        if node.id not in refs:
            raise ExpressionError(f"unknown query ref {node.id!r}; the queries are {', '.join(sorted(refs))}.")
        return
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
            raise ExpressionError(f"only the functions {', '.join(_FUNCTIONS)} may be called.")
        if not node.args:
            raise ExpressionError(f"{node.func.id}() needs an argument.")
        return
    raise ExpressionError(f"{type(node).__name__} is not allowed in an expression.")


def expression_refs(tree: ast.Expression) -> set[str]:
    """The query refs an expression reads."""
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and node.id not in _FUNCTIONS}


def expression_compute(tree: ast.Expression, values: Mapping[str, float | None]) -> float | None:
    """The expression's value for these ref values; None when a ref has no value or the result is not finite."""
    try:
        result = _compute(tree.body, values)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        return None
    if result is None or not math.isfinite(result):
        return None
    return float(result)


def _compute(node: ast.AST, values: Mapping[str, float | None]) -> float | None:
    if isinstance(node, ast.Constant):
        return float(node.value)
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, ast.UnaryOp):
        operand = _compute(node.operand, values)
        if operand is None:
            return None
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left = _compute(node.left, values)
        right = _compute(node.right, values)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise OverflowError("exponent too large")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Call):
        arguments = [_compute(argument, values) for argument in node.args]
        if any(argument is None for argument in arguments):
            return None
        return float(_FUNCTIONS[node.func.id](*arguments))
    raise ExpressionError(f"{type(node).__name__} is not allowed in an expression.")
