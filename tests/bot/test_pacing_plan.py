"""`bot.pacing.plan`: which changes open now and why the others wait (no forge, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime

from flujo.bot.pacing import plan
from flujo.bot.suggestion_codec import Change, View
from flujo.spec.pr_pacing import PullRequests

SATURDAY = datetime(2026, 12, 12, 12, 0, tzinfo=UTC).timestamp()


def change(ident: str) -> Change:
    view = View(
        id=ident,
        spec="s.yml",
        title=f"t {ident}",
        headline="h",
        risk="low",
        bullets=[],
        before="",
        after="",
        diff="",
        body="",
    )
    return Change(
        id=ident,
        spec="s.yml",
        patch=[],
        branch=f"flujo/suggest/{ident}",
        title=f"t {ident}",
        body="",
        commit_message="m",
        labels=("flujo",),
        view=view,
        after="",
    )


def test_an_open_pull_request_is_updated_even_outside_the_schedule() -> None:
    weekdays = PullRequests(schedule=["* 9-16 * * mon-fri"], max_open=1)
    paced = plan(
        [change("a"), change("b")],
        open_branches={"flujo/suggest/a"},
        opened=[],
        settings=weekdays,
        max_open_cap=3,
        now=SATURDAY,
    )
    assert [c.id for c in paced.propose] == ["a"]
    (waiting,) = paced.waiting
    assert waiting.reason == "schedule" and waiting.suggestion == "b"
    assert paced.wake_at == datetime(2026, 12, 14, 9, 0, tzinfo=UTC).timestamp()


def test_the_bots_own_cap_and_a_zero_hourly_limit_hold_suggestions_back() -> None:
    capped = plan(
        [change("a"), change("b")],
        open_branches=set(),
        opened=[],
        settings=PullRequests(max_open=10),
        max_open_cap=1,
        now=SATURDAY,
    )
    assert [c.id for c in capped.propose] == ["a"]
    assert [w.reason for w in capped.waiting] == ["max_open"] and capped.wake_at is None
    assert "(max_open: 1)" in capped.waiting[0].detail

    never = plan(
        [change("a")],
        open_branches=set(),
        opened=[SATURDAY - 7200],  # opened two hours ago: outside the last hour
        settings=PullRequests(max_per_hour=0),
        max_open_cap=3,
        now=SATURDAY,
    )
    assert [w.reason for w in never.waiting] == ["max_per_hour"] and never.wake_at is None
