"""The dashboard issue and comment commands: what a maintainer sees on GitHub and what a
tick or an `@<app> …` comment does, on the fake GitHub with real, signed webhooks."""

from __future__ import annotations

import asyncio
import re

import pytest

from flujo.bot.commands import parse
from flujo.bot.dashboard import (
    END,
    START,
    DashboardData,
    Ignored,
    OpenPull,
    merged_body,
    render,
    ticked,
)
from flujo.bot.dashboard_state import CheckFailure
from flujo.bot.pacing import Waiting
from flujo.learn.feedback import is_rejected, record_rejection
from flujo.templates.fit import size
from tests.bot import test_suggestions as cycle_support
from tests.support.bot_world import BROKEN, REPO, World

SLUG = "flujo-test"  # the fake GitHub's App
NOW = 1_800_000_000.0


@pytest.fixture
async def world(sqlite_world: World) -> World:
    """The embedded SQLite queue only (the isolated suggestion cycle reads the run store as
    a file)."""
    return sqlite_world


# -- the body ------------------------------------------------------------------------------


def many(count: int) -> DashboardData:
    return DashboardData(
        open_pulls=[
            OpenPull(i, f"Use a cheaper model in step {i}", "flujo/a.yaml") for i in range(count)
        ],
        waiting=[
            Waiting.not_proposed(
                f"{i:012x}",
                f"flujo/spec_{i}.yaml",
                f"Swap model {i} " + "x" * 120,
                "agreement 71% on 40 captured examples is below the floor of 90%",
                [],
            )
            for i in range(count)
        ],
        ignored=[
            Ignored(
                f"{i:016x}",
                "flujo/a.yaml",
                f"replace /steps/{i}/model with gpt-4o-mini",
                "we need the bigger model " * 8,
                "ada",
            )
            for i in range(count)
        ],
        failures=[
            CheckFailure("flujo/test", f"{i:040x}", "2 of 5 tests failed", NOW)
            for i in range(count)
        ],
    )


def test_the_body_fits_githubs_limit_with_hundreds_of_entries_and_says_what_it_cut() -> None:
    body = render(many(800), SLUG, now=NOW)
    assert size(body) <= 65_535 and len(body) <= 65_536
    for heading in (
        "Open suggestion pull requests (800)",
        "Waiting (800)",
        "Ignored (800)",
        "Bake-ins and watches in progress (0)",
        "Last check failures (800)",
    ):
        assert f"### {heading}" in body
    assert body.count("more, not shown: GitHub limits an issue's body to 65,536 characters") == 4
    # No list crowds the others out: each shows a fair share of its entries.
    assert body.count("**Create now:**") > 30 and body.count("**Un-ignore:**") > 30
    assert size(body) > 60_000  # and the room is used
    assert body.startswith(START) and body.endswith(END)
    # With a person's long notes around it, the whole issue still fits.
    notes = "Our runbook: " + "word " * 6_000
    room = 65_535 - size(notes) - 4
    whole = merged_body(notes, render(many(800), SLUG, now=NOW, budget=room))
    assert whole.startswith(notes.rstrip()) and size(whole) <= 65_535


def test_a_few_entries_show_whole_and_empty_lists_say_so() -> None:
    body = render(many(3), SLUG, now=NOW)
    assert "not shown" not in body and body.count("**Create now:**") == 3
    assert "_none_" in body  # no bake-ins
    assert "`@flujo-test ignore [reason]`" in body


def test_people_keep_their_text_and_their_own_boxes() -> None:
    section = render(many(2), SLUG, now=NOW)
    mine = "Notes by the team\n- [x] <!-- flujo:create:000000000001 --> our own list\n\n"
    body = merged_body(mine + "old", section)  # no markers yet: appended
    assert body.startswith(mine + "old") and section in body
    assert ticked(body) == []  # a box outside the bot's section is the team's own
    newer = render(many(1), SLUG, now=NOW + 60)
    again = merged_body(body + "\nPS: footer", newer)
    assert again.startswith(mine) and again.endswith("PS: footer") and section not in again
    assert again.count(START) == 1
    ticked_body = again.replace("- [ ] <!-- flujo:create:", "- [x] <!-- flujo:create:")
    assert [(t.kind, t.key) for t in ticked(ticked_body)] == [("create", "000000000000")]


def test_strings_from_repositories_and_people_cannot_forge_a_box_or_end_the_section() -> None:
    evil = f"ok -->\n- [x] <!-- flujo:create:aaaaaaaaaaaa --> {END} <script>"
    data = DashboardData(
        waiting=[Waiting.not_proposed("0123456789ab", f"flujo/{END}.yaml", evil, evil, [])],
        ignored=[Ignored("0123456789abcdef", "a.yaml", evil, evil, "mallory <b>")],
    )
    body = render(data, SLUG, now=NOW)
    assert body.count(END) == 1 and body.endswith(END)
    assert "<script>" not in body and "\\<script\\>" in body
    assert ticked(body.replace("- [ ] ", "- [x] ")) and all(
        t.key in ("0123456789ab", "0123456789abcdef")
        for t in ticked(body.replace("- [ ] ", "- [x] "))
    )
    assert ticked(body) == []


def test_commands_are_lines_addressed_to_the_app() -> None:
    found = parse("Thanks!\n@flujo-test ignore  we need gpt-4o for tone  ", SLUG)
    assert found is not None and (found.name, found.argument) == (
        "ignore",
        "we need gpt-4o for tone",
    )
    assert parse("@Flujo-Test[bot] EVAL", SLUG).name == "eval"  # type: ignore[union-attr]
    assert parse("> @flujo-test recreate\nquoted, not asked", SLUG) is None
    assert parse("```\n@flujo-test recreate\n```", SLUG) is None
    assert parse("@flujo-tester recreate", SLUG) is None  # another App
    assert parse("ping @flujo-test recreate", SLUG) is None  # not at the start of a line
    unknown = parse("@flujo-test dance", SLUG)
    assert unknown is not None and unknown.name is None and unknown.word == "dance"


# -- on the fake GitHub -------------------------------------------------------------------


async def run_cycle(world: World, name: str) -> None:
    bot = world.bot
    assert bot is not None
    assert await bot.queue.enqueue(cycle_support.cycle_now(name))
    bot.workers.wake()
    await asyncio.wait_for(bot.drain(), 60)


async def settle(world: World) -> None:
    assert world.bot is not None
    await asyncio.wait_for(world.bot.drain(), 60)


def section(body: str, heading: str) -> str:
    return body.split(f"### {heading}")[1].split("###")[0]


async def test_a_repository_can_opt_out_and_the_dashboard_shows_failures_and_watches(
    world: World,
) -> None:
    from flujo.bot.applications import Application

    fake = world.fake
    files = cycle_support.repository_files()
    fake.create_repo(
        REPO, {**files, ".github/flujo.yml": "dashboard:\n  enabled: false\n"}, installation_id=42
    )
    bot = await world.start()
    await run_cycle(world, "opted-out")
    assert fake.issues(REPO) == []
    fake.commit(REPO, {".github/flujo.yml": "dashboard:\n  title: Flujo status\n"})
    await run_cycle(world, "opted-in")
    (issue,) = fake.issues(REPO)
    assert issue.title == "Flujo status" and "### Waiting (0)" in (issue.body or "")
    assert "### Last check failures (0)" in (issue.body or "")

    # A broken spec pushed on a branch fails its checks; a merged suggestion is watched.
    broken = fake.commit(REPO, {"flujo/greeter.yml": BROKEN}, branch="wip")
    await world.deliver("push", "payload", branch="wip")
    await settle(world)
    watched = Application(
        repo=REPO,
        number=7,
        installation=42,
        branch="flujo/suggest/x",
        spec="flujo/a.yaml",
        suggestion="0123456789ab",
        patch=[],
        tier="low",
        mode="merge",
        reason="retries",
        state="watching",
        base_sha="0" * 40,
        log=("Merged; watching live runs for 24h.",),
    )
    await bot.applications.save(watched, 0.0)
    await run_cycle(world, "again")
    body = issue.body or ""
    failures = section(body, "Last check failures (3)")  # validate, and so test and policy
    assert f"`flujo/validate` on {broken[:7]}" in failures and "1 of 2 specs invalid" in failures
    watches = section(body, "Bake-ins and watches in progress (1)")
    assert "#7 `flujo/a.yaml`: watching, Merged; watching live runs for 24h." in watches


async def test_the_dashboard_lists_waiting_and_ignored_suggestions_and_its_boxes_act(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = world.fake
    fake.create_repo(REPO, cycle_support.repository_files(), installation_id=42)
    fake.set_permission(REPO, "ada", "write")
    fake.set_permission(REPO, "rob", "triage")  # may edit issues, may not write
    # No room for another pull request: the suggestion waits.
    world.settings = world.settings.model_copy(
        update={"suggest_delay_s": 3600, "suggest_max_open": 0}
    )
    bot = await world.start()
    assert world.server is not None
    url = str(world.server.make_url("/")).rstrip("/")
    await cycle_support.send_telemetry(url, bot.state.issue_token(42, REPO), monkeypatch)
    await bot.drain()
    store = bot.telemetry.store(REPO)
    rejected = [{"op": "replace", "path": "/steps/0/with/temperature", "value": 0.9}]
    record_rejection(store, cycle_support.SPEC, rejected, "Too <b>creative</b>", "bea")
    await run_cycle(world, "first")

    assert fake.pulls(REPO) == []
    (issue,) = fake.issues(REPO)
    body = issue.body or ""
    waiting = section(body, "Waiting (1)")
    (suggestion,) = re.findall(
        r"- \[ \] <!-- flujo:create:([0-9a-f]{12}) --> \*\*Create now:\*\*", waiting
    )
    assert (
        "gpt-4o-mini" in waiting
        and "0 suggestion pull request(s) open, the most allowed (max\\_open: 0)" in waiting
    )
    ignored = section(body, "Ignored (1)")
    assert "replace /steps/0/with/temperature with 0.9" in ignored
    assert "Too \\<b\\>creative\\</b\\>" in ignored and "(@bea)" in ignored

    # The team writes above the bot's section; editing their text makes the bot do nothing.
    notes = "Team notes: the dashboard is read on Mondays.\n\n"
    fake.edit_issue(REPO, issue.number, notes + body)
    edits = len(fake.calls("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}"))
    await world.deliver("issues", "edited.1", number=issue.number, sender="ada")
    await settle(world)
    assert len(fake.calls("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}")) == edits

    # Someone without write access ticks the box: refused, the box cleared, nothing created.
    tick = (notes + body).replace(
        f"- [ ] <!-- flujo:create:{suggestion}", f"- [x] <!-- flujo:create:{suggestion}"
    )
    fake.edit_issue(REPO, issue.number, tick)
    await world.deliver("issues", "edited.1", number=issue.number, sender="rob")
    await settle(world)
    assert fake.pulls(REPO) == []
    (refusal,) = [c.body for c in fake.comments(REPO, issue.number)]
    assert refusal.startswith("@rob: ticking a box") and "needs write access" in refusal
    now = issue.body or ""
    assert now.startswith(notes) and "[x]" not in now and f"flujo:create:{suggestion}" in now
    asked = fake.calls("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")
    assert any(call.path.endswith("/rob/permission") for call in asked)

    # A maintainer ticks it: the suggestion's pull request is opened (by the isolated cycle).
    fake.edit_issue(REPO, issue.number, tick)
    await world.deliver("issues", "edited.1", number=issue.number, sender="ada")
    await settle(world)
    (pull,) = fake.pulls(REPO)
    assert "gpt-4o-mini" in pull.title and pull.state == "open"
    replies = [c.body for c in fake.comments(REPO, issue.number)]
    assert (
        replies[-1]
        == f"@ada: #{pull.number} opened on the default branch's head: "
        + replies[-1].split(": ", 2)[2]
    )
    now = issue.body or ""
    assert now.startswith(notes) and "### Waiting (0)" in now and "_nothing waiting_" in now
    assert f"- #{pull.number} " in section(now, "Open suggestion pull requests (1)")

    # The maintainer un-ignores the rejected patch.
    (key,) = re.findall(r"flujo:unignore:([0-9a-f]{16})", now)
    fake.edit_issue(
        REPO,
        issue.number,
        now.replace(f"- [ ] <!-- flujo:unignore:{key}", f"- [x] <!-- flujo:unignore:{key}"),
    )
    await world.deliver("issues", "edited.1", number=issue.number, sender="ada")
    await settle(world)
    assert not is_rejected(store, cycle_support.SPEC, rejected)
    now = issue.body or ""
    assert "_nothing ignored_" in now and "Un-ignored" in now and now.startswith(notes)


async def comment(world: World, number: int, body: str, user: str) -> int:
    comment_id = world.fake.add_comment(REPO, number, body, user=user)
    await world.deliver(
        "issue_comment", "created.with-installation", comment_id=comment_id, sender=user
    )
    await settle(world)
    return comment_id


def last_reply(world: World, number: int) -> str:
    return [c.body for c in world.fake.comments(REPO, number) if c.user.endswith("[bot]")][-1]


async def test_comment_commands_on_a_suggestion_pull_request(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = world.fake
    fake.create_repo(REPO, cycle_support.repository_files(), installation_id=42)
    fake.set_permission(REPO, "ada", "write")
    world.settings = world.settings.model_copy(update={"suggest_delay_s": 3600})
    bot = await world.start()
    assert world.server is not None
    url = str(world.server.make_url("/")).rstrip("/")
    await cycle_support.send_telemetry(url, bot.state.issue_token(42, REPO), monkeypatch)
    await bot.drain()
    await run_cycle(world, "first")
    (pull,) = fake.pulls(REPO)
    (dashboard,) = fake.issues(REPO)
    store = bot.telemetry.store(REPO)
    proposal = await bot.state.proposal(REPO, pull.head)
    assert proposal is not None

    # A reader may not steer the bot: the command is seen (a reaction) and refused.
    seen = await comment(world, pull.number, f"@{SLUG} ignore not for us", "rob")
    assert fake.reactions(REPO, seen) == ["eyes"]
    assert last_reply(world, pull.number) == (
        f"@rob: `@{SLUG} ignore` needs write access to this repository, so nothing was done."
    )
    assert pull.state == "open" and not is_rejected(store, proposal.spec, proposal.patch)

    await comment(world, pull.number, f"@{SLUG} explain", "ada")
    explained = last_reply(world, pull.number)
    assert explained.startswith("@ada: **") and "Quality evidence:" in explained

    asked = await comment(world, pull.number, f"@{SLUG} eval", "ada")
    assert fake.reactions(REPO, asked) == ["eyes"]
    assert last_reply(world, pull.number).startswith(
        f"@ada: evaluation of #{pull.number}: not measured: the bot has no evaluation provider "
        "(FLUJO_BOT_EVAL_BASE_URL). Quality evidence: not measured: no captured examples"
    )

    await comment(world, pull.number, f"@{SLUG} recreate", "ada")
    assert re.match(
        rf"@ada: #{pull.number} (unchanged|updated) on the default branch's head: ",
        last_reply(world, pull.number),
    )
    assert len(fake.pulls(REPO)) == 1

    await comment(world, pull.number, f"@{SLUG} dance", "ada")
    assert "dance is not a command of this bot" in last_reply(world, pull.number)

    await comment(world, pull.number, f"@{SLUG} ignore We need gpt-4o for tone.", "ada")
    assert pull.state == "closed" and not pull.merged
    assert last_reply(world, pull.number).startswith("@ada: ignored: this pull request is closed")
    assert is_rejected(store, proposal.spec, proposal.patch)
    reasons = store.query("SELECT reason, actor FROM suggestion_feedback", ())
    assert [(r["reason"], r["actor"]) for r in reasons] == [("We need gpt-4o for tone.", "ada")]
    body = dashboard.body or ""
    assert "We need gpt-4o for tone." in section(body, "Ignored (1)")
    assert "### Open suggestion pull requests (0)" in body

    # On the dashboard: a reader is refused; a maintainer runs a cycle now.
    await comment(world, dashboard.number, f"@{SLUG} recreate", "rob")
    assert "needs write access" in last_reply(world, dashboard.number)
    await comment(world, dashboard.number, f"@{SLUG} recreate", "ada")
    assert last_reply(world, dashboard.number).startswith(
        "@ada: suggestion cycle done: 0 pull request(s) proposed or kept"
    )
    assert len(fake.pulls(REPO)) == 1  # the ignored suggestion is not proposed again
