"""The `auto_apply:` section of `.github/flujo.yml`: defaults, errors at their lines."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flujo.bot.evaluate import evaluate
from flujo.bot.verdicts import check_outputs
from flujo.spec.autoapply import AutoApply, parse_duration
from flujo.spec.config import RepoConfig, load_config
from flujo.spec.errors import SpecError
from flujo.spec.registry import StepRegistry
from tests.support.bot import GOOD
from tests.support.specs import spec

BROKEN = spec(
    """
    auto_apply:
      tiers:
        low: merge
        high: merge
      time_zone: Europe/Madird
      windows:
        - days: [mon, tue]
          start: "18:00"
          end: "09:00"
      bake_in: 2x
      max_merges_per_dya: 3
    """
)


def test_by_default_nothing_merges_by_itself() -> None:
    settings = RepoConfig().auto_apply
    assert (settings.tiers.low, settings.tiers.medium, settings.tiers.high) == (
        "propose",
        "propose",
        "propose",
    )


def test_every_error_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / ".github" / "flujo.yml"
    path.parent.mkdir()
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_config(path)
    found = {(d.line, d.yaml_path): d.message for d in caught.value.diagnostics}
    assert "'propose' or 'off'" in found[(4, "auto_apply.tiers.high")]
    assert "did you mean 'Europe/Madrid'" in found[(5, "auto_apply.time_zone")]
    assert "end must be after start" in found[(7, "auto_apply.windows[0]")]
    assert "not a duration" in found[(10, "auto_apply.bake_in")]
    assert "max_merges_per_day" in found[(11, "auto_apply.max_merges_per_dya")]


async def test_a_broken_auto_apply_section_fails_the_checks_at_its_line(tmp_path: Path) -> None:
    contents = {".github/flujo.yml": BROKEN, "flujo/greeter.yml": GOOD}
    for name, text in contents.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    report = await evaluate(tmp_path, sorted(contents), registry=StepRegistry())
    validate = {o.name: o for o in check_outputs(report)}["flujo/validate"]
    assert validate.conclusion == "failure"
    lines = {(a.path, a.start_line) for a in validate.annotations}
    assert (".github/flujo.yml", 5) in lines  # the time zone


def test_durations_and_clock_times_are_read_as_people_write_them() -> None:
    assert parse_duration("24h") == 86400 and parse_duration("30m") == 1800
    assert parse_duration(90) == 90 and parse_duration("2d") == 172800
    settings = AutoApply.model_validate(
        {"windows": [{"days": ["sat"], "start": "10:00", "end": "24:00"}], "bake_in": "2h"}
    )
    assert settings.bake_in == 7200


def test_merge_windows_follow_their_time_zone() -> None:
    settings = AutoApply.model_validate(
        {
            "time_zone": "America/New_York",
            "windows": [{"days": ["mon"], "start": "09:00", "end": "10:00"}],
        }
    )
    zone = ZoneInfo("America/New_York")
    inside = datetime(2026, 12, 7, 9, 30, tzinfo=zone).timestamp()  # a Monday
    before = datetime(2026, 12, 7, 8, 59, tzinfo=zone).timestamp()
    assert settings.in_window(inside)
    assert not settings.in_window(before)
    assert settings.next_window(before) == datetime(2026, 12, 7, 9, 0, tzinfo=zone).timestamp()
    sunday = datetime(2026, 12, 6, 12, 0, tzinfo=zone).timestamp()
    assert settings.next_window(sunday) == datetime(2026, 12, 7, 9, 0, tzinfo=zone).timestamp()
    assert settings.day_of(inside) == "2026-12-07"
