"""docs/spec-reference.md is rendered from the models and kept current."""

from __future__ import annotations

import re

from click.testing import CliRunner

from flujo.cli import cli
from flujo.spec.config import RepoConfig, SkillsConfig
from flujo.spec.model import STEP_KINDS, Pipeline
from flujo.spec.reference import COMMAND, _models_reached, reference_markdown
from tests.support.specs import ROOT

REFERENCE = ROOT / "docs" / "spec-reference.md"


def test_the_committed_reference_is_current() -> None:
    committed = REFERENCE.read_text(encoding="utf-8")
    assert committed == reference_markdown(), (
        f"docs/spec-reference.md is out of date: run `./dev docs` (or `{COMMAND}`)"
    )


def test_every_kind_model_and_field_is_in_the_reference() -> None:
    text = reference_markdown()
    models = {*_models_reached(Pipeline), *STEP_KINDS.values(), RepoConfig, SkillsConfig}
    for model in models:
        heading = re.search(rf"^#+ {model.__name__}( \(`kind: \w+`\))?$", text, re.M)
        assert heading is not None, model
        section = text[heading.end() :].split("\n#", 1)[0]
        for name, field in model.model_fields.items():
            row = f"| `{field.alias or name}` |"
            assert row in section, (model.__name__, name)
            if field.description:
                assert " ".join(field.description.split()) in section.replace("\\|", "|")
    for kind in STEP_KINDS:
        assert f"(`kind: {kind}`)" in text


def test_flujo_schema_markdown_prints_the_reference(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, ["schema", "--markdown"])
    assert result.exit_code == 0 and result.stdout == reference_markdown()
    target = tmp_path / "reference.md"
    result = CliRunner().invoke(cli, ["schema", "--markdown", "-o", str(target)])
    assert result.exit_code == 0 and target.read_text(encoding="utf-8") == reference_markdown()
