"""What a step's output decides, read from the spec: the basis of a suggestion's risk.

A step whose output picks a branch, ends a loop, moves a state machine, is judged by a
policy or checked by another step's validator *decides* something; one read by another
model, a skill or a person *feeds* it; one only returned or shown is *display* only. A
spec may mark a step `critical: true` (safety, money, compliance). A change that may
alter a step's outputs is as risky as what the output decides (display low, feeds medium,
decides high); any change to a critical step is high risk. `watch_for` names the concrete
failure a reviewer should look for. Reads only the spec; costs one pass over its steps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from flujo.learn.roi import Risk
    from flujo.spec.model import Pipeline, StepBase

Level = Literal["display", "feeds", "decides", "critical"]
Use = Literal["branch", "loop", "state", "policy", "validator", "model", "skill", "person", "map"]
DECIDES: frozenset[str] = frozenset({"branch", "loop", "state", "policy", "validator"})
RISK_OF_LEVEL: dict[Level, Risk] = {
    "display": "low",
    "feeds": "medium",
    "decides": "high",
    "critical": "high",
}
OUTPUT_CHANGING = frozenset(
    {"cheaper_model", "expensive_step", "long_prompt", "repeated_call", "fallback_rescues"}
)
"""Kinds of finding whose patch may change what a step answers."""
_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class Consumer:
    """Something that reads the step's output."""

    use: Use
    name: str
    """The step or policy that reads it."""
    detail: str = ""


@dataclass(frozen=True)
class StepRole:
    step: str
    does: str
    """What the step does, in one sentence (its description, else its agent's prompt)."""
    critical: bool
    consumers: tuple[Consumer, ...]
    returned: bool
    """Its output is what the pipeline returns."""

    @property
    def level(self) -> Level:
        if self.critical:
            return "critical"
        if any(c.use in DECIDES for c in self.consumers):
            return "decides"
        return "feeds" if self.consumers else "display"

    def decides(self) -> str:
        """What the output is used for, e.g. "picks the branch of `route`; is judged by
        policy `refunds`"."""
        parts = [_USE_TEXT[c.use].format(name=c.name, detail=c.detail) for c in self.consumers]
        if self.returned:
            parts.append("is what the pipeline returns")
        if not parts:
            parts.append("is read by nothing else (display only)")
        return "; ".join(dict.fromkeys(parts))

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "does": self.does,
            "level": self.level,
            "critical": self.critical,
            "decides": self.decides(),
            "used_by": [{"use": c.use, "name": c.name} for c in self.consumers],
        }


_USE_TEXT: dict[str, str] = {
    "branch": "picks the branch of `{name}`{detail}",
    "loop": "decides when loop `{name}` stops",
    "state": "moves state machine `{name}`",
    "policy": "is judged by policy `{name}`",
    "validator": "is checked by a validator of `{name}`",
    "model": "is read by model step `{name}`",
    "skill": "is read by step `{name}`",
    "person": "is shown to a person at `{name}`",
    "map": "gives the items `{name}` maps over",
}


def roles(pipeline: Pipeline, steps: list[str]) -> list[StepRole]:
    """The role of each named step of `pipeline` (unknown names are skipped)."""
    known = {s.name: s for _, s in pipeline.walk()}
    return [role_of(pipeline, known[n]) for n in steps if n in known]


def role_of(pipeline: Pipeline, step: StepBase) -> StepRole:
    from flujo.spec.model import (
        AgentStep,
        ConditionalStep,
        HitlStep,
        LoopStep,
        MapStep,
        StateMachineStep,
    )

    refs = _reference(step)
    consumers: list[Consumer] = []
    follower = _follower(pipeline, step.name)
    for _, other in pipeline.walk():
        if other.name == step.name:
            continue
        reads_previous = other is follower
        if isinstance(other, ConditionalStep):
            text = other.condition_expression or other.condition or ""
            if refs(text) or (reads_previous and ("previous" in text or other.condition)):
                values = ", ".join(list(other.branches)[:5])
                consumers.append(Consumer("branch", other.name, f" ({values})"))
        elif isinstance(other, LoopStep):
            if refs(other.exit_expression or "") or (
                reads_previous and "previous" in (other.exit_expression or "")
            ):
                consumers.append(Consumer("loop", other.name))
        elif isinstance(other, StateMachineStep):
            if any(refs(t.when or "") for t in other.transitions):
                consumers.append(Consumer("state", other.name))
        elif isinstance(other, MapStep):
            if refs(other.over) or (reads_previous and "previous" in other.over):
                consumers.append(Consumer("map", other.name))
        elif isinstance(other, HitlStep):
            if refs(other.message or "") or (reads_previous and other.message is None):
                consumers.append(Consumer("person", other.name))
        elif isinstance(other, AgentStep):
            if any(refs(repr(v.with_)) for v in other.validators):
                consumers.append(Consumer("validator", other.name))
            text = repr(other.input) + repr(other.with_)
            implicit = reads_previous and (other.input is None or "previous" in text)
            if refs(text) or implicit:
                model = (other.uses or "").startswith("agents.")
                consumers.append(Consumer("model" if model else "skill", other.name))
    if isinstance(step, AgentStep) and any(refs(repr(v.with_)) for v in step.validators):
        consumers.append(Consumer("validator", step.name))
    for policy in pipeline.policies:
        if refs(f"{policy.when or ''} {policy.assert_}"):
            consumers.append(Consumer("policy", policy.id))
    returned = bool(pipeline.steps) and pipeline.steps[-1].name == step.name
    return StepRole(step.name, _does(pipeline, step), step.critical, tuple(consumers), returned)


def risk_for(kind: str, base: Risk, found: list[StepRole]) -> Risk:
    """The risk of a change of `kind` (`base`: the kind's own) to steps with these roles:
    high for a critical step; for a change that may alter outputs, that of the step whose
    output decides the most."""
    if any(r.critical for r in found):
        return "high"
    if kind in OUTPUT_CHANGING and found:
        return max((RISK_OF_LEVEL[r.level] for r in found), key=_RANK.__getitem__)
    return base


def watch_for(kind: str, role: StepRole, facts: dict[str, Any]) -> str:
    """The concrete failure a reviewer should look for after a change of `kind`."""
    what = _WORSE.get(kind, "")
    if kind == "expensive_step":
        what = f"replies longer than {facts.get('max_tokens', 'the cap')} tokens are cut off"
    elif kind in ("frequent_retries", "flaky_validator"):
        what = "runs that fail at this step make more attempts (cost and latency) before failing"
    elif kind in ("frequent_timeouts", "loose_timeout"):
        what = f"an attempt slower than {facts.get('timeout_s', 'the new')} s is cut off"
    if not what:
        return ""
    effects = [_EFFECT[c.use].format(name=c.name) for c in role.consumers if c.use in _EFFECT]
    if role.returned and not role.consumers:
        effects.append("the answer people get is worse")
    if role.critical:
        effects.insert(0, "the step is marked critical")
    tail = f": {'; '.join(dict.fromkeys(effects))}" if effects else ""
    return f"{what}{tail}".replace("{step}", role.step)


_WORSE = {
    "cheaper_model": "the smaller model answers `{step}` wrongly or in another shape",
    "long_prompt": "`{step}` behaves differently without the instructions that were cut",
    "repeated_call": "`{step}` no longer gets a second, independent answer",
    "fallback_rescues": "runs in which the old primary answered now get the fallback's answer",
    "loop_at_max": "the loop stops earlier than it does today",
    "stable_jit_plan": "`{step}` keeps these steps: a better plan (a cheaper or newly "
    "measured skill) is no longer picked at run time",
}
_EFFECT = {
    "branch": "a wrong answer sends the run down the wrong branch of `{name}`",
    "loop": "loop `{name}` stops too early or runs to its limit",
    "state": "state machine `{name}` moves to the wrong state",
    "policy": "policy `{name}` passes or fails runs it should not",
    "validator": "the validator of `{name}` rejects good outputs or lets bad ones through",
    "model": "`{name}` builds on the mistake",
    "skill": "`{name}` works on a wrong input",
    "person": "the person at `{name}` is shown a wrong answer",
    "map": "`{name}` maps over the wrong items",
}


def _does(pipeline: Pipeline, step: StepBase) -> str:
    from flujo.spec.model import AgentStep

    if step.description and step.description.strip():
        return _sentence(step.description)
    uses = step.uses if isinstance(step, AgentStep) else None
    if uses and uses.startswith("agents."):
        agent = pipeline.agents.get(uses.removeprefix("agents."))
        if agent is not None:
            shape = _shape(agent.output_schema)
            prompt = _sentence(agent.system_prompt) if agent.system_prompt.strip() else ""
            told = f'asks {agent.model} "{prompt}"' if prompt else f"asks {agent.model}"
            return told + (f" and answers {shape}" if shape else "")
    if uses:
        return f"runs `{uses}`"
    goal = getattr(step, "goal", None)
    if step.kind == "jit" and isinstance(goal, str):
        return f'plans its steps at run time for "{_sentence(goal)}"'
    return f"a {step.kind} step"


def _sentence(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    end = re.search(r"(?<=[.!?])\s", flat)
    first = flat[: end.start()] if end else flat
    return first if len(first) <= limit else first[: limit - 1] + "…"


def _shape(schema: dict[str, Any] | None) -> str:
    """A short description of an output schema: `{label: billing|bug|other}`."""
    if not isinstance(schema, dict):
        return ""
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        return ""
    parts = []
    for name, sub in list(props.items())[:4]:
        enum = sub.get("enum") if isinstance(sub, dict) else None
        if isinstance(enum, list) and enum:
            parts.append(f"{name}: {'|'.join(str(v) for v in enum[:6])}")
        else:
            parts.append(str(name))
    return "{" + ", ".join(parts) + "}"


def _reference(step: StepBase) -> Any:
    """A test: does this text read the step's output (by name, or its context key)?"""
    name = re.escape(step.name)
    patterns = [rf"steps\s*(\.\s*{name}\b|\[\s*['\"]{name}['\"])"]
    if step.sink_to:
        patterns.append(rf"context\s*\.\s*{re.escape(step.sink_to)}\b")
    found = re.compile("|".join(patterns))
    return lambda text: bool(text) and found.search(text) is not None


def _follower(pipeline: Pipeline, name: str) -> StepBase | None:
    """The step after `name` in its step list (it reads `previous`)."""
    lists: list[list[Any]] = [list(pipeline.steps)]
    for _, step in pipeline.walk():
        lists += [list(sl.steps) for _, sl in step.children()]
    for steps in lists:
        for i, step in enumerate(steps[:-1]):
            if step.name == name:
                return steps[i + 1]  # type: ignore[no-any-return]
    return None
