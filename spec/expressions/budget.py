"""The limits, and the budget that keeps every value an evaluation builds bounded before
it is allocated. A budget is a two-item list (estimated bytes built, items scanned) that
operations charge: a charge is an addition and a comparison, and `_weight` stops counting
at the cap it is given, so sizing a huge value costs no more than the room left.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from flujo.spec.expressions.errors import _Refused

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
