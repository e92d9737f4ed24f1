"""Headless Chromium (Debian's `chromium`) driven by Playwright, for page tests.

`./dev test` installs Debian's chromium when it is missing and it can (root, apt); without
it the browser tests fail, unless FLUJO_SKIP_BROWSER=1 says to skip them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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


def open_page(path: Path, screenshot: Path | None = None) -> dict[str, object]:
    """Load a page from disk in headless Chromium; what rendered, and any outside request."""
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on(
                "request",
                lambda r: (
                    outside.append(r.url) if not r.url.startswith(("file:", "data:")) else None
                ),
            )
            page.goto(path.as_uri())
            page.wait_for_function("document.body.dataset.rendered !== undefined", timeout=30_000)
            rendered = page.evaluate("document.body.dataset.rendered")
            svgs = page.evaluate(
                "[...document.querySelectorAll('pre.mermaid')].map(p => ({side: p.dataset.side,"
                " svg: !!p.querySelector('svg'), nodes: p.querySelectorAll('g.node').length,"
                " text: p.textContent}))"
            )
            if screenshot is not None:
                page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"rendered": rendered, "svgs": svgs, "outside": outside}
