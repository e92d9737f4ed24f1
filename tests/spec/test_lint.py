"""Checks beyond the schema: names, references, skills and expressions; all reported."""

from __future__ import annotations

from flujo.spec.load import check
from tests.support.specs import EXAMPLES, ROOT, errors, problems, spec


def messages(text: str) -> list[tuple[int, int, str]]:
    return [(d.line, d.col, d.message) for d in errors(text)]


def test_the_examples_are_valid_without_warnings() -> None:
    for example in EXAMPLES:
        pipeline, diagnostics = check(example)
        assert pipeline is not None and diagnostics == [], (example.name, diagnostics)


def test_step_names_are_unique_across_branches_and_fallbacks() -> None:
    found = messages(
        """
        steps:
          - name: a
            fallback: {name: b}
          - name: p
            kind: parallel
            branches:
              one: {steps: [{name: a}]}
              two: {steps: [{name: b}]}
        """
    )
    assert found == [
        (7, 22, "duplicate step name 'a' (first used at line 2)"),
        (8, 22, "duplicate step name 'b' (first used at line 3)"),
    ]


def test_references_to_agents_and_skills_are_checked_with_suggestions() -> None:
    found = messages(
        """
        agents:
          writer: {model: "openai:gpt-4o"}
        steps:
          - name: a
            uses: agents.wrtier
          - name: b
            uses: json_pase
          - name: c
            uses: agents.writer
            validators: [non_emty]
        """
    )
    assert found == [
        (5, 5, "unknown agent 'wrtier'; did you mean 'writer'?"),
        (7, 5, "unknown skill 'json_pase'; did you mean 'json_parse'?"),
        (10, 18, "unknown skill 'non_emty'; did you mean 'non_empty'?"),
    ]


def test_skill_parameters_are_checked() -> None:
    found = messages(
        """
        steps:
          - name: a
            uses: regex_extract
            with: {pattern: "(unclosed"}
          - name: b
            uses: template_render
            with: {template: "{{ input }", extra: 1}
          - name: c
            uses: passthrough
            validators:
              - uses: json_schema
                with: {schema: {type: 12}}
              - uses: max_length
                with: {max: "ten"}
              - json_parse
        """
    )
    assert [m for *_, m in found] == [
        "invalid regular expression in 'pattern': missing ) at position 9",
        "template syntax error: unexpected '}'",  # at the template, not at `with:`
        "skill 'template_render' has no parameter 'extra' (parameters: template)",  # at `extra`
        "'schema' is not a valid JSON Schema: 12 is not valid under any of the given schemas "
        "(at /type)",
        "parameter 'max' of skill 'max_length' must be integer",
        "'json_parse' is a transform skill, not a validator",
    ]


def test_expressions_are_parsed_and_their_step_references_checked() -> None:
    found = messages(
        """
        steps:
          - name: fetch
          - name: route
            kind: conditional
            condition_expression: "steps.fetsh.output"
            branches: {a: {steps: [{name: x}]}}
        tests:
          - name: t
            assertions:
              - "result.steps.fetch.attempts < 2"
              - "result.steps['nope'].attempts < 2"
              - "result.output =="
        policies:
          - id: p
            when: "steps.fetch.output and"
            assert: "True"
        """
    )
    assert found == [
        (5, 34, "unknown step 'fetsh'; did you mean 'fetch'?"),
        (11, 23, "unknown step 'nope'"),
        (12, 26, "invalid expression: unexpected end"),
        (15, 34, "invalid expression: unexpected end"),
    ]


def test_template_inputs_may_only_name_existing_steps() -> None:
    found = messages(
        """
        steps:
          - name: fetch
          - name: use
            input: "{{ steps.fetch.output }} and {{ steps.fech.output }}"
        """
    )
    assert found == [(4, 51, "unknown step 'fech'; did you mean 'fetch'?")]


def test_invalid_output_schema_is_reported_at_the_agent() -> None:
    found = messages(
        """
        agents:
          a:
            model: openai:gpt-4o-mini
            output_schema: {type: object, properties: {x: {type: wrong}}}
        steps:
          - {name: s, uses: agents.a}
        """
    )
    assert len(found) == 1
    line, col, message = found[0]
    assert (line, col) == (4, 52)  # the offending keyword inside the schema
    assert message.startswith("output_schema is not a valid JSON Schema")
    assert "/properties/x/type" in message


def test_unused_agents_are_warnings_not_errors() -> None:
    found = problems(
        """
        agents:
          idle: {model: "openai:gpt-4o-mini"}
        steps: [{name: a}]
        """
    )
    assert [(d.severity, d.message) for d in found] == [
        ("warning", "agent 'idle' is not used by any step")
    ]


def test_schema_errors_and_reference_errors_are_reported_together() -> None:
    found = messages(
        """
        steps:
          - name: a
            uses: json_pase
          - name: b
            config: {max_retries: -1}
          - name: c
            kind: loop
            max_loops: 0
            body: {steps: [{name: a}]}
          - name: d
            kind: whatever
            exit_expression: steps.zzz
        tests:
          - {name: t, assertions: []}
          - {name: u, assertions: ["steps.nope"]}
        """
    )
    assert found == [
        (3, 5, "unknown skill 'json_pase'; did you mean 'json_parse'?"),
        (5, 14, "max_retries: must be greater than or equal to 0 (got -1)"),
        (8, 5, "max_loops: must be greater than or equal to 1 (got 0)"),
        (9, 21, "duplicate step name 'a' (first used at line 2)"),
        (
            11,
            5,
            "unknown step kind 'whatever'; expected one of: "
            "step, parallel, conditional, loop, map, hitl, state_machine, jit, cache, "
            "dynamic_router, agentic_loop",
        ),
        (14, 15, "assertions: needs at least 1 item (got 0)"),
        (15, 35, "unknown step 'nope'"),
    ]


def test_duplicate_test_names_and_policy_ids() -> None:
    found = messages(
        """
        steps: [{name: a}]
        tests:
          - {name: t, assertions: ["True"]}
          - {name: t, assertions: ["True"]}
        policies:
          - {id: p, assert: "True"}
          - {id: p, assert: "True"}
        """
    )
    assert [m for *_, m in found] == ["duplicate test name 't'", "duplicate policy id 'p'"]


def test_spec_helper_dedents() -> None:
    assert spec("\n  a: 1\n") == "a: 1\n"


FIELDS_SPEC = """
version: "1"
agents:
  reader:
    model: openai:gpt-4o-mini
    system_prompt: Read.
    output_schema:
      type: object
      properties: {urgency: {type: string}, sender: {type: string}}
steps:
  - name: read_email
    uses: agents.reader
  - name: route
    kind: conditional
    condition_expression: "steps.read_email.output.urgancy == 'high'"
    branches:
      high: [{name: shout, uses: passthrough}]
tests:
  - name: t
    input: x
    mocks: {read_email: {urgency: high, sender: a}}
    assertions:
      - "result.total_cost < 1 and steps.read_email.sucess and result.steps.route.output != 1"
      - "steps.read_email.output.sender.lower() == 'a' and steps.read_email.output['urgency']"
"""


def test_expressions_are_checked_against_the_fields_and_the_output_schema_they_read() -> None:
    found = [(d.line, d.col, d.code, d.message) for d in errors(FIELDS_SPEC)]
    assert found == [
        (
            14,
            52,
            "unknown-field",
            "the output of step 'read_email' has no property 'urgancy' (its agent's "
            "output_schema has urgency, sender); did you mean 'urgency'?",
        ),
        (
            22,
            17,
            "unknown-field",
            "a run's result has no field 'total_cost'; did you mean 'total_cost_usd'?",
        ),
        (22, 53, "unknown-field", "a step's result has no field 'sucess'; did you mean 'success'?"),
    ]


def test_the_engine_exposes_exactly_the_documented_fields() -> None:
    from flujo.engine.results import PipelineResult, StepResult
    from flujo.spec.fields import RESULT_FIELDS, STEP_FIELDS

    assert PipelineResult.__expr_fields__ == set(RESULT_FIELDS)
    assert StepResult.__expr_fields__ == set(STEP_FIELDS)
    reference = (ROOT / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    assert "## Expression fields" in reference and "| `total_cost_usd` |" in reference


TYPO_SPEC = """
version: "1"
agents:
  writer: {model: "openai:gpt-4o-mini", system_prompt: "Write."}
steps:
  - name: route
    kind: conditional
    condition_expresion: "input.kind == 'a'"
    branches:
      a:
        steps:
          - name: draft
            uses: agents.writer
  - name: after
    input: "{{ steps.draft.output }}"
tests:
  - name: t
    input: {kind: a}
    mocks: {draft: x}
    assertions: ["steps.draft.output == 'x'", "steps.route.success"]
"""


def test_one_typo_gives_one_error_not_a_cascade() -> None:
    found = [(d.line, d.code, d.message) for d in problems(TYPO_SPEC)]
    assert found == [
        (
            7,
            "unknown-key",
            "unknown key 'condition_expresion'; did you mean 'condition_expression'?",
        )
    ]


def test_an_unknown_filter_or_test_in_a_template_is_an_error_at_its_name() -> None:
    found = messages(
        """
        steps:
          - name: a
            uses: template_render
            with: {template: "{{ input | to_json }}"}
          - name: b
            uses: template_render
            input: "{% if input is evn %}even{% endif %}"
            with: {template: "{{ input | upper | bogus(2) }}"}
        """
    )
    assert [(line, col, m) for line, col, *_, m in found] == [
        (4, 34, "a template has no filter 'to_json'; did you mean 'tojson'?"),
        (7, 28, "a template has no test 'evn'; did you mean 'even'?"),
        (8, 42, "a template has no filter 'bogus'"),
    ]
