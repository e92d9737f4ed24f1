"""Users' templates are bounded like expressions: no value, number, width, loop or output
beyond the sandbox's limits, whichever way a spec asks for it (and at no cost within them)."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import pytest
from jinja2.exceptions import SecurityError

from flujo.engine.render import render
from flujo.spec.skills import template_render
from flujo.spec.templating import MAX_TEXT

HOSTILE = {
    "repeat a string": "{{ 'a' * 3000000000 }}",
    "repeat a list": "{{ [1] * 3000000000 }}",
    "huge power": "{{ 9 ** (9 ** 9) }}",
    "double up": "{% set s = 'a' * 900000 %}{{ s + s }}",
    "nested ranges": (
        "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"
    ),
    "wide format": "{{ '%0999999999d' % 1 }}",
    "wide str.format": "{{ '{:>999999999}'.format(1) }}",
    "wide center": "{{ 'a' | center(999999999) }}",
    "wide indent": "{{ 'a\nb' | indent(999999999) }}",
    "lipsum": "{{ lipsum(1000000) }}",
    "long output": "{% for a in range(1000) %}{{ 'x' * 999999 }}{% endfor %}",
}


def _limited(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a child with 1 GB of address space and 20 s: a regression fails the
    test instead of taking the machine down."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=20,
        preexec_fn=limit,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_templates_are_refused_quickly_in_both_places(name: str) -> None:
    template = HOSTILE[name]
    result = _limited(
        f"""
        from jinja2.exceptions import SecurityError, UndefinedError
        from flujo.engine.render import render
        from flujo.spec.skills import template_render
        for attempt in (lambda: template_render('x', {template!r}),
                        lambda: render({template!r}, {{"input": 1}})):
            try:
                attempt()
            except (SecurityError, UndefinedError) as exc:
                print("refused:", exc)
            else:
                print("rendered")
        """
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("refused:") == 2, result.stdout


def test_templates_within_the_bounds_render_as_before() -> None:
    assert template_render({"name": "Ada"}, "Hello, {{ input.name | center(9) }}!") == (
        "Hello,    Ada   !"
    )
    assert render("{{ 'ab' * 3 }}", {}) == "ababab"
    assert render("{% for i in range(3) %}{{ i }}{% endfor %}", {}) == "012"
    assert render("{{ 2 ** 64 }}", {}) == 2**64
    assert len(template_render("x", f"{{{{ 'y' * {MAX_TEXT} }}}}")) == MAX_TEXT


def test_the_range_budget_is_per_render() -> None:
    loop = "{% for a in range(600000) %}{% endfor %}done"
    for _ in range(3):  # each render has its own budget: none leaks into the next
        assert render(loop, {}) == "done"
    with pytest.raises(SecurityError, match="ranges pass"):
        render("{% for a in range(600000) %}{% endfor %}" * 2, {})
