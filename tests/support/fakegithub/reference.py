"""Where the real GitHub reference data lives (README.md of that folder describes it)."""

from __future__ import annotations

import os
from pathlib import Path

VENDORED = Path(__file__).resolve().parents[2] / "github"


def reference_dir() -> Path:
    """`$FLUJO_GITHUB_REFERENCE`, else the copy vendored in `tests/github/`."""
    override = os.environ.get("FLUJO_GITHUB_REFERENCE")
    path = Path(override) if override else VENDORED
    if not (path / "api.github.com.subset.json").is_file():
        raise FileNotFoundError(
            f"GitHub reference data not found at {path}; set FLUJO_GITHUB_REFERENCE"
        )
    return path
