"""Regenerate docs/suggestion-pr-body.md and docs/suggestion-page.png from the demo.

    ./dev demo && .venv/bin/python docs/generate.py

Uses the runs `flujo demo` recorded in .flujo/flujo.db, the planted opportunity in
examples/support_triage.yaml, and Debian's chromium for the screenshot.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flujo.bot.page import render_page  # noqa: E402
from flujo.engine.store import RunStore  # noqa: E402
from flujo.learn.proposal import review  # noqa: E402
from flujo.learn.suggest import suggest  # noqa: E402
from flujo.spec.edit import apply_patch  # noqa: E402
from tests.bot.test_page import open_page  # noqa: E402


async def views() -> list:  # type: ignore[type-arg]
    spec = ROOT / "examples" / "support_triage.yaml"
    store = RunStore(ROOT / ".flujo" / "flujo.db")
    report = await suggest(  # the demo's runs are on the fake model server
        spec, store, key="examples/support_triage.yaml", limit=1, include=("fake",)
    )
    (suggestion,) = report.suggestions
    before = spec.read_text(encoding="utf-8")
    return [review(suggestion, before, apply_patch(before, suggestion.patch))]


def main() -> None:
    (view,) = asyncio.run(views())
    (ROOT / "docs" / "suggestion-pr-body.md").write_text(
        f"<!-- PR title: {view.title} -->\n{view.body}", encoding="utf-8"
    )
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(render_page([view]), encoding="utf-8")
        seen = open_page(page, screenshot=ROOT / "docs" / "suggestion-page.png")
    print(f"PR body: {len(view.body)} characters; page rendered: {seen['rendered']}")


main()
