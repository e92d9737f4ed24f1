"""The bot measures before it proposes: with an evaluation provider configured, the
suggestion cycle runs `flujo eval` on the repository's captured examples, shows the result
in the pull request's "Quality evidence", holds back a suggestion below the agreement
floor (listed in the `flujo/suggestions` check), records and caps its spend, and never
evaluates a fork. The provider is a local fake server that answers the candidate model
differently on one input in five."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from flujo.bot.app import Bot
from flujo.bot.queue import Delivery
from flujo.engine.session import SessionOptions, run_many
from flujo.spec.model import Pipeline
from tests.bot.test_suggestions import cycle_now
from tests.learn.test_eval_suggest import DESCRIBED, server_in_thread
from tests.learn.test_evaluate import DIFFERENT_EVERY, N, inputs
from tests.support.bot_world import REPO, World


@pytest.fixture
async def world(sqlite_world: World) -> World:
    """The embedded SQLite queue only (timers wait on the clock this test moves);
    `each_queue`: on each database."""
    return sqlite_world


SPEC = "flujo/triage.yaml"
KEY = "sk-evaluation-key-0123456789abcdef"
SHARE = 1 / DIFFERENT_EVERY  # inputs the candidate answers differently


async def record_live_runs(bot: Bot, url: str, tmp_path: Path) -> None:
    """Production runs of the spec, captured, in the bot's store for the repository (as
    they arrive over OTLP from where the repository's pipelines run)."""
    spec = tmp_path / "clone" / SPEC
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(DESCRIBED, encoding="utf-8")
    store: Path | str = bot.telemetry.path(REPO)
    if bot.settings.database_url:  # the repository's schema, as the bot's OTLP ingest writes
        from flujo.engine.store_db import schema_name

        bot.telemetry.store(REPO)  # created
        store = f"{bot.settings.database_url}?options=-csearch_path%3D{schema_name(REPO)}"
    options = SessionOptions(base_url=url, store=store, export=False)
    results = await run_many(Pipeline.from_yaml(spec), inputs(), options)
    assert {r.mode for r in results} == {"live"}


async def run_cycle(world: World, name: str) -> None:
    bot = world.bot
    assert bot is not None
    delivery: Delivery = cycle_now(name)
    assert await bot.queue.enqueue(delivery)
    bot.workers.wake()
    await asyncio.wait_for(bot.drain(), 120)


async def start(world: World, url: str, **settings: Any) -> Bot:
    """The bot, with the local fake server as its evaluation provider."""
    update = {"eval_base_url": url, "eval_api_key": SecretStr(KEY), **settings}
    world.settings = world.settings.model_copy(update=update)
    return await world.start()


async def test_a_suggestion_is_measured_and_held_back_below_the_floor(
    each_queue: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    world = each_queue
    fake = world.fake
    main = fake.create_repo(REPO, {SPEC: DESCRIBED}, installation_id=42)
    with server_in_thread() as url, caplog.at_level(logging.INFO):
        bot = await start(world, url, eval_min_agreement=0.9)
        await record_live_runs(bot, url, tmp_path)
        await run_cycle(world, "strict")
        # 80% agreement is below the floor of 90%: not proposed, and the check says why.
        assert fake.pulls(REPO) == []
        check = fake.check_run(REPO, main, "flujo/suggestions")
        assert check.title == "Suggestions: 0 proposed, 1 not proposed"
        summary = check.summary or ""
        assert f"agreement {1 - SHARE:.0%} on {N} captured examples is below the floor" in summary
        spent = await bot.state.eval_spend(42)
        assert spent[REPO] > 0
        # The evaluation is in the repository's store (on PostgreSQL: written back from the
        # copy the confined cycle worked on).
        store = bot.telemetry.store(REPO)
        assert len(store.query("SELECT report FROM evaluations", ())) == 1
        await world.stop()

        # With a floor of 50% it is proposed, and the body shows what was measured.
        bot = await start(world, url, eval_min_agreement=0.5)
        await run_cycle(world, "lenient")
        (pull,) = fake.pulls(REPO)
        body = pull.body or ""
        quality = body.split("**Quality evidence:**", 1)[1].split("\n", 1)[0]
        agreed = N - N // DIFFERENT_EVERY
        assert f"on {agreed} of {N} captured live examples ({1 - SHARE:.0%}" in quality
        assert "runs live" in quality
        assert (
            await bot.state.eval_spend(42) == spent
        )  # the stored evaluation is reused, not paid twice
    for text in (body, caplog.text, *(c.summary or "" for c in fake.check_runs_for(REPO, main))):
        assert KEY not in text


async def test_evaluation_stops_at_the_budget_and_never_runs_for_a_fork(
    world: World, tmp_path: Path
) -> None:
    fake = world.fake
    fake.create_repo(REPO, {SPEC: DESCRIBED}, installation_id=42)
    with server_in_thread() as url:
        bot = await start(world, url, eval_monthly_budget_usd=0.0)
        await record_live_runs(bot, url, tmp_path)
        await run_cycle(world, "no budget")
        (pull,) = fake.pulls(REPO)
        assert "**Quality evidence:** not measured: evaluation budget spent" in (pull.body or "")
        assert await bot.state.eval_spend(42) == {}

    fork = "acme/forked"
    fake.create_repo(fork, {SPEC: DESCRIBED}, installation_id=42, fork=True)
    with server_in_thread() as url:
        await world.stop()
        bot = await start(world, url)
        bot.telemetry.path(fork).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bot.telemetry.path(REPO), bot.telemetry.path(fork))  # same captures
        scheduled = cycle_now("fork")
        body = scheduled.body.replace(REPO.encode(), fork.encode())
        assert await bot.queue.enqueue(
            Delivery(scheduled.delivery_id + ":fork", scheduled.event, body, scheduled.received_at)
        )
        bot.workers.wake()
        await asyncio.wait_for(bot.drain(), 120)
        (pull,) = fake.pulls(fork)
        quality = (pull.body or "").split("**Quality evidence:**", 1)[1].split("\n", 1)[0]
        assert "evaluation never runs for code from forks" in quality
        assert (await bot.state.eval_spend(42)).get(fork) is None
