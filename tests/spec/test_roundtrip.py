"""Guarantee (a): `Pipeline.from_yaml(p.to_yaml()) == p` for every valid pipeline `p`,
and the canonical text is a fixed point (dumping the reloaded pipeline gives the same
bytes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, example, find, given, settings

from flujo.spec.lint import check_pipeline
from flujo.spec.load import attach_locations, validate_document
from flujo.spec.model import Pipeline, SpecNode
from flujo.spec.paths import child
from flujo.spec.source import parse
from tests.support.specs import ROOT
from tests.support.strategies import _CONTAINERS, pipelines, step_depth

EXAMPLES = sorted((ROOT / "examples").glob("*.y*ml"))

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every step kind, five step lists deep: a map in a loop in a parallel branch in a
# conditional branch, fallbacks of fallbacks, validators with and without
# `with:`, a config with a backoff, and block-scalar text.
DEEP = Pipeline.model_validate(
    {
        "version": "0.1",
        "name": "deep: nested\n",
        "description": "Line one\n  line two\n",
        "agents": {
            "writer": {
                "model": "openai:gpt-4o",
                "system_prompt": "Be brief.\nNo: colons # or hashes\n",
                "output_schema": {
                    "type": "object",
                    "properties": {"1": {"type": "string", "enum": ["true", "null", "~"]}},
                    "required": ["1"],
                },
                "temperature": 0.2,
                "max_tokens": 64,
            }
        },
        "steps": [
            {
                "name": "route",
                "kind": "conditional",
                "condition_expression": "input.kind",
                "branches": {
                    "true": {
                        "steps": [
                            {
                                "name": "fan_out",
                                "kind": "parallel",
                                "merge": "list",
                                "branches": {
                                    "left": {
                                        "steps": [
                                            {
                                                "name": "refine",
                                                "kind": "loop",
                                                "max_loops": 3,
                                                "exit_expression": "steps.draft.output.ok",
                                                "body": {
                                                    "steps": [
                                                        {
                                                            "name": "each",
                                                            "kind": "map",
                                                            "over": "input.items",
                                                            "body": {
                                                                "steps": [
                                                                    {
                                                                        "name": "draft",
                                                                        "uses": "agents.writer",
                                                                        "input": "{{ input }}\n",
                                                                    }
                                                                ]
                                                            },
                                                        }
                                                    ]
                                                },
                                            }
                                        ]
                                    },
                                    "right": {"steps": []},
                                },
                            }
                        ]
                    },
                    "2024-01-01": {"steps": [{"name": "noop"}]},
                },
                "default": {
                    "steps": [
                        {
                            "name": "parse",
                            "uses": "json_parse",
                            "config": {
                                "max_retries": 2,
                                "timeout_s": 1.5,
                                "backoff": {"initial_s": 0.0, "multiplier": 10, "jitter": False},
                            },
                            "validators": [
                                "non_empty",
                                {"uses": "max_length", "with": {"max": 10}},
                                {"uses": "json_schema", "with": {"schema": {"type": "object"}}},
                            ],
                            "fallback": {
                                "name": "retry_parse",
                                "uses": "regex_extract",
                                "with": {"pattern": "a: b # c", "group": "null"},
                                "fallback": {"name": "give_up", "input": "0x10"},
                            },
                        }
                    ]
                },
            }
        ],
        "tests": [
            {
                "name": " spaced ",
                "input": {"null": None, "~": "~", "1": 1, "yes": [True, "no"]},
                "assertions": ["steps.route.output"],
            }
        ],
        "policies": [{"id": "cheap", "assert": "result.total_cost_usd < 1", "action": "WARN"}],
        "usage_limits": {"total_tokens": 1000},
    }
)

# Regression: NEL (U+0085) is a line break to ruamel's reader, which folds it into a
# space inside a single-quoted scalar; the emitter used to pick that style for it.
NEL = Pipeline.model_validate(
    {
        "description": "a\x85b",
        "steps": [{"name": "s", "description": "\x85", "input": {"x\x85": ["\x85y"]}}],
        "tests": [{"name": "nel\x85", "input": "\x85", "assertions": ["input == '\\x85'"]}],
    }
)


def _spec_nodes(node: SpecNode) -> Iterator[SpecNode]:
    """Every spec node under (and including) `node`, in field order."""
    yield node
    for name in type(node).model_fields:
        value = node.__dict__[name]
        items = value.values() if isinstance(value, dict) else value
        if isinstance(value, SpecNode):
            yield from _spec_nodes(value)
        elif isinstance(value, dict | list):
            for item in items:
                if isinstance(item, SpecNode):
                    yield from _spec_nodes(item)


def assert_paths_survive(original: Pipeline, reloaded: Pipeline, text: str) -> None:
    """Reloaded nodes sit at the same structure-derived yaml_path as the original's, and
    each step's recorded line in `text` (the reloaded one's source) is where its name is
    written."""
    if original.source is None:  # built in code: give it the paths a load would give
        attach_locations(original)
    walked = [(path, step.yaml_path) for path, step in reloaded.walk()]
    assert walked == [(path, path) for path, _ in original.walk()]
    assert [n.yaml_path for n in _spec_nodes(reloaded)] == [
        n.yaml_path for n in _spec_nodes(original)
    ]
    lines = text.split("\n")  # not splitlines(): YAML breaks lines on LF only here
    for path, step in reloaded.walk():
        assert step.line is not None, path
        name_line = reloaded.locate(child(path, "name"))[0]
        assert name_line in (step.line, step.line + 1), path
        assert lines[name_line - 1].lstrip(" -").startswith("name:"), path


def assert_round_trips(pipeline: Pipeline) -> None:
    text = pipeline.to_yaml()
    reloaded = Pipeline.from_yaml(text)
    assert reloaded == pipeline
    assert reloaded.to_yaml() == text, "the canonical text is not a fixed point"
    assert_paths_survive(pipeline, reloaded, text)


@PROPERTY
@given(pipelines())
@example(DEEP)
@example(NEL)
def test_every_valid_pipeline_round_trips_through_canonical_yaml(pipeline: Pipeline) -> None:
    """Generated pipelines (which pass every check) reload equal, and redump identically."""
    assert_round_trips(pipeline)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines(checked=False))
@example(NEL)
def test_schema_valid_pipelines_round_trip_whatever_their_strings(pipeline: Pipeline) -> None:
    """Any string in any field (`uses`, expressions, validator shorthands, keys) survives.

    `Pipeline.from_yaml` also runs the semantic checks, which these pipelines need not
    pass, so they are reloaded with the schema-only part of loading."""
    text = pipeline.to_yaml()
    reloaded, diagnostics = validate_document(parse(text))
    assert diagnostics == []
    assert reloaded == pipeline
    assert reloaded.to_yaml() == text
    assert_paths_survive(pipeline, reloaded, text)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipelines())
def test_generated_pipelines_pass_every_check(pipeline: Pipeline) -> None:
    """The strategy's pipelines are sound specs, not just schema-valid ones."""
    errors = [d for d in check_pipeline(pipeline) if d.severity == "error"]
    assert errors == []


QUICK_SEARCH = settings(max_examples=100, database=None, phases=[Phase.generate], derandomize=True)


def test_strategy_nests_every_kind_of_step_four_lists_deep() -> None:
    """The generator is not degenerate: it stacks all four container kinds into one
    chain, with a plain step four step lists deep at the bottom."""

    def chain(pipeline: Pipeline) -> bool:
        steps = dict(pipeline.walk())
        return any(
            step.kind == "step"
            and path.count(".steps[") >= 4
            and {s.kind for p, s in steps.items() if path.startswith(f"{p}.")} >= set(_CONTAINERS)
            for path, step in steps.items()
        )

    assert chain(find(pipelines(), chain, settings=QUICK_SEARCH))


def test_strategy_makes_nested_fallbacks() -> None:
    def nested_fallback(pipeline: Pipeline) -> bool:
        return any(p.endswith(".fallback") and p.count(".steps[") >= 2 for p, _ in pipeline.walk())

    assert nested_fallback(find(pipelines(), nested_fallback, settings=QUICK_SEARCH))


def test_deep_example_is_really_deep() -> None:
    """The hand-written deep example nests a map in a loop in a parallel branch in a
    conditional branch, so the regression example covers what it claims to."""
    paths = [path for path, _ in DEEP.walk()]
    assert (
        "steps[0].branches.true.steps[0].branches.left.steps[0].body.steps[0].body.steps[0]"
        in paths
    )
    assert step_depth(DEEP) == 5
    assert "steps[0].default.steps[0].fallback.fallback" in paths


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_round_trips(path: Path) -> None:
    """Every shipped example reloads equal from its canonical text."""
    assert_round_trips(Pipeline.from_yaml(path))


def test_examples_exist() -> None:
    assert EXAMPLES, "no examples/*.yaml found; the parametrized round trip covers nothing"
