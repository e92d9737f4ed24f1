"""Reading data: `a.b` on mappings and on objects whose class declares `__expr_fields__`,
`a[i]` and slices, and the messages for a miss (the keys there are, or `did you mean`).
A read is a lookup plus a cached field-set check; difflib and reprlib load only for the
message of a miss, and `_short` keeps any value shown in a message short.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from flujo.spec.expressions.budget import _Budget, _build, _type_name
from flujo.spec.expressions.builtins import STR_METHODS
from flujo.spec.expressions.errors import _Refused

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
