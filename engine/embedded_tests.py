"""Embedded tests: run a spec's `tests:` and judge their assertions and policies.

The JSON form (`TestReport.to_dict`) is a stable, documented format: the bot's checks and
auto-rollback read it. Bump `REPORT_VERSION` on any incompatible change.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flujo.engine.policies import PolicyResult, bindings_for
from flujo.spec.expressions import ExpressionError, compile_expression

if TYPE_CHECKING:
    from collections.abc import Callable

    from flujo.engine.runner import Runner
    from flujo.spec.model import Pipeline, SpecTest

REPORT_VERSION = 1
ASSERTION_NAMES = ("result", "input", "output", "steps")
Outcome = Literal["passed", "failed"]


@dataclass(frozen=True, slots=True)
class AssertionResult:
    expression: str
    passed: bool
    yaml_path: str
    line: int | None
    explanation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TestResult:
    """One embedded test, run once."""

    spec: str
    name: str
    yaml_path: str
    line: int | None
    outcome: Outcome = "passed"
    duration_s: float = 0.0
    cost_usd: float | None = 0.0
    tokens: int = 0
    run_id: str | None = None
    error: str | None = None
    assertions: list[AssertionResult] = field(default_factory=list)
    policies: list[PolicyResult] = field(default_factory=list)
    reached: tuple[str, ...] = ()
    """Steps this test's run reached (mocked ones included; see `mocks` of the test)."""

    @property
    def id(self) -> str:
        return f"{self.spec}::{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec,
            "name": self.name,
            "yaml_path": self.yaml_path,
            "line": self.line,
            "outcome": self.outcome,
            "duration_s": round(self.duration_s, 6),
            "cost_usd": self.cost_usd,
            "tokens": self.tokens,
            "run_id": self.run_id,
            "error": self.error,
            "assertions": [a.to_dict() for a in self.assertions],
            "policies": [p.to_dict() for p in self.policies],
        }


def selected(spec: str, test: SpecTest, patterns: tuple[str, ...]) -> bool:
    """`-k` patterns: a substring or glob of `spec::name`, or a tag."""
    if not patterns:
        return True
    ident = f"{spec}::{test.name}"
    return any(p in ident or fnmatch.fnmatch(ident, p) or p in test.tags for p in patterns)


async def run_tests(
    pipeline: Pipeline,
    runner: Runner,
    *,
    spec: str,
    patterns: tuple[str, ...] = (),
    jobs: int = 4,
    overrides: frozenset[str] = frozenset(),
    limit: asyncio.Semaphore | None = None,
    on_result: Callable[[TestResult], None] | None = None,
) -> list[TestResult]:
    """Run the spec's selected tests (up to `jobs` at once, or as many at once as `limit`,
    a semaphore shared with other specs' tests, lets), in spec order; `on_result` is told
    of each test as it ends."""
    slots = limit if limit is not None else asyncio.Semaphore(max(1, jobs))

    async def one(index: int, test: SpecTest) -> TestResult:
        async with slots:
            outcome = await run_test(pipeline, runner, spec, index, test, overrides)
        if on_result is not None:
            on_result(outcome)
        return outcome

    chosen = [(i, t) for i, t in enumerate(pipeline.tests) if selected(spec, t, patterns)]
    return list(await asyncio.gather(*(one(i, t) for i, t in chosen)))


async def run_test(
    pipeline: Pipeline,
    runner: Runner,
    spec: str,
    index: int,
    test: SpecTest,
    overrides: frozenset[str] = frozenset(),
) -> TestResult:
    path = f"tests[{index}]"
    outcome = TestResult(spec, test.name, path, test.line)
    started = time.perf_counter()
    # a test's run is never evidence of production behaviour, whoever runs it
    origin = runner.origin if runner.origin in ("check", "verification", "eval") else "test"
    result = await runner.run(test.input, mocks=dict(test.mocks), origin=origin)
    outcome.duration_s = time.perf_counter() - started
    outcome.run_id = result.run_id
    outcome.cost_usd = result.total_cost_usd
    outcome.tokens = result.total_tokens
    outcome.policies = list(result.policies)
    outcome.reached = tuple(name for name, step in result.steps.items() if step.attempts)
    if result.status != "succeeded":
        outcome.outcome = "failed"
        outcome.error = result.error
    bindings = bindings_for(result)
    for j, source in enumerate(test.assertions):
        outcome.assertions.append(_judge(source, f"{path}.assertions[{j}]", pipeline, bindings))
    # Only soft-mandatory policies can be overridden (as in Sentinel); FAIL_RUN cannot.
    blocking = [
        p
        for p in outcome.policies
        if p.blocks and not (p.action == "REQUIRE_APPROVAL" and p.id in overrides)
    ]
    if any(not a.passed for a in outcome.assertions) or blocking:
        outcome.outcome = "failed"
    return outcome


def soft_policies(pipeline: Pipeline) -> frozenset[str]:
    """The REQUIRE_APPROVAL policies: judged apart from the tests, where an approval can
    lift them. `flujo test` and the bot's `flujo/test` both pass these as `overrides`, so a
    test passes or fails the same way in both; `needs_approval` then says which block."""
    return frozenset(p.id for p in pipeline.policies if p.action == "REQUIRE_APPROVAL")


@dataclass(frozen=True, slots=True)
class PendingApproval:
    """A REQUIRE_APPROVAL policy that failed in some test run and nobody approved."""

    id: str
    spec: str
    explanation: str | None
    tests: tuple[str, ...]


def needs_approval(results: list[TestResult], approved: frozenset[str]) -> list[PendingApproval]:
    """The REQUIRE_APPROVAL policies that block a merge (as `flujo/policy` fails on them),
    by spec and id, in first-failure order, with the tests whose runs failed them."""
    found: dict[tuple[str, str], PendingApproval] = {}
    for result in results:
        for policy in result.policies:
            if not policy.blocks or policy.action != "REQUIRE_APPROVAL" or policy.id in approved:
                continue
            key = (result.spec, policy.id)
            seen = found.get(key)
            tests = (*seen.tests, result.name) if seen else (result.name,)
            explanation = seen.explanation if seen else policy.explanation
            found[key] = PendingApproval(policy.id, result.spec, explanation, tests)
    return list(found.values())


def _judge(source: str, path: str, pipeline: Pipeline, bindings: dict[str, Any]) -> AssertionResult:
    line = pipeline.locate(path)[0] if pipeline.source is not None else None
    try:
        compiled = compile_expression(source, ASSERTION_NAMES)
        if compiled.evaluate(bindings):
            return AssertionResult(source, True, path, line)
        return AssertionResult(source, False, path, line, compiled.explain(bindings))
    except ExpressionError as exc:
        return AssertionResult(source, False, path, line, exc.message)


def report(
    results: list[TestResult], errors: list[str], pending: list[PendingApproval] | None = None
) -> dict[str, Any]:
    """The stable JSON report of a `flujo test` session (`pending`: `needs_approval`)."""
    passed = sum(r.outcome == "passed" for r in results)
    return {
        "version": REPORT_VERSION,
        "summary": {
            "passed": passed,
            "failed": len(results) - passed,
            "errors": len(errors),
            "total": len(results),
            "cost_usd": sum(r.cost_usd or 0.0 for r in results),
            "needs_approval": sorted({p.id for p in pending or []}),
        },
        "errors": errors,
        "tests": [r.to_dict() for r in results],
    }


def junit_xml(results: list[TestResult]) -> str:
    """JUnit XML (one testsuite per spec), as CI systems read it."""
    from xml.etree import ElementTree as ET

    root = ET.Element("testsuites", name="flujo")
    by_spec: dict[str, list[TestResult]] = {}
    for result in results:
        by_spec.setdefault(result.spec, []).append(result)
    for spec, tests in by_spec.items():
        failures = sum(t.outcome == "failed" for t in tests)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=spec,
            tests=str(len(tests)),
            failures=str(failures),
            errors="0",
            skipped="0",
            time=f"{sum(t.duration_s for t in tests):.6f}",
        )
        for test in tests:
            case = ET.SubElement(
                suite, "testcase", classname=spec, name=test.name, time=f"{test.duration_s:.6f}"
            )
            case.set("file", test.spec)  # where CI annotates: the test's own line
            if test.line is not None:
                case.set("line", str(test.line))
            if test.outcome == "failed":
                lines = failure_lines(test)
                failure = ET.SubElement(case, "failure", message=lines[0], type="AssertionError")
                failure.text = "\n".join(lines)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def failure_lines(test: TestResult) -> list[str]:
    """Why a test failed, one line per reason, most direct first."""
    lines = []
    stopped_by = {f"policy '{p.id}' failed" for p in test.policies if p.action == "FAIL_RUN"}
    if test.error and not any(test.error.startswith(cause) for cause in stopped_by):
        lines.append(f"run failed: {test.error}")  # (a FAIL_RUN policy has its own line)
    for assertion in test.assertions:
        if not assertion.passed:
            where = f" (line {assertion.line})" if assertion.line else ""
            lines.append(f"assertion {assertion.expression}{where}: {assertion.explanation}")
    for policy in test.policies:
        if policy.blocks:
            lines.append(
                f"policy {policy.id} ({policy.action}) {policy.outcome}: {policy.explanation}"
            )
    return lines or ["failed"]
