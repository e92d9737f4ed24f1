"""What README.md shows works."""

from __future__ import annotations

import re

from flujo.spec.load import check
from flujo.spec.model import Pipeline
from tests.support.specs import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_pipeline_is_valid() -> None:
    block = re.search(r"```yaml\n(# yaml-language-server.*?)```", README, re.S)
    assert block is not None
    pipeline, diagnostics = check(block.group(1))
    assert pipeline is not None and diagnostics == []


def test_the_readme_python_snippet_paths_are_right() -> None:
    spec = Pipeline.from_yaml(ROOT / "examples" / "support_triage.yaml")
    assert spec.step("technical_reply").yaml_path == "steps[1].branches.technical.steps[1]"
    line, _ = spec.locate("steps[1].branches.technical.steps[1]")
    assert spec.path_at(line) == "steps[1].branches.technical.steps[1].name"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./dev test" in ci and "./dev test" in README


def test_the_readme_documents_the_suggestions_json() -> None:
    from flujo.learn.suggest import SCHEMA_VERSION, SuggestReport

    section = README[README.index("## Suggestions") : README.index("## Command line")]
    assert f'"schema_version": {SCHEMA_VERSION}' in section
    for key in SuggestReport("s", "offline").to_dict():
        assert f'"{key}"' in section, key
    for key in ("savings", "verification", "confidence_label", "diff", "attempts", "broken"):
        assert f'"{key}"' in section, key
