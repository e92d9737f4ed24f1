"""The JSON Schema: complete, current, and as strict as the loader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from flujo.spec.schema import pipeline_schema, schema_text
from flujo.spec.source import parse
from tests.support.specs import EXAMPLES, ROOT


def properties(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = [("Pipeline", name, prop) for name, prop in schema["properties"].items()]
    for model, definition in schema["$defs"].items():
        found.extend((model, name, prop) for name, prop in definition.get("properties", {}).items())
    return found


def test_every_field_has_a_description() -> None:
    schema = pipeline_schema()
    missing = [
        f"{model}.{name}" for model, name, prop in properties(schema) if not prop.get("description")
    ]
    assert missing == []
    assert all(d.get("description") for d in schema["$defs"].values())


def test_the_committed_schema_file_is_current() -> None:
    committed = (ROOT / "spec" / "flujo.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run: flujo schema -o spec/flujo.schema.json"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_schema(example: Path) -> None:
    Draft202012Validator(pipeline_schema()).validate(parse(example.read_text()).data)


def test_the_schema_rejects_what_the_loader_rejects() -> None:
    validator = Draft202012Validator(pipeline_schema())
    bad = [
        {"steps": [{"name": "a", "retries": 3}]},
        {"steps": [{"name": "a", "kind": "loop"}]},
        {"steps": [{"name": "has space"}]},
        {"steps": [], "unknown": 1},
        {"steps": [{"name": "a", "config": {"max_retries": -1}}]},
    ]
    for data in bad:
        assert not validator.is_valid(data), json.dumps(data)
    assert validator.is_valid(
        {"steps": [{"name": "a", "kind": "map", "over": "x", "body": {"steps": [{"name": "b"}]}}]}
    )


def test_every_node_class_knows_its_fields_and_validates_on_its_own() -> None:
    # The node classes are built as part of Pipeline (defer_build); one used on its own
    # is built on first use, and its fields (what diagnostics and the reference read)
    # are resolved from the start.
    from flujo.spec import model

    classes = [
        value
        for value in vars(model).values()
        if isinstance(value, type) and issubclass(value, model.SpecNode)
    ]
    assert len(classes) > 20
    for cls in classes:
        for name, field in cls.model_fields.items():
            assert "ForwardRef" not in repr(field.annotation), (cls.__name__, name)
    steps = model.StepList.model_validate(
        {"steps": [{"name": "a", "kind": "map", "over": "x", "body": {"steps": [{"name": "b"}]}}]}
    )
    assert isinstance(steps.steps[0], model.MapStep)
    step = model.AgentStep.model_validate({"name": "a", "fallback": {"name": "b"}})
    assert step.fallback is not None and step.config.backoff.initial_s == 1.0
