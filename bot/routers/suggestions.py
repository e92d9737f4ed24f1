"""Suggestion pull requests: the cycle after telemetry, and what people do with them."""

from __future__ import annotations

import logging

from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.auto_apply import show_story, start
from flujo.bot.events import PullRequestClosedEvent, SuggestEvent
from flujo.bot.routers.context import BotContext
from flujo.bot.routers.dashboard import after_cycle
from flujo.bot.suggestion_prs import (
    BRANCH_PREFIX,
    SUGGEST_EVENT,
    CycleOutcome,
    Proposed,
    propose_suggestions,
    record_outcome,
    wake_delivery,
)
from flujo.spec.pr_pacing import HOUR_S

log = logging.getLogger("flujo.bot.routers.suggestions")
router = Router()


@router.register(SUGGEST_EVENT)
async def on_suggest(event: Event, ctx: BotContext) -> None:
    suggest = SuggestEvent.parse(event)
    repo = suggest.repo
    forge = await ctx.forge_for(suggest.installation_id)
    evaluation, why_not = await ctx.evaluation_for(forge, repo, suggest.installation_id)
    now = ctx.clock.now()
    outcome = await propose_suggestions(
        forge,
        repo,
        store=ctx.telemetry.store(repo),
        max_open=ctx.suggest_max_open,
        limits=ctx.limits,
        page_url=lambda suggestion_id: ctx.page_url(repo, suggestion_id),
        registry=ctx.registry,
        evaluator=ctx.evaluator,
        evaluation=evaluation,
        no_evaluation=why_not,
        report=True,
        wanted=suggest.wanted,
        now=now,
        opened=await ctx.state.openings(repo, now - HOUR_S),
        roi_url=ctx.roi_url(repo),
    )
    if not suggest.wanted:  # a cycle for chosen suggestions leaves the others' records
        await _pace(ctx, repo, suggest.installation_id, outcome, now)
    if outcome.cycle is not None and outcome.cycle.eval_spent_usd > 0:
        await ctx.state.record_eval_spend(
            suggest.installation_id,
            repo,
            outcome.cycle.eval_spent_usd,
            outcome.cycle.eval_examples,
        )
    for item in outcome.proposed:
        await ctx.state.record_proposal(
            repo,
            item.pull.branch,
            item.change.spec,
            item.change.id,
            item.change.patch,
            item.pull.number,
            item.change.view.model_dump(),
        )
        if item.pull.created:
            await ctx.state.record_opening(repo, item.pull.branch, now)
        await _promise(ctx, repo, item)
        if item.decision is not None and item.settings is not None and ctx.applications:
            scheduled = await start(
                forge,
                ctx.applications,
                repo=repo,
                installation=suggest.installation_id,
                number=item.pull.number,
                branch=item.pull.branch,
                suggestion=item.change,
                decision=item.decision,
                settings=item.settings,
                base_sha=item.base_sha,
                spec_before=item.spec_before,
                spec_after=item.spec_after,
                now=ctx.clock.now(),
            )
            record = await ctx.applications.get(repo, item.pull.number)
            if record is not None:
                await show_story(forge, record)
            if scheduled is not None and ctx.schedule is not None:
                await ctx.schedule(scheduled)
    log.info("%s: %d suggestion pull request(s) proposed or kept", repo, len(outcome.proposed))
    await after_cycle(ctx, forge, suggest, outcome)


async def _pace(
    ctx: BotContext, repo: str, installation: int, outcome: CycleOutcome, now: float
) -> None:
    """Remember which suggestions wait and why (the dashboard shows them); run the cycle
    again when one held back by pacing may open."""
    if outcome.cycle is None:
        return  # the cycle did not finish: what waited before still waits
    await ctx.state.set_waiting(repo, list(outcome.waiting), now)
    if outcome.wake_at is not None and ctx.schedule is not None:
        at = outcome.wake_at
        await ctx.schedule(wake_delivery(repo, installation, at, now, f"{at:.0f}"))


async def _promise(ctx: BotContext, repo: str, item: Proposed) -> None:
    """What the pull request promises, in the repository's run store (the ROI page)."""
    import asyncio

    from flujo.learn.promises import Promise, record_promise

    promised = item.change.promise
    if promised is None:
        return
    await asyncio.to_thread(
        record_promise,
        ctx.telemetry.store(repo),
        item.change.spec,
        item.change.patch,
        Promise(**promised.model_dump()),
        item.pull.number,
        ctx.clock.now(),
    )


@router.register("pull_request", action="closed")
async def on_closed(event: Event, ctx: BotContext) -> None:
    closed = PullRequestClosedEvent.parse(event)
    pull = closed.pull_request
    branch = pull.head.ref
    if not branch.startswith(BRANCH_PREFIX):
        return
    repo = closed.repo
    proposal = await ctx.state.proposal(repo, branch)
    if proposal is None or proposal.state != "open":
        return  # not one of ours, or already recorded (a redelivery)
    merged = bool(pull.merged)
    actor = closed.actor
    comment = None
    if not merged:
        forge = await ctx.forge_for(closed.installation_id)
        comment = await forge.closing_comment(repo, pull.number, actor)
    await record_outcome(
        ctx.telemetry.store(repo), proposal, merged=merged, actor=actor, comment=comment
    )
    await ctx.state.close_proposal(repo, branch, "merged" if merged else "rejected")
    if ctx.schedule is not None and any(w.paced for w in await ctx.state.waiting(repo)):
        # room for one that waits
        now = ctx.clock.now()
        why = f"closed-{pull.number}"
        await ctx.schedule(wake_delivery(repo, closed.installation_id, now, now, why))
