"""The named types skills consume and produce, each with a JSON Schema.

A planner chains skills whose output type is the next one's input type. Built-in names
are below; a repository adds its own under `types:` in `.github/flujo.yml` (a name and
a JSON Schema). `any` (and unions such as `str | None`) are not plannable: a skill that
takes or gives them is usable in specs, never chained by a planner.
"""

from __future__ import annotations

import re
from typing import Any, Literal

NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

BUILTIN_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string", "description": "Text."},
    "JSON": {"description": "Any JSON value (parsed data)."},
    "SQL": {"type": "string", "description": "A SQL query, not yet checked."},
    "ValidatedSQL": {
        "type": "string",
        "description": "A SQL query that compiled against the database schema it was checked on.",
    },
    "Summary": {"type": "string", "description": "A short summary of a text."},
    "Labels": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Labels chosen for a text.",
    },
}


def plannable(type_name: str, extra: dict[str, Any] | None = None) -> bool:
    """Whether a planner may chain through `type_name` (a known, named type)."""
    return type_name in BUILTIN_TYPES or type_name in (extra or {})


def schema_of(type_name: str, extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    found = (extra or {}).get(type_name, BUILTIN_TYPES.get(type_name))
    return dict(found) if isinstance(found, dict) else None


REFINES: dict[str, str] = {"SQL": "str", "ValidatedSQL": "SQL", "Summary": "str"}
"""A value of the key's type is also one of the value's type (a checked query is a query,
a query is text): giving it where the wider type is taken is fine."""


def fits(
    given: str, taken: str, extra: dict[str, Any] | None = None
) -> Literal["error", "warning"] | None:
    """None when a value of type `given` may be passed where `taken` is taken, else how
    sure the mismatch is: `error` when their JSON types differ (a list where text is
    taken), `warning` when the value is only not known to be of the narrower type (text
    where a SQL query is taken)."""
    name: str | None = given
    while name is not None:
        if name == taken:
            return None
        name = REFINES.get(name)
    wanted = (schema_of(taken, extra) or {}).get("type")
    have = (schema_of(given, extra) or {}).get("type")
    if wanted is None:
        return None  # `JSON`: any value
    return "error" if have is not None and have != wanted else "warning"
