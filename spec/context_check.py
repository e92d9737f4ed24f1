"""The run context at check time: which keys the spec writes, and reads of other keys.

A read of `context.KEY` (in a template or an expression) that no step writes is a
warning at its place: the input (a mapping) may provide it, and 0.x typed contexts
declared fields with defaults. Writers are `sink_to`, `updates_context` (the properties
of the agent's `output_schema`) and the context skills (`path` of a constant input).
When a step merges an output whose keys cannot be known, nothing is reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from flujo.spec import paths
from flujo.spec.model import (
    AgentStep,
    ConditionalStep,
    HitlStep,
    LoopStep,
    MapStep,
    Pipeline,
    StateMachineStep,
    StepBase,
)

_READ = re.compile(
    r"\bcontext\s*(?:\.\s*get\s*\(\s*['\"]([A-Za-z_]\w*)|\[\s*['\"]([A-Za-z_]\w*)"
    r"|\.\s*([A-Za-z_]\w*))"
)
_CONTEXT_SKILLS = ("flujo.builtins:context_set", "flujo.builtins:context_merge")
LEGACY_KEYS = frozenset({"initial_prompt", "scratchpad", "import_artifacts"})
"""Keys a flujo 0.x file's context starts with."""

Report = Callable[[str, str, int], None]
"""report(path, message, offset): a warning at a place."""


def written_keys(pipeline: Pipeline) -> set[str] | None:
    """Top-level context keys the pipeline may write (None: any key, it cannot be known)."""
    keys: set[str] = set()
    source = pipeline.source
    if source is not None and source.lenient:
        keys |= LEGACY_KEYS
    schema = pipeline.input_schema or {}
    keys |= set(schema.get("properties", {}) or {})
    for _, step in pipeline.walk():
        if step.sink_to is not None:
            keys.add(step.sink_to.split(".")[0])
        if isinstance(step, AgentStep) and step.uses in _CONTEXT_SKILLS:
            path = step.input.get("path") if isinstance(step.input, dict) else None
            if not isinstance(path, str) or "{" in path:
                return None
            keys.add(path.split(".")[0])
            continue
        if step.updates_context:
            merged = _output_keys(pipeline, step)
            if merged is None:
                return None
            keys |= merged
    return keys


def _output_keys(pipeline: Pipeline, step: StepBase) -> set[str] | None:
    if not isinstance(step, AgentStep) or step.uses is None:
        return None
    if step.uses.startswith("agents."):
        agent = pipeline.agents.get(step.uses[len("agents.") :])
        schema = agent.output_schema if agent is not None else None
        if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
            return set(schema["properties"])
    if step.uses == "flujo.builtins:validation_report_to_flag":
        return {"yaml_is_valid"}
    if step.uses == "flujo.builtins:capture_validation_report":
        return {"validation_report", "yaml_is_valid"}
    return None


def _texts(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, paths.child(path, str(key)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _texts(item, f"{path}[{i}]")


def _reads(pipeline: Pipeline) -> Iterator[tuple[str, str]]:
    """(path, text) of every template and expression that may read `context`."""
    for path, step in pipeline.walk():
        if isinstance(step, AgentStep):
            yield from _texts(step.input, paths.child(path, "input"))
        elif isinstance(step, HitlStep) and step.message:
            yield paths.child(path, "message"), step.message
        elif isinstance(step, ConditionalStep) and step.condition_expression:
            yield paths.child(path, "condition_expression"), step.condition_expression
        elif isinstance(step, LoopStep) and step.exit_expression:
            yield paths.child(path, "exit_expression"), step.exit_expression
        elif isinstance(step, MapStep):
            yield paths.child(path, "over"), step.over
        elif isinstance(step, StateMachineStep):
            for i, rule in enumerate(step.transitions):
                if rule.when:
                    yield paths.child(f"{paths.child(path, 'transitions')}[{i}]", "when"), rule.when


def check_context_reads(pipeline: Pipeline, report: Report) -> None:
    """Warn about each read of a context key nothing writes."""
    if "context" not in (pipeline.source.text if pipeline.source else pipeline.to_yaml()):
        return
    keys = written_keys(pipeline)
    if keys is None:
        return
    for path, text in _reads(pipeline):
        for match in _READ.finditer(text):
            key = match.group(1) or match.group(2) or match.group(3)
            if key in keys or key == "get":
                continue
            report(
                path,
                f"no step writes context key '{key}' (write it with `sink_to`, "
                "`updates_context` or flujo.builtins:context_set, or give it in the input)",
                match.start(),
            )
