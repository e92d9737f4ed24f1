"""Shortcuts of `flujo validate` for the common cases (a plain JSON Schema, a template of
plain `{{ name.attr }}` outputs): they never change a diagnostic, because they only ever
say "valid" where the real check (jsonschema's metaschema, Jinja's parser) would too, and
a small spec is checked without importing either."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from flujo.spec.schemas import plainly_valid, schema_problems
from flujo.spec.templating import plainly_fine, untrusted_environment
from tests.support.specs import ROOT

KEYS = [
    "type", "properties", "items", "additionalProperties", "not", "required", "enum",
    "examples", "minLength", "maxItems", "minimum", "exclusiveMaximum", "uniqueItems",
    "title", "format", "const", "default", "pattern", "$ref", "oneOf", "multipleOf",
]  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["string", "integer", "object", "nope", "#/x", "a"]),
    st.lists(st.sampled_from(["string", "integer", "a", "a", 1]), max_size=3),
)


def schemas() -> st.SearchStrategy[Any]:
    return st.recursive(
        st.one_of(st.booleans(), st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3)),
        lambda inner: st.one_of(
            st.dictionaries(st.sampled_from(KEYS), st.one_of(VALUES, inner), max_size=3),
            st.dictionaries(
                st.just("properties"), st.dictionaries(st.text(max_size=2), inner, max_size=2)
            ),
        ),
        max_leaves=8,
    )


def metaschema_accepts(schema: Any) -> bool:
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError:
        return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(schemas())
@example({"required": ["a", "a"]})
@example({"type": ["string", "string"]})
@example({"properties": {"a": {"minLength": True}}})
@example({"items": {"maximum": "1"}, "uniqueItems": 1})
def test_a_schema_the_shortcut_calls_valid_is_valid_for_the_metaschema(schema: Any) -> None:
    if plainly_valid(schema):
        assert metaschema_accepts(schema), json.dumps(schema, default=str)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "required": ["a"], "properties": {"a": {"enum": [1, 2]}}},
        {"type": ["string", "null"], "maxLength": 5, "description": "d"},
        {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 5}},
        True,
    ],
)
def test_common_schemas_take_the_shortcut(schema: Any) -> None:
    assert plainly_valid(schema) and metaschema_accepts(schema)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "strin"},
        {"type": []},
        {"required": ["a", "a"]},
        {"minLength": -1},
        {"minimum": "1"},
        {"properties": {"a": {"type": 3}}},
    ],
)
def test_invalid_schemas_are_left_to_the_metaschema_with_its_message(schema: Any) -> None:
    assert not plainly_valid(schema)
    (problem,) = schema_problems(schema, "output_schema")
    assert problem.startswith("output_schema is not a valid JSON Schema: ")


@pytest.mark.parametrize(
    ("template", "fine"),
    [
        ("{{ input.ticket }}", True),
        ("Billing (urgency {{ steps.classify.output.urgency }}): {{input.ticket}}", True),
        ("plain text", True),
        ("{{ context.x }}", True),  # refused elsewhere, with its own error
        ("{{ inptu.ticket }}", False),  # Jinja finds the unknown name
        ("{{{ input }}}", False),  # a dict literal to Jinja: a syntax error
        ("{{ input }}}", False),
        ("{{- input }}", False),
        ("{% if input %}x{% endif %}", False),
        ("{{ input | upper }}", False),
        ("{# note #}", False),
        ("{{ true }}", False),
        ("{{ input.0 }}", False),
    ],
)
def test_only_plain_templates_skip_the_parser(template: str, fine: bool) -> None:
    assert plainly_fine(template) == fine
    if fine:
        untrusted_environment().parse(template)  # and Jinja agrees


def test_a_small_spec_is_checked_without_jsonschema_or_jinja() -> None:
    code = (
        "import sys; from pathlib import Path; from flujo.spec.load import check; "
        "_, found = check(Path(sys.argv[1])); assert found == [], found; "
        "print(sorted(m for m in ('jsonschema', 'jinja2') if m in sys.modules))"
    )
    spec = str(ROOT / "examples" / "support_triage.yaml")
    done = subprocess.run(
        [sys.executable, "-c", code, spec], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
