"""`suggest`: telemetry → opportunities → guarded patches → verified, ranked suggestions.

A suggestion is returned only if its patch applies, the patched spec validates, and every
embedded test that passed before still passes with it (cassettes replayed when the spec
has them, else the tests' mocks; a call the cassette lacks because the patch changed it
is answered by the built-in fake model server). Everything dropped is reported with why.
The JSON form (`SuggestReport.to_dict`) is documented in the README; bump
`SCHEMA_VERSION` on any incompatible change.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from flujo.engine.results import MODE_WORDS
from flujo.learn.feedback import feedback
from flujo.learn.guard import GuardStats, PromptGuard
from flujo.learn.meta_agents import MetaAgent, OfflineAgent
from flujo.learn.opportunities import Opportunity, find_opportunities
from flujo.learn.roi import RISK_OF, Estimate, estimate
from flujo.learn.step_role import StepRole, risk_for, roles, watch_for
from flujo.learn.suggestion_log import suggestion_id
from flujo.learn.telemetry_view import SpecTelemetry, load_view
from flujo.spec.figures import money

if TYPE_CHECKING:
    from flujo.engine.store import RunStore
    from flujo.spec.model import Pipeline
    from flujo.spec.registry import StepRegistry

SCHEMA_VERSION = 1
"""`evidence_modes`, `evidence_origins_excluded`, `telemetry.excluded_runs` and
`telemetry.not_evidence_runs` were added compatibly."""
TestMode = Literal["replay", "mock", "fake", "none"]


@dataclass(frozen=True)
class TestEvidence:
    """How one embedded test exercised the steps a change affects."""

    __test__ = False  # not a pytest test class

    name: str
    passed: bool
    changed_steps: tuple[tuple[str, str], ...] = ()
    """Each affected step and how it ran in this test: `replay` (answered from a
    recording of the new configuration), `live`, `ran` (a step without a model), `fake`
    (the fake model server answered: the recording lacked the new call), `mocked`
    (the test's mocks), `not reached`."""

    @property
    def evidence(self) -> str:
        """`exercised` when a changed step ran with answers for the new configuration,
        `wiring only` when changed steps were only faked or mocked, `not reached`."""
        hows = {how for _, how in self.changed_steps}
        if hows & {"replay", "live", "ran"}:
            return "exercised"
        if hows & {"fake", "mocked", "mock"}:
            return "wiring only"
        return "not reached" if hows else "unchanged steps only"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "changed_steps": dict(self.changed_steps),
            "evidence": self.evidence,
        }


@dataclass(frozen=True)
class Verification:
    """What was checked on the patched spec."""

    validated: bool
    tests_mode: TestMode
    tests_passed: int
    tests_failed: int
    broken: tuple[str, ...] = ()
    """Tests that passed before the patch and fail with it."""
    outcomes: tuple[tuple[str, bool], ...] = ()
    """Each embedded test's name and whether it passed with the patch."""
    tests: tuple[TestEvidence, ...] = ()
    """Per test: how the steps the change affects ran."""
    changed_steps: tuple[str, ...] = ()

    @property
    def exercised(self) -> int:
        """Tests in which a changed step ran with answers for the new configuration."""
        return sum(t.evidence == "exercised" for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        return {
            "validated": self.validated,
            "tests_mode": self.tests_mode,
            "tests_passed": self.tests_passed,
            "tests_failed": self.tests_failed,
            "broken": list(self.broken),
            "changed_steps": list(self.changed_steps),
            "tests_exercising_change": self.exercised,
            "tests": [t.to_dict() for t in self.tests],
        }


@dataclass(frozen=True)
class Suggestion:
    """One verified, ranked change to a spec."""

    id: str
    """One per opportunity (spec, kind, place; `suggestion_id`): shown by the CLI, in the
    branch name and in the pull request body."""
    spec: str
    kind: str
    yaml_path: str
    line: int | None
    headline: str
    why: str
    evidence: dict[str, Any]
    risk: str
    estimate: Estimate
    patch: list[dict[str, Any]]
    diff: str
    opportunity: Opportunity
    verification: Verification
    agent: str
    attempts: int
    quality_evidence: dict[str, Any] = field(default_factory=dict)
    """How well the changed steps' outputs agree with today's (`flujo eval` on captured
    examples), or why that was not measured (see `quality_evidence`)."""
    basis: str = ""
    """Where the monthly figures come from: runs counted and the observed rate."""
    roles: tuple[StepRole, ...] = ()
    """What each step the change concerns does, and what its output decides."""
    watch_for: str = ""
    """The concrete failure a reviewer should look for."""

    @property
    def step_summary(self) -> str:
        """What the steps do and what their outputs decide, in a sentence per step."""
        return " ".join(
            f"`{r.step}`{' (critical)' if r.critical else ''} {r.does.rstrip('.')}; "
            f"its output {r.decides()}."
            for r in self.roles
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec,
            "kind": self.kind,
            "yaml_path": self.yaml_path,
            "line": self.line,
            "headline": self.headline,
            "why": self.why,
            "evidence": self.evidence,
            "risk": self.risk,
            "savings": {
                "usd_per_run": round(self.estimate.usd_per_run, 8),
                "usd_per_month": round(self.estimate.usd_per_month, 4),
                "latency_s_per_run": round(self.estimate.latency_s_per_run, 4),
                "failures_avoided_per_month": round(self.estimate.failures_avoided_per_month, 2),
            },
            "quality": self.estimate.quality,
            "confidence": round(self.estimate.confidence, 3),
            "confidence_label": self.estimate.confidence_label,
            "score": round(self.estimate.score, 6),
            "patch": self.patch,
            "diff": self.diff,
            "verification": self.verification.to_dict(),
            "quality_evidence": self.quality_evidence,
            "basis": self.basis,
            "steps": [r.to_dict() for r in self.roles],
            "watch_for": self.watch_for,
            "agent": self.agent,
            "attempts": self.attempts,
        }


@dataclass(frozen=True)
class Dropped:
    """An opportunity that did not become a suggestion, and why."""

    kind: str
    yaml_path: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "yaml_path": self.yaml_path,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass
class SuggestReport:
    spec: str
    agent: str
    runs: int = 0
    versions: int = 0
    runs_per_month: float = 0.0
    opportunities: int = 0
    suggestions: list[Suggestion] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    guard: GuardStats = field(default_factory=GuardStats)
    evidence_modes: tuple[str, ...] = ("live",)
    """The run modes counted as evidence."""
    excluded_origins: tuple[str, ...] = ()
    """Origins of runs not counted (tests, checks, verification, evaluations)."""
    excluded_runs: dict[str, int] = field(default_factory=dict)
    """Runs of the spec not counted, by why (`mode fake`, `origin test`)."""
    not_evidence_runs: int = 0
    """Counted runs that failed because of the harness or their input."""
    prices_version: str | None = None
    """The price table behind the estimated savings (`flujo.engine.pricing`)."""

    @property
    def no_telemetry(self) -> bool:
        return self.runs == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "spec": self.spec,
            "agent": self.agent,
            "prices_version": self.prices_version,
            "evidence_modes": list(self.evidence_modes),
            "evidence_origins_excluded": list(self.excluded_origins),
            "telemetry": {
                "runs": self.runs,
                "spec_versions": self.versions,
                "runs_per_month": round(self.runs_per_month, 1),
                "excluded_runs": dict(sorted(self.excluded_runs.items())),
                "not_evidence_runs": self.not_evidence_runs,
            },
            "opportunities": self.opportunities,
            "suggestions": [s.to_dict() for s in self.suggestions],
            "dropped": [d.to_dict() for d in self.dropped],
            "guard": self.guard.to_dict(),
        }


async def suggest(
    spec: Path,
    store: RunStore,
    *,
    agent: MetaAgent | None = None,
    limit: int | None = None,
    since_s: float | None = None,
    verify_tests: bool = True,
    key: str | None = None,
    registry: StepRegistry | None = None,
    include: Iterable[str] = (),
    progress: Callable[[int, int], None] | None = None,
) -> SuggestReport:
    """Ranked, verified suggestions for the spec file `spec` from the runs in `store`.

    `key` names the spec in suggestions and feedback (default: its path as shown); the bot
    passes the path in the repository, since it reads specs from a temporary snapshot.
    `registry` is the skill allow-list patches and tests run with (default: the one of the
    spec's repository); the bot passes its own, since a repository may not widen it.
    Evidence is live runs that no test, check, verification or evaluation started; `include`
    adds modes (replay, fake, mock, unknown) or origins (test, …): ValueError otherwise.
    `progress(done, total)` is told how many opportunities have been weighed (a display).

    Raises SpecError when the spec itself is invalid and OSError when it cannot be read.
    """
    from flujo.spec.load import registry_for
    from flujo.spec.model import Pipeline

    registry = registry or registry_for(spec)
    pipeline = Pipeline.from_yaml(spec)
    key = key or pipeline.file or str(spec)
    agent = agent or OfflineAgent()
    from flujo.engine.pricing import table_version
    from flujo.spec.prices_config import repository_prices

    prices = repository_prices(spec).overrides()
    report = SuggestReport(key, agent.name, prices_version=table_version(prices or None))
    view = load_view(store, pipeline, since_s=since_s, include=include)
    view.price_overrides = prices
    report.runs, report.versions, report.runs_per_month = (
        view.runs,
        view.versions,
        view.runs_per_month,
    )
    report.evidence_modes, report.excluded_origins = view.modes, view.excluded_origins
    report.excluded_runs = dict(view.excluded)
    report.not_evidence_runs = view.not_evidence_runs
    if view.runs == 0:
        return report
    opportunities = find_opportunities(pipeline, view, registry)
    report.opportunities = len(opportunities)
    text = spec.read_bytes().decode("utf-8")
    guard = PromptGuard(
        text,
        file=key,
        registry=registry,
        negatives=feedback(store, key, "rejected"),
        stats=report.guard,
    )
    verifier = _Verifier(spec, pipeline, registry) if verify_tests else None
    seen: set[str] = set()
    for done, opportunity in enumerate(opportunities):
        if progress is not None:
            progress(done, len(opportunities))
        names = [str(n) for n in opportunity.evidence.get("steps", [opportunity.step]) if n]
        step_roles = roles(pipeline, names)
        base = RISK_OF[opportunity.kind]
        roi = estimate(opportunity, view, risk_for(opportunity.kind, base, step_roles))
        if roi.value_per_month <= 0:  # nothing measured would get better
            detail = f"expected value {money(roi.value_per_month)}/month from what was measured"
            report.dropped.append(
                Dropped(opportunity.kind, opportunity.yaml_path, "no_value", detail)
            )
            continue
        outcome = await agent.propose(opportunity, guard)
        if outcome is None and opportunity.kind in NEEDS_WRITER:
            detail = (
                f"{opportunity.why} (~{money(roi.usd_per_month)}/month at the observed rate; "
                "no rule-based patch: `--agent openai:MODEL` can write one)"
            )
            report.dropped.append(
                Dropped(opportunity.kind, opportunity.yaml_path, "needs_writer", detail)
            )
            continue
        if outcome is None:
            report.dropped.append(Dropped(opportunity.kind, opportunity.yaml_path, "no_patch"))
            continue
        verdict = outcome.verdict
        if not verdict.accepted or verdict.patch is None or verdict.text is None:
            report.dropped.append(
                Dropped(
                    opportunity.kind,
                    opportunity.yaml_path,
                    verdict.reason or "rejected",
                    verdict.detail,
                )
            )
            continue
        ident = suggestion_id(key, opportunity.kind, opportunity.yaml_path)
        if ident in seen:
            continue
        seen.add(ident)
        verification = (
            await verifier.verify(verdict.text)
            if verifier is not None
            else Verification(True, "none", 0, 0)
        )
        if verification.broken:
            detail = "breaks embedded tests: " + ", ".join(verification.broken)
            report.dropped.append(
                Dropped(opportunity.kind, opportunity.yaml_path, "breaks_tests", detail)
            )
            continue
        quality = quality_evidence(
            store, pipeline.file or key, verdict.patch, verdict.text, verification
        )
        risk, roi = _honest_risk(roi, quality)
        basis = (
            f"{_counted(view)}; "
            f"~{view.runs_per_month:.0f} runs/month is their observed rate "
            f"({view.runs_per_day:.1f}/day) × 30"
        )
        report.suggestions.append(
            Suggestion(
                id=ident,
                spec=key,
                kind=opportunity.kind,
                yaml_path=opportunity.yaml_path,
                line=_line(pipeline, opportunity.yaml_path),
                headline=roi.headline,
                why=opportunity.why,
                evidence=opportunity.evidence,
                risk=risk,
                estimate=roi,
                patch=verdict.patch,
                diff=_diff(text, verdict.text, key),
                opportunity=opportunity,
                verification=verification,
                agent=agent.name,
                attempts=outcome.attempts,
                quality_evidence=quality,
                basis=basis,
                roles=tuple(step_roles),
                watch_for="; ".join(
                    w
                    for r in step_roles
                    if (w := watch_for(opportunity.kind, r, opportunity.facts))
                ),
            )
        )
    if progress is not None:
        progress(len(opportunities), len(opportunities))
    report.suggestions.sort(key=lambda s: (-s.estimate.score, s.id))
    if limit is not None:
        report.suggestions = report.suggestions[:limit]
    return report


NEEDS_WRITER = frozenset({"long_prompt", "loop_at_max"})
"""Findings whose patch is text to write (a shorter prompt, an exit condition): the offline
agent has no recipe for them, and the report lists them as worth a look."""

OUTPUT_FIELDS = (
    "model",
    "system_prompt",
    "output_schema",
    "temperature",
    "max_tokens",
    "top_p",
    "uses",
)
"""Settings whose change may change what a step outputs."""


def changes_outputs(patch: list[dict[str, Any]]) -> bool:
    """Whether a patch may change what a model answers (an agent's model, prompt, schema,
    sampling or length; a step's sampling): those need quality evidence."""
    for op in patch:
        parts = str(op.get("path", "")).split("/")
        if len(parts) > 1 and parts[1] == "agents":
            return True
        if parts[-1] in OUTPUT_FIELDS:
            return True
    return False


def quality_evidence(
    store: RunStore,
    spec_path: str,
    patch: list[dict[str, Any]],
    patched_text: str,
    verification: Verification,
) -> dict[str, Any]:
    """The "Quality evidence" of a change: the stored `flujo eval` of the patched spec on
    captured live examples when there is one, else why it was not measured."""
    from flujo.learn.evaluate import captured_counts, count_examples, stored_evaluation
    from flujo.spec.source import spec_sha256

    if not changes_outputs(patch):
        return {
            "needed": False,
            "measured": False,
            "summary": "not needed: the change does not alter what a model is asked",
        }
    mocked = sorted(
        {
            step
            for test in verification.tests
            for step, how in test.changed_steps
            if how in ("mocked", "fake", "mock")
        }
    )
    notes = []
    if mocked and not verification.exercised:
        notes.append("tests mock " + ", ".join(f"`{s}`" for s in mocked))
    found = stored_evaluation(store, spec_sha256(patched_text.encode("utf-8")))
    if found is not None and found.get("mode") in ("live", "replay") and found.get("examples"):
        low, high = found["interval_95"]
        cost = found.get("eval_cost_usd")
        cost_text = money(cost)
        summary = (
            f"`flujo eval`: the changed step{'s' * (len(found['steps']) != 1)} "
            f"({', '.join(found['steps'])}) agreed with today's outputs on {found['agreed']} "
            f"of {found['examples']} captured live examples ({found['agreement']:.0%}, 95% "
            f"interval {low:.0%}–{high:.0%}; runs {found['mode']}); the check cost {cost_text}"
        )
        return {
            "needed": True,
            "measured": True,
            "summary": summary,
            "agreement": found["agreement"],
            "agreed": found["agreed"],
            "examples": found["examples"],
            "interval_95": found["interval_95"],
            "eval_cost_usd": cost,
            "mode": found["mode"],
            "notes": notes,
        }
    available = count_examples(store, spec_path)
    if found is not None and found.get("mode") not in ("live", "replay"):
        why = f"`flujo eval` ran on the {found.get('mode')} model server (wiring only)"
    elif available == 0:
        others = sum(captured_counts(store, spec_path).values())
        why = "no captured examples" + (
            f" of live runs ({others} captured from fake, replayed or test runs)" if others else ""
        )
    else:
        why = (
            f"`flujo eval` not run on this change ({available} captured examples: "
            "`flujo eval SPEC --patch FILE`)"
        )
    return {
        "needed": True,
        "measured": False,
        "summary": "; ".join([f"not measured: {why}", *notes]),
        "notes": notes,
    }


MEASURED_LOW_RISK = 0.9
"""A measured change stays low risk only if its agreement's 95% interval starts above this."""


def _counted(view: SpecTelemetry) -> str:
    """The runs counted and how they reached their models, e.g. "40 live runs counted" or
    "25 runs counted (5 live; 20 on the fake model server, not production evidence)"."""
    runs = f"run{'s' * (view.runs != 1)}"
    if set(view.counted_by_mode) <= {"live"}:
        return f"{view.runs} live {runs} counted"
    how = [
        f"{n} {MODE_WORDS.get(mode, f'of mode {mode}')}"
        for mode, n in sorted(view.counted_by_mode.items())
    ]
    return f"{view.runs} {runs} counted ({'; '.join(how)})"


def _honest_risk(roi: Estimate, quality: dict[str, Any]) -> tuple[str, Estimate]:
    """Risk at least medium when a change's quality was not measured, or measured with an
    agreement that may be below `MEASURED_LOW_RISK` (its headline too)."""
    from dataclasses import replace

    if not quality.get("needed") or roi.risk != "low":
        return roi.risk, roi
    if quality.get("measured") and quality["interval_95"][0] >= MEASURED_LOW_RISK:
        return roi.risk, roi
    from flujo.learn.roi import RISK_WEIGHT

    headline = roi.headline.replace("with low risk", "with medium risk")
    score = roi.score / RISK_WEIGHT["low"] * RISK_WEIGHT["medium"]
    return "medium", replace(roi, risk="medium", headline=headline, score=score)


def _line(pipeline: Pipeline, yaml_path: str) -> int | None:
    try:
        return pipeline.locate(yaml_path)[0]
    except (LookupError, ValueError):
        return None


def _diff(before: str, after: str, name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{name}", f"b/{name}"
    )
    return "".join(lines)


async def verify_patched(spec: Path, text: str, registry: Any) -> Verification:
    """The embedded tests of the spec at `spec` run on its patched `text`: a test that passed
    before and fails with it is `broken` (how a group of suggestions is verified together)."""
    from flujo.spec.model import Pipeline

    return await _Verifier(spec, Pipeline.from_yaml(spec), registry).verify(text)


class _Verifier:
    """Runs the spec's embedded tests on patched versions of it."""

    def __init__(self, spec: Path, pipeline: Pipeline, registry: Any) -> None:
        from flujo.engine.cassette import cassette_folder

        self.spec = spec
        self.file = pipeline.file or str(spec)
        self.registry = registry
        self.cassette = cassette_folder(spec)
        self.mode: TestMode = "replay" if self.cassette.is_dir() else "mock"
        self._baseline: set[str] | None = None
        self._original = pipeline

    async def verify(self, text: str) -> Verification:
        from flujo.spec.load import validate_document
        from flujo.spec.source import parse

        pipeline, _ = validate_document(parse(text, self.file))
        if pipeline is None:
            return Verification(False, "none", 0, 0, ("the patched spec does not load",))
        from flujo.learn.evaluate import affected_steps

        changed = tuple(affected_steps(self._original, pipeline))
        if not pipeline.tests:
            return Verification(True, "none", 0, 0, changed_steps=changed)
        if self._baseline is None:
            self._baseline = {n for n, (ok, _) in (await self._run(self._original)).items() if ok}
        results = await self._run(pipeline)
        broken = tuple(n for n, (ok, _) in results.items() if not ok and n in self._baseline)
        passed = sum(ok for ok, _ in results.values())
        tests = []
        for test in pipeline.tests:
            if test.name not in results:
                continue
            ok, how_ran = results[test.name]
            hows = tuple(
                (
                    step,
                    "mocked" if step in test.mocks else how_ran.get(step, "not reached"),
                )
                for step in changed
            )
            tests.append(TestEvidence(test.name, ok, hows))
        return Verification(
            True,
            self.mode,
            passed,
            len(results) - passed,
            broken,
            tuple((n, ok) for n, (ok, _) in results.items()),
            tuple(tests),
            changed,
        )

    def _how(self, pipeline: Pipeline, reached: tuple[str, ...], mode: str) -> dict[str, str]:
        """How each reached step got its answers: `ran` for steps without a model, else
        the session's mode (replay, fake, mock)."""
        from flujo.spec.skill_packs import model_skills

        out = {}
        for name in reached:
            try:
                step = pipeline.step(name)
            except KeyError:  # a step of a jit plan: not written in the spec, never changed
                continue
            uses = getattr(step, "uses", None) or ""
            model = uses.startswith("agents.") or uses in model_skills()
            out[name] = mode if model else "ran"
        return out

    async def _run(self, pipeline: Pipeline) -> dict[str, tuple[bool, dict[str, str]]]:
        from flujo.engine.embedded_tests import run_tests
        from flujo.engine.session import SessionOptions, session

        options = SessionOptions(
            replay=self.cassette if self.mode == "replay" else None,
            use_store=False,
            offline=self.mode == "mock",
            export=False,
            origin="verification",
        )
        async with session(pipeline, options, registry=self.registry) as runner:
            results = await run_tests(pipeline, runner, spec=self.file)
        missed = [r for r in results if r.outcome == "failed" and "cassette" in (r.error or "")]
        if missed:  # the patch changed a recorded call: answer it with the fake server
            fake = SessionOptions(fake=True, use_store=False, export=False, origin="verification")
            async with session(pipeline, fake, registry=self.registry) as runner:
                names = tuple(r.name for r in missed)
                again = await run_tests(pipeline, runner, spec=self.file, patterns=names)
            redo = {r.name: r for r in again}
            return {
                r.name: (
                    redo[r.name].outcome == "passed",
                    self._how(pipeline, redo[r.name].reached, "fake"),
                )
                if r.name in redo
                else (r.outcome == "passed", self._how(pipeline, r.reached, self.mode))
                for r in results
            }
        return {
            r.name: (r.outcome == "passed", self._how(pipeline, r.reached, self.mode))
            for r in results
        }
