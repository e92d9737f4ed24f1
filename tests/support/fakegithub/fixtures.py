"""Pytest fixtures for the fake GitHub (registered from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fakegithub.reference import reference_dir
from tests.support.fakegithub.server import FakeGitHub


@pytest.fixture
def github_reference() -> Path:
    """The folder of real GitHub data (OpenAPI subset, webhooks, recorded fixtures)."""
    return reference_dir()


@pytest.fixture
async def fake_github(tmp_path: Path) -> AsyncIterator[FakeGitHub]:
    """A started FakeGitHub; the test fails at teardown if any request or response broke
    GitHub's OpenAPI description (use `fake_github.take_violations()` for deliberate ones)."""
    fake = FakeGitHub(root=tmp_path / "fakegithub")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    if fake.violations:
        listing = "\n  ".join(fake.violations)
        pytest.fail(f"fake GitHub saw {len(fake.violations)} API violation(s):\n  {listing}")
