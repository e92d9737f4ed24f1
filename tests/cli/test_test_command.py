"""`flujo test` as a person and a CI system see it: its runs, its JUnit report, its lines."""

from __future__ import annotations

import re
from pathlib import Path

import junitparser
from click.testing import CliRunner

from flujo.cli import cli

FAILING = """steps:
  - name: parse
    uses: json_parse
tests:
  - name: small
    input: '{"a": 1}'
    assertions: ["output.a == 1"]
  - name: big
    input: '{"a": 1, "b": 2, "c": 3}'
    assertions: ["output.a == 1"]
policies:
  - id: small_output
    assert: "len(output) <= 2"
    action: FAIL_RUN
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_failed_tests_run_can_be_shown(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(FAILING)
    store = str(tmp_path / "runs.db")
    code, out, _ = invoke("test", str(spec), "--store", store)
    assert code == 1
    run_id = re.search(r"its run: flujo runs show (\w+)", out)
    assert run_id is not None, out
    code, shown, err = invoke("runs", "show", run_id.group(1), "--store", store)
    assert code == 0, err
    assert f"run {run_id.group(1)}  failed" in shown and "origin test" in shown
    assert "✓ parse  steps[0]" in shown


def test_a_policy_failure_is_one_line_that_names_the_policy(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(FAILING)
    code, out, _ = invoke("test", str(spec), "--store", str(tmp_path / "runs.db"))
    assert code == 1
    failed = out.split(f"FAIL {spec}::big")[1].splitlines()[1:]
    assert failed[0] == (
        "    policy small_output (FAIL_RUN) failed: 3 <= 2 is False, where 3 = len(output)"
    )
    assert "run failed" not in out  # the policy stopped the run: said once, by its id


def test_junit_cases_carry_the_file_and_line_of_their_test(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(FAILING)
    junit = tmp_path / "junit.xml"
    invoke("test", str(spec), "--store", str(tmp_path / "runs.db"), "--junit", str(junit))
    cases = {
        case.name: case for suite in junitparser.JUnitXml.fromfile(str(junit)) for case in suite
    }
    assert {name: (c._elem.get("file"), c._elem.get("line")) for name, c in cases.items()} == {
        "small": (str(spec), "5"),
        "big": (str(spec), "8"),
    }
