"""Users' templates (the template_render skill, step inputs) share one sandbox, the strictest."""

from __future__ import annotations

import pytest
from jinja2 import StrictUndefined
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flujo.spec import skills
from flujo.spec.templating import untrusted_environment


def test_the_sandbox_is_immutable_strict_and_plain() -> None:
    env = untrusted_environment()
    assert env is untrusted_environment()  # built once
    assert isinstance(env, ImmutableSandboxedEnvironment)
    assert env.undefined is StrictUndefined
    assert env.autoescape is False and not env.extensions
    assert env.from_string("{{ '<b>' }}").render() == "<b>"


@pytest.mark.parametrize(
    "template",
    [
        "{{ input.append(1) }}",
        "{{ input.extend([2]) }}",
        "{{ {'a': 1}.update(b=2) }}",
        "{{ input.pop() }}",
    ],
)
def test_template_render_refuses_mutation(template: str) -> None:
    items = [1]
    with pytest.raises(SecurityError):
        skills.template_render(items, template)
    assert items == [1]


def test_template_render_refuses_private_attributes_and_undefined_names() -> None:
    with pytest.raises(SecurityError):
        skills.template_render("x", "{{ input.__class__.__mro__ }}")
    with pytest.raises(UndefinedError):
        skills.template_render("x", "{{ nope }}")


def test_a_template_is_checked_at_validate_time_by_the_same_sandbox() -> None:
    assert skills._check_template({"template": "hi {{ input }}"}) == []
    # No extensions: `{% do %}` (a statement that could mutate) is not even parsed.
    (problem,) = skills._check_template({"template": "{% do input.append(1) %}"})
    assert "unknown tag 'do'" in problem


FALLBACK = """\
version: "1"
steps:
  - name: body
    uses: template_render
    with: {template: "{{ input.body }}"}
  - name: parse
    uses: json_parse
    config: {max_retries: 0}
    fallback:
      name: reply
      uses: template_render
      with:
        template: "from {{ input.sender }} after {{ previous }} ({{ steps.body.output }})"
"""


def test_template_render_sees_input_previous_and_steps_as_the_docs_say() -> None:
    import asyncio

    import flujo

    result = asyncio.run(flujo.run(FALLBACK, {"sender": "ann", "body": "not json"}))
    assert result.success, result.error
    assert result.output == "from ann after not json (not json)"


def test_validate_flags_a_name_a_template_cannot_see_at_its_line() -> None:
    from tests.support.specs import errors

    text = FALLBACK.replace("from {{ input.sender }}", "from {{ sender }}")
    found = errors(text)
    assert [(d.code, d.line) for d in found] == [("unknown-name", 13)], found
    assert "'sender'" in found[0].message and "input, previous, steps" in found[0].message
    (input_problem,) = errors("steps:\n  - name: a\n    input: '{{ inputs.x }}'\n")
    assert "'inputs'" in input_problem.message and "did you mean 'input'" in input_problem.message


def test_a_name_a_template_cannot_see_is_flagged_on_the_templates_own_line() -> None:
    from tests.support.specs import errors

    text = (
        "steps:\n  - name: a\n    uses: template_render\n    with:\n      template: |\n"
        "        Question: {{ input.q }}\n        {{ answr }}\n"
    )
    (found,) = errors(text)
    assert (found.code, found.line, found.col) == ("unknown-name", 7, 12)


def test_template_syntax_errors_point_at_the_templates_own_line() -> None:
    from tests.support.specs import errors

    text = (
        "steps:\n  - name: a\n    uses: template_render\n    with:\n      template: |\n"
        "        Hello {{ input.name }}\n        {{ input }\n"
    )
    (found,) = errors(text)
    assert (found.code, found.line) == ("template-syntax", 7), found
    assert "unexpected '}'" in found.message
    (found,) = errors("steps:\n  - name: a\n    input: '{{ input.name '\n")
    assert (found.code, found.line) == ("template-syntax", 3), found
