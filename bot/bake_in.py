"""The `stage` mode of auto-apply: bake a change on fresh production inputs, then merge.

`begin()` runs when a suggestion pull request whose tier is set to `stage` is opened: it
labels it `flujo/baking`, adds the live "Bake-in" section to its body and returns the
first look. Each look (`bake_step`, a job in the queue: a durable timer) evaluates the
candidate with `flujo eval` on the production inputs captured since the last look (in a
confined child, with the bot's evaluation provider; never for a fork), adds the result to
the tally kept with the application (`flujo.learn.bake`), and rewrites the section. Once
the bake-in window has passed the tally is judged: the change then waits to merge like a
`merge` tier (required checks, merge window, daily cap), or the bot comments with the
evidence and leaves it to a person.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flujo.bot.auto_apply import COMMENT_HEADER, job, show_story, when
from flujo.learn.bake import BakeTally, judge

if TYPE_CHECKING:
    from flujo.bot.applications import Application
    from flujo.bot.forge import Forge
    from flujo.bot.queue import Delivery
    from flujo.bot.routers.context import BotContext
    from flujo.spec.autoapply import AutoApply

log = logging.getLogger("flujo.bot.bake_in")

BAKING_LABEL = "flujo/baking"
BAKE_POLL_S = 3600.0
"""How often a bake-in evaluates the inputs captured since its last look."""
SECTION_START = "<!-- flujo:bake-in -->"
SECTION_END = "<!-- /flujo:bake-in -->"
_SECTION = re.compile(re.escape(SECTION_START) + r".*?" + re.escape(SECTION_END), re.S)
NO_PROVIDER = "the bot has no evaluation provider (`FLUJO_BOT_EVAL_BASE_URL`)"


def mode_line(settings: AutoApply, tier: str) -> str:
    """What `stage` does, said on the pull request when it opens."""
    return (
        f"Mode `stage` (`.github/flujo.yml` `auto_apply.tiers.{tier}`): baking for "
        f"{settings.bake_in / 3600:g} h. The bot evaluates the change with `flujo eval` on "
        "production inputs captured after this pull request was opened, and merges it after "
        f"the window only if at least {settings.min_examples} fresh examples were compared, "
        f"agreement is at least {settings.agreement_floor:.0%} and no new failure cause "
        "(model or provider) appeared; then, like `merge`, once every required check passed, "
        f"inside a merge window, at most {settings.max_merges_per_day} a day. Add the label "
        f"`{settings.freeze_label}` to stop it."
    )


async def begin(forge: Forge, app: Application, settings: AutoApply, now: float) -> Delivery:
    """Label the pull request as baking, show the empty Bake-in section, and return the
    first look."""
    await forge.add_labels(app.repo, app.number, [BAKING_LABEL])
    tally = BakeTally.from_json(app.bake or {})
    await show_section(forge, app, tally, settings, now, status=_status(tally, now))
    return job(app.repo, app.installation, app.number, "bake", _next_look(tally, now))


async def bake_step(ctx: BotContext, forge: Forge, app: Application, now: float) -> None:
    """One look at a baking change: evaluate what was captured since the last look, then
    keep baking, or judge the bake-in once its window has passed."""
    from flujo.bot.routers.auto_apply import settings_at_default_head

    apps = ctx.applications
    if apps is None or app.state != "baking":
        return  # judged already, or closed (a timer that fired twice)
    pull = await forge.pull(app.repo, app.number)  # type: ignore[attr-defined]
    if pull.merged or pull.state != "open":
        what = "Merged by a person" if pull.merged else "Closed"
        await _say(forge, apps, replace(app, state="closed"), f"{what}: the bake-in stopped.", now)
        return
    settings = await settings_at_default_head(forge, app.repo)
    if settings is None or settings.mode(app.tier) != "stage":
        why = (
            "`.github/flujo.yml` on the default branch is invalid"
            if settings is None
            else f"`.github/flujo.yml` now sets tier {app.tier} to `{settings.mode(app.tier)}`"
        )
        line = f"Bake-in stopped: {why}; a person decides."
        await _say(forge, apps, replace(app, state="proposed"), line, now)
        return
    tally = BakeTally.from_json(app.bake or {})
    evaluation, why_not = await ctx.evaluation_for(forge, app.repo, app.installation)
    if evaluation is None:
        tally = replace(tally, not_measured=why_not or NO_PROVIDER)
        line = (
            f"Not baked: {tally.not_measured}, so the change cannot be evaluated on fresh "
            "production inputs; a person decides."
        )
        app = replace(app, state="blocked", bake=tally.to_json())
        await show_section(forge, app, tally, settings, now, status="not baked: a person decides")
        await _say(forge, apps, app, line, now)
        return
    found = await forge.read_files(app.repo, pull.head_sha, [app.spec])
    candidate = found.get(app.spec)
    if candidate is None:
        line = f"Bake-in stopped: `{app.spec}` is not on the pull request's head; a person decides."
        await _say(forge, apps, replace(app, state="blocked"), line, now)
        return
    version = hashlib.sha256(candidate).hexdigest()
    if tally.candidate and tally.candidate != version:  # what bakes must be what merges
        tally = BakeTally(now, now + settings.bake_in)
        line = (
            f"The pull request's `{app.spec}` changed ({pull.head_sha[:7]}): the bake-in starts "
            f"again and ends {when(tally.ends)}."
        )
        app = app.with_line(line)
        await forge.comment(app.repo, app.number, f"{COMMENT_HEADER}\n\n{line}")
    tally = replace(tally, candidate=version)
    tally = await _look(ctx, forge, app, candidate.decode("utf-8", "replace"), tally, evaluation)
    app = replace(app, bake=tally.to_json())
    if now < tally.ends:
        await show_section(forge, app, tally, settings, now, status=_status(tally, now))
        await apps.save(app, now)
        if ctx.schedule is not None:
            at = _next_look(tally, now)
            await ctx.schedule(job(app.repo, app.installation, app.number, "bake", at))
        return
    verdict = judge(tally, settings.agreement_floor, settings.min_examples)
    figures = "\n".join(
        f"- {f}" for f in tally.figures(settings.agreement_floor, settings.min_examples)
    )
    if verdict.merge:
        app = replace(app, state="waiting", baked=True, waiting_since=now)
        status = f"ended {when(now)}: passed; merging once every required check passed"
        await show_section(forge, app, tally, settings, now, status=status)
        line = (
            f"Bake-in passed at {when(now)}: merging once every required check passed.\n\n{figures}"
        )
        await _say(forge, apps, app, line, now)
        if ctx.schedule is not None:
            await ctx.schedule(job(app.repo, app.installation, app.number, "merge", now))
        return
    reasons = "; ".join(verdict.reasons)
    app = replace(app, state="blocked")
    await show_section(forge, app, tally, settings, now, status=f"ended {when(now)}: not merged")
    line = (
        f"Bake-in ended at {when(now)}: not merged ({reasons}); a person decides.\n\n{figures}"
        + (
            "\n- Disagreements (run: step): " + ", ".join(f"`{d}`" for d in tally.disagreements)
            if tally.disagreements
            else ""
        )
    )
    await _say(forge, apps, app, line, now)


async def _look(
    ctx: BotContext,
    forge: Forge,
    app: Application,
    candidate: str,
    tally: BakeTally,
    evaluation: Any,
) -> BakeTally:
    """The tally with one more look: the candidate (the pull request's spec) evaluated
    against the default branch's spec on the inputs captured since the last look."""
    from flujo.bot.bake_cycle import BakeRequest
    from flujo.bot.isolation import IsolationFailed
    from flujo.bot.snapshot import TooLarge, snapshot

    fresh = await asyncio.to_thread(_fresh, ctx.telemetry.store(app.repo), app.spec, tally.since)
    if not fresh:  # nothing captured since the last look: no child, no model call
        why = f"no production input was captured since {when(tally.since)}"
        return replace(tally, not_measured=why)
    _, sha = await forge.default_head(app.repo)
    request = BakeRequest(
        spec=app.spec,
        candidate=candidate,
        store=str(ctx.telemetry.path(app.repo)),
        since=tally.since,
        evaluation=evaluation,
        label=app.suggestion,
    )
    try:
        async with snapshot(forge, app.repo, sha, ctx.evaluator, ctx.limits) as snap:
            if app.spec not in snap.files:
                return replace(tally, not_measured=f"`{app.spec}` is not on the default branch")
            look = await ctx.evaluator.bake(snap.root, request)
    except (IsolationFailed, TooLarge) as exc:
        reason = exc.reason if isinstance(exc, IsolationFailed) else str(exc)
        log.warning("%s#%d: a bake-in look %s", app.repo, app.number, reason)
        return replace(tally, not_measured=f"the last look {reason}")
    if look.eval_cost_usd > 0:
        await ctx.state.record_eval_spend(
            app.installation, app.repo, look.eval_cost_usd, look.examples
        )
    if not look.examples:
        return replace(tally, looks=tally.looks + 1, not_measured=look.not_measured)
    return tally.add(look.model_dump(mode="json"))


def _fresh(store: Any, spec: str, since: float) -> int:
    """Production inputs of `spec` captured after `since` (read by the bot from its own
    store: numbers only, nothing of the repository's content runs here)."""
    from flujo.bot.suggestion_cycle import captured_key
    from flujo.learn.evaluate import count_examples

    key = captured_key(store, spec)
    return count_examples(store, key, since) if key is not None else 0


def _next_look(tally: BakeTally, now: float) -> float:
    return min(now + BAKE_POLL_S, tally.ends) if now < tally.ends else now


def _status(tally: BakeTally, now: float) -> str:
    left = max(0.0, tally.ends - now)
    return f"baking until {when(tally.ends)} ({left / 3600:.1f} h left)"


async def _say(forge: Forge, apps: Any, app: Application, line: str, now: float) -> None:
    """Say the bake-in's end on the pull request (and in its story), take the baking label
    off, and remember it."""
    remove_label = getattr(forge, "remove_label", None)
    if remove_label is not None:
        await remove_label(app.repo, app.number, BAKING_LABEL)
    app = app.with_line(line)
    await forge.comment(app.repo, app.number, f"{COMMENT_HEADER}\n\n{line}")
    await apps.save(app, now)
    await show_story(forge, app)


def section(tally: BakeTally, settings: AutoApply, status: str) -> str:
    """The live "Bake-in" section of the pull request's body."""
    lines = [
        SECTION_START,
        "### Bake-in",
        "",
        f"**Status:** {status}.",
        "",
        *(f"- {f}" for f in tally.figures(settings.agreement_floor, settings.min_examples)),
        "",
        f"Window: {settings.bake_in / 3600:g} h from {when(tally.started)} to "
        f"{when(tally.ends)}. Merged after it only with at least {settings.min_examples} fresh "
        f"examples, agreement at least {settings.agreement_floor:.0%} and no new failure "
        "cause (model or provider). Inputs are production runs' only (live, started by "
        "`cli`, `sdk` or `shadow`); test, check and evaluation runs never count.",
        SECTION_END,
    ]
    return "\n".join(lines)


def with_section(body: str, text: str) -> str:
    """`body` with its Bake-in section replaced by `text` (appended when absent)."""
    if _SECTION.search(body):
        return _SECTION.sub(lambda _: text, body, count=1)
    return f"{body.rstrip()}\n\n{text}\n"


async def show_section(
    forge: Forge, app: Application, tally: BakeTally, settings: AutoApply, now: float, status: str
) -> None:
    """Rewrite the pull request body's Bake-in section."""
    pull = getattr(forge, "pull", None)
    set_body = getattr(forge, "set_body", None)
    if pull is None or set_body is None:
        return
    body = (await pull(app.repo, app.number)).body
    updated = with_section(body, section(tally, settings, status))
    if updated != body:
        await set_body(app.repo, app.number, updated)
