"""Meta-Agents: write a patch for an opportunity, always through the Prompt Guard.

`offline` (the default) is rule-based and deterministic: one patch recipe per kind of
opportunity, no network. `openai:MODEL` asks a model through the openai client (any
OpenAI-compatible server: `base_url`), with the guard's prompt and retry loop.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

from flujo.spec import paths
from flujo.spec.errors import EXIT_USAGE, FlujoError

if TYPE_CHECKING:
    from flujo.learn.guard import Messages, Outcome, PromptGuard
    from flujo.learn.opportunities import Opportunity


class AgentUnavailable(FlujoError, RuntimeError):
    """The agent cannot work here (no model server configured); exit code 2."""

    exit_code = EXIT_USAGE


class MetaAgent(Protocol):
    name: str

    async def propose(self, opportunity: Opportunity, guard: PromptGuard) -> Outcome | None:
        """A judged patch for the opportunity (None when the agent has nothing to offer)."""
        ...


class OfflineAgent:
    """Rule-based recipes, one per kind of opportunity."""

    name = "offline"

    async def propose(self, opportunity: Opportunity, guard: PromptGuard) -> Outcome | None:
        from flujo.learn.guard import Outcome

        patch = recipe(opportunity, guard.data)
        if patch is None:
            return None
        return Outcome(guard.judge(json.dumps(patch), opportunity), 1)


class OpenAIAgent:
    """A model behind any OpenAI-compatible chat-completions endpoint."""

    def __init__(
        self, model: str, *, base_url: str | None = None, api_key: str | None = None
    ) -> None:
        self.model = model
        self.name = f"openai:{model}"
        self.base_url = base_url
        self.api_key = api_key
        self._client: Any = None

    def _openai(self) -> Any:
        if self._client is None:
            import os

            import openai

            base_url = self.base_url or os.environ.get("OPENAI_BASE_URL")
            key = self.api_key or os.environ.get("OPENAI_API_KEY")
            if not key and not base_url:
                raise AgentUnavailable(
                    "the openai agent needs OPENAI_API_KEY (or OPENAI_BASE_URL for another "
                    "OpenAI-compatible server); use --agent offline to work without one"
                )
            self._client = openai.AsyncOpenAI(
                base_url=base_url, api_key=key or "unused", max_retries=1, timeout=120
            )
        return self._client

    async def ask(self, messages: Messages) -> str:
        response = await self._openai().chat.completions.create(
            model=self.model, messages=messages, temperature=0
        )
        return str(response.choices[0].message.content or "")

    async def propose(self, opportunity: Opportunity, guard: PromptGuard) -> Outcome | None:
        return await guard.run(opportunity, self.ask)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


def make_agent(spec: str, *, base_url: str | None = None) -> OfflineAgent | OpenAIAgent:
    """`offline` or `openai:MODEL`; ValueError for anything else."""
    if spec == "offline":
        return OfflineAgent()
    provider, _, model = spec.partition(":")
    if provider == "openai" and model:
        return OpenAIAgent(model, base_url=base_url)
    raise ValueError(f"unknown agent {spec!r}: use 'offline' or 'openai:MODEL'")


# -- recipes --------------------------------------------------------------------------------


def recipe(opportunity: Opportunity, data: Any) -> list[dict[str, Any]] | None:
    """The offline agent's patch for an opportunity, on the spec's plain data."""
    facts = opportunity.facts
    kind = opportunity.kind
    if kind == "cheaper_model":
        return [{"op": "replace", "path": opportunity.scope[0], "value": facts["suggested"]}]
    if kind == "expensive_step":
        return [_set(data, opportunity.scope[0], facts["max_tokens"])]
    if kind in ("flaky_validator", "frequent_retries"):
        return [_set(data, opportunity.scope[0] + "/max_retries", facts["max_retries"])]
    if kind == "frequent_timeouts":
        return [_set(data, opportunity.scope[0] + "/timeout_s", facts["timeout_s"])]
    if kind in ("loose_timeout", "usage_limit_hits"):
        value = facts["timeout_s"] if kind == "loose_timeout" else facts["value"]
        return [_set(data, opportunity.scope[0], value)]
    if kind == "unused_output":  # mocks first: removing a step shifts no test index
        return [{"op": "remove", "path": p} for p in (*opportunity.scope[1:], opportunity.scope[0])]
    if kind == "repeated_call":
        return [{"op": "replace", "path": opportunity.scope[0], "value": facts["replacement"]}]
    if kind == "fallback_rescues":
        uses, fallback = opportunity.scope
        return [
            {"op": "replace", "path": uses, "value": facts["uses"]},
            {"op": "remove", "path": fallback},
        ]
    if kind == "stable_jit_plan":  # the plan's last step replaces the jit step, the others
        *earlier, last = facts["steps"]  # go before it (each added at the same index)
        where = opportunity.scope[0]
        ops = [{"op": "replace", "path": where, "value": last}]
        return ops + [{"op": "add", "path": where, "value": s} for s in reversed(earlier)]
    if kind == "parallelizable":
        first, second = (_get(data, p) for p in opportunity.scope)
        merged = {
            "name": facts["name"],
            "kind": "parallel",
            "branches": {
                first["name"]: {"steps": [first]},
                second["name"]: {"steps": [second]},
            },
        }
        return [
            {"op": "remove", "path": opportunity.scope[1]},
            {"op": "replace", "path": opportunity.scope[0], "value": merged},
        ]
    return None


def _get(data: Any, pointer: str) -> Any:
    node = data
    for segment in paths.split(paths.from_pointer(pointer, data)):
        node = node[segment]
    return node


def _set(data: Any, pointer: str, value: Any) -> dict[str, Any]:
    """An operation setting `pointer` to `value`, creating a missing parent mapping."""
    parent, _, key = pointer.rpartition("/")
    try:
        container = _get(data, parent) if parent else data
    except (KeyError, IndexError, TypeError):
        return _set(data, parent, {key: value})
    if isinstance(container, dict) and key in container:
        return {"op": "replace", "path": pointer, "value": value}
    return {"op": "add", "path": pointer, "value": value}
