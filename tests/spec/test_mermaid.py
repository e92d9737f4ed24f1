"""Flowcharts parse in the real Mermaid and show the pipeline's structure and changes."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flujo.spec.model import Pipeline
from flujo.spec.review.mermaid import COLLAPSE_AT, flowchart, label, node_id
from tests.support.mermaid import assert_mermaid, mermaid_errors
from tests.support.specs import EXAMPLES, TESTS, spec
from tests.support.strategies import awkward_text, pipeline_data, pipelines

MARKS = ("added", "removed", "changed", "moved")


def chain(count: int, prefix: str = "step") -> list[dict[str, Any]]:
    return [{"name": f"{prefix}_{i}", "uses": "template_render"} for i in range(count)]


def test_the_parser_really_rejects_broken_diagrams() -> None:
    broken = 'flowchart TD\n  a["unterminated] --> b\n'
    fine = "flowchart TD\n  a --> b\n"
    errors = mermaid_errors([broken, fine])
    assert errors[0] is not None and "Parse error" in errors[0]
    assert errors[1] is None


LEGACY = sorted((TESTS / "legacy").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES + LEGACY, ids=lambda p: p.stem)
def test_every_example_draws_a_valid_chart_with_every_step(path: Any) -> None:
    pipeline = Pipeline.from_yaml(path)
    names = [step.name for _, step in pipeline.walk()]
    marks = {name: MARKS[i % 4] for i, name in enumerate(names)}
    plain, marked = flowchart(pipeline), flowchart(pipeline, marks)
    assert_mermaid(plain, marked)
    for name in names:
        assert node_id(name) in plain
    assert "classDef" not in plain and "Legend" not in plain
    for mark in MARKS:
        assert f"classDef {mark} " in marked


def test_a_state_machine_shows_its_states_and_transitions() -> None:
    pipeline = Pipeline.from_yaml(
        spec(
            """
            steps:
              - name: review
                kind: state_machine
                start_state: draft
                end_states: [done]
                states:
                  draft: {steps: [{name: write}]}
                  check: {steps: [{name: ask, kind: hitl, message: "Ship it?"}]}
                  done: {steps: []}
                transitions:
                  - {from: draft, on: success, to: check}
                  - {from: check, on: success, to: done, when: "output == 'yes'"}
                  - {from: "*", on: failure, to: draft}
            """
        )
    )
    chart = flowchart(pipeline, {"ask": "added"})
    assert_mermaid(chart)
    assert "review · state machine" in chart and "ask · ask a person" in chart
    for state in ("draft", "check", "done"):
        assert "subgraph g" in chart and f"state {state}" in chart
    assert "success if output == 'yes'" in chart.replace("&#39;", "'").replace("#39;", "'")
    assert chart.count("-.->") == 2 + 3  # two rules from one state each, one from all three


def test_structure_is_visible() -> None:
    pipeline = Pipeline.model_validate(
        {
            "steps": [
                {"name": "fetch", "uses": "template_render"},
                {
                    "name": "fan",
                    "kind": "parallel",
                    "branches": {"a": {"steps": chain(1, "a")}, "b": {"steps": chain(1, "b")}},
                },
                {
                    "name": "pick",
                    "kind": "conditional",
                    "condition_expression": "input.kind",
                    "branches": {"x": {"steps": chain(1, "x")}},
                },
                {"name": "again", "kind": "loop", "max_loops": 3, "body": {"steps": chain(1, "l")}},
                {"name": "each", "kind": "map", "over": "input.items", "body": {"steps": []}},
            ]
        }
    )
    chart = flowchart(pipeline)
    assert_mermaid(chart)
    assert "s_fetch --> s_fan" in chart
    assert "s_fan --> s_a_5f_0" in chart and "s_fan --> s_b_5f_0" in chart  # fork
    assert "s_a_5f_0 --> j_fan" in chart and "s_b_5f_0 --> j_fan" in chart  # join
    assert 's_pick{"pick"}' in chart and 's_pick -->|"x"| s_x_5f_0' in chart
    assert 's_pick -->|"no match"| s_again' in chart  # no default branch: falls through
    assert 's_l_5f_0 -.->|"repeat"| s_again' in chart
    assert "at most 3×" in chart and "for each in input.items" in chart
    assert "s_each --> finish" in chart  # an empty body passes straight on


def test_marks_colour_steps_and_the_legend_lists_only_used_classes() -> None:
    pipeline = Pipeline.model_validate({"steps": chain(3)})
    chart = flowchart(pipeline, {"step_0": "added", "step_2": "moved"})
    assert_mermaid(chart)
    assert re.search(r"class s_step_5f_0,legend_added added", chart)
    assert re.search(r"class s_step_5f_2,legend_moved moved", chart)
    assert "legend_removed" not in chart and "legend_changed" not in chart
    assert "#dafbe1" in chart  # green fill for added


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=pipeline_data(checked=False, max_steps=8), seed=st.randoms())
def test_any_pipeline_draws_a_chart_mermaid_parses(data: dict[str, Any], seed: Any) -> None:
    pipeline = Pipeline.model_validate(data)
    names = [step.name for _, step in pipeline.walk()]
    marks = {n: seed.choice(MARKS) for n in names if seed.random() < 0.5}
    assert_mermaid(
        flowchart(pipeline),
        flowchart(pipeline, marks),
        flowchart(pipeline, marks, collapse_unchanged=True, direction="LR"),
    )


@settings(max_examples=40, deadline=None)
@given(text=st.lists(awkward_text | st.text(), min_size=1, max_size=8).map("".join))
def test_any_text_makes_a_valid_label(text: str) -> None:
    assert_mermaid(f"flowchart TD\n  a[{label(text)}] -->|{label(text)}| b{{{label(text)}}}\n")


HOSTILE = [
    'say "hi"',
    "a]b[c",
    "#quot; #35; &amp; <b>bold</b> <script>x</script>",
    "`code` ``` **bold**",
    "end",
    "subgraph",
    "graph TD",
    "a --> b; click a call x()",
    "%% comment",
    "x|y|z",
    "{{ input }}",
    "ünïcödé ✅ 🚀 中文 \u200b\u202e",
    "line\nbreak\ttab\r\n",
    "\\",
    "classDef x fill:#f00",
    "",
]


def test_hostile_text_everywhere_a_label_can_come_from() -> None:
    data = {
        "steps": [
            {"name": "end", "uses": HOSTILE[i], "description": HOSTILE[i]}
            if i == 0
            else {"name": f"s{i}", "uses": text or "x"}
            for i, text in enumerate(HOSTILE)
        ]
        + [
            {
                "name": "pick",
                "kind": "conditional",
                "condition_expression": "input",
                "branches": {text: {"steps": []} for text in HOSTILE},
            },
            {"name": "each", "kind": "map", "over": HOSTILE[3], "body": {"steps": chain(1)}},
        ]
    }
    chart = flowchart(Pipeline.model_validate(data), {"end": "changed"})
    assert_mermaid(chart)
    assert "<script>" not in chart and '"say "hi""' not in chart


def test_node_ids_are_safe_stable_and_distinct() -> None:
    names = ["end", "a-b", "a_b", "a_2d_b", "A", "a", "_", "-x"]
    ids = [node_id(n) for n in names]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"s_[A-Za-z0-9_]+", i) for i in ids)
    assert node_id("a-b") == node_id("a-b")


def big(count: int) -> Pipeline:
    return Pipeline.model_validate(
        {
            "steps": [
                *chain(count // 2),
                {"name": "loop", "kind": "loop", "body": {"steps": chain(5, "body")}},
                *chain(count - count // 2 - 6, "tail"),
            ]
        }
    )


def test_large_pipelines_fold_unchanged_runs_around_the_changes() -> None:
    pipeline = big(60)
    assert sum(1 for _ in pipeline.walk()) >= COLLAPSE_AT
    chart = flowchart(pipeline, {"step_10": "changed", "body_2": "added"})
    full = flowchart(pipeline, {"step_10": "changed", "body_2": "added"}, collapse_unchanged=False)
    assert_mermaid(chart, full)
    assert len(chart.splitlines()) < len(full.splitlines()) / 2
    assert "s_step_5f_10[" in chart and "s_body_5f_2[" in chart  # changes stay visible
    assert "s_step_5f_9[" in chart and "s_step_5f_11[" in chart  # with one step of context
    assert "s_step_5f_20[" not in chart
    assert "step_0 … step_8 · 9 unchanged steps" in chart
    assert "legend_collapsed" in chart


def test_small_pipelines_are_not_folded_unless_asked() -> None:
    pipeline = big(20)
    assert "unchanged step" not in flowchart(pipeline, {"step_1": "changed"})
    folded = flowchart(pipeline, {"step_1": "changed"}, collapse_unchanged=True)
    assert_mermaid(folded)
    assert "unchanged steps" in folded


def test_an_unchanged_large_pipeline_folds_to_one_node() -> None:
    chart = flowchart(big(80))
    assert_mermaid(chart)
    assert "80 unchanged steps" in chart
    assert chart.count("-->") == 2  # start --> folded --> finish


@given(pipelines())
@settings(max_examples=15, deadline=None)
def test_checked_pipelines_chart_every_step(pipeline: Pipeline) -> None:
    chart = flowchart(pipeline)
    for _, step in pipeline.walk():
        assert node_id(step.name) in chart


def test_without_node_the_mermaid_tests_fail_unless_opted_out(monkeypatch: Any) -> None:
    import tests.support.mermaid as parser

    monkeypatch.setattr(parser.shutil, "which", lambda _: None)
    with pytest.raises(RuntimeError, match=r"Node\.js is not installed"):
        parser.MermaidParser()
    monkeypatch.setattr(parser, "_parser", lambda: "Node.js is not installed")
    monkeypatch.delenv("FLUJO_SKIP_MERMAID", raising=False)
    with pytest.raises(pytest.fail.Exception, match="FLUJO_SKIP_MERMAID=1 skips"):
        parser.mermaid_errors(["flowchart TD\n"])
    monkeypatch.setenv("FLUJO_SKIP_MERMAID", "1")
    with pytest.raises(pytest.skip.Exception):
        parser.mermaid_errors(["flowchart TD\n"])


@pytest.mark.parametrize("path", EXAMPLES + LEGACY, ids=lambda p: p.stem)
def test_edges_are_written_outside_every_box(path: Any) -> None:
    """Mermaid pulls a node into any subgraph whose block mentions it: an edge written
    inside a branch's box would draw the decision or fork inside that box."""
    chart = flowchart(Pipeline.from_yaml(path), {"classify": "changed"})
    depth = 0
    for line in chart.splitlines():
        text = line.strip()
        if text.startswith("subgraph "):
            depth += 1
        elif text == "end":
            depth -= 1
        elif depth and ("-->" in text or "-.->" in text):
            raise AssertionError(f"edge inside a subgraph: {text}")
    assert depth == 0
