"""What the checks found in one commit: the data `evaluate.py` computes and `verdicts.py` presents.

Plain dataclasses and the trivial properties that read them; no logic, no I/O, so both
sides (and `state.py`, which stores overrides) import this module and nothing heavier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from flujo.spec.errors import Diagnostic

if TYPE_CHECKING:
    from flujo.engine.embedded_tests import TestResult

Verdict = Literal["passed", "failed", "error", "skipped", "overridden", "unjudged"]


@dataclass(frozen=True, slots=True)
class Override:
    """A maintainer's approval of a REQUIRE_APPROVAL policy (the PR label)."""

    policy_id: str
    by: str
    at: str


@dataclass(slots=True)
class PolicyVerdict:
    """One policy judged over every test run of its spec."""

    id: str
    action: str
    yaml_path: str
    line: int | None
    verdict: Verdict
    explanation: str | None = None
    tests: list[str] = field(default_factory=list)
    override: Override | None = None
    description: str | None = None

    @property
    def blocks(self) -> bool:
        return self.verdict in ("failed", "error") and self.action != "WARN"


@dataclass(slots=True)
class SpecReport:
    path: str
    name: str | None = None
    sha256: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    test_error: str | None = None
    policies: list[PolicyVerdict] = field(default_factory=list)
    parsed: bool = False
    """The spec loaded into a model (it may still have errors)."""
    has_tests: bool = False
    prices_version: str | None = None
    """The price table that computed the test runs' costs."""
    prices_warning: str | None = None
    """The warning about old prices behind those costs, if any."""

    @property
    def valid(self) -> bool:
        return self.parsed and not any(d.severity == "error" for d in self.diagnostics)


@dataclass(slots=True)
class CommitReport:
    """Everything found in one commit."""

    specs: list[SpecReport]
    config_path: str | None = None
    config_problems: list[Diagnostic] = field(default_factory=list)
    patterns: tuple[str, ...] = ()
    lookalikes: list[str] = field(default_factory=list)
    """Files that look like Flujo specs but match no `specs:` glob (when none does)."""
    code_scanning: bool = False
    """The repository asked for its findings in code scanning."""
