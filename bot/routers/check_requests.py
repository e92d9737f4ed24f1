"""Commits to check: pushes, pull requests and check (re-)requests."""

from __future__ import annotations

import logging

from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.routers.context import BotContext

log = logging.getLogger("flujo.bot.routers.check_requests")
router = Router()
PULL_REQUEST_ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review")
NO_COMMIT = "0" * 40


@router.register("push")
async def on_push(event: Event, ctx: BotContext) -> None:
    data = event.data
    sha = data.get("after") or NO_COMMIT
    if data.get("deleted") or sha == NO_COMMIT:
        return  # a deleted branch has nothing to check
    await ctx.check(data, sha, force=False)


async def on_pull_request(event: Event, ctx: BotContext) -> None:
    await ctx.check(event.data, event.data["pull_request"]["head"]["sha"], force=False)


for _action in PULL_REQUEST_ACTIONS:
    router.add(on_pull_request, "pull_request", action=_action)


@router.register("check_suite", action="requested")
async def on_check_suite_requested(event: Event, ctx: BotContext) -> None:
    await ctx.check(event.data, event.data["check_suite"]["head_sha"], force=False)


@router.register("check_suite", action="rerequested")
async def on_check_suite_rerequested(event: Event, ctx: BotContext) -> None:
    await ctx.check(event.data, event.data["check_suite"]["head_sha"], force=True)


@router.register("check_run", action="rerequested")
async def on_check_run_rerequested(event: Event, ctx: BotContext) -> None:
    await ctx.check(event.data, event.data["check_run"]["head_sha"], force=True)


@router.register("check_run", action="requested_action")
async def on_requested_action(event: Event, ctx: BotContext) -> None:
    identifier = (event.data.get("requested_action") or {}).get("identifier")
    run = event.data["check_run"]
    if identifier == "approve":
        pulls = [int(p["number"]) for p in run.get("pull_requests") or ()]
        by = (event.data.get("sender") or {}).get("login", "unknown")
        if not pulls:
            log.info("approve requested on %s, which no pull request has", run["head_sha"][:12])
        await ctx.approve(event.data, run["head_sha"], pulls, by)
    else:
        log.info("ignoring the unknown check run action %r", identifier)
