"""The `auto_apply:` section of `.github/flujo.yml`: what the bot may apply by itself.

Per risk tier (`flujo.learn.tiers`) one mode: `merge` (merge once every required check
passed, inside a merge window), `stage` (open and bake on fresh captured inputs, then
merge), `propose` (open a pull request for a person) or `off`. The defaults merge nothing:
a person opts in. Errors are reported at their line like a spec's (`RepoConfig`).
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

Mode = Literal["merge", "stage", "propose", "off"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: object) -> float:
    """Seconds from `90`, `90s`, `30m`, `24h` or `2d` (a number alone is seconds)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text like 30m, 24h, 2d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if match is None:
            raise ValueError(f"'{value}' is not a duration: write seconds (3600) or 30m, 24h, 2d")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _clock(value: object) -> str:
    """`HH:MM` (00:00 to 24:00), normalised; YAML 1.1 reads an unquoted 09:00 as 540."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value // 60:02d}:{value % 60:02d}"
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value).strip())
    if match is None or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise ValueError(f"'{value}' is not a time of day: write HH:MM, e.g. 09:00")
    if int(match.group(1)) == 24 and int(match.group(2)):
        raise ValueError("24:MM is not a time of day: 24:00 is the end of the day")
    return f"{int(match.group(1)):02d}:{match.group(2)}"


def _time(text: str) -> time:
    hour, minute = (int(part) for part in text.split(":"))
    return time.max if hour == 24 else time(hour, minute)


ClockTime = Annotated[str, BeforeValidator(_clock)]


def known_zone(value: str) -> str:
    """`value` when it names an IANA time zone; else ValueError with a did-you-mean."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        import difflib

        close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ValueError(f"unknown time zone '{value}'{hint}") from None
    return value


class Tiers(BaseModel):
    """What the bot does with a suggestion of each risk tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    low: Mode = Field(
        "propose",
        description="Retries, timeouts, backoff, `max_tokens`, usage limits within `bounds`,"
        " descriptions.",
    )
    medium: Mode = Field(
        "propose",
        description="Model swaps within a provider at or above `agreement_floor`, validators"
        " from the registry, reordering steps that do not read each other.",
    )
    high: Literal["propose", "off"] = Field(
        "propose", description="Anything else: always waits for a person (`propose` or `off`)."
    )


class MergeWindow(BaseModel):
    """When automatic merges may happen (in `time_zone`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    days: list[Day] = Field(
        default_factory=lambda: list(DAYS[:5]), description="Days of the week (mon … sun)."
    )
    start: ClockTime = Field("09:00", description="Start, HH:MM.")
    end: ClockTime = Field("17:00", description="End, HH:MM (after start; 24:00 allowed).")

    @model_validator(mode="after")
    def _ordered(self) -> MergeWindow:
        if _time(self.end) <= _time(self.start):
            raise ValueError("end must be after start (windows do not cross midnight)")
        return self

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` (already in the window's time zone) falls inside."""
        now = moment.time().replace(tzinfo=None)
        return DAYS[moment.weekday()] in self.days and _time(self.start) <= now < _time(self.end)


class Bounds(BaseModel):
    """How far a low-tier change may move a setting; beyond these it is high risk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_retries: int = Field(5, ge=0, le=100, description="Most retries a step may get.")
    timeout_s_min: float = Field(5.0, gt=0, description="Shortest timeout_s.")
    timeout_s_max: float = Field(600.0, gt=0, description="Longest timeout_s.")
    max_tokens: int = Field(8192, gt=0, description="Largest `max_tokens` of an agent.")
    backoff_max_s: float = Field(300.0, ge=0, description="Longest backoff delay.")
    usage_limit_factor: float = Field(
        2.0, ge=1, description="A usage limit may move by at most this factor either way."
    )

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.timeout_s_max < self.timeout_s_min:
            raise ValueError("timeout_s_max must be at least timeout_s_min")
        return self


class AutoApply(BaseModel):
    """Safe auto-apply: which suggestions the bot merges by itself, and when.

    Nothing merges by default (every tier `propose`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: Tiers = Field(default_factory=Tiers, description="A mode per risk tier.")
    time_zone: str = Field("UTC", description="IANA time zone of the merge windows.")
    windows: list[MergeWindow] = Field(
        default_factory=lambda: [MergeWindow()],
        min_length=1,
        description="When automatic merges may happen (default Mon–Fri 09:00–17:00).",
    )
    max_merges_per_day: int = Field(
        3, ge=0, le=100, description="Most automatic merges per repository per day."
    )
    agreement_floor: float = Field(
        0.95, ge=0, le=1, description="Least agreement of a model swap or bake-in (0 to 1)."
    )
    min_examples: int = Field(
        20, ge=1, description="Fewest fresh examples a bake-in must compare before merging."
    )
    bake_in: Duration = Field(86400.0, description="How long a staged change bakes (24h).")
    watch: Duration = Field(86400.0, description="How long a merged change is watched (24h).")
    watch_min_runs: int = Field(
        30, ge=2, description="Fewest live runs of each version before the watch judges."
    )
    freeze_label: str = Field(
        "flujo/freeze",
        min_length=1,
        max_length=50,
        description="A pull request or issue with this label stops automatic merges.",
    )
    bounds: Bounds = Field(default_factory=Bounds, description="Limits of low-tier changes.")

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return known_zone(value)

    def mode(self, tier: str) -> Mode:
        """The mode of a tier (`low`, `medium` or `high`)."""
        mode: Mode = getattr(self.tiers, tier)
        return mode

    def in_window(self, now: float) -> bool:
        """Whether the Unix time `now` falls inside a merge window."""
        moment = datetime.fromtimestamp(now, ZoneInfo(self.time_zone))
        return any(window.contains(moment) for window in self.windows)

    def next_window(self, now: float, horizon_days: int = 8) -> float | None:
        """The first time at or after `now` inside a merge window (None within a week)."""
        zone = ZoneInfo(self.time_zone)
        moment = datetime.fromtimestamp(now, zone)
        if self.in_window(now):
            return now
        for offset in range(horizon_days):
            day = (moment.replace(hour=0, minute=0, second=0, microsecond=0)).toordinal()
            date = datetime.fromordinal(day + offset).date()
            starts = sorted(
                datetime.combine(date, _time(w.start), zone).timestamp()
                for w in self.windows
                if DAYS[date.weekday()] in w.days
            )
            for start in starts:
                if start >= now:
                    return start
        return None

    def day_of(self, now: float) -> str:
        """The date (in the windows' time zone) that the daily cap counts by."""
        return datetime.fromtimestamp(now, ZoneInfo(self.time_zone)).date().isoformat()
