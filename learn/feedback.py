"""What people said about suggestions: rejected and accepted patches, per spec.

Kept in the run store's file, in a table of its own. Rejections are fed to the Prompt
Guard as negative examples, and `suggest` never offers a rejected patch again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from flujo.engine.store import RunStore

Verdict = Literal["rejected", "accepted"]


@dataclass(frozen=True)
class Feedback:
    spec_path: str
    patch_hash: str
    verdict: Verdict
    reason: str
    actor: str
    at: float
    patch: list[dict[str, Any]]


def normalised_patch(patch: list[dict[str, Any]]) -> str:
    """The patch as canonical JSON: same operations, same text (key order ignored)."""
    return json.dumps(patch, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def patch_hash(patch: list[dict[str, Any]]) -> str:
    return hashlib.sha256(normalised_patch(patch).encode()).hexdigest()[:16]


def _record(
    store: RunStore,
    spec_path: str,
    patch: list[dict[str, Any]],
    verdict: Verdict,
    reason: str,
    actor: str,
) -> None:
    store.execute(
        "INSERT INTO suggestion_feedback VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (spec_path, patch_hash) DO UPDATE SET verdict = excluded.verdict,"
        " reason = excluded.reason, actor = excluded.actor, at = excluded.at,"
        " patch = excluded.patch",
        [
            (
                spec_path,
                patch_hash(patch),
                verdict,
                reason,
                actor,
                time.time(),
                normalised_patch(patch),
            )
        ],
    )


def record_rejection(
    store: RunStore, spec_path: str, patch: list[dict[str, Any]], reason: str, actor: str
) -> None:
    """A person (or check) rejected this patch for this spec; it is never suggested again."""
    _record(store, spec_path, patch, "rejected", reason, actor)


def record_acceptance(
    store: RunStore, spec_path: str, patch: list[dict[str, Any]], actor: str, reason: str = ""
) -> None:
    """A person accepted (merged) this patch for this spec."""
    _record(store, spec_path, patch, "accepted", reason, actor)


def is_rejected(store: RunStore, spec_path: str, patch: list[dict[str, Any]]) -> bool:
    rows = store.query(
        "SELECT 1 FROM suggestion_feedback WHERE spec_path = ? AND patch_hash = ?"
        " AND verdict = 'rejected'",
        (spec_path, patch_hash(patch)),
    )
    return bool(rows)


def feedback(
    store: RunStore, spec_path: str, verdict: Verdict = "rejected", limit: int = 20
) -> list[Feedback]:
    """The newest feedback of one kind for a spec."""
    rows = store.query(
        "SELECT * FROM suggestion_feedback WHERE spec_path = ? AND verdict = ?"
        " ORDER BY at DESC LIMIT ?",
        (spec_path, verdict, limit),
    )
    return [_feedback(r) for r in rows]


def rejections(store: RunStore, limit: int = 1000) -> list[Feedback]:
    """Every rejected patch of the store, newest first (what the bot will not propose)."""
    rows = store.query(
        "SELECT * FROM suggestion_feedback WHERE verdict = 'rejected' ORDER BY at DESC LIMIT ?",
        (limit,),
    )
    return [_feedback(r) for r in rows]


def forget_rejection(store: RunStore, spec_path: str, hash_: str) -> bool:
    """Withdraw a rejection (a person un-ignored the patch): it may be suggested again.
    False when there was none."""
    found = store.query(
        "SELECT 1 FROM suggestion_feedback WHERE spec_path = ? AND patch_hash = ?"
        " AND verdict = 'rejected'",
        (spec_path, hash_),
    )
    if not found:
        return False
    store.execute(
        "DELETE FROM suggestion_feedback WHERE spec_path = ? AND patch_hash = ?"
        " AND verdict = 'rejected'",
        [(spec_path, hash_)],
    )
    return True


def _feedback(row: dict[str, Any]) -> Feedback:
    """A `suggestion_feedback` row as a `Feedback`."""
    return Feedback(
        row["spec_path"],
        row["patch_hash"],
        row["verdict"],
        row["reason"],
        row["actor"],
        row["at"],
        json.loads(row["patch"]),
    )
