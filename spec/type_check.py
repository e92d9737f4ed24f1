"""What `flujo validate` checks of typed steps' neighbours: a step that takes a named type
(a skill's `input_type`, a `jit` step's `input_type`) is given a value of a type that fits,
where the step before it (or the step its `input:` names) declares the type it gives.

Only declared types are compared: an agent step, a container, or a skill typed `any`
gives nothing to check against, and is never reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flujo.spec import paths
from flujo.spec.errors import Severity
from flujo.spec.model import AgentStep, JitStep, Pipeline, StepBase
from flujo.spec.registry import StepRegistry
from flujo.spec.skill_types import fits, plannable

_REFERENCE = re.compile(r"^\s*\{\{\s*(?:steps\.([A-Za-z_]\w*)\.output|(previous))\s*\}\}\s*$")


def type_problems(
    pipeline: Pipeline, registry: StepRegistry
) -> Iterator[tuple[str, str, str, Severity]]:
    """(yaml_path, message, code, severity) for each step given a value of a type it does
    not take."""
    by_name = {step.name: step for _, step in pipeline.walk()}
    lists: list[tuple[str, list[StepBase]]] = [("steps", list(pipeline.steps))]
    for path, step in pipeline.walk():
        for field_path, step_list in step.children():
            lists.append((f"{path}.{field_path}.steps", list(step_list.steps)))
    for list_path, steps in lists:
        for index, step in enumerate(steps):
            taken, _ = _types(step, registry)
            if taken is None:
                continue
            previous = steps[index - 1] if index else None
            source, where = _source(step, previous, by_name)
            if source is None:
                continue
            _, given = _types(source, registry)
            if given is None:
                continue
            severity = fits(given, taken, registry.types)
            if severity is None:
                continue
            path = f"{list_path}[{index}]"
            at = paths.child(path, where if where else _typed_field(step))
            what = "not known to be" if severity == "warning" else "not"
            yield (
                at,
                f"'{step.name}' takes {taken}, but '{source.name}' gives {given} "
                f"({given} is {what} {taken})",
                "type-mismatch",
                severity,
            )


def _types(step: StepBase, registry: StepRegistry) -> tuple[str | None, str | None]:
    """The named types a step takes and gives (None where it declares none)."""
    if isinstance(step, JitStep):
        return _named(step.input_type, registry), _named(step.output_type, registry)
    if isinstance(step, AgentStep) and step.uses and "." not in step.uses.split(":")[0]:
        info = registry.info(step.uses)
        if info is not None and info.kind == "transform":
            return _named(info.input_type, registry), _named(info.output_type, registry)
    return None, None


def _named(type_name: str, registry: StepRegistry) -> str | None:
    return type_name if plannable(type_name, registry.types) else None


def _source(
    step: StepBase, previous: StepBase | None, by_name: dict[str, StepBase]
) -> tuple[StepBase | None, str]:
    """The step whose output `step` is given, and the field that says so ('' when
    implicit): the previous step, or the one a whole-value `input:` template names."""
    given: Any = getattr(step, "input", None)
    if given is None:
        return previous, ""
    found = _REFERENCE.match(given) if isinstance(given, str) else None
    if found is None:
        return None, ""
    if found.group(2):
        return previous, "input"
    return by_name.get(found.group(1)), "input"


def _typed_field(step: StepBase) -> str:
    return "input_type" if isinstance(step, JitStep) else "uses"
