"""`--fake` answered in process: the same results as through the fake server, no HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from flujo.engine.agents import OpenAIModels
from flujo.engine.fake_models import InProcessFake
from flujo.engine.fake_openai import FakeOpenAI
from flujo.engine.runner import Runner
from flujo.engine.session import SessionOptions, session
from flujo.spec.model import Pipeline
from tests.support.specs import ROOT

TRIAGE = ROOT / "examples" / "support_triage.yaml"


def inputs() -> list[Any]:
    path = ROOT / "examples" / "inputs" / "support_triage.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def outcome(result: Any) -> Any:
    data = result.to_dict()
    for key in ("run_id", "latency_s"):
        data.pop(key)
    for step in data["steps"].values():
        step.pop("latency_s", None)
        step.pop("started_at", None)
    return data


async def test_in_process_results_are_those_of_the_server() -> None:
    pipeline = Pipeline.from_yaml(TRIAGE)
    async with session(pipeline, SessionOptions(fake=True, use_store=False)) as runner:
        assert isinstance(runner.models, InProcessFake)
        direct = [await runner.run(value) for value in inputs()]
        assert runner.models.server.count() > 0 and runner.models._http is None
    async with FakeOpenAI() as server:
        models = OpenAIModels(base_url=server.base_url)
        try:
            served = Runner(pipeline, models=models, mode="fake", origin="cli")
            over_http = [await served.run(value) for value in inputs()]
        finally:
            await models.close()
    assert [outcome(r) for r in direct] == [outcome(r) for r in over_http]


async def test_scripted_failures_go_through_the_server_and_its_client_retries() -> None:
    spec = """name: flaky
agents:
  a: {model: 'openai:gpt-4o-mini'}
steps:
  - {name: s, uses: agents.a, input: "hello [[fake:fail=503x1]] [[fake:retry_after=0.01]]"}
"""
    pipeline = Pipeline.from_yaml(spec)
    async with session(pipeline, SessionOptions(fake=True, use_store=False)) as runner:
        result = await runner.run("x")
        models = runner.models
        assert isinstance(models, InProcessFake) and models._http is not None
        assert result.success, result.error
        assert [r.status for r in models.server.requests] == [503, 200]


async def test_recording_keeps_the_http_server(tmp_path: Path) -> None:
    pipeline = Pipeline.from_yaml(TRIAGE)
    options = SessionOptions(fake=True, record=tmp_path / "tape", use_store=False)
    async with session(pipeline, options) as runner:
        assert isinstance(runner.models, OpenAIModels)
        result = await runner.run(inputs()[0])
    assert result.success and list((tmp_path / "tape").iterdir())


def test_the_in_process_fake_imports_neither_openai_nor_aiohttp() -> None:
    code = (
        "import sys, flujo.engine.session, flujo.engine.fake_models, flujo.cli.batch; "
        "print(sorted(m for m in ('openai', 'aiohttp', 'httpx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
