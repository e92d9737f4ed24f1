"""`kind: cache`: a plain step whose output is reused for an equal input within a TTL.

An entry is keyed by the step's definition (the cache step's name, the wrapped step and
the agent it uses, as JSON: any edit of them starts afresh) and the SHA-256 of the wrapped
step's input as canonical JSON. Entries live in the run store's `cache_entries` table
(JSON text of the output), or in the runner's memory when it has no store. A hit costs a
look-up: the wrapped step does not run, its result and context writes are those of the
stored output, and the cache step's span says `flujo.cache.hit`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from flujo.engine.render import render

if TYPE_CHECKING:
    from flujo.engine.runner import Runner, _Run
    from flujo.engine.telemetry import SpanRecord
    from flujo.spec.model import CacheStep

HIT = "flujo.cache.hit"
"""Span attribute of a cache step: whether the output was reused."""
_MISSING = object()


def step_key(runner: Runner, step: CacheStep) -> str:
    """The digest of what decides a cache step's output, the input aside."""
    from flujo.engine.runner import AGENT_PREFIX

    owner = runner._owner[id(step.wrapped_step)]
    uses = step.wrapped_step.uses or ""
    agent = owner.agents.get(uses[len(AGENT_PREFIX) :]) if uses.startswith(AGENT_PREFIX) else None
    definition = {
        "pipeline": owner.name or owner.file or "",
        "step": step.name,
        "wrapped": step.wrapped_step.model_dump(mode="json", by_alias=True),
        "agent": agent.model_dump(mode="json") if agent is not None else None,
    }
    return _digest(definition)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def run_cache(
    run: _Run, step: CacheStep, scope_input: Any, previous: Any, span: SpanRecord
) -> Any:
    """Run `step`: the stored output when there is a fresh one for this input, else the
    wrapped step's (then stored)."""
    runner, inner = run.runner, step.wrapped_step
    value = previous
    if inner.input is not None:
        try:
            value = render(inner.input, run._context(scope_input, previous))
        except Exception:  # the wrapped step reports its own input error
            value = _MISSING
    try:
        digest = None if value is _MISSING else _digest(value)
    except (TypeError, ValueError):  # not JSON: never reused
        digest = None
    key = step_key(runner, step)
    found = _MISSING
    if digest is not None:
        found = await _lookup(runner, key, digest)
    span.attributes[HIT] = found is not _MISSING
    if found is not _MISSING:
        record = run._record(inner)
        record.success, record.error, record.output = True, None, found
        run._write_context(inner, found, span)
        return found
    output = await run.step(inner, scope_input, previous, span)
    if digest is None:
        span.event("flujo.cache.skipped", reason="the input is not JSON")
        return output
    try:
        text = json.dumps(output, ensure_ascii=False)
    except (TypeError, ValueError):
        span.event("flujo.cache.skipped", reason="the output is not JSON")
        return output
    await _keep(runner, key, digest, text, step.ttl_s)
    return output


async def _lookup(runner: Runner, key: str, digest: str) -> Any:
    store = runner.store
    if store is None:
        entry = runner.cache_memory.get((key, digest))
        if entry is None or entry[0] <= time.monotonic():
            return _MISSING
        text: str | None = entry[1]
    else:
        text = await asyncio.to_thread(store.cached_output, key, digest)
    return _MISSING if text is None else json.loads(text)


async def _keep(runner: Runner, key: str, digest: str, text: str, ttl_s: float) -> None:
    store = runner.store
    if store is None:
        runner.cache_memory[key, digest] = (time.monotonic() + ttl_s, text)
    else:
        await asyncio.to_thread(store.store_output, key, digest, text, ttl_s)
