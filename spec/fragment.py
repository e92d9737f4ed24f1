"""A plan of typed skills as a pipeline: the steps a planner's chain becomes.

Built-in and plugin skills become `uses: NAME` steps, given the parameters they declare
from `params`; a model-backed skill becomes an agent (its prompt rendered with `params`
in the template sandbox) and a step that uses it, with the skill's checks as validators.
Each step receives the previous one's output, the first the pipeline's input. The result
is spec data, loaded and checked like any spec before anything runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from flujo.spec.skill_packs import model_skills


def fragment(
    skills: Sequence[str],
    params: dict[str, Any],
    *,
    name: str = "plan",
    declared: dict[str, set[str]] | None = None,
    prefix: str = "s",
) -> dict[str, Any]:
    """Spec data running `skills` in order, in steps named `PREFIX-INDEX-SKILL`.
    `declared`: the parameter names of each non-model skill (from the registry), so each
    gets only its own."""
    agents: dict[str, Any] = {}
    steps: list[dict[str, Any]] = []
    packs = model_skills()
    for index, skill in enumerate(skills):
        step: dict[str, Any] = {"name": f"{prefix[:40]}-{index}-{skill}"[:64]}
        pack = packs.get(skill)
        if pack is not None:
            agents[skill] = pack.agent_data(params)
            step["uses"] = f"agents.{skill}"
            checks = [
                uses if not given else {"uses": uses, "with": given}
                for uses, given in pack.checks(params)
            ]
            if checks:
                step["validators"] = checks
        else:
            step["uses"] = skill
            wanted = (declared or {}).get(skill, set())
            given = {k: v for k, v in params.items() if k in wanted}
            if given:
                step["with"] = given
        steps.append(step)
    data: dict[str, Any] = {"version": "1", "name": name, "steps": steps}
    if agents:
        data["agents"] = agents
    return data


def fragment_text(data: dict[str, Any]) -> str:
    """Spec data as YAML text (JSON is YAML), for loading and checking."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def frozen_steps(
    skills: Sequence[str],
    params: dict[str, Any],
    *,
    name: str,
    declared: dict[str, set[str]],
    input: Any = None,
    keep: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """A `jit` step's plan written as ordinary steps, to stand where the step `name` is:
    every skill by name (a model-backed one too: `uses: text_to_sql_mini`), given the
    parameters it declares; the first takes the jit step's `input:`, the last takes its
    name (so `steps.NAME.output` still reads the plan's output) and `keep` (its
    description, `critical`). The others are named as the plan's steps ran
    (`NAME-0-SKILL`)."""
    steps: list[dict[str, Any]] = []
    for index, skill in enumerate(skills):
        last = index == len(skills) - 1
        step: dict[str, Any] = {"name": name if last else f"{name[:40]}-{index}-{skill}"[:64]}
        step["uses"] = skill
        if index == 0 and input is not None:
            step["input"] = input
        given = {k: v for k, v in params.items() if k in declared.get(skill, set())}
        if given:
            step["with"] = given
        if last:
            step |= keep or {}
        steps.append(step)
    return steps
