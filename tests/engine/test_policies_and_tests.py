"""Policies at run time and `flujo test`: assertions, mocks, explanations, reports."""

from __future__ import annotations

import json
from pathlib import Path

import junitparser
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.runner import Runner
from flujo.engine.store import RunStore
from flujo.spec.model import Pipeline
from flujo.spec.registry import StepRegistry
from tests.support.specs import ROOT, spec

ALLOW = StepRegistry(allow=["tests.support.skills:*"], entry_points=False)

POLICIES = """
steps:
  - name: parse
    uses: json_parse
policies:
  - id: small_output
    assert: "len(output) <= 2"
    action: {action}
  - id: only_for_big
    when: "len(output) > 100"
    assert: "False"
  - id: broken
    assert: "output.missing_key == 1"
    action: WARN
"""


async def test_a_failing_fail_run_policy_fails_the_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "db")
    pipeline = Pipeline.from_yaml(spec(POLICIES.format(action="FAIL_RUN")))
    result = await Runner(pipeline, store=store).run('{"a": 1, "b": 2, "c": 3}')
    assert result.status == "failed" and result.error_path == "policies[0]"
    assert result.error == "policy 'small_output' failed: 3 <= 2 is False, where 3 = len(output)"
    outcomes = {p.id: p.outcome for p in result.policies}
    assert outcomes == {"small_output": "failed", "only_for_big": "skipped", "broken": "error"}
    (run,) = store.list_runs()
    assert json.loads(run["policies"])[0]["outcome"] == "failed"
    root = next(s for s in store.spans(result.run_id) if s["parent_id"] is None)
    events = [e for e in root["events"] if e[0] == "flujo.policy"]
    assert [e[2]["flujo.policy.id"] for e in events] == ["small_output", "only_for_big", "broken"]
    store.close()


async def test_warn_and_require_approval_never_fail_a_run() -> None:
    for action in ("WARN", "REQUIRE_APPROVAL"):
        pipeline = Pipeline.from_yaml(spec(POLICIES.format(action=action)))
        result = await Runner(pipeline).run('{"a": 1, "b": 2, "c": 3}')
        assert result.success, action
        assert result.policies[0].outcome == "failed"
        assert result.policies[0].blocks == (action == "REQUIRE_APPROVAL")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_the_examples_tests_pass_by_replaying_their_cassettes(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    code, out, err = invoke("test", str(ROOT / "examples"), "--junit", str(junit))
    assert code == 0, out + err
    assert out.splitlines()[-1] == "5 passed, 0 failed"
    xml = junitparser.JUnitXml.fromfile(str(junit))
    suites = list(xml)
    assert sum(suite.tests for suite in suites) == 5
    assert all(case.is_passed for suite in suites for case in suite)


WRITE_SPEC = """
steps:
  - name: shout
    uses: "tests.support.skills:shout"
  - name: boom
    uses: "tests.support.skills:boom"
tests:
  - name: loud
    input: hello
    mocks: {boom: "fine"}
    assertions:
      - "steps.shout.output == 'HELLO'"
      - "output == 'fine'"
  - name: quiet
    tags: [tone]
    input: hello
    mocks: {boom: "x"}
    assertions:
      - "steps.shout.output == 'hello'"
policies:
  - id: needs_review
    assert: "len(steps.shout.output) < 3"
    action: REQUIRE_APPROVAL
"""


def write_repo(tmp_path: Path, text: str) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "flujo.yml").write_text(
        "skills:\n  allow: ['tests.support.skills:*']\n"
    )
    path = tmp_path / "p.yaml"
    path.write_text(spec(text))
    return path


def test_failures_are_explained_and_require_approval_needs_an_override(tmp_path: Path) -> None:
    path = write_repo(tmp_path, WRITE_SPEC)
    code, out, _ = invoke("test", str(path))
    assert code == 1
    lines = out.splitlines()
    # as in the bot: the policy needs approval (flujo/policy), the test itself passes
    assert lines[0].startswith(f"PASS {path}::loud")
    assert f"needs approval: policy needs_review (REQUIRE_APPROVAL) of {path} failed in " in out
    assert "assertion steps.shout.output == 'hello' (line 18): 'HELLO' == 'hello' is False" in out
    assert lines[-1] == "1 passed, 1 failed, 1 policy needs approval"
    code, out, _ = invoke("test", str(path), "--override", "needs_review", "-k", "loud")
    assert code == 0 and out.splitlines() == [out.splitlines()[0], "1 passed, 0 failed"]
    assert out.startswith(f"PASS {path}::loud")


def test_json_report_is_stable_and_selects_by_tag(tmp_path: Path) -> None:
    path = write_repo(tmp_path, WRITE_SPEC)
    code, out, _ = invoke("test", str(path), "-k", "tone", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["version"] == 1
    assert report["summary"] == {
        "passed": 0,
        "failed": 1,
        "errors": 0,
        "total": 1,
        "cost_usd": 0.0,
        "needs_approval": ["needs_review"],
    }
    (test,) = report["tests"]
    assert test["name"] == "quiet" and test["yaml_path"] == "tests[1]"
    assert test["assertions"][0]["explanation"] == "'HELLO' == 'hello' is False"
    assert [p["id"] for p in test["policies"]] == ["needs_review"]


def test_a_model_step_without_a_mock_or_cassette_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "agents:\n  w: {model: 'openai:gpt-4o-mini'}\nsteps:\n  - {name: write, uses: agents.w}\n"
        "tests:\n  - {name: t, input: x, assertions: ['True']}\n"
    )
    code, out, _ = invoke("test", str(path))
    assert code == 1
    assert "step 'write' failed: this step calls a model and none is configured" in out


def test_an_invalid_spec_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("steps:\n  - name: a\n    uses: json_pase\n")
    code, _, err = invoke("test", str(path))
    assert code == 2
    assert "p.yaml:3:5: error: unknown skill 'json_pase'" in err


async def test_policy_check_judges_the_current_rules_on_recorded_runs(tmp_path: Path) -> None:
    store_path = tmp_path / "runs.db"
    path = tmp_path / "p.yaml"
    path.write_text("steps:\n  - {name: parse, uses: json_parse}\n")
    store = RunStore(store_path)
    runner = Runner(Pipeline.from_yaml(path), store=store)
    for value in ('{"a": 1}', "[1, 2, 3]", "oops"):
        await runner.run(value)
    store.close()
    path.write_text(
        "steps:\n  - {name: parse, uses: json_parse}\npolicies:\n"
        "  - {id: ok_runs, assert: \"result.status == 'succeeded'\", action: REQUIRE_APPROVAL}\n"
        "  - {id: fast, assert: 'result.latency_s < 60', action: FAIL_RUN}\n"
    )
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, out, _ = invoke("policy", "check", "p.yaml", "--store", str(store_path))
    finally:
        os.chdir(cwd)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        "3 recorded runs of p.yaml (newest first; evidence: live runs that no test, check, "
        "verification, eval started)"
    )
    assert (
        lines[1] == "ok_runs (REQUIRE_APPROVAL, p.yaml:4): 2 passed, 1 failed, 0 skipped, 0 error"
    )
    assert "'failed' == 'succeeded' is False" in lines[2]
    assert lines[3] == "fast (FAIL_RUN, p.yaml:5): 3 passed, 0 failed, 0 skipped, 0 error"
