"""What `flujo validate` checks of a `jit` step: types a planner can chain, and skills
that exist and are allowed (a plan can never use more than the registry allows)."""

from __future__ import annotations

from collections.abc import Iterator

from flujo.spec.model import JitStep
from flujo.spec.registry import StepRegistry
from flujo.spec.skill_types import BUILTIN_TYPES, plannable


def jit_problems(
    step: JitStep, registry: StepRegistry
) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """(path segments under the step, message, code) for each problem of `step`."""
    import difflib

    for field_name, type_name in (
        ("input_type", step.input_type),
        ("output_type", step.output_type),
    ):
        if not plannable(type_name, registry.types):
            close = difflib.get_close_matches(type_name, list(BUILTIN_TYPES), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = ", ".join(BUILTIN_TYPES)
            yield (
                (field_name,),
                f"unknown type '{type_name}'{hint} (types: {known})",
                "unknown-type",
            )
    if step.budget.allow is not None:
        from flujo.spec.skill_packs import model_skills

        for index, name in enumerate(step.budget.allow):
            if name in model_skills():
                continue
            problem = registry.problem(name)
            if problem is not None:
                yield ("budget", "allow", index), problem, "unknown-skill"
