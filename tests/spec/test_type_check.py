"""Model-backed skills by name in a spec (`uses: text_to_sql`), and typed neighbours:
`flujo validate` says where a step is given a type it does not take."""

from __future__ import annotations

from flujo.spec.registry import RegistryError, StepRegistry
from tests.support.specs import problems

SCHEMA = "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);"


def found(text: str) -> list[tuple[int, str, str]]:
    return [(d.line, d.severity, d.message) for d in problems(text)]


def test_model_backed_skills_are_allowed_by_name_with_their_types_and_parameters() -> None:
    registry = StepRegistry()
    for name in ("text_to_sql", "text_to_sql_mini", "summarize", "label"):
        assert registry.problem(name) is None, name
    info = registry.info("text_to_sql")
    assert info is not None and (info.input_type, info.output_type) == ("str", "SQL")
    assert registry.problem("text_to_sqll") == (
        "unknown skill 'text_to_sqll'; did you mean 'text_to_sql'?"
    )
    try:
        registry.resolve("summarize")
    except RegistryError as exc:  # it runs as a model call, never as an imported function
        assert "model-backed" in str(exc)
    else:
        raise AssertionError("a model-backed skill resolved to a function")


def test_a_model_backed_skill_step_is_checked_like_any_skill() -> None:
    assert found(
        """
        steps:
          - name: sql
            uses: text_to_sql
          - name: tags
            uses: label
            with: {labels: billing}
        """
    ) == [
        (2, "error", "skill 'text_to_sql' needs parameter 'schema' under `with:`"),
        (6, "error", "parameter 'labels' of skill 'label' must be array"),
    ]


def test_typed_neighbours_that_fit_are_not_reported() -> None:
    assert (
        found(
            f"""
        steps:
          - name: question
            uses: template_render
            with: {{template: "{{{{ input.q }}}}"}}
          - name: sql
            uses: text_to_sql
            with: {{schema: "{SCHEMA}"}}
          - name: checked
            uses: sql_validate
            with: {{schema: "{SCHEMA}"}}
          - name: gist
            uses: summarize
            input: "{{{{ steps.checked.output }}}}"
          - name: free
            uses: json_dump
            input: "{{{{ steps.question.output }}}} and more"
        """
        )
        == []
    )


def test_a_type_that_does_not_fit_is_reported_at_the_step_that_takes_it() -> None:
    assert found(
        f"""
        steps:
          - name: tags
            uses: label
            with: {{labels: [billing, bug]}}
          - name: sql
            uses: text_to_sql
            with: {{schema: "{SCHEMA}"}}
          - name: checked
            uses: sql_validate
            input: "{{{{ steps.tags.output }}}}"
            with: {{schema: "{SCHEMA}"}}
          - name: text
            uses: template_render
            with: {{template: "{{{{ input.q }}}}"}}
          - name: loose
            uses: sql_validate
            input: "{{{{ previous }}}}"
            with: {{schema: "{SCHEMA}"}}
          - name: query
            kind: jit
            goal: a query
            input_type: SQL
            output_type: ValidatedSQL
            with: {{schema: "{SCHEMA}"}}
        """
    ) == [
        (6, "error", "'sql' takes str, but 'tags' gives Labels (Labels is not str)"),
        (10, "error", "'checked' takes SQL, but 'tags' gives Labels (Labels is not SQL)"),
        (17, "warning", "'loose' takes SQL, but 'text' gives str (str is not known to be SQL)"),
    ]
