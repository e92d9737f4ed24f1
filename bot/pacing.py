"""Which of a cycle's suggestions are opened as pull requests now, and why the rest wait.

The repository's `pull_requests:` settings (`flujo.spec.pr_pacing`) decide: new pull
requests only in a minute its `schedule` matches, at most `max_open` open (and the bot's
own `suggest_max_open`), at most `max_per_hour` opened in any 60 minutes. A pull request
already open is always updated. Each suggestion held back gets a `Waiting` record with a
reason (`schedule`, `max_open`, `max_per_hour`), a sentence and the earliest time it may be
opened; the bot keeps them (`BotState.waiting`) for the dashboard and runs the cycle again
at the earliest such time (or when a suggestion pull request closes).

`Waiting` is also the record of a verified suggestion the cycle itself did not propose
(`NOT_PROPOSED`: below the agreement floor, or another of its rules): the one list of what
waits, which the dashboard issue shows and acts on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from flujo.spec.pr_pacing import HOUR_S, WaitReason

if TYPE_CHECKING:
    from flujo.bot.suggestion_codec import Change
    from flujo.spec.pr_pacing import PullRequests


NOT_PROPOSED: Literal["not_proposed"] = "not_proposed"
"""The reason of a suggestion the cycle did not propose (its own rules; `detail` says which)."""


@dataclass(frozen=True, slots=True)
class Waiting:
    """A verified suggestion the bot has not proposed (yet), and why: held back by the
    repository's `pull_requests:` settings (`reason` a `WaitReason`), or not proposed by
    the cycle (`reason` NOT_PROPOSED). Stored per repository by `BotState.set_waiting`."""

    suggestion: str
    spec: str
    title: str
    branch: str
    """The branch its pull request would have ("" for one the cycle did not propose)."""
    reason: WaitReason | Literal["not_proposed"]
    detail: str
    """Why, in a sentence a person reads (with the setting's name and value)."""
    until: float | None
    """The earliest Unix time it may be opened (None: when a suggestion pull request
    closes, or never while `max_per_hour` is 0; always None for NOT_PROPOSED)."""
    since: float = 0.0
    """When it was first held back (kept across cycles while it keeps waiting)."""
    patch: list[dict[str, Any]] = field(default_factory=list)
    """Its JSON Patch (so a person can ignore it from the dashboard without a pull request)."""

    @property
    def paced(self) -> bool:
        """Held back by the pacing settings (a later cycle may open it by itself)."""
        return self.reason != NOT_PROPOSED

    @classmethod
    def not_proposed(
        cls, suggestion: str, spec: str, title: str, detail: str, patch: list[dict[str, Any]]
    ) -> Waiting:
        """A suggestion the cycle verified but did not propose, and why (`detail`)."""
        return cls(suggestion, spec, title, "", NOT_PROPOSED, detail, None, patch=patch)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a cycle does with its changes, best first."""

    propose: list[Change] = field(default_factory=list)
    """Open (or update, when open already) now."""
    waiting: list[Waiting] = field(default_factory=list)

    @property
    def wake_at(self) -> float | None:
        """When a later cycle may open one of the waiting (None: no time is known)."""
        times = [w.until for w in self.waiting if w.until is not None]
        return min(times) if times else None


def plan(
    changes: Iterable[Change],
    *,
    open_branches: set[str],
    opened: Iterable[float],
    settings: PullRequests,
    max_open_cap: int,
    now: float,
) -> Plan:
    """Split `changes` into those to propose now and those that wait. `open_branches` are
    the suggestion pull requests open now; `opened` when the bot opened each one recently."""
    max_open = min(settings.max_open, max_open_cap)
    in_schedule = settings.in_schedule(now)
    recent = sorted(t for t in opened if now - HOUR_S < t <= now)
    open_count = len(open_branches)
    result = Plan()
    for change in changes:
        if change.branch in open_branches:
            result.propose.append(change)
            continue
        reason, detail, until = _held(settings, max_open, in_schedule, open_count, recent, now)
        if reason is None:
            result.propose.append(change)
            open_count += 1
            recent.append(now)
            continue
        result.waiting.append(
            Waiting(change.id, change.spec, change.title, change.branch, reason, detail, until)
        )
    return result


def _held(
    settings: PullRequests,
    max_open: int,
    in_schedule: bool,
    open_count: int,
    recent: list[float],
    now: float,
) -> tuple[WaitReason | None, str, float | None]:
    """Why a new pull request may not be opened now (None: it may), and until when."""
    if not in_schedule:
        opening = settings.next_opening(now)
        return (
            "schedule",
            f"outside the schedule ({', '.join(settings.schedule)} in {settings.time_zone}); "
            f"the next opening is {settings.describe(opening)}",
            opening,
        )
    if open_count >= max_open:
        return (
            "max_open",
            f"{open_count} suggestion pull request(s) open, the most allowed (max_open: "
            f"{max_open}); it is opened when one is merged or closed",
            None,
        )
    limit = settings.max_per_hour
    if len(recent) >= limit:
        until = recent[len(recent) - limit] + HOUR_S if limit else None
        when = f"; it may be opened from {settings.describe(until)}" if until else ""
        return (
            "max_per_hour",
            f"{len(recent)} suggestion pull request(s) opened in the last hour, the most "
            f"allowed (max_per_hour: {limit}){when}",
            until,
        )
    return None, "", None
