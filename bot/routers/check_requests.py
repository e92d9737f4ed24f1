"""Commits to check: pushes, pull requests and check (re-)requests."""

from __future__ import annotations

import logging

from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.events import (
    CheckRunActionEvent,
    CheckRunEvent,
    CheckSuiteEvent,
    PullRequestEvent,
    PushEvent,
)
from flujo.bot.routers.context import BotContext

log = logging.getLogger("flujo.bot.routers.check_requests")
router = Router()
NO_COMMIT = "0" * 40


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
