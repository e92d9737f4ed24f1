"""The dashboard issue and comment commands: boxes people tick, `@<app> …` comments.

Every request is checked first: only people with write access (the collaborator
permission endpoint, `Forge.can_write`) may act; others get a reply saying so. A command
is acknowledged with a reaction as soon as it is seen. What needs the repository's specs
(`recreate`, `eval`, a box that creates a pull request) becomes a suggestion cycle job,
run by the workers in the isolated child like any other; its outcome is answered where
it was asked (`after_cycle`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Protocol, cast

from gidgethub import BadRequest
from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.commands import Command, command_delivery, parse
from flujo.bot.dashboard import (
    DashboardData,
    Ignored,
    InProgress,
    OpenPull,
    Tick,
    describe_patch,
    ignore_key,
    merged_body,
    outside,
    render,
    ticked,
)
from flujo.bot.events import IssueCommentEvent, IssueEditedEvent, PullRequestClosedEvent
from flujo.bot.forge import Forge, Issues, Merging
from flujo.bot.queue import Permanent
from flujo.bot.routers.context import BotContext
from flujo.templates.fit import GITHUB_TEXT_LIMIT, size
from flujo.templates.pr_body import escape as inert

if TYPE_CHECKING:
    from flujo.bot.events import SuggestEvent
    from flujo.bot.suggestion_prs import CycleOutcome
    from flujo.spec.dashboard_config import Dashboard

log = logging.getLogger("flujo.bot.routers.dashboard")
router = Router()
SEEN = "eyes"
"""The reaction that shows a command was seen."""


class GitHubOnly(Forge, Issues, Merging, Protocol):
    """A forge with issues and pull requests (GitHub's)."""


def _github(forge: Forge) -> GitHubOnly:
    if not hasattr(forge, "create_issue"):
        raise Permanent("the dashboard and comment commands need GitHub")
    return cast(GitHubOnly, forge)


# -- the dashboard issue ---------------------------------------------------------------


async def refresh(
    ctx: BotContext,
    forge: Forge,
    repo: str,
    installation: int,
    *,
    settings: Dashboard | None = None,
    notes: tuple[str, ...] = (),
) -> int | None:
    """Bring the repository's dashboard issue up to date; returns its number (None: there
    is none). It is opened only when `settings` (read at the default branch's head by a
    suggestion cycle) allow it; without them an existing dashboard is updated. A
    repository that opted out (`dashboard: {enabled: false}`) is left alone."""
    if ctx.dashboards is None:
        return None
    known = await ctx.dashboards.issue(repo)
    if settings is not None and not settings.enabled:
        if known is None or known.enabled:
            await ctx.dashboards.save_issue(repo, installation, None, False)
        return None
    if settings is None and (known is None or not known.enabled):
        return None
    gh = _github(forge)
    slug = await gh.app_slug()
    data = await _data(ctx, repo, notes)
    number = known.number if known is not None else None
    current = ""
    if number is not None:
        try:
            current, _ = await gh.issue_body(repo, number)
        except BadRequest as exc:
            if int(exc.status_code) not in (404, 410):
                raise
            number = None  # deleted or transferred: a new one is opened
    if number is None:
        section = render(data, slug, now=ctx.clock.now())
        title = settings.title if settings is not None else "Flujo dashboard"
        number = await gh.create_issue(repo, title, section + "\n")
        log.info("%s: dashboard issue #%d opened", repo, number)
    else:
        room = GITHUB_TEXT_LIMIT - size(outside(current)) - 4
        body = merged_body(current, render(data, slug, now=ctx.clock.now(), budget=room))
        if body != current:
            await gh.set_issue_body(repo, number, body)
    await ctx.dashboards.save_issue(repo, installation, number, True)
    return number


async def _data(ctx: BotContext, repo: str, notes: tuple[str, ...]) -> DashboardData:
    from flujo.learn.feedback import rejections
    from flujo.learn.roi_figures import suggestion_figures

    assert ctx.dashboards is not None
    store = ctx.telemetry.store(repo)
    ignored = [
        Ignored(
            ignore_key(f.spec_path, f.patch_hash),
            f.spec_path,
            describe_patch(f.patch),
            f.reason,
            f.actor,
        )
        for f in await asyncio.to_thread(rejections, store)
    ]
    in_progress = [
        InProgress(a.number, a.spec, a.state, a.log[-1] if a.log else "")
        for a in (await ctx.applications.all(("waiting", "watching")) if ctx.applications else [])
        if a.repo == repo
    ]
    return DashboardData(
        open_pulls=[OpenPull(n, t, s) for n, t, s in await ctx.state.open_proposals(repo)],
        waiting=sorted(await ctx.state.waiting(repo), key=lambda w: (w.spec, w.suggestion)),
        ignored=ignored,
        in_progress=in_progress,
        failures=await ctx.dashboards.check_failures(repo),
        realised=[
            f
            for f in reversed(await asyncio.to_thread(suggestion_figures, store))
            if f.state in ("merged", "reverted")
        ],
        roi_url=ctx.roi_url(repo),
        notes=notes,
    )


async def after_cycle(
    ctx: BotContext, forge: Forge, suggest: SuggestEvent, outcome: CycleOutcome
) -> None:
    """After a suggestion cycle: remember what waits, answer the person who asked for it,
    and bring the dashboard up to date."""
    repo = suggest.repo
    if outcome.cycle is not None and suggest.wanted:  # (others: `suggestions._pace`)
        await ctx.state.remove_waiting(repo, [p.change.id for p in outcome.proposed])
    if ctx.dashboards is None:
        return
    if suggest.command and suggest.reply_to is not None:
        await forge.comment(repo, suggest.reply_to, _answer(ctx, suggest, outcome))
    notes = () if outcome.cycle is not None else (f"The last suggestion cycle {outcome.failure}",)
    await refresh(
        ctx, forge, repo, suggest.installation_id, settings=outcome.dashboard, notes=notes
    )


def _answer(ctx: BotContext, suggest: SuggestEvent, outcome: CycleOutcome) -> str:
    from flujo.spec.figures import money

    who = f"@{suggest.actor}: " if suggest.actor else ""
    if outcome.cycle is None:
        return f"{who}the suggestion cycle {inert(outcome.failure or 'failed')}; nothing changed."
    cycle = outcome.cycle
    if not suggest.wanted:
        return (
            f"{who}suggestion cycle done: {len(outcome.proposed)} pull request(s) proposed or "
            f"kept, {len(outcome.waiting)} suggestion(s) waiting (see the lists above)."
        )
    done = [p for p in outcome.proposed if p.change.id in suggest.wanted]
    if not done:
        held = [n for n in cycle.not_proposed if n.id in suggest.wanted]
        why = (
            inert(held[0].reason)
            if held
            else "it is not suggested any more on the default branch's head (its finding is "
            "gone, or the patch was rejected)"
        )
        return f"{who}nothing was proposed: {why}."
    item = done[0]
    pull = f"#{item.pull.number}"
    if suggest.command == "eval":
        if cycle.eval_examples:
            how = (
                f"measured live against the evaluation provider: {cycle.eval_examples} "
                f"captured example(s), {money(cycle.eval_spent_usd)} spent"
            )
        elif ctx.evaluation is None:
            how = "not measured: the bot has no evaluation provider (FLUJO_BOT_EVAL_BASE_URL)"
        else:
            how = "no new evaluation ran (see the evidence for why)"
        return (
            f"{who}evaluation of {pull}: {how}. Quality evidence: "
            f"{inert(item.change.quality or 'not measured')}."
        )
    verb = "opened" if item.pull.created else ("updated" if item.pull.changed else "unchanged")
    return f"{who}{pull} {verb} on the default branch's head: {inert(item.change.title)}."


# -- ticked boxes ------------------------------------------------------------------------


@router.register("issues", action="edited")
async def on_edited(event: Event, ctx: BotContext) -> None:
    edited = IssueEditedEvent.parse(event)
    if edited.by_bot or ctx.dashboards is None:
        return  # the bot's own rewrite (it never ticks boxes)
    repo = edited.repo
    known = await ctx.dashboards.issue(repo)
    if known is None or known.number != edited.issue.number or not known.enabled:
        return
    ticks = ticked(edited.issue.body or "")
    if not ticks:
        return  # people's own text changed: nothing for the bot to do
    forge = await ctx.forge_for(edited.installation_id)
    actor = edited.actor
    if not await forge.can_write(repo, actor):
        await forge.comment(
            repo,
            edited.issue.number,
            f"@{actor}: ticking a box of this dashboard needs write access to this "
            "repository, so nothing was done (the boxes were cleared).",
        )
        await refresh(ctx, forge, repo, edited.installation_id)
        return
    delivery = event.delivery_id or f"{repo}:{edited.issue.number}"
    notes = [
        await _act(ctx, forge, edited, tick, f"{delivery}:{n}") for n, tick in enumerate(ticks)
    ]
    await refresh(ctx, forge, repo, edited.installation_id, notes=tuple(notes))


async def _act(
    ctx: BotContext, forge: Forge, edited: IssueEditedEvent, tick: Tick, delivery: str
) -> str:
    """Do what one ticked box asks; returns the note the dashboard shows about it."""
    assert ctx.dashboards is not None
    repo, actor = edited.repo, edited.actor
    if tick.kind == "create":
        waiting = {w.suggestion: w for w in await ctx.state.waiting(repo)}
        item = waiting.get(tick.key)
        if item is None:
            return f"{tick.key} is not waiting any more; nothing was created."
        if ctx.schedule is None:
            return f"{item.title}: this bot cannot queue jobs; nothing was created."
        await ctx.schedule(
            command_delivery(
                repo,
                edited.installation_id,
                command="create",
                wanted=(item.suggestion,),
                reply_to=edited.issue.number,
                actor=actor,
                delivery_id=delivery,
                now=ctx.clock.now(),
            )
        )
        await ctx.state.remove_waiting(repo, [item.suggestion])
        return f"Creating a pull request for {item.title} (asked by @{actor})."
    from flujo.learn.feedback import forget_rejection, rejections

    store = ctx.telemetry.store(repo)
    for found in await asyncio.to_thread(rejections, store):
        if ignore_key(found.spec_path, found.patch_hash) == tick.key:
            await asyncio.to_thread(forget_rejection, store, found.spec_path, found.patch_hash)
            log.info("%s: %s un-ignored a patch of %s", repo, actor, found.spec_path)
            return (
                f"Un-ignored ({found.spec_path}: {describe_patch(found.patch)}) by @{actor}: "
                "the next suggestion cycle may propose it again."
            )
    return "That ignored suggestion was already un-ignored."


# -- comment commands --------------------------------------------------------------------


@router.register("issue_comment", action="created")
async def on_comment(event: Event, ctx: BotContext) -> None:
    comment = IssueCommentEvent.parse(event)
    if comment.by_bot or "@" not in (comment.comment.body or ""):
        return
    forge = await ctx.forge_for(comment.installation_id)
    gh = _github(forge)
    command = parse(comment.comment.body or "", await gh.app_slug())
    if command is None:
        return
    repo, number, actor = comment.repo, comment.issue.number, comment.actor
    await gh.react(repo, comment.comment.id, SEEN)
    slug = await gh.app_slug()
    said = f"`@{slug} {command.word}`"
    if command.name is None:
        await forge.comment(
            repo,
            number,
            f"@{actor}: {inert(command.word, 40)} is not a command of this bot. It knows "
            f"`@{slug} recreate`, `@{slug} ignore [reason]`, `@{slug} eval` and "
            f"`@{slug} explain`.",
        )
        return
    if not await forge.can_write(repo, actor):
        await forge.comment(
            repo,
            number,
            f"@{actor}: {said} needs write access to this repository, so nothing was done.",
        )
        return
    dashboard = await ctx.dashboards.issue(repo) if ctx.dashboards is not None else None
    delivery = event.delivery_id or f"{repo}:{comment.comment.id}"
    if dashboard is not None and dashboard.number == number:
        reply = await _on_dashboard(ctx, gh, comment, command, delivery)
    elif comment.issue.pull_request is not None:
        reply = await _on_pull(ctx, gh, comment, command, delivery)
    else:
        reply = f"{said} works on a suggestion pull request or on the dashboard issue."
    if reply:
        await forge.comment(repo, number, f"@{actor}: {reply}")


async def _queue(
    ctx: BotContext,
    comment: IssueCommentEvent,
    command: str,
    wanted: tuple[str, ...],
    delivery: str,
) -> str | None:
    """Queue the suggestion cycle a command needs; the reply comes when it ran."""
    if ctx.schedule is None:
        return "this bot cannot queue jobs, so nothing was done."
    await ctx.schedule(
        command_delivery(
            comment.repo,
            comment.installation_id,
            command=command,
            wanted=wanted,
            reply_to=comment.issue.number,
            actor=comment.actor,
            delivery_id=delivery,
            now=ctx.clock.now(),
        )
    )
    return None


async def _on_pull(
    ctx: BotContext, gh: GitHubOnly, comment: IssueCommentEvent, command: Command, delivery: str
) -> str | None:
    repo, number = comment.repo, comment.issue.number
    pull = await gh.pull(repo, number)
    proposal = await ctx.state.proposal(repo, pull.head_branch)
    if proposal is None:
        return "this is not a suggestion pull request of the bot, so nothing was done."
    if command.name == "explain":
        views = dict(await ctx.state.views(repo))
        view = views.get(proposal.suggestion)
        if view is None:
            return "the bot kept no explanation of this suggestion."
        lines = [f"**{inert(view.headline or view.title)}**", ""]
        for label, text in (
            ("Why", view.why),
            ("Risk", view.risk),
            ("Quality evidence", view.quality),
            ("Watch for", view.watch_for),
        ):
            if text:
                lines.append(f"- **{label}:** {inert(text)}")
        lines += [f"- {inert(b)}" for b in view.bullets[:10]]
        return "\n".join(lines)
    if proposal.state != "open":
        return f"this suggestion is {proposal.state} already, so nothing was done."
    if command.name == "ignore":
        from flujo.bot.suggestion_prs import record_outcome

        reason = command.argument or f"ignored with @{await gh.app_slug()} ignore"
        await record_outcome(
            ctx.telemetry.store(repo), proposal, merged=False, actor=comment.actor, comment=reason
        )
        await ctx.state.close_proposal(repo, pull.head_branch, "rejected")
        await gh.close_pull(repo, number)
        await refresh(ctx, gh, repo, comment.installation_id)
        return (
            "ignored: this pull request is closed and the suggestion will not be proposed "
            "again (un-ignore it from the dashboard issue)."
        )
    assert command.name in ("recreate", "eval")
    return await _queue(ctx, comment, command.name, (proposal.suggestion,), delivery)


async def _on_dashboard(
    ctx: BotContext, gh: GitHubOnly, comment: IssueCommentEvent, command: Command, delivery: str
) -> str | None:
    assert ctx.dashboards is not None
    repo = comment.repo
    key, _, rest = command.argument.partition(" ")
    waiting = {w.suggestion: w for w in await ctx.state.waiting(repo)}
    item = waiting.get(key.lower())
    if command.name == "recreate":
        wanted = (item.suggestion,) if item is not None else ()
        return await _queue(ctx, comment, "create" if wanted else "recreate", wanted, delivery)
    if item is None:
        return (
            f"name a waiting suggestion by its id (the 12 characters in its box), e.g. "
            f"`@{await gh.app_slug()} {command.word} 0123456789ab`; nothing was done."
        )
    if command.name == "explain":
        return f"{inert(item.title)} (`{inert(item.spec)}`) waits: {inert(item.detail)}."
    if command.name == "eval":
        return (
            "eval measures a suggestion pull request: create one first (tick its box), then "
            "comment there."
        )
    from flujo.learn.feedback import record_rejection

    reason = rest.strip() or f"ignored from the dashboard by @{comment.actor}"
    await asyncio.to_thread(
        record_rejection, ctx.telemetry.store(repo), item.spec, item.patch, reason, comment.actor
    )
    await ctx.state.remove_waiting(repo, [item.suggestion])
    await refresh(ctx, gh, repo, comment.installation_id)
    return f"ignored {inert(item.title)}: it will not be proposed again."


# -- pull requests closed ----------------------------------------------------------------


@router.register("pull_request", action="closed")
async def on_closed(event: Event, ctx: BotContext) -> None:
    """A suggestion pull request merged or closed leaves the dashboard's open list."""
    closed = PullRequestClosedEvent.parse(event)
    if ctx.dashboards is None or await ctx.dashboards.issue(closed.repo) is None:
        return
    from flujo.bot.suggestion_prs import BRANCH_PREFIX

    if not closed.pull_request.head.ref.startswith(BRANCH_PREFIX):
        return
    forge = await ctx.forge_for(closed.installation_id)
    await refresh(ctx, forge, closed.repo, closed.installation_id)
