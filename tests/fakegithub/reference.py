"""Where the real GitHub reference data lives (README.md of that folder describes it)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def reference_dir() -> Path:
    """`$FLUJO_GITHUB_REFERENCE`, else `<repo root>/../shared/github`."""
    override = os.environ.get("FLUJO_GITHUB_REFERENCE")
    path = Path(override) if override else REPO_ROOT.parent / "shared" / "github"
    if not (path / "api.github.com.subset.json").is_file():
        raise FileNotFoundError(
            f"GitHub reference data not found at {path}; set FLUJO_GITHUB_REFERENCE"
        )
    return path
