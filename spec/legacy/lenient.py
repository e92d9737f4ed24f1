"""flujo 0.x's reading of missing values, for runs of 0.x blueprints.

0.x's expressions read a missing key or attribute as `None` (and anything read from
`None` as `None`); its templates, in 0.x's default mode (`undefined_variables = "warn"`),
render a missing value as empty text. The current format refuses both (a misspelt name is
an error, not empty text); the runner sets `MISSING_IS_NONE` for the runs of 0.x files,
so that they behave as they did.

`flujo migrate` keeps that reading in the files it writes, under `LENIENT_COMMENT` (a
0.x file may rely on it anywhere a value can be missing, which no check can rule out):
a current-format file with that line reads as 0.x files do, until a person deletes it.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

MISSING_IS_NONE: ContextVar[bool] = ContextVar("flujo_legacy_missing_is_none", default=False)
"""True while a 0.x blueprint runs: expressions read a missing key as None, templates
render a missing value as empty text."""

LENIENT_COMMENT = (
    "# flujo migrate: reads as 0.x did (a missing value is null or empty text; the context"
    " has 0.x's fields): delete this line to read strictly"
)
"""The line `flujo migrate` writes on top of a migrated file (see the module's docstring)."""

_LENIENT_LINE = re.compile(r"^# flujo migrate: reads as 0\.x did\b", re.MULTILINE)


def marked_lenient(text: str) -> bool:
    """Whether a file's text has `LENIENT_COMMENT` (at the start of a line)."""
    return _LENIENT_LINE.search(text) is not None
