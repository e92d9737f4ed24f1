"""What every handler receives besides the event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flujo.bot.commit_check import check_commit, evaluate_commit
from flujo.bot.forge import CheckOutput, Forge
from flujo.bot.queue import Permanent
from flujo.bot.snapshot import Limits
from flujo.bot.state import BotState
from flujo.bot.telemetry import TelemetryStores
from flujo.bot.verdicts import soft_blocking

if TYPE_CHECKING:
    from flujo.spec.registry import StepRegistry


@dataclass
class BotContext:
    forge_for: Callable[[int], Awaitable[Forge]]
    state: BotState
    registry: StepRegistry
    telemetry: TelemetryStores
    limits: Limits = field(default_factory=Limits)
    suggest_max_open: int = 3
    public_url: str | None = None
    """Where people reach the bot (for links to suggestion pages)."""

    def page_url(self, suggestion_id: str) -> str | None:
        if not self.public_url:
            return None
        return f"{self.public_url.rstrip('/')}/suggestions/{suggestion_id}"

    async def check(self, data: dict[str, Any], sha: str, *, force: bool) -> list[CheckOutput]:
        """Check `sha` of the event's repository (skipped when already checked, unless
        `force`: GitHub sends push, pull_request and check_suite for the same commit)."""
        repo = repository(data)
        forge = await self.forge_for(installation(data))
        labels = await forge.override_labels(repo, sha)
        key = ",".join(sorted(labels))
        if not force and await self.state.was_checked(repo, sha, key):
            return []
        outputs = await check_commit(
            forge,
            repo,
            sha,
            registry=self.registry,
            overrides=self.state.overrides(repo, labels),
            limits=self.limits,
        )
        await self.state.mark_checked(repo, sha, key)
        return outputs

    async def approve(self, data: dict[str, Any], sha: str, pulls: list[int], by: str) -> None:
        """Approve the REQUIRE_APPROVAL policies blocking `sha` on these pull requests, as
        `by`: label them (visible on the pull request) and re-run the checks."""
        repo = repository(data)
        forge = await self.forge_for(installation(data))
        report = await evaluate_commit(forge, repo, sha, self.registry, {}, self.limits)
        policies = soft_blocking(report)
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        for number in pulls:
            for policy in policies:
                await self.state.record_override(repo, number, policy, by, at)
            if policies:
                await forge.add_labels(repo, number, [f"flujo/override:{p}" for p in policies])
        await self.check(data, sha, force=True)


def repository(data: dict[str, Any]) -> str:
    try:
        return str(data["repository"]["full_name"])
    except (KeyError, TypeError):
        raise Permanent("the event names no repository") from None


def installation(data: dict[str, Any]) -> int:
    try:
        return int(data["installation"]["id"])
    except (KeyError, TypeError, ValueError):
        raise Permanent("the event names no installation of the App") from None
