"""The functions (`len`, `min`, `sum`, …) and text methods (`lower`, `split`, …) an
expression may call: FUNCTIONS and STR_METHODS map a name to (implementation, fewest and
most arguments). Each implementation takes the budget first and charges what it scans or
builds, so one call costs at most what MAX_WORK and MAX_BUILT_BYTES leave.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

from flujo.spec.expressions.budget import (
    MAX_BUILT_BYTES,
    MAX_INT_BITS,
    MAX_LENGTH,
    MAX_NODES,
    _Budget,
    _build,
    _check_int,
    _check_length,
    _room,
    _scan,
    _text_bytes,
    _type_name,
)
from flujo.spec.expressions.errors import _Refused
from flujo.spec.expressions.operators import _COLLECTION, _NUMBER, _member, _number


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
