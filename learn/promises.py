"""What each suggestion pull request promised when it was opened, and how that was measured.

Kept in the run store's file, in a table of its own, keyed like the feedback (spec path
and patch hash), so the realised-ROI page shows a merged suggestion's realised savings
beside its promise. A promise is the suggestion's estimate at the time: saving per run
and per month at the prices of the named price table, from the runs its basis counts
(live unless `--include` added others, which the basis names). Later cycles that update
the pull request update the promise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flujo.learn.feedback import normalised_patch, patch_hash

if TYPE_CHECKING:
    from flujo.engine.store import RunStore
    from flujo.learn.suggest import Suggestion

_TABLE = """
CREATE TABLE IF NOT EXISTS suggestion_promises (
    spec_path TEXT NOT NULL,
    patch_hash TEXT NOT NULL,
    suggestion TEXT NOT NULL,
    kind TEXT NOT NULL,
    pull INTEGER,
    usd_per_run REAL NOT NULL,
    usd_per_month REAL NOT NULL,
    latency_s_per_run REAL NOT NULL,
    failures_avoided_per_month REAL NOT NULL,
    confidence TEXT NOT NULL,
    runs INTEGER NOT NULL,
    basis TEXT NOT NULL,
    prices TEXT NOT NULL,
    patch TEXT NOT NULL,
    opened_at REAL NOT NULL,
    PRIMARY KEY (spec_path, patch_hash)
)
"""


@dataclass(frozen=True, slots=True)
class Promise:
    """A suggestion's estimate when its pull request was opened."""

    suggestion: str
    kind: str
    usd_per_run: float
    """Saved per run (negative: costs more)."""
    usd_per_month: float
    latency_s_per_run: float
    """Change in latency per run (negative: faster)."""
    failures_avoided_per_month: float
    confidence: str
    """`low`, `medium` or `high` (`flujo.learn.roi.confidence`)."""
    runs: int
    """Runs the estimate was made from (its basis says how they reached their models)."""
    basis: str
    """How it was measured: runs counted and the observed rate."""
    prices: str
    """The price table the money was computed with."""

    @classmethod
    def of(cls, suggestion: Suggestion, prices: str | None) -> Promise:
        """The promise of a suggestion as `flujo.learn.suggest` estimated it, at the price
        table `prices` (its report's `prices_version`)."""
        estimate = suggestion.estimate
        return cls(
            suggestion.id,
            suggestion.kind,
            estimate.usd_per_run,
            estimate.usd_per_month,
            estimate.latency_s_per_run,
            estimate.failures_avoided_per_month,
            estimate.confidence_label,
            int(suggestion.evidence.get("runs", 0) or 0),
            suggestion.basis or "live runs of the spec",
            prices or "not recorded",
        )

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _ensure(store: RunStore) -> None:
    store.execute(_TABLE)


def record_promise(
    store: RunStore,
    spec_path: str,
    patch: list[dict[str, Any]],
    promise: Promise,
    pull: int | None,
    at: float | None = None,
) -> None:
    """Remember what the pull request `pull` for `patch` on `spec_path` promises."""
    _ensure(store)
    store.execute(
        "INSERT INTO suggestion_promises VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (spec_path, patch_hash) DO UPDATE SET pull = excluded.pull,"
        " usd_per_run = excluded.usd_per_run, usd_per_month = excluded.usd_per_month,"
        " latency_s_per_run = excluded.latency_s_per_run,"
        " failures_avoided_per_month = excluded.failures_avoided_per_month,"
        " confidence = excluded.confidence, runs = excluded.runs, basis = excluded.basis,"
        " prices = excluded.prices",
        [
            (
                spec_path,
                patch_hash(patch),
                promise.suggestion,
                promise.kind,
                pull,
                promise.usd_per_run,
                promise.usd_per_month,
                promise.latency_s_per_run,
                promise.failures_avoided_per_month,
                promise.confidence,
                promise.runs,
                promise.basis,
                promise.prices,
                normalised_patch(patch),
                time.time() if at is None else at,
            )
        ],
    )


def promised(store: RunStore, spec_path: str, patch_digest: str) -> Promise | None:
    """The promise recorded for the patch with hash `patch_digest` on `spec_path`."""
    _ensure(store)
    rows = store.query(
        "SELECT * FROM suggestion_promises WHERE spec_path = ? AND patch_hash = ?",
        (spec_path, patch_digest),
    )
    return _promise(rows[0]) if rows else None


def opened(store: RunStore) -> list[dict[str, Any]]:
    """Every promise recorded (one per suggestion pull request opened), oldest first."""
    _ensure(store)
    return store.query("SELECT * FROM suggestion_promises ORDER BY opened_at", ())


def _promise(row: dict[str, Any]) -> Promise:
    return Promise(
        row["suggestion"],
        row["kind"],
        float(row["usd_per_run"]),
        float(row["usd_per_month"]),
        float(row["latency_s_per_run"]),
        float(row["failures_avoided_per_month"]),
        row["confidence"],
        int(row["runs"]),
        row["basis"],
        row["prices"],
    )
