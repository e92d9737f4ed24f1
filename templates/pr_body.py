"""The body of a suggestion pull request, from `pr_body.md.j2`.

`render_pr_body(PRBody(...))` gives GitHub Markdown: headline (what, savings, risk), the
change bullets, before/after Mermaid charts, evidence, test results with the patch
applied, the JSON Patch (collapsed) and how to reject. The result always fits GitHub's
limit: the largest sections shrink first (diagrams, then the patch, tests, evidence,
bullets), and every code fence stays closed. Free text is escaped as Markdown; `bullets`
and diagrams are used as given (see `flujo.spec.review.bullets`, `flujo.spec.review.mermaid`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import jinja2

from flujo.templates.environment import product_environment
from flujo.templates.fit import GITHUB_TEXT_LIMIT, Shrink, fit, shrink, size

# Mermaid's defaults (maxTextSize, maxEdges): GitHub shows an error instead of larger charts.
MERMAID_MAX_TEXT = 50_000
MERMAID_MAX_EDGES = 500
Risk = Literal["low", "medium", "high"]
REJECT = "Close this PR; Flujo will not suggest it again."
_RISK_ICON: dict[str, str] = {"low": "🟢", "medium": "🟡", "high": "🔴"}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~$])")


@dataclass(frozen=True)
class EvidenceRow:
    """One measured metric, e.g. `EvidenceRow("p95 latency", "2.1 s", "1.4 s")`."""

    metric: str
    before: str
    after: str


@dataclass(frozen=True)
class Evidence:
    """What the suggestion is based on: `runs` recorded runs (the sample), their metrics."""

    runs: int
    rows: Sequence[EvidenceRow] = ()
    window: str = ""  # e.g. "last 7 days"


@dataclass(frozen=True)
class EmbeddedTest:
    """One embedded test run against the patched spec."""

    name: str
    passed: bool
    detail: str = ""
    wiring_only: bool = False
    """The changed steps were only mocked or faked in this test: it shows the wiring works,
    not that the new configuration answers well."""


@dataclass(frozen=True)
class PRBody:
    """Everything a suggestion PR body shows."""

    headline: str
    risk: Risk
    bullets: Sequence[str]
    patch: Sequence[Mapping[str, Any]]
    savings: str | None = None  # e.g. "~$0.10/run"
    before_diagram: str | None = None
    after_diagram: str | None = None
    evidence: Evidence | None = None
    tests: Sequence[EmbeddedTest] = ()
    reject: str = REJECT
    details_url: str | None = None  # the full suggestion page, named when something is cut
    why: str | None = None
    """The finding's "Why" sentence, shown under the headline."""
    quality: str | None = None
    """The "Quality evidence" sentence: measured agreement, or "not measured: …"."""
    basis: str | None = None
    """Where the monthly figures come from (runs counted, observed rate)."""
    where: str | None = None
    """The file, line, and old and new values, e.g. "`flows/t.yaml` line 4: a → b"."""
    step: str | None = None
    """What the changed step does and what its output decides."""
    watch_for: str | None = None
    """The concrete failure a reviewer should look for."""
    suggestion_id: str | None = None
    """The suggestion's id (also its branch's name and what `flujo suggest` shows)."""
    spec_path: str | None = None
    """The spec's path in the repository (for the local reject command)."""


def render_pr_body(body: PRBody, *, limit: int = GITHUB_TEXT_LIMIT) -> str:
    """GitHub Markdown for `body`, at most `limit` UTF-8 bytes (see `flujo.templates.fit`)."""
    plan = _Plan(body)

    def step(cut: Callable[[int], bool]) -> Shrink:
        return lambda excess: plan.render() if cut(excess) else None

    cuts = (plan.drop_diagram, plan.cut_patch, plan.cut_tests, plan.cut_evidence, plan.cut_bullets)
    text = shrink(plan.render(), [step(cut) for cut in cuts], limit=limit)
    if size(text) <= limit:
        return text
    # Only huge free text (headline, reject) can get here: keep the essentials.
    note = f"The full suggestion did not fit in a pull request body; see {plan.where}."
    minimal = (
        f"## {escape(body.headline, 200)}\n\n{note}\n\n"
        f"### Not convinced?\n{escape(body.reject, 500)}\n"
    )
    return fit(minimal, limit, marker="")


def escape(text: str, limit: int = 500) -> str:
    """Free text as one line of literal Markdown, at most `limit` characters."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _MD_SPECIAL.sub(r"\\\1", flat)


def fence_for(text: str) -> str:
    """A backtick fence longer than any backtick run inside `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _template() -> jinja2.Template:
    return product_environment(autoescape=False).get_template("pr_body.md.j2")


@dataclass
class _Diagram:
    text: str | None
    note: str = ""

    @property
    def fence(self) -> str:
        return fence_for(self.text or "")


@dataclass
class _Plan:
    """What to show; shrunk step by step until the body fits."""

    body: PRBody
    diagrams: list[tuple[str, _Diagram]] = field(default_factory=list)
    patch_lines: int | None = None  # None: the whole patch
    tests_shown: int | None = None
    evidence_shown: int | None = None
    bullets_shown: int | None = None

    def __post_init__(self) -> None:
        pairs = [("Before", self.body.before_diagram), ("After", self.body.after_diagram)]
        if self.body.before_diagram is not None and (
            self.body.before_diagram == self.body.after_diagram
        ):
            pairs = [("Before and after (the same)", self.body.before_diagram)]
        self.diagrams = [
            (title, _Diagram(text.strip("\n"))) for title, text in pairs if text is not None
        ]
        for _, diagram in self.diagrams:
            text = diagram.text or ""
            edges = len(re.findall(r"-->|-\.->|==>", text))
            if len(text) > MERMAID_MAX_TEXT or edges > MERMAID_MAX_EDGES:
                diagram.text = None
                diagram.note = f"Diagram too large for Mermaid to draw; see {self.where}."
        self.patch_text = json.dumps(list(self.body.patch), indent=2, ensure_ascii=False)
        failed_first = sorted(self.body.tests, key=lambda t: t.passed)
        self.tests = [
            replace(t, name=escape(t.name, 200), detail=escape(t.detail, 300)) for t in failed_first
        ]

    @property
    def where(self) -> str:
        return self.body.details_url or "the suggestion page"

    # -- shrinking, largest first ------------------------------------------------------

    def drop_diagram(self, excess: int) -> bool:
        shown = [d for _, d in self.diagrams if d.text is not None]
        if not shown:
            return False
        largest = max(shown, key=lambda d: len(d.text or ""))
        largest.text = None
        largest.note = f"Diagram too large for a pull request body; see {self.where}."
        return True

    def cut_patch(self, excess: int) -> bool:
        lines = self.patch_text.splitlines()[: self.patch_lines]
        if not lines:
            return False
        total = sum(size(line) + 1 for line in lines)
        keep = max(total - excess - 200, 0)
        kept, used = 0, 0
        for line in lines:
            used += size(line) + 1
            if used > keep:
                break
            kept += 1
        self.patch_lines = min(kept, len(lines) - 1)
        return True

    def cut_tests(self, excess: int) -> bool:
        self.tests_shown, cut = _fewer(self.tests, self.tests_shown, excess)
        return cut

    def cut_evidence(self, excess: int) -> bool:
        rows = self.body.evidence.rows if self.body.evidence else ()
        self.evidence_shown, cut = _fewer(rows, self.evidence_shown, excess)
        return cut

    def cut_bullets(self, excess: int) -> bool:
        self.bullets_shown, cut = _fewer(self.body.bullets, self.bullets_shown, excess)
        return cut

    # -- rendering ---------------------------------------------------------------------

    def render(self) -> str:
        body = self.body
        lines = self.patch_text.splitlines()
        patch_text, patch_note = self.patch_text, ""
        if self.patch_lines is not None and self.patch_lines < len(lines):
            patch_text = "\n".join(lines[: self.patch_lines])
            patch_note = (
                f"Patch cut after {self.patch_lines} of {len(lines)} lines; "
                f"the full patch is on {self.where}."
            )
        bullets = [_bullet(b) for b in body.bullets]
        evidence = body.evidence
        rows = [
            EvidenceRow(escape(r.metric, 100), escape(r.before, 60), escape(r.after, 60))
            for r in (evidence.rows if evidence else ())
        ]
        passed = sum(t.passed for t in self.tests)
        exercised = [t for t in self.tests if not t.wiring_only]
        summary = [f"**Risk: {_RISK_ICON[body.risk]} {body.risk}**"]
        if body.savings:
            summary.insert(0, f"**Saves {escape(body.savings, 100)}**")
        count = len(body.bullets)
        summary.append(f"{count} change{'s' * (count != 1)}")
        if body.suggestion_id:
            summary.append(f"suggestion {code_span(body.suggestion_id[:64])}")
        if exercised:
            summary.append(
                f"tests {sum(t.passed for t in exercised)}/{len(exercised)} passed"
                + (" (others wiring only)" if len(exercised) < len(self.tests) else "")
            )
        elif self.tests:
            summary.append("tests: wiring only (changed steps mocked or faked)")
        else:
            summary.append("no embedded tests")
        context = {
            "why": escape(body.why, 600) if body.why else "",
            "step": escape(body.step, 600) if body.step else "",
            "watch_for": escape(body.watch_for, 600) if body.watch_for else "",
            "quality": escape(body.quality, 600) if body.quality else "",
            "basis": escape(body.basis, 300) if body.basis else "",
            "where": _bullet(body.where) if body.where else "",
            "headline": escape(body.headline, 200),
            "summary_line": " · ".join(summary),
            "bullets": _take(bullets, self.bullets_shown),
            "bullets_more": len(bullets) - len(_take(bullets, self.bullets_shown)),
            "diagrams": self.diagrams,
            "evidence_rows": _take(rows, self.evidence_shown),
            "evidence_more": len(rows) - len(_take(rows, self.evidence_shown)),
            "evidence_intro": _evidence_intro(evidence),
            "tests_summary": _tests_summary(self.tests, passed),
            "tests_shown": _take(self.tests, self.tests_shown),
            "tests_more": len(self.tests) - len(_take(self.tests, self.tests_shown)),
            "patch_count": len(body.patch),
            "patch_fence": fence_for(self.patch_text),
            "patch_text": patch_text,
            "patch_note": patch_note,
            "reject": escape(body.reject, 1000),
            "reject_command": _reject_command(body),
        }
        return _template().render(context)


def code_span(text: str) -> str:
    """`text` as an inline code span, whatever backticks it holds."""
    flat = " ".join(text.split())
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{ticks}{pad}{flat}{pad}{ticks}"


def _reject_command(body: PRBody) -> str:
    """The local command that records a rejection of this suggestion, as code."""
    import shlex

    if not body.suggestion_id or not body.spec_path:
        return ""
    command = (
        f"flujo suggest {shlex.quote(body.spec_path[:300])} --reject {body.suggestion_id[:64]}"
        " --reason 'why'"
    )
    return code_span(command)


def _tests_summary(tests: Sequence[EmbeddedTest], passed: int) -> str:
    if not tests:
        return ""
    wiring = sum(t.wiring_only for t in tests)
    text = f"{passed} of {len(tests)} tests pass with the patch applied."
    if wiring:
        text += (
            f" {wiring} of them only mock or fake the changed steps: they check the wiring, "
            "not the new configuration's answers."
        )
    return text


def _evidence_intro(evidence: Evidence | None) -> str:
    if evidence is None:
        return ""
    window = f" ({escape(evidence.window, 100)})" if evidence.window else ""
    return f"Measured on {evidence.runs} recorded run{'s' * (evidence.runs != 1)}{window}."


def _bullet(text: str) -> str:
    """A bullet on one line; an over-long one is cut and loses its code spans."""
    flat = " ".join(text.split())
    if len(flat) <= 1000:
        return flat
    return flat[:999].replace("`", "") + "…"


def _take(items: Sequence[Any], shown: int | None) -> list[Any]:
    return list(items) if shown is None else list(items[:shown])


def _fewer(items: Sequence[Any], shown: int | None, excess: int) -> tuple[int, bool]:
    """How many items to keep to lose about `excess` characters (at least one fewer),
    and whether that is fewer than now."""
    current = len(items) if shown is None else shown
    if current == 0:
        return 0, False
    kept = 0
    budget = sum(len(str(item)) for item in items[:current]) - excess - 100
    for item in items[:current]:
        budget -= len(str(item))
        if budget < 0:
            break
        kept += 1
    return min(kept, current - 1), True
