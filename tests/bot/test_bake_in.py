"""Auto-apply's `stage` mode on the fake GitHub: a medium model swap bakes on production
inputs captured after its pull request opened, evaluated with `flujo eval` against the
local fake model server (the bot's evaluation provider, answering `gpt-4o-mini`
differently on inputs whose number is a multiple of 5), and merges after the window only
when the fresh examples agree. Time is a `ManualClock` the tests move; it starts at the
wall clock because captures are stamped with it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from flujo.bot.app import Bot
from flujo.bot.clock import ManualClock
from flujo.engine.session import SessionOptions, run_many
from flujo.spec.model import Pipeline
from tests.bot.test_auto_apply import advance, said
from tests.bot.test_measured_suggestions import KEY, SPEC, record_live_runs, run_cycle
from tests.learn.test_eval_suggest import DESCRIBED, server_in_thread
from tests.support.bot_world import REPO, World


@pytest.fixture
async def world(sqlite_world: World) -> World:
    """The embedded SQLite queue only (the isolated child reads the run store as a file)."""
    return sqlite_world


@pytest.fixture
def url() -> Iterator[str]:
    with server_in_thread() as address:
        yield address


FLUJO_YML = """\
auto_apply:
  tiers: {medium: stage}
  agreement_floor: 0.75
  min_examples: 10
  bake_in: 24h
  windows: [{days: [mon, tue, wed, thu, fri, sat, sun], start: '00:00', end: '24:00'}]
"""
AGREEING = [i for i in range(100, 130) if i % 5][:12]
"""Fresh inputs the candidate model answers like today's model."""
DISAGREEING = [i for i in range(100, 160) if i % 5 == 0][:12]


async def staged(world: World, url: str, tmp_path: Path, clock: ManualClock) -> tuple[Bot, int]:
    """The repository set to `medium: stage`, its default branch checked green, live runs
    recorded, and the suggestion cycle's pull request (a model swap, medium tier)."""
    fake = world.fake
    main = fake.create_repo(
        REPO, {SPEC: DESCRIBED, ".github/flujo.yml": FLUJO_YML}, installation_id=42
    )
    update = {"eval_base_url": url, "eval_api_key": SecretStr(KEY), "eval_min_agreement": 0.5}
    world.settings = world.settings.model_copy(update=update)
    bot = await world.start(Bot(world.settings, sleep=world.sleep, clock=clock))
    await world.deliver("push", "payload", sha=main)
    await world.settle()
    assert world.conclusions(main)["flujo/test"] == "success"
    await record_live_runs(bot, url, tmp_path)
    await clock.set(time.time())  # the pull request opens after these runs
    await run_cycle(world, "stage")
    (pull,) = fake.pulls(REPO)
    return bot, pull.number


async def production(bot: Bot, url: str, tmp_path: Path, numbers: list[int]) -> None:
    """Live runs of the default branch's spec after the pull request opened, captured
    (from the same clone as `record_live_runs`)."""
    spec = tmp_path / "clone" / SPEC
    options = SessionOptions(base_url=url, store=bot.telemetry.path(REPO), export=False)
    tickets = [{"ticket": f"ticket {i}"} for i in numbers]
    results = await run_many(Pipeline.from_yaml(spec), tickets, options)
    assert {r.mode for r in results} == {"live"}


def bake_in(world: World, number: int) -> str:
    body = world.fake.pull(REPO, number).body or ""
    assert "### Bake-in" in body, body
    return body.split("### Bake-in", 1)[1]


async def test_a_medium_model_swap_bakes_on_fresh_examples_and_merges_after_the_window(
    world: World, url: str, tmp_path: Path
) -> None:
    clock = ManualClock(time.time())
    bot, number = await staged(world, url, tmp_path, clock)
    fake = world.fake
    pull = fake.pull(REPO, number)
    text = said(world, number)
    assert "Tier **medium**: swaps model `openai:gpt-4o` for `openai:gpt-4o-mini`" in text
    assert "Mode `stage`" in text and "baking for 24 h" in text
    assert "flujo/baking" in pull.labels
    assert "Examples compared: 0 (not measured:" in bake_in(world, number)

    await production(bot, url, tmp_path, AGREEING)
    await advance(world, bot, clock, 3600)  # the first look
    section = bake_in(world, number)
    assert "Examples compared: 12 (`flujo eval` runs live" in section
    assert "Agreement: 100% (12 of 12 examples agreed" in section
    assert "Wilson 95% interval 76%–100%" in section
    assert "23.0 h left" in section
    assert not pull.merged

    await advance(world, bot, clock, 23 * 3600)  # the window has passed
    assert pull.merged
    assert "gpt-4o-mini" in fake.files(REPO, "main")[SPEC]
    text = said(world, number)
    assert "Bake-in passed at" in text
    assert "Merged automatically at" in text
    assert "**Status:** ended" in bake_in(world, number)
    assert "flujo/baking" not in pull.labels  # the bake-in is over
    # what the evaluations spent is counted in the installation's monthly budget
    assert (await bot.state.eval_spend(42))[REPO] > 0
    assert KEY not in text and KEY not in (pull.body or "")


async def test_a_medium_swap_whose_fresh_examples_disagree_stays_open_with_a_comment(
    world: World, url: str, tmp_path: Path
) -> None:
    clock = ManualClock(time.time())
    bot, number = await staged(world, url, tmp_path, clock)
    await production(bot, url, tmp_path, DISAGREEING)
    await advance(world, bot, clock, 25 * 3600)
    pull = world.fake.pull(REPO, number)
    assert not pull.merged and pull.state == "open"
    assert world.fake.calls("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge") == []
    text = said(world, number)
    assert "Bake-in ended at" in text and "not merged" in text
    assert "agreement 0% (0 of 12) is below the floor of 75%" in text
    assert "a person decides" in text
    assert "Agreement: 0% (0 of 12 examples agreed" in text  # the evidence, with its interval
    assert "Disagreements (run: step)" in text
    record = await bot.applications.get(REPO, number)
    assert record is not None and record.state == "blocked"


async def test_a_restart_during_bake_in_loses_nothing(
    world: World, url: str, tmp_path: Path
) -> None:
    from flujo.cli import cli

    clock = ManualClock(time.time())
    bot, number = await staged(world, url, tmp_path, clock)
    await production(bot, url, tmp_path, AGREEING[:6])
    await advance(world, bot, clock, 3600)
    assert "Examples compared: 6" in bake_in(world, number)
    listed = await asyncio.to_thread(  # the command runs its own event loop
        CliRunner().invoke,
        cli,
        ["bot", "jobs", "--scheduled", "--json"],
        env={"FLUJO_BOT_DB": str(world.settings.db)},
    )
    (step,) = json.loads(listed.output)
    assert (step["kind"], step["number"], step["state"]) == ("bake", number, "baking")

    await world.stop()  # the bot stops during the bake-in ...
    await bot.stop()
    await production(bot, url, tmp_path, AGREEING[6:])
    again = ManualClock(clock.now())
    bot = await world.start(Bot(world.settings, sleep=world.sleep, clock=again))
    await advance(world, bot, again, 23 * 3600)  # ... and a new process finishes it
    assert "Examples compared: 12" in bake_in(world, number)  # both looks' examples
    assert world.fake.pull(REPO, number).merged


async def test_a_fork_is_never_evaluated_so_its_staged_change_is_left_to_a_person(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from flujo.bot.applications import Application, Applications
    from flujo.bot.bake_in import bake_step
    from flujo.bot.forge import PullState, RepoFile
    from flujo.bot.routers.context import BotContext
    from flujo.bot.suggestion_cycle import Evaluation
    from flujo.learn.bake import BakeTally

    said_: list[str] = []

    class Fork:
        async def is_fork(self, repo: str) -> bool:
            return True

        async def default_head(self, repo: str) -> tuple[str, str]:
            return "main", "a" * 40

        async def list_files(self, repo: str, sha: str) -> list[RepoFile]:
            return [RepoFile(".github/flujo.yml", len(FLUJO_YML))]

        async def read_files(self, repo: str, sha: str, paths: list[str]) -> dict[str, bytes]:
            return {".github/flujo.yml": FLUJO_YML.encode()}

        async def pull(self, repo: str, number: int) -> PullState:
            return PullState(7, "open", False, "b" * 40, "flujo/suggest/x", "main")

        async def comment(self, repo: str, number: int, body: str) -> None:
            said_.append(body)

        async def set_body(self, repo: str, number: int, body: str) -> None:
            said_.append(body)

    apps = Applications(tmp_path / "apps.db")
    ctx = SimpleNamespace(
        applications=apps,
        evaluation=Evaluation("http://127.0.0.1:9", KEY, 5.0, 0.5),
        state=None,  # never asked: a fork gets no budget
        evaluator=None,  # never called: nothing of a fork is evaluated
        schedule=None,
    )
    ctx.evaluation_for = lambda *a: BotContext.evaluation_for(ctx, *a)  # type: ignore[arg-type]
    app = Application(
        repo=REPO,
        number=7,
        installation=42,
        branch="flujo/suggest/x",
        spec=SPEC,
        suggestion="x",
        patch=[],
        tier="medium",
        mode="stage",
        reason="swaps model",
        state="baking",
        base_sha="a" * 40,
        bake=BakeTally(0.0, 86400.0).to_json(),
    )
    await bake_step(ctx, Fork(), app, 3600.0)  # type: ignore[arg-type]
    record = await apps.get(REPO, 7)
    assert record is not None and record.state == "blocked"
    text = "\n".join(said_)
    assert "Not baked: evaluation never runs for code from forks" in text
    assert "a person decides" in text
    assert "Examples compared: 0 (not measured: evaluation never runs for code from forks" in text
    assert KEY not in text
    apps.close()


async def test_a_spec_pushed_to_a_baking_pull_request_starts_the_bake_in_over(
    world: World, url: str, tmp_path: Path
) -> None:
    clock = ManualClock(time.time())
    bot, number = await staged(world, url, tmp_path, clock)
    fake = world.fake
    await production(bot, url, tmp_path, AGREEING)
    await advance(world, bot, clock, 3600)
    assert "Examples compared: 12" in bake_in(world, number)
    pull = fake.pull(REPO, number)
    changed = fake.files(REPO, pull.head)[SPEC].replace("Classify the ticket.", "Classify it.")
    fake.commit(REPO, {SPEC: changed}, branch=pull.head)
    await advance(world, bot, clock, 3600)
    assert "the bake-in starts again" in said(world, number)
    assert "Examples compared: 0 (not measured:" in bake_in(world, number)
    await advance(world, bot, clock, 22 * 3600)  # the first window has passed, not the new one
    assert not pull.merged
    assert "(2.0 h left)" in bake_in(world, number)  # it restarted 2 h after the first
