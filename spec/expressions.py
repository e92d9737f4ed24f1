"""Flujo's sandboxed expression language.

One language for test `assertions`, policy `when`/`assert`, `condition_expression`,
`exit_expression` and `map.over`. It is a subset of Python expressions, e.g.
`result.total_cost_usd < 0.01` or `'roses' in result.output.lower()`, and a security
boundary: the GitHub bot evaluates expressions written by strangers.

An expression is parsed with Python's `ast`, checked against an allow-list of node
types, then compiled once into nested closures (cached). What it may use:

* literals: text, integers, floats, `True`, `False`, `None`; list, tuple and dict displays;
* the names the caller binds for that use (`result`, `input`, `previous`, `output`,
  `steps`, `run`, `env`, `item`);
* `a.b` and `a['b']` on dicts (reads key `b`; a missing key is an error naming the path),
  `a.b` on objects whose class declares `__expr_fields__` (a frozenset of readable
  attribute names), `a[i]` and `a[i:j:k]` on lists, tuples and text;
* comparisons (chained too), `in`, `not in`, `is None`, `is not None`; `and`, `or`,
  `not` with Python's short-circuit semantics; `+ - * / // % **`, unary `-`/`+`;
  `x if c else y`;
* the functions `len min max sum abs round any all int float str bool contains` and the
  text methods `lower upper strip lstrip rstrip startswith endswith split count find`.

Nothing else: no names or attributes starting with `_` (except step names right after
`steps.`, never dunders), no imports, lambdas, comprehensions, `:=`, `*x`, f-strings,
`%`-formatting, keyword arguments, calls of anything but the functions and methods
above, and no non-ASCII characters outside string literals (identifiers are not NFKC
tricks). Every value an expression builds is bounded before it is allocated; see the
`MAX_*` limits. A problem raises `ExpressionError` with the 0-based character offset it
points at.

Regular expressions are deliberately absent: `regex.compile` itself can take seconds and
gigabytes on a 20-character pattern, which no match timeout covers.
"""

from __future__ import annotations

import ast
import itertools
import keyword
import operator
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeAlias

from flujo.spec.errors import EXIT_INVALID, FlujoError

__all__ = [
    "EXPRESSION_NAMES",
    "FUNCTIONS",
    "MAX_BUILT_BYTES",
    "MAX_DEPTH",
    "MAX_EXPRESSION_LENGTH",
    "MAX_INT_BITS",
    "MAX_LENGTH",
    "MAX_NODES",
    "MAX_WORK",
    "STR_METHODS",
    "CompiledExpression",
    "ExpressionError",
    "ExpressionProblem",
    "StepReference",
    "compile_expression",
    "evaluate",
    "parse",
    "step_references",
    "template_step_references",
]

MAX_EXPRESSION_LENGTH = 4096
"""Longest expression source, in characters."""
MAX_NODES = 500
"""Most syntax-tree nodes in one expression."""
MAX_DEPTH = 50
"""Deepest nesting of syntax-tree nodes (`not not …`, `a + b + …`, `[[…]]`)."""
MAX_LENGTH = 1_000_000
"""Longest text, list, tuple or dict an operation may build (characters or items)."""
MAX_INT_BITS = 4096
"""Largest integer an operation may build, in bits."""
MAX_BUILT_BYTES = 4_000_000
"""Estimated bytes one evaluation may build in total (nested values counted in full)."""
MAX_WORK = 20_000_000
"""Characters and items one evaluation's scanning operations may visit in total."""
CACHE_SIZE = 1024
"""Most compiled expressions kept, keyed by (source, allowed names)."""
CACHE_PARTS = 20_000
"""Most syntax-tree nodes the kept expressions may have in total (about 0.5 KB each)."""

EXPRESSION_NAMES: frozenset[str] = frozenset(
    {"result", "input", "previous", "previous_step", "output", "steps", "run", "env", "item"}
)
"""Every name some use of an expression may bind (`previous_step` is flujo 0.x's
name for `previous`)."""

ErrorKind: TypeAlias = Literal["syntax", "refused", "limit", "runtime"]


class ExpressionError(FlujoError, ValueError):
    """An expression that cannot be compiled or evaluated (exit code 1: invalid input).

    `kind` is `syntax` (does not parse), `refused` (uses something the language does not
    allow), `limit` (too large, or would build too much) or `runtime` (a missing key, a
    type mismatch...). `offset` is the 0-based character in `source` it points at.
    """

    exit_code = EXIT_INVALID

    def __init__(
        self, message: str, source: str = "", offset: int = 0, kind: ErrorKind = "runtime"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.offset = offset
        self.kind: ErrorKind = kind

    def caret(self) -> str:
        """The source line the error points at, with a `^` under the offset."""
        start = self.source.rfind("\n", 0, self.offset) + 1
        end = self.source.find("\n", self.offset)
        line = self.source[start : end if end >= 0 else len(self.source)]
        return f"{line}\n{' ' * (self.offset - start)}^"


@dataclass(frozen=True, slots=True)
class ExpressionProblem:
    """A problem in an expression; `offset` is the 0-based character it points at."""

    message: str
    offset: int = 0


@dataclass(frozen=True, slots=True)
class StepReference:
    """A step named by an expression or template, and where the name starts."""

    name: str
    offset: int


class _Refused(Exception):
    """Raised inside an operation; the node running it turns it into ExpressionError.

    Not a FlujoError: internal control flow that never leaves this module.
    """

    def __init__(self, message: str, kind: ErrorKind = "runtime") -> None:
        super().__init__(message)
        self.message = message
        self.kind: ErrorKind = kind


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
        if not exc.offset or where >= len(body):  # Python says 0 at the end of input
            message, where = "invalid expression: unexpected end", len(body)
        else:
            message = f"invalid expression: {exc.msg}"
        raise ExpressionError(message, source, lead + where, "syntax") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ExpressionError(f"invalid expression: {message}", source, lead, "syntax") from None


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


# -- evaluation budget ---------------------------------------------------------------------


_Budget: TypeAlias = list[int]
"""What one evaluation has built (estimated bytes) and scanned (characters or items):
a two-item list, the cheapest mutable thing to create per evaluation."""


def _room(budget: _Budget) -> int:
    return MAX_BUILT_BYTES - budget[0]


def _build(budget: _Budget, size: int) -> None:
    """Account for `size` estimated bytes about to be built."""
    budget[0] += size
    if budget[0] > MAX_BUILT_BYTES:
        raise _Refused(f"expression would build more than {MAX_BUILT_BYTES:,} bytes", "limit")


def _scan(budget: _Budget, size: int) -> None:
    """Account for visiting `size` characters or items."""
    budget[1] += size
    if budget[1] > MAX_WORK:
        raise _Refused(f"expression would scan more than {MAX_WORK:,} characters or items", "limit")


def _text_bytes(text: str) -> int:
    return len(text) if text.isascii() else 4 * len(text)


def _weight(value: Any, cap: int) -> int:
    """Estimated bytes of `value`, nested values in full; stops counting past `cap`."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            total += _text_bytes(item)
        elif kind is list or kind is tuple or kind is dict:
            total += 16 * len(item) if kind is dict else 8 * len(item)
            if total > cap:
                return total
            stack.extend(item.items() if kind is dict else item)
        elif kind is int:
            total += 8 + item.bit_length() // 8
        else:
            total += 8
        if total > cap:
            return total
    return total


def _check_length(length: int, what: Any) -> None:
    if length > MAX_LENGTH:
        unit = "characters" if isinstance(what, str) else "items"
        raise _Refused(f"result would have {length:,} {unit}; the limit is {MAX_LENGTH:,}", "limit")


def _check_int(value: Any) -> Any:
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise _Refused(f"integer would have more than {MAX_INT_BITS} bits", "limit")
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "None"
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


# -- operations ----------------------------------------------------------------------------

_NUMBER = (int, float)
_SEQUENCE = (str, list, tuple)
_COLLECTION = (str, list, tuple, Mapping)


def _number(value: Any, what: str) -> Any:
    if not isinstance(value, _NUMBER):
        raise _Refused(f"{what} needs numbers, got {_type_name(value)}")
    return value


def _concat(budget: _Budget, left: Any, right: Any) -> Any:
    _check_length(len(left) + len(right), left)
    _build(budget, _weight(left, _room(budget)) + _weight(right, _room(budget)))
    return left + right


def _repeat(budget: _Budget, sequence: Any, times: int) -> Any:
    if times <= 0:
        return sequence[:0]
    _check_length(len(sequence) * times, sequence)
    _build(budget, _weight(sequence, _room(budget) // times + 1) * times)
    return sequence * times


def _add(budget: _Budget, left: Any, right: Any) -> Any:
    if isinstance(left, _NUMBER) and isinstance(right, _NUMBER):
        return _check_int(left + right)
    if isinstance(left, _SEQUENCE) and type(left) is type(right):
        return _concat(budget, left, right)
    raise _Refused(f"cannot add {_type_name(left)} and {_type_name(right)}")


def _sub(budget: _Budget, left: Any, right: Any) -> Any:
    return _check_int(_number(left, "-") - _number(right, "-"))


def _mul(budget: _Budget, left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS + 1:
            raise _Refused(f"integer would have more than {MAX_INT_BITS} bits", "limit")
        return _check_int(left * right)
    if isinstance(left, _NUMBER) and isinstance(right, _NUMBER):
        return left * right
    if isinstance(left, _SEQUENCE) and isinstance(right, int):
        return _repeat(budget, left, right)
    if isinstance(right, _SEQUENCE) and isinstance(left, int):
        return _repeat(budget, right, left)
    raise _Refused(f"cannot multiply {_type_name(left)} by {_type_name(right)}")


def _div(budget: _Budget, left: Any, right: Any) -> Any:
    return _number(left, "/") / _number(right, "/")


def _floordiv(budget: _Budget, left: Any, right: Any) -> Any:
    return _number(left, "//") // _number(right, "//")


def _mod(budget: _Budget, left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise _Refused("'%' formatting is not allowed; % works on numbers", "refused")
    return _number(left, "%") % _number(right, "%")


def _pow(budget: _Budget, left: Any, right: Any) -> Any:
    _number(left, "**")
    _number(right, "**")
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and abs(left) > 1
        and right * (left.bit_length() - 1) >= MAX_INT_BITS
    ):
        raise _Refused(f"integer would have more than {MAX_INT_BITS} bits", "limit")
    value = left**right
    if isinstance(value, complex):
        raise _Refused("result would be a complex number")
    return _check_int(value)


_BinOp: TypeAlias = Callable[[_Budget, Any, Any], Any]
_BINARY: dict[type[ast.operator], _BinOp] = {
    ast.Add: _add,
    ast.Sub: _sub,
    ast.Mult: _mul,
    ast.Div: _div,
    ast.FloorDiv: _floordiv,
    ast.Mod: _mod,
    ast.Pow: _pow,
}
_OPERATOR_SYMBOLS: dict[type[ast.AST], str] = {
    ast.BitOr: "|",
    ast.BitAnd: "&",
    ast.BitXor: "^",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
    ast.Invert: "~",
}


def _member(budget: _Budget, item: Any, container: Any) -> bool:
    """`item in container` for text, lists, tuples and dicts."""
    if isinstance(container, str):
        if not isinstance(item, str):
            raise _Refused(f"'in <text>' needs text on the left, got {_type_name(item)}")
        budget[1] += len(container)
        if budget[1] > MAX_WORK:
            _scan(budget, 0)
        return str.__contains__(container, item)
    if isinstance(container, list | tuple):
        _scan(budget, len(container))
        return item in container
    if isinstance(container, Mapping):
        return item in container
    raise _Refused(f"'in' needs text, a list or a dict on the right, got {_type_name(container)}")


_CompareOp: TypeAlias = Callable[[_Budget, Any, Any], Any]
_PLAIN_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_COMPARE_SYMBOLS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}


def _compare_op(op: ast.cmpop) -> _CompareOp:
    """The comparison as a function of (budget, left, right)."""
    if isinstance(op, ast.In):
        return _member
    if isinstance(op, ast.NotIn):
        return lambda budget, left, right: not _member(budget, left, right)
    plain = _PLAIN_COMPARE[type(op)]
    return lambda budget, left, right: plain(left, right)


# -- functions and text methods ------------------------------------------------------------


def _collection(value: Any, name: str) -> Any:
    if not isinstance(value, _COLLECTION):
        raise _Refused(f"{name}() needs text, a list or a dict, got {_type_name(value)}")
    return value


def _len(budget: _Budget, value: Any) -> int:
    return len(_collection(value, "len"))


def _extreme(pick: Callable[..., Any], name: str) -> Callable[..., Any]:
    def extreme(budget: _Budget, *args: Any) -> Any:
        items = _collection(args[0], name) if len(args) == 1 else args
        if not items:
            raise _Refused(f"{name}() of an empty {type(items).__name__}")
        _scan(budget, len(items))
        return pick(items)

    return extreme


def _sum(budget: _Budget, items: Any, start: Any = 0) -> Any:
    if not isinstance(items, list | tuple):
        raise _Refused(f"sum() needs a list, got {_type_name(items)}")
    _scan(budget, len(items))
    _summand(start)
    for value in items:
        _summand(value)
    return _check_int(sum(items, start))


def _summand(value: Any) -> None:
    if not isinstance(value, _NUMBER):
        raise _Refused(f"sum() adds numbers, got {_type_name(value)}")
    _check_int(value)


def _abs(budget: _Budget, value: Any) -> Any:
    return abs(_number(value, "abs()"))


def _round(budget: _Budget, value: Any, digits: Any = None) -> Any:
    _number(value, "round()")
    if digits is None:
        return round(value)
    if not isinstance(digits, int) or abs(digits) > 300:
        raise _Refused("round() takes a number of digits between -300 and 300", "limit")
    return _check_int(round(value, digits))


def _truth_of_all(pick: Callable[[Iterable[Any]], bool], name: str) -> Callable[..., bool]:
    def truth(budget: _Budget, items: Any) -> bool:
        _scan(budget, len(_collection(items, name)))
        return pick(items)

    return truth


def _int(budget: _Budget, value: Any) -> int:
    if isinstance(value, str) and len(value) > 1000:
        raise _Refused("int() of text longer than 1000 characters", "limit")
    if not isinstance(value, (int, float, str)):
        raise _Refused(f"int() needs a number or text, got {_type_name(value)}")
    result: int = _check_int(int(value))
    return result


def _float(budget: _Budget, value: Any) -> float:
    if isinstance(value, str) and len(value) > 1000:
        raise _Refused("float() of text longer than 1000 characters", "limit")
    if not isinstance(value, (int, float, str)):
        raise _Refused(f"float() needs a number or text, got {_type_name(value)}")
    return float(value)


def _str(budget: _Budget, value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Refused(f"str() of an integer over {MAX_INT_BITS} bits", "limit")
    _check_length(_repr_bound(value, MAX_LENGTH), "")
    text = str(value)
    _build(budget, _text_bytes(text))
    return text


def _repr_bound(value: Any, cap: int) -> int:
    """An upper bound of len(str(value)) for plain data; refuses other objects."""
    total = 0
    stack = [value]
    while stack and total <= cap:
        item = stack.pop()
        if isinstance(item, str):
            total += 2 + (4 if item.isascii() else 10) * len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += 2 + item.bit_length() // 3
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, list | tuple | dict):
            total += 4 * len(item) + 2
            if total <= cap:
                stack.extend(item.items() if isinstance(item, dict) else item)
        else:
            raise _Refused(f"str() cannot show {_type_name(item)}")
    return total


def _bool(budget: _Budget, value: Any) -> bool:
    return bool(value)


def _contains(budget: _Budget, haystack: Any, needle: Any) -> bool:
    return _member(budget, needle, haystack)


def _text_arg(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _Refused(f"{name}() needs text, got {_type_name(value)}")
    return value


def _index_args(args: tuple[Any, ...], name: str) -> tuple[Any, ...]:
    for value in args:
        if value is not None and not isinstance(value, int):
            raise _Refused(f"{name}() positions must be integers, got {_type_name(value)}")
    return args


def _recase(method: Callable[[str], str]) -> Callable[..., str]:
    def recase(budget: _Budget, text: str) -> str:
        if text.isascii():
            size = length = len(text)
        else:  # 'ß'.upper() == 'SS', 'ΐ'.upper() has 3 characters
            length = 3 * len(text)
            size = 4 * length
        if length > MAX_LENGTH:
            _check_length(length, text)
        budget[0] += size
        if budget[0] > MAX_BUILT_BYTES:
            _build(budget, 0)
        return method(text)

    return recase


def _stripper(method: Callable[[str, str | None], str]) -> Callable[..., str]:
    def strip(budget: _Budget, text: str, chars: Any = None) -> str:
        if chars is not None and (not isinstance(chars, str) or len(chars) > 64):
            raise _Refused(f"{method.__name__}() takes up to 64 characters to strip")
        _scan(budget, len(text))
        result = method(text, chars)
        _build(budget, _text_bytes(result))
        return result

    return strip


def _affix(method: Callable[..., bool]) -> Callable[..., bool]:
    name = method.__name__

    def affix(budget: _Budget, text: str, fix: Any, *bounds: Any) -> bool:
        if type(fix) is str and not bounds:  # the common case: cost bounded by len(fix)
            return method(text, fix)
        options = fix if isinstance(fix, tuple) else (fix,)
        if len(options) > 64 or not all(isinstance(option, str) for option in options):
            raise _Refused(f"{name}() needs text or a tuple of up to 64 texts")
        _scan(budget, sum(len(option) for option in options))
        return method(text, fix, *_index_args(bounds, name))

    return affix


def _search(method: Callable[..., int]) -> Callable[..., int]:
    name = method.__name__

    def search(budget: _Budget, text: str, sub: Any, *bounds: Any) -> int:
        _scan(budget, len(text) + len(_text_arg(sub, name)))
        return method(text, sub, *_index_args(bounds, name))

    return search


def _split(budget: _Budget, text: str, sep: Any = None, maxsplit: Any = -1) -> list[str]:
    if sep is not None:
        _text_arg(sep, "split")
    if not isinstance(maxsplit, int):
        raise _Refused(f"split() maxsplit must be an integer, got {_type_name(maxsplit)}")
    _scan(budget, len(text))
    allowed = min(_room(budget) // 64, MAX_LENGTH)
    pieces = text.split(sep, allowed if maxsplit < 0 else min(maxsplit, allowed))
    if len(pieces) > allowed and (maxsplit < 0 or maxsplit > allowed):
        raise _Refused(f"split() would build more than {allowed:,} pieces", "limit")
    _build(budget, 56 * len(pieces) + _text_bytes(text))
    return pieces


_Function: TypeAlias = Callable[..., Any]
FUNCTIONS: dict[str, tuple[_Function, int, int]] = {
    "len": (_len, 1, 1),
    "min": (_extreme(min, "min"), 1, MAX_NODES),
    "max": (_extreme(max, "max"), 1, MAX_NODES),
    "sum": (_sum, 1, 2),
    "abs": (_abs, 1, 1),
    "round": (_round, 1, 2),
    "any": (_truth_of_all(any, "any"), 1, 1),
    "all": (_truth_of_all(all, "all"), 1, 1),
    "int": (_int, 1, 1),
    "float": (_float, 1, 1),
    "str": (_str, 1, 1),
    "bool": (_bool, 1, 1),
    "contains": (_contains, 2, 2),
}
"""Callable functions: name -> (implementation, fewest and most arguments)."""

STR_METHODS: dict[str, tuple[_Function, int, int]] = {
    "lower": (_recase(str.lower), 0, 0),
    "upper": (_recase(str.upper), 0, 0),
    "strip": (_stripper(str.strip), 0, 1),
    "lstrip": (_stripper(str.lstrip), 0, 1),
    "rstrip": (_stripper(str.rstrip), 0, 1),
    "startswith": (_affix(str.startswith), 1, 3),
    "endswith": (_affix(str.endswith), 1, 3),
    "split": (_split, 0, 2),
    "count": (_search(str.count), 1, 3),
    "find": (_search(str.find), 1, 3),
}
"""Callable text methods: name -> (implementation, fewest and most arguments)."""


# -- reading data --------------------------------------------------------------------------


_FIELDS: dict[type, frozenset[str]] = {}


def _expr_fields(cls: type) -> frozenset[str]:
    """The attributes a class lets expressions read (its `__expr_fields__`), cached."""
    fields = _FIELDS.get(cls)
    if fields is None:
        declared = getattr(cls, "__expr_fields__", None)
        names = declared if isinstance(declared, frozenset) else ()
        fields = frozenset(f for f in names if isinstance(f, str) and not f.startswith("_"))
        if len(_FIELDS) < 1024:
            _FIELDS[cls] = fields
    return fields


def _missing(path: str, key: Any, mapping: Mapping[Any, Any]) -> str:
    """`result.steps.x has no key 'output'`, with a hint about the keys it does have."""
    import difflib

    keys = [k for k in itertools.islice(mapping, 1000) if isinstance(k, str) and len(k) <= 100]
    short = isinstance(key, str) and len(key) <= 100
    close = difflib.get_close_matches(key, keys, n=1) if short else []
    if close:
        hint = f"; did you mean '{close[0]}'?"
    elif keys:
        shown = ", ".join(_short(k, 40) for k in keys[:8])
        hint = f" (keys: {shown}{', …' if len(mapping) > 8 else ''})"
    else:
        hint = " (it is empty)" if not mapping else ""
    return f"{path} has no key {_short(key, 60)}{hint}"


def _field(obj: Any, name: str, path: str) -> Any:
    """`obj.name` for a mapping (its key) or an object that declares `__expr_fields__`."""
    if isinstance(obj, Mapping):
        try:
            return obj[name]
        except KeyError:
            raise _Refused(_missing(path, name, obj)) from None
    if name in _expr_fields(type(obj)) and not name.startswith("_"):
        try:
            return getattr(obj, name)
        except Exception as exc:  # an engine property failed: report, don't crash
            raise _Refused(f"reading {path}.{name} failed: {exc}") from None
    hint = f" (call it: .{name}())" if isinstance(obj, str) and name in STR_METHODS else ""
    raise _Refused(f"{path} is {_type_name(obj)}; it has no field '{name}'{hint}")


def _item(obj: Any, key: Any, path: str) -> Any:
    """`obj[key]`: dict keys are text or integers; list, tuple and text indices integers."""
    if isinstance(obj, list | tuple | str):
        if not isinstance(key, int):
            raise _Refused(f"{path} is {_type_name(obj)}; its index must be an integer")
        try:
            return obj[key]
        except IndexError:
            raise _Refused(f"index {key} is out of range for {path} (length {len(obj)})") from None
    if isinstance(obj, Mapping):
        if not isinstance(key, str | int):
            raise _Refused(f"keys are text or integers, got {_type_name(key)}")
        try:
            return obj[key]
        except KeyError:
            raise _Refused(_missing(path, key, obj)) from None
    raise _Refused(f"{path} is {_type_name(obj)}; it cannot be indexed")


def _slice(budget: _Budget, obj: Any, bounds: tuple[Any, Any, Any], path: str) -> Any:
    if not isinstance(obj, list | tuple | str):
        raise _Refused(f"{path} is {_type_name(obj)}; it cannot be sliced")
    for bound in bounds:
        if bound is not None and not isinstance(bound, int):
            raise _Refused(f"slice bounds must be integers, got {_type_name(bound)}")
    window = slice(*bounds)
    size = len(range(*window.indices(len(obj))))
    _build(budget, size if isinstance(obj, str) and obj.isascii() else size * 8)
    return obj[window]


# -- compiling ----------------------------------------------------------------------------

_Fn: TypeAlias = Callable[[Mapping[str, Any], _Budget], Any]
_Fail: TypeAlias = Callable[[BaseException], ExpressionError]
_Link: TypeAlias = tuple[str | int, str, _Fail, Literal["field", "item", "step"]]
"""One `.name` or `[constant]` step of a data path: key, text read from, failure, kind."""
_CAUGHT = (_Refused, TypeError, ValueError, ArithmeticError, LookupError)
FOLD_LIMIT = 4096
"""Largest constant (estimated bytes) folded at compile time and kept in the cache."""
FOLD_TOTAL = 16_384
"""Most constant bytes one compiled expression keeps."""


def _runtime(exc: BaseException) -> tuple[str, ErrorKind]:
    if isinstance(exc, _Refused):
        return exc.message, exc.kind
    if isinstance(exc, OverflowError):
        return f"number too large: {exc}", "limit"
    return str(exc) or type(exc).__name__, "runtime"


_CONSTRUCTS: dict[type[ast.AST], str] = {
    ast.Lambda: "lambda expressions are",
    ast.ListComp: "comprehensions are",
    ast.SetComp: "comprehensions are",
    ast.DictComp: "comprehensions are",
    ast.GeneratorExp: "generator expressions are",
    ast.NamedExpr: "assignment expressions (:=) are",
    ast.Starred: "starred expressions (*x) are",
    ast.JoinedStr: "f-strings are",
    ast.FormattedValue: "f-strings are",
    ast.Set: "set literals are",
    ast.Await: "'await' is",
    ast.Yield: "'yield' is",
    ast.YieldFrom: "'yield' is",
}


def _operands(node: ast.AST) -> list[ast.AST]:
    """The sub-expressions a node's closure evaluates."""
    if isinstance(node, ast.Call):
        receiver = [node.func.value] if isinstance(node.func, ast.Attribute) else []
        return [*receiver, *node.args]
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        bounds = (node.slice.lower, node.slice.upper, node.slice.step)
        return [node.value, *(bound for bound in bounds if bound is not None)]
    return [child for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)]


def _constant_key(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (str, int)


def _foldable(value: Any) -> bool:
    """Immutable and small: safe to share between evaluations and keep in the cache."""
    if type(value) is tuple:
        return _weight(value, FOLD_LIMIT) <= FOLD_LIMIT and all(_foldable(v) for v in value)
    if value is None or type(value) in (int, float, bool):
        return True
    return type(value) is str and len(value) <= FOLD_LIMIT


class _Compiler:
    """Turns a checked syntax tree into closures `fn(bindings, budget) -> value`.

    Sub-expressions without names are evaluated once here (constant folding), so a
    hostile constant such as `'a' * 10**9` is refused at compile time.
    """

    def __init__(self, text: _Text, names: frozenset[str]) -> None:
        self.text = text
        self.names = names
        self.fns: dict[ast.AST, _Fn] = {}
        self.constants: dict[ast.AST, Any] = {}  # folded: small and immutable
        self.small: set[ast.AST] = set()  # without names, small, but mutable: not folded
        self.spent = 0  # what folding has built and scanned so far
        self.parts = 0  # syntax-tree nodes, for the cache's accounting
        self.kept = 0  # estimated bytes of the folded constants

    def compile(self, node: ast.AST) -> _Fn:
        method = _DISPATCH.get(type(node))
        if method is None:
            what = _CONSTRUCTS.get(type(node), f"{type(node).__name__} expressions are")
            raise self.refuse(node, f"{what} not allowed")
        fn = method(self, node)
        if not isinstance(node, ast.Constant | ast.Name) and all(
            operand in self.constants or operand in self.small for operand in _operands(node)
        ):
            fn = self.fold(node, fn)
        self.fns[node] = fn
        return fn

    def fold(self, node: ast.AST, fn: _Fn) -> _Fn:
        """Evaluate a part without names now: refuse it if it breaks a limit, and turn
        it into a constant if its value is small and immutable."""
        if self.spent > MAX_BUILT_BYTES:  # folding is bounded like one evaluation
            return fn
        budget = [0, 0]
        try:
            value = fn({}, budget)
        except ExpressionError as exc:
            if exc.kind in ("limit", "refused"):
                raise
            return fn  # e.g. 1/0 behind a guard: an error only if it runs
        except (*_CAUGHT, RecursionError, MemoryError):
            return fn
        finally:
            self.spent += budget[0] + budget[1]
        size = _weight(value, FOLD_LIMIT)
        if _foldable(value) and self.kept + size <= FOLD_TOTAL:
            self.kept += size
            self.constants[node] = value
            return lambda env, budget: value
        if size <= FOLD_LIMIT:
            self.small.add(node)
        return fn

    def refuse(
        self, node: ast.AST, message: str, kind: ErrorKind = "refused", offset: int = -1
    ) -> ExpressionError:
        where = self.text.start(node) if offset < 0 else offset
        return ExpressionError(message, self.text.source, where, kind)

    def failer(self, offset: int) -> _Fail:
        """Turns an exception raised by an operation into an ExpressionError at `offset`."""
        source = self.text.source

        def fail(exc: BaseException) -> ExpressionError:
            message, kind = _runtime(exc)
            return ExpressionError(message, source, offset, kind)

        return fail

    # -- leaves -----------------------------------------------------------------------

    def constant(self, node: ast.Constant) -> _Fn:
        value = node.value
        if value is not None and type(value) not in (str, int, float, bool):
            raise self.refuse(node, f"{type(value).__name__} literals are not allowed")
        if type(value) is int and value.bit_length() > MAX_INT_BITS:
            raise self.refuse(node, f"integer literal over {MAX_INT_BITS} bits", "limit")
        self.constants[node] = value
        return lambda env, budget: value

    def check_name(self, node: ast.Name) -> str:
        ident = node.id
        if ident in FUNCTIONS:
            raise self.refuse(node, f"'{ident}' is a function; call it, e.g. {ident}(…)")
        if ident not in self.names:
            raise self.refuse(node, _unknown_name(ident, self.names))
        return ident

    def name(self, node: ast.Name) -> _Fn:
        return _path_reader(self.check_name(node), self.failer(self.text.start(node)), ())

    # -- data access --------------------------------------------------------------------

    def attribute(self, node: ast.Attribute) -> _Fn:
        return self.path(node)

    def path(self, node: ast.expr) -> _Fn:
        """`a.b[0].c`: one closure walking constant keys from a name or an expression."""
        links: list[_Link] = []
        while isinstance(node, ast.Attribute) or (
            isinstance(node, ast.Subscript) and _constant_key(node.slice)
        ):
            links.append(self.link(node))
            node = node.value
        links.reverse()
        if isinstance(node, ast.Name):
            return _path_reader(self.check_name(node), self.failer(self.text.start(node)), links)
        return _reader(self.compile(node), tuple(links))

    def link(self, node: ast.Attribute | ast.Subscript) -> _Link:
        path = self.text.segment(node.value)
        if isinstance(node, ast.Subscript):
            key: str | int = node.slice.value  # type: ignore[attr-defined]
            return key, path, self.failer(self.text.start(node.slice)), "item"
        attr = node.attr
        offset = self.text.end(node) - len(attr)
        step = _is_steps(node.value)
        if _is_dunder(attr) or (attr.startswith("_") and not step):
            raise self.refuse(node, _private(attr), offset=offset)
        return attr, path, self.failer(offset), "step" if step else "field"

    def subscript(self, node: ast.Subscript) -> _Fn:
        if _constant_key(node.slice):
            return self.path(node)
        base = self.compile(node.value)
        path = self.text.segment(node.value)
        if isinstance(node.slice, ast.Slice):
            return self.slice(node.slice, base, path)
        key_fn = self.compile(node.slice)
        fail = self.failer(self.text.start(node.slice))

        def index(env: Mapping[str, Any], budget: _Budget) -> Any:
            obj = base(env, budget)
            key = key_fn(env, budget)
            try:
                return _item(obj, key, path)
            except _CAUGHT as exc:
                raise fail(exc) from None

        return index

    def slice(self, node: ast.Slice, base: _Fn, path: str) -> _Fn:
        lower, upper, step = (self.optional(part) for part in (node.lower, node.upper, node.step))
        fail = self.failer(self.text.start(node))

        def cut(env: Mapping[str, Any], budget: _Budget) -> Any:
            obj = base(env, budget)
            bounds = (lower(env, budget), upper(env, budget), step(env, budget))
            try:
                return _slice(budget, obj, bounds, path)
            except _CAUGHT as exc:
                raise fail(exc) from None

        return cut

    def optional(self, node: ast.expr | None) -> _Fn:
        return (lambda env, budget: None) if node is None else self.compile(node)

    # -- calls ----------------------------------------------------------------------------

    def call(self, node: ast.Call) -> _Fn:
        if node.keywords:
            raise self.refuse(node.keywords[0], "keyword arguments are not allowed")
        func = node.func
        if isinstance(func, ast.Name) and func.id in FUNCTIONS:
            impl, low, high = FUNCTIONS[func.id]
            self.arity(node, func.id, low, high)
            args = [self.compile(arg) for arg in node.args]
            return _call(impl, args, self.failer(self.text.start(node)))
        if isinstance(func, ast.Attribute) and func.attr in STR_METHODS:
            impl, low, high = STR_METHODS[func.attr]
            self.arity(node, func.attr, low, high)
            return self.method(node, func, impl)
        raise self.refuse(node, _uncallable(func), offset=self.callee_offset(func))

    def callee_offset(self, func: ast.expr) -> int:
        if isinstance(func, ast.Attribute):
            return self.text.end(func) - len(func.attr)
        return self.text.start(func)

    def arity(self, node: ast.Call, name: str, low: int, high: int) -> None:
        count = len(node.args)
        if not low <= count <= high:
            expected = f"{low}" if low == high else f"{low} to {high}"
            raise self.refuse(node, f"{name}() takes {expected} arguments, got {count}")

    def method(self, node: ast.Call, func: ast.Attribute, impl: _Function) -> _Fn:
        receiver = self.compile(func.value)
        args = [self.compile(arg) for arg in node.args]
        name, path = func.attr, self.text.segment(func.value)
        fail = self.failer(self.text.end(func) - len(name))

        def text_of(value: Any) -> str:
            if isinstance(value, str):
                return value
            raise _Refused(f"{name}() works on text; {path} is {_type_name(value)}")

        if not args:

            def call_bare(env: Mapping[str, Any], budget: _Budget) -> Any:
                value = receiver(env, budget)
                try:
                    return impl(budget, text_of(value))
                except _CAUGHT as exc:
                    raise fail(exc) from None

            return call_bare

        if len(args) == 1:
            (only,) = args

            def call_one(env: Mapping[str, Any], budget: _Budget) -> Any:
                value = receiver(env, budget)
                argument = only(env, budget)
                try:
                    return impl(budget, text_of(value), argument)
                except _CAUGHT as exc:
                    raise fail(exc) from None

            return call_one

        def call(env: Mapping[str, Any], budget: _Budget) -> Any:
            value = receiver(env, budget)
            values = [arg(env, budget) for arg in args]
            try:
                return impl(budget, text_of(value), *values)
            except _CAUGHT as exc:
                raise fail(exc) from None

        return call

    # -- operators ------------------------------------------------------------------------

    def compare(self, node: ast.Compare) -> _Fn:
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot) and not (
                isinstance(right, ast.Constant) and right.value is None
            ):
                raise self.refuse(node, "'is' only compares with None; use == instead")
        left = self.compile(node.left)
        rights = [self.compile(right) for right in node.comparators]
        fail = self.failer(self.text.start(node))
        if len(node.ops) == 1:
            return self.single_compare(node.ops[0], left, node.comparators[0], rights[0], fail)
        links = [(_compare_op(op), right) for op, right in zip(node.ops, rights, strict=True)]
        return _chain(left, links, fail)

    def single_compare(
        self, op: ast.cmpop, left: _Fn, right_node: ast.expr, right: _Fn, fail: _Fail
    ) -> _Fn:
        if isinstance(op, ast.In | ast.NotIn):
            return _membership(left, right, isinstance(op, ast.NotIn), fail)
        plain = _PLAIN_COMPARE[type(op)]
        if right_node in self.constants:
            return _compare_constant(left, self.constants[right_node], plain, fail)
        return _compare(left, right, plain, fail)

    def boolop(self, node: ast.BoolOp) -> _Fn:
        operands = [self.compile(value) for value in node.values]
        return _any_of(operands) if isinstance(node.op, ast.Or) else _all_of(operands)

    def unaryop(self, node: ast.UnaryOp) -> _Fn:
        if type(node.op) in _OPERATOR_SYMBOLS:
            symbol = _OPERATOR_SYMBOLS[type(node.op)]
            raise self.refuse(node, f"operator '{symbol}' is not allowed")
        operand = self.compile(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env, budget: not operand(env, budget)
        sign = operator.neg if isinstance(node.op, ast.USub) else operator.pos
        fail = self.failer(self.text.start(node))

        def signed(env: Mapping[str, Any], budget: _Budget) -> Any:
            value = operand(env, budget)
            try:
                return sign(_number(value, "unary - and +"))
            except _CAUGHT as exc:
                raise fail(exc) from None

        return signed

    def binop(self, node: ast.BinOp) -> _Fn:
        impl = _BINARY.get(type(node.op))
        if impl is None:
            symbol = _OPERATOR_SYMBOLS[type(node.op)]
            raise self.refuse(node, f"operator '{symbol}' is not allowed")
        formats = isinstance(node.left, ast.JoinedStr) or (
            isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)
        )
        if isinstance(node.op, ast.Mod) and formats:
            raise self.refuse(node, "'%' formatting is not allowed; % works on numbers")
        left, right = self.compile(node.left), self.compile(node.right)
        fail = self.failer(self.text.start(node))

        def arithmetic(env: Mapping[str, Any], budget: _Budget) -> Any:
            a = left(env, budget)
            b = right(env, budget)
            try:
                return impl(budget, a, b)
            except _CAUGHT as exc:
                raise fail(exc) from None

        return arithmetic

    def ifexp(self, node: ast.IfExp) -> _Fn:
        test, body, orelse = (self.compile(n) for n in (node.test, node.body, node.orelse))
        return lambda env, budget: body(env, budget) if test(env, budget) else orelse(env, budget)

    # -- displays -------------------------------------------------------------------------

    def list_display(self, node: ast.List) -> _Fn:
        items = [self.compile(element) for element in node.elts]
        return lambda env, budget: [item(env, budget) for item in items]

    def tuple_display(self, node: ast.Tuple) -> _Fn:
        items = [self.compile(element) for element in node.elts]
        return lambda env, budget: tuple([item(env, budget) for item in items])

    def dict_display(self, node: ast.Dict) -> _Fn:
        pairs: list[tuple[_Fn, _Fn]] = []
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise self.refuse(value, "'**' unpacking is not allowed")
            pairs.append((self.compile(key), self.compile(value)))
        fail = self.failer(self.text.start(node))

        def build(env: Mapping[str, Any], budget: _Budget) -> Any:
            entries = [(key(env, budget), value(env, budget)) for key, value in pairs]
            try:
                return dict(entries)
            except TypeError as exc:
                raise fail(exc) from None

        return build


# -- closures --------------------------------------------------------------------------------


def _path_reader(ident: str, fail: _Fail, links: Iterable[_Link]) -> _Fn:
    """`name.a[0].b`: reads a bound name, then walks the links."""
    steps = tuple(links)

    def read(env: Mapping[str, Any], budget: _Budget) -> Any:
        try:
            obj = env[ident]
        except KeyError:
            raise fail(_Refused(f"'{ident}' has no value here")) from None
        for key, path, fail_link, kind in steps:
            if type(obj) is dict:
                try:
                    obj = obj[key]
                    continue
                except KeyError:
                    raise fail_link(_Refused(_missing(path, key, obj))) from None
            obj = _follow(obj, key, path, fail_link, kind)
        return obj

    return read


def _reader(base: _Fn, links: tuple[_Link, ...]) -> _Fn:
    """`(expression).a[0].b`: evaluates the base, then walks the links."""

    def read(env: Mapping[str, Any], budget: _Budget) -> Any:
        obj = base(env, budget)
        for key, path, fail, kind in links:
            obj = _follow(obj, key, path, fail, kind)
        return obj

    return read


def _follow(obj: Any, key: str | int, path: str, fail: _Fail, kind: str) -> Any:
    """One link of a data path, for any kind of value."""
    try:
        if kind == "field":
            return _field(obj, str(key), path)
        if kind == "step" and not isinstance(obj, Mapping):
            raise _Refused(f"{path} is {_type_name(obj)}, not a mapping of steps")
        return _item(obj, key, path)
    except _CAUGHT as exc:
        raise fail(exc) from None


def _call(impl: _Function, args: list[_Fn], fail: _Fail) -> _Fn:
    """A call of an allowed function (one argument is the common, fast case)."""
    if len(args) == 1:
        (only,) = args

        def call_one(env: Mapping[str, Any], budget: _Budget) -> Any:
            value = only(env, budget)
            try:
                return impl(budget, value)
            except _CAUGHT as exc:
                raise fail(exc) from None

        return call_one

    def call(env: Mapping[str, Any], budget: _Budget) -> Any:
        values = [arg(env, budget) for arg in args]
        try:
            return impl(budget, *values)
        except _CAUGHT as exc:
            raise fail(exc) from None

    return call


def _compare(left: _Fn, right: _Fn, op: Callable[[Any, Any], Any], fail: _Fail) -> _Fn:
    def compare(env: Mapping[str, Any], budget: _Budget) -> Any:
        a = left(env, budget)
        b = right(env, budget)
        try:
            return op(a, b)
        except _CAUGHT as exc:
            raise fail(exc) from None

    return compare


def _compare_constant(left: _Fn, value: Any, op: Callable[[Any, Any], Any], fail: _Fail) -> _Fn:
    def compare(env: Mapping[str, Any], budget: _Budget) -> Any:
        a = left(env, budget)
        try:
            return op(a, value)
        except _CAUGHT as exc:
            raise fail(exc) from None

    return compare


def _membership(left: _Fn, right: _Fn, negate: bool, fail: _Fail) -> _Fn:
    def member(env: Mapping[str, Any], budget: _Budget) -> bool:
        item = left(env, budget)
        container = right(env, budget)
        try:
            found = _member(budget, item, container)
        except _CAUGHT as exc:
            raise fail(exc) from None
        return not found if negate else found

    return member


def _chain(left: _Fn, links: list[tuple[_CompareOp, _Fn]], fail: _Fail) -> _Fn:
    """`a < b < c`: each operand evaluated once, stopping at the first false link."""

    def chain(env: Mapping[str, Any], budget: _Budget) -> Any:
        value = left(env, budget)
        result: Any = True
        for op, right_fn in links:
            right = right_fn(env, budget)
            try:
                result = op(budget, value, right)
            except _CAUGHT as exc:
                raise fail(exc) from None
            if not result:
                return result
            value = right
        return result

    return chain


def _all_of(operands: list[_Fn]) -> _Fn:
    """`a and b and …`: the first falsy operand, or the last one."""
    if len(operands) == 2:
        first, second = operands
        return lambda env, budget: first(env, budget) and second(env, budget)

    def all_of(env: Mapping[str, Any], budget: _Budget) -> Any:
        value: Any = True
        for operand in operands:
            value = operand(env, budget)
            if not value:
                return value
        return value

    return all_of


def _any_of(operands: list[_Fn]) -> _Fn:
    """`a or b or …`: the first truthy operand, or the last one."""
    if len(operands) == 2:
        first, second = operands
        return lambda env, budget: first(env, budget) or second(env, budget)

    def any_of(env: Mapping[str, Any], budget: _Budget) -> Any:
        value: Any = False
        for operand in operands:
            value = operand(env, budget)
            if value:
                return value
        return value

    return any_of


_DISPATCH: dict[type[ast.AST], Callable[[_Compiler, Any], _Fn]] = {
    ast.Constant: _Compiler.constant,
    ast.Name: _Compiler.name,
    ast.Attribute: _Compiler.attribute,
    ast.Subscript: _Compiler.subscript,
    ast.Call: _Compiler.call,
    ast.Compare: _Compiler.compare,
    ast.BoolOp: _Compiler.boolop,
    ast.UnaryOp: _Compiler.unaryop,
    ast.BinOp: _Compiler.binop,
    ast.IfExp: _Compiler.ifexp,
    ast.List: _Compiler.list_display,
    ast.Tuple: _Compiler.tuple_display,
    ast.Dict: _Compiler.dict_display,
}


def _unknown_name(ident: str, names: frozenset[str]) -> str:
    if ident.startswith("_"):
        return _private(ident)
    import difflib

    close = difflib.get_close_matches(ident, sorted(names), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    usable = ", ".join(sorted(names)) or "none"
    return f"unknown name '{ident}'{hint} (names here: {usable})"


def _private(name: str) -> str:
    return f"'{name}': names starting with '_' are not allowed"


def _uncallable(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"method '{func.attr}' is not allowed; text methods: {', '.join(STR_METHODS)}"
    if isinstance(func, ast.Name):
        return f"function '{func.id}' is not allowed; functions: {', '.join(FUNCTIONS)}"
    return "only the allowed functions and text methods can be called"


# -- compiled expressions ------------------------------------------------------------------


def _compile(source: str, names: frozenset[str]) -> tuple[ast.Expression, _Text, _Compiler]:
    """Parse, check and compile; the compiler keeps every part's closure."""
    text = _Text(source)
    tree = _parse(source)
    parts = _check_size(tree, text)
    _check_ascii(tree, text)
    _check_private(tree, text)
    compiler = _Compiler(text, names)
    compiler.parts = parts
    compiler.compile(tree.body)
    return tree, text, compiler


class CompiledExpression:
    """A checked, compiled expression: evaluate it as often as needed.

    Only the root closure is kept (compiled expressions are cached); `explain` and
    `step_references` compile or parse again, which is cheap next to a failing test.
    """

    __slots__ = ("_fn", "_lead", "_parts", "names", "source")

    def __init__(self, source: str, names: frozenset[str]) -> None:
        tree, text, compiler = _compile(source, names)
        self._fn = compiler.fns[tree.body]
        self._lead = text.lead
        self._parts = compiler.parts
        self.source = source
        self.names = names

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r})"

    def evaluate(self, bindings: Mapping[str, Any]) -> Any:
        """The expression's value with `bindings` (name -> value); ExpressionError if not."""
        try:
            return self._fn(bindings, [0, 0])
        except ExpressionError:
            raise
        except (*_CAUGHT, RecursionError, MemoryError) as exc:
            message, kind = _runtime(exc)
            if isinstance(exc, RecursionError | MemoryError):
                message, kind = "data is nested too deeply or is too large", "limit"
            raise ExpressionError(message, self.source, self._lead, kind) from None

    __call__ = evaluate

    def step_references(self) -> list[StepReference]:
        """The steps the expression names, with where each name starts."""
        return step_references(_parse(self.source), self.source)

    def explain(self, bindings: Mapping[str, Any]) -> str:
        """Why the expression has its value, pytest-style: `0.0132 < 0.01 is False`."""
        tree, text, compiler = _compile(self.source, self.names)
        try:
            return _Explainer(compiler.fns, text, bindings).describe(tree.body)
        except ExpressionError as exc:
            return f"error: {exc.message}"
        except (*_CAUGHT, RecursionError, MemoryError) as exc:
            return f"error: {_runtime(exc)[0]}"


class _Failure:
    """A cached compile failure (raised afresh each time)."""

    __slots__ = ("kind", "message", "offset")

    def __init__(self, message: str, offset: int, kind: ErrorKind) -> None:
        self.message = message
        self.offset = offset
        self.kind: ErrorKind = kind


class _Cache:
    """LRU of compiled expressions and failures, bounded in entries and in total parts
    (so a spec of a thousand 500-part expressions cannot hold on to a gigabyte)."""

    def __init__(self, entries: int, parts: int) -> None:
        self.entries = entries
        self.max_parts = parts
        self.parts = 0
        self.data: OrderedDict[tuple[str, frozenset[str]], CompiledExpression | _Failure] = (
            OrderedDict()
        )
        self.lock = threading.Lock()

    def get(self, source: str, names: frozenset[str]) -> CompiledExpression | _Failure:
        key = (source, names)
        with self.lock:
            found = self.data.get(key)
            if found is not None:
                self.data.move_to_end(key)
                return found
        try:
            found = CompiledExpression(source, names)
        except ExpressionError as exc:
            found = _Failure(exc.message, exc.offset, exc.kind)
        self.put(key, found)
        return found

    def put(self, key: tuple[str, frozenset[str]], value: CompiledExpression | _Failure) -> None:
        with self.lock:
            if key in self.data:
                return
            self.data[key] = value
            self.parts += _parts(value)
            while len(self.data) > self.entries or self.parts > self.max_parts:
                _, dropped = self.data.popitem(last=False)
                self.parts -= _parts(dropped)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()
            self.parts = 0


def _parts(value: CompiledExpression | _Failure) -> int:
    return value._parts if isinstance(value, CompiledExpression) else 1


_CACHE = _Cache(CACHE_SIZE, CACHE_PARTS)


def compile_expression(source: str, names: Iterable[str] = EXPRESSION_NAMES) -> CompiledExpression:
    """Check and compile `source`, allowing the variable `names`; cached.

    Raises ExpressionError (`syntax`, `refused` or `limit`) with the offset it points at.
    """
    if not isinstance(source, str):
        raise TypeError(f"an expression is text, not {type(source).__name__}")
    if isinstance(names, str):
        raise TypeError("names is a collection of names, not one string")
    allowed = names if isinstance(names, frozenset) else frozenset(names)
    _check_names(allowed)
    compiled = _CACHE.get(source, allowed)
    if isinstance(compiled, _Failure):
        raise ExpressionError(compiled.message, source, compiled.offset, compiled.kind)
    return compiled


@lru_cache(maxsize=64)
def _check_names(names: frozenset[str]) -> None:
    for name in names:
        if not (
            isinstance(name, str)
            and name.isidentifier()
            and name.isascii()
            and not name.startswith("_")
            and not keyword.iskeyword(name)
            and name not in FUNCTIONS
        ):
            raise ValueError(f"{name!r} cannot be bound in an expression")


def evaluate(source: str, bindings: Mapping[str, Any], names: Iterable[str] | None = None) -> Any:
    """Compile (cached) and evaluate; `names` defaults to the names bound."""
    return compile_expression(source, frozenset(bindings) if names is None else names).evaluate(
        bindings
    )


# -- explanations --------------------------------------------------------------------------

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


def _short(value: Any, limit: int = 60) -> str:
    """A shortened repr: long text and lists show their ends and their length."""
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxstring = limit
    shortener.maxother = limit
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = 6
    shortener.maxlevel = 3
    text = shortener.repr(value)
    long_text = isinstance(value, str) and len(value) > limit
    if long_text or (isinstance(value, list | tuple | dict) and len(value) > 6):
        text += f" (length {len(value):,})"
    return text
