"""`flujo run`, `flujo runs list` and `flujo runs show` from the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from flujo.cli import cli
from flujo.spec.model import Pipeline

SPEC = """name: cli-demo
agents:
  writer:
    model: openai:gpt-4o-mini
    system_prompt: Be brief.
steps:
  - name: parse
    uses: json_parse
  - name: write
    uses: agents.writer
    input: "Write about {{ steps.parse.output.topic }}"
  - name: fan
    kind: parallel
    branches:
      a:
        steps:
          - name: echo
            uses: passthrough
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_run_then_show_leads_every_step_to_its_line(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC)
    store = str(tmp_path / "runs.db")
    payload = tmp_path / "in.json"
    payload.write_text(json.dumps(json.dumps({"topic": "roses"})))
    code, out, err = invoke(
        "run", str(spec), "--input", f"@{payload}", "--fake", "--store", store, "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "succeeded" and result["total_tokens"] > 0
    code, out, _ = invoke("runs", "list", "--store", store)
    header, first = out.splitlines()[:2]
    assert code == 0 and first.startswith(result["run_id"]) and "succeeded" in first
    assert header.split()[:5] == ["RUN", "STARTED", "(UTC)", "STATUS", "MODE"]
    assert " fake " in first and " cli " in first and first.endswith(str(spec))
    code, out, _ = invoke("runs", "show", result["run_id"][:12], "--store", store)
    assert code == 0
    pipeline = Pipeline.from_yaml(spec)
    lines = {
        m.group(1): (m.group(2), m.group(3)) for m in re.finditer(r"✓ (\w+)  (\S+)  \S+:(\d+)", out)
    }
    assert set(lines) == {"parse", "write", "fan", "echo"}
    for name, (path, line) in lines.items():
        step = pipeline.step(name)
        assert (path, int(line)) == (step.yaml_path, step.line)
    assert re.search(r"write .* \d+\+\d+ tok  \$0\.0000\d+", out)


def test_a_failed_run_exits_1_and_says_why(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text("steps:\n  - name: parse\n    uses: json_parse\n")
    code, out, err = invoke(
        "run", str(spec), "--input", "not json at all", "--store", str(tmp_path / "db")
    )
    assert code == 1
    assert out == ""  # the status and the error go to stderr
    assert "failed" in err.splitlines()[0]
    assert "error: step 'parse' failed: JSONDecodeError" in err and "(steps[0])" in err


def test_run_prints_only_the_output_on_stdout_and_its_status_on_stderr(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text("steps:\n  - name: parse\n    uses: json_parse\n")
    code, out, err = invoke(
        "run", str(spec), "--input", json.dumps('{"a": [1, 2]}'), "--store", str(tmp_path / "db")
    )
    assert code == 0, err
    assert json.loads(out) == {"a": [1, 2]}  # stdout is the output alone: pipe it to jq
    assert re.match(r"run \w+: succeeded in ", err)
    assert "production evidence" not in err  # no model was called: nothing to qualify


def test_a_fake_run_says_its_tokens_and_cost_are_not_production_evidence(tmp_path: Path) -> None:
    spec = Path(__file__).resolve().parents[2] / "examples" / "support_triage.yaml"
    ticket = json.dumps({"ticket": "I was charged twice for my subscription this month."})
    code, _, err = invoke("run", str(spec), "--fake", "-i", ticket, "--store", str(tmp_path / "db"))
    assert code == 0, err
    status = next(line for line in err.splitlines() if line.startswith("run "))
    assert " tokens, $" in status
    assert status.endswith("(on the fake model server, not production evidence)")


def test_runs_show_lists_the_candidates_of_an_ambiguous_prefix(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text("steps:\n  - name: a\n    uses: passthrough\n")
    store = str(tmp_path / "runs.db")
    ids = []
    for _ in range(2):
        code, out, err = invoke("run", str(spec), "--input", "x", "--store", store, "--json")
        ids.append(json.loads(out)["run_id"])
    common = next(i for i in range(len(ids[0])) if ids[0][i] != ids[1][i])
    code, _, err = invoke("runs", "show", ids[0][:common], "--store", store)
    assert code == 2
    assert f"'{ids[0][:common]}' matches 2 runs; give more of the id:" in err
    assert ids[0] in err and ids[1] in err and str(spec) in err
    code, _, err = invoke("runs", "show", "zzz", "--store", store)
    assert code == 2 and "no run matches 'zzz'" in err


def test_an_invalid_spec_is_not_run(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text("steps:\n  - name: a\n    uses: json_pase\n")
    code, _, err = invoke("run", str(spec), "--store", str(tmp_path / "db"))
    assert code == 1
    assert "p.yaml:3:5: error: unknown skill 'json_pase'" in err
    assert not (tmp_path / "db").exists()


def test_a_replay_miss_names_the_step(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC)
    code, _, err = invoke(
        "run",
        str(spec),
        "--input",
        '{"topic": "x"}',
        "--replay",
        str(tmp_path / "empty"),
        "--store",
        str(tmp_path / "db"),
    )
    assert code == 1
    assert "no recording for step 'write' calls model 'gpt-4o-mini'" in err


def test_runs_without_a_store_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = invoke("runs", "list", "--store", str(tmp_path / "none.db"))
    assert code == 2 and "no run store" in err


def test_the_demo_runs_every_example_offline_and_records_it(tmp_path: Path) -> None:
    from flujo.engine.store import RunStore
    from tests.support.specs import ROOT

    store = tmp_path / "demo.db"
    code, out, err = invoke(
        "demo", "--examples", str(ROOT / "examples"), "--repeat", "1", "--store", str(store)
    )
    assert code == 0, out + err
    for name in ("rag_answer.yaml", "sql_generation.yaml", "support_triage.yaml"):
        assert re.search(rf"{name} +\d+ ok, 0 failed", out), out
    db = RunStore(store)
    runs = db.list_runs(limit=100)
    inputs = [
        line
        for path in (ROOT / "examples" / "inputs").glob("*.jsonl")
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    assert len(runs) == len(inputs) and {r["status"] for r in runs} == {"succeeded"}
    assert f"flujo runs show {runs[0]['run_id']}" in out
    db.close()


def test_ctrl_c_records_the_run_as_cancelled_and_exits_130(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from flujo.engine.store import RunStore
    from tests.support.specs import ROOT

    (tmp_path / ".git").mkdir()
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "flujo.yml").write_text(
        "skills:\n  allow: ['tests.support.skills:*']\n"
    )
    spec = tmp_path / "slow.yaml"
    spec.write_text(
        "steps:\n  - name: first\n    uses: passthrough\n"
        "  - name: wait\n    uses: 'tests.support.skills:slow'\n    with: {seconds: 60}\n"
    )
    store = tmp_path / "runs.db"
    child = subprocess.Popen(
        [sys.executable, "-m", "flujo", "run", str(spec), "--store", str(store)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the run has started
        if store.exists() and RunStore(store).list_runs():
            break
        time.sleep(0.1)
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert "interrupted; the run was recorded as cancelled" in err
    assert "Traceback" not in err
    (row,) = RunStore(store).list_runs()
    assert row["status"] == "cancelled"


def test_console_telemetry_prints_spans_with_their_yaml_paths(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = tmp_path / "p.yaml"
    spec.write_text("steps:\n  - name: parse\n    uses: json_parse\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "flujo",
            "run",
            str(spec),
            "--input",
            '"[1]"',
            "--console-telemetry",
            "--store",
            str(tmp_path / "db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"flujo.yaml.path": "steps[0]"' in done.stdout
    assert '"name": "flujo.step.duration"' in done.stdout
