"""What an expression can do to values: the operators (arithmetic, `in`, comparisons),
FUNCTIONS (`len`, `min`, `sum`, …) and STR_METHODS (`lower`, `split`, …), each with its
fewest and most arguments. Every implementation takes the budget first, checks its
operand types and charges what it scans or builds before it builds it, so the common
cases cost an `isinstance` or two over Python's own and no call exceeds the limits.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from flujo.spec.expressions.budget import (
    MAX_BUILT_BYTES,
    MAX_INT_BITS,
    MAX_LENGTH,
    MAX_NODES,
    MAX_WORK,
    _Budget,
    _build,
    _check_int,
    _check_length,
    _room,
    _scan,
    _text_bytes,
    _type_name,
    _weight,
)
from flujo.spec.expressions.errors import _Refused

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

LITERAL_NAMES: dict[str, Any] = {"true": True, "false": False, "null": None}
"""flujo 0.x's spellings of the constants (read as names only where no binding has them)."""
