"""Untrusted JSON Schemas: no reference reaches a file or the network, no pattern hangs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flujo.spec.schemas import safe_validator, schema_problems
from flujo.spec.skills import json_schema


def test_a_file_reference_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "key.json"
    secret.write_text('{"type": "string", "description": "SECRET-KEY-MATERIAL"}')
    schema = {"type": "object", "properties": {"k": {"$ref": secret.as_uri()}}}
    outcome = json_schema({"k": 1}, schema)
    assert outcome is not None
    assert "SECRET" not in outcome
    assert "cannot be resolved" in outcome


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "file:///etc/passwd"},
        {"$ref": "http://169.254.169.254/"},
        {"items": {"$dynamicRef": "https://example.com/x"}},
        {"$id": "https://example.com/s.json", "$ref": "#/$defs/x", "$defs": {"x": {}}},
    ],
)
def test_non_local_references_are_refused_at_their_place(schema: dict[str, object]) -> None:
    problems = schema_problems(schema, "output_schema")
    assert problems
    assert problems[0].path[-1] in ("$ref", "$dynamicRef", "$id")


def test_local_references_and_data_are_fine() -> None:
    schema = {
        "$defs": {"x": {"type": "string"}},
        "properties": {"a": {"$ref": "#/$defs/x"}},
        "enum": [{"$ref": "http://example.com/"}],
    }
    assert schema_problems(schema) == []
    assert next(iter(safe_validator(schema).iter_errors({"a": 1})), None) is not None


def test_a_catastrophic_schema_pattern_does_not_hang() -> None:
    code = (
        "import json; from flujo.spec.skills import json_schema; "
        "print(json_schema(json.dumps('a' * 40 + '!'), {'type': 'string', 'pattern': '^(a+)+$'})); "
        "print(json_schema({'a' * 40 + '!': 1}, {'patternProperties': {'^(a+)+$': {}}, "
        "'additionalProperties': False}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=20, check=True
    )
    # Python's `re` backtracks for hours here; `regex` answers at once or gives up in time.
    for outcome in done.stdout.splitlines():
        assert "not match" in outcome or "could not be matched" in outcome, outcome


def test_unevaluated_properties_with_pattern_properties_is_refused() -> None:
    schema = {"patternProperties": {"^(a+)+$": {}}, "unevaluatedProperties": False}
    (problem,) = schema_problems(schema)
    assert problem.path == ("unevaluatedProperties",)
