"""The documented JSON outputs keep their shape: each command runs on a fixed example and
its output, with volatile values (ids, hashes, timestamps, durations, temporary paths)
replaced by placeholders that keep their JSON type, must equal the committed snapshot in
tests/cli/snapshots/. Keys, value types and stable values are all compared, so a format
changes only on purpose:

    FLUJO_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/cli/test_json_snapshots.py

rewrites the snapshots; review their diff and note the change in CHANGELOG.md.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.store import RunStore
from flujo.spec.model import Pipeline
from tests.support.learn import PLANTED, SEEDS, record

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
SPECS = SNAPSHOTS / "specs"
UPDATE = os.environ.get("FLUJO_UPDATE_SNAPSHOTS") == "1"
HOW_TO_UPDATE = (
    "if the change is deliberate, run "
    "`FLUJO_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/cli/test_json_snapshots.py`, "
    "review the diff of tests/cli/snapshots/ and note the change in CHANGELOG.md"
)

# Values that differ from run to run, by key: replaced by `<label:json type>`.
VOLATILE = {
    "run_id": "id",
    "span_id": "id",
    "parent_id": "id",
    "trace_id": "id",
    "flujo.run.id": "id",
    "spec_sha256": "sha256",
    "sha256": "sha256",
    "flujo.yaml.spec_sha256": "sha256",
    "started_at": "timestamp",
    "ended_at": "timestamp",
    "start_ns": "timestamp",
    "end_ns": "timestamp",
    "latency_s": "duration",
    "duration_s": "duration",
}


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def placeholder(label: str, value: Any) -> str:
    return f"<{label}:{json_type(value)}>"


def normalise(value: Any, tmp: Path, key: str | None = None) -> Any:
    """`value` with its volatile parts replaced by typed placeholders."""
    if key in VOLATILE:
        return placeholder(VOLATILE[key], value)
    if key == "events" and isinstance(value, list):  # span events: [name, time_ns, attributes]
        return [
            [name, placeholder("timestamp", at), normalise(attributes, tmp)]
            for name, at, attributes in value
        ]
    if isinstance(value, dict):
        return {k: normalise(v, tmp, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(item, tmp) for item in value]
    if isinstance(value, str):
        for root in {str(tmp), str(tmp.resolve())}:
            value = value.replace(root, "<tmp>")
        if value.startswith("[") and value.endswith("]") and key == "policies":
            # the run store keeps a run's policy verdicts as JSON text
            return {"<json text>": normalise(json.loads(value), tmp)}
    return value


def differences(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Every place where two JSON values differ: keys, types, lengths and values."""
    if json_type(expected) != json_type(actual):
        return [f"{path}: {json_type(expected)} became {json_type(actual)}"]
    if isinstance(expected, dict):
        found = [f"{path}.{k}: key removed" for k in expected if k not in actual]
        found += [f"{path}.{k}: key added" for k in actual if k not in expected]
        if list(expected) != list(actual) and not found:
            found.append(f"{path}: keys reordered: {list(expected)} -> {list(actual)}")
        for k in expected:
            if k in actual:
                found += differences(expected[k], actual[k], f"{path}.{k}")
        return found
    if isinstance(expected, list):
        found = []
        if len(expected) != len(actual):
            found.append(f"{path}: {len(expected)} items became {len(actual)}")
        for i, (a, b) in enumerate(zip(expected, actual, strict=False)):
            found += differences(a, b, f"{path}[{i}]")
        return found
    return [] if expected == actual else [f"{path}: {expected!r} became {actual!r}"]


def check_snapshot(name: str, command: str, data: Any) -> None:
    """Compare with tests/cli/snapshots/NAME.json (or rewrite it when updating)."""
    path = SNAPSHOTS / f"{name}.json"
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"no snapshot {path.name} for `{command}`: {HOW_TO_UPDATE}")
    found = differences(json.loads(path.read_text(encoding="utf-8")), data)
    if found:
        shown = "\n  ".join(found[:20]) + ("\n  …" if len(found) > 20 else "")
        pytest.fail(
            f"the JSON output of `{command}` no longer matches tests/cli/snapshots/{path.name}:"
            f"\n  {shown}\n{HOW_TO_UPDATE}",
        )


def flujo(*args: str, codes: tuple[int, ...] = (0,)) -> Any:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code in codes, (result.exit_code, result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working folder holding the fixed specs, so every path is relative."""
    for spec in SPECS.glob("*.yaml"):
        shutil.copy(spec, tmp_path / spec.name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLUJO_STORE", raising=False)
    return tmp_path


@pytest.fixture
def ran(here: Path) -> tuple[Path, Any]:
    """One recorded run of the fixed pipeline on the fake model server."""
    result = flujo(
        "run",
        "triage.yaml",
        "--input",
        '{"ticket": "I was charged twice."}',
        "--fake",
        "--store",
        "runs.db",
        "--json",
    )
    return here, result


def test_flujo_run_json(ran: tuple[Path, Any]) -> None:
    here, result = ran
    check_snapshot("run", "flujo run SPEC --fake --json", normalise(result, here))


def test_flujo_runs_list_json(ran: tuple[Path, Any]) -> None:
    here, _ = ran
    rows = flujo("runs", "list", "--store", "runs.db", "--json")
    check_snapshot("runs_list", "flujo runs list --json", normalise(rows, here))


def test_flujo_runs_show_json(ran: tuple[Path, Any]) -> None:
    here, result = ran
    shown = flujo("runs", "show", result["run_id"][:12], "--store", "runs.db", "--json")
    assert shown["run"]["run_id"] == result["run_id"]
    check_snapshot("runs_show", "flujo runs show RUN_ID --json", normalise(shown, here))


def test_flujo_policy_check_json(ran: tuple[Path, Any]) -> None:
    here, result = ran
    with (here / "triage.yaml").open("a") as spec:  # a stricter rule, weighed on history
        spec.write(
            '  - id: no_tokens\n    assert: "result.total_tokens == 0"\n    action: FAIL_RUN\n'
        )
    report = flujo(
        "policy",
        "check",
        "triage.yaml",
        "--store",
        "runs.db",
        "--include",
        "fake",
        "--json",
        codes=(1,),
    )
    assert report["runs"] == 1 and [p["id"] for p in report["policies"]] == [
        "cost_gate",
        "no_tokens",
    ]
    assert report["blocking"] and report["policies"][1]["failures"][0]["run_id"] == result["run_id"]
    check_snapshot("policy_check", "flujo policy check SPEC --json", normalise(report, here))


def test_flujo_test_json(here: Path) -> None:
    report = flujo("test", "triage.yaml", "--fake", "--json", codes=(1,))
    assert report["summary"]["failed"] == 1  # the failed test shows its explanation
    check_snapshot("test", "flujo test SPEC --json", normalise(report, here))


def test_flujo_diff_json(here: Path) -> None:
    changes = flujo("diff", "triage.yaml", "triage_v2.yaml", "--format", "json", codes=(1,))
    check_snapshot("diff", "flujo diff OLD NEW --format json", normalise(changes, here))


def test_flujo_suggest_json(here: Path) -> None:
    spec = here / "cheaper_model.yaml"
    shutil.copy(SEEDS / "cheaper_model.yaml", spec)
    store = RunStore(here / "runs.db")
    record(store, Pipeline.from_yaml(Path("cheaper_model.yaml")), PLANTED["cheaper_model"][0])
    store.close()
    report = flujo("suggest", "cheaper_model.yaml", "--store", "runs.db", "--json")
    assert report["suggestions"], "the planted opportunity must be found"
    check_snapshot("suggest", "flujo suggest SPEC --json", normalise(report, here))


# -- the snapshots can fail ---------------------------------------------------------------


def test_placeholders_keep_the_json_type(tmp_path: Path) -> None:
    data = {"run_id": "01ab", "latency_s": 0.5, "ended_at": None, "path": f"{tmp_path}/x.yaml"}
    assert normalise(data, tmp_path) == {
        "run_id": "<id:string>",
        "latency_s": "<duration:number>",
        "ended_at": "<timestamp:null>",
        "path": "<tmp>/x.yaml",
    }


def test_a_changed_key_type_or_value_fails_with_how_to_update() -> None:
    snapshot = json.loads((SNAPSHOTS / "test.json").read_text(encoding="utf-8"))
    assert differences(snapshot, snapshot) == []
    renamed = json.loads(json.dumps(snapshot))
    renamed["summary"]["passes"] = renamed["summary"].pop("passed")
    retyped = json.loads(json.dumps(snapshot))
    retyped["summary"]["total"] = str(retyped["summary"]["total"])
    changed = json.loads(json.dumps(snapshot))
    changed["tests"][0]["outcome"] = "failed"
    shorter = json.loads(json.dumps(snapshot))
    shorter["tests"].pop()
    assert differences(snapshot, renamed) == [
        "$.summary.passed: key removed",
        "$.summary.passes: key added",
    ]
    assert differences(snapshot, retyped) == ["$.summary.total: integer became string"]
    assert differences(snapshot, changed) == ["$.tests[0].outcome: 'passed' became 'failed'"]
    assert differences(snapshot, shorter) == ["$.tests: 2 items became 1"]
    if not UPDATE:
        with pytest.raises(pytest.fail.Exception, match="FLUJO_UPDATE_SNAPSHOTS=1"):
            check_snapshot("test", "flujo test SPEC --json", retyped)
