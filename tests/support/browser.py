"""Headless Chromium (Debian's `chromium`) driven by Playwright, for page tests.

`./dev test` installs Debian's chromium when it is missing and it can (root, apt); without
it the browser tests fail, unless FLUJO_SKIP_BROWSER=1 says to skip them.
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("FLUJO_SKIP_BROWSER") == "1":
            pytest.skip("no chromium (FLUJO_SKIP_BROWSER=1)")
        pytest.fail("Debian's chromium is needed for the page tests (apt-get install chromium)")
    return found
