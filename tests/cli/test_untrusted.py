"""A repository's own skill allow-list is the repository's code: `flujo test` says so
loudly, and `--untrusted` (for pull requests) ignores it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEC = """\
name: uses_repo_code
steps:
  - name: a
    uses: tests.support.hostile_skills:defined
tests:
  - name: passes
    input: 1
    assertions: ["result.output == 1"]
"""


def _repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".github").mkdir()
    allow = '["tests.support.hostile_skills:*"]'
    (tmp_path / ".github" / "flujo.yml").write_text(f"skills:\n  allow: {allow}\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    return spec


def _flujo(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "FLUJO_SKILLS_ALLOW"}
    environment["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "flujo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment, **env},
    )


def test_flujo_test_warns_when_it_runs_code_the_repository_allow_lists(tmp_path: Path) -> None:
    spec = _repo(tmp_path)
    done = _flujo("test", str(spec))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" in done.stderr
    assert "tests.support.hostile_skills:defined" in done.stderr
    assert "--untrusted" in done.stderr


def test_untrusted_ignores_the_repository_allow_list(tmp_path: Path) -> None:
    spec = _repo(tmp_path)
    tested = _flujo("test", "--untrusted", str(spec))
    assert tested.returncode == 2, tested.stdout + tested.stderr
    assert "not in the skill allow-list" in tested.stderr
    validated = _flujo("validate", "--untrusted", str(spec))
    assert validated.returncode == 1
    assert f"{spec}:4:5: error:" in validated.stdout.replace(str(spec.resolve()), str(spec))


def test_untrusted_still_honours_the_operators_allow_list(tmp_path: Path) -> None:
    spec = _repo(tmp_path)
    allow = '["tests.support.hostile_skills:defined"]'
    done = _flujo("test", "--untrusted", str(spec), FLUJO_SKILLS_ALLOW=allow)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr
    assert _flujo("validate", "--untrusted", str(spec), FLUJO_SKILLS_ALLOW=allow).returncode == 0
