"""The suggestion cycle on a repository's content: suggest, verify, measure, review.

It reads the default branch's specs (a snapshot) and the repository's run store, asks
`flujo.learn.suggest` for verified suggestions, measures those that change what a model
is asked (`flujo eval` on the repository's captured examples, when the bot has an
evaluation provider), and words each as a pull request (`flujo.learn.proposal`). The
App runs it in a confined child (`Isolated.suggest`), `flujo bot local` in process; the
outcome is plain data (`suggestion_codec.Cycle`), so the bot itself only talks to the forge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flujo.bot.suggestion_codec import (
    Change,
    Cycle,
    Decision,
    Judgement,
    NotProposed,
    Promised,
    View,
)

if TYPE_CHECKING:
    from flujo.engine.store import RunStore
    from flujo.learn.suggest import Suggestion
    from flujo.spec.registry import StepRegistry

PAGE_PLACEHOLDER_HOST = "https://flujo.invalid/"
BUDGET_SPENT = "not measured: evaluation budget spent"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """How the cycle may measure suggestions on captured examples (`flujo eval`)."""

    base_url: str
    api_key: str
    """The provider's key: given to the process that calls it, never logged or shown."""
    budget_usd: float
    """What this cycle may still spend (the installation's monthly budget, less its spend)."""
    min_agreement: float
    """Suggestions whose measured agreement is below this are not proposed."""
    max_examples: int = 50

    def __repr__(self) -> str:  # the key never reaches a log through a repr
        return f"Evaluation(base_url={self.base_url!r}, budget_usd={self.budget_usd!r}, ...)"


@dataclass(frozen=True, slots=True)
class CycleRequest:
    specs: tuple[str, ...]
    """The specs of the snapshot (paths in the repository)."""
    store: str
    """The repository's run store (its file)."""
    page_placeholder: str | None = None
    """Stands for each suggestion page's link in the bodies (the bot fills the real one in:
    its key never reaches the cycle); same length, so bodies keep fitting GitHub's limit."""
    evaluation: Evaluation | None = None
    no_evaluation: str = ""
    """Why suggestions are not measured when `evaluation` is None (e.g. a fork)."""
    auto_apply: dict[str, Any] | None = None
    """The repository's `auto_apply:` settings (JSON), read by the bot: each change gets
    its risk tier by rules (`flujo.learn.tiers`)."""
    default_branch_green: bool | None = None
    wanted: tuple[str, ...] = ()
    """Only these suggestion ids (a person asked for them: dashboard checkbox, `recreate`,
    `eval`); the agreement floor does not hold them back (the body still shows the
    measured agreement). Empty: every suggestion."""
    group: str = "none"
    """`kind`: suggestions of one kind in one spec become one change (`pull_requests.group`)."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["specs"] = list(self.specs)
        data["wanted"] = list(self.wanted)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CycleRequest:
        evaluation = data.get("evaluation")
        return cls(
            specs=tuple(data["specs"]),
            store=data["store"],
            page_placeholder=data.get("page_placeholder"),
            evaluation=Evaluation(**evaluation) if evaluation else None,
            no_evaluation=data.get("no_evaluation", ""),
            auto_apply=data.get("auto_apply"),
            default_branch_green=data.get("default_branch_green"),
            wanted=tuple(data.get("wanted") or ()),
            group=str(data.get("group", "none")),
        )


def page_placeholder(example_url: str | None) -> str | None:
    """A stand-in as long as `example_url` (every page link of a repository is as long)."""
    if example_url is None:
        return None
    return PAGE_PLACEHOLDER_HOST + "p" * max(1, len(example_url) - len(PAGE_PLACEHOLDER_HOST))


async def run_cycle(root: Path, request: CycleRequest, registry: StepRegistry) -> Cycle:
    """The cycle on the snapshot at `root` (see the module's docstring)."""
    from flujo.engine.store import RunStore
    from flujo.learn.promises import Promise
    from flujo.learn.proposal import proposal_for
    from flujo.learn.suggest import suggest
    from flujo.learn.suggestion_groups import Grouped, group_by_kind
    from flujo.spec.edit import apply_patch
    from flujo.spec.errors import SpecError
    from flujo.spec.source import spec_sha256

    changes: list[Change] = []
    skipped: list[NotProposed] = []
    notes: list[str] = []
    spent = [0.0, 0]  # money, examples
    store = RunStore(request.store)
    try:
        for path in request.specs:
            try:
                report = await suggest(root / path, store, key=path, registry=registry)
            except (SpecError, OSError) as exc:  # the checks report broken specs
                notes.append(f"{path}: no suggestions: {str(exc).splitlines()[0]}")
                continue
            dropped = ", ".join(f"{d.kind} ({d.reason}: {d.detail})" for d in report.dropped)
            notes.append(
                f"{path}: {report.runs} run(s), {report.opportunities} opportunit(ies), "
                f"{len(report.suggestions)} suggestion(s), dropped: {dropped or 'none'}"
            )
            before = (root / path).read_text(encoding="utf-8")
            kept: list[Suggestion] = []
            for suggestion in report.suggestions:
                if request.wanted and suggestion.id not in request.wanted:
                    continue
                after = apply_patch(before, suggestion.patch, file=path)
                measured, refusal = await _measured(
                    suggestion, root / path, after, store, request, registry, spent
                )
                if refusal is not None and measured.id not in request.wanted:
                    title = proposal_for(measured, before, after, request.page_placeholder).title
                    skipped.append(
                        NotProposed(
                            id=measured.id,
                            spec=path,
                            title=title,
                            reason=refusal,
                            patch=measured.patch,
                        )
                    )
                    continue
                kept.append(measured)
            if request.group == "kind":
                grouped = await group_by_kind(root / path, before, kept, registry)
            else:
                grouped = [Grouped(s, apply_patch(before, s.patch, file=path)) for s in kept]
            for item in grouped:
                measured, after = item.suggestion, item.after
                proposal = proposal_for(measured, before, after, request.page_placeholder)
                changes.append(
                    Change(
                        decision=_decision(request, measured, before, after, path),
                        spec_before=spec_sha256(before.encode("utf-8")),
                        spec_after=spec_sha256(after.encode("utf-8")),
                        id=measured.id,
                        spec=path,
                        patch=measured.patch,
                        branch=proposal.branch,
                        title=proposal.title,
                        body=proposal.body,
                        commit_message=proposal.commit_message,
                        labels=proposal.labels,
                        view=View(**asdict(proposal.view)),
                        after=after,
                        quality=proposal.view.quality,
                        kind=measured.kind,
                        members=list(item.members),
                        promise=Promised(**Promise.of(measured, report.prices_version).to_json()),
                    )
                )
    finally:
        store.close()
    return Cycle(
        changes=changes,
        not_proposed=skipped,
        notes=notes,
        eval_spent_usd=spent[0],
        eval_examples=int(spent[1]),
    )


async def _measured(
    suggestion: Suggestion,
    spec: Path,
    after: str,
    store: RunStore,
    request: CycleRequest,
    registry: StepRegistry,
    spent: list[float],
) -> tuple[Suggestion, str | None]:
    """The suggestion with its quality evidence measured when it can be, and why it must not
    be proposed (None: propose it)."""
    quality = suggestion.quality_evidence
    evaluation = request.evaluation
    if not quality.get("needed"):
        return suggestion, None
    if quality.get("measured"):  # an evaluation of this very change is stored: reuse it
        floor = evaluation.min_agreement if evaluation is not None else None
        return suggestion, _below(quality.get("agreement"), quality.get("examples"), floor)
    if evaluation is None:
        if request.no_evaluation:
            note = f"{quality['summary']} (the bot does not evaluate: {request.no_evaluation})"
            return replace(suggestion, quality_evidence={**quality, "summary": note}), None
        return suggestion, None
    from flujo.learn.evaluate import evaluate, load_examples
    from flujo.learn.suggest import quality_evidence
    from flujo.spec.model import Pipeline
    from flujo.spec.source import parse

    key = captured_key(store, suggestion.spec)
    examples = load_examples(store, key, evaluation.max_examples) if key else []
    if key is None or not examples:
        return suggestion, None  # "not measured: no captured examples" already says so
    from flujo.engine.agents import OpenAIModels
    from flujo.engine.session import SessionOptions
    from flujo.spec.load import validate_document

    baseline = Pipeline.from_yaml(spec)
    left = evaluation.budget_usd - spent[0]
    costs = [e.cost_usd for e in examples if e.cost_usd is not None]
    per_example = sum(costs) / len(costs) if costs else 0.0
    if any(e.spec_sha256 != baseline.spec_sha256 for e in examples):
        per_example *= 2  # the baseline runs again too, where it changed since the capture
    if left <= 0 or left < per_example:  # stop before the budget is crossed
        return _unmeasured(suggestion, BUDGET_SPENT), None
    candidate, _ = validate_document(parse(after, suggestion.spec))
    if candidate is None:
        return suggestion, None
    models = OpenAIModels(base_url=evaluation.base_url, api_key=evaluation.api_key)
    try:
        report = await evaluate(
            baseline,
            candidate,
            store,
            SessionOptions(base_url=evaluation.base_url),
            spec_path=key,
            examples=evaluation.max_examples,
            max_cost=left,
            registry=registry,
            candidate_label=suggestion.id,
            models=models,
        )
    finally:
        await models.close()
    spent[0] += report.eval_cost_usd
    spent[1] += report.examples
    if report.examples == 0:
        return _unmeasured(suggestion, BUDGET_SPENT), None
    quality = quality_evidence(
        store, suggestion.spec, suggestion.patch, after, suggestion.verification
    )
    if report.stopped:
        quality = {
            **quality,
            "summary": f"{quality['summary']} (stopped early: evaluation "
            f"budget; {report.examples} of {report.available} examples)",
        }
    measured = replace(suggestion, quality_evidence=quality)  # its risk stays as cautious
    return measured, _below(report.agreement, report.examples, evaluation.min_agreement)


def _below(agreement: Any, examples: Any, floor: float | None) -> str | None:
    """Why a measured suggestion is not proposed (None: its agreement reaches the floor)."""
    if floor is None or not isinstance(agreement, int | float) or agreement >= floor:
        return None
    return (
        f"agreement {agreement:.0%} on {examples} captured examples is below the floor of "
        f"{floor:.0%}"
    )


def captured_key(store: RunStore, spec: str) -> str | None:
    """How the repository's captured examples name the spec at `spec` (its path in the
    repository): that path, else a path ending with it (runs made outside the repository's
    root), the newest first."""
    rows = store.query(
        "SELECT spec_path, MAX(created_at) AS at FROM captures WHERE spec_path = ? "
        "OR spec_path LIKE ? ESCAPE '\\' GROUP BY spec_path ORDER BY spec_path != ?, at DESC",
        (spec, "%/" + spec.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"), spec),
    )
    return str(rows[0]["spec_path"]) if rows else None


def _unmeasured(suggestion: Suggestion, why: str) -> Suggestion:
    quality = {**suggestion.quality_evidence, "measured": False, "summary": why}
    return replace(suggestion, quality_evidence=quality)


def _decision(
    request: CycleRequest, suggestion: Suggestion, before: str, after: str, path: str
) -> Decision | None:
    """The change's risk tier by rules, when the repository's settings were given."""
    if request.auto_apply is None:
        return None
    from flujo.learn.tiers import decide_suggestion
    from flujo.spec.autoapply import AutoApply

    decided = decide_suggestion(
        suggestion,
        before,
        after,
        settings=AutoApply.model_validate(request.auto_apply),
        spec_path=path,
        default_branch_green=request.default_branch_green,
        files=[path],
    )
    return Decision(
        tier=decided.tier,
        reason=decided.reason,
        changes=[Judgement(key=j.key, tier=j.tier, reason=j.reason) for j in decided.changes],
        never=list(decided.never),
    )
