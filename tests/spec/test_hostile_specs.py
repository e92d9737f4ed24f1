"""Hostile specs (tests/support/hostile.py) get a located diagnostic and exit code 1 from
`flujo validate`: never a signal, a timeout, exit 3 or a memory blow-up.

Each case runs in its own process with its address space limited (`RLIMIT_AS`) and a
timeout, so a regression fails its test instead of taking the suite down with it.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.hostile import HOSTILE, MEMORY_LIMIT, TIMEOUT_S, slow_glob

ROOT = Path(__file__).resolve().parents[2]
LOCATED = re.compile(r"^\S+:\d+:\d+: error: ", re.MULTILINE)


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_bounded(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python ARGS…` from the repository root, memory-limited, failing the test on timeout."""
    try:
        return subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            preexec_fn=_limits,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {TIMEOUT_S}s: {args}")


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_spec_is_refused_with_a_located_diagnostic(name: str, tmp_path: Path) -> None:
    case = HOSTILE[name]
    target = case.build(tmp_path / name)
    done = run_bounded("-m", "flujo", "validate", str(target), env=case.env)
    output = done.stdout + done.stderr
    assert done.returncode == 1, f"{case.vector}: exit {done.returncode}\n{output[-2000:]}"
    assert LOCATED.search(done.stdout), output[-2000:]
    assert case.expect in output, output[-2000:]
    assert "Traceback" not in output


def test_spec_globs_match_in_linear_time() -> None:
    patterns, paths = slow_glob()
    code = (
        "import sys, time; from flujo.spec.config import matching; "
        f"start = time.perf_counter(); matching({paths!r}, {patterns!r}); "
        "print(time.perf_counter() - start)"
    )
    start = time.perf_counter()
    done = run_bounded("-c", code)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 1.0, done.stdout
    assert time.perf_counter() - start < TIMEOUT_S


def test_a_problem_repeated_by_aliases_is_reported_once_at_the_anchor(tmp_path: Path) -> None:
    target = HOSTILE["alias_amplification"].build(tmp_path)
    done = run_bounded("-m", "flujo", "validate", str(target))
    assert len(LOCATED.findall(done.stdout)) == 1, done.stdout[-2000:]


def test_diagnostics_are_capped_per_spec(tmp_path: Path) -> None:
    target = HOSTILE["many_diagnostics"].build(tmp_path)
    done = run_bounded("-m", "flujo", "validate", "--format", "json", str(target))
    assert done.returncode == 1
    (report,) = json.loads(done.stdout)["files"]
    assert len(report["diagnostics"]) == 201
    assert report["diagnostics"][-1]["code"] == "too-many-diagnostics"


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("**/" * 5 + "*.yml", "a/b/c.yml", True),
        ("**/" * 5 + "*.yml", "c.yml", True),
        ("**/a/**/b.yml", "x/a/y/z/b.yml", True),
        ("**/a/**/b.yml", "x/y/b.yml", False),
        ("*a*a*a*b", "xaaayb", True),
        ("*a*a*a*b", "xa/aayb", False),
        ("flujo/**", "flujo/x/y.yml", True),
        ("a?**/c", "abx/c", True),
        ("a?**/c", "a/c", False),
    ],
)
def test_complex_spec_globs_keep_their_meaning(pattern: str, path: str, expected: bool) -> None:
    from flujo.spec.config import spec_matcher

    assert spec_matcher((pattern,))(path) is expected
