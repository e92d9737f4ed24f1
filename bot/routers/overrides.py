"""`flujo/override:<policy-id>` labels: a maintainer approves a REQUIRE_APPROVAL policy."""

from __future__ import annotations

from datetime import UTC, datetime

from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.github import override_policy
from flujo.bot.routers.context import BotContext, repository

router = Router()


@router.register("pull_request", action="labeled")
async def on_labeled(event: Event, ctx: BotContext) -> None:
    policy = override_policy((event.data.get("label") or {}).get("name", ""))
    sender = event.data.get("sender") or {}
    if policy is None or sender.get("type") == "Bot":
        return  # labels the App adds itself were recorded when a person asked for them
    pull = event.data["pull_request"]
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    by = sender.get("login", "unknown")
    await ctx.state.record_override(repository(event.data), int(pull["number"]), policy, by, at)
    await ctx.check(event.data, pull["head"]["sha"], force=True)


@router.register("pull_request", action="unlabeled")
async def on_unlabeled(event: Event, ctx: BotContext) -> None:
    policy = override_policy((event.data.get("label") or {}).get("name", ""))
    if policy is None:
        return
    pull = event.data["pull_request"]
    await ctx.state.remove_override(repository(event.data), int(pull["number"]), policy)
    await ctx.check(event.data, pull["head"]["sha"], force=True)
