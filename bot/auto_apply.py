"""Safe auto-apply on a forge: merge a low-risk suggestion once every required check
passed, inside a merge window, under the daily cap; then watch it.

`start()` runs after a suggestion's pull request is opened: it records the tier
(`flujo.learn.tiers`) and the repository's mode for it (`auto_apply:` in
`.github/flujo.yml`), says both on the pull request, and for `merge` schedules a job.
`attempt_merge()` is that job: it re-reads the pull request and the base branch's
required checks (branch protection and rulesets, plus the bot's own three), and merges
through the API with the head SHA it verified, or says why not and when it looks again.
A required check that is skipped, neutral, missing or stale never counts as passed.
Every decision is one line in the application's log and a comment on the pull request.
Jobs are queue deliveries with a not-before time (`Delivery.not_before`): durable timers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from flujo.bot.applications import Application, Applications
from flujo.bot.forge import CheckOutput, CheckState, Forge, MergeRefused, Merging
from flujo.bot.queue import Delivery, Job
from flujo.bot.verdicts import CHECK_NAMES, POLICY

if TYPE_CHECKING:
    from collections.abc import Iterable

    from flujo.learn.tiers import TierDecision
    from flujo.spec.autoapply import AutoApply

log = logging.getLogger("flujo.bot.auto_apply")

AUTO_APPLY_EVENT = "flujo_auto_apply"
POLL_S = 60.0
"""How soon a waiting merge looks again at its checks."""
CHECK_WAIT_S = 6 * 3600.0
"""How long a merge waits for required checks that are missing or still running."""
FROZEN_POLL_S = 3600.0
WATCH_POLL_S = 3600.0
"""How often the watch after a merge looks at live runs."""
COMMENT_HEADER = "**Flujo auto-apply**"
STORY_CHECK = "flujo/auto-apply"
"""A neutral check run on the pull request's head whose summary is every decision."""
_TITLES = {
    "proposed": "a person decides",
    "baking": "baking on fresh production inputs",
    "waiting": "waiting to merge",
    "merged": "merged automatically; watching",
    "watching": "merged automatically; watching",
    "kept": "merged automatically; watch ended, kept",
    "reverted": "merged automatically, then reverted",
    "blocked": "not merged: a person decides",
    "closed": "closed",
}
Step = Literal["merge", "watch", "bake"]


def job(repo: str, installation: int, number: int, step: Step, at: float) -> Delivery:
    """The scheduled job of an application's next step at `at` (one id per time: the
    same timer scheduled twice is stored once)."""
    body = json.dumps(
        {
            "repository": {"full_name": repo},
            "installation": {"id": installation},
            "number": number,
            "step": step,
        }
    ).encode()
    return Delivery(f"auto-apply:{repo}#{number}:{step}:{at:.0f}", AUTO_APPLY_EVENT, body, at, at)


def when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Next:
    """What an application step decided: a line to show and, maybe, when to look again."""

    line: str
    at: float | None = None
    step: Step = "merge"


async def start(
    forge: Forge,
    apps: Applications,
    *,
    repo: str,
    installation: int,
    number: int,
    branch: str,
    suggestion: Any,
    decision: TierDecision,
    settings: AutoApply,
    base_sha: str,
    spec_before: str,
    spec_after: str,
    now: float,
) -> Delivery | None:
    """Record the tier and mode of a newly opened suggestion pull request and say them on
    it; returns the merge job to schedule (None: a person decides)."""
    existing = await apps.get(repo, number)
    if existing is not None:
        return None  # already decided (the suggestion cycle ran again)
    mode = settings.mode(decision.tier) if decision.automatic else "propose"
    lines = [decision.line()]
    state: Literal["proposed", "waiting", "baking"] = "proposed"
    bake: dict[str, Any] | None = None
    if not decision.automatic:
        lines.append("Mode `propose`: a person reviews and merges it.")
    elif mode == "merge":
        lines.append(
            f"Mode `merge` (`.github/flujo.yml` `auto_apply.tiers.{decision.tier}`): merged "
            "by the bot once every required check passed on its head, inside a merge window "
            f"({settings.time_zone}), at most {settings.max_merges_per_day} a day. Add the "
            f"label `{settings.freeze_label}` to stop it."
        )
        state = "waiting"
    elif mode == "stage":
        from flujo.bot.bake_in import mode_line
        from flujo.learn.bake import BakeTally

        lines.append(mode_line(settings, decision.tier))
        state = "baking"
        bake = BakeTally(now, now + settings.bake_in).to_json()
    else:
        lines.append(f"Mode `{mode}` for tier {decision.tier}: a person reviews and merges it.")
    app = Application(
        repo=repo,
        number=number,
        installation=installation,
        branch=branch,
        spec=suggestion.spec,
        suggestion=suggestion.id,
        patch=list(suggestion.patch),
        tier=decision.tier,
        mode=mode,
        reason=decision.reason,
        state=state,
        base_sha=base_sha,
        spec_before=spec_before,
        spec_after=spec_after,
        waiting_since=now,
        log=tuple(lines),
        bake=bake,
    )
    await apps.save(app, now)
    await forge.comment(repo, number, "\n\n".join([COMMENT_HEADER, *lines]))
    if state == "baking":
        from flujo.bot.bake_in import begin

        return await begin(forge, app, settings, now)
    return job(repo, installation, number, "merge", now) if state == "waiting" else None


async def attempt_merge(
    forge: Merging,
    comments: Forge,
    apps: Applications,
    app: Application,
    settings: AutoApply,
    now: float,
) -> tuple[Application, Next | None]:
    """One look at a waiting application: merge it, or say why not and when to look again."""
    decided = await _decide(forge, apps, app, settings, now)
    app = decided[0]
    step = decided[1]
    if step is not None and (not app.log or app.log[-1] != step.line):
        app = app.with_line(step.line)
        await comments.comment(app.repo, app.number, f"{COMMENT_HEADER}\n\n{step.line}")
    return app, step


async def _decide(
    forge: Merging, apps: Applications, app: Application, settings: AutoApply, now: float
) -> tuple[Application, Next | None]:
    repo, number = app.repo, app.number
    pull = await forge.pull(repo, number)
    if pull.merged:
        return replace(app, state="closed"), Next("Merged by a person: nothing left to do.")
    if pull.state != "open":
        return replace(app, state="closed"), Next("Closed: not merged automatically.")
    if pull.head_sha not in app.heads:
        app = replace(app, heads=(*app.heads, pull.head_sha))
    if settings.freeze_label in pull.labels:
        return app, Next(
            f"Frozen: the label `{settings.freeze_label}` is on this pull request, so the bot "
            "does not merge it (remove the label to let it).",
            now + FROZEN_POLL_S,
        )
    revert = app.revert_of is not None  # undoing a regression waits for no window
    baked = app.baked and settings.mode(app.tier) == "stage"  # its bake-in passed
    if baked and not await _still_baked(forge, app, pull.head_sha):
        return replace(app, state="blocked"), Next(
            f"Not merged: `{app.spec}` on {pull.head_sha[:7]} is not the version that baked; "
            "a person decides."
        )
    if not revert and not baked and settings.mode(app.tier) != "merge":
        return replace(app, state="proposed"), Next(
            f"Not merged: `.github/flujo.yml` now sets tier {app.tier} to "
            f"`{settings.mode(app.tier)}`; a person decides."
        )
    if not revert and not settings.in_window(now):
        opens = settings.next_window(now)
        if opens is None:
            return replace(app, state="blocked"), Next("Not merged: no merge window is open.")
        return app, Next(
            f"Waiting: outside the merge windows; the next opens {when(opens)}.", opens
        )
    day = settings.day_of(now)
    merged_today = await apps.merged_on(repo, day)
    if not revert and merged_today >= settings.max_merges_per_day:
        tomorrow = settings.next_window(_next_day(settings, now))
        return app, Next(
            f"Waiting: {merged_today} automatic merge(s) today ({day}), the most "
            f"`max_merges_per_day` allows; next look {when(tomorrow or now + 86400)}.",
            tomorrow or now + 86400,
        )
    base = await forge.branch_sha(repo, pull.base_branch)
    required = await forge.required_checks(repo, pull.base_branch)
    if base is not None and base != app.base_sha:
        try:
            await forge.update_branch(repo, number, pull.head_sha)
        except MergeRefused as exc:
            return replace(app, state="blocked"), Next(
                f"Not merged: the base branch moved ({app.base_sha[:7]} → {base[:7]}) and the "
                f"branch could not be updated ({exc}); a person decides."
            )
        return replace(app, base_sha=base, waiting_since=now), Next(
            f"The base branch moved ({app.base_sha[:7]} → {base[:7]}): the branch was updated; "
            "its checks run again before any merge.",
            now + POLL_S,
        )
    names = tuple(dict.fromkeys((*CHECK_NAMES, *required.contexts)))
    sources = " and ".join(("the bot's own checks", *required.sources))
    states = {s.name: s for s in await forge.check_states(repo, pull.head_sha)}
    older = {
        s.name: s
        for head in app.heads
        if head != pull.head_sha
        for s in await forge.check_states(repo, head)
    }
    verdicts = [
        _verdict(
            name, states.get(name), older.get(name), no_policies_ok=name not in required.contexts
        )
        for name in names
    ]
    refused = [v for v in verdicts if v[1] == "refused"]
    waiting = [v for v in verdicts if v[1] == "waiting"]
    if refused:
        return replace(app, state="blocked"), Next(
            f"Not merged: required check {', '.join(text for text, _ in refused)} on "
            f"{pull.head_sha[:7]}; a person decides."
        )
    if waiting:
        if now - app.waiting_since > CHECK_WAIT_S:
            return replace(app, state="blocked"), Next(
                f"Not merged: after {CHECK_WAIT_S / 3600:.0f} h, required check "
                f"{', '.join(text for text, _ in waiting)} on {pull.head_sha[:7]}."
            )
        return app, Next(
            f"Waiting for required check {', '.join(text for text, _ in waiting)} on "
            f"{pull.head_sha[:7]} ({len(names)} required, from {sources}).",
            now + POLL_S,
        )
    title = f"{pull_title(app)} (#{number})"
    message = (
        f"Merged automatically by Flujo: tier {app.tier} ({app.reason}).\n"
        f"Required checks passed on {pull.head_sha}: {', '.join(names)}.\n\n"
        f"Flujo-Suggestion: {app.suggestion}\nFlujo-Auto-Apply: {app.tier}"
        + ("\nFlujo-Baked: passed" if app.baked else "")
    )
    try:
        merged = await forge.merge(repo, number, pull.head_sha, title, message)
    except MergeRefused as exc:
        if "modified" in str(exc).lower() or "out of date" in str(exc).lower():
            return app, Next(
                f"Waiting: GitHub refused the merge ({exc}); looking again.", now + POLL_S
            )
        return replace(app, state="blocked"), Next(f"Not merged: GitHub refused ({exc}).")
    app = replace(app, state="merged", merged_sha=merged, merged_at=now, automatic=True)
    if revert:
        app = replace(app, state="closed")
        await apps.save(app, now)
        return app, Next(
            f"Revert merged automatically at {when(now)} as {merged[:7]}; all {len(names)} "
            f"required checks passed on {pull.head_sha[:7]} ({', '.join(names)})."
        )
    await apps.save(app, now, merged_day=day)
    return app, Next(
        f"Merged automatically at {when(now)} as {merged[:7]}: tier {app.tier}; all "
        f"{len(names)} required checks passed on {pull.head_sha[:7]} ({', '.join(names)}; "
        f"from {sources}). A watch of live runs follows for "
        f"{settings.watch / 3600:g} h.",
        now + min(WATCH_POLL_S, settings.watch),
        "watch",
    )


async def show_story(forge: Forge, app: Application) -> None:
    """Every decision so far as the summary of the `flujo/auto-apply` check run on the
    pull request's head (neutral: it never blocks a merge itself)."""
    branch_sha = getattr(forge, "branch_sha", None)
    sha = await branch_sha(app.repo, app.branch) if branch_sha is not None else None
    if sha is None:
        return
    what = "Revert" if app.revert_of is not None else f"Tier {app.tier}"
    title = f"{what}: {_TITLES.get(app.state, app.state)}"
    if app.revert_of is not None and app.merged_sha is not None:
        title = f"{what}: merged automatically"
    summary = "\n".join(f"{i}. {line}" for i, line in enumerate(app.log[-50:], 1))
    ref = await forge.queue_check(app.repo, sha, STORY_CHECK)
    await forge.complete_check(app.repo, ref, CheckOutput(STORY_CHECK, "neutral", title, summary))


async def _still_baked(forge: Any, app: Application, head: str) -> bool:
    """Whether the spec on `head` is the candidate whose bake-in passed."""
    import hashlib

    baked = (app.bake or {}).get("candidate")
    read_files = getattr(forge, "read_files", None)
    if not baked or read_files is None:
        return False  # a check that could not judge never passes
    found = await read_files(app.repo, head, [app.spec])
    return app.spec in found and hashlib.sha256(found[app.spec]).hexdigest() == baked


def _verdict(
    name: str, state: CheckState | None, older: CheckState | None, *, no_policies_ok: bool
) -> tuple[str, str]:
    """(`name` and what is wrong, `ok` | `waiting` | `refused`). The bot's own
    `flujo/policy` may be neutral (the spec has no policies) unless the branch requires it:
    a required check that is neutral or skipped never passes."""
    if state is None:
        if older is not None:
            return f"`{name}` stale (it ran on {older.sha[:7]}, not on the head)", "waiting"
        return f"`{name}` missing", "waiting"
    if state.status != "completed":
        return f"`{name}` {state.status}", "waiting"
    if state.conclusion == "success":
        return f"`{name}`", "ok"
    if no_policies_ok and name == POLICY and state.conclusion == "neutral":
        return f"`{name}` (no policies)", "ok"
    if state.conclusion in ("skipped", "neutral"):
        return f"`{name}` {state.conclusion} (not passed)", "refused"
    return f"`{name}` {state.conclusion}", "refused"


def pull_title(app: Application) -> str:
    if app.revert_of is not None:
        return f"flujo: revert suggestion {app.suggestion} on {app.spec}"
    return f"flujo: apply suggestion {app.suggestion} to {app.spec}"


def _next_day(settings: AutoApply, now: float) -> float:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(settings.time_zone)
    moment = datetime.fromtimestamp(now, zone)
    midnight = datetime.combine(moment.date(), datetime.min.time(), zone)
    return (midnight.timestamp() + 86400) + 1


@dataclass(frozen=True)
class ScheduledStep:
    """A pending auto-apply step, for `flujo bot jobs --scheduled`."""

    due: float
    kind: str
    """`merge` (waiting for checks or a window), `bake` (a staged change's next look) or
    `watch` (after a merge)."""
    repo: str
    number: int
    tier: str
    state: str
    last: str
    """The last decision, as said on the pull request."""

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


async def scheduled_steps(jobs: Iterable[Job], apps: Applications) -> list[ScheduledStep]:
    """Of the queued and running `jobs` (either queue's), the auto-apply steps whose
    application still waits for them, soonest first."""
    found: dict[tuple[str, int, str], ScheduledStep] = {}
    for queued in jobs:
        if queued.event != AUTO_APPLY_EVENT:
            continue
        name, _, rest = queued.delivery_id.removeprefix("auto-apply:").rpartition("#")
        number_text, kind = rest.split(":")[:2]
        app = await apps.get(name, int(number_text))
        live = {
            "merge": ("waiting",),
            "watch": ("merged", "watching"),
            "bake": ("baking",),
        }.get(kind, ())
        if app is None or app.state not in live:
            continue
        step = ScheduledStep(
            queued.run_after,
            kind,
            name,
            app.number,
            app.tier,
            app.state,
            app.log[-1].splitlines()[0] if app.log else "",
        )
        key = (name, app.number, kind)
        if key not in found or found[key].due > step.due:
            found[key] = step
    return sorted(found.values(), key=lambda s: s.due)
