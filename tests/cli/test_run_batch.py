"""`flujo run SPEC --inputs FILE.jsonl`: many runs in one process, with a summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.batch import BatchSummary, parse_input_lines, percentile
from flujo.engine.results import PipelineResult
from tests.support.specs import ROOT

TRIAGE = ROOT / "examples" / "support_triage.yaml"
INPUTS = ROOT / "examples" / "inputs" / "support_triage.jsonl"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_every_example_input_runs_in_one_process_with_a_summary(tmp_path: Path) -> None:
    from flujo.engine.store import RunStore

    store = tmp_path / "runs.db"
    lines = [line for line in INPUTS.read_text().splitlines() if line.strip()]
    assert len(lines) >= 20
    code, out, err = invoke(
        "run", str(TRIAGE), "--inputs", str(INPUTS), "--fake", "--jobs", "3", "--store", str(store)
    )
    assert code == 0, out + err
    assert f"{len(lines)} runs in " in out and f"{len(lines)} succeeded, 0 failed" in out
    assert "latency p50 " in out and "cost $" in out
    assert "tokens (on the fake model server, not production evidence)" in out
    db = RunStore(store)
    runs = db.list_runs(limit=100)
    db.close()
    assert len(runs) == len(lines) and {r["status"] for r in runs} == {"succeeded"}
    assert {r["mode"] for r in runs} == {"fake"}


def test_a_bad_line_is_reported_by_number_and_the_others_still_run(tmp_path: Path) -> None:
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(
        '{"ticket": "I was charged twice."}\n'
        "\n"
        '{"ticket": broken\n'
        '{"subject": "no ticket field"}\n'
        '{"ticket": "Login fails with ERROR: AUTH_TIMEOUT on v3.0."}\n'
    )
    store = tmp_path / "runs.db"
    args = ["run", str(TRIAGE), "--inputs", str(inputs), "--fake", "--store", str(store)]
    code, out, err = invoke(*args)
    assert code == 1
    assert f"{inputs}:3: not JSON" in err
    assert "line 4: run " in out and "[input]" in out
    assert "3 runs in " in out and "2 succeeded, 1 failed (input 1); 1 input line skipped" in out

    code, out, err = invoke(*args, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["summary"]["runs"] == 3 and report["summary"]["failed_by_cause"] == {"input": 1}
    assert [run["line"] for run in report["runs"]] == [1, 4, 5]
    assert [run["status"] for run in report["runs"]] == ["succeeded", "failed", "succeeded"]
    assert report["input_errors"] == [
        {"line": 3, "error": "not JSON: Expecting value at column 12"}
    ]


def test_input_and_inputs_together_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = invoke("run", str(TRIAGE), "--inputs", str(INPUTS), "--input", "{}", "--fake")
    assert code == 2 and "not both" in err
    code, _, err = invoke("run", str(TRIAGE), "--inputs", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err


def test_summary_counts_causes_cost_and_percentiles() -> None:
    def result(status: str, cause: str | None, cost: float | None, latency: float) -> Any:
        done = PipelineResult("r", "sha", status=status, total_cost_usd=cost, latency_s=latency)  # type: ignore[arg-type]
        done.cause = cause
        return done

    results = [
        result("succeeded", None, 0.5, 0.1),
        result("failed", "provider", 0.25, 0.2),
        result("failed", "model", 0.25, 0.3),
        result("failed", "provider", 0.0, 0.4),
    ]
    summary = BatchSummary.of(results, parse_input_lines(["[", "1"])[:1], wall_s=1.0, jobs=2)
    assert summary.failed_by_cause == {"model": 1, "provider": 2}
    assert summary.total_cost_usd == 1.0 and summary.input_errors == 1 and not summary.ok
    assert summary.latency_s == {"p50": 0.2, "p90": 0.4, "p99": 0.4, "max": 0.4}
    assert BatchSummary.of([*results, result("succeeded", None, None, 0.1)]).total_cost_usd is None
    assert percentile([], 50) is None and percentile([3.0], 99) == 3.0
