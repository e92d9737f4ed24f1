"""The closures a compiled expression is made of, `fn(bindings, budget) -> value`, each
turning an operation's failure into an ExpressionError at its node's offset. They are
built once per expression; evaluating calls the root closure, so these are the hot path
that benchmarks/expressions.py measures (about 1 µs per expression).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeAlias

from flujo.spec.expressions.budget import _Budget, _type_name
from flujo.spec.expressions.builtins import _Function
from flujo.spec.expressions.data import _field, _item, _missing
from flujo.spec.expressions.errors import _CAUGHT, ExpressionError, _Refused
from flujo.spec.expressions.operators import _CompareOp, _member

_Fn: TypeAlias = Callable[[Mapping[str, Any], _Budget], Any]
_Fail: TypeAlias = Callable[[BaseException], ExpressionError]
_Link: TypeAlias = tuple[str | int, str, _Fail, Literal["field", "item", "step"]]
"""One `.name` or `[constant]` step of a data path: key, text read from, failure, kind."""


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
