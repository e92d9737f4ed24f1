"""`flujo/override:<policy-id>` labels: a maintainer approves a REQUIRE_APPROVAL policy."""

from __future__ import annotations

from datetime import UTC, datetime

from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.events import LabelEvent
from flujo.bot.github import override_policy
from flujo.bot.routers.context import BotContext, refused_approval

router = Router()


@router.register("pull_request", action="labeled")
async def on_labeled(event: Event, ctx: BotContext) -> None:
    labeled = LabelEvent.parse(event)
    policy = override_policy(labeled.label_name)
    if policy is None or labeled.by_bot:
        return  # labels the App adds itself were recorded when a person asked for them
    pull = labeled.pull_request
    forge = await ctx.forge_for(labeled.installation_id)
    if not await forge.can_write(labeled.repo, labeled.actor):
        reply = refused_approval(labeled.actor, labeled.label_name)
        await forge.comment(labeled.repo, pull.number, reply)
        return
    at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    await ctx.state.record_override(
        labeled.repo, pull.number, policy, labeled.actor, at, pull.head.sha
    )
    await ctx.check(labeled, pull.head.sha, force=True)


@router.register("pull_request", action="unlabeled")
async def on_unlabeled(event: Event, ctx: BotContext) -> None:
    unlabeled = LabelEvent.parse(event)
    policy = override_policy(unlabeled.label_name)
    if policy is None:
        return
    pull = unlabeled.pull_request
    await ctx.state.remove_override(unlabeled.repo, pull.number, policy)
    await ctx.check(unlabeled, pull.head.sha, force=True)
