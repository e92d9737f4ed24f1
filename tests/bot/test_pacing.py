"""Pacing of suggestion pull requests on the fake GitHub (`pull_requests:` in
`.github/flujo.yml`): new pull requests only inside the schedule, at most `max_open` open
and `max_per_hour` new; what waits is recorded with its reason, and opened when it may.
Suggestions of one kind in one spec share a pull request with `group: kind`. Time is a
`ManualClock` the tests move."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from flujo.bot.app import Bot
from flujo.bot.clock import ManualClock
from flujo.bot.suggestion_prs import suggest_delivery
from flujo.learn.suggestion_log import suggestion_id
from flujo.spec.model import Pipeline
from tests.support.bot_world import REPO, World
from tests.support.learn import PLANTED, SEEDS, TIMEOUT, Profile, Telemetry, record


@pytest.fixture
async def world(sqlite_world: World) -> World:
    """The embedded SQLite queue only: suggestion cycles run in an isolated child that
    reads the repository's run store as a file, and timers wait on the clock tests move."""
    return sqlite_world


# Monday 2026-12-07 07:30 UTC is 08:30 in Madrid: half an hour before the schedule opens.
MONDAY_0730_UTC = datetime(2026, 12, 7, 7, 30, tzinfo=UTC).timestamp()
PACED = """\
pull_requests:
  max_open: 2
  max_per_hour: 1
  schedule: "* 9-16 * * mon-fri"
  time_zone: Europe/Madrid
"""
SPECS = ("flujo/a.yaml", "flujo/b.yaml", "flujo/c.yaml")


def seed(name: str) -> str:
    text = (SEEDS / "timeouts.yaml").read_text(encoding="utf-8")
    return text.replace("name: seed-timeouts", f"name: {name}")


async def start(world: World, clock: ManualClock, files: dict[str, str]) -> Bot:
    world.fake.create_repo(REPO, files, installation_id=42)
    return await world.start(Bot(world.settings, sleep=world.sleep, clock=clock))


def plant(bot: Bot, text: str, telemetry: Telemetry, end: float, seed_: int = 7) -> None:
    record(bot.telemetry.store(REPO), Pipeline.from_yaml(text), telemetry, end=end, seed=seed_)


async def cycle(bot: Bot, clock: ManualClock) -> None:
    """The cycle telemetry queues (as the bot would after it arrives)."""
    delivery = replace(suggest_delivery(REPO, 42, 3600, clock.now()), not_before=0.0)
    assert await bot.queue.enqueue(delivery)
    bot.workers.wake()
    await asyncio.wait_for(bot.drain(), 60)


async def advance(bot: Bot, clock: ManualClock, seconds: float) -> None:
    await clock.advance(seconds)
    for _ in range(3):  # timers admit their jobs; the jobs run
        await asyncio.sleep(0.05)
        await asyncio.wait_for(bot.drain(), 60)


async def reasons(bot: Bot) -> list[str]:
    return sorted(w.reason for w in await bot.state.waiting(REPO))


async def test_pull_requests_open_only_inside_the_schedule_and_under_the_limits(
    world: World,
) -> None:
    clock = ManualClock(MONDAY_0730_UTC)
    files = {path: seed(f"seed-{path[6]}") for path in SPECS}
    bot = await start(world, clock, {**files, ".github/flujo.yml": PACED})
    for i, text in enumerate(files.values()):
        plant(bot, text, PLANTED["timeouts"][0], clock.now(), seed_=7 + i)
    fake = world.fake

    # 08:30 in Madrid: three suggestions, none opened; each waits for the schedule.
    await cycle(bot, clock)
    assert fake.pulls(REPO) == []
    waiting = await bot.state.waiting(REPO)
    assert [w.reason for w in waiting] == ["schedule"] * 3
    assert {w.spec for w in waiting} == set(SPECS)
    assert "the next opening is 2026-12-07 09:00 CET" in waiting[0].detail
    assert waiting[0].until == MONDAY_0730_UTC + 1800
    main = fake.branch_sha(REPO, "main") or ""
    check = fake.check_run(REPO, main, "flujo/suggestions")
    assert check.title == "Suggestions: 0 proposed, 0 not proposed, 3 waiting"

    # 09:00 in Madrid: the cycle the bot scheduled for the opening runs by itself; one
    # pull request (max_per_hour: 1), the others wait for the hour to pass.
    await advance(bot, clock, 1800)
    assert len(fake.pulls(REPO)) == 1
    assert await reasons(bot) == ["max_per_hour", "max_per_hour"]
    (hourly, _) = await bot.state.waiting(REPO)
    assert "(max_per_hour: 1); it may be opened from 2026-12-07 10:00 CET" in hourly.detail
    assert hourly.since == MONDAY_0730_UTC  # waiting since the first cycle held it back

    # A minute before the hour is up nothing more; an hour after the first, the second
    # opens and the third waits for one to close (max_open: 2).
    await cycle(bot, clock)  # telemetry arriving meanwhile changes nothing
    await advance(bot, clock, 3600 - 60)
    assert len(fake.pulls(REPO)) == 1
    await advance(bot, clock, 60)
    assert len(fake.pulls(REPO)) == 2
    assert await reasons(bot) == ["max_open"]
    await advance(bot, clock, 2 * 3600)
    assert len(fake.pulls(REPO)) == 2  # still two open: it keeps waiting

    # A maintainer closes one: the bot runs the cycle again and opens the third.
    first = fake.pulls(REPO)[0]
    first.state = "closed"
    await world.deliver(
        "pull_request",
        "closed",
        sha=fake.branch_sha(REPO, first.head),
        number=first.number,
        branch=first.head,
        sender="ada",
    )
    await advance(bot, clock, 1)
    assert len(fake.pulls(REPO)) == 3
    assert await bot.state.waiting(REPO) == []
    opened_at = await bot.state.openings(REPO, 0)
    assert opened_at == [
        MONDAY_0730_UTC + 1800,
        MONDAY_0730_UTC + 5400,
        MONDAY_0730_UTC + 5400 + 2 * 3600 + 1,
    ]


async def test_suggestions_of_one_kind_in_one_spec_share_a_pull_request(world: World) -> None:
    clock = ManualClock(MONDAY_0730_UTC)
    spec = "flujo/two.yaml"
    text = seed("seed-two").replace(
        "      timeout_s: 600\n", "      max_retries: 1\n      timeout_s: 5\n"
    )
    bot = await start(
        world, clock, {spec: text, ".github/flujo.yml": "pull_requests:\n  group: kind\n"}
    )
    slow = Profile(3.0, 0.0004, 90, 200, "gpt-4o-mini", 5, TIMEOUT)
    plant(bot, text, Telemetry(profiles={"draft": slow, "check": replace(slow)}), clock.now())

    await cycle(bot, clock)
    (pull,) = world.fake.pulls(REPO)
    assert pull.head == "flujo/suggest/" + suggestion_id(spec, "frequent_timeouts", "*")
    after = world.fake.files(REPO, pull.head)[spec]
    assert after.count("timeout_s: 5") == 0 and after.count("timeout_s: 10") == 2
    body = pull.body or ""
    assert body.startswith("## 2 × frequent timeouts together: avoid \\~103 failed runs/month")
    assert "2 suggestions of one kind, grouped" in body
    assert "1 of 1 tests pass with the patch applied" in body  # verified together
    assert "/steps/0/config/timeout_s" in body and "/steps/1/config/timeout_s" in body
    # What it promised is recorded: the members' estimates added up.
    (promise,) = bot.telemetry.store(REPO).query("SELECT * FROM suggestion_promises", ())
    assert promise["pull"] == pull.number and promise["kind"] == "frequent_timeouts"
    assert promise["failures_avoided_per_month"] == pytest.approx(103, abs=1)
    assert promise["runs"] == 40 and "40 live runs counted" in promise["basis"]
