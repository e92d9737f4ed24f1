"""Bad input gets one clear, located message and a clean exit; never a crash or hang."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flujo.spec.errors import SpecError
from flujo.spec.load import check
from flujo.spec.source import MAX_BYTES

BILLION_LAUGHS = (
    "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "steps: []\n"
)

# name -> (file content, expected code, line, col, words the message must contain)
BAD_FILES: dict[str, tuple[str | bytes, str, int, int, str]] = {
    "malformed": ("steps: [a, b\n", "yaml-syntax", 2, 1, "expected ',' or ']'"),
    "tabs": ("name: x\nsteps:\n\t- name: a\n", "tab", 3, 1, "tab character"),
    "duplicate_key": (
        "name: a\nsteps: []\nname: b\n",
        "duplicate-key",
        3,
        1,
        "duplicate key 'name' (first defined at line 1)",
    ),
    "billion_laughs": (BILLION_LAUGHS, "too-many-nodes", 6, 4, "expands to more than"),
    "deep_flow": ("steps: " + "[" * 5000 + "]" * 5000 + "\n", "too-deep", 1, 107, "deeper than"),
    "deep_block": (
        "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "v\n",
        "too-deep",
        101,
        201,
        "deeper than",
    ),
    "not_utf8": (b"name: caf\xe9\nsteps: []\n", "encoding", 1, 10, "not valid UTF-8"),
    "alias_cycle": ("a: &a {b: *a}\nsteps: []\n", "alias-cycle", 1, 8, "contains it"),
    "complex_key": ("steps: []\nextra:\n  ? [a, b]\n  : 1\n", "complex-key", 2, 1, "plain scalars"),
    "empty": ("# nothing here\n", "empty", 1, 1, "empty"),
    "two_documents": ("steps: []\n---\nsteps: []\n", "multiple-documents", 2, 1, "one YAML"),
    "top_level_list": ("- a\n- b\n", "schema", 1, 1, "must be a mapping, not a list"),
    "python_tag": (
        'name: !!python/object/apply:os.system ["echo hacked"]\nsteps: []\n',
        "yaml-tag",
        1,
        1,
        "tags",
    ),
    "unknown_key": (
        "steps:\n  - name: a\n    config: {max_retry: 2}\n",
        "unknown-key",
        3,
        14,
        "unknown key 'max_retry'; did you mean 'max_retries'?",
    ),
    # indentation: which line to compare with, and a key written one level too shallow
    "key_not_indented_under_config": (
        "steps:\n  - name: a\n    uses: passthrough\n    config:\n    max_retries: 2\n",
        "unknown-key",
        5,
        5,
        "unknown key 'max_retries'; did you mean to indent it under `config:` (line 4)?",
    ),
    "key_dedented_out_of_config": (
        "steps:\n  - name: a\n    config:\n      max_retries: 1\n    timeout_s: 3\n",
        "unknown-key",
        5,
        5,
        "did you mean to indent it under `config:` (line 3)?",
    ),
    "agent_field_not_indented_under_agent": (
        "agents:\n  w:\n    model: openai:gpt-4o\n  system_prompt: hi\n"
        "steps:\n  - {name: a, uses: agents.w}\n",
        "schema",
        4,
        3,
        "expected a mapping, not a string; did you mean to indent it under `w:` (line 2)?",
    ),
    "indented_between_two_levels": (
        "steps:\n  - name: a\n    config:\n      max_retries: 1\n     timeout_s: 3\n",
        "yaml-syntax",
        5,
        6,
        "line 5 is indented 5 spaces: compare it with line 4 `max_retries: 1` (6 spaces) "
        "and with the block that starts on line 2 `- name: a` (at 4 spaces)",
    ),
    "indented_under_a_value": (
        "steps:\n  - name: a\n    uses: passthrough\n      config: {max_retries: 1}\n",
        "yaml-syntax",
        4,
        13,
        "line 4 is indented more than line 3 `uses: passthrough` (6 spaces, not 4), so it "
        "reads as the rest of that line's value: indent it like line 3",
    ),
    "list_item_at_key_indentation": (
        "steps:\n- name: a\n  uses: passthrough\n  - name: b\n",
        "yaml-syntax",
        4,
        3,
        "line 4 starts a list item at the indentation of the keys of the item of line 2 "
        "`- name: a`: put its `-` where line 2 has it (0 spaces)",
    ),
    "unknown_kind": (
        "steps:\n  - name: a\n    kind: lop\n",
        "unknown-kind",
        3,
        5,
        "unknown step kind 'lop'; did you mean 'loop'?",
    ),
    "missing_steps": ("name: x\n", "missing", 1, 1, "missing required key 'steps'"),
    "bad_version": ("version: 7\nsteps: []\n", "schema", 1, 1, "unsupported version '7'"),
    "unknown_step_in_expression": (
        "steps:\n  - name: a\n    kind: loop\n    exit_expression: steps.b.done\n"
        "    body: {steps: [{name: c}]}\n",
        "unknown-step",
        4,
        28,
        "unknown step 'b'",
    ),
    "unsafe_import": (
        "steps:\n  - name: a\n    uses: os:system\n",
        "unknown-skill",
        3,
        5,
        "not in the skill allow-list",
    ),
    "bad_expression": (
        "steps:\n  - name: m\n    kind: map\n    over: 'input.items['\n"
        "    body: {steps: [{name: b}]}\n",
        "expression-syntax",
        4,
        23,
        "invalid expression",
    ),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_input_gives_one_located_diagnostic(name: str, write) -> None:  # type: ignore[no-untyped-def]
    content, code, line, col, words = BAD_FILES[name]
    path = write(f"{name}.yaml", content)
    try:
        _, diagnostics = check(path)
    except SpecError as exc:
        diagnostics = exc.diagnostics
    found = [(d.code, d.line, d.col) for d in diagnostics if d.severity == "error"]
    assert found == [(code, line, col)], diagnostics
    assert words in diagnostics[0].message
    assert diagnostics[0].file.endswith(f"{name}.yaml")
    assert "\n" not in str(diagnostics[0])


def test_an_oversized_file_is_refused_without_reading_it_whole(write) -> None:  # type: ignore[no-untyped-def]
    path = write("big.yaml", "steps: []\n")
    with path.open("ab") as handle:
        handle.truncate(50 * 1024 * 1024)  # a sparse 50 MB file
    with pytest.raises(SpecError) as caught:
        check(path)
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "too-large"
    assert "50.0 MiB" in diagnostic.message and str(MAX_BYTES // 1_048_576) in diagnostic.message


def test_a_yaml_tag_never_runs_code(write, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    path = write("tag.yaml", f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(SpecError):
        check(path)
    assert not marker.exists()


def test_cli_reports_every_bad_file_in_one_line_each_and_exits_1(tmp_path: Path) -> None:
    for name, (content, *_rest) in BAD_FILES.items():
        target = tmp_path / f"{name}.yaml"
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    with (tmp_path / "huge.yaml").open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "flujo", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(BAD_FILES) + 1
    for name, (_, _code, line, col, _words) in BAD_FILES.items():
        assert any(entry.startswith(f"{name}.yaml:{line}:{col}: error: ") for entry in lines), name
    assert "huge.yaml:1:1: error: file is 50.0 MiB" in done.stdout
    assert f"{len(BAD_FILES) + 1} files checked" in done.stderr


def test_cli_usage_errors_exit_2_and_still_check_the_other_files(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("steps: [{name: a}]\n")
    unreadable = tmp_path / "locked.yaml"
    unreadable.write_text("steps: []\n")
    unreadable.chmod(0)
    done = subprocess.run(
        [sys.executable, "-m", "flujo", "validate", "missing.yaml", str(good), str(unreadable)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    readable_as_root = os.access(unreadable, os.R_OK)
    assert done.returncode == 2
    assert "no such file: missing.yaml" in done.stderr
    assert readable_as_root or "cannot read" in done.stderr
    assert "Traceback" not in done.stderr
