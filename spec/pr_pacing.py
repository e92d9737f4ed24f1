"""The `pull_requests:` section of `.github/flujo.yml`: how the bot paces suggestion PRs.

Suggestions of one kind in one spec may share a pull request (`group: kind`); at most
`max_open` suggestion pull requests are open and `max_per_hour` new ones opened per hour;
`schedule` (cron expressions, in `time_zone`) says in which minutes new ones may be opened.
A suggestion held back by these waits, with its reason recorded (`WaitReason`), and is
proposed by a later cycle. Updating a pull request already open is never held back.
Errors are reported at their line like a spec's (`RepoConfig`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from flujo.spec.autoapply import known_zone

WaitReason = Literal["schedule", "max_open", "max_per_hour"]
"""Why a suggestion waits: outside the schedule, too many open, too many this hour."""

HOUR_S = 3600.0


def _listed(value: object) -> object:
    """One cron expression may be written without a list."""
    return [value] if isinstance(value, str) else value


def _cron(value: str) -> str:
    """A five-field cron expression (minute hour day-of-month month day-of-week)."""
    from croniter import croniter

    text = " ".join(str(value).split())
    fields = text.split(" ")
    if len(fields) != 5 or not croniter.is_valid(text):
        raise ValueError(
            f"'{value}' is not a cron expression of five fields (minute hour day month "
            "weekday), e.g. '* 9-16 * * mon-fri' for weekdays 09:00 to 16:59"
        )
    return text


Cron = Annotated[str, AfterValidator(_cron)]


class PullRequests(BaseModel):
    """How many suggestion pull requests the bot opens, when, and what each contains.

    The defaults open one pull request per suggestion, at any time, at most 3 open and 5
    new per hour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: Literal["none", "kind"] = Field(
        "none",
        description="`kind`: suggestions of the same kind in one spec share one pull request;"
        " `none`: one pull request per suggestion.",
    )
    max_open: int = Field(
        3,
        ge=0,
        le=100,
        description="Most suggestion pull requests open at once (the bot's own"
        " `suggest_max_open` setting caps it too).",
    )
    max_per_hour: int = Field(
        5, ge=0, le=100, description="Most new suggestion pull requests in any 60 minutes."
    )
    schedule: Annotated[list[Cron], BeforeValidator(_listed)] = Field(
        default_factory=list,
        description="Cron expressions (five fields, in `time_zone`) of the minutes in which new"
        " pull requests may be opened, e.g. `'* 9-16 * * mon-fri'`; empty: any time.",
    )
    time_zone: str = Field("UTC", description="IANA time zone of `schedule`.")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return known_zone(value)

    def _moment(self, now: float) -> datetime:
        return datetime.fromtimestamp(now, ZoneInfo(self.time_zone))

    def in_schedule(self, now: float) -> bool:
        """Whether new pull requests may be opened at the Unix time `now`."""
        from croniter import croniter

        if not self.schedule:
            return True
        moment = self._moment(now)
        return any(croniter.match(text, moment) for text in self.schedule)

    def next_opening(self, now: float) -> float:
        """The first time at or after `now` when new pull requests may be opened."""
        from croniter import croniter

        if self.in_schedule(now):
            return now
        moment = self._moment(now)
        return min(float(croniter(text, moment).get_next(float)) for text in self.schedule)

    def describe(self, when: float) -> str:
        """`when` as people of the schedule's time zone read it: `2026-12-07 09:00 CET`."""
        return self._moment(when).strftime("%Y-%m-%d %H:%M %Z")
