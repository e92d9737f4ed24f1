"""Loading keeps the source: yaml_path, line and column of every node; spec_sha256."""

from __future__ import annotations

import hashlib

import pytest

from flujo.spec import paths
from flujo.spec.model import ConditionalStep, ParallelStep, Pipeline
from tests.support.specs import EXAMPLES, ROOT, spec

NESTED = spec(
    """
    # A leading comment
    version: "1"
    name: nested
    steps:
      - name: first
        uses: passthrough
      - name: fan_out
        kind: parallel
        branches:
          main:
            steps:
              - name: inner_loop
                kind: loop
                body:
                  steps:
                    - name: deepest
                      uses: json_parse
                      fallback:
                        name: deepest_fallback
                        uses: passthrough
      - name: decide
        kind: conditional
        condition_expression: steps.first.output
        branches:
          "needs quoting":
            steps:
              - name: odd_branch
        default:
          steps:
            - name: otherwise
    """
)


def test_every_step_knows_its_yaml_path_line_and_column() -> None:
    pipeline = Pipeline.from_yaml(NESTED)
    found = {step.name: (step.yaml_path, step.line, step.col) for _, step in pipeline.walk()}
    assert found == {
        "first": ("steps[0]", 5, 5),
        "fan_out": ("steps[1]", 7, 5),
        "inner_loop": ("steps[1].branches.main.steps[0]", 12, 13),
        "deepest": ("steps[1].branches.main.steps[0].body.steps[0]", 16, 19),
        # a mapping value points at its key
        "deepest_fallback": ("steps[1].branches.main.steps[0].body.steps[0].fallback", 18, 19),
        "decide": ("steps[2]", 21, 5),
        "odd_branch": ('steps[2].branches["needs quoting"].steps[0]', 27, 13),
        "otherwise": ("steps[2].default.steps[0]", 30, 11),
    }


def test_walk_paths_match_the_nodes_own_paths() -> None:
    pipeline = Pipeline.from_yaml(NESTED)
    assert all(path == step.yaml_path for path, step in pipeline.walk())


def test_non_step_nodes_know_their_place_too() -> None:
    pipeline = Pipeline.from_yaml(ROOT / "examples" / "support_triage.yaml")
    agent = pipeline.agents["classifier"]
    assert agent.yaml_path == "agents.classifier"
    assert pipeline.locate("agents.classifier") == (agent.line, agent.col)
    validator = pipeline.steps[0].validators[0]  # type: ignore[union-attr]
    assert validator.yaml_path == "steps[0].validators[0]"
    assert pipeline.tests[0].yaml_path == "tests[0]"
    assert pipeline.policies[0].yaml_path == "policies[0]"


def test_locate_points_at_keys_and_items() -> None:
    pipeline = Pipeline.from_yaml(NESTED)
    assert pipeline.locate("") == (1, 1)
    assert pipeline.locate("steps") == (4, 1)
    assert pipeline.locate("steps[1].kind") == (8, 5)
    assert pipeline.locate("steps[1].branches.main") == (10, 7)
    assert pipeline.locate('steps[2].branches["needs quoting"]') == (25, 7)


def test_locate_rejects_paths_that_are_not_in_the_document() -> None:
    pipeline = Pipeline.from_yaml(NESTED)
    with pytest.raises(KeyError):
        pipeline.locate("steps[9]")
    with pytest.raises(KeyError):
        pipeline.locate("steps[0].nope")


def test_path_at_finds_the_most_specific_node_on_a_line() -> None:
    pipeline = Pipeline.from_yaml(NESTED)
    assert pipeline.path_at(6) == "steps[0].uses"
    assert pipeline.path_at(16) == "steps[1].branches.main.steps[0].body.steps[0].name"
    assert pipeline.path_at(22) == "steps[2].kind"
    assert pipeline.path_at(1) == ""


def test_path_at_and_locate_agree_on_every_node_of_every_example() -> None:
    for example in EXAMPLES:
        pipeline = Pipeline.from_yaml(example)
        source = pipeline.source
        assert source is not None
        for path in source.positions:
            line, _ = pipeline.locate(path)
            # the most specific node on that line is this node or one of its descendants
            # on the same line, or a sibling written on the same line (flow style)
            at = pipeline.path_at(line)
            assert pipeline.locate(at)[0] == line, (example.name, path, at)


def test_aliases_and_merge_keys_resolve_to_located_ancestors() -> None:
    text = spec(
        """
        defaults: &defaults
          max_retries: 2
        steps:
          - name: a
            uses: passthrough
            config:
              <<: *defaults
              timeout_s: 5
        """
    )
    from flujo.spec.source import parse

    document = parse(text)
    assert document.data["steps"][0]["config"] == {"max_retries": 2, "timeout_s": 5}
    assert document.locate("steps[0].config.timeout_s") == (8, 7)
    # a merged key has no line of its own: it points at its mapping
    assert document.locate("steps[0].config.max_retries") == (6, 5)


def test_spec_sha256_is_the_hash_of_the_bytes_with_lf_line_endings(write) -> None:  # type: ignore[no-untyped-def]
    text = "name: x\nsteps:\n  - name: a\n"
    expected = hashlib.sha256(text.encode()).hexdigest()
    lf = Pipeline.from_yaml(write("lf.yaml", text.encode()))
    crlf = Pipeline.from_yaml(write("crlf.yaml", text.replace("\n", "\r\n").encode()))
    cr = Pipeline.from_yaml(write("cr.yaml", text.replace("\n", "\r").encode()))
    assert lf.spec_sha256 == crlf.spec_sha256 == cr.spec_sha256 == expected
    changed = Pipeline.from_yaml(write("changed.yaml", text + "# a comment\n"))
    assert changed.spec_sha256 != expected
    assert changed == lf  # same model, different file: different sha


def test_spec_sha256_of_a_pipeline_built_in_code_hashes_its_canonical_yaml() -> None:
    pipeline = Pipeline.model_validate({"steps": [{"name": "a"}]})
    digest = hashlib.sha256(pipeline.to_yaml().encode()).hexdigest()
    assert pipeline.spec_sha256 == digest


def test_locations_do_not_affect_equality() -> None:
    compact = Pipeline.from_yaml("steps: [{name: a, uses: passthrough}]\n")
    spread = Pipeline.from_yaml("\n\nsteps:\n  - name: a\n    uses: passthrough\n")
    assert compact == spread
    assert compact.steps[0].line != spread.steps[0].line


def test_models_are_frozen() -> None:
    pipeline = Pipeline.from_yaml(NESTED)
    with pytest.raises(ValueError):
        pipeline.steps[0].name = "renamed"  # type: ignore[misc]


def test_yaml_path_round_trips_through_json_pointer() -> None:
    for path in ("steps[2].branches.main.steps[0]", 'steps[0].branches["a b/c~d"].steps[1]', ""):
        assert paths.from_pointer(paths.to_pointer(path)) == path
    assert paths.to_pointer('steps[0].branches["a/b"]') == "/steps/0/branches/a~1b"
    assert paths.split('steps[1].branches["x.y"].steps[0]') == [
        "steps",
        1,
        "branches",
        "x.y",
        "steps",
        0,
    ]
    with pytest.raises(ValueError):
        paths.split("steps[1]..x")


def test_conditional_branch_keys_written_as_yaml_booleans_become_strings() -> None:
    pipeline = Pipeline.from_yaml(
        "steps:\n  - name: c\n    kind: conditional\n    condition_expression: input.ok\n"
        "    branches:\n      true: {steps: [{name: yes_}]}\n      false: {steps: [{name: no_}]}\n"
    )
    step = pipeline.steps[0]
    assert isinstance(step, ConditionalStep)
    assert list(step.branches) == ["true", "false"]
    assert pipeline.step("no_").yaml_path == "steps[0].branches.false.steps[0]"
    assert not isinstance(step, ParallelStep)
