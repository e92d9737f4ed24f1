"""The operators: arithmetic, `in`, and comparisons, each a function of (budget, left,
right) that checks its operand types and charges the budget before it builds anything.
The common cases (numbers, short text) cost an `isinstance` or two over Python's own.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from flujo.spec.expressions.budget import (
    MAX_INT_BITS,
    MAX_WORK,
    _Budget,
    _build,
    _check_int,
    _check_length,
    _room,
    _scan,
    _type_name,
    _weight,
)
from flujo.spec.expressions.errors import _Refused

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
