"""What every handler receives besides the event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flujo.bot.applications import Applications
from flujo.bot.clock import Clock, SystemClock
from flujo.bot.commit_check import check_commit, evaluate_commit
from flujo.bot.dashboard_state import Dashboards
from flujo.bot.evaluate import Evaluator
from flujo.bot.events import RepositoryEvent
from flujo.bot.forge import CheckOutput, Forge
from flujo.bot.page_links import page_key, page_path, roi_path
from flujo.bot.queue import Delivery
from flujo.bot.snapshot import Limits
from flujo.bot.state import BotState
from flujo.bot.telemetry import TelemetryStores
from flujo.bot.verdicts import soft_blocking

if TYPE_CHECKING:
    from flujo.bot.suggestion_cycle import Evaluation
    from flujo.spec.registry import StepRegistry


def refused_approval(login: str, label: str | None = None) -> str:
    """The reply to someone without write access who tried to approve a policy."""
    what = f"the label `{label}` approves nothing" if label else "nothing was approved"
    return (
        f"@{login}: approving a policy needs write access to this repository, so {what}. "
        "A maintainer can add the `flujo/override:<policy>` label or press *Approve policies*."
    )


@dataclass
class BotContext:
    forge_for: Callable[[int], Awaitable[Forge]]
    state: BotState
    registry: StepRegistry
    """The bot's skill allow-list (suggestion verification)."""
    evaluator: Evaluator
    """How a commit's specs are checked (in a confined child process, for the App)."""
    telemetry: TelemetryStores
    limits: Limits = field(default_factory=Limits)
    suggest_max_open: int = 3
    public_url: str | None = None
    applications: Applications | None = None
    """Suggestions the bot may apply by itself (`auto_apply.py`)."""
    clock: Clock = field(default_factory=SystemClock)
    schedule: Callable[[Delivery], Awaitable[None]] | None = None
    """Store a scheduled job (a timer) in the queue."""
    apply_hooks: list[Any] = field(default_factory=list)
    """Plugins' `on_commit`/`on_rollback` hooks (`apply_hooks.py`)."""
    page_key: bytes = field(default_factory=lambda: page_key(None))
    """The server secret behind suggestion page links (`page_links.py`)."""
    evaluation: Evaluation | None = None
    """The evaluation provider and its limits (`eval_*` settings); budget is monthly, per
    installation."""
    dashboards: Dashboards | None = None
    """The dashboard issues' tables (`routers/dashboard.py`); None: no dashboard."""

    async def evaluation_for(
        self, forge: Forge, repo: str, installation: int
    ) -> tuple[Evaluation | None, str]:
        """How the suggestion cycle of `repo` may measure (None, and why not, if it may not):
        never for a fork's code; at most what is left of the installation's monthly budget."""
        from dataclasses import replace

        if self.evaluation is None:
            return None, ""
        if await forge.is_fork(repo):
            return None, "evaluation never runs for code from forks, and this repository is one"
        spent = sum((await self.state.eval_spend(installation)).values())
        return replace(self.evaluation, budget_usd=max(0.0, self.evaluation.budget_usd - spent)), ""

    def page_url(self, repo: str, suggestion_id: str) -> str | None:
        """Where the page of a suggestion proposed on `repo` is served (unguessable)."""
        if not self.public_url:
            return None
        return self.public_url.rstrip("/") + page_path(self.page_key, repo, suggestion_id)

    def roi_url(self, repo: str) -> str | None:
        """Where `repo`'s realised-ROI page is served (unguessable; None without a public
        URL)."""
        if not self.public_url:
            return None
        return self.public_url.rstrip("/") + roi_path(self.page_key, repo)

    async def check(
        self,
        event: RepositoryEvent,
        sha: str,
        *,
        force: bool,
        git_ref: str | None = None,
        base: tuple[str, str] | None = None,
    ) -> list[CheckOutput]:
        """Check `sha` of the event's repository (skipped when already checked, unless
        `force`: GitHub sends push, pull_request and check_suite for the same commit).
        `git_ref` is the branch or pull request ref, for code scanning; `base` the
        pull request's base (sha, branch), whose test costs `flujo/test` compares."""
        return await self.check_sha(
            event.installation_id, event.repo, sha, force=force, git_ref=git_ref, base=base
        )

    async def check_head(self, installation: int, repo: str, branch: str) -> None:
        """Check the head of a branch the bot pushed (auto-apply does not wait for the
        webhooks of its own pushes; a later webhook finds it checked already)."""
        forge = await self.forge_for(installation)
        branch_sha = getattr(forge, "branch_sha", None)
        sha = await branch_sha(repo, branch) if branch_sha is not None else None
        if sha is not None:
            await self.check_sha(installation, repo, sha, force=False)

    async def check_sha(
        self,
        installation: int,
        repo: str,
        sha: str,
        *,
        force: bool,
        git_ref: str | None = None,
        base: tuple[str, str] | None = None,
    ) -> list[CheckOutput]:
        forge = await self.forge_for(installation)
        labels = await forge.override_labels(repo, sha)
        key = ",".join(sorted(labels))
        if not force and await self.state.was_checked(repo, sha, key):
            return []
        outputs = await check_commit(
            forge,
            repo,
            sha,
            evaluator=self.evaluator,
            overrides=await self.state.overrides(repo, labels, sha),
            limits=self.limits,
            git_ref=git_ref,
            base=base,
        )
        await self.state.mark_checked(repo, sha, key)
        if self.dashboards is not None:
            await self.dashboards.record_checks(repo, sha, outputs)
        return outputs

    async def approve(self, event: RepositoryEvent, sha: str, pulls: list[int], by: str) -> None:
        """Approve the REQUIRE_APPROVAL policies blocking `sha` on these pull requests, as
        `by`: label them (visible on the pull request) and re-run the checks."""
        repo = event.repo
        forge = await self.forge_for(event.installation_id)
        if not await forge.can_write(repo, by):
            for number in pulls:
                await forge.comment(repo, number, refused_approval(by))
            return
        report = await evaluate_commit(forge, repo, sha, self.evaluator, {}, self.limits)
        policies = soft_blocking(report)
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        for number in pulls:
            for policy in policies:
                await self.state.record_override(repo, number, policy, by, at, sha)
            if policies:
                await forge.add_labels(repo, number, [f"flujo/override:{p}" for p in policies])
        await self.check(event, sha, force=True)
