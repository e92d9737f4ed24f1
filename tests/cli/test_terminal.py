"""Colour, progress and shell completion, as a person at a terminal and a pipe see them."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from flujo.cli import cli

FLUJO = str(Path(sys.executable).parent / "flujo")  # the console script, as installed
ESC = "\x1b["
SPEC = """steps:
  - name: parse
    uses: json_parse
tests:
""" + "".join(
    f"""  - name: t{i}
    input: '{{"a": {i}}}'
    assertions: ["output.a == {i}"]
"""
    for i in range(3)
)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(SPEC)
    return path


def invoke(args: list[str], env: dict[str, str]) -> tuple[str, str]:
    env = {"NO_COLOR": "", "FORCE_COLOR": "", **env}
    result = CliRunner().invoke(cli, args, env=env)
    return result.stdout, result.stderr


def test_no_colour_in_a_pipe_unless_forced_and_never_with_no_color(spec: Path) -> None:
    args = ["test", str(spec), "--store", str(spec.parent / "db")]
    out, _ = invoke(args, {})
    assert "PASS" in out and ESC not in out  # a pipe: plain text
    out, _ = invoke(args, {"FORCE_COLOR": "1"})
    assert f"{ESC}32mPASS{ESC}0m" in out  # green
    out, _ = invoke(args, {"FORCE_COLOR": "0"})
    assert ESC not in out
    out, _ = invoke(args, {"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "PASS" in out and ESC not in out  # NO_COLOR wins


def run_on_terminal(args: list[str], *, stream: str, env: dict[str, str]) -> tuple[str, str]:
    """Run the real `flujo` with one stream ("stdout" or "stderr") on a pseudo-terminal and
    the other in a pipe: (what the terminal showed, what the pipe got)."""
    main, side = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    environment.update(env, COLUMNS="100")
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: side}
    process = subprocess.Popen([FLUJO, *args], env=environment, **streams)  # type: ignore[call-overload]
    os.close(side)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the terminal closed (EIO on Linux)
            break
        if not chunk:
            break
        shown += chunk
    out, err = process.communicate(timeout=60)
    os.close(main)
    return shown.decode(), (err if stream == "stdout" else out).decode()


def test_colour_on_a_terminal_unless_no_color(spec: Path) -> None:
    args = ["test", str(spec), "--store", str(spec.parent / "db")]
    shown, _ = run_on_terminal(args, stream="stdout", env={})
    assert f"{ESC}32mPASS" in shown and f"{ESC}32m3 passed, 0 failed" in shown
    shown, _ = run_on_terminal(args, stream="stdout", env={"NO_COLOR": "1"})
    assert "PASS" in shown and ESC not in shown


def test_flujo_test_shows_progress_on_a_terminal_stderr_only(spec: Path) -> None:
    args = ["test", str(spec), "--store", str(spec.parent / "db")]
    shown, piped_out = run_on_terminal(args, stream="stderr", env={"NO_COLOR": "1"})
    assert "tests  [############------------------------]   33%" in shown
    assert "tests  [####################################]  100%" in shown
    assert "tests  [" not in piped_out and piped_out.splitlines()[-1] == "3 passed, 0 failed"
    # stderr in a pipe (CI logs): no bar
    result = subprocess.run(
        [FLUJO, *args], capture_output=True, text=True, env={**os.environ}, check=False
    )
    assert result.returncode == 0 and "tests  [" not in result.stderr + result.stdout
    # --json output is for programs: no bar even on a terminal
    shown, _ = run_on_terminal([*args, "--json"], stream="stderr", env={})
    assert "tests  [" not in shown


def test_shell_completion_scripts_are_produced_and_complete_commands() -> None:
    for shell, marker in (
        ("bash", "complete -o nosort -F _flujo_completion flujo"),
        ("zsh", "compdef _flujo_completion flujo"),
        ("fish", "complete --no-files --command flujo"),
    ):
        result = subprocess.run(
            [FLUJO],
            capture_output=True,
            text=True,
            env={**os.environ, "_FLUJO_COMPLETE": f"{shell}_source"},
            check=False,
        )
        assert result.returncode == 0 and marker in result.stdout, (shell, result.stdout)
    result = subprocess.run(
        [FLUJO],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "_FLUJO_COMPLETE": "bash_complete",
            "COMP_WORDS": "flujo te",
            "COMP_CWORD": "1",
        },
        check=False,
    )
    assert result.stdout.split() == ["plain,telemetry", "plain,test"]
