"""How a file is named in messages: relative to the working directory when inside it.

Its own module so that the validation cache can name files without importing the spec
model.
"""

from __future__ import annotations

from pathlib import Path


def display_name(path: Path) -> str:
    """Path as shown in messages: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
