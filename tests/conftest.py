"""Shared test helpers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flujo.spec.errors import Diagnostic, SpecError
from flujo.spec.load import check

pytest_plugins = ["tests.fakegithub.fixtures"]

ROOT = Path(__file__).resolve().parent.parent
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


@pytest.fixture
def write(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a file under tmp_path and return its path."""

    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write
