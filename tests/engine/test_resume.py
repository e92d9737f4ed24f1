"""Checkpoints and resume: a run that stopped (killed, paused at a question) continues from
its last checkpoint with the same context and step outputs; a changed spec is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from flujo.cli import cli
from flujo.engine.checkpoint import ResumeRefused, owner
from flujo.engine.human import GivenAnswers
from flujo.engine.runner import Runner
from flujo.engine.store import RunStore
from flujo.spec.model import Pipeline
from tests.support.resumable import BLOCK_ENV

ROOT = Path(__file__).resolve().parents[2]
ALLOW = '["tests.support.resumable:*"]'

KILLED = """\
steps:
  - name: remember
    uses: tests.support.resumable:double
    updates_context: true
  - name: wait
    uses: tests.support.resumable:block
    input: "{{ context.doubled }}"
  - name: combine
    uses: flujo.builtins:passthrough
    input: '{"doubled": {{ context.doubled }}, "seen": {{ steps.remember.output.seen }}}'
    updates_context: true
"""

ASKS = """\
steps:
  - name: note
    uses: flujo.builtins:passthrough
    input: '{"subject": "{{ input.topic | upper }}"}'
    updates_context: true
  - name: approve
    kind: hitl
    message: "Publish {{ context.subject }}?"
  - name: publish
    uses: flujo.builtins:passthrough
    input: "{{ context.subject }}: {{ steps.approve.output }}"
"""


def _flujo(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k != "FLUJO_SKILLS_ALLOW"}
    environment.update(PYTHONPATH=str(ROOT), FLUJO_SKILLS_ALLOW=ALLOW, **env)
    return subprocess.Popen(
        [sys.executable, "-m", "flujo", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=environment,
    )


def _wait_for(path: Path, process: subprocess.Popen[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(process.communicate())
        if time.monotonic() > deadline:  # pragma: no cover - a hung child
            process.kill()
            raise AssertionError("the run never reached the blocking step")
        time.sleep(0.05)


def test_a_run_killed_mid_way_resumes_with_the_same_output_and_context(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "killed.yaml"
    spec.write_text(KILLED, encoding="utf-8")
    store = tmp_path / "runs.db"
    data = '{"n": 21}'
    whole = _flujo(
        "run", str(spec), "-i", data, "--store", str(tmp_path / "w.db"), "--json", env={}
    )
    out, err = whole.communicate(timeout=120)
    assert whole.returncode == 0, err
    uninterrupted = json.loads(out)

    flag = tmp_path / "block"
    flag.write_text("", encoding="utf-8")
    killed = _flujo("run", str(spec), "-i", data, "--store", str(store), env={BLOCK_ENV: str(flag)})
    _wait_for(Path(f"{flag}.reached"), killed)
    db = RunStore(store)
    [run] = db.list_runs()
    deadline = time.monotonic() + 30  # written while the next step runs
    while len(db.checkpoints(run["run_id"])) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    checkpoint = db.checkpoints(run["run_id"])[-1]
    assert checkpoint["yaml_path"] == "steps[0]"
    assert json.loads(checkpoint["context"]) == {"n": 21, "doubled": 42, "seen": [21]}
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)
    assert killed.returncode == -signal.SIGKILL
    assert db.list_runs()[0]["status"] == "running"  # nobody recorded the end
    db.close()
    flag.unlink()

    monkeypatch.setenv("FLUJO_SKILLS_ALLOW", ALLOW)
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        cli, ["runs", "resume", run["run_id"][:10], "--store", str(store), "--json"]
    )
    assert result.exit_code == 0, result.output
    resumed = json.loads(result.stdout)
    assert resumed["output"] == uninterrupted["output"] == '{"doubled": 42, "seen": [21]}'
    assert resumed["context"] == uninterrupted["context"]
    assert resumed["resumed_from"] == run["run_id"]
    assert list(resumed["steps"]) == ["remember", "wait", "combine"]

    db = RunStore(store)
    rows = {row["run_id"]: row for row in db.list_runs()}
    assert rows[run["run_id"]]["status"] == "cancelled"
    assert f"resumed as {resumed['run_id']}" in rows[run["run_id"]]["error"]
    spans = db.spans(resumed["run_id"])
    [root] = [s for s in spans if s["parent_id"] is None]
    assert root["attributes"]["flujo.run.resumed_from"] == run["run_id"]
    assert root["attributes"]["flujo.run.resumed_after"] == "steps[0]"
    assert {s["step_name"] for s in spans if s["step_name"]} == {"wait", "combine"}
    assert db.checkpoints(resumed["run_id"]) == []  # it succeeded: nothing kept
    again = CliRunner().invoke(cli, ["runs", "resume", run["run_id"], "--store", str(store)])
    assert again.exit_code == 1 and "was resumed already" in again.stderr
    db.close()


def _paused(tmp_path: Path) -> tuple[Path, Path, str]:
    spec = tmp_path / "asks.yaml"
    spec.write_text(ASKS, encoding="utf-8")
    store = tmp_path / "runs.db"
    result = CliRunner().invoke(
        cli, ["run", str(spec), "-i", '{"topic": "news"}', "--store", str(store)], input=""
    )
    assert result.exit_code == 4, result.output
    assert "paused" in result.stderr and "flujo runs resume" in result.stderr
    db = RunStore(store)
    [run] = db.list_runs()
    db.close()
    assert run["status"] == "paused" and run["error_path"] == "steps[1]"
    return spec, store, run["run_id"]


def test_a_question_nobody_can_answer_pauses_the_run_and_resume_answers_it(
    tmp_path: Path,
) -> None:
    _, store, run_id = _paused(tmp_path)
    result = CliRunner().invoke(
        cli, ["runs", "resume", run_id, "--store", str(store), "--answer", "approve=yes"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "NEWS: yes\n"  # the context written before the pause
    assert f"resumed run {run_id} as " in result.stderr
    shown = CliRunner().invoke(cli, ["runs", "show", run_id, "--store", str(store)])
    assert (
        "resumed as run " in shown.stdout and "waits for an answer: Publish NEWS?" in shown.stdout
    )


def test_prune_drops_the_checkpoints_of_runs_stopped_long_ago(tmp_path: Path) -> None:
    _, store, run_id = _paused(tmp_path)
    kept = CliRunner().invoke(cli, ["runs", "prune", "--older-than", "1h", "--store", str(store)])
    assert "dropped the checkpoints of 0 stopped runs" in kept.stdout
    dropped = CliRunner().invoke(
        cli, ["runs", "prune", "--older-than", "0m", "--store", str(store)]
    )
    assert dropped.exit_code == 0
    assert "dropped the checkpoints of 1 stopped run (they can no longer" in dropped.stdout
    result = CliRunner().invoke(
        cli, ["runs", "resume", run_id, "--store", str(store), "--answer", "approve=yes"]
    )
    assert result.exit_code == 1 and "has no checkpoint" in result.stderr
    assert "pruned by `flujo runs prune`" in result.stderr


def test_resuming_a_run_whose_spec_changed_is_refused(tmp_path: Path) -> None:
    spec, store, run_id = _paused(tmp_path)
    spec.write_text(ASKS.replace("Publish", "Ship"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["runs", "resume", run_id, "--store", str(store)])
    assert result.exit_code == 1
    assert "the spec changed since run" in result.stderr
    assert "a changed spec applies on the next run, never to one in flight" in result.stderr
    assert "Traceback" not in result.output
    db = RunStore(store)
    assert db.resumed_as(run_id) is None
    db.close()


async def test_the_engine_resumes_with_the_context_written_before_the_checkpoint(
    tmp_path: Path,
) -> None:
    pipeline = Pipeline.from_yaml(ASKS)
    store = RunStore(tmp_path / "runs.db")
    nobody = GivenAnswers({})  # no terminal: the question cannot be answered now
    unasked = await Runner(pipeline, store=store, human=nobody).run({"topic": "t"})
    assert unasked.status == "failed"  # from Python, checkpoints are asked for
    assert store.checkpoints(unasked.run_id) == []
    asking = Runner(pipeline, store=store, human=nobody, checkpoints=True)
    paused = await asking.run({"topic": "t"})
    assert paused.status == "paused" and paused.error_path == "steps[1]"
    assert paused.context == {"topic": "t", "subject": "T"}
    runner = Runner(pipeline, store=store)
    resumed = await runner.resume(paused.run_id, answers={None: "ok"})
    assert (resumed.status, resumed.output) == ("succeeded", "T: ok")
    assert resumed.context == {"topic": "t", "subject": "T"}
    assert resumed.steps["note"].output == '{"subject": "T"}'  # from the checkpoint
    with pytest.raises(ResumeRefused, match="succeeded: there is nothing to resume"):
        await runner.resume(resumed.run_id)
    store.close()


async def test_a_run_still_running_in_a_live_process_is_not_resumed(tmp_path: Path) -> None:
    pipeline = Pipeline.from_yaml(ASKS)
    store = RunStore(tmp_path / "runs.db")
    store.begin_run(
        run_id="r1",
        spec_sha256=pipeline.spec_sha256,
        spec_text=ASKS,
        spec_path=None,
        pipeline=None,
        trace_id=1,
    )
    row: dict[str, Any] = {
        "run_id": "r1",
        "step_index": -1,
        "yaml_path": "",
        "step_name": "",
        "output": "null",
        "context": "{}",
        "state": json.dumps(
            {"input": None, "steps": {}, "cost_usd": 0, "cost_known": True, "tokens": 0}
        ),
        "owner": owner(),  # this very process
    }
    store.write_checkpoints([row])
    with pytest.raises(ResumeRefused, match="is still running"):
        await Runner(pipeline, store=store).resume("r1")
    store.close()


async def test_checks_and_tests_keep_no_checkpoints_and_do_not_pause(tmp_path: Path) -> None:
    pipeline = Pipeline.from_yaml(ASKS)
    store = RunStore(tmp_path / "runs.db")
    runner = Runner(pipeline, store=store, human=GivenAnswers({}), origin="test")
    result = await runner.run({"topic": "t"})
    assert result.status == "failed" and result.cause == "harness"
    assert store.checkpoints(result.run_id) == []
    store.close()


async def test_flujo_resume_continues_a_run_from_python(tmp_path: Path) -> None:
    import flujo

    store = RunStore(tmp_path / "runs.db")
    paused = await flujo.run(
        ASKS, {"topic": "py"}, store=store, human=GivenAnswers({}), checkpoints=True
    )
    assert paused.status == "paused"
    resumed = await flujo.resume(ASKS, paused.run_id, answers={"approve": "fine"}, store=store)
    assert (resumed.output, resumed.resumed_from) == ("PY: fine", paused.run_id)
    store.close()


def test_checkpoints_that_came_together_are_written_as_one_row_with_every_step_result() -> None:
    from flujo.engine.checkpoint import coalesce, row

    def state(steps: dict[str, Any]) -> dict[str, Any]:
        return {"cost_usd": 0.0, "cost_known": True, "tokens": 0, "steps": steps}

    rows = [
        row("r", -1, ("", ""), "in", {}, state({}) | {"input": "in"}),
        row("r", 0, ("steps[0]", "a"), {"x": '"}'}, {"k": 1}, state({"a": {"output": 1}})),
        row("r", 1, ("steps[1]", "b"), "b", {"k": 2}, state({"b": {"output": "b"}})),
        row("r", 2, ("steps[2]", "a"), "c", {"k": 3}, state({"a": {"output": 3}})),
    ]
    start, last = coalesce(rows)
    assert start == rows[0] and (last["step_index"], last["context"]) == (2, '{"k":3}')
    steps = json.loads(last["state"])["steps"]
    assert steps == {"a": {"output": 3}, "b": {"output": "b"}}  # the later result wins
