"""The change in expected cost per run between a pull request and its base branch (pure).

Both sides are measured the same way: the spec's embedded tests, run by the `flujo/test`
check with recorded answers (replayed cassettes) or mocks. That makes it a comparison of
test runs, not production evidence, and the check summary says so; a side without test
runs of known cost is "not measured", never zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flujo.bot.commit_report import CommitReport, SpecReport
from flujo.spec.figures import money


@dataclass(frozen=True, slots=True)
class SpecCost:
    """What a spec's test runs cost on one side."""

    runs: int
    """Test runs whose cost is known."""
    per_run: float | None
    """Mean USD per run, or None when not measured."""
    reason: str | None = None
    """Why it was not measured."""


@dataclass(frozen=True, slots=True)
class Baseline:
    """The base branch's report, or why it could not be evaluated."""

    ref: str
    report: CommitReport | None
    reason: str | None = None


def spec_cost(spec: SpecReport | None) -> SpecCost:
    """Mean cost per test run of a spec (None, with why, when it cannot be measured)."""
    if spec is None:
        return SpecCost(0, None, "not in this version")
    if not spec.tests:
        return SpecCost(0, None, spec.test_error or "no test runs")
    costs = [t.cost_usd for t in spec.tests]
    if any(c is None for c in costs):
        return SpecCost(0, None, "a model's price is unknown")
    known = [c for c in costs if c is not None]
    return SpecCost(len(known), sum(known) / len(known))


def change_rows(head: CommitReport, base: Baseline) -> list[dict[str, Any]]:
    """One row per spec of the pull request: base and head cost per run, and the change."""
    old_specs = {s.path: s for s in base.report.specs} if base.report is not None else {}
    rows = []
    for spec in head.specs:
        new = spec_cost(spec)
        old = spec_cost(old_specs.get(spec.path)) if base.report is not None else None
        if old is None:
            change = f"not measured: {base.reason or 'the base branch was not evaluated'}"
        elif new.per_run is None or old.per_run is None:
            side, why = ("this branch", new.reason) if new.per_run is None else ("base", old.reason)
            change = f"not measured: {side}: {why}"
        else:
            change = _signed(new.per_run - old.per_run, old.per_run)
        rows.append(
            {
                "path": spec.path,
                "base": _usd(old.per_run) if old is not None else "—",
                "head": _usd(new.per_run),
                "change": change,
                "runs": f"{old.runs if old is not None else 0} / {new.runs}",
            }
        )
    return rows


def _usd(value: float | None) -> str:
    return "not measured" if value is None else money(value)


def _signed(delta: float, old: float) -> str:
    sign = "+" if delta > 0 else "−" if delta < 0 else "±"
    text = f"{sign}{money(abs(delta))}"
    if old > 0 and delta != 0:
        text += f" ({sign}{abs(delta) / old:.0%})"
    return text
