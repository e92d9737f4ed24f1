"""The `flujo` command line: help, version, output formats, exit codes, patching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import flujo
from flujo.cli import cli, main

BROKEN = "agents:\n  idle: {model: 'openai:x'}\nsteps:\n  - name: a\n    uses: json_pase\n"


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    "command", [[], ["validate"], ["schema"], ["registry"], ["registry", "list"], ["patch"]]
)
def test_every_command_has_help(command: list[str]) -> None:
    code, out, _ = run(*command, "--help")
    assert code == 0
    assert out.startswith("Usage: ")


def test_version() -> None:
    code, out, _ = run("--version")
    assert code == 0 and out == f"flujo {flujo.__version__}\n"
    assert flujo.__version__ == "0.1.0"


def test_validate_text_format_and_summary(write) -> None:  # type: ignore[no-untyped-def]
    path = write("p.yaml", BROKEN)
    code, out, err = run("validate", str(path))
    assert code == 1
    assert out.splitlines() == [
        f"{path}:2:3: warning: agent 'idle' is not used by any step (agents.idle)",
        f"{path}:5:5: error: unknown skill 'json_pase'; did you mean 'json_parse'? (steps[0].uses)",
    ]
    assert err == "1 file checked: 1 error, 1 warning (1 invalid)\n"


def test_validate_json_format(write) -> None:  # type: ignore[no-untyped-def]
    path = write("p.yaml", BROKEN)
    code, out, _ = run("validate", "--format", "json", str(path))
    report = json.loads(out)
    assert code == 1
    assert report["valid"] is False and report["errors"] == 1 and report["warnings"] == 1
    (entry,) = report["files"]
    assert entry["diagnostics"][1] == {
        "message": "unknown skill 'json_pase'; did you mean 'json_parse'?",
        "code": "unknown-skill",
        "file": str(path),
        "line": 5,
        "col": 5,
        "yaml_path": "steps[0].uses",
        "severity": "error",
    }


def test_validate_github_format_escapes_properties(write) -> None:  # type: ignore[no-untyped-def]
    path = write("p.yaml", BROKEN)
    code, out, _ = run("validate", "--format", "github", str(path))
    assert code == 1
    assert out.splitlines()[1] == (
        f"::error file={path},line=5,col=5,title=flujo%3A unknown-skill::"
        "unknown skill 'json_pase'; did you mean 'json_parse'? (steps[0].uses)"
    )


def test_valid_specs_exit_0_and_strict_fails_on_warnings(write) -> None:  # type: ignore[no-untyped-def]
    path = write("ok.yaml", "agents:\n  idle: {model: 'openai:x'}\nsteps: [{name: a}]\n")
    assert run("validate", str(path))[0] == 0
    assert run("validate", "--strict", str(path))[0] == 1


def test_a_directory_without_specs_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run("validate", str(tmp_path))
    assert code == 2
    assert "no .yml or .yaml files under" in err


def test_an_internal_error_is_one_line_and_exit_3(
    write,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],  # type: ignore[no-untyped-def]
) -> None:
    import flujo.spec.load

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(flujo.spec.load, "check", explode)
    path = write("ok.yaml", "steps: [{name: a}]\n")
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(path)])
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert err.startswith("flujo: internal error: RuntimeError: boom\n")
    assert "Traceback" not in err


SPEC = """# triage
steps:
  - name: classify   # first
    uses: passthrough
    config: { max_retries: 1 }

  - name: answer
    uses: passthrough
"""


def test_patch_prints_a_diff_of_only_the_patched_line(write) -> None:  # type: ignore[no-untyped-def]
    spec = write("p.yaml", SPEC)
    patch = write(
        "fix.json",
        json.dumps([{"op": "replace", "path": "/steps/0/config/max_retries", "value": 3}]),
    )
    code, out, _ = run("patch", str(spec), str(patch))
    assert code == 0
    changed = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    assert changed[0] == "-    config: { max_retries: 1 }"
    assert changed[1].replace(" ", "") == "+config:{max_retries:3}"
    assert len(changed) == 2
    assert spec.read_text() == SPEC


PROMPT_SPEC = """version: "1"
agents:
  writer:
    model: openai:gpt-4o
    system_prompt: You are a careful assistant who writes short,
      friendly summaries of customer emails. Never invent facts
      and keep it under 80 words.
steps:
  - name: summarize
    uses: agents.writer
"""


def test_a_model_swap_next_to_a_multi_line_prompt_is_a_one_line_diff(write) -> None:  # type: ignore[no-untyped-def]
    spec = write("p.yaml", PROMPT_SPEC)
    patch = [{"op": "replace", "path": "/agents/writer/model", "value": "openai:gpt-4o-mini"}]
    code, out, _ = run("patch", str(spec), "-", input=json.dumps(patch))
    assert code == 0
    changed = [line for line in out.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"]
    assert changed == ["-    model: openai:gpt-4o", "+    model: openai:gpt-4o-mini"]


def test_patch_in_place_reads_the_patch_from_stdin(write) -> None:  # type: ignore[no-untyped-def]
    spec = write("p.yaml", SPEC)
    patch = [{"op": "add", "path": "/steps/1/validators", "value": ["non_empty"]}]
    code, out, _ = run("patch", "--in-place", str(spec), "-", input=json.dumps(patch))
    assert code == 0 and out == ""
    assert spec.read_text() == SPEC + "    validators:\n      - non_empty\n"


def test_patch_refuses_to_write_an_invalid_spec(write) -> None:  # type: ignore[no-untyped-def]
    spec = write("p.yaml", SPEC)
    patch = [{"op": "replace", "path": "/steps/1/uses", "value": "json_pase"}]
    code, _, err = run("patch", "-i", str(spec), "-", input=json.dumps(patch))
    assert code == 1
    assert f"{spec.name}:8:5: error: unknown skill 'json_pase'" in err
    assert "nothing was written" in err
    assert spec.read_text() == SPEC


def test_patch_reports_a_path_that_does_not_exist(write) -> None:  # type: ignore[no-untyped-def]
    spec = write("p.yaml", SPEC)
    patch = [{"op": "remove", "path": "/steps/7"}]
    code, _, err = run("patch", "--check", str(spec), "-", input=json.dumps(patch))
    assert code == 1
    assert "path '/steps/7' (steps[7]) does not exist" in err


def test_patch_test_failure_shows_json_values_not_python_reprs(write) -> None:  # type: ignore[no-untyped-def]
    spec = write("p.yaml", SPEC)
    patch = [{"op": "test", "path": "/steps/0/name", "value": None}]
    code, _, err = run("patch", "--check", str(spec), "-", input=json.dumps(patch))
    assert code == 1
    assert "test failed: '/steps/0/name' (steps[0].name) is \"classify\", not null" in err
    assert "<class" not in err and "None" not in err


def test_patch_says_a_pointer_needs_its_leading_slash(write) -> None:  # type: ignore[no-untyped-def]
    spec = write("p.yaml", SPEC)
    patch = [{"op": "replace", "path": "steps/0/name", "value": "b"}]
    code, _, err = run("patch", "--check", str(spec), "-", input=json.dumps(patch))
    assert code == 1
    assert "path 'steps/0/name' is not a JSON Pointer: it must start with '/'" in err
    assert "did you mean '/steps/0/name'?" in err


def _nested(levels: int) -> object:
    value: object = "x"
    for _ in range(levels):
        value = {"k": value}
    return value


DEEP_SPEC = f"""steps:
  - name: a
    uses: passthrough
    config: {json.dumps({"deep": _nested(60)})}
"""


@pytest.mark.parametrize(
    ("patch", "said"),
    [
        # root, steps, the step and `config` are 4 levels; 98 more below `x`: level 102
        (
            [{"op": "add", "path": "/steps/0/config/x", "value": _nested(98)}],
            "at steps[0].config.x: the value written there reaches level 102",
        ),
        # `config` (61 levels) copied to level 44 (below `deep` and 39 `k`): level 104
        (
            [{"op": "copy", "from": "/steps/0/config", "path": "/steps/0/config/deep" + "/k" * 39}],
            "at steps[0].config.deep" + ".k" * 39 + ": the value written there reaches level 104",
        ),
        (  # deep enough to exhaust the stack when copied, not too deep to read
            '[{"op": "add", "path": "/steps/0/config/x", "value": '
            + '{"k": ' * 900
            + '"x"'
            + "}" * 900
            + "}]",
            "at '/steps/0/config/x' (steps[0].config.x): the value itself is deeper",
        ),
        (
            '[{"op": "add", "path": "/x", "value": ' + "[" * 100_000 + "]" * 100_000 + "}]",
            "patch nests too deep to read",
        ),
    ],
)
def test_patch_names_the_nesting_limit_and_where_it_is_passed(
    write, patch: object, said: str
) -> None:  # type: ignore[no-untyped-def]
    spec = write("p.yaml", DEEP_SPEC)
    text = patch if isinstance(patch, str) else json.dumps(patch)
    code, _, err = run("patch", "--check", str(spec), "-", input=text)
    assert code == 1
    assert "deeper than 100 levels" in err or "at most 100 levels" in err
    assert said in err
    assert "written back faithfully" not in err and "internal error" not in err


def test_validate_a_missing_file_never_says_all_valid(tmp_path: Path) -> None:
    code, out, err = run("validate", str(tmp_path / "missing.yaml"))
    assert code == 2
    assert "all valid" not in out + err
    assert "no such file" in err and "1 path could not be read" in err


def test_an_unknown_command_gets_a_did_you_mean() -> None:
    code, _, err = run("tset")
    assert code == 2
    assert "No such command 'tset'" in err and "Did you mean 'test'?" in err


def test_test_with_no_test_selected_exits_5_like_pytest(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(
        "steps:\n  - {name: a, uses: passthrough}\n"
        "tests:\n  - {name: t, input: x, assertions: [\"output == 'x'\"]}\n"
    )
    code, out, _ = run("test", str(spec), "-k", "nomatch")
    assert code == 5, out
    assert "no tests collected" in out
    assert run("test", str(spec))[0] == 0
