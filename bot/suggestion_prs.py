"""Suggestion pull requests: telemetry in, ranked suggestions out, one pull request each.

After telemetry arrives for a repository, a `flujo_suggest` job is queued (at most one
per repository per interval: the delivery id names the interval). The job reads the
default branch's specs, asks `flujo.learn.suggest` for verified suggestions, and
proposes each as a branch `flujo/suggest/<id>` with one commit that changes only the
patched lines, and a pull request whose body shows the change (bullets, before/after
Mermaid, evidence, tests, the JSON Patch). Re-running never duplicates a pull request;
at most `max_open` are open per repository. Closing one without merging records the
patch as rejected (it is never proposed again and becomes a negative example for the
Prompt Guard); merging records it as accepted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from flujo.bot.forge import Forge, Proposal, PullRef
from flujo.bot.pacing import Waiting
from flujo.bot.queue import Delivery
from flujo.bot.snapshot import DEFAULT_LIMITS, Limits, TooLarge, snapshot
from flujo.bot.suggestion_codec import Change, Cycle
from flujo.learn.proposal import BRANCH_PREFIX as BRANCH_PREFIX  # also the routers'

if TYPE_CHECKING:
    from flujo.bot.evaluate import Evaluator
    from flujo.bot.state import ProposalRecord
    from flujo.bot.suggestion_cycle import Evaluation
    from flujo.engine.store import RunStore
    from flujo.learn.tiers import TierDecision
    from flujo.spec.autoapply import AutoApply
    from flujo.spec.dashboard_config import Dashboard
    from flujo.spec.registry import StepRegistry

log = logging.getLogger("flujo.bot.suggestion_prs")

SUGGEST_EVENT = "flujo_suggest"


def suggest_delivery(
    repo: str, installation: int, interval_s: float, now: float, delay_s: float = 0.0
) -> Delivery:
    """The queued job for a repository's suggestion cycle; one id per interval, so
    telemetry arriving again within it is deduplicated (the rate limit). It runs `delay_s`
    after the first telemetry of the interval, so that it sees the whole batch."""
    bucket = int(now // max(1.0, interval_s))
    body = json.dumps(
        {"repository": {"full_name": repo}, "installation": {"id": installation}}
    ).encode()
    return Delivery(f"suggest:{repo}:{bucket}", SUGGEST_EVENT, body, now, now + delay_s)


def wake_delivery(repo: str, installation: int, at: float, now: float, why: str) -> Delivery:
    """A suggestion cycle due at `at`: for suggestions that wait (a schedule's next opening,
    the hourly limit's end, a suggestion pull request closed). `why` names it, so the same
    wake-up is queued once."""
    body = json.dumps(
        {"repository": {"full_name": repo}, "installation": {"id": installation}}
    ).encode()
    return Delivery(f"suggest:{repo}:wake:{why}", SUGGEST_EVENT, body, now, at)


SUGGESTIONS_CHECK = "flujo/suggestions"


@dataclass(frozen=True, slots=True)
class Proposed:
    change: Change
    pull: PullRef
    decision: TierDecision | None = None
    """Its risk tier and what keeps it from being applied automatically."""
    settings: AutoApply | None = None
    """The repository's `auto_apply:` settings at the default branch's head."""
    base_sha: str = ""
    spec_before: str = ""
    spec_after: str = ""


@dataclass(frozen=True, slots=True)
class CycleOutcome:
    """What a suggestion cycle did: pull requests proposed (or kept), and what it says."""

    proposed: list[Proposed]
    cycle: Cycle | None
    """None when the cycle could not finish (`failure` says why)."""
    failure: str | None = None
    waiting: tuple[Waiting, ...] = ()
    """Verified suggestions not proposed, and why (kept by `BotState.set_waiting`, shown on
    the dashboard issue): below the agreement floor, or held back by the repository's
    `pull_requests:` settings."""
    dashboard: Dashboard | None = None
    """The repository's `dashboard:` settings at the default branch's head (None: unread)."""
    held: list[Waiting] = field(default_factory=list)
    """Suggestions held back by the repository's `pull_requests:` settings, and why."""
    wake_at: float | None = None
    """When a later cycle may open one of them (None: no time is known)."""


async def propose_suggestions(
    forge: Forge,
    repo: str,
    *,
    store: RunStore,
    max_open: int = 3,
    limits: Limits = DEFAULT_LIMITS,
    page_url: Callable[[str], str | None] | None = None,
    registry: StepRegistry | None = None,
    evaluator: Evaluator | None = None,
    evaluation: Evaluation | None = None,
    no_evaluation: str = "",
    report: bool = False,
    wanted: tuple[str, ...] = (),
    now: float | None = None,
    opened: Sequence[float] = (),
    roi_url: str | None = None,
) -> CycleOutcome:
    """Propose the default branch's verified suggestions, best first, as pull requests.

    The cycle itself (reading specs and telemetry, verifying, measuring, wording) runs in
    `evaluator` (a confined child for the App; in process by default); this function only
    talks to the forge. `page_url(suggestion_id)` is where the suggestion's page is served
    (linked from the body); `registry` is the skill allow-list of the in-process default;
    `evaluation` lets the cycle measure suggestions with `flujo eval` (else `no_evaluation`
    says why not). With `report`, the outcome is also shown as the `flujo/suggestions`
    check of the default branch's head (a cycle that overran or crashed says so there).
    With `wanted` (suggestion ids a person asked for), only those are proposed, beyond
    the pacing settings and the agreement floor.

    The repository's `pull_requests:` settings pace new pull requests (`bot.pacing`): at
    `now` (default: the wall clock), given when the bot `opened` recent ones; the outcome
    says which suggestions wait and why. `roi_url` (the realised-ROI page) is linked from
    the check.
    """
    from flujo.bot.isolation import IsolationFailed
    from flujo.bot.store_extract import cycle_store
    from flujo.bot.suggestion_cycle import CycleRequest, page_placeholder
    from flujo.spec.config import matching

    base, sha = await forge.default_head(repo)
    done: list[Proposed] = []
    if evaluator is None:
        from flujo.bot.evaluate import InProcess
        from flujo.spec.registry import StepRegistry

        evaluator = InProcess(registry or StepRegistry())
    placeholder = page_placeholder(page_url("0" * 12) if page_url is not None else None)
    try:
        async with snapshot(forge, repo, sha, evaluator, limits) as snap:
            from flujo.bot.evaluate import read_config

            # read here with the bounded parser; the cycle only applies the tier rules
            config = read_config(snap.root, snap.files)[0]
            settings, dashboard = config.auto_apply, config.dashboard
            pacing = config.pull_requests
            specs = [p for p in matching(snap.files, snap.patterns) if "/cassettes/" not in p]
            green = await default_branch_green(forge, repo, sha)
            # the cycle reads (and may write) the store as a file: on PostgreSQL a copy of
            # the repository's, merged back afterwards
            async with cycle_store(store, limits.folder) as location:
                request = CycleRequest(
                    tuple(specs),
                    location,
                    placeholder,
                    evaluation,
                    no_evaluation,
                    auto_apply=settings.model_dump(mode="json"),
                    default_branch_green=green,
                    wanted=wanted,
                    group=pacing.group,
                )
                cycle = await evaluator.suggest(snap.root, request)
    except (IsolationFailed, TooLarge) as exc:
        failure = exc.reason if isinstance(exc, IsolationFailed) else str(exc)
        log.warning("%s: the suggestion cycle %s", repo, failure)
        if report:
            await _report(forge, repo, sha, CycleOutcome([], None, failure))
        return CycleOutcome([], None, failure)
    for note in cycle.notes:
        log.info("%s: %s", repo, note)
    from flujo.bot.pacing import Plan, plan

    open_now = {p.branch for p in await forge.proposals(repo, BRANCH_PREFIX)}
    waiting = [
        Waiting.not_proposed(n.id, n.spec, n.title, n.reason, n.patch) for n in cycle.not_proposed
    ]
    if wanted:  # a person asked for these: no pacing setting holds them back
        paced = Plan(propose=[c for c in cycle.changes if c.id in wanted])
    else:
        paced = plan(
            cycle.changes,
            open_branches=open_now,
            opened=opened,
            settings=pacing,
            max_open_cap=max_open,
            now=time.time() if now is None else now,
        )
    patches = {c.id: c.patch for c in cycle.changes}
    held = [replace(w, patch=patches[w.suggestion]) for w in paced.waiting]
    for each in held:
        log.info("%s: %s waits: %s", repo, each.suggestion, each.detail)
    waiting += held
    for change in paced.propose:
        change = _linked(change, placeholder, page_url)
        pull = await forge.propose(
            repo,
            Proposal(
                branch=change.branch,
                files={change.spec: change.after.encode("utf-8")},
                message=change.commit_message,
                title=change.title,
                body=change.body,
                labels=change.labels,
                base=base,
            ),
        )
        done.append(
            Proposed(
                change,
                pull,
                tier_decision(change),
                settings,
                sha,
                change.spec_before,
                change.spec_after,
            )
        )
    outcome = CycleOutcome(
        done,
        cycle,
        waiting=tuple(waiting),
        dashboard=dashboard,
        held=held,
        wake_at=paced.wake_at,
    )
    if report:
        await _report(forge, repo, sha, outcome, roi_url)
    return outcome


def tier_decision(change: Change) -> TierDecision | None:
    """The change's tier as the cycle decided it by rules (`flujo.learn.tiers`)."""
    from flujo.learn.tiers import Judged, TierDecision

    found = change.decision
    if found is None:
        return None
    judged = tuple(Judged(j.key, j.tier, j.reason) for j in found.changes)  # type: ignore[arg-type]
    return TierDecision(found.tier, found.reason, judged, tuple(found.never))  # type: ignore[arg-type]


def _linked(
    change: Change, placeholder: str | None, page_url: Callable[[str], str | None] | None
) -> Change:
    """The change with its page's real link in place of the cycle's placeholder."""
    url = page_url(change.id) if page_url is not None else None
    if placeholder is None or url is None:
        return change
    view = change.view.model_copy(update={"body": change.view.body.replace(placeholder, url)})
    return change.model_copy(update={"body": change.body.replace(placeholder, url), "view": view})


async def _report(
    forge: Forge, repo: str, sha: str, outcome: CycleOutcome, roi_url: str | None = None
) -> None:
    """The cycle's outcome as the `flujo/suggestions` check of the default branch's head."""
    from flujo.bot.forge import CheckOutput
    from flujo.templates.fit import fit

    ref = await forge.queue_check(repo, sha, SUGGESTIONS_CHECK)
    if outcome.cycle is None:
        output = CheckOutput(
            SUGGESTIONS_CHECK,
            "failure",
            "Suggestions: the cycle could not finish",
            f"The suggestion cycle {outcome.failure}. It was stopped; nothing was proposed. "
            "The bot and this repository's checks are not affected; the next cycle runs "
            "when telemetry arrives again.",
        )
    else:
        output = CheckOutput(
            SUGGESTIONS_CHECK,
            "neutral",
            f"Suggestions: {len(outcome.proposed)} proposed, "
            f"{len(outcome.cycle.not_proposed)} not proposed"
            + (f", {len(outcome.held)} waiting" if outcome.held else ""),
            fit(_summary(outcome, outcome.cycle, roi_url)),
        )
    await forge.start_check(repo, ref)
    await forge.complete_check(repo, ref, output)


def _summary(outcome: CycleOutcome, cycle: Cycle, roi_url: str | None = None) -> str:
    from flujo.spec.figures import money
    from flujo.templates.pr_body import escape as inert

    lines = []
    if outcome.proposed:
        lines.append("**Proposed**\n")
        lines += [
            f"- #{p.pull.number} {inert(p.change.title)}: {inert(p.change.quality or '-')}"
            for p in outcome.proposed
        ]
    if cycle.not_proposed:
        lines.append("\n**Not proposed**\n")
        lines += [
            f"- {inert(n.title)} (`{inert(n.spec)}`): {inert(n.reason)}" for n in cycle.not_proposed
        ]
    if outcome.held:
        lines.append("\n**Waiting** (the repository's `pull_requests:` settings)\n")
        lines += [
            f"- {inert(w.title)} (`{inert(w.spec)}`): {inert(w.detail)}" for w in outcome.held
        ]
    if cycle.eval_examples:
        lines.append(
            f"\nEvaluation: {cycle.eval_examples} captured example(s) run live against the "
            f"evaluation provider, {money(cycle.eval_spent_usd)} spent."
        )
    if roi_url:
        lines.append(
            f"\nWhat merged suggestions realised against what they promised: [the ROI page]"
            f"({roi_url}) (this repository only; the link is its key)."
        )
    lines.append("\n**Specs**\n")
    lines += [f"- {inert(note)}" for note in cycle.notes] or ["- no specs on the default branch"]
    return "\n".join(lines)


async def default_branch_green(forge: Forge, repo: str, sha: str) -> bool | None:
    """Whether the default branch's head passed `flujo/test` (success) and `flujo/policy`
    (success, or neutral: no policies); None when the forge cannot tell or they have not
    run (which blocks auto-apply like a failure)."""
    from flujo.bot.verdicts import POLICY, TEST

    check_states = getattr(forge, "check_states", None)
    if check_states is None:
        return None
    states = {s.name: s for s in await check_states(repo, sha)}
    test, policy = states.get(TEST), states.get(POLICY)
    if test is None or policy is None or {test.status, policy.status} != {"completed"}:
        return None
    return test.conclusion == "success" and policy.conclusion in ("success", "neutral")


async def record_outcome(
    store: RunStore,
    proposal: ProposalRecord,
    *,
    merged: bool,
    actor: str,
    comment: str | None,
) -> None:
    """A suggestion pull request was closed: remember whether people wanted it."""
    import asyncio

    from flujo.learn.feedback import record_acceptance, record_rejection

    if merged:
        await asyncio.to_thread(record_acceptance, store, proposal.spec, proposal.patch, actor)
    else:
        reason = comment or "closed without merging"
        await asyncio.to_thread(
            record_rejection, store, proposal.spec, proposal.patch, reason, actor
        )
