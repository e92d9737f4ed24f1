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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.bot.forge import Forge, Proposal, PullRef
from flujo.bot.queue import Delivery
from flujo.bot.snapshot import DEFAULT_LIMITS, Limits, snapshot
from flujo.learn.proposal import BRANCH_PREFIX as BRANCH_PREFIX  # also the routers'
from flujo.learn.proposal import SuggestionView, branch_for, proposal_for

if TYPE_CHECKING:
    from flujo.bot.evaluate import Evaluator
    from flujo.bot.state import ProposalRecord
    from flujo.engine.store import RunStore
    from flujo.learn.suggest import Suggestion
    from flujo.learn.tiers import TierDecision
    from flujo.spec.autoapply import AutoApply
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


@dataclass(frozen=True, slots=True)
class Proposed:
    suggestion: Suggestion
    view: SuggestionView
    pull: PullRef
    decision: TierDecision | None = None
    """Its risk tier and what keeps it from being applied automatically."""
    settings: AutoApply | None = None
    """The repository's `auto_apply:` settings at the default branch's head."""
    base_sha: str = ""
    spec_before: str = ""
    spec_after: str = ""


async def propose_suggestions(
    forge: Forge,
    repo: str,
    *,
    store: RunStore,
    max_open: int = 3,
    limits: Limits = DEFAULT_LIMITS,
    agent: Any = None,
    page_url: Callable[[str], str | None] | None = None,
    registry: StepRegistry | None = None,
    evaluator: Evaluator | None = None,
) -> list[Proposed]:
    """Propose the default branch's verified suggestions, best first, as pull requests.

    `page_url(suggestion_id)` is where the suggestion's page is served (linked from the body);
    `registry` is the bot's skill allow-list (a repository's own config cannot widen it);
    `evaluator` reads the repository's config to decide what to fetch (in process by default).
    """
    from flujo.learn.suggest import suggest
    from flujo.spec.config import matching
    from flujo.spec.edit import apply_patch
    from flujo.spec.errors import SpecError

    base, sha = await forge.default_head(repo)
    done: list[Proposed] = []
    if evaluator is None:
        from flujo.bot.evaluate import InProcess
        from flujo.spec.registry import StepRegistry

        evaluator = InProcess(registry or StepRegistry())
    async with snapshot(forge, repo, sha, evaluator, limits) as snap:
        from flujo.bot.evaluate import read_config
        from flujo.learn.tiers import decide_suggestion
        from flujo.spec.source import spec_sha256

        settings = read_config(snap.root, snap.files)[0].auto_apply
        green = await default_branch_green(forge, repo, sha)
        specs = [p for p in matching(snap.files, snap.patterns) if "/cassettes/" not in p]
        open_now = {p.branch for p in await forge.proposals(repo, BRANCH_PREFIX)}
        budget = max_open - len(open_now)
        for path in specs:
            try:
                report = await suggest(
                    snap.root / path, store, key=path, agent=agent, registry=registry
                )
            except (SpecError, OSError) as exc:  # the checks report broken specs
                log.info("%s: no suggestions for %s: %s", repo, path, str(exc).splitlines()[0])
                continue
            log.info(
                "%s: %s: %d run(s), %d opportunit(ies), %d suggestion(s), dropped: %s",
                repo,
                path,
                report.runs,
                report.opportunities,
                len(report.suggestions),
                ", ".join(f"{d.kind} ({d.reason}: {d.detail})" for d in report.dropped) or "none",
            )
            before = (snap.root / path).read_text(encoding="utf-8")
            for suggestion in report.suggestions:
                branch = branch_for(suggestion)
                if branch not in open_now and budget <= 0:
                    continue
                after = apply_patch(before, suggestion.patch, file=path)
                url = page_url(suggestion.id) if page_url is not None else None
                proposal = proposal_for(suggestion, before, after, url)
                pull = await forge.propose(
                    repo,
                    Proposal(
                        branch=proposal.branch,
                        files={path: after.encode("utf-8")},
                        message=proposal.commit_message,
                        title=proposal.title,
                        body=proposal.body,
                        labels=proposal.labels,
                        base=base,
                    ),
                )
                if branch not in open_now:
                    open_now.add(branch)
                    budget -= 1
                decision = decide_suggestion(
                    suggestion,
                    before,
                    after,
                    settings=settings,
                    spec_path=path,
                    default_branch_green=green,
                    files=[path],
                )
                done.append(
                    Proposed(
                        suggestion,
                        proposal.view,
                        pull,
                        decision,
                        settings,
                        sha,
                        spec_sha256(before.encode("utf-8")),
                        spec_sha256(after.encode("utf-8")),
                    )
                )
    return done


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
