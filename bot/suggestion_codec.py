"""A suggestion cycle's outcome as JSON and back: what the isolated cycle sends to the bot.

JSON, never pickle: the child that wrote it read untrusted input. Every field is checked
on the way in (pydantic, strict, unknown fields refused), so a confused child cannot hand
the bot anything but text, numbers and JSON Patches. No parsed spec crosses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Plain(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class View(_Plain):
    """`flujo.learn.proposal.SuggestionView`: what the suggestion page shows."""

    id: str
    spec: str
    title: str
    headline: str
    risk: str
    bullets: list[str]
    before: str
    after: str
    diff: str
    body: str
    quality: str = ""
    why: str = ""
    step: str = ""
    watch_for: str = ""


class Judgement(_Plain):
    """One change of a suggestion with its risk tier and why (`learn.tiers.Judged`)."""

    key: str
    tier: str
    reason: str


class Decision(_Plain):
    """`flujo.learn.tiers.TierDecision`: the tier by rules, and what keeps the change from
    being applied automatically."""

    tier: str
    reason: str
    changes: list[Judgement]
    never: list[str] = Field(default_factory=list)


class Promised(_Plain):
    """`flujo.learn.promises.Promise`: what the suggestion's pull request promises."""

    suggestion: str
    kind: str
    usd_per_run: float
    usd_per_month: float
    latency_s_per_run: float
    failures_avoided_per_month: float
    confidence: str
    runs: int
    basis: str
    prices: str


class Change(_Plain):
    """A verified suggestion to propose: the pull request the bot opens for it."""

    id: str
    spec: str
    """The spec's path in the repository (the one file the commit changes)."""
    patch: list[dict[str, Any]]
    branch: str
    title: str
    body: str
    commit_message: str
    labels: tuple[str, ...]
    view: View
    after: str
    """The spec's text with the patch applied."""
    quality: str = ""
    """The "Quality evidence" sentence."""
    decision: Decision | None = None
    """Its risk tier (when the repository's `auto_apply:` settings were given)."""
    spec_before: str = ""
    spec_after: str = ""
    """spec_sha256 of the spec before and after the patch (for auto-apply's watch)."""
    kind: str = ""
    """The kind of finding (`cheaper_model`, `frequent_timeouts`, ...)."""
    members: list[str] = Field(default_factory=list)
    """The ids of the suggestions this one groups (`pull_requests.group: kind`); empty
    when it is one suggestion."""
    promise: Promised | None = None
    """Its estimated savings and how they were measured (recorded when it is opened)."""


class NotProposed(_Plain):
    """A verified suggestion the cycle decided not to propose, and why."""

    id: str
    spec: str
    title: str
    reason: str
    patch: list[dict[str, Any]] = Field(default_factory=list)
    """Its JSON Patch (so a person can ignore it from the dashboard without a pull request)."""


class Cycle(_Plain):
    """Everything one suggestion cycle found for a repository's default branch."""

    changes: list[Change] = Field(default_factory=list)
    not_proposed: list[NotProposed] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    """One line per spec: runs counted, opportunities, suggestions, what was dropped."""
    eval_spent_usd: float = 0.0
    """Money the evaluations of this cycle spent (measured by the provider's usage)."""
    eval_examples: int = 0
    """Captured examples evaluated in this cycle, all suggestions together."""


def encode_cycle(cycle: Cycle) -> dict[str, Any]:
    return cycle.model_dump(mode="json")


def decode_cycle(data: Any) -> Cycle:
    """The cycle a child sent; ValueError (pydantic's) when it is not one."""
    return Cycle.model_validate(data, strict=False)
