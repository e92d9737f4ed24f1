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
