"""Suggestion PR bodies: every section, GitHub's size limit, fences that stay closed."""

from __future__ import annotations

import html
import json
import re
from dataclasses import replace

import cmarkgfm
from cmarkgfm.cmark import Options
from hypothesis import given, settings
from hypothesis import strategies as st

from flujo.spec.model import Pipeline
from flujo.spec.review.bullets import bullets
from flujo.spec.review.diff import diff_specs
from flujo.spec.review.mermaid import flowchart
from flujo.templates.fit import GITHUB_TEXT_LIMIT, size
from flujo.templates.pr_body import (
    EmbeddedTest,
    Evidence,
    EvidenceRow,
    PRBody,
    render_pr_body,
)
from tests.support.mermaid import assert_mermaid

FENCE = re.compile(r"^(`{3,})(\w*)$", re.MULTILINE)


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, content) of every fenced block; fails on an unclosed fence."""
    blocks, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, language = match.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == fence), None)
        assert end is not None, f"unclosed fence at line {i + 1}"
        blocks.append((language, "\n".join(lines[i + 1 : end])))
        i = end + 1
    return blocks


def github_html(markdown: str) -> str:
    """HTML as GitHub renders it (cmark-gfm; GitHub lets `<details>` through)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def code_blocks(rendered: str, language: str) -> list[str]:
    found = re.findall(rf'<pre lang="{language}"><code>(.*?)</code></pre>', rendered, re.S)
    return [html.unescape(block) for block in found]


def suggestion(**overrides: object) -> PRBody:
    old = Pipeline.model_validate(
        {
            "agents": {"fast": {"model": "openai:gpt-4o"}},
            "steps": [{"name": "classify", "uses": "agents.fast", "config": {"max_retries": 1}}],
        }
    )
    new = Pipeline.model_validate(
        {
            "agents": {"fast": {"model": "openai:gpt-4o-mini"}},
            "steps": [{"name": "classify", "uses": "agents.fast", "config": {"max_retries": 3}}],
        }
    )
    diff = diff_specs(old, new)
    fields: dict[str, object] = {
        "headline": "Switch classify to gpt-4o-mini",
        "risk": "low",
        "savings": "~$0.10/run",
        "bullets": bullets(diff, {"agent:fast.model": "saves ~$0.10/run"}),
        "before_diagram": flowchart(old, diff.marks("old")),
        "after_diagram": flowchart(new, diff.marks("new")),
        "evidence": Evidence(412, [EvidenceRow("p95 latency", "2.1 s", "1.4 s")], "last 7 days"),
        "tests": [EmbeddedTest("billing ticket", True), EmbeddedTest("tech | ticket", False, "x")],
        "patch": [{"op": "replace", "path": "/agents/fast/model", "value": "openai:gpt-4o-mini"}],
    }
    return PRBody(**(fields | overrides))  # type: ignore[arg-type]


def test_a_typical_body_has_every_section_in_order() -> None:
    text = render_pr_body(suggestion())
    order = [
        "## Switch classify to gpt-4o-mini",
        "**Saves \\~\\$0.10/run** · **Risk: 🟢 low** · 2 changes · tests 1/2 passed",
        "### What changes",
        "- 💲 **Switch** `classify` from `gpt-4o` to `gpt-4o-mini` — saves ~$0.10/run",
        "- 🔁 **Raise** retries of `classify` from 1 to 3",
        "**Before and after (the same)**",  # identical charts are folded into one
        "Measured on 412 recorded runs (last 7 days).",
        "| p95 latency | 2.1 s | 1.4 s |",
        "1 of 2 tests pass with the patch applied.",
        "- ❌ tech \\| ticket — x",  # failures first, table pipes escaped
        "- ✅ billing ticket",
        "<summary>JSON Patch (1 operation)</summary>",
        '"path": "/agents/fast/model"',
        "Close this PR; Flujo will not suggest it again.",
    ]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    blocks = fenced_blocks(text)
    assert [lang for lang, _ in blocks] == ["mermaid", "json"]  # one chart: both the same
    assert_mermaid(*(content for lang, content in blocks if lang == "mermaid"))


def test_github_renders_every_section_as_intended() -> None:
    body = suggestion(
        headline="Use <b>gpt-4o-mini</b> | cheaper", tests=[EmbeddedTest("a|b", True)]
    )
    body = replace(body, after_diagram=(body.after_diagram or "").replace("agents.fast", "fast"))
    rendered = github_html(render_pr_body(body))
    assert re.search(r"<h2>Use &lt;b&gt;gpt-4o-mini&lt;/b&gt; \| cheaper</h2>", rendered)
    assert "<b>gpt" not in rendered
    assert len(re.findall(r"<li>", rendered)) == 2 + 1  # two bullets, one test
    assert "<code>gpt-4o-mini</code>" in rendered
    before, after = code_blocks(rendered, "mermaid")
    assert (before, after) == (body.before_diagram, body.after_diagram)
    assert_mermaid(before, after)
    (patch,) = code_blocks(rendered, "json")
    assert json.loads(patch) == list(body.patch)
    assert re.search(r"<td>p95 latency</td>\s*<td align=\"right\">2.1 s</td>", rendered)
    assert "<details>" in rendered and "<summary>JSON Patch (1 operation)</summary>" in rendered


def test_optional_sections_disappear_when_empty() -> None:
    text = render_pr_body(
        suggestion(before_diagram=None, after_diagram=None, evidence=None, tests=(), savings=None)
    )
    for absent in ("Before → after", "### Evidence", "### Tests", "Saves"):
        assert absent not in text
    assert "JSON Patch" in text and "Not convinced?" in text


def test_free_text_cannot_inject_markdown_or_html() -> None:
    text = render_pr_body(
        suggestion(headline="<img src=x onerror=alert(1)> **big** ```", reject="[x](javascript:1)")
    )
    assert "\\<img" in text and not re.search(r"(?<!\\)<img", text)
    assert "\\*\\*big\\*\\*" in text and "\\[x\\](javascript:1)" in text
    fenced_blocks(text)


def test_a_patch_holding_backticks_does_not_break_its_fence() -> None:
    patch = [{"op": "add", "path": "/description", "value": "```\n# not a heading\n````"}]
    text = render_pr_body(suggestion(patch=patch))
    (json_block,) = [content for lang, content in fenced_blocks(text) if lang == "json"]
    assert "````" in json_block


def test_huge_inputs_shrink_largest_first_and_fit_githubs_limit() -> None:
    label = "x" * 100
    huge_chart = "flowchart TD\n" + "".join(f'  n{i}["{label}"] --> n{i + 1}\n' for i in range(390))
    assert 40_000 < len(huge_chart) < 50_000
    patch = [{"op": "add", "path": f"/steps/{i}", "value": {"name": f"s{i}"}} for i in range(3000)]
    body = suggestion(before_diagram=huge_chart, after_diagram=huge_chart, patch=patch)
    text = render_pr_body(body, limit=GITHUB_TEXT_LIMIT)
    assert size(text) <= GITHUB_TEXT_LIMIT
    # the two charts are the same, so they are folded into one
    assert text.count("Diagram too large for a pull request body; see the suggestion page.") == 1
    assert re.search(r"Patch cut after \d+ of \d+ lines", text)
    assert "- ❌ tech" in text and "### Evidence" in text  # smaller sections kept
    fenced_blocks(text)


def test_only_the_larger_diagram_goes_when_that_is_enough() -> None:
    big = "flowchart TD\n" + "".join(f'  n{i}["{"y" * 100}"] --> n{i + 1}\n' for i in range(400))
    text = render_pr_body(suggestion(after_diagram=big), limit=40_000)
    assert text.count("Diagram too large") == 1
    assert [lang for lang, _ in fenced_blocks(text)] == ["mermaid", "json"]


@settings(max_examples=25, deadline=None)
@given(
    limit=st.integers(3_000, 70_000),
    bullet_count=st.integers(0, 2000),
    test_count=st.integers(0, 2000),
    row_count=st.integers(0, 500),
    text=st.text(min_size=1, max_size=300),
)
def test_any_body_fits_its_limit_with_fences_closed(
    limit: int, bullet_count: int, test_count: int, row_count: int, text: str
) -> None:
    body = suggestion(
        headline=text * 50,
        bullets=[f"🔧 **Change** `{i}` {text}" for i in range(bullet_count)],
        tests=[EmbeddedTest(f"{text} {i}", i % 3 == 0, text) for i in range(test_count)],
        evidence=Evidence(row_count, [EvidenceRow(text, text, text)] * row_count),
        patch=[{"op": "add", "path": f"/x/{i}", "value": text} for i in range(500)],
    )
    rendered = render_pr_body(body, limit=limit)
    assert size(rendered) <= limit
    fenced_blocks(rendered)
    assert "Not convinced?" in rendered
    shown = github_html(rendered)
    assert "<h3>Not convinced?</h3>" in shown
    assert all(block.startswith("flowchart") for block in code_blocks(shown, "mermaid"))


def test_a_body_without_bullets_says_there_is_no_semantic_change() -> None:
    text = render_pr_body(suggestion(bullets=[]))
    assert "### What changes\n_No semantic change (formatting or comments only)._\n" in text


def test_a_chart_mermaid_would_refuse_is_replaced_by_a_note() -> None:
    edges = "flowchart TD\n" + "".join(f"  n{i} --> n{i + 1}\n" for i in range(501))
    text = render_pr_body(suggestion(after_diagram=edges, details_url="https://x.test/s/1"))
    assert "_Diagram too large for Mermaid to draw; see https://x.test/s/1._" in text
    assert [lang for lang, _ in fenced_blocks(text)] == ["mermaid", "json"]
