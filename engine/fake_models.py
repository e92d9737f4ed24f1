"""The built-in fake model answered in process: no server, no HTTP, no `openai` import.

`flujo run --fake` (and the demo) reach the fake through this `ModelClient` unless model
calls are recorded (`--record` stores HTTP traffic, so it needs the server). It builds the
same chat completions body as `OpenAIModels` and asks the same `FakeOpenAI` for the
reply, so outputs, token counts, costs, spans and stored runs are those of a run through
the server. A request that the server would refuse or fail on purpose (a `fail` marker,
scripted failures, an unsupported parameter) goes through the real server and `openai`
client instead, started on first need, so that retries, error types and failure causes
are exactly the client's.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from flujo.engine.agents import OpenAIModels, _conforming
from flujo.engine.fake_openai import (
    ApiError,
    ChatRequest,
    FakeBehaviour,
    FakeOpenAI,
    ReceivedRequest,
    parse_chat_request,
)
from flujo.engine.runner import Completion

if TYPE_CHECKING:
    from flujo.spec.model import Agent, AgentStep

CHAT_PATH = "/v1/chat/completions"


class InProcessFake:
    """A `ModelClient` answering from a `FakeOpenAI` without serving it (see the module)."""

    def __init__(
        self, behaviour: FakeBehaviour | None = None, *, prices: dict[str, Any] | None = None
    ) -> None:
        self.server = FakeOpenAI(behaviour)
        self.prices = prices or {}
        self._http: OpenAIModels | None = None
        self._http_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        await self.server.stop()

    async def complete(
        self, agent: Agent, step: AgentStep, prompt: Any, feedback: str | None
    ) -> Completion:
        from flujo.engine.pricing import cost_usd

        provider, _, model = agent.model.partition(":")
        if provider != "openai":  # as OpenAIModels says it
            raise RuntimeError(
                f"provider '{provider}' is not supported; serve the model through an "
                "OpenAI-compatible endpoint and name it 'openai:MODEL'"
            )
        schema = agent.output_schema
        request = OpenAIModels._request(agent, step, model, prompt, feedback, schema is not None)
        body = json.loads(json.dumps(request))  # as the server receives it
        try:
            chat = parse_chat_request(body)
            self._check_in_process(chat)
        except ApiError:
            return await (await self._over_http()).complete(agent, step, prompt, feedback)
        server = self.server
        record = ReceivedRequest("POST", CHAT_PATH, {}, body, chat.model)
        server.requests.append(record)
        server._count_arrival(chat)
        await asyncio.sleep(server._latency(chat))
        payload = server._completion(chat)
        record.status = 200
        text = payload["choices"][0]["message"]["content"] or ""
        usage = payload["usage"]
        input_tokens, output_tokens = usage["prompt_tokens"], usage["completion_tokens"]
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
        output: Any = text
        if schema is not None:
            output = _conforming(text, schema)
        return Completion(
            output=output,
            model=payload["model"] or model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost_usd(
                agent.model,
                input_tokens,
                output_tokens,
                cached_input_tokens=cached,
                overrides=self.prices,
            ),
            cached_input_tokens=cached,
        )

    def _check_in_process(self, chat: ChatRequest) -> None:
        """Raise ApiError when the server could answer this request with an error: such
        requests go over HTTP, where the client's retries and error types apply."""
        if "fail" in chat.markers or self.server.behaviour.failures:
            raise ApiError(500, "scripted failure")
        self.server._check_supported(chat)

    async def _over_http(self) -> OpenAIModels:
        async with self._http_lock:
            if self._http is None:
                base_url = await self.server.start()
                self._http = OpenAIModels(base_url=base_url, prices=self.prices)
            return self._http
