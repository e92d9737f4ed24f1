"""The suggestion page renders both diagrams to SVG in a real browser, with no network."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.bot.page import render_page
from flujo.cli import cli
from flujo.learn.proposal import SuggestionView
from tests.support.bot_world import World
from tests.support.browser import chromium_path, open_page
from tests.support.learn import SEEDS, record
from tests.support.specs import ROOT

DOCS = ROOT / "docs"


def view() -> SuggestionView:
    from flujo.spec.model import Pipeline
    from flujo.spec.review.mermaid import flowchart

    pipeline = Pipeline.from_yaml(ROOT / "examples" / "support_triage.yaml")
    return SuggestionView(
        id="abc123def456",
        spec="flujo/support_triage.yaml",
        title="flujo: Switch classify from gpt-4o to gpt-4o-mini <b>x</b>",
        headline="Saves ~$0.10/run (~$300/month) with medium risk to quality",
        risk="medium",
        bullets=["💲 **Switch** `classify` from `gpt-4o` to `gpt-4o-mini` <script>"],
        before=flowchart(pipeline),
        after=flowchart(pipeline, {"classify": "changed"}),
        diff="--- a\n+++ b\n@@ -9 +9 @@\n-    model: openai:gpt-4o\n+    model: openai:gpt-4o-mini",
        body="",
    )


def test_both_diagrams_render_to_svg_without_the_network(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(render_page([view()]), encoding="utf-8")
    seen = open_page(page)
    assert seen["rendered"] == "yes"
    svgs = seen["svgs"]
    assert [s["side"] for s in svgs] == ["before", "after"]  # type: ignore[index]
    assert all(s["svg"] and s["nodes"] >= 5 for s in svgs)  # type: ignore[index]
    assert seen["outside"] == []
    text = page.read_text()
    assert "<script>" not in text.split('<ul class="bullets">')[1].split("</ul>")[0]
    assert "&lt;b&gt;x&lt;/b&gt;" in text


def test_flujo_suggest_html_writes_the_page_and_docs_show_it(tmp_path: Path) -> None:
    from flujo.engine.store import RunStore
    from flujo.spec.model import Pipeline
    from tests.support.learn import PLANTED

    spec = SEEDS / "cheaper_model.yaml"
    store = tmp_path / "flujo.db"
    db = RunStore(store)
    record(db, Pipeline.from_yaml(spec), PLANTED["cheaper_model"][0])
    db.close()
    target = tmp_path / "suggestions.html"
    result = CliRunner().invoke(
        cli, ["suggest", str(spec), "--store", str(store), "--html", str(target), "--json"]
    )
    assert result.exit_code == 0, result.output
    suggestions = json.loads(result.stdout)["suggestions"]
    assert suggestions, "the planted opportunity should give a suggestion"
    DOCS.mkdir(exist_ok=True)
    seen = open_page(target, screenshot=tmp_path / "page.png")
    assert seen["rendered"] == "yes" and seen["outside"] == []
    assert len(seen["svgs"]) == 2 * len(suggestions)  # type: ignore[arg-type]
    assert all(s["svg"] for s in seen["svgs"])  # type: ignore[union-attr]
    # Keep the screenshot in docs/ when it is asked for (FLUJO_UPDATE_DOCS=1).
    import os

    if os.environ.get("FLUJO_UPDATE_DOCS") == "1":
        shutil.copy(tmp_path / "page.png", DOCS / "suggestion-page.png")


async def test_the_bot_serves_the_page_of_a_proposed_suggestion(tmp_path: Path) -> None:
    from dataclasses import asdict

    from aiohttp.test_utils import TestClient, TestServer

    from flujo.bot.app import BOT, Bot, create_app
    from flujo.bot.page_links import page_key, page_path
    from flujo.bot.settings import BotSettings

    settings = BotSettings(webhook_secret="s", db=tmp_path / "bot.db")
    app = create_app(settings, Bot(settings))
    async with TestClient(TestServer(app)) as client:
        state = client.server.app[BOT].state
        await state.record_proposal(
            "o/r", "flujo/suggest/abc123def456", "s.yml", "abc123def456", [], 7, asdict(view())
        )
        bot = client.server.app[BOT]
        link = bot.context.page_url("o/r", "abc123def456")
        assert link is None  # no public URL: pull requests carry no link
        path = page_path(bot.context.page_key, "o/r", "abc123def456")
        response = await client.get(path)
        assert response.status == 200 and "text/html" in response.headers["Content-Type"]
        page = tmp_path / "served.html"
        page.write_text(await response.text(), encoding="utf-8")
        # The id alone, computable offline from the spec and the patch, opens nothing;
        # nor does the right token under another repository, or another server's token.
        assert (await client.get("/suggestions/abc123def456")).status == 404
        assert (await client.get(path.replace("/o/r/", "/o/other/"))).status == 404
        forged = page_path(page_key("another secret"), "o/r", "abc123def456")
        assert (await client.get(forged)).status == 404
        assert (await client.get("/suggestions/..%2F..%2Fetc")).status == 404
    seen = await asyncio.to_thread(open_page, page)
    assert seen["rendered"] == "yes" and len(seen["svgs"]) == 2  # type: ignore[arg-type]


def test_chromium_is_needed_unless_skipping_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.delenv("FLUJO_SKIP_BROWSER", raising=False)
    with pytest.raises(pytest.fail.Exception):
        chromium_path()


async def test_the_bot_serves_the_registry_of_the_skills_it_allows(world: World) -> None:
    import aiohttp

    await world.start()
    assert world.server is not None
    url = str(world.server.make_url("/registry"))
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        assert answer.status == 200 and answer.content_type == "text/html"
        page = await answer.text()
    assert 'data-name="sql_validate"' in page and "typed skills a planner can chain" in page


def test_the_page_opens_with_what_the_step_does_and_what_to_watch_for() -> None:
    from dataclasses import replace

    shown = replace(
        view(),
        step="`classify` sorts tickets <b>; its output picks the branch of `route`.",
        watch_for="a wrong answer sends the run down the wrong branch of `route`",
        quality="not measured: no captured examples",
    )
    html = render_page([shown])
    step = html.index("<strong>The step:</strong> `classify` sorts tickets &lt;b&gt;;")
    watch = html.index("<strong>Watch for:</strong> a wrong answer sends the run")
    quality = html.index("<strong>Quality evidence:</strong> not measured")
    assert html.index('class="headline"') < step < watch < quality
