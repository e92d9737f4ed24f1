"""A module that a hostile spec allow-lists with a wildcard (`tests.support.hostile_skills:*`):
it imports `os` and `system`, which a wildcard must not expose."""

from __future__ import annotations

import os  # noqa: F401  (what a wildcard must not reach: `hostile_skills:os.system`)
from os import system  # noqa: F401  (imported, not defined here)
from typing import Any


def defined(value: Any) -> Any:
    """A callable defined in this module: the only kind a wildcard allows."""
    return value
