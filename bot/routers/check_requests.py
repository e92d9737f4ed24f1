"""Commits to check: pushes, pull requests and check (re-)requests."""

from __future__ import annotations

import logging
from typing import Any

from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.events import (
    CheckRunActionEvent,
    CheckRunEvent,
    CheckSuiteEvent,
    PullRequestEvent,
    PushEvent,
    RepositoryEvent,
)
from flujo.bot.routers.context import BotContext

log = logging.getLogger("flujo.bot.routers.check_requests")
router = Router()
NO_COMMIT = "0" * 40


def commit_of(event: str, data: dict[str, Any]) -> tuple[RepositoryEvent, str] | None:
    """The repository event and commit a delivery asks to check, if it asks for one."""
    kinds: tuple[type[RepositoryEvent], ...] = (
        PushEvent,
        PullRequestEvent,
        CheckSuiteEvent,
        CheckRunEvent,
        CheckRunActionEvent,
    )
    for kind in kinds:
        if event != kind.EVENT or (kind.ACTIONS and data.get("action") not in kind.ACTIONS):
            continue
        try:
            parsed = kind.model_validate(data)
        except ValueError:
            return None
        if isinstance(parsed, PushEvent):
            sha = parsed.after or NO_COMMIT
            return None if parsed.deleted or sha == NO_COMMIT else (parsed, sha)
        if isinstance(parsed, PullRequestEvent):
            return parsed, parsed.pull_request.head.sha
        if isinstance(parsed, CheckSuiteEvent):
            return parsed, parsed.check_suite.head_sha
        if isinstance(parsed, CheckRunEvent | CheckRunActionEvent):
            return parsed, parsed.check_run.head_sha
    return None


@router.register("push")
async def on_push(event: Event, ctx: BotContext) -> None:
    push = PushEvent.parse(event)
    sha = push.after or NO_COMMIT
    if push.deleted or sha == NO_COMMIT:
        return  # a deleted branch has nothing to check
    await ctx.check(push, sha, force=False, git_ref=push.ref)


async def on_pull_request(event: Event, ctx: BotContext) -> None:
    pull = PullRequestEvent.parse(event)
    git_ref = f"refs/pull/{pull.pull_request.number}/head"
    base = pull.pull_request.base
    await ctx.check(
        pull,
        pull.pull_request.head.sha,
        force=False,
        git_ref=git_ref,
        base=(base.sha, base.ref) if base is not None else None,
    )


for _action in PullRequestEvent.ACTIONS:
    router.add(on_pull_request, "pull_request", action=_action)


@router.register("check_suite", action="requested")
async def on_check_suite_requested(event: Event, ctx: BotContext) -> None:
    suite = CheckSuiteEvent.parse(event)
    await ctx.check(suite, suite.check_suite.head_sha, force=False, git_ref=_branch_ref(suite))


@router.register("check_suite", action="rerequested")
async def on_check_suite_rerequested(event: Event, ctx: BotContext) -> None:
    suite = CheckSuiteEvent.parse(event)
    await ctx.check(suite, suite.check_suite.head_sha, force=True, git_ref=_branch_ref(suite))


@router.register("check_run", action="rerequested")
async def on_check_run_rerequested(event: Event, ctx: BotContext) -> None:
    run = CheckRunEvent.parse(event)
    await ctx.check(run, run.check_run.head_sha, force=True)


@router.register("check_run", action="requested_action")
async def on_requested_action(event: Event, ctx: BotContext) -> None:
    action = CheckRunActionEvent.parse(event)
    sha = action.check_run.head_sha
    if action.identifier == "approve":
        if not action.pulls:
            log.info("approve requested on %s, which no pull request has", sha[:12])
        await ctx.approve(action, sha, action.pulls, action.actor)
    else:
        log.info("ignoring the unknown check run action %r", action.identifier)


def _branch_ref(suite: CheckSuiteEvent) -> str | None:
    branch = suite.check_suite.head_branch
    return f"refs/heads/{branch}" if branch else None
