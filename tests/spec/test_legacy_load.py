"""flujo 0.x blueprints load into the current model: detection, yaml_paths, lines,
spec_sha256, warnings for what has no effect, errors for what cannot run, imports."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import flujo
from flujo.spec.errors import Diagnostic
from flujo.spec.legacy.blueprint import is_legacy
from flujo.spec.load import check
from flujo.spec.model import (
    AgentStep,
    ConditionalStep,
    HitlStep,
    LoopStep,
    MapStep,
    ParallelStep,
    Pipeline,
    StateMachineStep,
)
from tests.support.legacy import ALLOW, LEGACY
from tests.support.specs import EXAMPLES, spec


def load(name: str) -> tuple[Pipeline, list[Diagnostic]]:
    pipeline, diagnostics = check(LEGACY / name, registry=ALLOW)
    assert pipeline is not None, "\n".join(map(str, diagnostics))
    return pipeline, diagnostics


def load_text(text: str, tmp_path: Path) -> tuple[Pipeline | None, list[Diagnostic]]:
    path = tmp_path / "blueprint.yaml"
    path.write_text(spec(text), encoding="utf-8")
    return check(path, registry=ALLOW)


def line_of(name: str, needle: str) -> int:
    lines = (LEGACY / name).read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_the_test_blueprints_are_detected_as_0x_and_the_examples_are_not() -> None:
    from flujo.spec.source import parse

    for name in ("support.yaml", "control.yaml", "sub/cleanup.yaml"):
        assert is_legacy(parse((LEGACY / name).read_text()).data), name
    for example in EXAMPLES:
        assert not is_legacy(parse(example.read_text()).data), example


def test_every_step_carries_the_yaml_path_flujo_06_gives_it() -> None:
    support, _ = load("support.yaml")
    assert [step.yaml_path for _, step in support.walk()] == [
        "steps[0]",
        "steps[1]",
        "steps[1].branches.billing.steps[0]",  # a bare list in the file
        "steps[1].branches.technical.steps[0]",  # a single step in the file
        "steps[1].default_branch.steps[0]",
        "steps[2]",
        "steps[2].fallback",
        "steps[3]",
        "steps[3].branches.kept.steps[0]",
        "steps[3].branches.broken.steps[0]",
    ]
    control, _ = load("control.yaml")
    assert [step.yaml_path for _, step in control.walk()] == [
        "steps[0]",
        "steps[1]",
        "steps[1].branches.true.steps[0]",
        "steps[1].branches.false.steps[0]",
        "steps[2]",
        "steps[2].loop.body.steps[0]",
        "steps[3]",
        "steps[3].map.body.steps[0]",
        "steps[4]",
        "steps[4].states.draft.steps[0]",
        "steps[4].states.check.steps[0]",
        "steps[5]",
    ]


def test_steps_point_at_their_lines_in_the_0x_file() -> None:
    support, _ = load("support.yaml")
    assert support.step("Classify_ticket").line == line_of("support.yaml", "step: Classify")
    # a step written as a mapping value points at its key, like every mapping value
    assert support.step("tech_reply").line == line_of("support.yaml", "technical:")
    control, _ = load("control.yaml")
    assert control.step("polish_again").line == line_of("control.yaml", "name: polish_again")
    assert control.step("check_draft").line == line_of("control.yaml", "name: check_draft")


def test_constructs_become_the_current_model() -> None:
    support, _ = load("support.yaml")
    classifier = support.agents["classifier"]
    assert classifier.system_prompt.startswith("You sort support tickets for Acme.\n")
    assert (classifier.temperature, classifier.max_tokens) == (0, 60)
    first = support.step("Classify_ticket")
    assert isinstance(first, AgentStep)
    assert (first.config.timeout_s, first.config.max_retries) == (20, 1)  # from the agent
    billing = support.step("billing_reply")
    assert isinstance(billing, AgentStep) and billing.config.timeout_s == 30
    tech = support.step("tech_reply")
    assert isinstance(tech, AgentStep)
    # 0.x's template `input` was the step's input: rebound to `previous`, it runs the same
    template = "{% with input = previous %}Tech: {{ input }}{% endwith %}"
    assert (tech.uses, tech.with_) == ("template_render", {"template": template})
    other = support.step("other_reply")
    assert isinstance(other, AgentStep) and other.uses == "tests.support.skills:shout"
    extras = support.step("extras")
    assert isinstance(extras, ParallelStep) and extras.on_branch_failure == "ignore"
    assert isinstance(support.step("route"), ConditionalStep)

    control, _ = load("control.yaml")
    approve = control.step("approve")
    assert isinstance(approve, HitlStep) and approve.input_schema == {
        "type": "string",
        "enum": ["yes", "no"],
    }
    decide = control.step("decide")
    assert isinstance(decide, ConditionalStep) and list(decide.branches) == ["true", "false"]
    refine = control.step("refine")
    assert isinstance(refine, LoopStep)
    assert (refine.max_loops, refine.exit_expression) == (3, "output == 'DONE'")
    each = control.step("each_tag")
    assert isinstance(each, MapStep) and each.over == "context.tags"
    review = control.step("review")
    assert isinstance(review, StateMachineStep)
    assert (review.start_state, review.end_states) == ("draft", ["done"])
    assert [(t.from_, t.on, t.to) for t in review.transitions] == [
        ("draft", "success", "check"),
        ("check", "success", "done"),
    ]


def test_what_has_no_effect_is_a_warning_at_its_place() -> None:
    _, diagnostics = load("support.yaml")
    assert all(d.severity == "warning" for d in diagnostics)
    found = {(d.line, d.yaml_path) for d in diagnostics}
    assert (
        line_of("support.yaml", "reasoning"),
        "agents.classifier.model_settings.reasoning",
    ) in found
    assert all(not path.endswith("updates_context") for _, path in found)  # it runs now
    assert (
        line_of("support.yaml", "top_k"),
        "steps[1].branches.billing[0].config.top_k",
    ) in found
    assert (line_of("support.yaml", "merge_strategy"), "steps[3].merge_strategy") in found
    renamed = next(d for d in diagnostics if d.code == "legacy-name")
    assert "'Classify ticket'" in renamed.message and "'Classify_ticket'" in renamed.message


def test_spec_sha256_is_flujo_06s_hash_of_the_top_level_file() -> None:
    for name in ("support.yaml", "control.yaml"):
        pipeline, _ = load(name)
        with (LEGACY / name).open(encoding="utf-8", newline=None) as handle:
            expected = hashlib.sha256(handle.read().encode("utf-8")).hexdigest()
        assert pipeline.spec_sha256 == expected


def test_crlf_files_hash_like_lf_files(tmp_path: Path) -> None:
    text = (LEGACY / "support.yaml").read_text(encoding="utf-8")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "classifier.md").write_text("x", encoding="utf-8")
    (tmp_path / "lf.yaml").write_bytes(text.encode())
    (tmp_path / "crlf.yaml").write_bytes(text.replace("\n", "\r\n").encode())
    lf, _ = check(tmp_path / "lf.yaml", registry=ALLOW)
    crlf, _ = check(tmp_path / "crlf.yaml", registry=ALLOW)
    assert lf is not None and crlf is not None
    assert lf.spec_sha256 == crlf.spec_sha256


def test_imported_steps_keep_their_own_file_paths_and_lines() -> None:
    control, _ = load("control.yaml")
    cleanup = control.imported["cleanup"]
    assert cleanup.file is not None and cleanup.file.endswith("sub/cleanup.yaml")
    [(_, strip)] = list(cleanup.walk())
    assert (strip.name, strip.yaml_path) == ("strip", "steps[0]")
    assert strip.line == line_of("sub/cleanup.yaml", "step: strip")


@pytest.mark.parametrize("kind", ["tree_search"])
def test_kinds_this_flujo_does_not_run_are_errors_naming_kind_and_line(
    kind: str, tmp_path: Path
) -> None:
    pipeline, diagnostics = load_text(
        f"""
        steps:
          - name: first
          - name: special
            kind: {kind}
        """,
        tmp_path,
    )
    assert pipeline is None
    [error] = [d for d in diagnostics if d.severity == "error"]
    assert (error.line, error.code) == (4, "unsupported-kind")
    assert f"'{kind}'" in error.message and error.yaml_path == "steps[1].kind"


def test_a_custom_kind_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    pipeline, diagnostics = load_text(
        """
        version: "0.1"
        steps:
          - name: one
            kind: StateMachin
            states: {a: [{name: x}]}
        """,
        tmp_path,
    )
    assert pipeline is None
    [error] = [d for d in diagnostics if d.severity == "error"]
    assert error.line == 4 and "'StateMachin'" in error.message
    assert "did you mean 'StateMachine'" in error.message


def test_unknown_keys_are_warnings_with_a_did_you_mean(tmp_path: Path) -> None:
    pipeline, diagnostics = load_text(
        """
        version: "0.1"
        owner: team-a
        steps:
          - step: one
            validator: [non_empty]
            config: {timeout: 5, retries: 2}
        """,
        tmp_path,
    )
    assert pipeline is not None
    messages = {(d.line, d.message) for d in diagnostics}
    assert all(d.severity == "warning" for d in diagnostics)
    assert (2, "unknown key 'owner' is ignored") in messages
    assert (5, "unknown key 'validator' is ignored; did you mean 'validators'?") in messages
    assert (6, "unknown key 'retries' is ignored; did you mean 'max_retries'?") in messages


def test_python_conditions_go_through_the_skill_allow_list(tmp_path: Path) -> None:
    pipeline, diagnostics = load_text(
        """
        steps:
          - name: pick
            kind: conditional
            condition: my_pkg.rules:pick
            branches: {a: [{name: x}]}
          - name: again
            kind: loop
            loop:
              body: [{name: y}]
              exit_condition: my_pkg.rules:done
        """,
        tmp_path,
    )
    assert pipeline is not None  # the schema is fine; the callables are not allowed
    errors = [(d.line, d.code) for d in diagnostics if d.severity == "error"]
    assert errors == [(4, "unknown-skill"), (10, "unknown-skill")]
    pick, again = pipeline.steps
    assert isinstance(pick, ConditionalStep) and pick.condition == "my_pkg.rules:pick"
    assert isinstance(again, LoopStep) and again.exit_condition == "my_pkg.rules:done"


def test_duplicate_names_across_branches_are_made_unique(tmp_path: Path) -> None:
    pipeline, diagnostics = load_text(
        """
        steps:
          - name: fan
            kind: parallel
            branches:
              a: [{name: work}]
              b: [{name: work}]
        """,
        tmp_path,
    )
    assert pipeline is not None
    assert [s.name for _, s in pipeline.walk()] == ["fan", "work", "work_2"]
    assert [d.line for d in diagnostics if d.code == "legacy-name"] == [6]


def test_yaml_11_on_keys_and_boolean_branches_read_as_text(tmp_path: Path) -> None:
    # `true: success` is what a YAML 1.1 tool writes back for a rule's `on: success`.
    pipeline, _ = load_text(
        """
        steps:
          - name: sm
            kind: StateMachine
            start_state: a
            end_states: [b]
            states: {a: [{name: x}]}
            transitions:
              - {from: a, true: success, to: b}
          - name: pick
            kind: conditional
            condition_expression: "True"
            branches:
              true: [{name: yes_step}]
              false: [{name: no_step}]
        """,
        tmp_path,
    )
    assert pipeline is not None
    machine = pipeline.step("sm")
    assert isinstance(machine, StateMachineStep) and machine.transitions[0].on == "success"
    pick = pipeline.step("pick")
    assert isinstance(pick, ConditionalStep) and list(pick.branches) == ["true", "false"]


def test_prompt_files_stay_inside_the_blueprints_folder(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret", encoding="utf-8")
    folder = tmp_path / "specs"
    folder.mkdir()
    path = folder / "a.yaml"
    path.write_text(
        spec(
            """
            agents:
              a:
                model: openai:gpt-4o
                system_prompt: {from_file: ../secret.txt}
                output_schema: {type: string}
            steps:
              - step: one
                uses: agents.a
            """
        ),
        encoding="utf-8",
    )
    pipeline, diagnostics = check(path, registry=ALLOW)
    assert pipeline is None
    [error] = [d for d in diagnostics if d.severity == "error"]
    assert (error.code, error.line) == ("unsafe-path", 4)


def test_a_0_1_file_in_the_shared_subset_reads_the_same_either_way() -> None:
    text = spec(
        """
        version: "0.1"
        steps:
          - name: one
            uses: passthrough
        """
    )
    pipeline = Pipeline.from_yaml(text)
    assert pipeline.source is not None and not pipeline.source.legacy
    assert pipeline.version == "0.1"


def test_imports_must_stay_in_the_repository_exist_and_not_cycle(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (tmp_path / "outside.yaml").write_text("steps: []\n", encoding="utf-8")
    (repo / "a.yaml").write_text(
        "imports: {b: b.yaml}\nsteps:\n  - step: run_b\n    uses: imports.b\n", encoding="utf-8"
    )
    (repo / "b.yaml").write_text(
        "imports: {a: a.yaml}\nsteps:\n  - step: run_a\n    uses: imports.a\n", encoding="utf-8"
    )
    (repo / "c.yaml").write_text(
        spec(
            """
            imports:
              out: ../outside.yaml
              gone: missing.yaml
            steps:
              - step: one
            """
        ),
        encoding="utf-8",
    )
    _, diagnostics = check(repo / "a.yaml")
    cycle = [d for d in diagnostics if d.code == "import-cycle"]
    assert len(cycle) == 1 and "a.yaml -> " in cycle[0].message
    assert cycle[0].file.endswith("b.yaml") and cycle[0].line == 1
    _, diagnostics = check(repo / "c.yaml")
    codes = {(d.code, d.line) for d in diagnostics if d.severity == "error"}
    assert codes == {("unsafe-path", 2), ("missing-file", 3)}


def test_an_unknown_import_alias_is_an_error(tmp_path: Path) -> None:
    pipeline, diagnostics = load_text(
        """
        steps:
          - step: one
            uses: imports.nowhere
        """,
        tmp_path,
    )
    assert pipeline is not None  # the schema is fine; the reference is not
    [error] = [d for d in diagnostics if d.severity == "error"]
    assert (error.code, error.line, error.yaml_path) == ("unknown-import", 3, "steps[0].uses")


def test_templates_and_expressions_may_read_the_0x_context(tmp_path: Path) -> None:
    pipeline, diagnostics = load_text(
        """
        steps:
          - step: one
            input: "Hello {{ context.user_name }}"
          - name: two
            kind: conditional
            condition_expression: "context.flag"
            branches: {a: [{name: x}]}
          - name: three
            kind: [not, a, kind]
        """,
        tmp_path,
    )
    assert pipeline is None
    found = [(d.line, d.code) for d in diagnostics if d.severity == "error"]
    assert found == [(9, "schema")]


async def test_previous_step_names_the_previous_output_in_templates_too(tmp_path: Path) -> None:
    pipeline, _ = load_text(
        """
        steps:
          - step: first
            agent: {id: template_render, params: {template: "a"}}
          - step: second
            input: "{{ previous_step }}b"
        """,
        tmp_path,
    )
    assert pipeline is not None
    assert (await flujo.run(pipeline, None)).output == "ab"


def test_without_a_repository_imports_stay_in_the_specs_folder(tmp_path: Path) -> None:
    from flujo.spec.imports import repository_root

    folder = tmp_path / "specs"
    (folder / "lib").mkdir(parents=True)
    assert repository_root(folder) == folder.resolve()  # no `.git` above tmp_path
    (tmp_path / "shared.yaml").write_text("steps: []\n", encoding="utf-8")
    (folder / "lib" / "ok.yaml").write_text("steps:\n  - step: fine\n", encoding="utf-8")
    (folder / "main.yaml").write_text(
        "imports: {ok: lib/ok.yaml, up: ../shared.yaml}\n"
        "steps:\n  - step: go\n    uses: imports.ok\n",
        encoding="utf-8",
    )
    pipeline, diagnostics = check(folder / "main.yaml")
    assert pipeline is not None and list(pipeline.imported) == ["ok"]
    assert [(d.code, d.col) for d in diagnostics if d.severity == "error"] == [("unsafe-path", 28)]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("cache", "a cache step needs `wrapped_step:`"),
        ("dynamic_router", "needs `router:` with `router_agent` and `branches`"),
        ("agentic_loop", "an agentic_loop step needs `planner:`"),
    ],
)
def test_the_0x_kinds_that_run_here_say_what_they_lack(
    kind: str, message: str, tmp_path: Path
) -> None:
    pipeline, diagnostics = load_text(
        f"""
        version: "0.1"
        steps:
          - name: special
            kind: {kind}
        """,
        tmp_path,
    )
    assert pipeline is None
    [error] = [d for d in diagnostics if d.severity == "error"]
    assert message in error.message and error.line == 3


def test_a_cache_step_wraps_its_step_under_06s_yaml_path(tmp_path: Path) -> None:
    pipeline, diagnostics = load_text(
        """
        steps:
          - name: cached
            kind: cache
            wrapped_step:
              name: inner
              agent: {id: "flujo.builtins.stringify"}
        """,
        tmp_path,
    )
    assert pipeline is not None and diagnostics == []
    assert pipeline.step("cached").kind == "cache"
    inner = pipeline.step("inner")
    assert isinstance(inner, AgentStep) and inner.uses == "flujo.builtins:stringify"
    assert inner.yaml_path == "steps[0].wrapped_step"
