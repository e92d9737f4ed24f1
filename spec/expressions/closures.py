"""What evaluation runs: the closures a compiled expression is made of, `fn(bindings,
budget) -> value`, and the data reads they do (`a.b` on mappings and on objects that
declare `__expr_fields__`, `a[i]`, slices). Built once per expression; evaluating calls
the root closure, so this is the hot path benchmarks/expressions.py measures. A read is
a lookup plus a cached field-set check; difflib and reprlib load only to word a miss or
an explanation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeAlias

from flujo.spec.expressions.budget import _Budget, _build, _type_name
from flujo.spec.expressions.builtins import STR_METHODS, _CompareOp, _Function, _member
from flujo.spec.expressions.errors import _CAUGHT, ExpressionError, _Refused
from flujo.spec.legacy.lenient import MISSING_IS_NONE

_Fn: TypeAlias = Callable[[Mapping[str, Any], _Budget], Any]
_Fail: TypeAlias = Callable[[BaseException], ExpressionError]
_Link: TypeAlias = tuple[str | int, str, _Fail, Literal["field", "item", "step"]]
"""One `.name` or `[constant]` step of a data path: key, text read from, failure, kind."""


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
                    if MISSING_IS_NONE.get():  # a 0.x blueprint: missing reads as None
                        return None
                    raise fail_link(_Refused(_missing(path, key, obj))) from None
            if obj is None and MISSING_IS_NONE.get():
                return None
            try:
                obj = _follow(obj, key, path, fail_link, kind)
            except ExpressionError:
                if MISSING_IS_NONE.get():
                    return None
                raise
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
