"""Spec helpers: the repository's folders, YAML written inside tests, its diagnostics."""

from __future__ import annotations

import textwrap
from pathlib import Path

from flujo.spec.errors import Diagnostic, SpecError
from flujo.spec.load import check

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def spec(text: str) -> str:
    """Dedent a YAML literal written inside a test."""
    return textwrap.dedent(text).lstrip("\n")


def problems(text: str) -> list[Diagnostic]:
    """Every diagnostic for a spec given as text (load errors included)."""
    try:
        return check(spec(text))[1]
    except SpecError as exc:
        return exc.diagnostics


def errors(text: str) -> list[Diagnostic]:
    return [d for d in problems(text) if d.severity == "error"]
