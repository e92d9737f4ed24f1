"""The `pull_requests:` section of `.github/flujo.yml`: grouping, limits and a schedule,
read as people write them, every error at its line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from flujo.spec.config import RepoConfig, load_config
from flujo.spec.errors import SpecError
from flujo.spec.pr_pacing import PullRequests
from tests.support.specs import spec

BROKEN = spec(
    """
    pull_requests:
      group: kinds
      max_open: -1
      max_per_hour: 1000
      schedule:
        - "* 9-16 * * mon-fri"
        - "* 25 * * *"
      time_zone: Europe/Madird
      max_opne: 2
    """
)


def test_by_default_every_suggestion_is_its_own_pull_request_at_any_time() -> None:
    pacing = RepoConfig().pull_requests
    assert (pacing.group, pacing.max_open, pacing.max_per_hour, pacing.schedule) == (
        "none",
        3,
        5,
        [],
    )
    assert pacing.in_schedule(0.0) and pacing.next_opening(123.0) == 123.0


def test_every_error_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / ".github" / "flujo.yml"
    path.parent.mkdir()
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_config(path)
    found = {(d.line, d.yaml_path): d.message for d in caught.value.diagnostics}
    assert "'none' or 'kind'" in found[(2, "pull_requests.group")]
    assert "greater than or equal to 0" in found[(3, "pull_requests.max_open")]
    assert "less than or equal to 100" in found[(4, "pull_requests.max_per_hour")]
    assert "not a cron expression of five fields" in found[(7, "pull_requests.schedule[1]")]
    assert "did you mean 'Europe/Madrid'" in found[(8, "pull_requests.time_zone")]
    assert "max_open" in found[(9, "pull_requests.max_opne")]
    assert len(found) == 6  # the good cron line is not blamed


async def test_a_broken_pull_requests_section_fails_the_checks_at_its_line(
    tmp_path: Path,
) -> None:
    from flujo.bot.evaluate import evaluate
    from flujo.bot.verdicts import check_outputs
    from flujo.spec.registry import StepRegistry
    from tests.support.bot import GOOD

    contents = {".github/flujo.yml": BROKEN, "flujo/greeter.yml": GOOD}
    for name, text in contents.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    report = await evaluate(tmp_path, sorted(contents), registry=StepRegistry())
    validate = {o.name: o for o in check_outputs(report)}["flujo/validate"]
    assert validate.conclusion == "failure"
    lines = {(a.path, a.start_line) for a in validate.annotations}
    assert (".github/flujo.yml", 7) in lines  # the cron expression with hour 25


def test_the_schedule_is_read_in_its_time_zone() -> None:
    pacing = PullRequests.model_validate(
        {"schedule": "* 9-16 * * mon-fri", "time_zone": "Europe/Madrid"}
    )
    monday_0830_utc = datetime(2026, 12, 7, 8, 30, tzinfo=UTC).timestamp()  # 09:30 in Madrid
    assert pacing.in_schedule(monday_0830_utc)
    assert not pacing.in_schedule(monday_0830_utc - 3600)  # 08:30 in Madrid
    saturday = datetime(2026, 12, 12, 12, 0, tzinfo=UTC).timestamp()
    assert not pacing.in_schedule(saturday)
    # The next opening after a Saturday is Monday 09:00 in Madrid (08:00 UTC).
    assert pacing.next_opening(saturday) == datetime(2026, 12, 14, 8, 0, tzinfo=UTC).timestamp()
    assert pacing.describe(pacing.next_opening(saturday)) == "2026-12-14 09:00 CET"
