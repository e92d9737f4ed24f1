"""Graph-aware spec diffs, their bullets, and `flujo diff` (also as a git diff driver)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flujo.cli import cli
from flujo.spec.edit import apply_patch
from flujo.spec.model import Pipeline
from flujo.spec.review.bullets import bullets, code
from flujo.spec.review.diff import Change, SpecDiff, diff_specs
from flujo.spec.review.mermaid import flowchart
from tests.support.mermaid import assert_mermaid
from tests.support.specs import EXAMPLES, spec
from tests.support.strategies import pipelines

TRIAGE = next(p for p in EXAMPLES if p.stem == "support_triage")


def load(text: str, name: str = "new.yaml") -> Pipeline:
    from flujo.spec.load import validate_document
    from flujo.spec.source import parse

    pipeline, diagnostics = validate_document(parse(text, name))
    assert pipeline is not None, diagnostics
    return pipeline


def patched(path: Path, patch: list[dict[str, Any]]) -> tuple[Pipeline, Pipeline, str]:
    text = path.read_text("utf-8")
    new_text = apply_patch(text, patch)
    return load(text, "old.yaml"), load(new_text), new_text


def by_key(diff: SpecDiff) -> dict[str, Change]:
    changes = {c.key: c for c in diff.changes}
    assert len(changes) == len(diff.changes), "keys must be unique"
    return changes


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# -- the example specs, before and after a typical suggestion --------------------------


def test_a_suggestion_on_support_triage_maps_to_steps_and_lines() -> None:
    old, new, new_text = patched(
        TRIAGE,
        [
            {"op": "replace", "path": "/agents/classifier/model", "value": "openai:gpt-4o-mini"},
            {"op": "replace", "path": "/steps/0/config/max_retries", "value": 4},
            {"op": "add", "path": "/steps/0/validators/-", "value": "tone_check"},
            {"op": "remove", "path": "/steps/1/branches/technical/steps/1/validators/0"},
            {"op": "replace", "path": "/steps/0/config/timeout_s", "value": 5},
        ],
    )
    diff = diff_specs(old, new)
    changes = by_key(diff)
    assert list(changes) == [
        "agent:classifier.model",
        "step:technical_reply.validators.max_length",
        "step:classify.validators.tone_check",
        "step:classify.config.max_retries",
        "step:classify.config.timeout_s",
    ]
    model = changes["agent:classifier.model"]
    assert (model.category, model.before, model.after) == (
        "model",
        "openai:gpt-4o",
        "openai:gpt-4o-mini",
    )
    assert model.steps == ("classify",)
    assert model.line == line_of(new_text, "model: openai:gpt-4o-mini")
    added = changes["step:classify.validators.tone_check"]
    assert added.kind == "added" and added.yaml_path == "steps[0].validators[1]"
    assert added.line == line_of(new_text, "- tone_check")
    removed = changes["step:technical_reply.validators.max_length"]
    assert removed.side == "old" and removed.kind == "removed"
    assert removed.line == line_of(TRIAGE.read_text(), "- uses: max_length")
    assert bullets(diff, {"agent:classifier.model": "saves ~$0.02/run"}) == [
        "💲 **Switch** `classify` from `gpt-4o` to `gpt-4o-mini` — saves ~$0.02/run",
        "❌ **Remove** validator `max_length` from step `technical_reply`",
        "✅ **Add** validator `tone_check` to step `classify`",
        "🔁 **Raise** retries of `classify` from 2 to 4",
        "⏱️ **Lower** the timeout of `classify` from 20 s to 5 s",
    ]
    assert diff.marks("new") == {"classify": "changed", "technical_reply": "changed"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_diffs_against_itself_as_empty_and_against_a_patch(path: Path) -> None:
    original = load(path.read_text("utf-8"))
    assert not diff_specs(original, original)
    assert not diff_specs(original, Pipeline.from_yaml(original.to_yaml()))  # format only
    first_agent = next(iter(original.agents))
    old, new, _ = patched(
        path,
        [
            {"op": "replace", "path": f"/agents/{first_agent}/system_prompt", "value": "Be terse."},
            {"op": "add", "path": "/steps/-", "value": {"name": "audit", "uses": "json_parse"}},
            {"op": "add", "path": "/steps/0/description", "value": "Now documented."},
        ],
    )
    diff = diff_specs(old, new)
    kinds = {(c.category, c.kind, c.name) for c in diff.changes}
    assert ("prompt", "changed", first_agent) in kinds
    assert ("step", "added", "audit") in kinds
    assert ("description", "changed", old.steps[0].name) in kinds
    text = bullets(diff)
    assert text[0].startswith("✅ **Add** step `audit` after ")
    assert text[-1] == f"📝 **Reword** the description of `{old.steps[0].name}`"
    assert_mermaid(flowchart(old, diff.marks("old")), flowchart(new, diff.marks("new")))
    assert "class s_audit,legend_added added" in flowchart(new, diff.marks("new"))


# -- structure: renames, moves, containers ---------------------------------------------

BASE = spec(
    """
    steps:
      - name: fetch
        uses: template_render
        with: {template: "x"}
      - name: clean
        uses: json_parse
      - name: route
        kind: conditional
        condition_expression: input.kind
        branches:
          a:
            steps:
              - name: in_a
                uses: json_parse
          b:
            steps: []
      - name: store
        uses: template_render
        with: {template: "y"}
    """
)


def edit(*operations: dict[str, Any]) -> SpecDiff:
    return diff_specs(load(BASE, "old.yaml"), load(apply_patch(BASE, list(operations))))


def test_a_step_with_a_new_name_and_the_same_content_is_a_rename() -> None:
    diff = edit({"op": "replace", "path": "/steps/1/name", "value": "tidy"})
    (change,) = diff.changes
    assert (change.kind, change.old_name, change.name) == ("renamed", "clean", "tidy")
    assert change.old_path == change.new_path == "steps[1]"
    assert bullets(diff) == ["🏷️ **Rename** step `clean` to `tidy`"]
    assert diff.marks("old") == {"clean": "changed"} and diff.marks("new") == {"tidy": "changed"}


def test_a_new_name_with_new_content_is_a_removal_and_an_addition() -> None:
    diff = edit(
        {"op": "replace", "path": "/steps/1/name", "value": "tidy"},
        {"op": "replace", "path": "/steps/1/uses", "value": "json_dump"},
    )
    assert [(c.kind, c.name) for c in diff.changes] == [("removed", "clean"), ("added", "tidy")]


def test_reordering_reports_only_the_step_that_moved() -> None:
    diff = edit({"op": "move", "from": "/steps/3", "path": "/steps/0"})
    (change,) = diff.changes
    assert (change.kind, change.name, change.before, change.after) == ("moved", "store", 3, 0)
    assert bullets(diff) == ["🔀 **Reorder** `store`: now runs before `fetch`"]
    assert diff.marks("new") == {"store": "moved"} == diff.marks("old")


def test_moving_a_step_into_a_branch_is_a_reparenting() -> None:
    diff = edit(
        {"op": "remove", "path": "/steps/1"},
        {
            "op": "add",
            "path": "/steps/1/branches/b/steps/0",
            "value": {"name": "clean", "uses": "json_parse"},
        },
    )
    (change,) = diff.changes
    assert change.kind == "moved" and change.detail["reparented"]
    assert change.old_path == "steps[1]"
    assert change.new_path == "steps[1].branches.b.steps[0]"
    assert bullets(diff) == ["🔀 **Move** `clean` from the top level to branch `b` of `route`"]


def test_an_added_container_is_one_change_that_marks_its_inner_steps() -> None:
    loop = {
        "name": "retry_all",
        "kind": "loop",
        "max_loops": 3,
        "body": {"steps": [{"name": "inner_1"}, {"name": "inner_2"}]},
    }
    diff = edit({"op": "add", "path": "/steps/2", "value": loop})
    (change,) = diff.changes
    assert change.steps == ("retry_all", "inner_1", "inner_2")
    assert bullets(diff) == ["✅ **Add** step `retry_all` (loop with 2 steps) after `clean`"]
    assert diff.marks("new") == dict.fromkeys(change.steps, "added")
    assert diff.marks("old") == {}


def test_removing_a_container_reports_it_once() -> None:
    diff = edit({"op": "remove", "path": "/steps/2"})
    (change,) = diff.changes
    assert change.side == "old" and change.steps == ("route", "in_a")
    assert bullets(diff) == ["❌ **Remove** step `route` and the 1 step inside it"]
    assert diff.marks("old") == {"route": "removed", "in_a": "removed"}


def test_branch_loop_and_condition_changes() -> None:
    diff = edit(
        {"op": "remove", "path": "/steps/2/branches/b"},
        {"op": "add", "path": "/steps/2/branches/c", "value": {"steps": []}},
        {"op": "replace", "path": "/steps/2/condition_expression", "value": "input.type"},
    )
    assert bullets(diff) == [
        "🔀 **Remove** branch `b` from `route`",
        "🔀 **Add** branch `c` to `route`",
        "🔀 **Change** the condition of `route` to `input.type`",
    ]


def test_tests_policies_limits_and_params() -> None:
    old = load(TRIAGE.read_text("utf-8"), "old.yaml")
    new_text = apply_patch(
        TRIAGE.read_text("utf-8"),
        [
            {"op": "remove", "path": "/tests/0"},
            {"op": "replace", "path": "/policies/0/action", "value": "WARN"},
            {"op": "replace", "path": "/usage_limits/total_cost_usd", "value": 0.5},
            {
                "op": "replace",
                "path": "/steps/1/branches/technical/steps/0/branches/logs/steps/0/with/group",
                "value": 2,
            },
        ],
    )
    diff = diff_specs(old, load(new_text))
    assert bullets(diff) == [
        "⚙️ **Change** `with.group` of `extract_error` from `1` to `2`",
        "🧾 **Raise** the cost cap per run from 0.25 to 0.5",
        "📜 **Change** policy `reply_cost_gate` (action)",
        "🧪 **Remove** test `billing ticket is routed to billing`",
    ]


def test_switching_a_step_to_an_agent_with_another_model_is_a_model_change() -> None:
    text = spec(
        """
        agents:
          big: {model: "openai:gpt-4o"}
          small: {model: "openai:gpt-4o-mini"}
        steps:
          - name: classify
            uses: agents.big
        """
    )
    new = text.replace("uses: agents.big", "uses: agents.small")
    diff = diff_specs(load(text), load(new))
    assert bullets(diff, {"classify": "saves ~$0.10/run"}) == [
        "💲 **Switch** `classify` from `gpt-4o` to `gpt-4o-mini` — saves ~$0.10/run"
    ]


def test_notes_by_step_name_go_to_that_steps_most_important_change_only() -> None:
    diff = edit(
        {"op": "add", "path": "/steps/1/config", "value": {"max_retries": 2}},
        {"op": "add", "path": "/steps/1/validators", "value": ["non_empty"]},
    )
    assert bullets(diff, {"clean": "fewer failures"}) == [
        "✅ **Add** validator `non_empty` to step `clean` — fewer failures",
        "🔁 **Raise** retries of `clean` from 0 to 2",
    ]


def test_code_spans_survive_backticks_and_long_values() -> None:
    assert code("a`b") == "`` a`b ``"
    assert code("`x`") == "`` `x` ``"
    assert code("x" * 100).endswith("…`") and len(code("x" * 100)) == 42
    assert code("") == "`(empty)`"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=pipelines(), new=pipelines())
def test_any_two_specs_diff_consistently(old: Pipeline, new: Pipeline) -> None:
    assert not diff_specs(old, old)
    diff = diff_specs(old, new)
    old_names = {s.name for _, s in old.walk()}
    new_names = {s.name for _, s in new.walk()}
    accounted = {
        name
        for c in diff.changes
        if c.category == "step" and c.kind in ("added", "renamed")
        for name in c.steps
    }
    assert new_names - old_names <= accounted
    assert set(diff.marks("new")) <= new_names and set(diff.marks("old")) <= old_names
    assert [c.rank for c in diff.changes] == sorted(c.rank for c in diff.changes)
    assert len(bullets(diff)) == len(diff.changes)
    json.dumps(diff.to_dict(), default=str)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipeline=pipelines(), data=st.data())
def test_shuffling_top_level_steps_reports_moves_only(pipeline: Pipeline, data: Any) -> None:
    order = data.draw(st.permutations(range(len(pipeline.steps))))
    shuffled = pipeline.model_copy(update={"steps": [pipeline.steps[i] for i in order]})
    diff = diff_specs(pipeline, shuffled)
    assert {c.kind for c in diff.changes} <= {"moved"}
    assert bool(diff) == (list(order) != sorted(order))


# -- the command ---------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_exit_codes_follow_diff(write: Any) -> None:
    old = write("old.yaml", BASE)
    new = write("new.yaml", BASE.replace("uses: json_parse", "uses: json_dump", 1))
    assert run("diff", str(old), str(old))[:2] == (0, f"{old} → {old}: no semantic changes\n")
    code_, out, _ = run("diff", str(old), str(new))
    assert code_ == 1
    assert out.splitlines()[1] == (
        f"  {new}:6: 🔧 Make clean use json_dump instead of json_parse  [steps[1].uses]"
    )
    code_, _, err = run("diff", str(old), str(old.parent / "missing.yaml"))
    assert code_ == 2 and "cannot read" in err
    broken = write("broken.yaml", "steps:\n  - name: a\n    kind: nope\n")
    code_, _, err = run("diff", str(old), str(broken))
    assert code_ == 2 and f"{broken}:3:" in err and "not a valid spec" in err
    assert run("diff", str(old))[0] == 2


def test_cli_json_and_markdown(write: Any) -> None:
    old = write("old.yaml", BASE)
    new = write("new.yaml", BASE.replace("name: clean", "name: tidy"))
    code_, out, _ = run("diff", "--format", "json", str(old), str(new))
    data = json.loads(out)
    assert code_ == 1
    (change,) = data["changes"]
    assert change["key"] == "step:tidy" and change["kind"] == "renamed"
    assert change["summary"] == "🏷️ **Rename** step `clean` to `tidy`"
    assert change["line"] == 5
    code_, out, _ = run("diff", "--format", "markdown", str(old), str(new))
    assert "- 🏷️ **Rename** step `clean` to `tidy`" in out
    charts = out.split("```mermaid\n")[1:]
    assert len(charts) == 2
    assert_mermaid(*(c.split("```")[0] for c in charts))


def test_cli_treats_dev_null_as_no_spec(write: Any) -> None:
    new = write("new.yaml", BASE)
    code_, out, _ = run("diff", "/dev/null", str(new))
    assert code_ == 1 and "Add step fetch" in out


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_uses_it_as_a_diff_driver(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    git("config", "diff.flujo.command", f"{sys.executable} -m flujo diff")
    (tmp_path / ".gitattributes").write_text("*.yaml diff=flujo\n")
    (tmp_path / "p.yaml").write_text(BASE)
    (tmp_path / "notes.yaml").write_text("just: [text\n")
    git("add", ".")
    git("commit", "-qm", "first")
    (tmp_path / "p.yaml").write_text(BASE.replace("json_parse", "json_dump", 1))
    (tmp_path / "notes.yaml").write_text("just: [more text\n")
    out = git("diff")
    assert "a/p.yaml → b/p.yaml: 1 change" in out
    assert "b/p.yaml:6: 🔧 Make clean use json_dump instead of json_parse" in out
    assert "+just: [more text" in out  # not a spec: a plain line diff, and git goes on


def test_the_documented_example_is_what_flujo_diff_prints(tmp_path: Path, monkeypatch: Any) -> None:
    from tests.support.specs import ROOT

    page = (ROOT / "docs" / "running.md").read_text("utf-8")
    block = page.split("$ flujo diff old/support_triage.yaml support_triage.yaml\n")[1]
    expected = block.split("```")[0]
    (tmp_path / "old").mkdir()
    original = TRIAGE.read_text("utf-8")
    (tmp_path / "old" / "support_triage.yaml").write_text(original)
    (tmp_path / "support_triage.yaml").write_text(
        original.replace("model: openai:gpt-4o\n", "model: openai:gpt-4o-mini\n", 1).replace(
            "max_retries: 2", "max_retries: 4"
        )
    )
    monkeypatch.chdir(tmp_path)
    code_, out, _ = run("diff", "old/support_triage.yaml", "support_triage.yaml")
    assert (code_, out) == (1, expected)


def test_the_fingerprint_names_the_change_not_its_layout() -> None:
    first = edit({"op": "replace", "path": "/steps/1/uses", "value": "json_dump"})
    reformatted = load(BASE, "old.yaml").to_yaml().replace("uses: json_parse", "uses: json_dump", 1)
    again = diff_specs(load(BASE, "old.yaml"), load("# moved around\n" + reformatted))
    other = edit({"op": "replace", "path": "/steps/1/uses", "value": "json_path"})
    assert first.fingerprint() == again.fingerprint() != other.fingerprint()
    assert first.to_dict()["fingerprint"] == first.fingerprint()


def test_the_command_has_help_and_is_listed() -> None:
    code_, out, _ = run("diff", "--help")
    assert code_ == 0 and "Exit codes, like diff(1)" in out
    assert "diff  " in run("--help")[1]


def test_a_rename_is_one_change_even_where_the_step_is_referenced() -> None:
    text = spec(
        """
        steps:
          - name: fetch
            uses: template_render
            with: {template: "x"}
          - name: use_it
            input: "{{ steps.fetch.output }}"
          - name: loop
            kind: loop
            exit_expression: "steps['fetch'].output == 1"
            body:
              steps:
                - name: inner
        tests:
          - name: t
            mocks: {fetch: 1}
            assertions: ["result.steps.fetch.output == 1"]
        """
    )
    renamed = text.replace("fetch", "download")
    diff = diff_specs(load(text), load(renamed))
    assert bullets(diff) == ["🏷️ **Rename** step `fetch` to `download`"]
    renamed_inner = text.replace("- name: inner", "- name: inside")
    assert bullets(diff_specs(load(text), load(renamed_inner))) == [
        "🏷️ **Rename** step `inner` to `inside`"
    ]


def test_git_calling_conventions_label_files_and_exit_0(write: Any) -> None:
    old = write("old.yaml", BASE)
    new = write("new.yaml", BASE.replace("name: clean", "name: tidy"))
    hexes = ("1" * 40, "100644")
    code_, out, _ = run("diff", "p.yaml", str(old), *hexes, str(new), *hexes)
    assert code_ == 0 and out.startswith("a/p.yaml → b/p.yaml: 1 change\n")
    renamed = ("q.yaml", "similarity index 90%\nrename from p.yaml\nrename to q.yaml\n")
    code_, out, _ = run("diff", "p.yaml", str(old), *hexes, str(new), *hexes, *renamed)
    assert code_ == 0 and out.startswith("a/p.yaml → b/q.yaml: 1 change\n")
    code_, out, _ = run("diff", "p.yaml", str(old), *hexes, "/dev/null", *hexes)
    assert code_ == 0 and "Remove step route" in out


def test_plain_text_of_a_bullet() -> None:
    from flujo.spec.review.bullets import plain

    bullet = "💲 **Switch** `classify` from `` a`b `` to `gpt-4o` — saves ~$0.10/run"
    assert plain(bullet) == "💲 Switch classify from a`b to gpt-4o — saves ~$0.10/run"
    assert plain(bullet, emoji=False) == "Switch classify from a`b to gpt-4o — saves ~$0.10/run"
    assert plain("⏱️ **Set** a timeout", emoji=False) == "Set a timeout"
