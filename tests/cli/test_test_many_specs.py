"""`flujo test` over many specs in one process: `--jobs N` tests at once across the specs,
with the same report (text, JSON, JUnit, exit code) as one at a time, in spec order."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from flujo.cli import cli
from tests.support import skills

SPEC = """\
name: spec{n}
steps:
  - name: wait
    uses: "tests.support.skills:overlapping"
    with: {{seconds: 0.2}}
tests:
  - name: waits
    input: {n}
    assertions: ["output == {expected}"]
"""


def write_repo(tmp_path: Path, count: int) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "flujo.yml").write_text(
        "skills:\n  allow: ['tests.support.skills:*']\n"
    )
    for n in range(count):  # spec3's test fails; broken.yaml is not a valid spec
        expected = 99 if n == 3 else n
        (tmp_path / f"spec{n}.yaml").write_text(SPEC.format(n=n, expected=expected))
    (tmp_path / "broken.yaml").write_text("steps:\n  - name: x\n    kind: nope\n")
    return tmp_path


def flujo_test(*args: str) -> tuple[int, str, str, int]:
    skills.running.update(now=0, most=0)
    result = CliRunner().invoke(cli, ["test", *args])
    return result.exit_code, result.stdout, result.stderr, skills.running["most"]


def timeless(text: str) -> str:
    """A report without what changes from run to run (durations, run ids)."""
    text = re.sub(r"\(\d+\.\d+s\)", "(TIME)", text)
    text = re.sub(r"flujo runs show \w+", "flujo runs show RUN", text)
    text = re.sub(r'"(duration_s|run_id)": [^,\n]+', r'"\1": "X"', text)
    return re.sub(r'time="[^"]*"', 'time="X"', text)


def test_jobs_run_tests_of_several_specs_at_once_with_the_same_report(tmp_path: Path) -> None:
    folder = write_repo(tmp_path, 6)
    reports = {}
    for jobs in ("1", "3"):
        junit = tmp_path / f"junit{jobs}.xml"
        code, out, err, most = flujo_test(str(folder), "--jobs", jobs, "--junit", str(junit))
        json_code, report, _, _ = flujo_test(str(folder), "--jobs", jobs, "--json")
        assert most == int(jobs)  # bounded, and across specs (each has one test)
        reports[jobs] = (code, timeless(out), err, json_code, timeless(report))
        reports[jobs] += (timeless(junit.read_text()),)
    assert reports["1"] == reports["3"]
    code, out, err, json_code, report, _ = reports["1"]
    assert code == json_code == 2  # the invalid spec is a usage error, as before
    assert "broken.yaml" in err
    assert out.splitlines()[-1] == "5 passed, 1 failed, 1 spec error"
    ids = [line.split()[1] for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert ids == [f"{folder / f'spec{n}.yaml'}::waits" for n in range(6)]  # spec order
    assert [t["outcome"] for t in json.loads(report)["tests"]][3] == "failed"


def test_jobs_must_be_at_least_one(tmp_path: Path) -> None:
    code, _, err, _ = flujo_test(str(write_repo(tmp_path, 1)), "--jobs", "0")
    assert code == 2 and "--jobs" in err
