"""Fixtures for every test. Helpers live in tests/support/ and are imported from there."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# `flujo validate` caches results (flujo.spec.check_cache): kept out of the home folder
# and the checkout while testing, but on, so that every test goes through it too.
os.environ.setdefault("FLUJO_CACHE_DIR", tempfile.mkdtemp(prefix="flujo-test-cache-"))
# `flujo run` and `flujo test` record runs in the run store: by default in .flujo/ of the
# working folder, so a test that names no --store keeps its runs out of the checkout.
os.environ.setdefault(
    "FLUJO_STORE", str(Path(tempfile.mkdtemp(prefix="flujo-test-store-")) / "flujo.db")
)

pytest_plugins = [
    "tests.support.network",
    "tests.support.fakegithub.fixtures",
    "tests.support.bot_world",
    "tests.support.legacy",
    "tests.support.postgres",
]


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
