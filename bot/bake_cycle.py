"""One look of a bake-in on a repository's content: the staged candidate evaluated with
`flujo eval` on production inputs captured since the last look (`flujo.learn.bake`).

The baseline is the spec of the default branch's snapshot; the candidate is the pull
request's spec text. The App runs this in a confined child (`Isolated.bake`): it may
write only the snapshot and the run store, and connect only to the evaluation provider.
The outcome crosses back as JSON checked field by field (`BakeLook`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from flujo.bot.suggestion_cycle import Evaluation

if TYPE_CHECKING:
    from flujo.spec.registry import StepRegistry


@dataclass(frozen=True, slots=True)
class BakeRequest:
    spec: str
    """The spec's path in the repository."""
    candidate: str
    """The pull request's spec text."""
    store: str
    """The repository's run store (its file)."""
    since: float
    """Only inputs captured after this count (the pull request's opening, then the newest
    example an earlier look compared)."""
    evaluation: Evaluation
    label: str = "candidate"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BakeRequest:
        return cls(**{**data, "evaluation": Evaluation(**data["evaluation"])})


class _Plain(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Failures(_Plain):
    before: dict[str, int] = Field(default_factory=dict)
    after: dict[str, int] = Field(default_factory=dict)


class Where(_Plain):
    run_id: str
    step: str


class BakeLook(_Plain):
    """What one look measured (a subset of `EvalReport.to_dict()`), or why it could not."""

    examples: int = 0
    agreed: int = 0
    mode: str = ""
    newest: float | None = None
    failures: Failures = Field(default_factory=Failures)
    disagreements: list[Where] = Field(default_factory=list)
    eval_cost_usd: float = 0.0
    not_measured: str = ""


def decode_look(data: Any) -> BakeLook:
    """The look a child sent; ValueError (pydantic's) when it is not one."""
    return BakeLook.model_validate(data, strict=False)


async def run_bake(root: Path, request: BakeRequest, registry: StepRegistry) -> BakeLook:
    """Evaluate the candidate against the snapshot's spec on fresh captured examples."""
    from flujo.bot.suggestion_cycle import captured_key
    from flujo.engine.agents import OpenAIModels
    from flujo.engine.session import SessionOptions
    from flujo.engine.store import RunStore
    from flujo.learn.evaluate import evaluate
    from flujo.spec.errors import SpecError
    from flujo.spec.load import validate_document
    from flujo.spec.model import Pipeline
    from flujo.spec.source import parse

    evaluation = request.evaluation
    if evaluation.budget_usd <= 0:
        return BakeLook(not_measured="the evaluation budget of this month is spent")
    store = RunStore(request.store)
    try:
        key = captured_key(store, request.spec)
        if key is None:
            return BakeLook(not_measured="no production input of this spec was ever captured")
        try:
            baseline = Pipeline.from_yaml(root / request.spec)
            candidate, _ = validate_document(parse(request.candidate, request.spec))
        except (SpecError, OSError) as exc:
            return BakeLook(not_measured=f"the spec does not load: {str(exc).splitlines()[0]}")
        if candidate is None:
            return BakeLook(not_measured="the pull request's spec does not load")
        models = OpenAIModels(base_url=evaluation.base_url, api_key=evaluation.api_key)
        try:
            report = await evaluate(
                baseline,
                candidate,
                store,
                SessionOptions(base_url=evaluation.base_url),
                spec_path=key,
                examples=evaluation.max_examples,
                max_cost=evaluation.budget_usd,
                registry=registry,
                candidate_label=request.label,
                models=models,
                since=request.since,
            )
        finally:
            await models.close()
    finally:
        store.close()
    data = report.to_dict()
    return BakeLook(
        examples=report.examples,
        agreed=report.agreed,
        mode=report.mode,
        newest=report.newest,
        failures=Failures(**data["failures"]),
        disagreements=[Where(run_id=d.run_id, step=d.step) for d in report.disagreements],
        eval_cost_usd=report.eval_cost_usd,
        not_measured=""
        if report.examples
        else "no production input was captured since the last look",
    )
