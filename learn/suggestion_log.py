"""Suggestions by id: what each one proposed, and what became of it.

A suggestion's id names one opportunity (spec, kind, place: `suggestion_id`), so the
same id is shown by `flujo suggest`, names the branch `flujo/suggest/<id>` and appears in
the pull request body. `flujo suggest` remembers each suggestion it shows here (in the run
store's file, a table of its own), so `--accept ID` and `--reject ID` can find its patch
later, and a merged or deleted branch can be traced back to it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from flujo.learn.feedback import normalised_patch, patch_hash

if TYPE_CHECKING:
    from collections.abc import Iterable

    from flujo.engine.store import RunStore
    from flujo.learn.suggest import Suggestion

State = Literal["open", "accepted", "rejected"]

_TABLE = """
CREATE TABLE IF NOT EXISTS suggestion_log (
    id TEXT PRIMARY KEY,
    spec_path TEXT NOT NULL,
    kind TEXT NOT NULL,
    yaml_path TEXT NOT NULL,
    headline TEXT NOT NULL,
    patch TEXT NOT NULL,
    patch_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
)
"""


def suggestion_id(spec_path: str, kind: str, yaml_path: str) -> str:
    """The id of the suggestion for one opportunity: 12 hex digits of a hash of the spec's
    path, the kind of finding and its place. A newer patch for the same finding keeps it
    (and updates its pull request instead of opening another)."""
    digest = hashlib.sha256(f"{spec_path}\n{kind}\n{yaml_path}".encode())
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class Logged:
    """A suggestion as it was last shown."""

    id: str
    spec_path: str
    kind: str
    yaml_path: str
    headline: str
    patch: list[dict[str, Any]]
    state: State


def _ensure(store: RunStore) -> None:
    store.execute(_TABLE)


def remember(store: RunStore, suggestions: Iterable[Suggestion]) -> None:
    """Record the suggestions shown; one whose patch changed is open again."""
    _ensure(store)
    now = time.time()
    rows = [
        (
            s.id,
            s.spec,
            s.kind,
            s.yaml_path,
            s.headline,
            normalised_patch(s.patch),
            patch_hash(s.patch),
            now,
            now,
        )
        for s in suggestions
    ]
    if not rows:
        return
    store.execute(
        "INSERT INTO suggestion_log VALUES (?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)"
        " ON CONFLICT(id) DO UPDATE SET headline = excluded.headline,"
        " last_seen = excluded.last_seen, patch = excluded.patch,"
        " state = CASE WHEN suggestion_log.patch_hash = excluded.patch_hash"
        "   THEN suggestion_log.state ELSE 'open' END,"
        " patch_hash = excluded.patch_hash",
        rows,
    )


def lookup(store: RunStore, spec_path: str, ident: str) -> Logged | list[str] | None:
    """The suggestion of `spec_path` whose id is `ident` or starts with it (at least 4
    characters); None when there is none, the matching ids when there are several."""
    _ensure(store)
    ident = ident.strip().lower()
    if len(ident) < 4:
        return None
    rows = store.query(
        "SELECT * FROM suggestion_log WHERE spec_path = ? AND substr(id, 1, ?) = ? ORDER BY id",
        (spec_path, len(ident), ident),
    )
    if len(rows) > 1:
        return [r["id"] for r in rows]
    return _logged(rows[0]) if rows else None


def get(store: RunStore, ident: str) -> Logged | None:
    """The suggestion with exactly this id, of any spec."""
    _ensure(store)
    rows = store.query("SELECT * FROM suggestion_log WHERE id = ?", (ident,))
    return _logged(rows[0]) if rows else None


def known(store: RunStore, spec_path: str) -> list[Logged]:
    """Every suggestion shown for `spec_path`, newest first."""
    _ensure(store)
    rows = store.query(
        "SELECT * FROM suggestion_log WHERE spec_path = ? ORDER BY last_seen DESC, id",
        (spec_path,),
    )
    return [_logged(r) for r in rows]


def settle(store: RunStore, ident: str, state: State) -> None:
    _ensure(store)
    store.execute("UPDATE suggestion_log SET state = ? WHERE id = ?", [(state, ident)])


def ids_by_patch(store: RunStore, spec_path: str) -> dict[str, str]:
    """Suggestion ids by patch hash (to name the suggestions in the feedback history)."""
    _ensure(store)
    rows = store.query(
        "SELECT id, patch_hash FROM suggestion_log WHERE spec_path = ?", (spec_path,)
    )
    return {r["patch_hash"]: r["id"] for r in rows}


def _logged(row: dict[str, Any]) -> Logged:
    return Logged(
        row["id"],
        row["spec_path"],
        row["kind"],
        row["yaml_path"],
        row["headline"],
        json.loads(row["patch"]),
        row["state"],
    )
