"""0.x blueprints run like their migrations, with spans under 0.6's yaml_paths; hitl
steps and state machines at run time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.human import RecordedHumans
from flujo.engine.runner import Runner
from flujo.engine.store import RunStore
from flujo.spec.legacy.lenient import LENIENT_COMMENT
from flujo.spec.legacy.migrate import migrate
from flujo.spec.load import check
from flujo.spec.model import HitlStep, Pipeline
from tests.support.legacy import ALLOW, load
from tests.support.specs import spec

SUPPORT_MOCKS = {"Classify_ticket": "technical", "billing_reply": "Billing answer"}
CONTROL_INPUT = {"title": "  post ", "tags": ["a", "b"]}


class Answers:
    """A person who answers from a list, remembering what they were asked."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def answer(self, step: HitlStep, question: str) -> Any:
        self.asked.append(question)
        return self.answers.pop(0)


def migrated(path: Path) -> Pipeline:
    path.write_text(migrate(path).text, encoding="utf-8")
    return load(path)


def summary(result: Any) -> dict[str, Any]:
    return {
        "status": result.status,
        "output": result.output,
        "steps": {n: (s.success, s.output, s.kind) for n, s in result.steps.items()},
    }


async def test_support_runs_the_same_before_and_after_migration(copy: Path) -> None:
    legacy = load(copy / "support.yaml")
    results = []
    for pipeline in (legacy, migrated(copy / "support.yaml")):
        runner = Runner(pipeline, registry=ALLOW)
        results.append(await runner.run("ticket", mocks=SUPPORT_MOCKS))
    assert summary(results[0]) == summary(results[1])
    assert results[0].output == {"kept": "TECH: TECHNICAL"}


async def test_control_runs_the_same_before_and_after_migration(copy: Path) -> None:
    legacy = load(copy / "control.yaml")
    outcomes = []
    for pipeline in (legacy, migrated(copy / "control.yaml")):
        person = Answers("yes")
        result = await Runner(pipeline, registry=ALLOW, human=person).run(CONTROL_INPUT)
        assert person.asked == ["Publish   post ?"]
        outcomes.append(summary(result))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0]["status"] == "succeeded"
    steps = outcomes[0]["steps"]
    assert steps["publish"][1] == "  POST "
    assert steps["each_tag"][1] == ["A", "B"]
    assert steps["review"][1] == "OK"
    assert outcomes[0]["output"] == "OK"  # through the imported pipeline's `strip`


async def test_spans_carry_the_yaml_paths_flujo_06_emits(tmp_path: Path) -> None:
    from tests.support.legacy import LEGACY

    pipeline = load(LEGACY / "control.yaml")
    store = RunStore(tmp_path / "runs.db")
    try:
        runner = Runner(pipeline, registry=ALLOW, store=store, human=Answers("no"))
        result = await runner.run(CONTROL_INPUT)
        spans = {s["step_name"]: s for s in store.spans(result.run_id) if s["step_name"]}
    finally:
        store.close()
    assert result.status == "succeeded", result.error
    paths = {name: span["yaml_path"] for name, span in spans.items()}
    assert paths["hold"] == "steps[1].branches.false.steps[0]"
    assert paths["polish_again"] == "steps[2].loop.body.steps[0]"
    assert paths["tag_upper"] == "steps[3].map.body.steps[0]"
    assert paths["check_draft"] == "steps[4].states.check.steps[0]"
    assert paths["strip"] == "steps[0]"  # the imported file's own path
    assert spans["strip"]["attributes"]["flujo.yaml.file"].endswith("sub/cleanup.yaml")
    assert "flujo.yaml.file" not in spans["hold"]["attributes"]
    assert spans["polish_again"]["line"] == pipeline.step("polish_again").line


async def test_a_hitl_step_needs_someone_to_answer_or_a_mock() -> None:
    pipeline = Pipeline.from_yaml(
        spec(
            """
            steps:
              - name: ask
                kind: hitl
                message: "Amount for {{ input }}?"
                input_schema: {type: integer, minimum: 1}
            """
        )
    )
    result = await Runner(pipeline).run("rent")
    assert result.status == "failed" and "nobody can answer" in (result.error or "")
    assert (await Runner(pipeline).run("rent", mocks={"ask": 5})).output == 5
    result = await Runner(pipeline, human=Answers(0)).run("rent")
    assert result.status == "failed"
    assert "does not satisfy input_schema: 0 is less than the minimum of 1" in (result.error or "")
    assert (await Runner(pipeline, human=Answers(12)).run("rent")).output == 12


async def test_recorded_answers_replay_and_a_missing_one_fails_clearly(tmp_path: Path) -> None:
    pipeline = Pipeline.from_yaml("steps:\n  - name: ask\n    kind: hitl\n    message: Ready?\n")
    recorder = RecordedHumans(tmp_path, "record", Answers("ready"))
    assert (await Runner(pipeline, human=recorder).run()).output == "ready"
    replay = RecordedHumans(tmp_path, "replay")
    assert (await Runner(pipeline, human=replay).run()).output == "ready"
    result = await Runner(pipeline, human=RecordedHumans(tmp_path / "other", "replay")).run()
    assert result.status == "failed" and "record one with --record" in (result.error or "")


MACHINE = """
steps:
  - name: machine
    kind: state_machine
    start_state: work
    end_states: [done]
    max_transitions: 4
    states:
      work:
        steps:
          - name: attempt
            uses: tests.support.skills:boom
      retry:
        steps:
          - name: recover
            uses: template_render
            with: {template: "recovered"}
    transitions:
      - {from: work, on: failure, to: retry}
      - {from: retry, to: done, when: "output == 'recovered' and input == 'once'"}
      - {from: "*", to: work}
"""


async def test_state_machines_follow_failure_rules_and_stop_at_max_transitions() -> None:
    pipeline = Pipeline.from_yaml(spec(MACHINE), registry=ALLOW)
    result = await Runner(pipeline, registry=ALLOW).run("once")
    assert (result.status, result.output) == ("succeeded", "recovered")
    result = await Runner(pipeline, registry=ALLOW).run("forever")
    assert result.status == "failed"
    assert "more than 4 transitions" in (result.error or "")
    assert result.error_path == "steps[0]"


def test_state_machine_references_are_checked() -> None:
    from tests.support.specs import errors

    found = errors(
        """
        steps:
          - name: m
            kind: state_machine
            start_state: strat
            states: {start: {steps: [{name: a}]}}
            transitions:
              - {from: nowhere, to: start}
              - {from: start, to: finish}
        """
    )
    assert [(d.line, d.code) for d in found] == [
        (4, "unknown-state"),
        (7, "unknown-state"),
        (8, "unknown-state"),
    ]
    assert "did you mean 'start'" in found[0].message


def test_flujo_run_asks_a_person_until_the_answer_fits(tmp_path: Path) -> None:
    path = tmp_path / "ask.yaml"
    path.write_text(
        spec(
            """
            steps:
              - name: approve
                kind: hitl
                message: "Ship {{ input }}?"
                input_schema: {type: string, enum: ["yes", "no"]}
            """
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        cli,
        ["run", str(path), "-i", "v2", "--json", "--store", str(tmp_path / "r.db")],
        input="maybe\nyes\n",
    )
    assert result.exit_code == 0, result.output
    assert "[approve] Ship v2?" in result.stderr
    assert "That answer does not fit: 'maybe' is not one of ['yes', 'no']" in result.stderr
    assert json.loads(result.stdout)["output"] == "yes"


def test_flujo_validate_accepts_0x_files_and_strict_turns_warnings_into_errors() -> None:
    from tests.support.legacy import LEGACY

    files = [str(LEGACY / "support.yaml"), str(LEGACY / "control.yaml")]
    result = CliRunner().invoke(cli, ["validate", *files])
    assert result.exit_code == 0, result.output
    assert "`sink_to` has no effect" not in result.stdout  # it writes the run context
    assert CliRunner().invoke(cli, ["validate", "--strict", *files]).exit_code == 1


@pytest.mark.parametrize("kind", ["tree_search", "my_custom_kind"])
def test_flujo_run_refuses_kinds_it_cannot_run_without_a_traceback(
    kind: str, tmp_path: Path
) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(f"version: '0.1'\nsteps:\n  - name: a\n    kind: {kind}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", str(path), "--store", str(tmp_path / "r.db")])
    assert result.exit_code == 1
    assert "x.yaml:4:5: error:" in result.stderr and f"'{kind}'" in result.stderr
    assert "Traceback" not in result.output


def test_flujo_run_records_answers_and_replays_them_without_asking(tmp_path: Path) -> None:
    path = tmp_path / "ask.yaml"
    path.write_text(
        "steps:\n  - name: approve\n    kind: hitl\n    message: Ship it?\n", encoding="utf-8"
    )
    store = ["--store", str(tmp_path / "r.db"), "--json"]
    cassette = str(tmp_path / "cassette")
    recorded = CliRunner().invoke(
        cli, ["run", str(path), "--record", cassette, *store], input="sure\n"
    )
    assert recorded.exit_code == 0, recorded.output
    replayed = CliRunner().invoke(cli, ["run", str(path), "--replay", cassette, *store], input="")
    assert replayed.exit_code == 0, replayed.output
    assert "Ship it?" not in replayed.stderr
    assert json.loads(replayed.stdout)["output"] == "sure"


def test_flujo_test_answers_hitl_steps_from_mocks(tmp_path: Path) -> None:
    path = tmp_path / "ask.yaml"
    path.write_text(
        spec(
            """
            steps:
              - name: approve
                kind: hitl
                input_schema: {type: boolean}
            tests:
              - name: approved
                mocks: {approve: true}
                assertions: ["result.output == True"]
            """
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["test", str(path)])
    assert result.exit_code == 0, result.output


async def test_a_replayed_run_sees_the_context_the_recorded_run_built(tmp_path: Path) -> None:
    pipeline = Pipeline.from_yaml(
        spec(
            """
            steps:
              - name: ask
                kind: hitl
                message: "Budget for {{ input.item }}?"
                sink_to: budget
              - name: note
                uses: template_render
                with: {template: "{{ context.item }} costs {{ context.budget }}"}
            """
        )
    )
    recorder = RecordedHumans(tmp_path, "record", Answers("40"))
    recorded = await Runner(pipeline, human=recorder).run({"item": "lamp"})
    replayed = await Runner(pipeline, human=RecordedHumans(tmp_path, "replay")).run(
        {"item": "lamp"}
    )
    assert recorded.context == replayed.context == {"item": "lamp", "budget": "40"}
    assert replayed.output == recorded.output == "lamp costs 40"


LENIENT = """\
version: "0.1"
steps:
  - name: produce
    agent: { id: "flujo.builtins.passthrough" }
    input: '{{ context.user_goal }}|{{ previous_step.output }}|{{ context.absent | tojson }}'
  - name: route
    kind: conditional
    condition_expression: "previous_step.action == 'ask'"
    branches:
      true:
        - name: ask
          agent: { id: "flujo.builtins.passthrough" }
    default_branch:
      - name: other
        agent: { id: "flujo.builtins.passthrough" }
        input: "{{ context.nothing.deeper }}"
"""


async def test_a_0x_blueprint_reads_a_missing_value_as_0x_did_and_the_current_format_refuses_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lenient.yaml"
    path.write_text(LENIENT, encoding="utf-8")
    result = await Runner(load(path)).run("goal text")
    assert result.status == "succeeded", result.error
    assert result.steps["produce"].output == "||null"  # empty text, as 0.x's default mode
    assert "other" in result.steps and "ask" not in result.steps  # None == 'ask' is false
    assert result.output == ""
    current = Pipeline.from_yaml(
        "steps:\n  - name: a\n    uses: flujo.builtins:passthrough\n"
        "    input: '{{ context.user_goal }}'\n"
    )
    strict = await Runner(current).run("goal text")
    assert strict.status == "failed" and "user_goal" in (strict.error or "")
    after = await Runner(load(path)).run("goal text")  # the setting does not leak out
    assert after.status == "succeeded"


CONTEXT_FIELDS = """\
version: "0.1"
steps:
  - name: start
    agent: { id: "flujo.builtins.passthrough" }
    input: "{{ context.initial_prompt }}"
  - name: pick
    kind: conditional
    condition_expression: "context.import_artifacts.get('cohort') or 'none'"
    branches:
      none:
        - name: fallback
          agent: { id: "flujo.builtins.passthrough" }
"""


@pytest.mark.parametrize("text", [LENIENT, CONTEXT_FIELDS], ids=["missing", "context"])
async def test_a_migrated_file_keeps_0x_reading_until_its_marker_line_is_deleted(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "old.yaml"
    path.write_text(text, encoding="utf-8")
    before = await Runner(load(path)).run("goal text")
    assert before.status == "succeeded", before.error
    after = await Runner(migrated(path)).run("goal text")
    assert summary(after) == summary(before)
    strict = path.read_text(encoding="utf-8").replace(LENIENT_COMMENT + "\n", "")
    assert strict != path.read_text(encoding="utf-8")
    path.write_text(strict, encoding="utf-8")
    pipeline, diagnostics = check(path)
    refused = pipeline is None or any(d.severity == "error" for d in diagnostics)
    if not refused:
        result = await Runner(pipeline).run("goal text")
        refused = result.status == "failed"
    assert refused  # without the line, the file reads strictly: a missing value is an error
