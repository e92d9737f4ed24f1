"""What a run produced: per-step results and the pipeline result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from flujo.spec.fields import RESULT_FIELDS, STEP_FIELDS

RunStatus = Literal["running", "succeeded", "failed", "cancelled", "paused"]
"""`paused`: a `hitl` step waits for an answer; the run resumes from its last checkpoint."""

MODE_WORDS = {
    "live": "live",
    "fake": "on the fake model server, not production evidence",
    "replay": "replayed from recordings, not production evidence",
    "mock": "mocked, not production evidence",
}
"""How a run reached its models, in the words a figure from it carries."""


def how_run(mode: str) -> str:
    """What follows a cost or token count of a run in `mode`: nothing when live."""
    return "" if mode == "live" else f" ({MODE_WORDS.get(mode, mode)})"


@dataclass(slots=True)
class StepResult:
    """The outcome of one step (over all its attempts, loop iterations or map items)."""

    __expr_fields__ = frozenset(STEP_FIELDS)

    name: str
    kind: str
    yaml_path: str
    output: Any = None
    success: bool = False
    error: str | None = None
    attempts: int = 0
    cost_usd: float | None = 0.0
    """USD spent by this step; None when a model's price is unknown."""
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    model: str | None = None

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "yaml_path": self.yaml_path,
            "success": self.success,
            "error": self.error,
            "attempts": self.attempts,
            "cost_usd": self.cost_usd,
            "tokens": self.tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "latency_s": self.latency_s,
            "model": self.model,
        }


class StepResults(dict[str, StepResult]):
    """Step results by name; `results.classify` reads like `results['classify']`."""

    def __getattr__(self, name: str) -> StepResult:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no step named {name!r} ran") from None


@dataclass(slots=True)
class PipelineResult:
    """The outcome of a run."""

    __expr_fields__ = frozenset(RESULT_FIELDS)

    run_id: str
    spec_sha256: str
    input: Any = None
    output: Any = None
    status: RunStatus = "running"
    error: str | None = None
    error_path: str | None = None
    """yaml_path of the step that failed the run (or crossed a usage limit)."""
    total_cost_usd: float | None = 0.0
    """None when some step used a model whose price is unknown."""
    total_tokens: int = 0
    latency_s: float = 0.0
    steps: StepResults = field(default_factory=StepResults)
    policies: list[Any] = field(default_factory=list)
    """`PolicyResult`s of the spec's policies, judged at the end of a successful run."""
    mode: str = "live"
    """How the run reached its models: live, replay, fake or mock (`MODE_WORDS`)."""
    origin: str = "sdk"
    """What started the run: cli, sdk, test, check, verification, eval or shadow."""
    cause: str | None = None
    """Why a failed run failed: model, provider, harness, input, limit or cancelled."""
    prices_version: str | None = None
    """The version of the price table that computed `total_cost_usd` (date.hash)."""
    context: dict[str, Any] = field(default_factory=dict)
    """The run context as the run left it (`updates_context`, `sink_to`, context skills)."""
    resumed_from: str | None = None
    """The run this one continues from its last checkpoint (`flujo runs resume`)."""

    @property
    def success(self) -> bool:
        return self.status == "succeeded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "spec_sha256": self.spec_sha256,
            "status": self.status,
            "success": self.success,
            "error": self.error,
            "error_path": self.error_path,
            "output": self.output,
            "total_cost_usd": self.total_cost_usd,
            "total_tokens": self.total_tokens,
            "latency_s": self.latency_s,
            "steps": {name: step.to_dict() for name, step in self.steps.items()},
            "policies": [policy.to_dict() for policy in self.policies],
            "mode": self.mode,
            "origin": self.origin,
            "cause": self.cause,
            "prices_version": self.prices_version,
            "context": self.context,
            "resumed_from": self.resumed_from,
        }
