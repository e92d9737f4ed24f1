"""What this repository offers other repositories' tooling: a pre-commit hook
(`.pre-commit-hooks.yaml`) and a GitHub Actions composite action (`action.yml`). Both name
commands and options that must exist, and the hook's files must be the default specs."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

from flujo.cli import COMMANDS, cli
from flujo.spec.config import DEFAULT_SPEC_GLOBS, spec_matcher

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> Any:
    return YAML(typ="safe").load((ROOT / name).read_text(encoding="utf-8"))


def assert_is_a_flujo_command(command_line: str) -> None:
    """`flujo SUB [--option …]`: the console script, the command and each option exist."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    words = shlex.split(command_line)
    assert words[0] in scripts and scripts[words[0]] == "flujo.cli:main", command_line
    assert words[1] in COMMANDS, f"no command {words[1]!r} ({command_line})"
    command = cli.get_command(click.Context(cli), words[1])
    assert command is not None
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for word in words[2:]:
        if word.startswith("-"):
            assert word in known, f"`flujo {words[1]}` has no option {word} ({command_line})"


def test_the_pre_commit_hook_runs_flujo_validate_on_the_default_spec_files() -> None:
    (hook,) = load(".pre-commit-hooks.yaml")
    assert hook["id"] == "flujo-validate" and hook["language"] == "python"
    assert_is_a_flujo_command(hook["entry"])
    assert hook["entry"] == "flujo validate"
    files = re.compile(hook["files"])
    is_spec = spec_matcher(DEFAULT_SPEC_GLOBS)
    paths = [
        "flujo/triage.yaml",
        "flujo/team/a.yml",
        "flujo/cassettes/triage/ab.json",
        "flujo/inputs/triage.jsonl",
        "pipelines/x.flujo.yaml",
        "x.flujo.yml",
        "pipelines/x.yaml",
        "src/flujo/x.yaml",
        ".github/flujo.yml",
        "flujo.yaml",
    ]
    assert [p for p in paths if files.search(p)] == [p for p in paths if is_spec(p)]
    assert [p for p in paths if is_spec(p)] == [
        "flujo/triage.yaml",
        "flujo/team/a.yml",
        "pipelines/x.flujo.yaml",
        "x.flujo.yml",
    ]


@pytest.fixture(scope="module")
def action() -> Any:
    return load("action.yml")


def test_the_action_is_a_composite_with_documented_inputs(action: Any) -> None:
    assert action["name"] and action["description"]
    assert action["runs"]["using"] == "composite"
    for name, spec in action["inputs"].items():
        assert spec.get("description"), f"input {name} is undocumented"
        assert "default" in spec or spec.get("required"), name
    used = set()
    for step in action["runs"]["steps"]:
        text = repr(step)
        used |= set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", text))
        if "run" in step:
            assert step.get("shell") == "bash", step  # composite run steps need a shell
            # inputs reach scripts through env, never spliced into the script's text
            assert "${{" not in step["run"], step["run"]
    assert used == set(action["inputs"])


def test_the_action_installs_flujo_and_runs_validate_and_test(action: Any) -> None:
    scripts = [step["run"] for step in action["runs"]["steps"] if "run" in step]
    assert "pip install" in scripts[0] and "FLUJO_SOURCE" in scripts[0]
    commands = [
        line.strip()
        for script in scripts
        for line in script.splitlines()
        if line.strip().startswith("flujo ")
    ]
    assert {c.split()[1] for c in commands} == {"validate", "test"}
    for command in commands:
        assert_is_a_flujo_command(
            command.replace('"$FLUJO_JUNIT"', "x").replace("$FLUJO_PATHS", "")
        )
    assert any("--format github" in c for c in commands)  # annotations at the lines
