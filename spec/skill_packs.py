"""Model-backed skills: a prompt, a model and the checks its output must pass, packaged as
a typed skill (`spec/skillpacks/*.yml`), each with the sample set that characterises it.

They are registry entries a planner can chain (`text_to_sql`: `str` → `SQL`); a plan
that uses one becomes an agent step of the pipeline it builds (`fragment.py`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flujo.spec.skills import Param, SkillInfo

PACKS = Path(__file__).parent / "skillpacks"
ORIGIN = "model"


class PackParam(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "any"
    required: bool = False
    description: str = ""


class Check(BaseModel):
    """A validator the output must pass; `{$param: NAME}` in `with` takes a parameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uses: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")


class Samples(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    params: dict[str, Any] = Field(default_factory=dict)
    inputs: list[Any] = Field(min_length=1)


class ModelSkill(BaseModel):
    """One model-backed skill."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    summary: str
    input: str
    output: str
    model: str
    system_prompt: str
    max_tokens: int | None = None
    output_schema: dict[str, Any] | None = None
    """The reply's JSON Schema (asked of the model as structured output); `{$param: NAME}`
    takes a parameter, as in `check`."""
    params: dict[str, PackParam] = Field(default_factory=dict)
    check: list[str | Check] = Field(default_factory=list)
    samples: Samples

    def info(self) -> SkillInfo:
        return SkillInfo(
            name=self.name,
            target=f"flujo.skillpacks:{self.name}",
            summary=self.summary,
            input_type=self.input,
            output_type=self.output,
            params={k: Param(p.type, p.required, p.description) for k, p in self.params.items()},  # type: ignore[arg-type]
            origin=ORIGIN,
        )

    def agent_data(self, params: dict[str, Any]) -> dict[str, Any]:
        """The agent this skill runs as, with its prompt rendered from `params` (the
        template sandbox's `params`), as spec data."""
        from flujo.spec.templating import render_bounded, untrusted_environment

        prompt = render_bounded(
            untrusted_environment().from_string(self.system_prompt), {"params": params}
        )
        agent: dict[str, Any] = {"model": self.model, "system_prompt": prompt}
        if self.max_tokens is not None:
            agent["max_tokens"] = self.max_tokens
        if self.output_schema is not None:  # `{$param: NAME}` as in the checks
            agent["output_schema"] = _substitute(self.output_schema, params)
        return agent

    def checks(self, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """The validators of the output, with `{$param: NAME}` replaced from `params`."""
        return [
            (c, {}) if isinstance(c, str) else (c.uses, _substitute(c.with_, params))
            for c in self.check
        ]


def _substitute(value: Any, params: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$param"}:
            return params.get(str(value["$param"]))
        return {k: _substitute(v, params) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, params) for v in value]
    return value


@cache
def model_skills() -> dict[str, ModelSkill]:
    """The packaged model-backed skills, by name."""
    from flujo.spec.source import parse

    found = {}
    for path in sorted(PACKS.glob("*.yml")):
        skill = ModelSkill.model_validate(parse(path.read_bytes(), path.name).data)
        found[skill.name] = skill
    return found
