"""The entry points: `compile_expression` (checked, compiled, cached, failures included),
`CompiledExpression` and `evaluate`. The cache is an LRU bounded in entries and in total
syntax-tree parts, so a spec full of large expressions cannot hold on to unbounded memory;
a hit costs a dict lookup under a lock, an evaluation one call of the root closure.
"""

from __future__ import annotations

import keyword
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from flujo.spec.expressions.builtins import FUNCTIONS
from flujo.spec.expressions.compiler import _compile
from flujo.spec.expressions.errors import (
    _CAUGHT,
    ErrorKind,
    ExpressionError,
    StepReference,
    _runtime,
)
from flujo.spec.expressions.parsing import _parse, step_references

CACHE_SIZE = 1024
"""Most compiled expressions kept, keyed by (source, allowed names)."""
CACHE_PARTS = 20_000
"""Most syntax-tree nodes the kept expressions may have in total (about 0.5 KB each)."""

EXPRESSION_NAMES: frozenset[str] = frozenset(
    {
        "result",
        "input",
        "previous",
        "previous_step",
        "output",
        "steps",
        "run",
        "env",
        "item",
        "context",
    }
)
"""Every name some use of an expression may bind (`previous_step` is flujo 0.x's
name for `previous`)."""


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
        from flujo.spec.expressions.explain import _Explainer  # for failing tests only

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
