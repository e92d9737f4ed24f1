"""Step inputs: `{{ … }}` templates rendered in the sandbox for users' templates
(`flujo.spec.templating.untrusted_environment`).

A string that is exactly one `{{ expression }}` yields the expression's value with its
type (a dict stays a dict); any other string renders to text. Mappings and lists are
rendered item by item. Templates are compiled once per process. In the runs of flujo 0.x
blueprints a missing value renders as empty text, as 0.x's default mode did
(`flujo.spec.legacy.lenient`).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import Undefined

from flujo.spec.legacy.lenient import MISSING_IS_NONE
from flujo.spec.templating import iteration_budget, render_bounded, untrusted_environment

_SINGLE = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\}\}).)*)\}\}\s*$", re.S)


@lru_cache(maxsize=4096)
def _compile(text: str, lenient: bool = False) -> Any:
    env = untrusted_environment(lenient)
    single = _SINGLE.match(text)
    if single is not None and "{%" not in text:
        return ("value", env.compile_expression(single.group("expr"), undefined_to_none=False))
    return ("text", env.from_string(text))


def has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(has_template(v) for v in value)
    return False


def render(value: Any, context: dict[str, Any]) -> Any:
    """`value` with every template in it rendered against `context`."""
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        lenient = MISSING_IS_NONE.get()  # a 0.x blueprint: missing renders as empty text
        kind, compiled = _compile(value, lenient)
        if kind == "text":
            return render_bounded(compiled, context)
        with iteration_budget():
            out = compiled(**context)
        if isinstance(out, Undefined):  # a missing key fails here, as in a longer template
            if lenient:
                return ""
            out._fail_with_undefined_error()
        return out
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value
