"""Policies: `when` → `assert` rules over a run's result, with enforcement levels.

Like HashiCorp Sentinel's levels: `FAIL_RUN` is hard-mandatory (the run fails and a
merge is blocked), `REQUIRE_APPROVAL` is soft-mandatory (a merge is blocked unless a
maintainer overrides it), `WARN` is advisory (recorded and shown, never blocks).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from flujo.spec.expressions import ExpressionError, compile_expression
from flujo.spec.model import Pipeline, Policy

Outcome = Literal["passed", "failed", "skipped", "error"]
POLICY_NAMES = ("result", "input", "output", "steps")


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """How one policy judged one result."""

    id: str
    action: str
    outcome: Outcome
    yaml_path: str
    explanation: str | None = None

    @property
    def blocks(self) -> bool:
        """Whether this outcome blocks a merge (before any override)."""
        return self.outcome in ("failed", "error") and self.action != "WARN"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bindings_for(result: Any) -> dict[str, Any]:
    return {
        "result": result,
        "input": getattr(result, "input", None),
        "output": getattr(result, "output", None),
        "steps": getattr(result, "steps", {}),
    }


def evaluate_policy(policy: Policy, path: str, bindings: dict[str, Any]) -> PolicyResult:
    """Judge one policy; an expression that cannot be evaluated is an `error` outcome."""

    def judged(outcome: Outcome, explanation: str | None = None) -> PolicyResult:
        return PolicyResult(policy.id, policy.action, outcome, path, explanation)

    try:
        if policy.when is not None:
            condition = compile_expression(policy.when, POLICY_NAMES)
            if not condition.evaluate(bindings):
                return judged("skipped")
        check = compile_expression(policy.assert_, POLICY_NAMES)
        if check.evaluate(bindings):
            return judged("passed")
        return judged("failed", check.explain(bindings))
    except ExpressionError as exc:
        return judged("error", exc.message)


def evaluate_policies(pipeline: Pipeline, result: Any) -> list[PolicyResult]:
    """Every policy of the spec, judged on `result`, in spec order."""
    bindings = bindings_for(result)
    return [
        evaluate_policy(policy, f"policies[{i}]", bindings)
        for i, policy in enumerate(pipeline.policies)
    ]
