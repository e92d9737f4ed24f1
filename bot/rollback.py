"""The watch after an automatic merge, and the rollback when it finds a regression.

Each watch step compares live runs of the new spec version with the previous one
(`flujo.learn.watch`) and reads the default branch's `flujo/test` and `flujo/policy` on
the merge commit. On a regression the bot opens a revert pull request made through the
same minimal-diff edit path (the inverse JSON Patch) or, when the file moved on at the
patched places, by a three-way merge of the merge commit's reverse onto the current file
(as `git revert` does; a conflict is left to a person, with its lines), merges it when
the original was merged automatically (once its required checks pass), records the patch
as rejected with the evidence, comments on the original pull request and runs the
plugins' `on_rollback` hooks in reverse order. Without one, the watch ends after its duration.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from flujo.bot.applications import Application
from flujo.bot.apply_hooks import ApplyEvent, on_rollback
from flujo.bot.auto_apply import COMMENT_HEADER, WATCH_POLL_S, job, show_story, when
from flujo.bot.forge import Forge, Proposal
from flujo.bot.verdicts import POLICY, TEST

if TYPE_CHECKING:
    from flujo.bot.routers.context import BotContext

log = logging.getLogger("flujo.bot.rollback")
REVERT_PREFIX = "flujo/revert/"


async def watch_step(ctx: BotContext, forge: Forge, app: Application, now: float) -> None:
    """One look at a merged change: revert it, keep watching, or end the watch."""
    from flujo.bot.routers.auto_apply import settings_at_default_head
    from flujo.learn.watch import compare, production_runs
    from flujo.spec.autoapply import AutoApply

    apps = ctx.applications
    if apps is None or app.state not in ("merged", "watching") or app.merged_at is None:
        return
    settings = await settings_at_default_head(forge, app.repo) or AutoApply()
    store = ctx.telemetry.store(app.repo)
    merged_at = app.merged_at
    before, after = await asyncio.to_thread(
        lambda: (
            production_runs(store, app.spec_before, merged_at - settings.watch, merged_at),
            production_runs(store, app.spec_after, merged_at),
        )
    )
    report = compare(before, after, settings.watch_min_runs)
    red = await _red_checks(forge, app)
    if red or report.verdict == "regression":
        evidence = "\n".join(
            [*(f"- default branch `{n}`: {c} on {app.merged_sha or ''}" for n, c in red)]
            + ([report.summary()] if report.verdict == "regression" else [])
        )
        await revert(ctx, forge, app, evidence, now)
        return
    ends = merged_at + settings.watch
    if now >= ends:
        line = f"Watch ended at {when(now)}: kept. {report.summary()}"
        app = replace(app, state="kept").with_line(line)
        await forge.comment(app.repo, app.number, f"{COMMENT_HEADER}\n\n{line}")
        await apps.save(app, now)
        await show_story(forge, app)
        return
    await apps.save(replace(app, state="watching"), now)
    if ctx.schedule is not None:
        at = min(now + WATCH_POLL_S, ends)
        await ctx.schedule(job(app.repo, app.installation, app.number, "watch", at))


async def _red_checks(forge: Any, app: Application) -> list[tuple[str, str]]:
    check_states = getattr(forge, "check_states", None)
    if check_states is None or app.merged_sha is None:
        return []
    states = {s.name: s for s in await check_states(app.repo, app.merged_sha)}
    return [
        (name, str(states[name].conclusion))
        for name in (TEST, POLICY)
        if name in states
        and states[name].status == "completed"
        and states[name].conclusion not in ("success", "neutral")
    ]


async def revert(
    ctx: BotContext, forge: Forge, app: Application, evidence: str, now: float
) -> None:
    """Open (and, for an automatic merge, schedule merging) the revert of `app`."""
    from flujo.learn.feedback import record_rejection
    from flujo.learn.roi_figures import REVERTED

    apps = ctx.applications
    assert apps is not None
    branch, head = await forge.default_head(app.repo)
    reverted = await _reverted_text(forge, app, head)
    how = "the same minimal-diff edit path (the inverse JSON Patch)"
    if reverted is None:  # the file moved on at the patched places: revert the commit
        reverted, why = await _reverse_of_merge(forge, app, head)
        how = (
            f"a three-way merge of the reverse of merge commit {(app.merged_sha or '')[:7]} "
            f"onto `{app.spec}` at {head[:7]} (as `git revert` does), since the file moved on"
        )
        if reverted is None:
            line = (
                f"Regression found, but the bot cannot revert it by itself: {why}. A person "
                f"decides.\n\n{evidence}"
            )
            app = replace(app, state="blocked").with_line(line)
            await forge.comment(app.repo, app.number, f"{COMMENT_HEADER}\n\n{line}")
            await apps.save(app, now)
            await show_story(forge, app)
            return
    title = f"flujo: revert suggestion {app.suggestion} on {app.spec} (regression)"
    body = (
        f"Reverts #{app.number}, merged automatically"
        if app.automatic
        else f"Reverts #{app.number}"
    ) + f" (tier {app.tier}): the watch found a regression.\n\n{evidence}\n\nMade by {how}.\n"
    pull = await forge.propose(
        app.repo,
        Proposal(
            branch=f"{REVERT_PREFIX}{app.suggestion}",
            files={app.spec: reverted.encode("utf-8")},
            message=f"{title}\n\nReverts #{app.number}.\n\nFlujo-Revert-Of: {app.suggestion}",
            title=title,
            body=body,
            labels=("flujo",),
            base=branch,
        ),
    )
    mode = "merge" if app.automatic else "propose"
    revert_app = Application(
        repo=app.repo,
        number=pull.number,
        installation=app.installation,
        branch=pull.branch,
        spec=app.spec,
        suggestion=app.suggestion,
        patch=[],
        tier=app.tier,
        mode=mode,
        reason=f"revert of #{app.number}",
        state="waiting" if app.automatic else "proposed",
        base_sha=head,
        spec_before=app.spec_after,
        spec_after=app.spec_before,
        waiting_since=now,
        revert_of=app.number,
        log=(
            f"Revert of #{app.number}: "
            + (
                "merged automatically once every required check passed."
                if app.automatic
                else "a person merges it (the original was merged by a person)."
            ),
        ),
    )
    await apps.save(revert_app, now)
    await forge.comment(app.repo, pull.number, f"{COMMENT_HEADER}\n\n{revert_app.log[0]}")
    await asyncio.to_thread(
        record_rejection,
        ctx.telemetry.store(app.repo),
        app.spec,
        app.patch,
        f"{REVERTED}: {evidence}"[:4000],
        "flujo (watch)",
    )
    failures = await on_rollback(
        ctx.apply_hooks,
        ApplyEvent(
            app.repo,
            app.number,
            app.spec,
            app.suggestion,
            "watch",
            app.tier,
            app.merged_sha,
            evidence,
        ),
    )
    line = f"Regression after the merge: reverting in #{pull.number}.\n\n{evidence}" + "".join(
        f"\n- {f}" for f in failures
    )
    app = replace(app, state="reverted").with_line(line)
    await forge.comment(app.repo, app.number, f"{COMMENT_HEADER}\n\n{line}")
    await apps.save(app, now)
    await show_story(forge, app)
    await show_story(forge, revert_app)
    await ctx.check_head(app.installation, app.repo, pull.branch)
    if app.automatic and ctx.schedule is not None:
        await ctx.schedule(job(app.repo, app.installation, pull.number, "merge", now))


async def _reverse_of_merge(forge: Forge, app: Application, head: str) -> tuple[str | None, str]:
    """The spec at `head` with the merge commit's change to it undone by a three-way
    merge (None, and why, when later commits changed the same lines or the file is gone)."""
    from flujo.spec.edit import revert_change

    merged = app.merged_sha
    if merged is None:
        return None, "the merge commit is not known"
    parents = getattr(forge, "parents", None)
    found = await parents(app.repo, merged) if parents is not None else []
    parent = found[0] if found else app.base_sha
    texts = {}
    for name, sha in (("before", parent), ("after", merged), ("current", head)):
        read = await forge.read_files(app.repo, sha, [app.spec])
        if app.spec not in read:
            where = "on the default branch" if name == "current" else f"in {sha[:7]}"
            return None, f"`{app.spec}` is not {where} (moved or deleted)"
        texts[name] = read[app.spec].decode("utf-8", "replace")
    result = revert_change(texts["before"], texts["after"], texts["current"])
    if result.text is None:
        lines = ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in result.conflicts)
        return None, (
            f"undoing merge commit {merged[:7]} conflicts with later changes to "
            f"`{app.spec}` at line(s) {lines} on {head[:7]}"
        )
    return result.text, ""


async def _reverted_text(forge: Forge, app: Application, head: str) -> str | None:
    """The spec at `head` with the change undone through the one edit path (None: the
    spec moved on at the patched places)."""
    from flujo.spec.edit import apply_patch
    from flujo.spec.errors import SpecError
    from flujo.spec.source import parse

    found = await forge.read_files(app.repo, head, [app.spec])
    if app.spec not in found:
        return None
    before_text = (await forge.read_files(app.repo, app.base_sha, [app.spec]))[app.spec].decode()
    now_text = found[app.spec].decode()
    try:
        after_text = apply_patch(before_text, app.patch, file=app.spec)
        before, after, current = (
            parse(t, app.spec).data for t in (before_text, after_text, now_text)
        )
    except SpecError:
        return None
    inverse: list[dict[str, Any]] = []
    for pointer in dict.fromkeys(str(op["path"]) for op in app.patch):
        found_now, value_now = _at(current, pointer)
        found_after, value_after = _at(after, pointer)
        if (found_now, value_now) != (found_after, value_after):
            return None
        found_before, value_before = _at(before, pointer)
        if found_before:
            inverse.append(
                {"op": "replace" if found_now else "add", "path": pointer, "value": value_before}
            )
        elif found_now:
            inverse.append({"op": "remove", "path": pointer})
    try:
        return apply_patch(now_text, inverse, file=app.spec)
    except SpecError:
        return None


def _at(data: Any, pointer: str) -> tuple[bool, Any]:
    node = data
    tokens = pointer[1:].split("/") if pointer else []
    for segment in (t.replace("~1", "/").replace("~0", "~") for t in tokens):
        if isinstance(node, dict) and segment in node:
            node = node[segment]
        elif isinstance(node, list) and str(segment).isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return False, None
    return True, _plain(node)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
