"""Risk tiers of a change, decided by rules over the graph-aware diff, never by a model.

`classify(diff, finding, ...)` gives `low`, `medium` or `high` with the reason of each
change; the change's tier is its riskiest change's. `never_automatic(...)` lists why a
change must wait for a person whatever its tier (policies, tests, the repository's
config, files outside the spec, a default branch whose last checks were not green).
Both are pure: same inputs, same answer; nothing is read or run.

- low: retries, timeouts, backoff, an agent's `max_tokens`, usage limits moved within the
  repository's `bounds`; descriptions.
- medium: a model swap within one provider with measured agreement at or above the floor;
  a validator from the registry added; steps reordered that do not read each other.
- high: everything else (steps added or removed, parallelising, a jit plan frozen into
  steps, new skills, prompts, ...).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from flujo.learn.opportunities import Opportunity, reads_previous, refers_to
from flujo.spec.autoapply import AutoApply, Bounds
from flujo.spec.config import CONFIG_NAMES
from flujo.spec.model import Pipeline, StepBase
from flujo.spec.review.diff import Change, SpecDiff, diff_specs
from flujo.spec.skills import BUILTINS

if TYPE_CHECKING:
    from flujo.learn.suggest import Suggestion

Tier = Literal["low", "medium", "high"]
TIERS: tuple[Tier, ...] = ("low", "medium", "high")
_ORDER = {tier: i for i, tier in enumerate(TIERS)}

BUILTIN_VALIDATORS = frozenset(
    fn.__flujo_skill__.name  # type: ignore[attr-defined]
    for fn in BUILTINS
    if fn.__flujo_skill__.kind == "validator"  # type: ignore[attr-defined]
)
"""Validators of the built-in registry; installed plugins' validators are added by callers."""

_PROVIDER_PREFIXES = {
    "gpt-": "openai",
    "o1": "openai",
    "o3": "openai",
    "o4": "openai",
    "chatgpt": "openai",
    "claude": "anthropic",
    "gemini": "google",
    "mistral": "mistral",
}
_UNSEEN_FIELDS = ("imports", "input_schema", "telemetry")
"""Pipeline fields `diff_specs` does not compare: any change there is high risk."""


@dataclass(frozen=True)
class Agreement:
    """Measured agreement of a candidate with today's outputs (`flujo eval`)."""

    agreed: int
    examples: int
    mode: str
    """How it was measured: `live` or `replay` count; `fake` never does."""

    @property
    def rate(self) -> float:
        return self.agreed / self.examples if self.examples else 0.0


@dataclass(frozen=True)
class Judged:
    """One change with its tier and why."""

    key: str
    tier: Tier
    reason: str


@dataclass(frozen=True)
class TierDecision:
    """A change's tier, each of its changes' reasons, and what keeps it from being
    applied automatically (empty: nothing does)."""

    tier: Tier
    reason: str
    changes: tuple[Judged, ...]
    never: tuple[str, ...] = ()

    @property
    def automatic(self) -> bool:
        """Whether any mode but `propose` may be used (the tier's setting decides which)."""
        return not self.never and self.tier != "high"

    def line(self) -> str:
        """One line for a check summary or a PR body."""
        text = f"Tier **{self.tier}**: {self.reason}."
        if self.never:
            text += " Never automatic: " + "; ".join(self.never) + "."
        return text


def classify(
    diff: SpecDiff,
    finding: Opportunity | None,
    *,
    bounds: Bounds,
    floor: float,
    agreement: Agreement | None = None,
    validators: frozenset[str] = BUILTIN_VALIDATORS,
) -> TierDecision:
    """The tier of the change `diff` made for `finding` (None: a hand-written patch)."""
    judged = [_judge(c, diff, bounds, floor, agreement, validators) for c in diff.changes]
    for name in _UNSEEN_FIELDS:
        if _dump(getattr(diff.old, name)) != _dump(getattr(diff.new, name)):
            judged.append(Judged(f"pipeline:{name}", "high", f"changes `{name}:`"))
    if finding is not None and finding.kind == "parallelizable":
        judged.append(Judged("finding", "high", "parallelises steps"))
    if finding is not None and finding.kind == "stable_jit_plan":
        judged.append(Judged("finding", "high", "writes a jit step's plan in as steps"))
    if not judged:
        return TierDecision("high", "no change the graph-aware diff can classify", ())
    tier = max((j.tier for j in judged), key=_ORDER.__getitem__)
    worst = [j.reason for j in judged if j.tier == tier]
    reason = "; ".join(dict.fromkeys(worst))
    if finding is not None:
        reason += f" (finding `{finding.kind}`)"
    return TierDecision(tier, reason, tuple(judged))


def never_automatic(
    diff: SpecDiff,
    files: Iterable[str],
    spec_path: str,
    *,
    default_branch_green: bool | None,
) -> tuple[str, ...]:
    """Why this change must wait for a person whatever its tier (empty: no reason).

    `files` are the repository paths the change writes; `default_branch_green` is whether
    the default branch's last `flujo/test` and `flujo/policy` passed (None: unknown, which
    blocks like a failure: a check that could not judge never passes)."""
    reasons: list[str] = []
    if any(c.subject == "policy" or c.category == "policies" for c in diff.changes):
        reasons.append("it changes `policies:`")
    if any(c.subject == "test" or c.category == "tests" for c in diff.changes):
        reasons.append("it changes `tests:`")
    written = sorted(set(files))
    if any(f in CONFIG_NAMES for f in written):
        reasons.append("it changes the repository's `.github/flujo.yml`")
    outside = [f for f in written if f != spec_path and f not in CONFIG_NAMES]
    if outside:
        reasons.append("it writes files outside the spec: " + ", ".join(f"`{f}`" for f in outside))
    if default_branch_green is None:
        reasons.append("the spec's last default-branch checks are unknown")
    elif not default_branch_green:
        reasons.append("the spec's last default-branch checks were not green")
    return tuple(reasons)


def decide(
    diff: SpecDiff,
    finding: Opportunity | None,
    *,
    files: Iterable[str],
    spec_path: str,
    default_branch_green: bool | None,
    bounds: Bounds,
    floor: float,
    agreement: Agreement | None = None,
    validators: frozenset[str] = BUILTIN_VALIDATORS,
) -> TierDecision:
    """`classify` and `never_automatic` together."""
    from dataclasses import replace

    decision = classify(
        diff, finding, bounds=bounds, floor=floor, agreement=agreement, validators=validators
    )
    never = never_automatic(diff, files, spec_path, default_branch_green=default_branch_green)
    return replace(decision, never=never)


def provider(model: str) -> str | None:
    """The provider of a model name (`openai:gpt-4o`, `anthropic/claude-3`, `gpt-4o`)."""
    for separator in (":", "/"):
        if separator in model:
            return model.split(separator, 1)[0].lower() or None
    lowered = model.lower()
    for prefix, name in _PROVIDER_PREFIXES.items():
        if lowered.startswith(prefix):
            return name
    return None


# -- one change ----------------------------------------------------------------------


def _judge(
    change: Change,
    diff: SpecDiff,
    bounds: Bounds,
    floor: float,
    agreement: Agreement | None,
    validators: frozenset[str],
) -> Judged:
    key = change.key

    def low(reason: str) -> Judged:
        return Judged(key, "low", reason)

    def high(reason: str) -> Judged:
        return Judged(key, "high", reason)

    if change.subject == "policy":
        return high(f"changes policy `{change.name}`")
    if change.subject == "test":
        return high(f"changes test `{change.name}`")
    if change.category == "description" and change.kind == "changed":
        return low(f"changes the description of {_what(change)}")
    if change.subject == "step" and change.kind == "changed":
        field = change.field
        if field == "config.max_retries":
            if isinstance(change.after, int) and change.after <= bounds.max_retries:
                return low(f"sets max_retries of `{change.name}` to {change.after}")
            return high(
                f"max_retries {change.after} of `{change.name}` is beyond the repository's "
                f"bound ({bounds.max_retries})"
            )
        if field == "config.timeout_s":
            after = change.after
            if isinstance(after, int | float) and (
                bounds.timeout_s_min <= after <= bounds.timeout_s_max
            ):
                return low(f"sets timeout_s of `{change.name}` to {after:g}")
            return high(
                f"timeout_s {after} of `{change.name}` is outside the repository's bounds "
                f"({bounds.timeout_s_min:g}–{bounds.timeout_s_max:g})"
            )
        if field == "config.backoff":
            delays = [v for k, v in dict(change.after or {}).items() if k.endswith("_s")]
            if all(isinstance(v, int | float) and v <= bounds.backoff_max_s for v in delays):
                return low(f"changes the backoff of `{change.name}`")
            return high(
                f"a backoff delay of `{change.name}` is beyond the repository's bound "
                f"({bounds.backoff_max_s:g}s)"
            )
    if change.subject == "agent" and change.kind == "changed":
        if change.field == "max_tokens":
            after = change.after
            if isinstance(after, int) and after <= bounds.max_tokens:
                return low(f"sets max_tokens of agent `{change.name}` to {after}")
            return high(
                f"max_tokens {after} of agent `{change.name}` is beyond the repository's "
                f"bound ({bounds.max_tokens})"
            )
        if change.field == "model":
            return _model_swap(change, floor, agreement)
    if change.subject == "pipeline" and change.category == "limits":
        return _usage_limit(change, bounds)
    if change.category == "validators" and change.kind == "added":
        name = str(change.detail.get("validator", ""))
        if name in validators:
            return Judged(key, "medium", f"adds validator `{name}` from the registry")
        return high(f"adds validator `{name}`, which is not in the registry")
    if change.kind == "moved" and not change.detail.get("reparented", True):
        problem = _reorder_problem(diff, change.name)
        if problem is None:
            return Judged(key, "medium", f"reorders `{change.name}` among steps it does not read")
        return high(problem)
    return high(_label(change))


def _model_swap(change: Change, floor: float, agreement: Agreement | None) -> Judged:
    before, after = str(change.before), str(change.after)
    old_provider, new_provider = provider(before), provider(after)
    if old_provider is None or old_provider != new_provider:
        return Judged(change.key, "high", f"swaps model `{before}` for `{after}` across providers")
    if agreement is None or agreement.mode not in ("live", "replay") or not agreement.examples:
        return Judged(
            change.key,
            "high",
            f"swaps model `{before}` for `{after}` with no measured agreement",
        )
    if agreement.rate < floor:
        return Judged(
            change.key,
            "high",
            f"swaps model `{before}` for `{after}`: agreement {agreement.rate:.0%} "
            f"({agreement.agreed} of {agreement.examples} {agreement.mode} examples) is "
            f"below the floor {floor:.0%}",
        )
    return Judged(
        change.key,
        "medium",
        f"swaps model `{before}` for `{after}` within {old_provider}: agreement "
        f"{agreement.rate:.0%} ({agreement.agreed} of {agreement.examples} {agreement.mode} "
        f"examples, floor {floor:.0%})",
    )


def _usage_limit(change: Change, bounds: Bounds) -> Judged:
    before, after = change.before, change.after
    name = change.field.removeprefix("usage_limits.")
    if isinstance(before, int | float) and isinstance(after, int | float) and before > 0:
        ratio = after / before
        factor = bounds.usage_limit_factor
        if 1 / factor <= ratio <= factor:
            return Judged(
                change.key, "low", f"moves usage limit {name} from {before:g} to {after:g}"
            )
        return Judged(
            change.key,
            "high",
            f"moves usage limit {name} by {ratio:.2g}x, beyond the repository's bound "
            f"({factor:g}x)",
        )
    return Judged(change.key, "high", f"adds or removes usage limit {name}")


def _reorder_problem(diff: SpecDiff, name: str) -> str | None:
    """Why reordering `name` among its siblings may change what a step reads (None: it
    cannot)."""
    old_list, new_list = _siblings(diff.old, name), _siblings(diff.new, name)
    if old_list is None or new_list is None:
        return f"moves `{name}` in a way the diff cannot place"
    old_names = [s.name for s in old_list]
    new_names = [s.name for s in new_list]
    by_name = {s.name: s for s in new_list}
    swapped = [
        (a, b)
        for i, a in enumerate(new_names)
        for b in new_names[i + 1 :]
        if a in old_names and b in old_names and old_names.index(a) > old_names.index(b)
    ]
    for a, b in swapped:
        if refers_to(by_name[a], b) or refers_to(by_name[b], a):
            return f"reorders `{a}` and `{b}`, and one reads the other"
    for i, step_name in enumerate(new_names):
        before = new_names[i - 1] if i else None
        j = old_names.index(step_name) if step_name in old_names else -1
        old_before = old_names[j - 1] if j > 0 else None
        if before != old_before and reads_previous(by_name[step_name]):
            return f"reorders steps before `{step_name}`, which reads the previous step's output"
    return None


def _siblings(pipeline: Pipeline, name: str) -> list[StepBase] | None:
    lists: list[list[StepBase]] = [list(pipeline.steps)]
    for _, step in pipeline.walk():
        lists.extend(list(step_list.steps) for _, step_list in step.children())
    for steps in lists:
        if any(s.name == name for s in steps):
            return steps
    return None


def _what(change: Change) -> str:
    if change.subject == "pipeline":
        return "the pipeline"
    return f"{change.subject} `{change.name}`"


def _label(change: Change) -> str:
    if change.subject == "step" and change.category == "step":
        if change.kind in ("added", "removed"):
            return f"{change.kind} step `{change.name}`"
        if change.kind == "moved":
            return f"moves step `{change.name}` to another parent"
    where = f"{_what(change)}" + (f" ({change.field})" if change.field else "")
    return f"{change.kind} {change.category} of {where}"


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    return value


def agreement_of(quality: dict[str, Any]) -> Agreement | None:
    """The measured agreement in a suggestion's quality evidence (None: not measured)."""
    if not quality.get("measured") or not quality.get("examples"):
        return None
    return Agreement(int(quality["agreed"]), int(quality["examples"]), str(quality.get("mode")))


def decide_suggestion(
    suggestion: Suggestion,
    before: str,
    after: str,
    *,
    settings: AutoApply,
    spec_path: str,
    default_branch_green: bool | None,
    files: Iterable[str] | None = None,
    validators: frozenset[str] = BUILTIN_VALIDATORS,
) -> TierDecision:
    """The tier of a verified suggestion: its spec before and after its patch."""
    from flujo.spec.load import validate_document
    from flujo.spec.source import parse

    old, _ = validate_document(parse(before, spec_path))
    new, _ = validate_document(parse(after, spec_path))
    if old is None or new is None:
        return TierDecision("high", "the spec does not load on both sides", ())
    return decide(
        diff_specs(old, new),
        suggestion.opportunity,
        files=[spec_path] if files is None else files,
        spec_path=spec_path,
        default_branch_green=default_branch_green,
        bounds=settings.bounds,
        floor=settings.agreement_floor,
        agreement=agreement_of(suggestion.quality_evidence),
        validators=validators,
    )
