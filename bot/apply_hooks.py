"""Hooks around an automatic apply, in the spirit of Prefect 3's transactions.

Applying is a transaction with stages (`stage`, `merge`, `watch`). Installed plugins
register hooks under the entry-point group `flujo.apply_hooks`: each entry point names an
object (or class) with `on_commit(event)` and/or `on_rollback(event)`. `on_commit` hooks
run in registration order once a change is merged; `on_rollback` hooks run in reverse
order when it is reverted. A hook that fails is logged and the others still run: a hook
never stops a rollback.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger("flujo.bot.apply_hooks")
ENTRY_POINT_GROUP = "flujo.apply_hooks"
Stage = Literal["stage", "merge", "watch"]


@dataclass(frozen=True)
class ApplyEvent:
    """What a hook is told: which change, where, at which stage, and why."""

    repo: str
    number: int
    spec: str
    suggestion: str
    stage: Stage
    tier: str
    merged_sha: str | None
    reason: str = ""


def installed_hooks() -> list[Any]:
    """The hooks installed plugins register, in entry-point name order (never raises:
    a hook that cannot be loaded is logged and left out)."""
    from importlib.metadata import entry_points

    hooks = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        try:
            hook = point.load()
            hooks.append(hook() if inspect.isclass(hook) else hook)
        except Exception as exc:  # a broken plugin must not stop applying or rolling back
            log.error("apply hook %s could not be loaded: %s", point.name, exc)
    return hooks


async def run_hooks(hooks: Iterable[Any], name: str, event: ApplyEvent) -> list[str]:
    """Call `name` (`on_commit` or `on_rollback`) on each hook that has it; returns one
    line per failure (logged too)."""
    failures = []
    for hook in hooks:
        method = getattr(hook, name, None)
        if method is None:
            continue
        try:
            result = method(event)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # logged; the next hook still runs
            label = getattr(hook, "__name__", type(hook).__name__)
            log.error("apply hook %s.%s failed: %s", label, name, exc)
            failures.append(f"hook {label}.{name} failed: {type(exc).__name__}: {exc}")
    return failures


async def on_commit(hooks: list[Any], event: ApplyEvent) -> list[str]:
    return await run_hooks(hooks, "on_commit", event)


async def on_rollback(hooks: list[Any], event: ApplyEvent) -> list[str]:
    """In reverse order of registration, as a transaction unwinds."""
    return await run_hooks(list(reversed(hooks)), "on_rollback", event)
