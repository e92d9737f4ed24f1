"""Step `input:` templates render in the one sandbox for users' templates."""

from __future__ import annotations

import pytest
from jinja2.exceptions import SecurityError

from flujo.engine.render import render
from flujo.engine.runner import Runner
from flujo.spec.model import Pipeline
from tests.support.specs import spec


@pytest.mark.parametrize("template", ["{{ x.append(1) }}", "x: {{ x.append(1) }}"])
def test_an_input_template_cannot_mutate_its_context(template: str) -> None:
    context = {"x": [1]}
    with pytest.raises(SecurityError):
        render(template, context)
    assert context == {"x": [1]}
    assert render("{{ x + [2] }}", context) == [1, 2]  # a new list is fine


async def test_a_step_whose_input_mutates_fails() -> None:
    pipeline = Pipeline.from_yaml(
        spec(
            """
            steps:
              - name: a
                uses: passthrough
                input: "{{ input.append(2) }}"
            """
        )
    )
    result = await Runner(pipeline).run([1])
    assert result.status == "failed"
    assert "SecurityError" in (result.error or "")
