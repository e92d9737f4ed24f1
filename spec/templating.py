"""The one sandbox for untrusted templates: users' Jinja2 in specs.

A spec's `template_render` skill (its `template` is parsed when the spec is validated and
rendered when the step runs) and a step's `input:` templates are written by whoever can
commit a spec, so both go through `untrusted_environment()`, the strictest sandbox Jinja2
has: `ImmutableSandboxedEnvironment` (no access to private attributes or unsafe callables,
and no mutation of lists, dicts or sets: `{{ x.append(1) }}` is refused), StrictUndefined
(a misspelt name is an error, not empty text), no autoescaping (the output is data, not
HTML) and no extensions (no `{% do %}`, no loop controls).

On top of Jinja's sandbox, templates are bounded like the expression language: `*`, `+`,
`**` and `%` refuse results over `MAX_TEXT` characters (or `MAX_DIGITS` digits) before
building them, padding widths (`center`, `indent`, `format`, `'%9999d'`) are capped, the
`range`s of one render share a budget of `MAX_ITERATIONS` items, `lipsum` is gone, and a
render stops once its output passes `MAX_TEXT`. Each check is a comparison or two: rendering
costs the same within the bounds.

Flujo's own templates (PR bodies, check summaries, pages) are trusted and use
`flujo.templates.environment.product_environment` instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any

from flujo.spec.errors import FlujoError

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATE_NAMES = ("input", "previous", "previous_step", "steps")
"""The names a template sees (`previous_step` is flujo 0.x's name for `previous`)."""
_PLAIN_OUTPUT = re.compile(r"\{\{ *([A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z_][A-Za-z0-9_]*)* *\}\}")
"""`{{ name.attr… }}`: the most common template, which needs no Jinja parser to check."""


def plainly_fine(template: str) -> bool:
    """Whether `template` is only text and `{{ name.attr… }}` outputs of names templates
    see (or `context`, refused elsewhere with its own error): then Jinja would parse it and
    find nothing wrong, and checking it needs no Jinja import. False means "not sure":
    Jinja checks it, so diagnostics never depend on this shortcut."""
    names = [match.group(1) for match in _PLAIN_OUTPUT.finditer(template)]
    text = _PLAIN_OUTPUT.sub("", template)
    known = (*TEMPLATE_NAMES, "context")
    return all(name in known for name in names) and "{" not in text and "}" not in text


MAX_TEXT = 1_000_000
"""Characters (or items) a template may build in one value, and write in one render."""
MAX_DIGITS = 4_000
"""Digits of a number a template may compute (Python refuses to print past 4,300)."""
MAX_ITERATIONS = 1_000_000
"""Items all the `range`s of one render may produce together."""
MAX_WIDTH = 10_000
"""Padding a format may ask for."""

_budget: ContextVar[list[int] | None] = ContextVar("flujo_template_budget", default=None)
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
_WIDTH = re.compile(r"%[-+ #0]*(\d+)|\{[^{}]*?:[^{}]*?(\d+)[^{}]*\}")


class TemplateLimit(FlujoError):
    """A template went past one of the sandbox's bounds (a `SecurityError` for Jinja)."""


@cache
def untrusted_environment(lenient: bool = False) -> ImmutableSandboxedEnvironment:
    """The sandbox for parsing and rendering users' templates (built once per process).

    `lenient`: for flujo 0.x blueprints, a missing value renders as empty text (and reads
    as `null` in `tojson`), as 0.x's default template mode did; never for current files."""
    from jinja2 import ChainableUndefined, StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "+", "**", "%"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            try:
                _check_binop(operator, left, right)
            except TemplateLimit as exc:
                raise SecurityError(str(exc)) from None
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(__obj, "__name__", "") in _PADDING_METHODS:
                try:
                    _check_widths("", args, kwargs)
                except TemplateLimit as exc:
                    raise SecurityError(str(exc)) from None
            return super().call(__context, __obj, *args, **kwargs)

        def wrap_str_format(self, value: Any) -> Any:
            wrapped = super().wrap_str_format(value)
            if wrapped is None:
                return None
            fmt: str = value.__self__

            def checked(*args: Any, **kwargs: Any) -> Any:
                try:  # widths in the format, or passed in for a nested `{:{}}`
                    nested = ":{" in fmt
                    _check_widths(fmt, args if nested else (), kwargs if nested else {})
                except TemplateLimit as exc:
                    raise SecurityError(str(exc)) from None
                return wrapped(*args, **kwargs)

            return checked

    undefined = ChainableUndefined if lenient else StrictUndefined
    environment = BoundedSandbox(undefined=undefined, autoescape=False, extensions=())
    environment.globals.pop("lipsum", None)
    environment.globals["range"] = _bounded_range
    for name in ("center", "indent", "format", "wordwrap", "truncate"):
        environment.filters[name] = _width_checked(environment.filters[name])
    if lenient:
        from jinja2 import pass_eval_context

        tojson = environment.filters["tojson"]  # takes the evaluation context first

        @pass_eval_context
        def missing_as_null(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            value = None if isinstance(value, ChainableUndefined) else value
            return tojson(context, value, *args, **kwargs)

        environment.filters["tojson"] = missing_as_null
    return environment


def render_bounded(template: Template, context: dict[str, Any]) -> str:
    """Render `template` within the bounds (raises jinja2's SecurityError past one)."""
    from jinja2.exceptions import SecurityError

    with iteration_budget():
        parts: list[str] = []
        size = 0
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_TEXT:
                raise SecurityError(f"the template's output passes {MAX_TEXT:,} characters")
            parts.append(chunk)
        return "".join(parts)


@contextmanager
def iteration_budget() -> Iterator[None]:
    """One render: the `range`s evaluated inside share `MAX_ITERATIONS` items."""
    token = _budget.set([MAX_ITERATIONS])
    try:
        yield
    finally:
        _budget.reset(token)


def _bounded_range(*args: int) -> range:
    from jinja2.exceptions import SecurityError

    numbers = range(*args)
    budget = _budget.get() or [MAX_ITERATIONS]  # outside a render: this range alone
    budget[0] -= len(numbers)
    if budget[0] < 0:
        raise SecurityError(f"the template's ranges pass {MAX_ITERATIONS:,} items in all")
    return numbers


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple)) else None


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, count in ((left, right), (right, left)):
            size = _size(seq)
            if size is not None and isinstance(count, int) and size * count > MAX_TEXT:
                raise TemplateLimit(f"a value longer than {MAX_TEXT:,} items")
    elif operator == "+":
        a, b = _size(left), _size(right)
        if a is not None and b is not None and a + b > MAX_TEXT:
            raise TemplateLimit(f"a value longer than {MAX_TEXT:,} items")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int):
        if abs(left) > 1 and right > 0 and abs(left).bit_length() * right > MAX_DIGITS * 3.33:
            raise TemplateLimit(f"a number longer than {MAX_DIGITS:,} digits")
    elif operator == "%" and isinstance(left, str):
        _check_widths(left, (), {})


def _check_widths(fmt: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    widths = [int(a) for a in args if isinstance(a, int) and not isinstance(a, bool)]
    widths += [int(v) for v in kwargs.values() if isinstance(v, int) and not isinstance(v, bool)]
    if isinstance(fmt, str):
        widths += [int(a or b) for a, b in _WIDTH.findall(fmt) if (a or b).isdigit()]
    if any(w > MAX_WIDTH for w in widths):
        raise TemplateLimit(f"a width over {MAX_WIDTH:,}")


def _width_checked(original: Any) -> Any:
    from jinja2.exceptions import SecurityError

    def checked(value: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            _check_widths(value, args, kwargs)
        except TemplateLimit as exc:
            raise SecurityError(str(exc)) from None
        return original(value, *args, **kwargs)

    for attribute in ("jinja_pass_arg",):  # keep Jinja's calling convention
        if hasattr(original, attribute):
            setattr(checked, attribute, getattr(original, attribute))
    return checked
