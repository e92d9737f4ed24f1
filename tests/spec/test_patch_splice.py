"""The cases of the "surgical patches" issue: a patch changes only the bytes of the nodes
it touches, whatever YAML surrounds them (multi-line plain, quoted and block scalars,
comments after keys, flow collections with comments, anchors)."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import pytest

from flujo.spec.edit import PatchError, patch_text
from flujo.spec.errors import SpecError
from flujo.spec.source import parse
from tests.support.patch_diff import diff

PROMPT = """\
version: "1"
agents:
  writer:
    model: openai:gpt-4o
    system_prompt: You are a careful assistant who writes short,
      friendly summaries of customer emails. Never invent facts
      and keep it under 80 words.
steps:
  - name: summarize
    uses: agents.writer
    input: hello
"""

AFTER_KEY = """\
agents:
  writer:
    model: openai:gpt-4o
    system_prompt:    # the house prompt
      Be brief.
steps:
  - name: summarize
    uses: agents.writer
"""

DOUBLE = """\
agents:
  writer:
    model: openai:gpt-4o
    system_prompt: "You are a careful assistant
      who writes \\"short\\" summaries."
steps:
  - name: summarize
    uses: agents.writer
"""

BLOCK = """\
agents:
  writer:
    model: openai:gpt-4o
    system_prompt: |2-
          indented more
        than usual
    notes: >+
      folded

steps:
  - name: summarize
    uses: agents.writer
"""

FLOW = """\
agents:
  writer:
    model: openai:gpt-4o
    tools: [
      search,   # the web
      calc,     # arithmetic
    ]
steps:
  - name: summarize
    uses: agents.writer
"""

TEXTS = {"prompt": PROMPT, "after-key": AFTER_KEY, "double": DOUBLE, "block": BLOCK, "flow": FLOW}
MODEL = [{"op": "replace", "path": "/agents/writer/model", "value": "openai:gpt-4o-mini"}]


def rfc(text: str, patch: list[dict[str, Any]]) -> Any:
    return jsonpatch.apply_patch(json.loads(json.dumps(parse(text).data)), patch)


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_a_model_swap_is_a_one_line_diff(name: str) -> None:
    text = TEXTS[name]
    result = patch_text(text, MODEL)
    assert parse(result.text).data == rfc(text, MODEL)
    changes = diff(text, result.text)
    line = text.splitlines().index("    model: openai:gpt-4o") + 1
    assert changes.changed == {line}
    assert not changes.inserted_at
    assert result.text == text.replace("openai:gpt-4o\n", "openai:gpt-4o-mini\n")


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("openai:gpt-4o-mini", "openai:gpt-4o-mini"),
        ("it's: here", "'it''s: here'"),
        ("true", "'true'"),
        ("a\tb", '"a\\tb"'),
    ],
)
def test_a_replaced_plain_scalar_is_quoted_only_when_needed(value: str, written: str) -> None:
    patch = [{"op": "replace", "path": "/agents/writer/model", "value": value}]
    result = patch_text(PROMPT, patch)
    assert f"    model: {written}\n" in result.text
    assert parse(result.text).data == rfc(PROMPT, patch)


def test_a_replaced_scalar_keeps_its_quoting_and_block_style() -> None:
    patch = [
        {"op": "replace", "path": "/agents/writer/system_prompt", "value": "New\ntext"},
        {"op": "replace", "path": "/agents/writer/notes", "value": "new fold\n\n"},
    ]
    result = patch_text(BLOCK, patch)
    assert parse(result.text).data == rfc(BLOCK, patch)
    assert "    system_prompt: |2-\n      New\n      text\n" in result.text
    assert "    notes: >+\n      new fold\n\n" in result.text
    out = patch_text(
        DOUBLE, [{"op": "replace", "path": "/agents/writer/system_prompt", "value": "x"}]
    )
    assert '    system_prompt: "x"\n' in out.text


def test_a_flow_sequence_with_comments_keeps_them() -> None:
    patch = [
        {"op": "add", "path": "/agents/writer/tools/1", "value": "browse"},
        {"op": "remove", "path": "/agents/writer/tools/0"},
    ]
    result = patch_text(FLOW, patch)
    assert parse(result.text).data == rfc(FLOW, patch)
    assert "# arithmetic" in result.text
    assert "search" not in result.text


def test_root_replacement_and_test_operations_follow_the_rfc() -> None:
    patch = [
        {"op": "test", "path": "/agents/writer/model", "value": "openai:gpt-4o"},
        {"op": "replace", "path": "", "value": {"version": "1", "steps": []}},
    ]
    result = patch_text(PROMPT, patch)
    assert parse(result.text).data == {"version": "1", "steps": []}
    with pytest.raises(PatchError, match="test failed"):
        patch_text(PROMPT, [{"op": "test", "path": "/agents/writer/model", "value": "x"}])


def test_an_added_key_goes_below_the_last_entry_in_its_indentation() -> None:
    patch = [{"op": "add", "path": "/agents/writer/temperature", "value": 0.2}]
    result = patch_text(PROMPT, patch)
    assert parse(result.text).data == rfc(PROMPT, patch)
    assert "      and keep it under 80 words.\n    temperature: 0.2\nsteps:\n" in result.text
    assert not diff(PROMPT, result.text).changed


def test_an_item_removed_takes_exactly_its_lines() -> None:
    text = "steps:\n  - name: a  # first\n    uses: x\n  # about b\n  - name: b\n    uses: y\n"
    patch = [{"op": "remove", "path": "/steps/0"}]
    result = patch_text(text, patch)
    assert result.text == "steps:\n  # about b\n  - name: b\n    uses: y\n"


def test_an_empty_mapping_first_in_a_commented_list() -> None:
    text = "s:\n  # c1\n  - name: a\n    uses: b\n"
    patch = [{"op": "add", "path": "/s/0", "value": {}}]
    result = patch_text(text, patch)
    # (first in the list: above the comments that open it)
    assert result.text == "s:\n  - {}\n  # c1\n  - name: a\n    uses: b\n"


@pytest.mark.parametrize(
    ("text", "path", "expected"),
    [
        # between blank lines: the blank lines above it go, one gap stays
        ("s:\n  - a\n\n  - b\n\n  - c\n", "/s/1", "s:\n  - a\n\n  - c\n"),
        ("a: 1\n\nb: 2\n\nc: 3\n", "/b", "a: 1\n\nc: 3\n"),
        # first: the blank lines below it go
        ("s:\n  - a\n\n  - b\n\n  - c\n", "/s/0", "s:\n  - b\n\n  - c\n"),
        # last: the blank lines above it go
        ("s:\n  - a\n\n  - b\n\n  - c\n", "/s/2", "s:\n  - a\n\n  - b\n"),
        ("a:\n  x: 1\n\n  y: 2\nb: 3\n", "/a/y", "a:\n  x: 1\nb: 3\n"),
        # followed by its sibling at once: the gap above separates what stays
        ("a:\n  x: 1\n\n  y: 2\n  z: 3\n", "/a/y", "a:\n  x: 1\n\n  z: 3\n"),
        # blank lines that end a `|+` block are the block's text: they stay
        ("a: |+\n  t\n\nb: 2\nc: 3\n", "/b", "a: |+\n  t\n\nc: 3\n"),
    ],
)
def test_a_removed_entry_takes_the_blank_lines_that_belong_to_it(
    text: str, path: str, expected: str
) -> None:
    patch = [{"op": "remove", "path": path}]
    result = patch_text(text, patch)
    assert result.spliced and result.text == expected
    assert parse(result.text).data == rfc(text, patch)


def test_a_key_renamed_in_place_keeps_its_value_comment_and_position() -> None:
    text = "a: 1\ndefault_branch:   # the fallback\n  - x\nb: 2\n"
    patch = [{"op": "rename", "path": "/default_branch", "to": "default"}]
    result = patch_text(text, patch, renames=True)
    assert result.spliced
    assert result.text == "a: 1\ndefault:   # the fallback\n  - x\nb: 2\n"
    with pytest.raises(PatchError, match="not a JSON Patch operation"):
        patch_text(text, patch)  # `flujo patch` takes RFC 6902 operations only
    with pytest.raises(PatchError, match="cannot rename"):
        patch_text(text, [{"op": "rename", "path": "/a", "to": "b"}], renames=True)


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


@pytest.mark.parametrize("levels", [99, 150])
def test_a_patch_that_nests_the_spec_too_deep_is_refused(levels: int) -> None:
    # The spliced text is reloaded without the nesting pre-scan when the patch cannot
    # nest it far: the load still refuses what the pre-scan would.
    operation = {"op": "add", "path": "/steps/0/config", "value": _nested(levels)}
    with pytest.raises(PatchError):
        patch_text(PROMPT, [operation])
    shallow = patch_text(PROMPT, [{**operation, "value": _nested(90)}])
    assert shallow.spliced and parse(shallow.text).data["steps"][0]["config"] == _nested(90)


def test_a_spec_a_patch_cannot_load_is_reported_at_its_place() -> None:
    text = PROMPT.replace("input: hello", "input: !custom hello")
    with pytest.raises(SpecError) as raised:
        patch_text(text, [{"op": "replace", "path": "/version", "value": "1"}])
    (problem,) = raised.value.diagnostics
    assert (problem.code, problem.line, problem.col) == ("yaml-tag", 11, 5)
