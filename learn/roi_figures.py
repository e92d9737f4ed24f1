"""Per-suggestion figures: what each suggestion pull request promised, what people did
with it, and what a merged one realised (live runs before and after, `realised.py`).

The one place the ROI page and the bot's dashboard read them from: promises
(`promises.py`, recorded when the bot opened the pull request) joined with feedback
(`feedback.py`: merged, rejected, or reverted by the watch) on spec path and patch hash.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from flujo.learn.promises import Promise, opened, promised
from flujo.learn.realised import EVIDENCE_ORIGINS, Realised, realised, same_spec
from flujo.spec.figures import money

if TYPE_CHECKING:
    from flujo.engine.store import RunStore

State = Literal["open", "merged", "reverted", "rejected"]
REVERTED = "reverted after a regression"
"""How the watch's rejection reason starts when it reverted a merged suggestion."""


@dataclass(frozen=True, slots=True)
class SuggestionFigures:
    """One proposed or decided suggestion, with its promise and realised figures."""

    spec: str
    patch: list[dict[str, Any]]
    state: State
    """`open`: proposed, not decided yet (or decided outside the bot's sight)."""
    suggestion: str | None = None
    """Its id (None when no promise was recorded: proposed before promises were kept)."""
    pull: int | None = None
    decided_at: float | None = None
    by: str | None = None
    promise: Promise | None = None
    realised: Realised | None = None
    """Live runs before and after the merge (merged ones only)."""
    runs_per_month: float = 0.0
    """Live runs a month of the spec (its observed rate)."""

    @property
    def saving_per_run(self) -> float | None:
        return None if self.realised is None else self.realised.saving_per_run

    @property
    def realised_per_month(self) -> float | None:
        """The realised saving per run at the spec's observed live runs a month."""
        saving = self.saving_per_run
        return None if saving is None else saving * self.runs_per_month

    @property
    def not_measured(self) -> str | None:
        """Why there is no realised saving (None: there is one)."""
        if self.state == "open":
            return "not merged yet"
        if self.state == "rejected":
            return "closed without merging"
        if self.state == "reverted":
            return REVERTED
        return "no live runs read" if self.realised is None else self.realised.not_measured

    def promised_text(self) -> str:
        """What it promised and how that was measured, in a sentence."""
        p = self.promise
        if p is None:
            return "not recorded (decided without a pull request, or before promises were kept)"
        parts = [f"{money(p.usd_per_run)} per run (~{money(p.usd_per_month)}/month)"]
        if p.failures_avoided_per_month > 0:
            parts.append(f"~{p.failures_avoided_per_month:.0f} failed runs/month avoided")
        if p.latency_s_per_run:
            faster = "faster" if p.latency_s_per_run < 0 else "slower"
            parts.append(f"{abs(p.latency_s_per_run):.2f} s per run {faster}")
        return (
            ", ".join(parts)
            + f"; estimated from {p.runs} runs ({p.basis}), {p.confidence} confidence, "
            f"prices {p.prices}"
        )

    def realised_text(self) -> str:
        """What it realised, with how many live runs, or why that is not measured."""
        why = self.not_measured
        found = self.realised
        if why is not None or found is None:
            return f"not measured: {why}"
        return (
            f"{money(self.saving_per_run)} per run (~{money(self.realised_per_month)}/month at "
            f"{self.runs_per_month:.0f} live runs a month), from {found.before.runs} live runs "
            f"before and {found.after.runs} after the merge"
        )

    def summary(self) -> str:
        """One line for a dashboard: state, promised, realised."""
        name = f"`{self.suggestion}`" if self.suggestion else "a suggestion"
        pull = f" (#{self.pull})" if self.pull else ""
        return (
            f"{name}{pull} on `{self.spec}`, {self.state}: promised {self.promised_text()}; "
            f"realised {self.realised_text()}"
        )


def suggestion_figures(store: RunStore, suggestion: str | None = None) -> list[SuggestionFigures]:
    """Every suggestion the store knows was proposed or decided, oldest first; only the
    one with id `suggestion` when given."""
    rows = store.query("SELECT * FROM suggestion_feedback ORDER BY at", ())
    decided = {(r["spec_path"], r["patch_hash"]): r for r in rows}
    found: list[SuggestionFigures] = []
    seen: set[tuple[str, str]] = set()
    for row in opened(store):
        key = (row["spec_path"], row["patch_hash"])
        seen.add(key)
        promise = promised(store, *key)
        found.append(
            _figures(store, row["spec_path"], row["patch"], decided.get(key), promise, row["pull"])
        )
    for key, row in decided.items():
        if key not in seen:
            found.append(_figures(store, row["spec_path"], row["patch"], row, None, None))
    if suggestion is not None:
        found = [f for f in found if f.suggestion == suggestion]
    return sorted(found, key=lambda f: f.decided_at or 0.0)


def _figures(
    store: RunStore,
    spec: str,
    patch_text: str,
    decision: dict[str, Any] | None,
    promise: Promise | None,
    pull: int | None,
) -> SuggestionFigures:
    state: State = "open"
    if decision is not None:
        if decision["verdict"] == "accepted":
            state = "merged"
        elif str(decision["reason"]).startswith(REVERTED):
            state = "reverted"
        else:
            state = "rejected"
    found = None
    if state == "merged" and decision is not None:
        found = realised(
            store, spec, decision["at"], promise.usd_per_run if promise is not None else None
        )
    return SuggestionFigures(
        spec=spec,
        patch=json.loads(patch_text),
        state=state,
        suggestion=promise.suggestion if promise is not None else None,
        pull=pull,
        decided_at=None if decision is None else float(decision["at"]),
        by=None if decision is None else decision["actor"],
        promise=promise,
        realised=found,
        runs_per_month=runs_per_month(store, spec),
    )


def runs_per_month(store: RunStore, spec_path: str) -> float:
    """Live runs of the spec a month, at the rate observed between its first and last."""
    marks = ", ".join("?" * len(EVIDENCE_ORIGINS))
    same, params = same_spec(spec_path)
    (row,) = store.query(
        "SELECT COUNT(*) AS n, MIN(started_at) AS first, MAX(started_at) AS last FROM runs"
        f" WHERE {same} AND mode = 'live' AND origin IN ({marks})",
        (*params, *EVIDENCE_ORIGINS),
    )
    if not row["n"] or row["last"] == row["first"]:
        return float(row["n"] or 0)
    days = max(float(row["last"] - row["first"]) / 86400, 1.0)
    return float(row["n"]) * 30 / days


def realised_by_month(store: RunStore, figures: list[SuggestionFigures]) -> list[dict[str, Any]]:
    """Realised savings per calendar month (UTC): each merged suggestion's measured saving
    per run times its merged version's live runs in that month."""
    marks = ", ".join("?" * len(EVIDENCE_ORIGINS))
    months: dict[str, dict[str, Any]] = {}
    for f in figures:
        found, saving = f.realised, f.saving_per_run
        if found is None or saving is None or found.after.spec_sha256 is None:
            continue
        same, params = same_spec(f.spec)
        rows = store.query(
            f"SELECT started_at FROM runs WHERE {same} AND spec_sha256 = ? AND mode = 'live'"
            f" AND origin IN ({marks}) AND started_at >= ?",
            (*params, found.after.spec_sha256, *EVIDENCE_ORIGINS, found.merged_at),
        )
        for row in rows:
            name = datetime.datetime.fromtimestamp(row["started_at"], datetime.UTC).strftime(
                "%Y-%m"
            )
            month = months.setdefault(name, {"month": name, "usd": 0.0, "runs": 0})
            month["usd"] += saving
            month["runs"] += 1
    return [months[m] for m in sorted(months)]


def day(at: float | None) -> str:
    if at is None:
        return "—"
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d")
