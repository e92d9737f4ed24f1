"""Prompt Guard: every Meta-Agent patch goes through here.

It builds the prompt (the spec format's JSON Schema, the skill manifest, the current spec,
the opportunity with its evidence, curated few-shot patches and rejected ones), then
parses the reply as an RFC 6902 patch and accepts it only if it applies, stays inside
what the opportunity allows, references only known steps, agents and skills, keeps the
schema and passes `flujo validate`. A rejected reply is fed back with its reason, up to
a limit. Every outcome is counted in `GuardStats`.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from flujo.learn.feedback import Feedback, normalised_patch, patch_hash

if TYPE_CHECKING:
    from flujo.learn.opportunities import Opportunity
    from flujo.spec.registry import StepRegistry

Reason = Literal[
    "not_json",
    "not_a_patch",
    "no_change",
    "out_of_scope",
    "path_not_found",
    "previously_rejected",
    "schema",
    "unknown_reference",
    "invalid",
]
OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
MAX_ATTEMPTS = 3
FEW_SHOTS = 8
_SCHEMA_CODES = frozenset({"schema", "unknown-key", "unknown-kind", "invalid-name"})
_REFERENCE_CODES = frozenset({"unknown-agent", "unknown-skill", "unknown-step"})
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n\s*```\s*$", re.DOTALL)

Messages = list[dict[str, str]]
Ask = Callable[[Messages], Awaitable[str]]


@dataclass(frozen=True)
class FewShot:
    kind: str
    why: str
    spec: str
    patch: list[dict[str, Any]]


@lru_cache(maxsize=1)
def few_shots() -> tuple[FewShot, ...]:
    """The curated library of correct patches shipped with Flujo."""
    from flujo.spec.source import parse

    folder = resources.files("flujo.learn").joinpath("few_shot")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            data = parse(entry.read_text(encoding="utf-8"), entry.name).data
            out.append(FewShot(data["kind"], data["why"], data["spec"], data["patch"]))
    return tuple(out)


@dataclass
class GuardStats:
    """How replies fared: accepted, and rejected by reason."""

    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "rejected": dict(sorted(self.rejected.items()))}


@dataclass(frozen=True)
class Verdict:
    """The guard's decision on one reply."""

    patch: list[dict[str, Any]] | None
    text: str | None = None
    """The patched spec text (accepted replies only)."""
    reason: Reason | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.reason is None


@dataclass
class Outcome:
    """The result of asking for one opportunity: an accepted patch or the last rejection."""

    verdict: Verdict
    attempts: int
    rejections: list[Verdict] = field(default_factory=list)


class PromptGuard:
    """Builds prompts for, and judges replies about, one spec."""

    def __init__(
        self,
        spec_text: str,
        *,
        file: str = "<string>",
        registry: StepRegistry | None = None,
        negatives: list[Feedback] | None = None,
        stats: GuardStats | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        from flujo.spec.source import parse

        self.spec_text = spec_text
        self.file = file
        self.registry = registry
        self.negatives = negatives or []
        self.stats = stats if stats is not None else GuardStats()
        self.max_attempts = max_attempts
        self.data = parse(spec_text, file).data
        self._rejected = {n.patch_hash for n in self.negatives}

    # -- the prompt ------------------------------------------------------------------------

    def messages(self, opportunity: Opportunity) -> Messages:
        """System and user messages asking for a patch for `opportunity`."""
        from flujo.spec.registry import StepRegistry
        from flujo.spec.schema import pipeline_schema

        registry = self.registry or StepRegistry()
        skills = "\n".join(f"- {s.name}: {s.summary}" for s in registry.manifest())
        shots = sorted(few_shots(), key=lambda s: s.kind != opportunity.kind)[:FEW_SHOTS]
        examples = "\n\n".join(
            f"Opportunity ({s.kind}): {s.why}\nSpec excerpt:\n{s.spec}\nPatch: "
            + json.dumps({"patch": s.patch})
            for s in shots
        )
        negatives = "\n".join(
            f"- {normalised_patch(n.patch)} (rejected: {n.reason})" for n in self.negatives
        )
        schema = json.dumps(pipeline_schema(), separators=(",", ":"))
        system = (
            "You improve Flujo pipeline specs (YAML) with small, reviewable JSON Patches.\n"
            'Reply with ONLY a JSON object: {"patch": [RFC 6902 operations], "rationale": '
            '"one sentence"}.\nRules: paths are JSON Pointers into the spec document; change '
            "only what the opportunity allows; use only agents defined in the spec and skills "
            "listed below; the patched spec must satisfy the JSON Schema.\n\n"
            f"JSON Schema of the spec format:\n{schema}"
            f"\n\nSkills (registry manifest):\n{skills}\n\n"
            f"Examples of correct patches:\n\n{examples}"
        )
        if negatives:
            system += f"\n\nRejected patches (never propose these again):\n{negatives}"
        allowed = ", ".join(opportunity.scope)
        user = (
            f"Spec ({self.file}):\n{self.spec_text}\n\n"
            f"Opportunity: {json.dumps(opportunity.to_dict(), default=str)}\n\n"
            f"The patch may touch only {allowed} and have at most {opportunity.max_ops} "
            "operations."
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    # -- judging ---------------------------------------------------------------------------

    def judge(self, reply: str, opportunity: Opportunity) -> Verdict:
        """Accept or reject one reply (and count the outcome)."""
        verdict = self._judge(reply, opportunity)
        if verdict.accepted:
            self.stats.accepted += 1
        else:
            self.stats.rejected[verdict.reason or "invalid"] += 1
        return verdict

    def _judge(self, reply: str, opportunity: Opportunity) -> Verdict:
        import jsonpatch
        import jsonpointer

        from flujo.spec.edit import PatchError, apply_patch
        from flujo.spec.errors import SpecError
        from flujo.spec.load import check

        patch, problem = _parse(reply)
        if patch is None:
            return Verdict(None, reason=problem[0], detail=problem[1])
        if not patch:
            return Verdict(patch, reason="no_change", detail="the patch has no operations")
        if len(patch) > opportunity.max_ops:
            detail = f"{len(patch)} operations; this opportunity allows {opportunity.max_ops}"
            return Verdict(patch, reason="out_of_scope", detail=detail)
        try:
            jsonpatch.apply_patch(copy.deepcopy(self.data), patch)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            return Verdict(patch, reason="path_not_found", detail=str(exc))
        for op in patch:
            for key in ("path", "from"):
                if key in op and not opportunity.allows(op[key]):
                    detail = f"{op[key]} is outside {', '.join(opportunity.scope)}"
                    return Verdict(patch, reason="out_of_scope", detail=detail)
        if patch_hash(patch) in self._rejected:
            return Verdict(patch, reason="previously_rejected", detail="a person rejected it")
        try:
            text = apply_patch(self.spec_text, patch, file=self.file)
            _, diagnostics = check(text, registry=self.registry)
        except PatchError as exc:
            return Verdict(patch, reason="path_not_found", detail=str(exc))
        except SpecError as exc:
            diagnostics = exc.diagnostics
        if text == self.spec_text:
            return Verdict(patch, reason="no_change", detail="the spec is unchanged")
        errors = [d for d in diagnostics if d.severity == "error"]
        for codes, reason in ((_SCHEMA_CODES, "schema"), (_REFERENCE_CODES, "unknown_reference")):
            hit = next((d for d in errors if d.code in codes), None)
            if hit is not None:
                return Verdict(patch, reason=reason, detail=f"{hit.message} ({hit.yaml_path})")  # type: ignore[arg-type]
        if errors:
            return Verdict(patch, reason="invalid", detail=f"{errors[0].message}")
        unknown = _new_unpriced_models(self.data, jsonpatch.apply_patch(self.data, patch))
        if unknown:
            detail = f"model '{unknown}' is not in the price table nor used in the spec"
            return Verdict(patch, reason="unknown_reference", detail=detail)
        return Verdict(patch, text=text)

    async def run(self, opportunity: Opportunity, ask: Ask) -> Outcome:
        """Ask for a patch; on rejection, feed the reason back and ask again (bounded)."""
        messages = self.messages(opportunity)
        rejections: list[Verdict] = []
        for attempt in range(1, self.max_attempts + 1):
            reply = await ask(messages)
            verdict = self.judge(reply, opportunity)
            if verdict.accepted:
                return Outcome(verdict, attempt, rejections)
            rejections.append(verdict)
            messages = [
                *messages,
                {"role": "assistant", "content": reply},
                {
                    "role": "user",
                    "content": f"Rejected ({verdict.reason}): {verdict.detail}. "
                    "Reply again with a corrected JSON object.",
                },
            ]
        return Outcome(rejections[-1], self.max_attempts, rejections)


def _new_unpriced_models(before: Any, after: Any) -> str | None:
    """A model the patch introduces that Flujo knows nothing about (likely made up)."""
    from flujo.engine.pricing import price_for

    def models(data: Any) -> set[str]:
        agents = data.get("agents") if isinstance(data, dict) else None
        if not isinstance(agents, dict):
            return set()
        return {a["model"] for a in agents.values() if isinstance(a, dict) and "model" in a}

    for model in sorted(models(after) - models(before)):
        if price_for(model) is None:
            return model
    return None


def _parse(reply: str) -> tuple[list[dict[str, Any]] | None, tuple[Reason, str]]:
    fenced = _FENCE.match(reply)
    try:
        data = json.loads(fenced.group(1) if fenced else reply)
    except ValueError as exc:
        return None, ("not_json", f"the reply is not JSON ({exc})")
    if isinstance(data, dict) and "patch" in data:
        data = data["patch"]
    if not isinstance(data, list) or not all(isinstance(op, dict) for op in data):
        return None, ("not_a_patch", "expected a list of JSON Patch operations")
    for i, op in enumerate(data):
        if op.get("op") not in OPS or not isinstance(op.get("path"), str):
            return None, ("not_a_patch", f"operation {i} needs `op` (one of RFC 6902's) and `path`")
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            return None, ("not_a_patch", f"operation {i} ({op['op']}) needs a `value`")
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            return None, ("not_a_patch", f"operation {i} ({op['op']}) needs `from`")
    return data, ("not_a_patch", "")
