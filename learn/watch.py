"""The watch after an automatic merge: live runs of the new spec version against the
previous one, judged by statistical tests that need a minimum number of runs.

Only production evidence counts: runs of mode `live` that no test, check, verification or
evaluation started. Compared: the failure rate of each cause (one-sided Fisher exact test),
cost per run and latency (one-sided Mann–Whitney U, normal approximation; p95 shown).
Every figure says from how many runs of each version it comes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from flujo.engine.store import RunStore

ALPHA = 0.01
"""A difference counts as a regression only below this p-value (one-sided)."""
MIN_INCREASE = 1.1
"""…and only when the new version is at least this much worse (cost, latency)."""
Verdict = Literal["regression", "no_regression", "not_enough_runs"]


@dataclass(frozen=True)
class Runs:
    """One version's production runs during the watch."""

    sha: str
    total: int
    failures: dict[str, int]
    costs: list[float]
    latencies: list[float]


@dataclass(frozen=True)
class WatchReport:
    verdict: Verdict
    before: Runs
    after: Runs
    findings: tuple[str, ...] = ()
    """What regressed, each with its figures, test and p-value."""
    figures: tuple[str, ...] = field(default=())
    """What was compared (shown whatever the verdict)."""

    def summary(self) -> str:
        head = {
            "regression": "Regression",
            "no_regression": "No regression",
            "not_enough_runs": "Not judged",
        }[self.verdict]
        source = (
            f"live production runs: {self.after.total} of the new version "
            f"({self.after.sha[:12]}), {self.before.total} of the previous ({self.before.sha[:12]})"
        )
        lines = [f"{head} ({source})."]
        lines += [f"- {f}" for f in (self.findings or self.figures)]
        return "\n".join(lines)


def production_runs(store: RunStore, sha: str, since: float, until: float | None = None) -> Runs:
    """Runs of spec version `sha` started at or after `since` that count as evidence."""
    from flujo.engine.store import infer_cause
    from flujo.learn.telemetry_view import EVIDENCE_MODES, NOT_PRODUCTION_ORIGINS

    modes = ",".join("?" * len(EVIDENCE_MODES))
    origins = ",".join("?" * len(NOT_PRODUCTION_ORIGINS))
    rows = store.query(
        "SELECT status, error, cause, total_cost_usd, latency_s FROM runs WHERE spec_sha256 = ?"
        f" AND started_at >= ? AND started_at < ? AND mode IN ({modes})"
        f" AND origin NOT IN ({origins})",
        (
            sha,
            since,
            until if until is not None else math.inf,
            *EVIDENCE_MODES,
            *NOT_PRODUCTION_ORIGINS,
        ),
    )
    failures: dict[str, int] = {}
    for row in rows:
        if row["status"] != "succeeded":
            cause = row["cause"] or infer_cause(row["error"])
            failures[cause] = failures.get(cause, 0) + 1
    return Runs(
        sha,
        len(rows),
        failures,
        [float(r["total_cost_usd"]) for r in rows if r["total_cost_usd"] is not None],
        [float(r["latency_s"]) for r in rows if r["latency_s"] is not None],
    )


def compare(before: Runs, after: Runs, min_runs: int) -> WatchReport:
    """Whether `after` (the new version) is worse than `before`, by the tests above."""
    if before.total < min_runs or after.total < min_runs:
        needed = (
            f"at least {min_runs} live runs of each version are needed; "
            f"{after.total} new and {before.total} previous so far",
        )
        return WatchReport("not_enough_runs", before, after, figures=needed)
    findings: list[str] = []
    figures: list[str] = []
    for cause in sorted(set(before.failures) | set(after.failures)):
        k1, k2 = before.failures.get(cause, 0), after.failures.get(cause, 0)
        p = fisher_greater(k2, after.total, k1, before.total)
        text = (
            f"failures (cause {cause}): {k2} of {after.total} runs "
            f"({k2 / after.total:.0%}) vs {k1} of {before.total} ({k1 / before.total:.0%}); "
            f"one-sided Fisher exact p = {p:.3g}"
        )
        figures.append(text)
        if p < ALPHA and k2 / after.total > k1 / before.total:
            findings.append(text)
    for label, old, new, unit in (
        ("cost per run", before.costs, after.costs, "$"),
        ("latency", before.latencies, after.latencies, "s"),
    ):
        if len(old) < min_runs or len(new) < min_runs:
            figures.append(f"{label}: not measured (fewer than {min_runs} runs with it)")
            continue
        p = mann_whitney_greater(new, old)
        mean_old, mean_new = sum(old) / len(old), sum(new) / len(new)
        text = (
            f"{label}: mean {_fmt(mean_new, unit)} vs {_fmt(mean_old, unit)}, p95 "
            f"{_fmt(_p95(new), unit)} vs {_fmt(_p95(old), unit)} ({len(new)} and {len(old)} "
            f"runs); one-sided Mann–Whitney U p = {p:.3g}"
        )
        figures.append(text)
        if p < ALPHA and mean_new > mean_old * MIN_INCREASE:
            findings.append(text)
    verdict: Verdict = "regression" if findings else "no_regression"
    return WatchReport(verdict, before, after, tuple(findings), tuple(figures))


def fisher_greater(k_new: int, n_new: int, k_old: int, n_old: int) -> float:
    """One-sided Fisher exact p-value that the new rate is greater than the old one."""
    total_k, total_n = k_new + k_old, n_new + n_old
    denominator = math.comb(total_n, total_k)
    p = 0.0
    for k in range(k_new, min(total_k, n_new) + 1):
        p += math.comb(n_new, k) * math.comb(n_old, total_k - k) / denominator
    return min(1.0, p)


def mann_whitney_greater(new: list[float], old: list[float]) -> float:
    """One-sided Mann–Whitney U p-value that `new` tends to be larger than `old` (normal
    approximation with tie correction; fine for the run counts a watch needs)."""
    values = sorted([(v, 0) for v in new] + [(v, 1) for v in old])
    ranks = [0.0] * len(values)
    ties = 0.0
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1][0] == values[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    n1, n2 = len(new), len(old)
    r1 = sum(r for r, (_, side) in zip(ranks, values, strict=True) if side == 0)
    u = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _p95(values: list[float]) -> float:
    from flujo.learn.telemetry_view import percentile

    return percentile(values, 95)


def _fmt(value: float, unit: str) -> str:
    from flujo.spec.figures import money

    return money(value) if unit == "$" else f"{value:.2f}s"
