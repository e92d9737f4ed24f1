"""flujo 0.x's reading of missing values, for runs of 0.x blueprints.

0.x's expressions read a missing key or attribute as `None` (and anything read from
`None` as `None`); its templates, in 0.x's default mode (`undefined_variables = "warn"`),
render a missing value as empty text. The current format refuses both (a misspelt name is
an error, not empty text); the runner sets `MISSING_IS_NONE` for the runs of 0.x files,
so that they behave as they did.
"""

from __future__ import annotations

from contextvars import ContextVar

MISSING_IS_NONE: ContextVar[bool] = ContextVar("flujo_legacy_missing_is_none", default=False)
"""True while a 0.x blueprint runs: expressions read a missing key as None, templates
render a missing value as empty text."""
