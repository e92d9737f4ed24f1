"""flujo 0.x's run context, built-ins, Python conditions and expression dialect, at run
time (tests/legacy/context.yaml)."""

from __future__ import annotations

from pathlib import Path

from flujo.engine.runner import CONTEXT_WRITES, Runner
from flujo.engine.store import RunStore
from flujo.spec.load import check
from flujo.spec.registry import StepRegistry
from tests.support.legacy import ALLOW, LEGACY, load


async def test_the_context_blueprint_runs_with_0x_yaml_paths(tmp_path: Path) -> None:
    pipeline = load(LEGACY / "context.yaml")
    store = RunStore(tmp_path / "runs.db")
    runner = Runner(pipeline, registry=ALLOW, store=store)
    result = await runner.run("start")
    spans = {s["step_name"]: s for s in store.spans(result.run_id) if s["step_name"]}
    assert result.success, result.error
    context = result.context
    assert context["initial_prompt"] == "start"
    assert context["import_artifacts"] == {"user": "Ada", "settings": {"theme": "dark"}}
    assert context["greeting_text"] == "Hello Ada (dark)"
    assert context["yaml_is_valid"] is True
    assert context["rounds"] == [1, 2, 3]
    assert context["notes"] == {"left": "L", "right": "R"}  # both branches merged
    steps = result.steps
    assert steps.read_user.output == "Ada"
    assert steps.say_valid.success and "say_invalid" not in steps
    assert steps.dialect_ok.success
    assert steps.rounds.attempts == 3
    assert result.output == ["1", "2", "3"]
    assert steps.count.yaml_path == "steps[10].loop.body.steps[0]"
    assert steps.left_note.yaml_path == "steps[11].branches.left.steps[0]"
    writes = {name: span["attributes"].get(CONTEXT_WRITES) for name, span in spans.items()}
    assert writes["remember_user"] == ["import_artifacts.user"]
    assert writes["to_flag"] == ["yaml_is_valid"]
    assert writes["greeting"] == ["greeting_text"]
    assert writes["read_user"] is None


def test_python_conditions_need_the_allow_list_and_are_never_imported() -> None:
    _, diagnostics = check(LEGACY / "context.yaml", registry=StepRegistry(entry_points=False))
    errors = {d.yaml_path for d in diagnostics if d.severity == "error"}
    assert "steps[8].condition" in errors
    assert "steps[10].loop.exit_condition" in errors


def test_0x_builtins_without_a_counterpart_name_the_replacement() -> None:
    problem = StepRegistry(entry_points=False).problem("flujo.builtins:http_get")
    assert problem is not None and "allow-listed" in problem
    assert StepRegistry(entry_points=False).problem("flujo.builtins:context_set") is None


async def test_the_migrated_context_blueprint_runs_the_same(tmp_path: Path) -> None:
    from flujo.spec.legacy.migrate import migrate

    original = load(LEGACY / "context.yaml")
    path = tmp_path / "context.yaml"
    path.write_text(migrate(LEGACY / "context.yaml").text, encoding="utf-8")
    migrated = load(path)
    assert migrated.source is not None and not migrated.source.legacy
    before = await Runner(original, registry=ALLOW).run({"start": 1})
    after = await Runner(migrated, registry=ALLOW).run({"start": 1})
    assert before.success and after.success, (before.error, after.error)
    assert before.output == after.output
    legacy_only = {"initial_prompt", "scratchpad", "import_artifacts"}
    assert {k: v for k, v in before.context.items() if k not in legacy_only} == {
        k: v for k, v in after.context.items() if k not in legacy_only
    }
    paths = {name: step.yaml_path for name, step in after.steps.items()}
    assert paths["count"] == "steps[10].body.steps[0]"


def test_reads_of_context_keys_nothing_writes_are_warnings_at_their_place() -> None:
    text = """\
steps:
  - name: a
    uses: passthrough
    sink_to: seen
  - name: b
    uses: passthrough
    input: "{{ context.seen }} and {{ context.nope }}"
  - name: c
    kind: conditional
    condition_expression: "context.get('other', false)"
    branches: {x: {steps: [{name: d}]}}
"""
    pipeline, diagnostics = check(text, registry=StepRegistry(entry_points=False))
    assert pipeline is not None
    found = [(d.line, d.col, d.severity, d.code) for d in diagnostics]
    assert found == [(7, 39, "warning", "context-key"), (10, 28, "warning", "context-key")]
    assert "'nope'" in diagnostics[0].message and "'other'" in diagnostics[1].message
