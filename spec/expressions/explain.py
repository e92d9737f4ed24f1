"""Why an expression has its value, pytest-style (`0.0132 < 0.01 is False, where …`), for
failing test assertions. It re-runs the compiled parts against the same bindings: a compile
and an evaluation or two, paid only when an assertion fails.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from flujo.spec.expressions.builtins import _COMPARE_SYMBOLS, _compare_op
from flujo.spec.expressions.closures import _Fn, _short
from flujo.spec.expressions.parsing import _Text

_VALUE_NODES = (ast.Call, ast.BinOp, ast.IfExp, ast.BoolOp, ast.UnaryOp, ast.Compare)


class _Explainer:
    """Describes how an expression got its value, re-running the compiled parts."""

    def __init__(self, fns: dict[ast.AST, _Fn], text: _Text, bindings: Mapping[str, Any]) -> None:
        self.fns = fns
        self.text = text
        self.bindings = bindings

    def value(self, node: ast.AST) -> Any:
        return self.fns[node](self.bindings, [0, 0])

    def describe(self, node: ast.AST) -> str:
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return self.negation(node)
        if isinstance(node, ast.IfExp):
            return self.labelled(node.body if self.value(node.test) else node.orelse)
        if isinstance(node, ast.Constant):
            return _short(node.value)
        return f"{self.text.segment(node)} = {_short(self.value(node))}"

    def labelled(self, node: ast.AST) -> str:
        """A part's description, prefixed by its source unless it already shows it."""
        negation = isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
        if isinstance(node, ast.Compare | ast.BoolOp) or negation:
            return f"{self.text.segment(node)}: {self.describe(node)}"
        return self.describe(node)

    def compare(self, node: ast.Compare) -> str:
        value = self.value(node.left)
        shown, where = [_short(value)], self.where(node.left, value)
        result: Any = True
        for op, right in zip(node.ops, node.comparators, strict=True):
            other = self.value(right)
            shown += [_COMPARE_SYMBOLS[type(op)], _short(other)]
            where += self.where(right, other)
            result = _compare_op(op)([0, 0], value, other)
            if not result:
                break
            value = other
        text = f"{' '.join(shown)} is {bool(result)}"
        return f"{text}, where {'; '.join(where)}" if where else text

    def where(self, node: ast.AST, value: Any) -> list[str]:
        if isinstance(node, _VALUE_NODES):
            return [f"{_short(value)} = {self.text.segment(node)}"]
        return []

    def boolop(self, node: ast.BoolOp) -> str:
        wanted = isinstance(node.op, ast.Or)  # `or` stops at a truthy part, `and` at a falsy
        for part in node.values:
            if bool(self.value(part)) is wanted:
                return self.labelled(part)
        return "; ".join(self.labelled(part) for part in node.values)

    def negation(self, node: ast.UnaryOp) -> str:
        inner = self.value(node.operand)
        text = f"not {_short(inner)} is {not inner}"
        if isinstance(node.operand, ast.Constant):
            return text
        return f"{text}, where {self.labelled(node.operand)}"
