"""Agents: calls to any OpenAI-compatible chat-completions server.

`output_schema` is enforced: the schema is sent as structured output
(`response_format: json_schema`) while the server accepts it; a server that rejects it
gets the schema in the instructions instead. Either way the reply is parsed and
validated, and a reply that does not conform fails the attempt with the reason, which
the runner feeds back on the retry (the repair retry).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Protocol, cast

from flujo.engine.runner import Completion, ValidationFailed

if TYPE_CHECKING:
    import httpx

    from flujo.spec.model import Agent, AgentStep


class ModelClient(Protocol):
    """What the runner needs from a model provider."""

    async def complete(
        self, agent: Agent, step: AgentStep, prompt: Any, feedback: str | None
    ) -> Completion: ...


class OpenAIModels:
    """Chat completions through the `openai` async client.

    `base_url` and `api_key` default to OPENAI_BASE_URL and OPENAI_API_KEY. `transport`
    replaces the HTTP layer (record/replay). The client retries 429 and 5xx answers
    with exponential backoff (honouring Retry-After) `max_retries` times.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        prices: dict[str, Any] | None = None,
        max_retries: int = 2,
        timeout_s: float = 120.0,
    ) -> None:
        import httpx
        import openai

        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        api_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key:
            if base_url is None and transport is None:
                raise RuntimeError(
                    "no model server configured: set OPENAI_API_KEY (and OPENAI_BASE_URL for "
                    "another OpenAI-compatible server), or use --replay DIR or --fake"
                )
            api_key = "unused"  # local servers and cassettes need no key
        http_client = httpx.AsyncClient(transport=transport) if transport is not None else None
        self.client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            # openai types this as its own httpx fork's client; httpx's works the same
            http_client=cast(Any, http_client),
            max_retries=max_retries,
            timeout=timeout_s,
        )
        self.prices = prices or {}
        self._no_structured_output: set[str] = set()

    async def close(self) -> None:
        await self.client.close()

    async def complete(
        self, agent: Agent, step: AgentStep, prompt: Any, feedback: str | None
    ) -> Completion:
        import openai

        from flujo.engine.pricing import cost_usd

        provider, _, model = agent.model.partition(":")
        if provider != "openai":
            raise RuntimeError(
                f"provider '{provider}' is not supported; serve the model through an "
                "OpenAI-compatible endpoint and name it 'openai:MODEL'"
            )
        schema = agent.output_schema
        structured = schema is not None and model not in self._no_structured_output
        request = self._request(agent, step, model, prompt, feedback, structured)
        try:
            try:
                response = await self.client.chat.completions.create(**request)
            except openai.BadRequestError as exc:
                if not structured or "response_format" not in str(exc):
                    raise
                self._no_structured_output.add(model)
                request = self._request(agent, step, model, prompt, feedback, False)
                response = await self.client.chat.completions.create(**request)
        except openai.APIConnectionError as exc:
            from flujo.engine.cassette import CassetteMiss

            if isinstance(exc.__cause__, CassetteMiss):  # not a connection problem
                raise exc.__cause__ from None
            raise
        text = response.choices[0].message.content or ""
        usage = response.usage
        input_tokens = usage.prompt_tokens if usage else 0
        output_tokens = usage.completion_tokens if usage else 0
        details = usage.prompt_tokens_details if usage else None
        cached = (details.cached_tokens or 0) if details else 0
        output: Any = text
        if schema is not None:
            output = _conforming(text, schema)
        return Completion(
            output=output,
            model=response.model or model,
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

    @staticmethod
    def _request(
        agent: Agent,
        step: AgentStep,
        model: str,
        prompt: Any,
        feedback: str | None,
        structured: bool,
    ) -> dict[str, Any]:
        system = agent.system_prompt
        schema = agent.output_schema
        if schema is not None and not structured:
            system += "\n\nReply with JSON only, matching this JSON Schema:\n" + json.dumps(schema)
        messages: list[dict[str, str]] = []
        if system:
            messages.append({"role": "system", "content": system})
        content = prompt if isinstance(prompt, str) else json.dumps(prompt, default=str)
        messages.append({"role": "user", "content": content})
        if feedback:
            messages.append(
                {
                    "role": "user",
                    "content": f"Your previous answer was rejected: {feedback}. "
                    "Answer again, fixing that.",
                }
            )
        request: dict[str, Any] = {"model": model, "messages": messages}
        temperature = (
            step.config.temperature if step.config.temperature is not None else (agent.temperature)
        )
        if temperature is not None:
            request["temperature"] = temperature
        if step.config.top_p is not None:
            request["top_p"] = step.config.top_p
        if agent.max_tokens is not None:
            request["max_tokens"] = agent.max_tokens
        if schema is not None and structured:
            request["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": schema},
            }
        return request


def _conforming(text: str, schema: dict[str, Any]) -> Any:
    """The reply parsed as JSON and checked against the agent's output_schema."""
    from flujo.spec.schemas import safe_validator
    from flujo.spec.skills import json_parse

    try:
        data = json_parse(text)
    except ValueError as exc:
        raise ValidationFailed(f"output is not valid JSON ({exc})") from None
    error = next(iter(safe_validator(schema).iter_errors(data)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        raise ValidationFailed(
            f"output does not match output_schema: {error.message}"
            + (f" at /{where}" if where else "")
        )
    return data
