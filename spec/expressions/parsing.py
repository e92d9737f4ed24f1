"""Parsing, and the static checks that run before compiling: size and depth, no non-ASCII
outside string literals, no `_` names (step names aside); also the steps an expression or
a template names. One `ast.parse` of at most MAX_EXPRESSION_LENGTH characters and a walk
or two of at most MAX_NODES nodes; `_Text` maps `ast` positions to the offsets errors report.
"""

from __future__ import annotations

import ast
import re

from flujo.spec.expressions.budget import MAX_DEPTH, MAX_EXPRESSION_LENGTH, MAX_NODES
from flujo.spec.expressions.errors import (
    ErrorKind,
    ExpressionError,
    ExpressionProblem,
    StepReference,
)

# -- source positions ----------------------------------------------------------------------


_NEWLINE = re.compile(r"\r\n|\r|\n")


class _Text:
    """Maps `ast` positions (line, UTF-8 byte column of the stripped source) to offsets."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lead = len(source) - len(source.lstrip())
        self.body = source.strip()
        self.starts = [0, *(m.end() for m in _NEWLINE.finditer(self.body))]

    def at(self, lineno: int | None, col: int | None) -> int:
        """0-based character offset in the original source."""
        if lineno is None or col is None or not 0 < lineno <= len(self.starts):
            return self.lead
        start = self.starts[lineno - 1]
        prefix = self.body[start : start + col]
        if not prefix.isascii():
            line = self.body[start:].encode("utf-8")[:col]
            col = len(line.decode("utf-8", "replace"))
        return self.lead + start + col

    def start(self, node: ast.AST) -> int:
        return self.at(getattr(node, "lineno", None), getattr(node, "col_offset", None))

    def end(self, node: ast.AST) -> int:
        return self.at(getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None))

    def segment(self, node: ast.AST) -> str:
        """The node's source text on one line."""
        return " ".join(self.source[self.start(node) : self.end(node)].split())


# -- parsing and static structure ----------------------------------------------------------


def _parse(source: str) -> ast.Expression:
    """The syntax tree, or ExpressionError (`syntax`, or `limit` for an overlong source)."""
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression is longer than {MAX_EXPRESSION_LENGTH} characters", source, 0, "limit"
        )
    lead = len(source) - len(source.lstrip())
    body = source.strip()
    if "\x00" in source:
        raise ExpressionError(
            "invalid expression: NUL character", source, source.index("\x00"), "syntax"
        )
    try:
        return ast.parse(body, mode="eval")
    except SyntaxError as exc:
        starts = _Text(source).starts
        line = starts[exc.lineno - 1] if exc.lineno and 0 < exc.lineno <= len(starts) else 0
        where = line + (exc.offset or 0) - 1  # SyntaxError columns count characters
        mistake = _mistake(body)
        if mistake is not None:
            token, at, meant = mistake
            message = f"invalid expression: unexpected `{token}`: did you mean `{meant}`?"
            raise ExpressionError(message, source, lead + at, "syntax") from None
        if not exc.offset or where >= len(body):  # Python says 0 at the end of input
            message, where = "invalid expression: unexpected end", len(body)
        else:
            message = f"invalid expression: {exc.msg}"
        raise ExpressionError(message, source, lead + where, "syntax") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ExpressionError(f"invalid expression: {message}", source, lead, "syntax") from None


_MISTAKES = re.compile(r"===|=>|=<|&&|\|\||!(?!=)|(?<![=!<>])=(?!=)")
_MEANT = {"===": "==", "=>": ">=", "=<": "<=", "&&": "and", "||": "or", "!": "not", "=": "=="}
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _mistake(body: str) -> tuple[str, int, str] | None:
    """The first operator from another language in `body` (outside string literals):
    the token, where it starts, and what it is in this one."""
    blanked = _STRINGS.sub(lambda m: " " * len(m.group(0)), body)
    match = _MISTAKES.search(blanked)
    if match is None:
        return None
    return match.group(0), match.start(), _MEANT[match.group(0)]


def parse(source: str) -> ast.Expression | ExpressionProblem:
    """The expression's syntax tree, or the problem that stops it from parsing."""
    try:
        return _parse(source)
    except ExpressionError as exc:
        return ExpressionProblem(exc.message, exc.offset)


def step_references(tree: ast.Expression, source: str) -> list[StepReference]:
    """`steps.NAME`, `steps['NAME']` and `result.steps.NAME` uses, with where NAME starts."""
    text = _Text(source)
    found: list[StepReference] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_steps(node.value):
            found.append(StepReference(node.attr, text.end(node) - len(node.attr)))
        elif (
            isinstance(node, ast.Subscript)
            and _is_steps(node.value)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            found.append(StepReference(node.slice.value, text.start(node.slice)))
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
    found: list[StepReference] = []
    for tag in re.finditer(r"\{\{(.*?)\}\}|\{%(.*?)%\}", template, re.S):
        inner_start = tag.start() + 2
        for match in re.finditer(r"\bsteps\.([A-Za-z_][A-Za-z0-9_-]*)", tag.group(0)[2:-2]):
            found.append(StepReference(match.group(1), inner_start + match.start(1)))
    return found


_LEAVES = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)


def _check_size(tree: ast.Expression, text: _Text) -> int:
    """The number of nodes; refuses more than MAX_NODES, or nesting deeper than MAX_DEPTH."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise _error(text, node, f"expression has more than {MAX_NODES} parts", "limit")
        if depth > MAX_DEPTH:
            raise _error(text, node, f"expression is nested more than {MAX_DEPTH} deep", "limit")
        stack.extend(
            (child, depth + 1)
            for child in ast.iter_child_nodes(node)
            if not isinstance(child, _LEAVES)
        )
    return count


def _check_ascii(tree: ast.Expression, text: _Text) -> None:
    """Refuse non-ASCII characters outside string literals (NFKC and homoglyph tricks)."""
    source = text.source
    if source.isascii():
        return
    literals = sorted(
        (text.start(node), text.end(node))
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        or (isinstance(node, ast.Constant) and isinstance(node.value, str))
    )
    position = 0
    for start, end in [*literals, (len(source), len(source))]:
        for offset in range(position, max(position, start)):
            if not source[offset].isascii():
                char = source[offset]
                raise ExpressionError(
                    f"character {char!r} (U+{ord(char):04X}) is only allowed inside quotes",
                    source,
                    offset,
                    "refused",
                )
        position = max(position, end)


def _check_private(tree: ast.Expression, text: _Text) -> None:
    """Refuse the first name or attribute starting with `_` (step names aside)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            found.append((text.start(node), node.id))
        elif isinstance(node, ast.Attribute) and (
            _is_dunder(node.attr) or (node.attr.startswith("_") and not _is_steps(node.value))
        ):
            found.append((text.end(node) - len(node.attr), node.attr))
    if found:
        offset, name = min(found)
        raise ExpressionError(_private(name), text.source, offset, "refused")


def _error(text: _Text, node: ast.AST, message: str, kind: ErrorKind) -> ExpressionError:
    return ExpressionError(message, text.source, text.start(node), kind)


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def _private(name: str) -> str:
    return f"'{name}': names starting with '_' are not allowed"
