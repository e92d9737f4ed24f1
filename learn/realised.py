"""What a merged suggestion actually did: live runs of the new spec version against the
previous one's (cost per run, latency, failure rate, each with a 95% interval).

The versions are told apart by `spec_sha256`: "before" is the version whose runs last
started before the merge, "after" the first other version run after it. Only live runs
from real traffic count (not tests, checks, verification, evaluations or fake/replayed
runs), so a figure says from how many runs it comes, or "not measured" and why.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.spec.stats import wilson

if TYPE_CHECKING:
    from flujo.engine.store import RunStore

EVIDENCE_ORIGINS = ("cli", "sdk", "shadow")
"""Origins of runs that are traffic (the others are tests, checks and evaluations)."""
_Z = 1.959964


@dataclass(frozen=True, slots=True)
class Side:
    """Live runs of one spec version."""

    spec_sha256: str | None
    runs: int
    cost_per_run: float | None
    """Mean USD per run (None: no run, or a run of unknown cost)."""
    cost_interval: tuple[float, float] | None
    """95% interval of the mean (normal approximation; None under 2 runs)."""
    latency_p50_s: float | None
    failures: int
    failure_interval: tuple[float, float]
    """95% Wilson interval of the failure rate."""

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.runs if self.runs else None


@dataclass(frozen=True, slots=True)
class Realised:
    """One merged suggestion's before and after."""

    spec_path: str
    merged_at: float
    before: Side
    after: Side
    promised_saving_per_run: float | None = None

    @property
    def saving_per_run(self) -> float | None:
        """USD saved per run (negative: costs more), or None when not measured."""
        old, new = self.before.cost_per_run, self.after.cost_per_run
        return None if old is None or new is None else old - new

    @property
    def not_measured(self) -> str | None:
        """Why there is no realised saving, or None when there is one."""
        if self.before.runs == 0:
            return "no live run of the previous version"
        if self.after.runs == 0:
            return "no live run of the merged version yet"
        if self.saving_per_run is None:
            return "a run's cost is unknown (a model without a price)"
        return None


def realised(
    store: RunStore, spec_path: str, merged_at: float, promised: float | None = None
) -> Realised:
    """The before and after of the spec at `spec_path` around `merged_at` (epoch s)."""
    marks = ", ".join("?" * len(EVIDENCE_ORIGINS))
    same, params = same_spec(spec_path)
    rows = store.query(
        "SELECT spec_sha256, started_at, status, latency_s, total_cost_usd FROM runs"
        f" WHERE {same} AND mode = 'live' AND origin IN ({marks})"
        " AND status IN ('succeeded', 'failed') ORDER BY started_at",
        (*params, *EVIDENCE_ORIGINS),
    )
    earlier = [r for r in rows if r["started_at"] < merged_at]
    before_sha = earlier[-1]["spec_sha256"] if earlier else None
    later = [r for r in rows if r["started_at"] >= merged_at and r["spec_sha256"] != before_sha]
    after_sha = later[0]["spec_sha256"] if later else None
    before = _side(before_sha, [r for r in earlier if r["spec_sha256"] == before_sha])
    after = _side(after_sha, [r for r in later if r["spec_sha256"] == after_sha])
    return Realised(spec_path, merged_at, before, after, promised)


def same_spec(spec_path: str, column: str = "spec_path") -> tuple[str, tuple[str, str]]:
    """SQL matching runs of the spec at `spec_path`: that path, or a path ending with it
    (runs made from outside the repository's root name the spec by a longer path)."""
    escaped = spec_path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"({column} = ? OR {column} LIKE ? ESCAPE '\\')", (spec_path, "%/" + escaped)


def _side(sha: str | None, rows: list[dict[str, Any]]) -> Side:
    costs = [r["total_cost_usd"] for r in rows]
    known = [c for c in costs if c is not None]
    mean = statistics.fmean(known) if known and len(known) == len(costs) else None
    interval = None
    if mean is not None and len(known) >= 2:
        half = _Z * statistics.stdev(known) / math.sqrt(len(known))
        interval = (mean - half, mean + half)
    latencies = [r["latency_s"] for r in rows if r["latency_s"] is not None]
    failures = sum(r["status"] == "failed" for r in rows)
    return Side(
        sha,
        len(rows),
        mean,
        interval,
        statistics.median(latencies) if latencies else None,
        failures,
        wilson(failures, len(rows)),
    )
