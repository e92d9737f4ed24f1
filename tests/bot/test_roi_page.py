"""The realised-ROI page the bot serves: a suggestion pull request records its promise when
it is opened; once it is merged and the new version runs live, the page shows what it
realised beside what it promised. The page is behind an unguessable, repository-scoped
link and checked in headless Chromium."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from flujo.bot.app import Bot
from flujo.bot.clock import ManualClock
from flujo.bot.page_links import page_key, page_token, roi_path
from flujo.bot.suggestion_prs import suggest_delivery
from flujo.learn.roi_figures import suggestion_figures
from flujo.spec.figures import money
from flujo.spec.model import Pipeline
from tests.support.bot_world import REPO, World
from tests.support.browser import open_page
from tests.support.learn import PLANTED, SEEDS, Profile, Telemetry, record
from tests.support.specs import ROOT


@pytest.fixture
async def world(sqlite_world: World) -> World:
    """The embedded SQLite queue only: the isolated suggestion cycle reads the repository's
    run store as a file."""
    return sqlite_world


SPEC = "flujo/labels.yaml"
PUBLIC = "https://flujo.example"


async def test_a_merged_suggestion_shows_its_realised_savings_against_its_promise(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    text = (SEEDS / "cheaper_model.yaml").read_text(encoding="utf-8")
    fake.create_repo(REPO, {SPEC: text}, installation_id=42)
    world.settings = world.settings.model_copy(update={"public_url": PUBLIC})
    clock = ManualClock(time.time())
    bot = await world.start(Bot(world.settings, sleep=world.sleep, clock=clock))
    store = bot.telemetry.store(REPO)
    # The customer runs the spec from their own checkout (a longer path ending with SPEC).
    checkout = tmp_path / "checkout" / SPEC
    checkout.parent.mkdir(parents=True)
    checkout.write_text(text, encoding="utf-8")
    record(store, Pipeline.from_yaml(checkout), PLANTED["cheaper_model"][0], end=clock.now())

    delivery = replace(suggest_delivery(REPO, 42, 3600, clock.now()), not_before=0.0)
    assert await bot.queue.enqueue(delivery)
    bot.workers.wake()
    await asyncio.wait_for(bot.drain(), 60)
    (pull,) = fake.pulls(REPO)
    (figures,) = suggestion_figures(store)
    assert figures.state == "open" and figures.pull == pull.number
    promise = figures.promise
    assert promise is not None and promise.kind == "cheaper_model" and promise.runs == 40
    assert promise.usd_per_run > 0 and "40 live runs counted" in promise.basis
    link = PUBLIC + roi_path(bot.context.page_key, REPO)
    main = fake.branch_sha(REPO, "main") or ""
    assert f"[the ROI page]({link})" in (
        fake.check_run(REPO, main, "flujo/suggestions").summary or ""
    )

    # A maintainer merges it; the merged version then runs live, its label step cheaper.
    pull.merged, pull.state = True, "closed"
    head = fake.branch_sha(REPO, pull.head)
    await world.deliver(
        "pull_request", "closed", sha=head, number=pull.number, branch=pull.head, sender="ada"
    )
    await asyncio.wait_for(bot.drain(), 30)
    checkout.write_text(fake.files(REPO, pull.head)[SPEC], encoding="utf-8")
    cheaper = Telemetry(
        profiles={
            "label": Profile(0.3, 0.00002, 80, 6, "gpt-4o-mini"),
            "respond": Profile(2.0, 0.006, 200, 600, "gpt-4o"),
        }
    )
    record(store, Pipeline.from_yaml(checkout), cheaper, end=time.time() + 41 * 3600, seed=8)

    assert world.server is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(world.server.make_url(roi_path(bot.context.page_key, REPO))) as got:
            assert got.status == 200 and got.content_type == "text/html"
            page = await got.text()
        # Another repository's path, a suggestion page's token, another server's key: nothing.
        refused = [
            roi_path(bot.context.page_key, REPO).replace("/acme/flows/", "/acme/other/"),
            f"/roi/{REPO}/{page_token(bot.context.page_key, REPO, figures.suggestion or '')}",
            roi_path(page_key("another secret"), REPO),
            f"/roi/{REPO}/{figures.suggestion}",
        ]
        for path in refused:
            async with http.get(world.server.make_url(path)) as other:
                assert other.status == 404, path
    assert f"Realised savings of suggestions: {REPO}" in page
    promised = page.split('<td class="promised">')[1].split("</td>")[0]
    assert promised.startswith(f"{money(promise.usd_per_run)} per run")
    assert "estimated from 40 runs (40 live runs counted;" in promised
    realised_text = page.split('<td class="realised">')[1].split("</td>")[0]
    # label cost $0.0003 → $0.00002 per run: $0.00028 saved per run, measured on live runs
    assert realised_text.startswith("$0.00028 per run")
    assert realised_text.endswith("from 40 live runs before and 40 after the merge")
    assert f"#{pull.number} on <code>{SPEC}</code>, merged" in page
    assert '<div class="figure" data-count="merged"><b>1</b>merged</div>' in page

    # The dashboard issue says the same at its next update.
    from flujo.bot.routers.dashboard import refresh

    await refresh(bot.context, await bot.context.forge_for(42), REPO, 42)
    (issue,) = fake.issues(REPO)
    body = issue.body or ""
    assert f"Realised savings over time: [the ROI page]({link})." in body
    merged = body.split("### Merged suggestions: promised and realised (1)")[1].split("###")[0]
    shown = merged.replace("\\", "")  # Markdown escapes of `$` and `~`
    assert f"#{pull.number} `{SPEC}`, merged: promised {money(promise.usd_per_run)} per run" in (
        shown
    )
    assert "realised $0.00028 per run" in shown
    assert "from 40 live runs before and 40 after the merge" in merged

    served = tmp_path / "roi.html"
    served.write_text(page, encoding="utf-8")
    seen = await asyncio.to_thread(open_page, served, tmp_path / "roi.png")
    assert seen["outside"] == []  # self-contained: no request leaves the page
    assert int(str(seen["rendered"])) == 3  # savings per month, the pair, monthly spend
    if os.environ.get("FLUJO_UPDATE_DOCS") == "1":  # the README's screenshot
        shutil.copy(tmp_path / "roi.png", ROOT / "docs" / "roi-page.png")
