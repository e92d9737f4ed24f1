"""Skills the engine tests allow-list (`tests.support.skills:*`)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

calls: Counter[str] = Counter()


def flaky(value: Any, fail_times: int = 2, key: str = "flaky") -> Any:
    """Fails the first `fail_times` calls (per key), then returns its input."""
    calls[key] += 1
    if calls[key] <= fail_times:
        raise ConnectionError(f"flaky failure {calls[key]}")
    return value


def boom(value: Any) -> Any:
    raise ValueError("this step always fails")


async def slow(value: Any, seconds: float = 1.0) -> Any:
    await asyncio.sleep(seconds)
    return value


def shout(value: Any) -> str:
    return str(value).upper()


def too_long(value: Any) -> str:
    return "x" * 50


def hog(value: Any, mb: int = 4096) -> Any:
    """An allowed skill with a bug: it holds `mb` MiB (isolation must contain it)."""
    held = bytearray(mb * 1024 * 1024)
    return len(held)


def spin(value: Any) -> Any:
    """An allowed skill that never returns and never yields (only a kill stops it)."""
    count = 0
    while value is not None:
        count += 1


def route_by_flag(output: Any, context: Any) -> str:
    """A 0.x `condition`: picks a branch from the run context."""
    return "valid" if context.get("yaml_is_valid") else "invalid"


def enough_rounds(output: Any, context: Any) -> bool:
    """A 0.x `exit_condition`: done once the context counted three rounds."""
    return len(context.get("rounds", [])) >= 3


def count_round(value: Any) -> dict[str, Any]:
    """Returns a mapping for `updates_context`."""
    rounds = list(value.get("rounds", [])) if isinstance(value, dict) else []
    return {"rounds": [*rounds, len(rounds) + 1]}


running = {"now": 0, "most": 0}
"""How many `overlapping` calls are under way, and the most at once (reset it in tests)."""


async def overlapping(value: Any, seconds: float = 0.2) -> Any:
    """Waits `seconds`, counting how many calls wait at the same time."""
    running["now"] += 1
    running["most"] = max(running["most"], running["now"])
    try:
        await asyncio.sleep(seconds)
    finally:
        running["now"] -= 1
    return value
