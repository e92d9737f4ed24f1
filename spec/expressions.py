"""Static checks of expressions in a spec: syntax and the steps they refer to.

The sandboxed evaluator (which also decides what an expression may do) compiles these
at run time; here they are only parsed with Python's `ast`, never evaluated.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

MAX_EXPRESSION_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class ExpressionProblem:
    """A problem in an expression; `offset` is the 0-based character it points at."""

    message: str
    offset: int = 0


@dataclass(frozen=True, slots=True)
class StepReference:
    name: str
    offset: int


def parse(source: str) -> ast.Expression | ExpressionProblem:
    """The expression's syntax tree, or the problem that stops it from parsing."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        return ExpressionProblem(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    try:
        return ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        lead = len(source) - len(source.lstrip())
        body = source.strip()
        if not exc.offset or exc.offset > len(body):  # Python says 0 at the end of input
            return ExpressionProblem("invalid expression: unexpected end", lead + len(body))
        return ExpressionProblem(f"invalid expression: {exc.msg}", lead + exc.offset - 1)
    except (ValueError, RecursionError, MemoryError) as exc:
        return ExpressionProblem(f"invalid expression: {exc}")


def step_references(tree: ast.Expression, source: str) -> list[StepReference]:
    """`steps.NAME` and `steps['NAME']` uses, with where NAME starts."""
    lead = len(source) - len(source.lstrip())
    found: list[StepReference] = []
    for node in ast.walk(tree):
        base = node.value if isinstance(node, ast.Attribute | ast.Subscript) else None
        if not _is_steps(base):
            continue
        if isinstance(node, ast.Attribute):
            end = base.end_col_offset or 0  # type: ignore[union-attr]
            found.append(StepReference(node.attr, lead + end + 1))
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            found.append(StepReference(node.slice.value, lead + node.slice.col_offset))
    return sorted(found, key=lambda ref: ref.offset)


def _is_steps(node: ast.expr | None) -> bool:
    """`steps`, or `result.steps` (the per-step results of a finished run)."""
    if isinstance(node, ast.Name):
        return node.id == "steps"
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "steps"
        and isinstance(node.value, ast.Name)
        and node.value.id == "result"
    )


def template_step_references(template: str) -> list[StepReference]:
    """`steps.NAME` uses inside the `{{ … }}` and `{% … %}` tags of a template string."""
    import re

    found: list[StepReference] = []
    for tag in re.finditer(r"\{\{(.*?)\}\}|\{%(.*?)%\}", template, re.S):
        inner_start = tag.start() + 2
        for match in re.finditer(r"\bsteps\.([A-Za-z_][A-Za-z0-9_-]*)", tag.group(0)[2:-2]):
            found.append(StepReference(match.group(1), inner_start + match.start(1)))
    return found
