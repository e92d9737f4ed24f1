"""`flujo validate --format sarif`: a SARIF 2.1.0 log that code scanning accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from jsonschema import Draft4Validator

from flujo.cli import cli
from tests.support.specs import TESTS

SCHEMA = json.loads((TESTS / "sarif" / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
BROKEN = (
    "agents:\n  idle: {model: 'openai:x'}\n"
    "steps:\n  - name: a\n    uses: json_pase\n  - name: b\n    uses: json_pase\n"
)


def sarif_of(path: Path) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(cli, ["validate", "--format", "sarif", str(path)])
    log = json.loads(result.stdout)
    errors = sorted(Draft4Validator(SCHEMA).iter_errors(log), key=str)
    assert not errors, [e.message for e in errors]
    return result.exit_code, log


def test_findings_are_located_at_their_line_with_one_rule_per_code(write) -> None:  # type: ignore[no-untyped-def]
    code, log = sarif_of(write("p.yaml", BROKEN))
    assert code == 1  # the format changes the output, not the verdict
    run = log["runs"][0]
    assert run["tool"]["driver"]["name"] == "flujo"
    assert [r["id"] for r in run["tool"]["driver"]["rules"]].count("unknown-skill") == 1
    found = [
        (r["ruleId"], r["level"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
        for r in run["results"]
    ]
    assert ("unknown-skill", "error", 5) in found and ("unknown-skill", "error", 7) in found
    first = next(r for r in run["results"] if r["ruleId"] == "unknown-skill")
    assert "did you mean 'json_parse'" in first["message"]["text"]
    assert first["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "steps[0].uses"


def test_a_finding_keeps_its_fingerprint_when_lines_above_it_move(write) -> None:  # type: ignore[no-untyped-def]
    _, before = sarif_of(write("p.yaml", BROKEN))
    _, after = sarif_of(write("p.yaml", "# a comment that moves every line\n" + BROKEN))

    def prints(log: dict[str, Any]) -> list[str]:
        return [r["partialFingerprints"]["flujoFinding/v1"] for r in log["runs"][0]["results"]]

    assert prints(before) == prints(after)
    assert len(set(prints(before))) == len(prints(before))  # two findings, two prints


def test_warnings_are_warnings_and_a_clean_spec_has_no_results(write) -> None:  # type: ignore[no-untyped-def]
    code, log = sarif_of(
        write("w.yaml", "agents:\n  idle: {model: 'openai:x'}\nsteps: [{name: a}]\n")
    )
    assert code == 0
    assert [(r["ruleId"], r["level"]) for r in log["runs"][0]["results"]] == [
        ("unused-agent", "warning")
    ]
    assert sarif_of(write("ok.yaml", "steps: [{name: a}]\n"))[1]["runs"][0]["results"] == []
