"""The one sandbox for untrusted templates: users' Jinja2 in specs.

A spec's `template_render` skill (its `template` is parsed when the spec is validated and
rendered when the step runs) and a step's `input:` templates are written by whoever can
commit a spec, so both go through `untrusted_environment()`, the strictest sandbox Jinja2
has: `ImmutableSandboxedEnvironment` (no access to private attributes or unsafe callables,
and no mutation of lists, dicts or sets: `{{ x.append(1) }}` is refused), StrictUndefined
(a misspelt name is an error, not empty text), no autoescaping (the output is data, not
HTML) and no extensions (no `{% do %}`, no loop controls).

Flujo's own templates (PR bodies, check summaries, pages) are trusted and use
`flujo.templates.environment.product_environment` instead.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment


@cache
def untrusted_environment() -> ImmutableSandboxedEnvironment:
    """The sandbox for parsing and rendering users' templates (built once per process)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, extensions=())
