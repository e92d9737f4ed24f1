"""Agents through the real openai client against the fake server: usage, cost, output
schemas, failures, usage limits, record and replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flujo.engine.agents import OpenAIModels
from flujo.engine.cassette import Cassette
from flujo.engine.fake_openai import ChatRequest, Failure, FakeBehaviour, FakeOpenAI
from flujo.engine.runner import Runner
from flujo.engine.store import RunStore
from flujo.spec.model import Pipeline
from tests.support.specs import spec

WRITER = """
agents:
  writer:
    model: openai:gpt-4o-mini
    system_prompt: Be brief.
steps:
  - name: write
    uses: agents.writer
    input: "Write about {{ input }}"
    config: {max_retries: 1, backoff: {initial_s: 0}}
"""

CLASSIFIER = """
agents:
  classify:
    model: openai:gpt-4o-mini
    output_schema:
      type: object
      required: [category]
      properties:
        category: {enum: [billing, technical]}
steps:
  - name: classify
    uses: agents.classify
    config: {max_retries: 2, backoff: {initial_s: 0}}
"""


async def run_with(server: FakeOpenAI, text: str, value: Any, **kwargs: Any) -> Any:
    models = OpenAIModels(base_url=server.base_url, api_key="test-key", max_retries=2)
    try:
        return await Runner(Pipeline.from_yaml(spec(text)), models=models, **kwargs).run(value)
    finally:
        await models.close()


async def test_usage_and_cost_come_from_the_response_and_the_price_table(
    tmp_path: Path,
) -> None:
    store = RunStore(tmp_path / "runs.db")
    async with FakeOpenAI() as server:
        result = await run_with(server, WRITER, "roses", store=store)
    assert result.success and isinstance(result.output, str) and result.output
    step = result.steps.write
    assert step.input_tokens > 0 and step.output_tokens > 0 and step.model == "gpt-4o-mini"
    expected = (step.input_tokens * 0.15 + step.output_tokens * 0.60) / 1_000_000
    assert step.cost_usd == pytest.approx(expected)
    assert result.total_cost_usd == pytest.approx(expected)
    assert result.total_tokens == step.input_tokens + step.output_tokens
    (span,) = [s for s in store.spans(result.run_id) if s["step_name"] == "write"]
    attributes = span["attributes"]
    assert span["model"] == "gpt-4o-mini" and span["cost_usd"] == pytest.approx(expected)
    assert span["input_tokens"] == step.input_tokens
    assert attributes["gen_ai.system"] == "openai"
    assert "roses" not in str(span)  # no prompt or output text in telemetry
    store.close()


async def test_an_unknown_model_has_an_unknown_cost_not_zero() -> None:
    async with FakeOpenAI(FakeBehaviour(models=("house-model",))) as server:
        result = await run_with(server, WRITER.replace("gpt-4o-mini", "house-model"), "x")
    assert result.success
    assert result.steps.write.cost_usd is None and result.total_cost_usd is None
    assert result.total_tokens > 0


async def test_structured_output_is_parsed_and_validated() -> None:
    async with FakeOpenAI() as server:
        result = await run_with(server, CLASSIFIER, "I was charged twice")
        request = server.requests[-1].body
    assert result.success and result.output["category"] in ("billing", "technical")
    assert request["response_format"]["type"] == "json_schema"


async def test_a_server_without_structured_output_gets_the_schema_in_the_prompt() -> None:
    behaviour = FakeBehaviour(structured_output=False)
    async with FakeOpenAI(behaviour) as server:
        result = await run_with(server, CLASSIFIER, "help")
        bodies = [r.body for r in server.requests if r.path == "/v1/chat/completions"]
    assert result.success and result.output["category"] in ("billing", "technical")
    assert "response_format" in bodies[0] and "response_format" not in bodies[-1]
    assert "JSON Schema" in bodies[-1]["messages"][0]["content"]


async def test_malformed_output_gets_a_repair_retry_with_the_reason() -> None:
    replies = iter(['{"category": "billing"', '{"category": "sales"}', '{"category": "billing"}'])

    def responder(_request: ChatRequest) -> str | None:
        return next(replies)

    async with FakeOpenAI(FakeBehaviour(responder=responder)) as server:
        result = await run_with(server, CLASSIFIER, "help")
        conversations = [r.body["messages"] for r in server.requests]
    assert result.success and result.output == {"category": "billing"}
    assert result.steps.classify.attempts == 3
    assert "output is not valid JSON" in conversations[1][-1]["content"]
    assert "does not match output_schema" in conversations[2][-1]["content"]


async def test_rate_limits_and_server_errors_are_retried_by_the_client() -> None:
    behaviour = FakeBehaviour(
        failures=[Failure(429, times=1, retry_after_s=0.01), Failure(503, times=2)]
    )
    async with FakeOpenAI(behaviour) as server:
        result = await run_with(server, WRITER, "x")
        assert server.count() == 3
    assert result.success and result.steps.write.attempts == 1


async def test_persistent_server_errors_fail_the_step_with_a_clear_message() -> None:
    behaviour = FakeBehaviour(failures=[Failure(500)])
    async with FakeOpenAI(behaviour) as server:
        result = await run_with(server, WRITER, "x")
    assert result.status == "failed"
    assert result.error.startswith("step 'write' failed: InternalServerError: Error code: 500")


async def test_an_unreachable_server_fails_the_step_clearly() -> None:
    models = OpenAIModels(base_url="http://127.0.0.1:9/v1", api_key="k", max_retries=0)
    result = await Runner(Pipeline.from_yaml(spec(WRITER)), models=models).run("x")
    await models.close()
    assert result.status == "failed"
    assert result.error == "step 'write' failed: APIConnectionError: Connection error."


async def test_usage_limits_stop_the_run_at_the_step_that_crossed_them() -> None:
    text = (
        WRITER
        + """
  - name: again
    uses: agents.writer
usage_limits:
  total_tokens: 40
"""
    )
    async with FakeOpenAI() as server:
        unlimited = await run_with(
            server, text.replace("total_tokens: 40", "total_tokens: 9999"), "t"
        )
        first = unlimited.steps.write.tokens
        limited = text.replace("total_tokens: 40", f"total_tokens: {first + 1}")
        result = await run_with(server, limited, "t")
    assert result.status == "failed"
    assert result.error_path == "steps[1]"
    assert result.error.startswith(
        f"usage limit total_tokens = {first + 1} crossed at step 'again' (reached "
    )
    assert result.steps.write.success


async def test_record_then_replay_without_the_server(tmp_path: Path) -> None:
    cassette = tmp_path / "cassette"
    pipeline = Pipeline.from_yaml(spec(CLASSIFIER))
    async with FakeOpenAI() as server:
        recorder = OpenAIModels(
            base_url=server.base_url,
            api_key="sk-secret-key-1234567890",
            transport=Cassette(cassette, mode="record"),
        )
        recorded = await Runner(pipeline, models=recorder).run("ticket one")
        await recorder.close()
        base_url = server.base_url
    replayer = OpenAIModels(
        base_url=base_url, transport=Cassette(cassette, mode="replay"), max_retries=0
    )
    replayed = await Runner(pipeline, models=replayer).run("ticket one")
    missed = await Runner(pipeline, models=replayer).run("another ticket")
    await replayer.close()
    assert replayed.success and replayed.output == recorded.output
    assert replayed.total_tokens == recorded.total_tokens
    assert missed.status == "failed" and missed.steps.classify.attempts == 1
    assert "no recording for step 'classify' calls model 'gpt-4o-mini'" in missed.error
    assert "--record" in missed.error
    for file in cassette.iterdir():
        assert "sk-secret-key" not in file.read_text()
