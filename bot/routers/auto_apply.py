"""Auto-apply: after a suggestion's pull request is opened, and at each scheduled step."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from gidgethub.routing import Router
from gidgethub.sansio import Event

from flujo.bot.apply_hooks import ApplyEvent, on_commit
from flujo.bot.auto_apply import AUTO_APPLY_EVENT, attempt_merge, job, show_story
from flujo.bot.events import AutoApplyEvent
from flujo.bot.routers.context import BotContext
from flujo.learn.feedback import record_acceptance

if TYPE_CHECKING:
    from flujo.bot.forge import Forge, Merging
    from flujo.spec.autoapply import AutoApply

log = logging.getLogger("flujo.bot.routers.auto_apply")
router = Router()


@router.register(AUTO_APPLY_EVENT)
async def on_step(event: Event, ctx: BotContext) -> None:
    step = AutoApplyEvent.parse(event)
    apps = ctx.applications
    if apps is None:
        return
    app = await apps.get(step.repo, step.number)
    if app is None:
        return
    forge = await ctx.forge_for(step.installation_id)
    now = ctx.clock.now()
    if step.step == "merge":
        if app.state != "waiting":
            return  # already merged, blocked or closed (a timer that fired twice)
        settings = await settings_at_default_head(forge, step.repo)
        if settings is None:
            line = (
                "Not merged: `.github/flujo.yml` on the default branch is invalid (see the "
                "`flujo/validate` check); a person decides."
            )
            app = replace(app, state="blocked").with_line(line)
            await forge.comment(app.repo, app.number, line)
            await apps.save(app, now)
            return
        await ctx.check_head(app.installation, app.repo, app.branch)
        merging: Merging = forge  # type: ignore[assignment]  # GitHub implements both
        app, nxt = await attempt_merge(merging, forge, apps, app, settings, now)
        await apps.save(app, now)
        await show_story(forge, app)
        if app.state == "merged":
            failures = await on_commit(
                ctx.apply_hooks,
                ApplyEvent(
                    app.repo,
                    app.number,
                    app.spec,
                    app.suggestion,
                    "merge",
                    app.tier,
                    app.merged_sha,
                ),
            )
            for failure in failures:
                app = app.with_line(failure)
            await apps.save(app, now)
            await asyncio.to_thread(
                record_acceptance,
                ctx.telemetry.store(app.repo),
                app.spec,
                app.patch,
                "flujo (auto-apply)",
                f"merged automatically (tier {app.tier})",
            )
        if nxt is not None and nxt.at is not None and ctx.schedule is not None:
            await ctx.schedule(job(app.repo, app.installation, app.number, nxt.step, nxt.at))
        log.info("%s#%d: %s", app.repo, app.number, nxt.line if nxt else app.state)
    elif step.step == "watch":
        from flujo.bot.rollback import watch_step

        await watch_step(ctx, forge, app, now)
    elif step.step == "bake":
        from flujo.bot.bake_in import bake_step

        await bake_step(ctx, forge, app, now)


async def settings_at_default_head(forge: Forge, repo: str) -> AutoApply | None:
    """The `auto_apply:` settings of the default branch's head (None: the file is invalid)."""
    from flujo.spec.config import CONFIG_NAMES, RepoConfig, parse_config
    from flujo.spec.errors import SpecError

    _, sha = await forge.default_head(repo)
    present = [f.path for f in await forge.list_files(repo, sha) if f.path in CONFIG_NAMES]
    if not present:
        return RepoConfig().auto_apply
    data = (await forge.read_files(repo, sha, present[:1]))[present[0]]
    try:
        return parse_config(data, present[0]).auto_apply
    except SpecError:
        return None
