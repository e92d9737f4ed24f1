"""From a suggestion to what is proposed for review: its branch, pull request and commit.

`proposal_for(suggestion, before, after)` is the one place that names a suggestion's
branch, writes its pull request's title and body and its commit message; the GitHub App
(`flujo.bot.suggestion_prs`) and `flujo suggest --create-pr` both use it, so a
suggestion proposed either way looks the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.spec.figures import money

if TYPE_CHECKING:
    from flujo.learn.suggest import Suggestion

BRANCH_PREFIX = "flujo/suggest/"
LABEL = "flujo"


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
    quality: str = ""
    """The "Quality evidence" sentence."""
    why: str = ""
    step: str = ""
    """What the changed step does and what its output decides."""
    watch_for: str = ""


@dataclass(frozen=True, slots=True)
class Proposal:
    """A suggestion as proposed: a branch with one commit, and a pull request from it."""

    branch: str
    title: str
    body: str
    commit_message: str
    labels: tuple[str, ...]
    view: SuggestionView
    """Everything the reviewer sees (the suggestion page is made from it)."""


def proposal_for(
    suggestion: Suggestion, before_text: str, after_text: str, details_url: str | None = None
) -> Proposal:
    """The proposal of `suggestion` for the spec `before_text`, patched to `after_text`;
    the body links `details_url` (the suggestion's page) when something had to be cut."""
    view = review(suggestion, before_text, after_text, details_url)
    return Proposal(
        branch=branch_for(suggestion),
        title=view.title,
        body=view.body,
        commit_message=commit_message(view.title, suggestion),
        labels=(LABEL,),
        view=view,
    )


def commit_message(title: str, suggestion: Suggestion) -> str:
    """The commit's message: the title, the headline, and a trailer naming the suggestion."""
    return f"{title}\n\n{suggestion.headline}\n\nFlujo-Suggestion: {suggestion.id}"


def branch_for(suggestion: Suggestion) -> str:
    """The branch of a suggestion, named by its id: one per opportunity (spec, kind, place),
    so a newer patch for the same opportunity updates its open pull request instead of
    adding one."""
    return BRANCH_PREFIX + suggestion.id


def review(
    suggestion: Suggestion, before: str, after: str, details_url: str | None = None
) -> SuggestionView:
    """Everything a reviewer sees of a suggestion, from the spec before and after it."""
    from flujo.learn.evidence_table import evidence_rows
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
    if suggestion.kind == "stable_jit_plan":
        title = (
            f"flujo: Write the plan of jit step {suggestion.opportunity.step} into the spec "
            f"as steps ({suggestion.opportunity.facts['plan']})"
        )
    verification = suggestion.verification
    mode = {"replay": "recorded model calls replayed", "mock": "mocks only"}.get(
        verification.tests_mode, verification.tests_mode
    )
    how = {t.name: t for t in verification.tests}
    tests = [
        EmbeddedTest(
            name,
            passed,
            ("" if passed else "fails with this change")
            + (f"{'; ' if not passed else ''}{_how(how[name])}" if name in how else ""),
            wiring_only=name in how and how[name].evidence == "wiring only",
        )
        for name, passed in verification.outcomes
    ]
    if not tests and verification.tests_passed:
        tests = [EmbeddedTest(f"{verification.tests_passed} embedded test(s) ({mode})", True)]
    evidence = Evidence(
        runs=int(suggestion.evidence.get("runs", 0) or 0),
        rows=[EvidenceRow(label, value, "") for label, value in evidence_rows(suggestion.evidence)],
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
            why=suggestion.why,
            quality=suggestion.quality_evidence.get("summary"),
            basis=suggestion.basis or None,
            where=_where(suggestion, old),
            step=suggestion.step_summary or None,
            watch_for=suggestion.watch_for or None,
            suggestion_id=suggestion.id,
            spec_path=suggestion.spec,
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
        suggestion.quality_evidence.get("summary", ""),
        suggestion.why,
        suggestion.step_summary,
        suggestion.watch_for,
    )


def _how(test: Any) -> str:
    """How a test ran the changed steps, e.g. "classify: replay"."""
    return ", ".join(f"{step}: {how}" for step, how in test.changed_steps)


def _where(suggestion: Suggestion, old: Any) -> str:
    """The file and line, and each changed value: old → new."""
    from flujo.spec.paths import from_pointer

    line = f" line {suggestion.line}" if suggestion.line else ""
    if suggestion.kind == "stable_jit_plan":
        steps = suggestion.opportunity.facts["steps"]
        written = ", ".join(f"`{s['name']}` (`uses: {s['uses']}`)" for s in steps)
        return (
            f"`{suggestion.spec}`{line}: jit step `{suggestion.opportunity.step}` becomes "
            f"{len(steps)} ordinary step{'s' * (len(steps) != 1)}, in this order: {written}; "
            f"the last keeps its name, so what reads `steps.{suggestion.opportunity.step}"
            ".output` reads the plan's output as before"
        )
    changes = []
    for op in suggestion.patch:
        pointer = str(op.get("path", ""))
        new = op.get("value")
        try:
            before = _value(old.model_dump(by_alias=True), from_pointer(pointer))
        except (KeyError, IndexError, ValueError, TypeError):
            before = None
        shown_old = "unset" if before is None else _short(before)
        shown_new = "removed" if op.get("op") == "remove" else _short(new)
        changes.append(f"`{pointer}` {shown_old} → {shown_new}")
    steps = []
    for name in suggestion.verification.changed_steps:
        try:
            described = old.step(name).description
        except KeyError:
            continue
        steps.append(f"`{name}`" + (f" ({described.strip()})" if described else ""))
    affects = f"; affects step{'s' * (len(steps) != 1)} {', '.join(steps)}" if steps else ""
    return f"`{suggestion.spec}`{line}: " + "; ".join(changes) + affects


def _value(data: Any, yaml_path: str) -> Any:
    from flujo.spec.paths import split

    for segment in split(yaml_path):
        data = data[segment]
    return data


def _short(value: Any) -> str:
    import json

    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:79] + "…"


def _savings(suggestion: Suggestion) -> str | None:
    from flujo.engine.pricing import table_version

    per_run = suggestion.estimate.usd_per_run
    return f"~{money(per_run)}/run (prices {table_version()})" if per_run > 0 else None
