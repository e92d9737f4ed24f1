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

if TYPE_CHECKING:
    from flujo.bot.evaluate import Evaluator
    from flujo.bot.state import ProposalRecord
    from flujo.engine.store import RunStore
    from flujo.learn.suggest import Suggestion
    from flujo.spec.registry import StepRegistry

log = logging.getLogger("flujo.bot.suggestion_prs")

SUGGEST_EVENT = "flujo_suggest"
BRANCH_PREFIX = "flujo/suggest/"
LABEL = "flujo"


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


def branch_for(suggestion: Suggestion) -> str:
    """The branch of a suggestion: one per opportunity (spec, kind, place), so a newer
    patch for the same opportunity updates its open pull request instead of adding one."""
    import hashlib

    key = f"{suggestion.spec}\n{suggestion.kind}\n{suggestion.yaml_path}"
    return BRANCH_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Proposed:
    suggestion: Suggestion
    view: SuggestionView
    pull: PullRef


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
                view = review(suggestion, before, after, url)
                title, body = view.title, view.body
                pull = await forge.propose(
                    repo,
                    Proposal(
                        branch=branch,
                        files={path: after.encode("utf-8")},
                        message=f"{title}\n\n{suggestion.headline}\n\n"
                        f"Flujo-Suggestion: {suggestion.id}",
                        title=title,
                        body=body,
                        labels=(LABEL,),
                        base=base,
                    ),
                )
                if branch not in open_now:
                    open_now.add(branch)
                    budget -= 1
                done.append(Proposed(suggestion, view, pull))
    return done


@dataclass(frozen=True, slots=True)
class SuggestionView:
    """What a person reviews: the pull request's title and body, and the page's parts."""

    id: str
    spec: str
    title: str
    headline: str
    risk: str
    bullets: list[str]
    before: str
    """Mermaid flowchart of the spec before the change."""
    after: str
    diff: str
    """Unified diff of the YAML."""
    body: str
    """The pull request body (GitHub Markdown)."""


def review(
    suggestion: Suggestion, before: str, after: str, details_url: str | None = None
) -> SuggestionView:
    """Everything a reviewer sees of a suggestion, from the spec before and after it."""
    from flujo.spec.model import Pipeline
    from flujo.spec.review.bullets import bullets, plain
    from flujo.spec.review.diff import diff_specs
    from flujo.spec.review.mermaid import flowchart
    from flujo.templates.pr_body import EmbeddedTest, Evidence, EvidenceRow, PRBody, render_pr_body

    old, new = Pipeline.from_yaml(before), Pipeline.from_yaml(after)
    change = diff_specs(old, new)
    lines = bullets(change)
    title = "flujo: " + (
        plain(lines[0], emoji=False) if lines else suggestion.kind.replace("_", " ")
    )
    verification = suggestion.verification
    mode = {"replay": "recorded model calls replayed", "mock": "mocks only"}.get(
        verification.tests_mode, verification.tests_mode
    )
    tests = [
        EmbeddedTest(name, passed, "" if passed else "fails with this change")
        for name, passed in verification.outcomes
    ] or [EmbeddedTest(f"{verification.tests_passed} embedded test(s) ({mode})", True)]
    evidence = Evidence(
        runs=int(suggestion.evidence.get("runs", 0) or 0),
        rows=[
            EvidenceRow(_metric(str(k)), _fmt(str(k), v), "")
            for k, v in suggestion.evidence.items()
            if k != "runs" and not isinstance(v, (dict, list))
        ],
    )
    chart_before = flowchart(old, change.marks("old"))
    chart_after = flowchart(new, change.marks("new"))
    body = render_pr_body(
        PRBody(
            headline=suggestion.headline,
            risk=suggestion.risk,  # type: ignore[arg-type]
            bullets=lines,
            patch=suggestion.patch,
            savings=_savings(suggestion),
            before_diagram=chart_before,
            after_diagram=chart_after,
            evidence=evidence,
            tests=tests,
            details_url=details_url,
        )
    )
    return SuggestionView(
        suggestion.id,
        suggestion.spec,
        title[:200],
        suggestion.headline,
        suggestion.risk,
        lines,
        chart_before,
        chart_after,
        suggestion.diff,
        body,
    )


def pull_request_text(suggestion: Suggestion, before: str, after: str) -> tuple[str, str]:
    """Title and body of a suggestion's pull request."""
    view = review(suggestion, before, after)
    return view.title, view.body


def _savings(suggestion: Suggestion) -> str | None:
    per_run = suggestion.estimate.usd_per_run
    return f"~${per_run:.4f}/run" if per_run > 0 else None


def _metric(key: str) -> str:
    """An evidence key as words: `cost_usd_per_run` -> `cost per run`."""
    words = key.removesuffix("_s").replace("_usd", "").replace("_", " ")
    return words[:1].upper() + words[1:]


def _fmt(key: str, value: Any) -> str:
    """An evidence value with its unit, read from its key (`_share`, `_usd`, `_s`)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if "share" in key:
        return f"{value:.0%}"
    if "usd" in key:
        return f"${value:.4g}"
    if key.endswith("_s"):
        return f"{value:.3g} s"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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
