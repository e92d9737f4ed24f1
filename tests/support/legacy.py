"""The 0.x blueprints in tests/legacy/: where they are, the skills they may use, a copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flujo.spec.load import check
from flujo.spec.model import Pipeline
from flujo.spec.registry import StepRegistry

LEGACY = Path(__file__).resolve().parents[1] / "legacy"
ALLOW = StepRegistry(allow=["tests.support.skills:*"], entry_points=False)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The test blueprints (with their prompt, imports and config) in a scratch repo."""
    target = tmp_path / "repo"
    shutil.copytree(LEGACY, target)
    (target / ".git").mkdir()
    return target


def load(path: Path) -> Pipeline:
    pipeline, diagnostics = check(path, registry=ALLOW)
    assert pipeline is not None, "\n".join(map(str, diagnostics))
    assert not [d for d in diagnostics if d.severity == "error"], diagnostics
    return pipeline
