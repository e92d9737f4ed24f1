"""Safe auto-apply on the fake GitHub: a low-tier timeout suggestion goes from telemetry to
a merged commit only when every required check passed inside a merge window; a planted
regression reverts it. Time is a `ManualClock` the tests move."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flujo.bot.app import Bot
from flujo.bot.auto_apply import start
from flujo.bot.clock import ManualClock
from flujo.bot.suggestion_prs import suggest_delivery
from flujo.learn.feedback import is_rejected
from flujo.spec.model import Pipeline
from tests.support.bot_world import REPO, World
from tests.support.learn import PLANTED, SEEDS, Profile, Telemetry, record


@pytest.fixture
async def world(sqlite_world: World) -> World:
    """The embedded SQLite queue only: suggestion cycles run in an isolated child that
    reads the repository's run store as a file (on PostgreSQL the child cannot reach it
    yet), and timers wait on the clock this test moves."""
    return sqlite_world


SPEC = "flujo/timeouts.yaml"
MONDAY_0830 = datetime(2026, 12, 7, 8, 30, tzinfo=UTC).timestamp()
ALWAYS = "windows: [{days: [mon, tue, wed, thu, fri, sat, sun], start: '00:00', end: '24:00'}]"


def config(extra: str = ALWAYS) -> str:
    return "auto_apply:\n  tiers: {low: merge}\n  watch: 24h\n  watch_min_runs: 20\n" + "".join(
        f"  {line}\n" for line in extra.splitlines()
    )


async def setup(world: World, clock: ManualClock, flujo_yml: str) -> Bot:
    """The demo repository set to `low: merge`, its default branch checked green, with
    recorded live runs of the spec in which `draft` times out (the telemetry)."""
    fake = world.fake
    spec_text = (SEEDS / "timeouts.yaml").read_text(encoding="utf-8")
    main = fake.create_repo(
        REPO, {SPEC: spec_text, ".github/flujo.yml": flujo_yml}, installation_id=42
    )
    fake.protect(REPO, "main", ["ci/build"])
    fake.add_rule(REPO, "main", ["flujo/test"])
    bot = await world.start(Bot(world.settings, sleep=world.sleep, clock=clock))
    await world.deliver("push", "payload", sha=main)
    await world.settle()
    assert world.conclusions(main)["flujo/test"] == "success"
    telemetry = replace(PLANTED["timeouts"][0], every_s=600)
    record(bot.telemetry.store(REPO), Pipeline.from_yaml(spec_text), telemetry, end=clock.now())
    return bot


async def cycle(world: World, bot: Bot, clock: ManualClock) -> int:
    delivery = replace(suggest_delivery(REPO, 42, 3600, clock.now()), not_before=0.0)
    assert await bot.queue.enqueue(delivery)
    bot.workers.wake()
    await asyncio.wait_for(bot.drain(), 60)
    (pull,) = world.fake.pulls(REPO)
    return pull.number


async def advance(world: World, bot: Bot, clock: ManualClock, seconds: float) -> None:
    await clock.advance(seconds)
    for _ in range(3):  # timers admit their jobs; the jobs run
        await asyncio.sleep(0.05)
        await asyncio.wait_for(bot.drain(), 60)


def said(world: World, number: int) -> str:
    return "\n".join(c.body for c in world.fake.comments(REPO, number))


async def test_a_low_timeout_suggestion_merges_only_inside_the_window_after_every_check(
    world: World,
) -> None:
    clock = ManualClock(MONDAY_0830)
    window = "windows: [{days: [mon], start: '09:00', end: '10:00'}]"
    bot = await setup(world, clock, config(window))
    fake = world.fake
    main = fake.branch_sha(REPO, "main")
    number = await cycle(world, bot, clock)
    pull = fake.pull(REPO, number)
    text = said(world, number)
    assert "Tier **low**: sets timeout_s of `draft` to 10" in text
    assert "Mode `merge`" in text
    assert "outside the merge windows; the next opens 2026-12-07 09:00 UTC" in text
    assert not pull.merged

    # In the window: the bot's own checks passed, but ci/build (branch protection) has not run.
    await advance(world, bot, clock, 31 * 60)
    head = fake.branch_sha(REPO, pull.head) or ""
    assert world.conclusions(head)["flujo/test"] == "success"
    assert "Waiting for required check `ci/build` missing" in said(world, number)
    assert "from the bot's own checks and branch protection and rulesets" in said(world, number)
    assert not pull.merged and fake.branch_sha(REPO, "main") == main

    # ci/build passes: the next look merges it with the verified head SHA.
    fake.set_status(REPO, head, "ci/build", "success")
    await advance(world, bot, clock, 60)
    assert pull.merged
    (merge_call,) = fake.calls("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge")
    assert merge_call.body["sha"] == head
    assert "timeout_s: 10" in fake.files(REPO, "main")[SPEC]
    text = said(world, number)
    assert "Merged automatically at 2026-12-07 09:02 UTC" in text
    assert "all 4 required checks passed" in text
    # Recorded as accepted: never suggested again.
    rows = bot.telemetry.store(REPO).query("SELECT verdict, actor FROM suggestion_feedback", ())
    assert [(r["verdict"], r["actor"]) for r in rows] == [("accepted", "flujo (auto-apply)")]


async def test_nothing_merges_outside_the_window_however_long_it_waits(world: World) -> None:
    clock = ManualClock(MONDAY_0830 - 86400)  # a Sunday
    bot = await setup(
        world, clock, config("windows: [{days: [sat], start: '09:00', end: '10:00'}]")
    )
    number = await cycle(world, bot, clock)
    head = world.fake.branch_sha(REPO, world.fake.pull(REPO, number).head) or ""
    world.fake.set_status(REPO, head, "ci/build", "success")
    for _ in range(5):
        await advance(world, bot, clock, 3600)
    assert not world.fake.pull(REPO, number).merged
    assert "the next opens 2026-12-12 09:00 UTC" in said(world, number)
    assert world.fake.calls("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/merge") == []


async def test_a_skipped_required_check_blocks_the_merge(world: World) -> None:
    clock = ManualClock(MONDAY_0830)
    bot = await setup(world, clock, config())
    number = await cycle(world, bot, clock)
    head = world.fake.branch_sha(REPO, world.fake.pull(REPO, number).head) or ""
    world.fake.add_check_run(REPO, head, "ci/build", "skipped")
    await advance(world, bot, clock, 60)
    assert not world.fake.pull(REPO, number).merged
    assert "Not merged: required check `ci/build` skipped (not passed)" in said(world, number)
    record = await bot.applications.get(REPO, number)
    assert record is not None and record.state == "blocked"
    # it stays blocked: later looks change nothing
    world.fake.set_status(REPO, head, "ci/build", "success")
    await advance(world, bot, clock, 3600)
    assert not world.fake.pull(REPO, number).merged


async def test_a_planted_regression_after_the_merge_is_reverted_and_rejected(
    world: World,
) -> None:
    clock = ManualClock(MONDAY_0830)
    bot = await setup(world, clock, config())
    fake = world.fake
    before_text = fake.files(REPO, "main")[SPEC]
    number = await cycle(world, bot, clock)
    head = fake.branch_sha(REPO, fake.pull(REPO, number).head) or ""
    fake.set_status(REPO, head, "ci/build", "success")
    await advance(world, bot, clock, 60)
    assert fake.pull(REPO, number).merged
    merged_text = fake.files(REPO, "main")[SPEC]

    # The planted regression: live runs of the new version fail half the time.
    failing = Telemetry(
        runs=40,
        every_s=60,
        profiles={"draft": Profile(3.0, 0.0004, 90, 200, "gpt-4o-mini", fail_for_good_every=2)},
    )
    record(
        bot.telemetry.store(REPO),
        Pipeline.from_yaml(merged_text),
        failing,
        end=clock.now() + 3000,
        seed=9,
    )
    await advance(world, bot, clock, 3600)  # the watch's first look
    pulls = fake.pulls(REPO)
    assert len(pulls) == 2
    revert = pulls[1]
    assert revert.head.startswith("flujo/revert/")
    text = said(world, number)
    assert f"Regression after the merge: reverting in #{revert.number}" in text
    assert "failures (cause model): 20 of 40 runs (50%) vs 0 of 40 (0%)" in text
    assert "one-sided Fisher exact p = " in text
    assert "live production runs: 40 of the new version" in text
    # The revert changes only the patched line back, and merges once its checks pass.
    revert_head = fake.branch_sha(REPO, revert.head) or ""
    assert fake.files(REPO, revert_head)[SPEC] == before_text
    fake.set_status(REPO, revert_head, "ci/build", "success")
    await advance(world, bot, clock, 60)
    assert revert.merged
    assert fake.files(REPO, "main")[SPEC] == before_text
    assert "Revert merged automatically" in said(world, revert.number)
    patch = await bot.applications.get(REPO, number)
    assert patch is not None and patch.state == "reverted"
    assert is_rejected(bot.telemetry.store(REPO), SPEC, patch.patch)
    # The check summary on the suggestion's head tells the story, one decision a line.
    story = fake.check_run(REPO, head, "flujo/auto-apply")
    assert (story.conclusion, story.title) == (
        "neutral",
        "Tier low: merged automatically, then reverted",
    )
    lines = (story.summary or "").splitlines()
    assert lines[0].startswith("1. Tier **low**: sets timeout_s of `draft` to 10")
    assert lines[1].startswith("2. Mode `merge`")
    assert any(line.split(". ", 1)[1].startswith("Merged automatically at") for line in lines)
    assert any(
        f"Regression after the merge: reverting in #{revert.number}" in line for line in lines
    )
    revert_story = fake.check_run(REPO, revert_head, "flujo/auto-apply")
    assert revert_story.title == "Revert: merged automatically"


async def test_a_restart_while_a_merge_waits_loses_nothing(world: World, tmp_path: Path) -> None:
    clock = ManualClock(MONDAY_0830)
    window = "windows: [{days: [mon], start: '09:00', end: '10:00'}]"
    bot = await setup(world, clock, config(window))
    number = await cycle(world, bot, clock)
    head = world.fake.branch_sha(REPO, world.fake.pull(REPO, number).head) or ""
    world.fake.set_status(REPO, head, "ci/build", "success")
    from click.testing import CliRunner

    from flujo.cli import cli

    listed = await asyncio.to_thread(  # the command runs its own event loop
        CliRunner().invoke,
        cli,
        ["bot", "jobs", "--scheduled"],
        env={"FLUJO_BOT_DB": str(world.settings.db)},
    )
    assert listed.exit_code == 0, listed.output
    assert (
        f"2026-12-07 09:00 UTC  merge   {REPO}#{number}  tier low  waiting: Waiting: outside"
        in (listed.output)
    )
    await world.stop()  # the bot stops before the window opens ...
    await bot.stop()
    again = ManualClock(MONDAY_0830)
    bot = await world.start(Bot(world.settings, sleep=world.sleep, clock=again))
    await advance(world, bot, again, 31 * 60)  # ... and a new process merges it on time
    assert world.fake.pull(REPO, number).merged
    watch = await asyncio.to_thread(  # the command runs its own event loop
        CliRunner().invoke,
        cli,
        ["bot", "jobs", "--scheduled", "--json"],
        env={"FLUJO_BOT_DB": str(world.settings.db)},
    )
    (step,) = json.loads(watch.output)
    assert (step["kind"], step["number"], step["state"]) == ("watch", number, "merged")


async def test_the_freeze_label_and_the_daily_cap_stop_merges(world: World) -> None:
    clock = ManualClock(MONDAY_0830)
    bot = await setup(world, clock, config(ALWAYS + "\nmax_merges_per_day: 0"))
    number = await cycle(world, bot, clock)
    head = world.fake.branch_sha(REPO, world.fake.pull(REPO, number).head) or ""
    world.fake.set_status(REPO, head, "ci/build", "success")
    await advance(world, bot, clock, 60)
    assert "0 automatic merge(s) today (2026-12-07), the most `max_merges_per_day` allows" in (
        said(world, number)
    )
    world.fake.ensure_label(world.fake.repo(REPO), "flujo/freeze")
    world.fake.pull(REPO, number).labels.append("flujo/freeze")
    await advance(world, bot, clock, 86400)
    assert "Frozen: the label `flujo/freeze` is on this pull request" in said(world, number)
    assert not world.fake.pull(REPO, number).merged


async def test_a_moved_base_updates_the_branch_and_checks_again(world: World) -> None:
    clock = ManualClock(MONDAY_0830)
    bot = await setup(world, clock, config())
    fake = world.fake
    number = await cycle(world, bot, clock)
    pull = fake.pull(REPO, number)
    old_head = fake.branch_sha(REPO, pull.head) or ""
    fake.set_status(REPO, old_head, "ci/build", "success")
    fake.commit(REPO, {"README.md": "hello\n"})  # someone pushes to main meanwhile
    await advance(world, bot, clock, 60)
    new_head = fake.branch_sha(REPO, pull.head) or ""
    assert new_head != old_head and not pull.merged
    assert "The base branch moved" in said(world, number)
    await advance(world, bot, clock, 60)
    assert "`ci/build` stale (it ran on " in said(world, number)  # its run was on the old head
    fake.set_status(REPO, new_head, "ci/build", "success")
    await advance(world, bot, clock, 60)
    assert pull.merged and "README.md" in fake.files(REPO, "main")


async def test_policies_or_tests_changes_are_never_merged_automatically(tmp_path: Path) -> None:
    from flujo.learn.tiers import TierDecision
    from flujo.spec.autoapply import AutoApply

    class Recorder:
        def __init__(self) -> None:
            self.comments: list[str] = []

        async def comment(self, repo: str, number: int, body: str) -> None:
            self.comments.append(body)

    forge = Recorder()
    settings = AutoApply.model_validate({"tiers": {"low": "merge", "medium": "merge"}})
    from flujo.bot.applications import Applications

    apps = Applications(tmp_path / "apps.db")
    for number, never in enumerate(("it changes `policies:`", "it changes `tests:`"), 1):
        decision = TierDecision("low", "sets timeout_s of `draft` to 10", (), (never,))
        suggestion = type("S", (), {"spec": SPEC, "id": "abc", "patch": []})()
        scheduled = await start(
            forge,  # type: ignore[arg-type]
            apps,
            repo=REPO,
            installation=42,
            number=number,
            branch="flujo/suggest/abc",
            suggestion=suggestion,
            decision=decision,
            settings=settings,
            base_sha="0" * 40,
            spec_before="",
            spec_after="",
            now=time.time(),
        )
        assert scheduled is None
        assert f"Never automatic: {never}" in forge.comments[-1]
        assert "Mode `propose`" in forge.comments[-1]
    apps.close()


async def test_a_red_default_branch_after_the_merge_reverts_it(world: World) -> None:
    clock = ManualClock(MONDAY_0830)
    bot = await setup(world, clock, config())
    fake = world.fake
    number = await cycle(world, bot, clock)
    head = fake.branch_sha(REPO, fake.pull(REPO, number).head) or ""
    fake.set_status(REPO, head, "ci/build", "success")
    await advance(world, bot, clock, 60)
    record_ = await bot.applications.get(REPO, number)
    assert record_ is not None and record_.merged_sha is not None
    # The default branch's flujo/test fails on the merge commit (no live runs needed).
    fake.add_check_run(REPO, record_.merged_sha, "flujo/test", "failure")
    await advance(world, bot, clock, 3600)
    (_, revert) = fake.pulls(REPO)
    text = said(world, number)
    assert f"reverting in #{revert.number}" in text
    assert f"default branch `flujo/test`: failure on {record_.merged_sha}" in text


PREPARE = """  - name: prepare
    uses: template_render
    with: {template: "{{ input.text }}"}
"""


async def merged_then_red(world: World, clock: ManualClock) -> tuple[Bot, int, str]:
    """A low timeout change merged automatically; the default branch's text before it."""
    bot = await setup(world, clock, config())
    fake = world.fake
    before_text = fake.files(REPO, "main")[SPEC]
    number = await cycle(world, bot, clock)
    head = fake.branch_sha(REPO, fake.pull(REPO, number).head) or ""
    fake.set_status(REPO, head, "ci/build", "success")
    await advance(world, bot, clock, 60)
    assert fake.pull(REPO, number).merged
    return bot, number, before_text


async def test_a_revert_after_the_file_moved_on_undoes_the_merge_commit_by_a_three_way_merge(
    world: World,
) -> None:
    clock = ManualClock(MONDAY_0830)
    bot, number, before_text = await merged_then_red(world, clock)
    fake = world.fake
    # Someone adds a step before `draft`: the JSON Patch's path /steps/0 is now another step.
    moved = fake.files(REPO, "main")[SPEC].replace("steps:\n", "steps:\n" + PREPARE, 1)
    fake.commit(REPO, {SPEC: moved})
    record_ = await bot.applications.get(REPO, number)
    assert record_ is not None and record_.merged_sha is not None
    fake.add_check_run(REPO, record_.merged_sha, "flujo/test", "failure")
    await advance(world, bot, clock, 3600)
    (_, revert) = fake.pulls(REPO)
    reverted = fake.files(REPO, fake.branch_sha(REPO, revert.head) or "")[SPEC]
    # the merge commit's change undone, the later step kept
    assert reverted == before_text.replace("steps:\n", "steps:\n" + PREPARE, 1)
    assert "timeout_s: 5" in reverted and "timeout_s: 10" not in reverted
    assert f"three-way merge of the reverse of merge commit {record_.merged_sha[:7]}" in (
        revert.body or ""
    )
    assert f"reverting in #{revert.number}" in said(world, number)


async def test_a_revert_that_conflicts_with_later_changes_is_left_to_a_person(
    world: World,
) -> None:
    clock = ManualClock(MONDAY_0830)
    bot, number, _ = await merged_then_red(world, clock)
    fake = world.fake
    # Someone sets the same timeout again since the merge: undoing the change conflicts.
    main_text = fake.files(REPO, "main")[SPEC]
    fake.commit(REPO, {SPEC: main_text.replace("timeout_s: 10", "timeout_s: 12")})
    line = main_text.splitlines().index("      timeout_s: 10") + 1
    record_ = await bot.applications.get(REPO, number)
    assert record_ is not None and record_.merged_sha is not None
    fake.add_check_run(REPO, record_.merged_sha, "flujo/test", "failure")
    await advance(world, bot, clock, 3600)
    assert len(fake.pulls(REPO)) == 1  # no revert opened
    text = said(world, number)
    assert "Regression found, but the bot cannot revert it by itself" in text
    assert (
        f"undoing merge commit {record_.merged_sha[:7]} conflicts with later changes to "
        f"`{SPEC}` at line(s) {line}"
    ) in text
    assert "A person decides" in text
    after = await bot.applications.get(REPO, number)
    assert after is not None and after.state == "blocked"
